"""Jobs run as their submitter on every host (lab mode): the lab key, `hosts check --user`,
placement that only considers hosts a job's owner can log in to."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lepton_tui.client import LabClient
from tests.lab.conftest import Lab, as_user, client_call
from tests.lab.test_cli import _cli_as


def _add_host(lab: Lab, host: Any, name: str) -> None:
    """root (an admin, the bed's own login) adds a bed host over the socket."""
    client = lab.client()
    try:
        client.onboard(name, address=host.address, port=host.port, user=host.user,
                       key_path=host.key_path, accept_new_host_key=True)  # fmt: skip
    finally:
        client.close()


def _key_line(lab: Lab) -> str:
    client = lab.client()
    try:
        return client.lab_key()
    finally:
        client.close()


def _wait(cond: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or cond}")


def test_hosts_check_tells_whether_a_user_can_be_reached(
    lab: Lab, lab_bed: Any, user_keys: Any
) -> None:
    h = lab_bed(1)[0]
    _add_host(lab, h, "gpu1")
    out = as_user("carol", _cli_as(lab.socket, "hosts", "check", "gpu1"))
    assert out["code"] == 1, out
    assert "carol cannot run jobs on gpu1" in out["out"]
    assert "~carol/.ssh/authorized_keys" in out["out"], out["out"]
    user_keys("carol", _key_line(lab))
    out = as_user("carol", _cli_as(lab.socket, "hosts", "check", "gpu1", "--json"))
    assert out["code"] == 0, out
    got = json.loads(out["out"])
    assert got["ok"] and got["user"] == "carol" and got["how"] == "lab key"
    assert any("python3" in line and " ok " in line for line in got["lines"])
    # recorded: the admin sees carol's record; carol cannot check bob's login
    records = lab.client().logins("*")
    assert [(r["host"], r["user"], r["ok"]) for r in records if r["user"] == "carol"] == [
        ("gpu1", "carol", 1)
    ]
    out = as_user("carol", _cli_as(lab.socket, "hosts", "logins", "--json"))
    assert [(r["host"], r["user"], r["ok"]) for r in json.loads(out["out"])] == [
        ("gpu1", "carol", 1)
    ]
    out = as_user("carol", _cli_as(lab.socket, "hosts", "logins", "--all"))
    assert out["code"] == 1 and "only admins" in out["out"], out
    out = as_user("carol", _cli_as(lab.socket, "hosts", "check", "gpu1", "--user", "bob"))
    assert out["code"] == 1 and "only admins" in out["out"], out
    # an admin checks anyone: bob has no key
    out = as_user("labadmin", _cli_as(lab.socket, "hosts", "check", "gpu1", "--user", "bob"))
    assert out["code"] == 1 and "bob cannot run jobs on gpu1" in out["out"], out


def _log(sock: str, user: str, job: int) -> str:
    def read() -> str:
        client = LabClient(sock)
        try:
            return "".join(client.read_log(job))
        finally:
            client.close()

    return str(as_user(user, read))


def test_each_job_runs_as_its_submitter_with_their_home(
    lab: Lab, lab_bed: Any, user_keys: Any, lab_homes: dict[str, Path]
) -> None:
    h = lab_bed(1)[0]
    _add_host(lab, h, "gpu1")
    line = _key_line(lab)
    user_keys("alice", line)
    user_keys("bob", line)
    cmd = "id -un; echo $HOME; sleep 4"
    alice_job = as_user("alice", client_call(lab.socket, "submit", command=cmd))
    bob_job = as_user("bob", client_call(lab.socket, "submit", command=cmd))
    client = lab.client()

    def states() -> list[str]:
        return [client.get_job(j)["state"] for j in (alice_job, bob_job)]

    _wait(lambda: states() == ["running", "running"], what="both jobs running at once")
    _wait(lambda: states() == ["succeeded", "succeeded"], what="both jobs done")
    assert client.get_job(alice_job)["host"] == client.get_job(bob_job)["host"] == "gpu1"
    assert _log(lab.socket, "alice", alice_job) == f"alice\n{lab_homes['alice']}\n"
    assert _log(lab.socket, "bob", bob_job) == f"bob\n{lab_homes['bob']}\n"
    # the wrapper, the job directory and the logs live in the owner's home, owned by them
    jobs = lab_homes["alice"] / ".lepton" / "jobs"
    (attempt,) = [d for d in jobs.iterdir() if d.name.startswith(f"{alice_job}-")]
    assert attempt.stat().st_uid == pwd.getpwnam("alice").pw_uid
    assert (attempt / "stdout").stat().st_uid == pwd.getpwnam("alice").pw_uid


def test_a_user_without_the_lab_key_is_not_placed_and_told_why(
    lab: Lab, lab_bed: Any, user_keys: Any
) -> None:
    h = lab_bed(1)[0]
    _add_host(lab, h, "gpu1")
    job = as_user("carol", client_call(lab.socket, "submit", command="id -un"))
    client = lab.client()
    want = (
        "carol cannot log in to gpu1 with the lab key: add the line from `lepton-tui keys "
        "show` to ~carol/.ssh/authorized_keys"
    )
    _wait(lambda: client.get_job(job)["reason"] == want, what="the unreachable reason")
    (tried,) = [r for r in client.logins("*") if r["user"] == "carol"]
    assert not tried["ok"] and "refused" in tried["error"]
    time.sleep(1)  # five more ticks: still queued, never launched, not tried again
    assert client.get_job(job)["state"] == "queued"
    assert [r for r in client.logins("*") if r["user"] == "carol"] == [tried]
    assert client.show_job(job)["attempts"] == []
    # carol adds the key and checks: the service knows at once, and her job runs as her
    user_keys("carol", _key_line(lab))
    out = as_user("carol", _cli_as(lab.socket, "hosts", "check", "gpu1"))
    assert out["code"] == 0, out
    _wait(lambda: client.get_job(job)["state"] == "succeeded", what="carol's job done")
    assert _log(lab.socket, "carol", job) == "carol\n"


def test_a_tick_polls_once_per_host_and_user_with_live_attempts(
    lab_bed: Any, user_keys: Any, tmp_path: Path
) -> None:
    from lepton_tui.dispatch.hostpool import HostPool
    from lepton_tui.dispatch.loop import Dispatcher
    from lepton_tui.labkey import authorized_keys_line, ensure_lab_key
    from lepton_tui.service import Service

    busy, idle = lab_bed(2)
    svc = Service.open(tmp_path / "state")
    key, _ = ensure_lab_key(svc.home)
    for user in ("alice", "bob"):
        user_keys(user, authorized_keys_line(svc.home))
    svc.known_hosts.write_text(Path(busy.known_hosts_path).read_text())
    for name, h in (("gpu1", busy), ("gpu2", idle)):
        svc.add_host(name, address=h.address, port=h.port, user=h.user, key_path=h.key_path)
    svc.set_draining("gpu2", True)  # polled through its own login, never placed on
    jobs = [
        Service(svc.ledger, svc.home, user).submit(command="sleep 60", cpus="0.1")
        for user in ("alice", "alice", "bob")
    ]
    d = Dispatcher(svc, pool=HostPool(svc.known_hosts, lab_key=key), poll_timeout_s=15)
    assert d.acquire()
    try:
        _wait(lambda: d.tick() and all(svc.get_job(j)["state"] == "running" for j in jobs),
              what="every job running")  # fmt: skip
        trips = [d.tick().round_trips for _ in range(3)]
        # gpu1: one as alice (her two attempts) and one as bob; gpu2: one through its login
        assert trips == [3, 3, 3]
        owners = {(r["host"], r["user"]) for r in svc.ledger.query(
            "SELECT a.host, j.user FROM attempts a JOIN jobs j ON j.id = a.job_id "
            "WHERE a.state = 'running'")}  # fmt: skip
        assert owners == {("gpu1", "alice"), ("gpu1", "bob")}
        svc.cancel(jobs)
        _wait(lambda: d.tick() and all(svc.get_job(j)["state"] == "cancelled" for j in jobs),
              what="every job cancelled")  # fmt: skip
    finally:
        d.close()
        svc.close()


def test_a_sudo_host_starts_jobs_as_their_owner_through_the_documented_rule(
    lab: Lab, lab_bed: Any, user_keys: Any, lab_homes: dict[str, Path]
) -> None:
    if shutil.which("sudo") is None:
        pytest.skip("sudo is not installed (Debian's sudo package)")
    h = lab_bed(1)[0]
    user_keys("labadmin", _key_line(lab))  # the host's own login: labadmin, with the lab key
    rule = Path(f"/etc/sudoers.d/lepton-test-{os.getpid()}")
    rule.write_text("labadmin ALL=(alice) NOPASSWD: /usr/bin/python3 -I -S -\n")  # README's rule
    rule.chmod(0o440)
    try:
        # an admin's `hosts add` over the socket logs in with the lab key as themselves
        out = as_user("labadmin", _cli_as(lab.socket, "hosts", "add", "gpu1", "--address",
                                          h.address, "--port", str(h.port),
                                          "--accept-new-host-key"))  # fmt: skip
        assert out["code"] == 0, out
        client = lab.client()
        assert client.get_host("gpu1")["user"] == "labadmin"
        out = as_user("labadmin", _cli_as(lab.socket, "hosts", "run-as", "gpu1", "sudo"))
        assert out["code"] == 0, out
        # alice has no key of the lab's: sudo starts her job as her
        job = as_user("alice", client_call(lab.socket, "submit", command="id -un; echo $HOME"))
        try:
            _wait(lambda: client.get_job(job)["state"] == "succeeded", what="alice's job done")
        except AssertionError:
            raise AssertionError(
                f"{client.show_job(job)}\n{client.logins('*')}\n{client.get_host('gpu1')}\n"
                + (lab.root / "serve.log").read_text()[-4000:]
            ) from None
        assert _log(lab.socket, "alice", job) == f"alice\n{lab_homes['alice']}\n"
        # the rule does not cover bob: his job waits and says why
        job = as_user("bob", client_call(lab.socket, "submit", command="id -un"))
        want = "the lab service cannot start jobs as bob on gpu1 with sudo"
        _wait(lambda: want in (client.get_job(job)["reason"] or ""), what="bob's reason")
        assert client.get_job(job)["state"] == "queued"
    finally:
        rule.unlink()


def test_hosts_check_in_personal_mode_checks_the_hosts_own_login(
    ssh_hosts: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from lepton_tui.cli import cli
    from lepton_tui.service import Service

    monkeypatch.setenv("LEPTON_SOCKET", "")  # personal mode
    h = ssh_hosts[0]
    svc = Service.open(tmp_path / "home")
    svc.known_hosts.write_text(Path(h.known_hosts_path).read_text())
    svc.add_host("gpu1", address=h.address, port=h.port, user=h.user, key_path=h.key_path)
    svc.close()
    home = ["--home", str(tmp_path / "home")]
    res = CliRunner().invoke(cli, [*home, "hosts", "check", "gpu1"])
    assert res.exit_code == 0, res.output
    assert f"{h.user} can run jobs on gpu1 (host login)" in res.output
    res = CliRunner().invoke(cli, [*home, "hosts", "check", "gpu1", "--user", "nobody"])
    assert res.exit_code == 2 and "--user is for lab mode" in res.output, res.output
    res = CliRunner().invoke(cli, [*home, "hosts", "check", "gpu9"])
    assert res.exit_code != 0 and "gpu9" in res.output


def test_the_local_host_runs_only_the_service_accounts_jobs(lab: Lab) -> None:
    from tests.lab.test_cli import _add_this_machine

    _add_this_machine(lab)  # taken into the lab from a personal ledger
    client = lab.client()
    mine = client.submit(command="id -un")
    job = as_user("alice", client_call(lab.socket, "submit", command="id -un"))
    _wait(lambda: client.get_job(mine)["state"] == "succeeded", what="root's job done")
    want = "here runs jobs only as the service account: an admin adds the login node over SSH"
    _wait(lambda: client.get_job(job)["reason"] == want, what="alice's reason")
    assert client.get_job(job)["state"] == "queued"


def test_a_refused_launch_moves_the_job_on_and_leaves_the_host_up(
    lab: Lab, lab_bed: Any, user_keys: Any, lab_homes: dict[str, Path]
) -> None:
    h = lab_bed(1)[0]
    _add_host(lab, h, "gpu1")
    user_keys("alice", _key_line(lab))
    out = as_user("alice", _cli_as(lab.socket, "hosts", "check", "gpu1"))
    assert out["code"] == 0, out
    (lab_homes["alice"] / ".ssh" / "authorized_keys").write_text("")  # the key taken out
    job = as_user("alice", client_call(lab.socket, "submit", command="id -un"))
    client = lab.client()
    want = (
        "alice cannot log in to gpu1 with the lab key: add the line from `lepton-tui keys "
        "show` to ~alice/.ssh/authorized_keys"
    )
    _wait(lambda: client.get_job(job)["reason"] == want, what="alice's reason")
    (attempt,) = client.show_job(job)["attempts"]
    assert attempt["state"] == "lost" and "launch refused" in attempt["reason"]
    assert attempt["fenced_at"] is not None  # nothing reached the host: nothing to stop
    host = client.get_host("gpu1")
    assert host["admin_state"] == "active" and host["state"] == "up"
