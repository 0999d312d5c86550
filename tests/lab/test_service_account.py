"""The lab service as a lab runs it: `serve --socket` as its own system account (not root), from
an install every account can execute (tests/lab/venvbed.py), its state private to it."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import ADMIN_GROUP, Lab, UserError, as_user, client_call
from tests.lab.test_cli import _cli_as
from tests.lab.test_run_as import _log, _wait


@dataclass
class AccountLab(Lab):
    """A lab service started as `account` (setpriv: uid, gid and groups dropped, then exec, so
    the process kill -9 hits is the daemon itself) from the world-readable install `venv`."""

    account: str = ""
    venv: Path = field(default_factory=Path)

    def command(self) -> tuple[list[str], dict[str, str]]:
        info = pwd.getpwnam(self.account)
        argv = ["setpriv", f"--reuid={info.pw_uid}", f"--regid={info.pw_gid}", "--init-groups",
                str(self.venv / "bin" / "lepton-tui"), "--home", str(self.state), "serve",
                "--socket", self.socket, "--tick", str(self.tick)]  # fmt: skip
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.state),
               "USER": self.account, "LOGNAME": self.account, "LANG": "C.UTF-8"}  # fmt: skip
        return argv, env


@pytest.fixture
def account_lab(
    lab_users: Any, service_account: pwd.struct_passwd, world_venv: Path
) -> Iterator[AccountLab]:
    """The lab service running as the service account: its state directory 0700 and its own,
    its socket in a 0755 directory of its own under a 0711 one; admin_group set by the account."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is missing: install Debian's util-linux")
    root = Path(tempfile.mkdtemp(prefix="lepton-svclab-", dir="/tmp"))
    os.chmod(root, 0o711)
    state, run = root / "state", root / "run"
    for path, mode in ((state, 0o700), (run, 0o755)):
        path.mkdir(mode=mode)
        os.chmod(path, mode)
        os.chown(path, service_account.pw_uid, service_account.pw_gid)
    lab = AccountLab(root=root, socket=str(run / "lab.sock"), state=state, start_timeout=60,
                     account=service_account.pw_name, venv=world_venv)  # fmt: skip
    try:
        lab.start()  # inside: a start that times out still stops the account's daemon
        as_user(lab.account, client_call(lab.socket, "set_setting", "admin_group", ADMIN_GROUP))
        yield lab
    finally:
        lab.stop()
        shutil.rmtree(root, ignore_errors=True)


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def _mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_the_service_account_owns_the_ledger_and_key_and_is_the_admin(
    account_lab: AccountLab,
) -> None:
    lab = account_lab
    uid = pwd.getpwnam(lab.account).pw_uid
    assert lab.proc is not None and _uid_of(lab.proc.pid) == uid  # not root
    ledger, key = lab.state / "ledger.db", lab.state / "lab_key"
    # the ledger and the lab key (made on the first start) are the account's, readable by nobody
    # else; alice cannot open the ledger
    assert (ledger.stat().st_uid, _mode(ledger)) == (uid, "0o600")
    assert (key.stat().st_uid, _mode(key)) == (uid, "0o600")
    assert (lab.state.stat().st_uid, _mode(lab.state)) == (uid, "0o700")
    with pytest.raises(UserError) as denied:
        as_user("alice", lambda: len(ledger.read_bytes()))
    assert denied.value.kind == "PermissionError"
    # the service account is an admin when it calls; alice is not, labadmin (admin_group) is
    who = {u: as_user(u, client_call(lab.socket, "call", "whoami"))
           for u in (lab.account, "alice", "labadmin")}  # fmt: skip
    assert {u: (w["user"], w["uid"], w["admin"]) for u, w in who.items()} == {
        lab.account: (lab.account, uid, True),
        "alice": ("alice", pwd.getpwnam("alice").pw_uid, False),
        "labadmin": ("labadmin", pwd.getpwnam("labadmin").pw_uid, True),
    }


def test_a_non_root_service_runs_alices_job_as_alice_and_survives_kill_9(
    account_lab: AccountLab, lab_bed: Any, user_keys: Any, lab_homes: dict[str, Path]
) -> None:
    lab = account_lab
    h = lab_bed(1)[0]
    root_client = lab.client()
    line = root_client.lab_key()
    key_before = (lab.state / "lab_key").read_bytes()
    for user in ("labadmin", "alice"):
        user_keys(user, line)
    # labadmin adds the host over the socket: the service logs in as labadmin with its lab key
    out = as_user("labadmin", _cli_as(lab.socket, "hosts", "add", "gpu1", "--address",
                                      h.address, "--port", str(h.port),
                                      "--accept-new-host-key"))  # fmt: skip
    assert out["code"] == 0, out
    job = as_user("alice", client_call(lab.socket, "submit", command="id -un; echo $HOME"))
    try:
        _wait(lambda: root_client.get_job(job)["state"] == "succeeded", what="alice's job done")
    except AssertionError:
        raise AssertionError(
            f"{root_client.show_job(job)}\n" + (lab.root / "serve.log").read_text()[-4000:]
        ) from None
    assert _log(lab.socket, "alice", job) == f"alice\n{lab_homes['alice']}\n"
    # a job queued when the daemon is killed -9 is there and runs after the restart, once
    as_user("labadmin", client_call(lab.socket, "set_draining", "gpu1", True))
    queued = as_user("alice", client_call(lab.socket, "submit", command="id -un"))
    assert root_client.get_job(queued)["state"] == "queued"
    root_client.close()
    lab.kill9()
    lab.start()
    assert lab.proc is not None and _uid_of(lab.proc.pid) == pwd.getpwnam(lab.account).pw_uid
    assert (lab.state / "lab_key").read_bytes() == key_before  # the same key: users keep theirs
    as_user("labadmin", client_call(lab.socket, "set_draining", "gpu1", False))
    client = lab.client()
    _wait(lambda: client.get_job(queued)["state"] == "succeeded", what="the queued job done")
    assert _log(lab.socket, "alice", queued) == "alice\n"
    assert len(client.show_job(queued)["attempts"]) == 1
    everything = client.list_jobs(all_states=True)
    assert sorted(j["id"] for j in everything) == [job, queued]  # none lost, none doubled
    client.close()
