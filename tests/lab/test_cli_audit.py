"""CLI commands found broken in lab mode by issue 16's audit (each run as a lab user would, through
a real `serve --socket`): they now go through the service, or say what to do, and never open a
ledger of their own."""

from __future__ import annotations

import json
from pathlib import Path

from tests.lab.conftest import Lab, as_user
from tests.lab.test_cli import _cli_as, _lepton

PINNED = "SHA256:" + "A" * 43


def test_hosts_add_no_connect_goes_through_the_socket(lab: Lab, tmp_path: Path) -> None:
    personal = tmp_path / "personal"
    out = as_user("alice", _cli_as(lab.socket, "hosts", "ls"))
    assert out["code"] == 0 and "--local" not in out["out"] and "--address" in out["out"], out
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
