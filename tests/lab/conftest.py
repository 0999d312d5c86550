"""Lab mode with real parts: real Unix users, a real daemon process on a real Unix socket.

The tests run as root (as CI does): a session fixture creates the users alice, bob and carol and
the admin labadmin (in the group named by the `admin_group` setting), and removes them afterwards.
`lab_bed` is the loopback sshd test bed where those users log in with keys in their own
`~/.ssh/authorized_keys` and keep their own HOME (see tests/lab/userbed.py).
Acting as alice is a forked child that drops to alice's uid, gid and groups and then uses the
client code this interpreter has already imported (root's Python is not readable by alice).
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shlex  # noqa: F401 - imported before forking: validate_job imports it lazily
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import lepton_tui.client
import lepton_tui.labd  # noqa: F401 - imported before forking
from lepton_tui.client import LabClient

REPO = Path(__file__).resolve().parents[2]
ADMIN_GROUP = "lepton-labadm"
USERS = {"alice": [], "bob": [], "carol": [], "labadmin": [ADMIN_GROUP]}


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


@pytest.fixture(scope="session")
def lab_users() -> Iterator[dict[str, pwd.struct_passwd]]:
    """alice, bob and labadmin (member of the admin group) as real accounts."""
    if os.geteuid() != 0:
        pytest.skip("lab-mode tests create Unix users: run them as root (as CI does)")
    created_group = False
    try:
        grp.getgrnam(ADMIN_GROUP)
    except KeyError:
        _run("groupadd", ADMIN_GROUP)
        created_group = True
    created: list[str] = []
    for name, groups in USERS.items():
        try:
            pwd.getpwnam(name)
        except KeyError:
            extra = ["-G", ",".join(groups)] if groups else []
            _run("useradd", "-M", "-s", "/bin/sh", *extra, name)
            created.append(name)
        else:  # an existing account: make sure it is in the groups the tests expect
            for group in groups:
                _run("usermod", "-a", "-G", group, name)
    try:
        yield {name: pwd.getpwnam(name) for name in USERS}
    finally:
        for name in created:
            subprocess.run(["userdel", name], capture_output=True)
        if created_group:
            subprocess.run(["groupdel", ADMIN_GROUP], capture_output=True)


@dataclass
class Lab:
    """A lab service process: its socket, its state directory, and how to stop or restart it."""

    root: Path
    socket: str
    state: Path
    proc: subprocess.Popen[bytes] | None = None
    tick: float = 0.2  # the service's dispatch tick (`serve --tick`)
    start_timeout: float = 30.0  # seconds until it must listen

    def command(self) -> tuple[list[str], dict[str, str]]:
        """The `serve --socket` command line and its environment (root, this checkout)."""
        env = {k: v for k, v in os.environ.items() if k not in ("LEPTON_SOCKET", "LEPTON_HOME")}
        env["PYTHONPATH"] = str(REPO)
        argv = [sys.executable, "-m", "lepton_tui", "--home", str(self.state), "serve",
                "--socket", self.socket, "--tick", str(self.tick)]  # fmt: skip
        return argv, env

    def start(self) -> None:
        argv, env = self.command()
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=open(self.root / "serve.log", "ab")
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.root / "serve.log").read_text()
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
                probe.connect(self.socket)
                return
            time.sleep(0.05)
        raise AssertionError("the lab service did not start listening")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def client(self, **kwargs: Any) -> LabClient:
        return LabClient(self.socket, **kwargs)


@pytest.fixture
def lab(lab_users: dict[str, Any]) -> Iterator[Lab]:
    """A running lab service whose socket the lab's users can reach (0711 directory, 0666
    socket) and whose state directory only it can read (0700); admin_group set."""
    root = Path(tempfile.mkdtemp(prefix="lepton-lab-", dir="/tmp"))
    os.chmod(root, 0o711)
    service = Lab(root=root, socket=str(root / "lab.sock"), state=root / "state")
    service.start()
    admin = service.client()
    admin.set_setting("admin_group", ADMIN_GROUP)
    admin.close()
    try:
        yield service
    finally:
        service.stop()
        subprocess.run(["rm", "-rf", str(root)], check=False)


def as_user(name: str, fn: Callable[[], Any]) -> Any:
    """Run `fn` in a child process as Unix user `name` (uid, gid and groups dropped for real);
    return what it returned (JSON-able), or re-raise its error as `UserError`."""
    info = pwd.getpwnam(name)
    groups = os.getgrouplist(name, info.pw_gid)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read_fd)
            os.setgroups(groups)
            os.setgid(info.pw_gid)
            os.setuid(info.pw_uid)
            try:
                out: dict[str, Any] = {"ok": fn()}
            except Exception as exc:  # noqa: BLE001 - sent to the parent
                out = {"error": type(exc).__name__, "message": str(exc),
                       "trace": traceback.format_exc()}  # fmt: skip
            data = json.dumps(out, default=str).encode()
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(data)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert data, f"the child acting as {name} died (status {status})"
    result = json.loads(data)
    if "error" in result:
        raise UserError(result["error"], result["message"], result.get("trace", ""))
    return result["ok"]


class UserError(Exception):
    """An error raised in a child acting as another user: its type name and message."""

    def __init__(self, kind: str, message: str, trace: str = "") -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.trace = trace


def client_call(sock: str, method: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    """A function that makes one LabClient call (for `as_user`)."""

    def call() -> Any:
        client = lepton_tui.client.LabClient(sock)
        try:
            return getattr(client, method)(*args, **kwargs)
        finally:
            client.close()

    return call


from tests.lab.userbed import lab_bed, lab_homes, user_keys  # noqa: E402,F401 - fixtures
from tests.lab.venvbed import service_account, world_venv  # noqa: E402,F401 - fixtures
