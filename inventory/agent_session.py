"""The persistent host agent: one long-lived `python3` per connection, fed requests over its
exec channel, so a poll costs the host no interpreter start.

The agent's source travels over the channel as it does for a one-shot call (nothing is
installed on the host): a loader given as `python3 -I -S -c LOADER` (one shell-quoted word)
reads a length line and that many bytes of program from stdin, and runs them. The program ends
in `_lepton_serve(version)`, which says hello (its pid and version), then answers one JSON
request per stdin line with one `MARKER{json}` line each. Lines without the marker (a login
script's chatter) are skipped. The agent exits when its stdin closes, that is when its channel
or the connection closes: it lives exactly as long as the connection.

A session is kept per transport object, that is per connection (host and login user), never
per host name. It is started again, transparently, when its process has gone (killed, the
connection dropped and came back) or when the agent's or the wrapper's source changed (their
hash is the version). When the channel cannot be opened (no `python3 -c`, a forced command,
another request on it at that moment), `call` returns None and the caller falls back to the
one-shot exec it always had.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
import weakref
from typing import Any, Protocol, runtime_checkable

from inventory.errors import CommandTimeout, HostUnreachable, RemoteError
from inventory.remote import agent_source, wrapper_source

MARKER = b"@@LEPTON-REPLY@@"
LOADER = (
    "import sys;r=sys.stdin.buffer;exec(compile(r.read(int(r.readline())),'lepton-agent','exec'))"
)
# -I -S: no site packages, no PYTHON* variables (as for the one-shot agent)
AGENT_ARGV = ["python3", "-I", "-S", "-c", LOADER]
# after the persistent agent failed to start on a connection, use one-shot calls this long
RETRY_AFTER_S = 300.0
# operations that only read: asked again once on a fresh agent if the old one died mid-request
READ_ONLY_OPS = frozenset({"probe", "status", "read_log", "preflight"})


class AgentStream(Protocol):
    """Both ends of the agent's channel (inventory.transport.ChannelStream)."""

    @property
    def alive(self) -> bool:
        """False once the agent has gone."""
        ...

    @property
    def connection_alive(self) -> bool:
        """False once the connection under the channel has gone."""
        ...

    def send(self, data: bytes, deadline: float) -> None:
        """Write to the agent's stdin."""
        ...

    def read_line(self, deadline: float) -> bytes:
        """The next stdout line (EOFError when it has gone, TimeoutError at `deadline`)."""
        ...

    def close(self) -> None:
        """Close the channel (the agent exits)."""
        ...


@runtime_checkable
class StreamingTransport(Protocol):
    """A transport that can keep a process running on the host with a channel to it."""

    name: str

    def open_stream(self, argv: list[str], timeout: float = 30) -> AgentStream:
        """Start `argv` (shell-quoted) on the host, stdin and stdout left open."""
        ...

    def note_round_trip(self) -> None:
        """Count one request answered over the stream."""
        ...


@functools.lru_cache(maxsize=4)
def _digest(agent: str, wrapper: str) -> str:
    return hashlib.sha256((agent + "\0" + wrapper).encode()).hexdigest()[:16]


def agent_version() -> str:
    """The hash of the agent's and the wrapper's source: a new one restarts every agent."""
    return _digest(agent_source(), wrapper_source())


def agent_program(version: str) -> bytes:
    """What the loader reads: the length line, then the agent's source and its serve call."""
    program = f"{agent_source()}\n_lepton_serve({version!r})\n".encode()
    return b"%d\n" % len(program) + program


