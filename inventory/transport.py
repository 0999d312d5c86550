"""Transports: run an argv on a host, locally (subprocess) or over one pooled SSH connection.

Every call has a timeout; `round_trips` counts exec round trips so tests can check that a tick
costs one per host. The argv is joined with `shlex.join`, so each word reaches the remote shell
quoted: nothing is ever spliced into a shell string.
"""

from __future__ import annotations

import getpass
import logging
import os
import select
import shlex
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import paramiko

from inventory.errors import (
    AuthFailed,
    CommandTimeout,
    HostError,
    HostKeyChanged,
    HostKeyUnknown,
    HostUnreachable,
)
from inventory.hostkeys import fingerprint
from inventory.hostspec import HostSpec


@dataclass(frozen=True)
class CommandResult:
    """What one command returned: exit status and raw output bytes."""

    rc: int
    stdout: bytes
    stderr: bytes


class Transport(Protocol):
    """Runs commands on one host. `run` raises HostError subclasses, never paramiko errors."""

    round_trips: int

    def run(
        self, argv: list[str], stdin: bytes | None = None, timeout: float = 30
    ) -> CommandResult:
        """Run `argv` (no shell), feed `stdin`, wait at most `timeout` seconds."""
        ...

    def close(self) -> None:
        """Release the connection (if any); the transport reconnects on the next call."""
        ...


# paramiko logs a failed handshake (sshd going away mid-connect) from its own thread as ERROR
# lines with a traceback, which read as a crash in `serve`'s log; the same failure reaches the
# caller as one HostError line. Its log goes to a channel of its own, quiet unless turned on.
PARAMIKO_LOG = "inventory.transport.paramiko"
logging.getLogger(PARAMIKO_LOG).setLevel(logging.CRITICAL)

_NOT_SENT = "_lepton_not_sent"


def mark_not_sent(exc: BaseException) -> BaseException:
    """Note on `exc` that its command never reached the host (no connection, no channel)."""
    setattr(exc, _NOT_SENT, True)
    return exc


def never_sent(exc: BaseException | None) -> bool:
    """True when `exc` proves its command never reached the host; any other failure (a dropped
    connection, a timeout) may have run it there."""
    return bool(exc is not None and getattr(exc, _NOT_SENT, False))


class LocalTransport:
    """Runs commands on this machine with subprocess (for the login node as a host)."""

    def __init__(self, name: str = "local") -> None:
        self.name = name
        self.round_trips = 0

    def run(
        self, argv: list[str], stdin: bytes | None = None, timeout: float = 30
    ) -> CommandResult:
        """Run `argv` as a child process; a missing program reads as rc 127, like a shell."""
        self.round_trips += 1
        try:
            proc = subprocess.run(
                argv, input=stdin or b"", capture_output=True, timeout=timeout, check=False
            )
        except FileNotFoundError:
            return CommandResult(127, b"", f"{argv[0]}: command not found\n".encode())
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeout(self.name, f"command did not finish within {timeout:g}s") from exc
        return CommandResult(proc.returncode, proc.stdout, proc.stderr)

    def close(self) -> None:
        """Nothing to release."""


class _LeptonRejectPolicy(paramiko.RejectPolicy):
    """RejectPolicy that says which key was refused, so the user can check its fingerprint."""

    def __init__(self, host: str, pinned_fingerprint: str | None = None) -> None:
        self.host = host
        self.pinned_fingerprint = pinned_fingerprint

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if self.pinned_fingerprint and fingerprint(key) == self.pinned_fingerprint:
            return  # the very key an admin vetted by its fingerprint (hosts add --fingerprint)
        raise HostKeyUnknown(self.host, fingerprint(key), key.get_name())


@dataclass(frozen=True)
class Resolved:
    """Where an SSH host really is after ~/.ssh/config: the values the connection uses."""

    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...]
    proxy_command: str | None


