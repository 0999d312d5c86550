"""The command line as a client of the lab service: same commands, no ledger of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lepton_tui.cli import cli
from lepton_tui.client import LabClient, configured_socket
from tests.lab.conftest import REPO, Lab, UserError, as_user, client_call


def _lepton(sock: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEPTON_SOCKET": sock, "LEPTON_HOME": str(home), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "lepton_tui", *args], capture_output=True,
                          text=True, timeout=60, env=env)  # fmt: skip


def test_the_cli_is_a_client_and_never_opens_a_ledger(lab: Lab, tmp_path: Path) -> None:
    home = tmp_path / "would-be-personal"
    res = _lepton(lab.socket, "submit", "--env", "K=v", "--", "echo", "hi", home=home)
    assert res.returncode == 0, res.stderr
    job = int(res.stdout)
    res = _lepton(lab.socket, "queue", "--json", home=home)
    assert [j["id"] for j in json.loads(res.stdout)] == [job]
    res = _lepton(lab.socket, "show", str(job), "--json", home=home)
    assert json.loads(res.stdout)["env"] == {"K": "v"}
    res = _lepton(lab.socket, "cancel", str(job), home=home)
    assert res.returncode == 0 and "cancelled" in res.stdout
    res = _lepton(lab.socket, "hosts", "ls", "--json", home=home)
    assert res.returncode == 0 and json.loads(res.stdout) == []
    res = _lepton(lab.socket, "events", "--user", "root", "--json", home=home)
    kinds = {e["kind"] for e in json.loads(res.stdout)}
    assert {"job.submitted", "job.cancelled"} <= kinds or "job.submitted" in kinds
    res = _lepton(lab.socket, "cost", "--json", home=home)  # the service reads its ledger
    assert res.returncode == 0 and json.loads(res.stdout)["rows"] == [], res.stderr
    assert not home.exists()  # no personal ledger was made


def test_the_cli_says_when_the_service_is_down(lab: Lab, tmp_path: Path) -> None:
    lab.stop()
    res = _lepton(lab.socket, "queue", home=tmp_path / "h")
    assert res.returncode == 1
    assert res.stderr.strip() == (
        f"lepton-tui: error: cannot reach the lab service at {lab.socket}: No such file or "
        "directory; is `lepton-tui serve --socket` running?"
    )


def _cli_as(sock: str, *args: str) -> Any:
    """Run the CLI in-process (in a child acting as a user) with the socket configured."""

    def run() -> Any:
        os.environ["LEPTON_SOCKET"] = sock
        res = CliRunner().invoke(cli, list(args))
        return {"code": res.exit_code, "out": res.output}

    return run


def test_users_queue_and_cancel_through_the_cli(lab: Lab) -> None:
    out = as_user("alice", _cli_as(lab.socket, "submit", "--", "sleep", "600"))
    assert out["code"] == 0, out
    job = int(out["out"])
    out = as_user("bob", _cli_as(lab.socket, "queue", "--json"))
    assert [(j["id"], j["user"]) for j in json.loads(out["out"])] == [(job, "alice")]
    out = as_user("bob", _cli_as(lab.socket, "cancel", str(job)))
    assert out["code"] == 1 and "belongs to alice" in out["out"]
    out = as_user("alice", _cli_as(lab.socket, "cancel", str(job)))
    assert out["code"] == 0 and f"job {job} cancelled" in out["out"]
    out = as_user("alice", _cli_as(lab.socket, "events", "--user", "alice", "--json"))
    assert {e["kind"] for e in json.loads(out["out"])} >= {"job.submitted"}
    out = as_user("alice", _cli_as(lab.socket, "settings", "set", "tick_s", "1"))
    assert out["code"] == 1 and "only admins" in out["out"]


def _add_this_machine(lab: Lab) -> None:
    """The service account (root here) adds this machine as a host on the service's own state
    directory (until `hosts add --local` goes over the socket); the service keeps dispatching."""
    env = {**os.environ, "LEPTON_SOCKET": "", "PYTHONPATH": str(REPO)}
    res = subprocess.run(
        [sys.executable, "-m", "lepton_tui", "--home", str(lab.state), "hosts", "add", "here",
         "--local"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr


def test_logs_follow_streams_through_the_socket(lab: Lab) -> None:
    _add_this_machine(lab)
    client = LabClient(lab.socket)
    job = client.submit(command="echo first; sleep 1; echo second")
    # followed from before it starts: the stream waits, then carries both lines as they come
    assert "".join(client.read_log(job, follow=True)) == "first\nsecond\n"
    assert client.get_job(job)["state"] == "succeeded"
    assert "".join(client.read_log(job)) == "first\nsecond\n"


def test_socket_configuration(tmp_path: Path, monkeypatch: Any) -> None:
    config = tmp_path / "client.toml"
    monkeypatch.delenv("LEPTON_SOCKET", raising=False)
    assert configured_socket(config) is None
    config.write_text('socket = "/run/lepton-tui/lab.sock"\n')
    assert configured_socket(config) == "/run/lepton-tui/lab.sock"
    monkeypatch.setenv("LEPTON_SOCKET", "")  # personal mode, whatever the system says
    assert configured_socket(config) is None
    monkeypatch.setenv("LEPTON_SOCKET", "/tmp/x.sock")
    assert configured_socket(config) == "/tmp/x.sock"


def test_the_lab_key_is_made_on_first_start_and_shown_to_users(lab: Lab, tmp_path: Path) -> None:
    key = lab.state / "lab_key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    out = as_user("alice", _cli_as(lab.socket, "keys", "show"))
    assert out["code"] == 0, out
    line = out["out"].strip()
    public = (lab.state / "lab_key.pub").read_text().strip()
    assert line == f"restrict {public}" and line.split()[1] == "ssh-ed25519"
    # a restart keeps the key users already added
    lab.stop()
    lab.start()
    assert (lab.state / "lab_key.pub").read_text().strip() == public
    res = _lepton("", "keys", "show", home=tmp_path / "personal")
    assert res.returncode == 1 and "no lab key" in res.stderr


def test_an_admin_adds_a_host_through_the_socket(lab: Lab, ssh_hosts: Any, tmp_path: Path) -> None:
    h = ssh_hosts[0]
    fields = {"address": h.address, "port": h.port, "user": h.user, "key_path": h.key_path,
              "root_dir": h.root_dir}  # fmt: skip
    with pytest.raises(UserError) as err:  # the service connects nowhere for a non-admin
        as_user("alice", client_call(lab.socket, "onboard", "gpu-a", accept_new_host_key=True,
                                     **fields))  # fmt: skip
    assert err.value.kind == "PermissionDenied"
    res = _lepton(lab.socket, "hosts", "add", "gpu-a", "--address", h.address, "--port",
                  str(h.port), "--user", h.user, "--key", h.key_path, "--root-dir", h.root_dir,
                  "--accept-new-host-key", home=tmp_path / "personal")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "added host gpu-a" in res.stdout
    assert [x["name"] for x in lab.client().list_hosts()] == ["gpu-a"]
    assert lab.client().events(limit=5)[0]["actor"] == "root"
    res = _lepton(lab.socket, "hosts", "add", "login", "--local", home=tmp_path / "personal")
    assert res.returncode == 2 and "service account" in res.stderr
    res = _lepton(lab.socket, "hosts", "drain", "gpu-a", home=tmp_path / "personal")
    assert res.returncode == 0, res.stderr
    assert lab.client().get_host("gpu-a")["admin_state"] == "draining"
    assert not (tmp_path / "personal").exists()


def test_queue_cut_short_and_the_stderr_hint_work_through_the_socket(lab: Lab) -> None:
    # `queue` counts what it left out, and `logs` hints at stderr, through calls the lab
    # service answers (count_jobs, stderr_bytes), not through a ledger the client cannot open
    _add_this_machine(lab)
    client = LabClient(lab.socket)
    job = client.submit(command="echo out; echo oops >&2")
    assert "".join(client.read_log(job, follow=True)) == "out\n"
    assert client.stderr_bytes(job) == len("oops\n")
    sleepers = [client.submit(command="sleep 600") for _ in range(2)]
    out = as_user("alice", _cli_as(lab.socket, "queue", "--all", "--limit", "1"))
    client.cancel(sleepers)  # nothing left running after the test
    assert out["code"] == 0 and "showing 1 of 3 jobs" in out["out"], out
    res = _lepton(lab.socket, "logs", str(job), home=lab.state / "unused")
    assert res.returncode == 0 and res.stdout == "out\n"
    assert f"stderr has 5 bytes: logs {job} --stderr" in res.stderr
    # another user is told nothing of the owner's stderr
    assert as_user("bob", client_call(lab.socket, "stderr_bytes", job)) == 0