class AgentSession:
    """One persistent agent on one connection. Thread-safe: one request at a time; a caller who
    finds it busy gets None (and makes a one-shot call instead of waiting)."""

    def __init__(self, transport: StreamingTransport) -> None:
        self.transport = transport
        self.name = transport.name
        self._lock = threading.Lock()
        self._stream: AgentStream | None = None
        self.version: str | None = None
        self.pid: int | None = None  # the agent's pid on the host
        self.starts = 0  # agents started (interpreter starts on the host for this connection)
        self.requests = 0  # requests answered by a persistent agent
        self.fallbacks = 0  # calls that went one-shot instead
        self.failed_starts = 0
        self.served = 0  # requests the running agent says it has answered (its own count)
        self._next_id = 0
        self._retry_at = 0.0

    @property
    def running(self) -> bool:
        """True while an agent is up on this connection."""
        s = self._stream
        return s is not None and s.alive

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The agent's decoded reply to `request`, or None when the caller should make a
        one-shot call instead. Raises CommandTimeout, HostUnreachable (and the connection's
        HostErrors) like a one-shot call would."""
        if time.monotonic() < self._retry_at or not self._lock.acquire(blocking=False):
            self.fallbacks += 1
            return None
        try:
            reply = self._call(request, timeout)
        finally:
            self._lock.release()
        if reply is None:
            self.fallbacks += 1
        return reply

    def close(self) -> None:
        """Stop the agent (its channel closes, it reads end of input and exits)."""
        with self._lock:
            self._close()

    # -- inside the lock ---------------------------------------------------------------------
    def _close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._stream = None
        self.pid = None

    def _call(self, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        version = agent_version()
        for attempt in (0, 1):
            if self._stream is None or not self._stream.alive or self.version != version:
                self._close()
                if not self._start(version, deadline, timeout):
                    return None
            assert self._stream is not None
            self._next_id += 1
            rid = self._next_id
            line = json.dumps({**request, "id": rid}).encode() + b"\n"
            try:
                self._stream.send(line, deadline)
                reply = self._read(deadline, lambda r, rid=rid: r.get("id") == rid)
            except TimeoutError as exc:
                self._close()  # its late reply must not answer the next request
                raise CommandTimeout(
                    self.name, f"command did not finish within {timeout:g}s"
                ) from exc
            except ValueError as exc:
                self._close()
                raise RemoteError(
                    self.name, f"unreadable reply from the host agent: {exc}"
                ) from exc
            except (EOFError, OSError) as exc:
                self._close()
                if attempt == 0 and request.get("op") in READ_ONLY_OPS:
                    continue  # it died (killed, connection dropped): ask a fresh one
                raise HostUnreachable(
                    self.name, f"the host agent went away during a command: {exc}"
                ) from exc
            self.requests += 1
            self.served = int((reply.get("agent") or {}).get("served") or 0)
            self.transport.note_round_trip()
            return reply
        raise AssertionError("unreachable")

    def _start(self, version: str, deadline: float, timeout: float) -> bool:
        """Start an agent; False when it cannot run here (the caller goes one-shot)."""
        left = round(max(deadline - time.monotonic(), 0.1), 1)  # said in its errors
        stream = self.transport.open_stream(AGENT_ARGV, timeout=left)
        try:
            stream.send(agent_program(version), deadline)
            hello = self._read(deadline, lambda r: "hello" in r, stream)["hello"]
        except TimeoutError as exc:
            stream.close()
            raise CommandTimeout(
                self.name, f"command did not finish within {timeout:g}s (starting the host agent)"
            ) from exc
        except (EOFError, OSError, ValueError, KeyError, TypeError):
            stream.close()
            if stream.connection_alive:  # the agent cannot run here: one-shot for a while
                self.failed_starts += 1
                self._retry_at = time.monotonic() + RETRY_AFTER_S
            return False  # else the connection dropped meanwhile: one-shot reconnects
        if hello.get("version") != version:
            stream.close()
            self.failed_starts += 1
            self._retry_at = time.monotonic() + RETRY_AFTER_S
            return False
        self._stream = stream
        self.version = version
        self.pid = int(hello["pid"])
        self.starts += 1
        return True

    def _read(
        self, deadline: float, wanted: Any, stream: AgentStream | None = None
    ) -> dict[str, Any]:
        stream = stream or self._stream
        assert stream is not None
        while True:
            line = stream.read_line(deadline)
            _, found, payload = line.partition(MARKER)
            if not found:
                continue  # a login script's output
            reply = json.loads(payload.decode("utf-8"))
            if isinstance(reply, dict) and wanted(reply):
                return reply


_sessions: weakref.WeakKeyDictionary[Any, AgentSession] = weakref.WeakKeyDictionary()
_sessions_lock = threading.Lock()
_streaming: dict[type, bool] = {}  # per transport class: can it hold a stream open?


def session_for(transport: Any) -> AgentSession | None:
    """The persistent agent session of `transport` (one per connection object), or None for a
    transport that cannot hold one open (a local or simulated one)."""
    if not getattr(transport, "persistent_agent", True):
        return None
    kind = type(transport)
    streams = _streaming.get(kind)
    if streams is None:  # a protocol check per call costs more than the rest of it
        streams = _streaming[kind] = isinstance(transport, StreamingTransport)
    if not streams:
        return None
    with _sessions_lock:
        session = _sessions.get(transport)
        if session is None:
            session = _sessions[transport] = AgentSession(transport)
        return session


def session_stats(transport: Any) -> dict[str, Any]:
    """What the transport's agent session has done: starts, requests, fallbacks, pid."""
    with _sessions_lock:
        s = _sessions.get(transport)
    if s is None:
        return {"starts": 0, "requests": 0, "fallbacks": 0, "failed_starts": 0, "pid": None,
                "served": 0}  # fmt: skip
    return {
        "served": s.served,
        "starts": s.starts,
        "requests": s.requests,
        "fallbacks": s.fallbacks,
        "failed_starts": s.failed_starts,
        "pid": s.pid,
    }