def resolve(spec: HostSpec, ssh_config: Path | None) -> Resolved:
    """Apply ~/.ssh/config (HostName, User, Port, IdentityFile, ProxyCommand) to `spec`.

    Values given explicitly in the spec win; a spec port of 22 counts as "not given".
    """
    assert spec.address is not None
    cfg: dict = {}
    if ssh_config is not None and Path(ssh_config).is_file():
        # ssh takes the first value it finds, so a leading "Host *" block makes explicit spec
        # values win, and %p / %r in ProxyCommand expand to them as they do for `ssh -p -l`.
        first = "".join(
            line
            for line, given in (
                (f"  Port {spec.port}\n", spec.port != 22),
                (f"  User {spec.user}\n", spec.user is not None),
            )
            if given
        )
        text = Path(ssh_config).read_text()
        if first:
            text = f"Host *\n{first}\n{text}"
        cfg = dict(paramiko.SSHConfig.from_text(text).lookup(spec.address))
    hostname = cfg.get("hostname", spec.address)
    port = spec.port if spec.port != 22 else int(cfg.get("port", 22))
    user = spec.user or cfg.get("user") or getpass.getuser()
    if spec.key_path:
        keys: tuple[str, ...] = (os.path.expanduser(spec.key_path),)
    else:
        keys = tuple(os.path.expanduser(p) for p in cfg.get("identityfile", []))
    proxy = cfg.get("proxycommand")
    if proxy and proxy.strip().lower() == "none":
        proxy = None
    return Resolved(hostname, port, user, keys, proxy)


def default_ssh_config() -> Path | None:
    """~/.ssh/config if it exists."""
    path = Path.home() / ".ssh" / "config"
    return path if path.is_file() else None


IDLE_WAKE_S = 30.0


def quiet_transport_thread(transport: paramiko.Transport, wake_s: float) -> None:
    """Let paramiko's reader thread sleep on an idle connection.

    paramiko sets its socket's timeout to `Transport._active_check_timeout` (0.1 s) so that its
    thread wakes to see whether it should stop and whether a keepalive is due: ten wakeups a
    second per idle connection. Once connected (the handshake's own timer has been cancelled),
    a longer timeout loses nothing: data wakes the thread at once, the keepalive is checked at
    each wakeup, and `close_client` wakes it by shutting the socket down.
    """
    sock = transport.sock
    if hasattr(sock, "settimeout"):
        sock.settimeout(wake_s)


def close_client(client: paramiko.SSHClient) -> None:
    """Close a client and wake its reader thread now (see `quiet_transport_thread`): a plain
    close leaves the thread asleep in recv() until its socket timeout."""
    transport = client.get_transport()
    sock = getattr(transport, "sock", None)
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    client.close()


class ChannelStream:
    """Both ends of a long-lived exec channel: bytes in, lines out (see SSHTransport.open_stream).

    Reads block on paramiko's buffer (a condition variable), never polling. What the remote
    process writes to stderr is drained as replies are read, so it cannot fill the channel's
    window; its last few KiB are kept for error messages.
    """

    def __init__(self, chan: paramiko.Channel, name: str) -> None:
        self.chan = chan
        self.name = name
        self._buf = b""
        self.stderr_tail = b""

    def send(self, data: bytes, deadline: float) -> None:
        """Write `data` to the process's stdin (raises TimeoutError, EOFError or OSError)."""
        self.chan.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            self.chan.sendall(data)
        except paramiko.SSHException as exc:
            raise EOFError(str(exc)) from exc

    def read_line(self, deadline: float) -> bytes:
        """The next line of stdout, without its newline; EOFError when the process has gone,
        TimeoutError at `deadline`."""
        while b"\n" not in self._buf:
            self._drain_stderr()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply in time")
            self.chan.settimeout(left)
            data = self.chan.recv(1 << 16)
            if not data:
                self._drain_stderr()
                raise EOFError("the remote process closed its output")
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _drain_stderr(self) -> None:
        while self.chan.recv_stderr_ready():
            self.stderr_tail = (self.stderr_tail + self.chan.recv_stderr(1 << 16))[-4096:]

    @property
    def alive(self) -> bool:
        """False once the process has ended or closed its output, or the connection is gone."""
        chan = self.chan
        if chan.closed or chan.eof_received or chan.exit_status_ready():
            return False
        return self.connection_alive

    @property
    def connection_alive(self) -> bool:
        """False once the SSH connection under this channel has gone."""
        t = self.chan.get_transport()
        return t is not None and t.is_active()

    def close(self) -> None:
        """Close the channel: the remote process reads end of input and exits."""
        self.chan.close()


