"""Where the console reads its screens from: the ledger (personal mode) or the lab service.

`LedgerSource` calls `screen_data.read_view` on the console's own `Service`; `ReaderSource` has a
process of its own (`lepton_tui.reader`) call it and push the result over a pipe, so the console's
event loop never shares its interpreter with a refresh read. `LabSource` asks the
lab service over its socket: a `watch` stream per shown screen (the service pushes on its tick and
when the ledger changes, so the console sends nothing per refresh), or one `console_view` call.
`ClientPool` makes the lab client safe for the console's many thread workers: each call borrows a
connection of its own.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lepton_tui.errors import LeptonError
from lepton_tui.fleet_view import ViewMemo
from lepton_tui.screen_data import VIEW_TYPES, from_wire, read_view

if TYPE_CHECKING:  # the client (and the protocol's http modules) load only in lab mode
    from lepton_tui.client import LabClient, ViewStream


class LedgerSource:
    """Personal mode: the screens read the console's own ledger."""

    lab = False
    streams = False  # the screens call `read` on their tick (no `watch` stream)
    where = "the ledger"

    def __init__(self, svc: Any, demo: bool = False) -> None:
        self.svc = svc
        self.demo = demo
        self.memo = ViewMemo()  # a refresh reads only what can have changed since the last
        # called between the pieces of a read (the app lets a key press be drawn first)
        self.pause: Callable[[], None] | None = None
        self.reads = 0  # views read in this process (a console with a reader process: none)

    def read(self, view: str, args: dict[str, Any], now: float) -> Any:
        self.reads += 1
        return read_view(
            self.svc, view, now, args, demo=self.demo, memo=self.memo, pause=self.pause
        )


READER_STARTS_MAX = 3  # reader processes started within READER_STARTS_WINDOW_S before falling back
READER_STARTS_WINDOW_S = 60.0
PIPE_BUFFER = 1 << 20  # a view (~100 KB for a busy lab) comes off the pipe in a few reads
READER_STOP_S = 2.0  # how long a closing console waits for its reader to go before killing it
_DEAD = object()  # a queue's reader process ended: subscribe again (a new reader)
_CLOSED = object()  # the watch was closed


