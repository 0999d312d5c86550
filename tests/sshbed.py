"""The loopback SSH test bed: real OpenSSH `sshd` instances on 127.0.0.2, .3 and .4.

`sshbed` (session-scoped) starts them once, each with its own generated ed25519 host key,
config, PidFile and log in a temporary directory, and an authorized client key shared by all;
`sshbed(n)` returns the first n hosts, restarting any that a test stopped. Each host has its own
`root_dir` because the three "hosts" are one machine and one user. Usable without pytest
(`SSHBed(path)`), e.g. by `bench/ssh.py`.

Without sshd the fixture fails, unless LEPTON_ALLOW_NO_SSHD=1 (then it skips).
"""

from __future__ import annotations

import atexit
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from inventory.hostspec import HostSpec

ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
START_TIMEOUT_S = 10.0


def find_sshd() -> str | None:
    """The sshd binary, or None."""
    for candidate in (shutil.which("sshd"), "/usr/sbin/sshd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lepton-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@dataclass
class SSHHost:
    """One sshd instance and everything a test needs to reach it."""

    name: str
    address: str
    port: int
    key_path: str
    known_hosts_path: str
    root_dir: str
    dir: Path
    sshd: str
    user: str = field(default_factory=getpass.getuser)
    pid: int | None = None
    _proc: subprocess.Popen | None = None

    @property
    def host_key_path(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def log_path(self) -> Path:
        return self.dir / "sshd.log"

    @property
    def home(self) -> Path:
        """The login's home directory on this host (sshd sets HOME to it)."""
        return self.dir / "home"

    @property
    def host_public_key_line(self) -> str:
        """`ssh-ed25519 AAAA...` of this host."""
        parts = (self.dir / "ssh_host_ed25519_key.pub").read_text().split()
        return f"{parts[0]} {parts[1]}"

    def known_hosts_line(self) -> str:
        """This host's line for a known_hosts file."""
        return f"[{self.address}]:{self.port} {self.host_public_key_line}\n"

    def spec(self, **overrides: object) -> HostSpec:
        """The HostSpec that reaches this host (fields overridable)."""
        values: dict = dict(
            name=self.name,
            address=self.address,
            port=self.port,
            user=self.user,
            key_path=self.key_path,
            transport="ssh",
            root_dir=self.root_dir,
        )
        values.update(overrides)
        return HostSpec(**values)

    def _write_config(self) -> Path:
        config = self.dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {self.address}",
                    f"HostKey {self.host_key_path}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                    "UsePAM no",
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PrintMotd no",
                    "UseDNS no",
                    "MaxStartups 100",
                    "MaxSessions 100",
                    "ClientAliveInterval 0",
                    "Subsystem sftp internal-sftp",
                    # Each loopback host gets a home of its own, as separate machines would.
                    # It also keeps root's ~/.bashrc out: there it runs `pyenv init`, whose
                    # rehash lock makes concurrent logins wait and print to stderr. Should a
                    # shell still reach pyenv, bound its wait.
                    f"SetEnv HOME={self.home} PYENV_REHASH_TIMEOUT=2",
                    "",
                ]
            )
        )
        return config

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start sshd (same port, same keys) and wait for "Server listening" in its log."""
        if self.running:
            return
        clear_stale_pyenv_lock()
        self.home.mkdir(mode=0o700, exist_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True) if os.geteuid() == 0 else None
        config = self._write_config()
        self.log_path.write_text("")
        self._proc = subprocess.Popen(
            [self.sshd, "-D", "-e", "-f", str(config), "-E", str(self.log_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.pid = self._proc.pid
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if "Server listening" in self.log_path.read_text():
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.02)
        log = self.log_path.read_text().strip()
        self.stop()
        raise RuntimeError(
            f"sshd for {self.name} did not start on {self.address}:{self.port}: {log}"
        )

    def kill_sessions(self) -> int:
        """SIGKILL this sshd's per-connection processes: every client connection drops."""
        import psutil

        if not self.running or self.pid is None:
            return 0
        killed = 0
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return 0
        for child in children:
            try:
                if child.name().startswith("sshd"):
                    child.send_signal(signal.SIGKILL)
                    killed += 1
            except psutil.NoSuchProcess:
                pass
        return killed

    def _signal_all(self, sig: signal.Signals) -> None:
        import psutil

        if self.pid is None:
            return
        try:
            procs = [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in procs:
            try:
                if proc.name().startswith("sshd"):
                    proc.send_signal(sig)
            except psutil.NoSuchProcess:
                pass

    def freeze(self) -> None:
        """SIGSTOP sshd and its sessions: the host hangs (connections open, nothing answers)."""
        self._signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT what `freeze` stopped."""
        self._signal_all(signal.SIGCONT)
        clear_stale_pyenv_lock()

    def stop(self, kill_sessions: bool = True) -> None:
        """Stop sshd by pid (and, by default, drop its open connections)."""
        if kill_sessions:
            self.kill_sessions()
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
        self._proc = None
        self.pid = None

    def write_known_hosts(self, path: Path, trusted: bool = True, wrong_key: bool = False) -> Path:
        """A known_hosts file that trusts this host (default), is empty, or holds a wrong key."""
        path = Path(path)
        if wrong_key:
            other = path.parent / f"{path.name}.otherkey"
            if not other.exists():
                _keygen(other)
            pub = Path(f"{other}.pub").read_text().split()
            path.write_text(f"[{self.address}]:{self.port} {pub[0]} {pub[1]}\n")
        else:
            path.write_text(self.known_hosts_line() if trusted else "")
        return path


def clear_stale_pyenv_lock(max_age_s: float = 10.0) -> None:
    """Remove a pyenv rehash lock left by a killed shell (test machines only).

    Root's ~/.bashrc here runs `pyenv init`, whose rehash takes `shims/.pyenv-shim` as a lock;
    a login shell killed mid-rehash (as the failure tests do to sshd sessions) leaves it behind,
    and every later SSH exec then waits PYENV_REHASH_TIMEOUT for it.
    """
    lock = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "shims" / ".pyenv-shim"
    try:
        if time.time() - lock.stat().st_mtime > max_age_s:
            lock.unlink()
    except OSError:
        pass


class SSHBed:
    """Up to three loopback sshd hosts (h2, h3, h4) sharing one client key and known_hosts."""

    def __init__(self, base: Path) -> None:
        sshd = find_sshd()
        if sshd is None:
            raise FileNotFoundError("sshd not found (install Debian's openssh-server)")
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o700)
        self.client_key = self.base / "client_ed25519"
        _keygen(self.client_key)
        self.known_hosts = self.base / "known_hosts"
        self.hosts: list[SSHHost] = []
        for address in ADDRESSES:
            name = "h" + address.rsplit(".", 1)[1]
            d = self.base / name
            d.mkdir(mode=0o700)
            _keygen(d / "ssh_host_ed25519_key")
            shutil.copy(f"{self.client_key}.pub", d / "authorized_keys")
            self.hosts.append(
                SSHHost(
                    name=name,
                    address=address,
                    port=_free_port(address),
                    key_path=str(self.client_key),
                    known_hosts_path=str(self.known_hosts),
                    root_dir=str(d / "lepton"),
                    dir=d,
                    sshd=sshd,
                )
            )
        self.known_hosts.write_text("".join(h.known_hosts_line() for h in self.hosts))
        atexit.register(self.close)  # even if the session's finalizer never runs

    def __call__(self, n: int = 3) -> list[SSHHost]:
        """The first `n` hosts, each started (again) if it is not running."""
        if not 1 <= n <= len(self.hosts):
            raise ValueError(f"the test bed has 1 to {len(self.hosts)} hosts")
        for host in self.hosts[:n]:
            if not host.running:
                try:
                    host.start()
                except RuntimeError:  # the port was taken meanwhile: move to a fresh one
                    host.port = _free_port(host.address)
                    host.start()
                    self.known_hosts.write_text("".join(h.known_hosts_line() for h in self.hosts))
        return self.hosts[:n]

    def __iter__(self) -> Iterator[SSHHost]:
        return iter(self(len(self.hosts)))

    def close(self) -> None:
        """Stop every sshd by pid."""
        for host in self.hosts:
            host.stop()


@pytest.fixture(scope="session")
def sshbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHBed]:
    """Real sshd hosts on 127.0.0.2/.3/.4: `sshbed(n)` -> list[SSHHost]."""
    if find_sshd() is None:
        message = "sshd is missing: install Debian's openssh-server (scripts/test does it)"
        if os.environ.get("LEPTON_ALLOW_NO_SSHD") == "1":
            pytest.skip(message)
        pytest.fail(message + " or set LEPTON_ALLOW_NO_SSHD=1 to skip SSH tests")
    bed = SSHBed(tmp_path_factory.mktemp("sshbed"))
    try:
        yield bed
    finally:
        bed.close()


@pytest.fixture
def ssh_hosts(sshbed: SSHBed) -> list[SSHHost]:
    """All three test bed hosts, running."""
    return sshbed(3)


__all__ = ["SSHBed", "SSHHost", "find_sshd", "ssh_hosts", "sshbed"]
