"""The pure rules of lab mode's logins: who runs where, through what, and why not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inventory.errors import AuthFailed
from inventory.transport import CommandResult
from lepton_tui.errors import ValidationError
from lepton_tui.logins import (
    NotReachable,
    SudoTransport,
    login_for,
    pairs_to_try,
    placement_groups,
    service_user,
    sudo_argv,
    user_root_dir,
)

KEY = Path("/var/lib/lepton-tui/lab_key")


def _row(name: str, **kw: object) -> dict[str, object]:
    return {"name": name, "address": "10.0.0.1", "port": 22, "user": "lepton",
            "key_path": "/k", "transport": "ssh", "root_dir": "~/.lepton", **kw}  # fmt: skip


def test_a_job_logs_in_as_its_owner_with_the_lab_key() -> None:
    login = login_for(_row("gpu1"), "alice", KEY)
    assert login.row["user"] == "alice" and login.row["key_path"] == str(KEY)
    assert login.how == "lab key" and login.sudo_user is None
    assert login_for(_row("gpu1"), "lepton", KEY).row["user"] == "lepton"  # the host's own
    assert login_for(_row("gpu1"), "alice", None).row["user"] == "lepton"  # personal mode


def test_sudo_hosts_keep_their_login_and_wrap_the_command() -> None:
    login = login_for(_row("gpu1", run_as="sudo"), "alice", KEY)
    assert login.row["user"] == "lepton" and login.sudo_user == "alice" and login.how == "sudo"
    assert sudo_argv("alice", ["python3", "-I", "-S", "-"]) == [
        "sudo", "-n", "-H", "-u", "alice", "--", "python3", "-I", "-S", "-"
    ]  # fmt: skip
    with pytest.raises(ValidationError):
        sudo_argv("alice; rm -rf /", ["true"])


class _Inner:
    """A transport that records what it was asked to run and answers `reply`."""

    round_trips = 0
    name = "gpu1"

    def __init__(self, reply: CommandResult) -> None:
        self.reply = reply
        self.sent: list[list[str]] = []

    def run(self, argv: list[str], stdin: bytes | None = None, timeout: float = 30) -> Any:
        self.sent.append(argv)
        return self.reply

    def close(self) -> None:
        pass


def test_sudo_transport_runs_the_argv_as_the_user() -> None:
    inner = _Inner(CommandResult(0, b"a b\n", b""))
    assert SudoTransport(inner, "bob").run(["echo", "a b"]).stdout == b"a b\n"
    assert inner.sent == [["sudo", "-n", "-H", "-u", "bob", "--", "echo", "a b"]]


def test_a_sudo_refusal_reads_as_a_refused_login() -> None:
    inner = _Inner(CommandResult(1, b"", b"sudo: a password is required\n"))
    with pytest.raises(AuthFailed, match="sudo -u bob refused: sudo: a password is required"):
        SudoTransport(inner, "bob").run(["python3", "-I", "-S", "-"])
    inner = _Inner(CommandResult(1, b"", b"Traceback ...\n"))  # the command's own failure
    assert SudoTransport(inner, "bob").run(["python3"]).rc == 1


def test_a_local_host_runs_only_the_service_accounts_jobs() -> None:
    local = _row("login", transport="local", address=None, user=None)
    with pytest.raises(NotReachable, match="add the login node over SSH"):
        login_for(local, "alice" if service_user() != "alice" else "bob", KEY)


def test_users_never_share_an_absolute_root() -> None:
    assert user_root_dir("~/.lepton", "alice") == "~/.lepton"
    assert user_root_dir("/scratch/lepton", "alice") == "/scratch/lepton/alice"
    assert (
        login_for(_row("g", root_dir="/scratch/l"), "bob", KEY).row["root_dir"] == "/scratch/l/bob"
    )


def test_unreachable_pairs_are_tried_again_only_after_the_retry_period() -> None:
    rows = [_row("gpu1"), _row("gpu2")]
    records = {("gpu1", "alice"): {"ok": 0, "checked_at": 100.0},
               ("gpu2", "alice"): {"ok": 1, "checked_at": 100.0}}  # fmt: skip
    assert [(r["name"], u) for r, u in pairs_to_try(rows, ["alice", "bob"], records, 150.0, 120)] \
        == [("gpu1", "bob"), ("gpu2", "bob")]  # fmt: skip
    assert ("gpu1", "alice") in [
        (r["name"], u) for r, u in pairs_to_try(rows, ["alice"], records, 221.0, 120)
    ]
    assert pairs_to_try(rows, ["lepton"], {}, 0.0) == []  # the hosts' own login needs no try


def test_a_check_made_before_run_as_changed_counts_as_never_tried() -> None:
    """A lab-key check refused just before `hosts run-as HOST sudo` (the dispatcher's tick
    began with the old row) must not hold the user's jobs for the retry period."""
    rows = {"gpu1": _row("gpu1", run_as="sudo")}
    records = {("gpu1", "alice"): {"ok": 0, "checked_at": 100.0, "how": "lab key"}}
    tried = pairs_to_try(list(rows.values()), ["alice"], records, 101.0, 120)
    assert [(r["name"], u) for r, u in tried] == [("gpu1", "alice")]
    groups, reasons = placement_groups([{"id": 1, "user": "alice"}], rows, {"gpu1"}, records)
    assert groups == [] and 1 in reasons  # not placeable until tried the sudo way
    records[("gpu1", "alice")] = {"ok": 1, "checked_at": 102.0, "how": "sudo"}
    assert pairs_to_try(list(rows.values()), ["alice"], records, 103.0, 120) == []
    groups, _ = placement_groups([{"id": 1, "user": "alice"}], rows, {"gpu1"}, records)
    assert [sorted(h) for h, _ in groups] == [["gpu1"]]
    records[("gpu1", "alice")] = {"ok": 1, "checked_at": 102.0, "how": "lab key"}
    groups, _ = placement_groups([{"id": 1, "user": "alice"}], rows, {"gpu1"}, records)
    assert groups == []  # a lab-key success says nothing of sudo either


def test_placement_groups_jobs_by_where_their_owner_can_log_in() -> None:
    rows = {"gpu1": _row("gpu1"), "gpu2": _row("gpu2")}
    records = {("gpu1", "alice"): {"ok": 1, "checked_at": 0.0},
               ("gpu2", "alice"): {"ok": 1, "checked_at": 0.0},
               ("gpu1", "bob"): {"ok": 1, "checked_at": 0.0},
               ("gpu2", "bob"): {"ok": 0, "checked_at": 0.0}}  # fmt: skip
    jobs = [{"id": 1, "user": "alice"}, {"id": 2, "user": "bob"}, {"id": 3, "user": "carol"},
            {"id": 4, "user": "alice"}]  # fmt: skip
    groups, reasons = placement_groups(jobs, rows, {"gpu1", "gpu2"}, records)
    assert [(sorted(h), [j["id"] for j in js]) for h, js in groups] == [
        (["gpu1", "gpu2"], [1, 4]), (["gpu1"], [2])
    ]  # fmt: skip
    assert reasons == {3: "carol cannot log in to gpu1, gpu2 with the lab key: add the line "
                          "from `lepton-tui keys show` to ~carol/.ssh/authorized_keys"}  # fmt: skip