class ReaderSource(LedgerSource):
    """Personal mode, the read in a reader process: each shown screen watches its view, which the
    reader (`python -m lepton_tui.reader`, started on the first watch) reads on the tick and when
    the ledger changes, and sends as `screen_data.to_wire` makes it; the screen's worker only
    decodes it (`from_wire`). A reader that dies is started again; after `READER_STARTS_MAX`
    starts in `READER_STARTS_WINDOW_S` the screens read in this process, as `LedgerSource`, and
    `notice` says so in one line. `read` (one-off reads, such as the scheduler's "why") stays in
    this process."""

    streams = True

    def __init__(self, svc: Any, clock: Callable[[], float] = time.time) -> None:
        super().__init__(svc)
        self.clock = clock
        self.notice: Callable[[str], None] | None = None  # called from a worker thread
        self.fallback: str | None = None  # why the screens read in this process now
        self.pushes = 0  # views decoded from the reader
        self.starts = 0  # reader processes started
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._queues: dict[int, tuple[subprocess.Popen[bytes], queue.Queue[Any]]] = {}
        self._next_id = 0
        self._started: list[float] = []
        self._closed = False
        self._last_word = ""  # what the reader said before it ended (its line 0)
        self._untold: str | None = None  # why `start` fell back, for the first screen to say

    @property
    def pid(self) -> int | None:
        """The reader process's id while one runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def watch(self, view: str, args: dict[str, Any], tick_s: float) -> ReaderWatch:
        return ReaderWatch(self, view, args, tick_s)

    def close(self) -> None:
        """End the reader: its input closes, which ends it; killed if it lingers."""
        with self._lock:
            self._closed = True
            proc, self._proc = self._proc, None
            entries, self._queues = list(self._queues.values()), {}
        for _, q in entries:
            q.put(_CLOSED)
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(READER_STOP_S)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    # -- the pipe ------------------------------------------------------------------------------

    def _spawn(self) -> subprocess.Popen[bytes]:
        import lepton_tui

        root = str(Path(lepton_tui.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, "-m", "lepton_tui.reader", "--home", str(self.svc.home),
               "--user", str(self.svc.user)]  # fmt: skip
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            bufsize=PIPE_BUFFER,
        )  # fmt: skip
        threading.Thread(target=self._route, args=(proc,), name="reader-pipe", daemon=True).start()
        return proc

    def _route(self, proc: subprocess.Popen[bytes]) -> None:
        """Hand each line the reader sends to its watch (undecoded: the watch's worker decodes);
        when the reader ends, tell its watches."""
        assert proc.stdout is not None
        for line in proc.stdout:
            head, _, body = line.partition(b" ")
            if head == b"0":
                self._last_word = _reader_error(body)
                continue
            with self._lock:
                entry = self._queues.get(int(head)) if head.isdigit() else None
            if entry is not None:
                entry[1].put(body)
        code = proc.wait()
        with self._lock:
            if self._proc is proc:
                self._proc = None
            dead = [k for k, (p, _) in self._queues.items() if p is proc]
            queues = [self._queues.pop(k)[1] for k in dead]
            if not self._last_word:
                self._last_word = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        for q in queues:
            q.put(_DEAD)

    def _subscribe(self, w: ReaderWatch) -> tuple[int, queue.Queue[Any]] | None:
        """Ask the reader (started if none runs) for `w`'s view; None: read in this process."""
        with self._lock:
            result, why = self._subscribe_held(w)
            why, self._untold = why or self._untold, None
        if why is not None and self.notice is not None:
            self.notice(why)  # outside the lock: the app's notify waits on its event loop
        return result

    def start(self) -> None:
        """Start the reader now (the console does, as it builds: the reader's start overlaps
        the console's own, so the first screen's data comes sooner)."""
        with self._lock:
            if not self._closed and self.fallback is None:
                self._untold = self._running()[1]  # said by the first watch (no app to tell yet)

    def _running(self) -> tuple[subprocess.Popen[bytes] | None, str | None]:
        """The reader, started if none runs; else None and why not (lock held)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            return proc, None
        now = time.monotonic()
        self._started = [t for t in self._started if now - t < READER_STARTS_WINDOW_S]
        if len(self._started) >= READER_STARTS_MAX:
            return None, self._fall_back(f"stopped ({self._last_word})")
        try:
            proc = self._proc = self._spawn()
        except OSError as exc:
            return None, self._fall_back(f"could not start: {exc}")
        self._started.append(now)
        self.starts += 1
        self._last_word = ""
        return proc, None

    def _subscribe_held(
        self, w: ReaderWatch
    ) -> tuple[tuple[int, queue.Queue[Any]] | None, str | None]:
        while True:
            if self._closed or self.fallback is not None:
                return None, None
            proc, why = self._running()
            if proc is None:
                return None, why
            self._next_id += 1
            q: queue.Queue[Any] = queue.Queue()
            self._queues[self._next_id] = (proc, q)
            cmd = {"watch": self._next_id, "view": w.view, "args": w.args, "tick_s": w.tick_s,
                   "offset_s": self.clock() - time.time()}  # fmt: skip
            try:
                assert proc.stdin is not None
                proc.stdin.write(json.dumps(cmd).encode() + b"\n")
                proc.stdin.flush()
            except OSError:  # it died meanwhile: start another
                del self._queues[self._next_id]
                proc.kill()
                self._proc = None
                continue
            return (self._next_id, q), None

    def _fall_back(self, why: str) -> str:
        self.fallback = why
        return f"the console's reader process {why}: reading the ledger in the console itself"

    def _unsubscribe(self, watch_id: int) -> None:
        with self._lock:
            entry = self._queues.pop(watch_id, None)
            if entry is None:
                return
            proc, q = entry
            if proc is self._proc and proc.stdin is not None:
                try:
                    proc.stdin.write(json.dumps({"stop": watch_id}).encode() + b"\n")
                    proc.stdin.flush()
                except OSError:
                    pass  # it died: its router tells the others
        q.put(_CLOSED)


def _reader_error(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return "it said something unreadable"


class ReaderWatch:
    """One screen's view from the reader process (iterated by the screen's worker thread); a
    reader that ends is replaced; with none to be had, the view is read here on the tick."""

    def __init__(self, source: ReaderSource, view: str, args: dict[str, Any], tick_s: float):
        self.source = source
        self.view = view
        self.args = args
        self.tick_s = tick_s
        self.closed = False
        self._id: int | None = None

    def __iter__(self) -> Iterator[Any]:
        cls = VIEW_TYPES[self.view]
        while not self.closed:
            sub = self.source._subscribe(self)
            if sub is None:
                if not self.source._closed:
                    yield from self._in_process()
                return
            self._id, q = sub
            if self.closed:  # closed while subscribing
                self.source._unsubscribe(self._id)
                return
            while True:
                item = _newest(q)
                if item is _CLOSED:
                    return
                if item is _DEAD:
                    break  # subscribe again: another reader
                data = self._decode(cls, item)
                if self.source.pause is not None:
                    self.source.pause()  # a key press is drawn before the refresh is patched in
                yield data

    def _decode(self, cls: type, item: bytes) -> Any:
        try:
            body = json.loads(item)
        except ValueError:
            raise LeptonError("the console's reader sent a bad line") from None
        if "error" in body:
            raise LeptonError(str(body["error"].get("message")), body["error"].get("hint"))
        self.source.pushes += 1
        return from_wire(cls, body.get("view"))

    def _in_process(self) -> Iterator[Any]:
        """Today's read, in this process: on the tick, sooner when the ledger changes."""
        from lepton_tui.reader import CHECK_S, Watch

        due = Watch(0, self.view, self.args, max(self.tick_s, CHECK_S))
        ledger = self.source.svc.ledger
        while not self.closed:
            version = ledger.data_version()
            if due.due(version, time.monotonic()):
                data = self.source.read(self.view, self.args, self.source.clock())
                due.pushed, due.seen = time.monotonic(), version
                yield data
            else:
                time.sleep(CHECK_S)

    def close(self) -> None:
        self.closed = True
        if self._id is not None:
            self.source._unsubscribe(self._id)