class SSHTransport:
    """One pooled paramiko connection to one host, opened lazily and reopened with backoff.

    Host keys are checked with RejectPolicy against lepton's own `known_hosts` only. Auth is by
    key file or the ssh agent, never a password. The socket has TCP_NODELAY (switchable for the
    benchmark) and a keepalive. After a failed connect, calls fail fast with the last reason until
    the backoff delay (doubling from `backoff_initial` to `backoff_max`) has passed.
    """

    def __init__(
        self,
        spec: HostSpec,
        known_hosts: Path,
        connect_timeout: float = 10,
        *,
        ssh_config: Path | None | str = "default",
        keepalive_s: int = 15,
        tcp_nodelay: bool = True,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        pinned_fingerprint: str | None = None,
        persistent_agent: bool = True,
        idle_wake_s: float | None = None,
    ) -> None:
        if spec.transport != "ssh":
            raise ValueError(f"{spec.name}: SSHTransport needs an ssh host")
        self.spec = spec
        self.name = spec.name
        self.known_hosts = Path(known_hosts)
        self.connect_timeout = connect_timeout
        self.ssh_config = default_ssh_config() if ssh_config == "default" else ssh_config
        self.keepalive_s = keepalive_s
        # how often paramiko's reader thread wakes on an idle connection (its default is 10 times
        # a second); the keepalive is sent from those wakeups, so no longer than its interval
        if idle_wake_s is None:
            idle_wake_s = float(keepalive_s) if keepalive_s else IDLE_WAKE_S
        self.idle_wake_s = idle_wake_s
        self.tcp_nodelay = tcp_nodelay
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        # a key missing from known_hosts is still taken when it has this fingerprint
        self.pinned_fingerprint = pinned_fingerprint
        # keep one host agent running on the connection (False: a fresh python3 per call)
        self.persistent_agent = persistent_agent
        self.round_trips = 0
        self.connects = 0
        self.execs = 0  # exec channels opened (one-shot commands and persistent agents)
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()
        self._failures = 0
        self._retry_at = 0.0
        self._last_error: HostError | None = None
        self.resolved: Resolved | None = None  # where the last connect went, after ~/.ssh/config

    # -- connection ------------------------------------------------------------------------
    def _connect(self, timeout: float) -> paramiko.SSHClient:
        r = resolve(self.spec, self.ssh_config)  # type: ignore[arg-type]
        self.resolved = r
        client = paramiko.SSHClient()
        client.set_log_channel(PARAMIKO_LOG)
        if self.known_hosts.exists():
            client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(_LeptonRejectPolicy(self.name, self.pinned_fingerprint))
        sock: socket.socket | paramiko.ProxyCommand
        try:
            if r.proxy_command:
                sock = paramiko.ProxyCommand(r.proxy_command)
            else:
                sock = socket.create_connection((r.hostname, r.port), timeout=timeout)
                if self.tcp_nodelay:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        except OSError as exc:
            raise HostUnreachable(
                self.name,
                f"cannot connect to {r.hostname}:{r.port}: {exc.strerror or exc}; "
                "check that the host is up, sshd runs and the address and port are right",
            ) from exc
        for key_file in r.key_files:
            if not os.access(key_file, os.R_OK):
                sock.close()
                raise AuthFailed(
                    self.name, f"cannot read key file {key_file}; check the --key path"
                )
        try:
            client.connect(
                r.hostname,
                port=r.port,
                username=r.user,
                password=None,
                key_filename=list(r.key_files) or None,
                allow_agent=True,
                look_for_keys=not r.key_files,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                sock=sock,
            )
        except HostError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyChanged(
                self.name, fingerprint(exc.expected_key), fingerprint(exc.key)
            ) from exc
        except paramiko.PasswordRequiredException as exc:
            client.close()
            raise AuthFailed(
                self.name, "the key is encrypted; load it into ssh-agent (ssh-add) instead"
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            keys = ", ".join(r.key_files) or "the agent and default keys"
            raise AuthFailed(
                self.name,
                f"login as {r.user} with {keys} was refused; check the user and that the "
                "key's public half is in that user's ~/.ssh/authorized_keys",
            ) from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            client.close()
            raise HostUnreachable(
                self.name,
                f"SSH handshake with {r.hostname}:{r.port} failed: {exc or type(exc).__name__}; "
                "check that sshd runs there",
            ) from exc
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(self.keepalive_s)
        quiet_transport_thread(transport, self.idle_wake_s)
        self.connects += 1
        return client

    def _ensure(self, timeout: float) -> paramiko.Transport:
        with self._lock:
            if self._client is not None:
                t = self._client.get_transport()
                if t is not None and t.is_active():
                    return t
                close_client(self._client)
                self._client = None
            now = time.monotonic()
            if now < self._retry_at and self._last_error is not None:
                raise self._fail_fast(self._last_error, self._retry_at - now)
            try:
                self._client = self._connect(min(self.connect_timeout, max(timeout, 0.1)))
            except HostError as exc:
                delay = min(self.backoff_max, self.backoff_initial * (2**self._failures))
                self._failures += 1
                self._retry_at = time.monotonic() + delay
                self._last_error = exc
                raise
            self._failures = 0
            self._retry_at = 0.0
            self._last_error = None
            t = self._client.get_transport()
            assert t is not None
            return t

    def _fail_fast(self, err: HostError, wait: float) -> HostError:
        """The last connect error again, saying when the next attempt will be made."""
        if type(err) in (HostUnreachable, AuthFailed):
            return type(err)(self.name, f"{err.reason} (retrying in {wait:.1f}s)")
        return err  # host key errors keep their fingerprints

    def _drop(self) -> None:
        with self._lock:
            if self._client is not None:
                close_client(self._client)
                self._client = None

    def connect(self) -> None:
        """Open the connection now (raises HostError); calls open it lazily otherwise."""
        self._ensure(self.connect_timeout)

    @property
    def connected(self) -> bool:
        """True while the pooled connection is open."""
        c = self._client
        t = c.get_transport() if c is not None else None
        return bool(t is not None and t.is_active())

    @property
    def destination(self) -> str:
        """`user@host:port` as really connected (after ~/.ssh/config), else from the spec."""
        r = self.resolved
        if r is None:
            return self.spec.target
        via = f" via {r.proxy_command.split()[0]}" if r.proxy_command else ""
        return f"{r.user}@{r.hostname}:{r.port}{via}"

    @property
    def server_version(self) -> str | None:
        """The server's SSH version string (e.g. `SSH-2.0-OpenSSH_9.2p1`), once connected."""
        c = self._client
        t = c.get_transport() if c is not None else None
        return t.remote_version if t is not None else None

    def close(self) -> None:
        """Close the pooled connection; the next call reconnects."""
        self._drop()

    # -- commands --------------------------------------------------------------------------
    def note_round_trip(self) -> None:
        """Count one request answered over a channel that stays open (the persistent agent)."""
        with self._lock:
            self.round_trips += 1

    def _open_channel(self, deadline: float, timeout: float) -> paramiko.Channel:
        """A fresh session channel; a stale pooled connection found here is replaced once.

        Every error raised here is marked "never sent": nothing reached the host.
        """
        for attempt in (0, 1):
            try:  # no connection: the command never left this machine
                transport = self._ensure(deadline - time.monotonic())
            except HostError as exc:
                mark_not_sent(exc)
                raise
            try:
                chan = transport.open_session(timeout=max(deadline - time.monotonic(), 0.1))
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self._drop()
                if time.monotonic() >= deadline:  # the host did not answer at all
                    raise mark_not_sent(
                        CommandTimeout(
                            self.name,
                            f"command did not finish within {timeout:g}s (no answer to a "
                            "channel open; the host may be hung or overloaded)",
                        )
                    ) from exc
                if attempt == 1:
                    raise mark_not_sent(
                        HostUnreachable(self.name, f"connection lost: {exc or type(exc).__name__}")
                    ) from exc
                continue
            with self._lock:
                self.execs += 1
            return chan
        raise AssertionError("unreachable")

    def run(
        self, argv: list[str], stdin: bytes | None = None, timeout: float = 30
    ) -> CommandResult:
        """Run `argv` (each word shell-quoted) over the pooled connection.

        A stale pooled connection found while opening the channel is replaced once,
        transparently; a connection lost after the command was sent raises HostUnreachable.
        """
        if not argv:
            raise ValueError("empty argv")
        command = shlex.join(argv)
        deadline = time.monotonic() + timeout
        chan = self._open_channel(deadline, timeout)
        with self._lock:
            self.round_trips += 1
        try:
            return self._exec(chan, command, stdin, deadline, timeout)
        finally:
            chan.close()

    def open_stream(self, argv: list[str], timeout: float = 30) -> ChannelStream:
        """Start `argv` (each word shell-quoted) on an exec channel left open: its stdin and
        stdout become a stream of requests and replies (the persistent host agent). The process
        lives as long as the channel: closing it (or the connection) closes its stdin."""
        if not argv:
            raise ValueError("empty argv")
        deadline = time.monotonic() + timeout
        chan = self._open_channel(deadline, timeout)
        try:
            chan.settimeout(max(deadline - time.monotonic(), 0.1))
            chan.exec_command(shlex.join(argv))
        except (paramiko.SSHException, EOFError, OSError) as exc:
            chan.close()  # the exec was refused or never answered: nothing started there
            why = f"cannot start a command: {exc or type(exc).__name__}"
            raise mark_not_sent(HostUnreachable(self.name, why)) from exc
        return ChannelStream(chan, self.name)

    def _exec(
        self,
        chan: paramiko.Channel,
        command: str,
        stdin: bytes | None,
        deadline: float,
        timeout: float,
    ) -> CommandResult:
        def left() -> float:
            rest = deadline - time.monotonic()
            if rest <= 0:
                raise CommandTimeout(self.name, f"command did not finish within {timeout:g}s")
            return rest

        try:
            chan.settimeout(left())
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out: list[bytes] = []
            err: list[bytes] = []
            while True:
                if chan.recv_ready():
                    out.append(chan.recv(1 << 16))
                elif chan.recv_stderr_ready():
                    err.append(chan.recv_stderr(1 << 16))
                elif chan.eof_received or chan.closed:
                    break
                else:
                    select.select([chan], [], [], min(left(), 1.0))
            while not chan.exit_status_ready():
                if chan.closed and not chan.exit_status_ready():
                    break
                chan.status_event.wait(min(left(), 1.0))
            # late stderr after stdout EOF
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(1 << 16))
            rc = chan.exit_status if chan.exit_status_ready() else -1
        except TimeoutError as exc:
            raise CommandTimeout(self.name, f"command did not finish within {timeout:g}s") from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            self._drop()
            raise HostUnreachable(self.name, f"connection lost during a command: {exc}") from exc
        if rc == -1:
            t = chan.get_transport()
            if t is None or not t.is_active():
                self._drop()
                raise HostUnreachable(self.name, "connection lost during a command")
        return CommandResult(rc, b"".join(out), b"".join(err))


def make_transport(spec: HostSpec, known_hosts: Path, **kwargs: object) -> Transport:
    """The transport a host's spec asks for: LocalTransport or SSHTransport."""
    if spec.transport == "local":
        return LocalTransport(spec.name)
    return SSHTransport(spec, known_hosts, **kwargs)  # type: ignore[arg-type]
