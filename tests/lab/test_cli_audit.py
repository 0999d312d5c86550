"""CLI commands found broken in lab mode by issue 16's audit (each run as a lab user would, through
a real `serve --socket`): they now go through the service, or say what to do, and never open a
ledger of their own."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.lab.conftest import Lab, as_user, client_call
from tests.lab.test_cli import _add_this_machine, _cli_as, _lepton

PINNED = "SHA256:" + "A" * 43


def test_hosts_add_no_connect_goes_through_the_socket(lab: Lab, tmp_path: Path) -> None:
    personal = tmp_path / "personal"
    out = as_user("alice", _cli_as(lab.socket, "hosts", "ls"))
    assert out["code"] == 0 and "--local" not in out["out"] and "--address" in out["out"], out
    assert "ADDRESS" not in out["out"], out  # the hint alone, not an empty table's header
    out = as_user("alice", _cli_as(lab.socket, "hosts", "add", "gpu-b", "--address",
                                   "127.0.0.9", "--no-connect"))  # fmt: skip
    assert out["code"] == 1 and "only admins may add hosts" in out["out"], out
    res = _lepton(lab.socket, "hosts", "add", "gpu-b", "--address", "127.0.0.9", "--no-connect",
                  "--fingerprint", PINNED, home=personal)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "added host gpu-b (ssh, not checked)" in res.stdout
    host = lab.client().get_host("gpu-b")
    # it logs in as `hosts add` would: the lab key, as the admin who added it
    assert host["user"] == "root" and host["key_path"] == str(lab.state / "lab_key")
    assert host["host_key_fingerprint"] == PINNED
    res = _lepton(lab.socket, "hosts", "add", "gpu-c", "--address", "127.0.0.9", "--no-connect",
                  "--fingerprint", "nonsense", home=personal)  # fmt: skip
    assert res.returncode == 2 and "not a SHA256 fingerprint" in res.stderr
    assert [h["name"] for h in lab.client().list_hosts()] == ["gpu-b"]
    assert not personal.exists()


def test_autopilot_state_is_read_through_the_socket(lab: Lab) -> None:
    out = as_user("alice", _cli_as(lab.socket, "autopilot", "--json"))
    assert out["code"] == 0, out
    state = json.loads(out["out"])
    assert state["policy"] == lab.client().autopilot_summary()["policy"]
    out = as_user("bob", _cli_as(lab.socket, "autopilot"))
    assert out["code"] == 0 and out["out"].startswith("policy "), out


def test_train_from_ledger_reads_the_labs_history(lab: Lab, tmp_path: Path) -> None:
    from lepton_tui.cli.train import history_workload

    personal = tmp_path / "personal"
    res = _lepton(lab.socket, "train", "--from-ledger", "--steps", "100", "--out",
                  str(tmp_path / "w.npz"), home=personal)  # fmt: skip
    assert res.returncode == 1 and "no host with a known capacity" in res.stderr, res.stderr
    assert not personal.exists()  # the lab's history, not a personal ledger made on the way
    _add_this_machine(lab)
    client = lab.client()
    jobs = [client.submit(command="true", env={"SECRET": "x"}) for _ in range(10)]
    deadline = time.monotonic() + 60
    while {client.get_job(j)["state"] for j in jobs} != {"succeeded"}:
        assert time.monotonic() < deadline, [client.get_job(j)["state"] for j in jobs]
        time.sleep(0.2)
    history = as_user("alice", client_call(lab.socket, "training_history"))
    assert sorted(r["id"] for r in history["runs"]) == jobs
    assert not {"command", "env"} & set(history["runs"][0])  # requests and times only
    workload = history_workload(history)
    assert len(workload.jobs) == 10 and [n.id for n in workload.nodes] == ["here"]


def test_the_labs_webhook_and_notify_command_are_admins_only(lab: Lab) -> None:
    # a Slack-style webhook URL, or a command holding a token, works as a password: a user who
    # read it could post as the lab
    root = lab.client()
    for key, value in (("notify_webhook_hosts", "http://localhost"),
                       ("notify_webhook_internal_hosts", "localhost"),
                       ("notify_webhook", "http://localhost:9/hooks/s3cret"),
                       ("notify_command", "curl -H 'token: s3cret' https://chat")):  # fmt: skip
        root.set_setting(key, value)
    for args in (("settings", "get", "notify_webhook"), ("settings", "get", "notify_command"),
                 ("settings", "ls", "--json"), ("events", "--json")):  # fmt: skip
        out = as_user("alice", _cli_as(lab.socket, *args))
        assert out["code"] == 0 and "s3cret" not in out["out"], out
    out = as_user("alice", _cli_as(lab.socket, "settings", "get", "notify_webhook"))
    assert out["out"].strip() == "(set; only admins see it)"
    assert json.loads(as_user("alice", _cli_as(lab.socket, "settings", "ls", "--json"))["out"])[
        "notify_webhook_hosts"] == "http://localhost"  # fmt: skip
    out = as_user("labadmin", _cli_as(lab.socket, "settings", "get", "notify_webhook"))
    assert out["out"].strip() == "http://localhost:9/hooks/s3cret"
    out = as_user("labadmin", _cli_as(lab.socket, "events", "--json"))
    assert "s3cret" in out["out"]
    # a user still sets their own webhook (checked against the lab's hosts, which they may read)
    prefs = as_user("alice", client_call(lab.socket, "set_notify_prefs",
                                         webhook="http://localhost:9/alice"))  # fmt: skip
    assert prefs["webhook"] == "http://localhost:9/alice"


def test_only_root_sets_the_notify_command_in_lab_mode(lab: Lab) -> None:
    # the command runs as the service account, which holds the lab key (a login as every user
    # on every host): an admin-group member who set it would become any user
    out = as_user("labadmin", _cli_as(lab.socket, "settings", "set", "notify_command", "id"))
    assert out["code"] == 1 and "only root sets notify_command" in out["out"], out
    assert not lab.client().settings().get("notify_command")
    out = as_user("labadmin", _cli_as(lab.socket, "settings", "set", "tick_s", "1"))
    assert out["code"] == 0, out  # other settings stay the admins'
    lab.client().set_setting("notify_command", "id")  # root (here also the service account)
    assert lab.client().settings()["notify_command"] == "id"