def _newest(q: queue.Queue[Any]) -> Any:
    """The next item, or the newest when several waited (a stale view is skipped); an end
    (`_DEAD`, `_CLOSED`) is never skipped."""
    item = q.get()
    while item is not _DEAD and item is not _CLOSED:
        try:
            item = q.get_nowait()
        except queue.Empty:
            break
    return item


class LabSource:
    """Lab mode: the screens read through the lab service; the console opens no ledger."""

    lab = True
    streams = True  # each shown screen holds a `watch` stream
    where = "the lab service"

    def __init__(self, socket_path: str, pool: ClientPool) -> None:
        self.socket_path = socket_path
        self.pool = pool

    def read(self, view: str, args: dict[str, Any], now: float) -> Any:
        """One read (the service's clock, not `now`: it is the service's ledger)."""
        return from_wire(VIEW_TYPES[view], self.pool.call("console_view", view=view, args=args))

    def watch(self, view: str, args: dict[str, Any], tick_s: float) -> LabWatch:
        """A stream of `view`'s data, pushed by the service."""
        from lepton_tui.client import watch_view

        return LabWatch(view, watch_view(self.socket_path, view, args, tick_s))


class LabWatch:
    """The views a `watch` stream brings, as dataclasses; `close()` from any thread ends it."""

    def __init__(self, view: str, stream: ViewStream) -> None:
        self.view = view
        self.stream = stream

    def __iter__(self) -> Iterator[Any]:
        cls = VIEW_TYPES[self.view]
        for item in self.stream:
            yield from_wire(cls, item)

    def close(self) -> None:
        self.stream.close()


class ClientPool:
    """The `Service` methods of a lab client, callable from any thread: each call borrows an idle
    `LabClient` (one connection each) and gives it back; a client whose call failed is closed."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._idle: list[LabClient] = []
        self._lock = threading.Lock()
        self._user: str | None = None

    def _take(self) -> LabClient:
        from lepton_tui.client import LabClient

        with self._lock:
            if self._idle:
                return self._idle.pop()
        return LabClient(self.socket_path)

    def _give(self, client: LabClient) -> None:
        with self._lock:
            self._idle.append(client)

    def call(self, method: str, /, **args: Any) -> Any:
        return self._run(lambda c: c.call(method, **args))

    def _run(self, fn: Any) -> Any:
        client = self._take()
        try:
            result = fn(client)
        except BaseException:
            client.close()
            raise
        if isinstance(result, Iterator):  # a log stream keeps its connection to the end
            return self._hold(client, result)
        self._give(client)
        return result

    def _hold(self, client: LabClient, items: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from items
        finally:
            client.close()

    @property
    def user(self) -> str:
        if self._user is None:
            self._user = str(self._run(lambda c: c.user))
        return self._user

    def dispatcher_running(self) -> bool:
        return True  # the lab service is the dispatcher

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        from lepton_tui.client import LabClient

        if not callable(getattr(LabClient, name, None)):
            getattr(LabClient(self.socket_path), name)  # LabClient says why it has no such call
            raise AttributeError(name)

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._run(lambda c: getattr(c, name)(*args, **kwargs))

        return method
