"""The lab service: the service API over a Unix domain socket (`lepton-tui serve --socket`).

HTTP/1.1 with JSON bodies, served by the standard library's `http.server` on a
`socketserver.UnixStreamServer` (the framing Docker's API uses); never pickle. Connections are
served by a fixed pool of threads, each with a socket timeout, so a slow, half-open or malformed
client holds one worker for at most the timeout, never the others.

One `Ledger` serves the whole process (the dispatcher's): each worker thread keeps its own SQLite
connection in it. Never open a second `Ledger` on the file per request: opening reads the file's
header with a plain `open()`, and closing that descriptor drops every POSIX lock SQLite holds on
the file in this process (the dispatcher's too), which corrupts the database. The caller is who the kernel says (`SO_PEERCRED`);
each request runs on a `Service` built with that identity, and `service.py` decides what it may do.

Routes (every request carries the `Lepton-Protocol` header; the calls are `lepton_tui.lab_routes`):
- `GET /v1/hello`: the protocol and server version, and who the caller is;
- `POST /v1/call/<method>` with `{"args": {...}}`: one service call, answered `{"result": ...}`
  or `{"error": {"type", "message", "hint", "field"}}` with a 4xx/5xx status;
- `POST /v1/logs` with `{"args": {...}}`: a job's log as a chunked stream of JSON lines
  (`{"text": ...}`, and `{"error": {...}}` if reading stops early).
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import http.server
import json
import logging
import os
import select
import socket
import socketserver
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lepton_tui import __version__, paths
from lepton_tui.errors import LeptonError, PermissionDenied, ValidationError
from lepton_tui.identity import Identity, peer_identity
from lepton_tui.lab_routes import ALLOWED_ARGS, CALLS, whoami
from lepton_tui.ledger import Ledger, open_ledger
from lepton_tui.service import Service

PROTOCOL = 1
PROTOCOL_HEADER = "Lepton-Protocol"
MAX_BODY_BYTES = 1 << 20
REQUEST_TIMEOUT_S = 10.0
KEEPALIVE_S = 2.0  # an idle kept-alive connection gives its worker back after this
WORKERS = 64
# `logs -f` holds a worker while it follows: at most half of them, so calls always get through
MAX_STREAMS = WORKERS // 2
ERROR_TYPES = ("LeptonError", "ValidationError", "NotFound", "PermissionDenied", "LedgerError",
               "IllegalTransition", "ProtocolMismatch")  # fmt: skip

log = logging.getLogger("lepton_tui.labd")


class ProtocolMismatch(LeptonError):
    """Client and service speak different protocol versions."""


def mismatch_message(server: Any, client: Any) -> str:
    return (
        f"the lab service speaks protocol {server} and this client speaks protocol {client}; "
        "use the same lepton-tui version on both (upgrade the older one)"
    )


# -- the console's live watches (engineer `console`) ---------------------------------------------

WATCH_CHECK_S = 0.25  # how often a watch looks at the ledger's data_version (one cheap PRAGMA)
WATCH_HEARTBEAT_S = 15.0  # a quiet watch says it is alive this often (the client's read times out)
WATCH_TICK_S = (1.0, 60.0)  # the tick a console may ask for (a push of a big lab: ~30 ms CPU)
MAX_WATCHES = WORKERS // 4  # live consoles at once; more are refused and read once per tick


def error_body(exc: BaseException) -> dict[str, Any]:
    """An exception as the JSON error a client turns back into the same LeptonError."""
    if isinstance(exc, LeptonError):
        kind = type(exc).__name__ if type(exc).__name__ in ERROR_TYPES else "LeptonError"
        return {"type": kind, "message": exc.message, "hint": exc.hint,
                "field": getattr(exc, "field", None)}  # fmt: skip
    return {"type": "LeptonError", "message": f"internal error in the lab service: "
            f"{type(exc).__name__}: {exc}", "hint": "see the service's log"}  # fmt: skip


def _status(exc: BaseException) -> int:
    from lepton_tui.errors import NotFound

    if isinstance(exc, ValidationError | ProtocolMismatch):
        return 400
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, LeptonError):
        return 409
    return 500


# -- the server -------------------------------------------------------------------------------


class LabHandler(http.server.BaseHTTPRequestHandler):
    """One client connection: requests until it closes, idles past the timeout, or errs."""

    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT_S  # StreamRequestHandler puts it on the socket
    server: LabServer
    server_version = f"lepton-tui/{__version__}"

    def setup(self) -> None:
        super().setup()
        self.peer: Identity | None = None
        self._served = 0
        try:
            self.peer = peer_identity(self.connection)
        except (OSError, LeptonError) as exc:
            log.warning("refusing a connection whose peer is unknown: %s", exc)

    def handle_one_request(self) -> None:
        # between requests a kept-alive client may idle only briefly: a worker is not its to keep
        # (http.client never pipelines, so nothing waits in the read buffer here)
        if self._served:
            try:
                ready, _, _ = select.select([self.connection], [], [], KEEPALIVE_S)
            except (OSError, ValueError):
                ready = []
            if not ready:
                self.close_connection = True
                return
        self._served += 1
        super().handle_one_request()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    def address_string(self) -> str:
        return f"uid {self.peer.uid}" if self.peer else "unknown peer"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: %s", self.address_string(), format % args)

    # -- framing ------------------------------------------------------------------------------

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _fail(self, status: int, exc: BaseException) -> None:
        self._send_json(status, {"error": error_body(exc)})

    def _read_args(self) -> dict[str, Any]:
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ValidationError("send the body with a Content-Length, not chunked")
        try:
            length = int(length_text or "0")
        except ValueError:
            self.close_connection = True
            raise ValidationError(f"bad Content-Length {length_text!r}") from None
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read: the connection cannot go on
            raise ValidationError(
                f"request body of {length} bytes is over the limit of {MAX_BODY_BYTES}"
            )
        raw = self.rfile.read(length) if length else b"{}"
        if len(raw) != length:
            self.close_connection = True
            raise ValidationError("the request body was cut short")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ValidationError("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise ValidationError("the request body must be a JSON object")
        args = body.get("args", {})  # anything else a client puts in the body is ignored
        if not isinstance(args, dict):
            raise ValidationError("`args` must be a JSON object")
        return args

    def _service(self) -> Service:
        if self.peer is None:
            raise PermissionDenied("the lab service cannot tell who you are (no SO_PEERCRED)")
        return Service(self.server.ledger, self.server.home, identity=self.peer)

    def _check_protocol(self) -> None:
        said = self.headers.get(PROTOCOL_HEADER)
        if said != str(PROTOCOL):
            raise ProtocolMismatch(mismatch_message(PROTOCOL, said or "none"))

    # -- routes -------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        try:
            if self.path != "/v1/hello":
                raise ValidationError(f"no such route: GET {self.path}")
            self._check_protocol()
            result = whoami(self._service())
            self._send_json(200, {"protocol": PROTOCOL, "version": __version__, "you": result})
        except Exception as exc:  # noqa: BLE001 - every failure is an answer, never a crash
            self._fail(_status(exc), exc)

    def do_POST(self) -> None:  # noqa: N802 - the http.server name
        try:
            self._check_protocol()
            args = self._read_args()
            if self.path == "/v1/logs":
                self._stream_logs(args)
                return
            if self.path == "/v1/watch":
                self._watch(args)
                return
            prefix = "/v1/call/"
            name = self.path[len(prefix) :] if self.path.startswith(prefix) else ""
            call = CALLS.get(name)
            if call is None:
                raise ValidationError(f"no such route: POST {self.path}")
            allowed = ALLOWED_ARGS.get(name)
            if allowed is not None and set(args) - allowed:
                raise ValidationError(f"unknown argument {sorted(set(args) - allowed)[0]!r}")
            try:
                result = call(self._service(), **args)
            except (TypeError, ValueError, KeyError) as exc:
                if isinstance(exc, LeptonError):
                    raise
                raise ValidationError(f"bad arguments for {name}: {exc}") from None
            self._send_json(200, {"result": result})
        except (ConnectionError, TimeoutError, http.client.HTTPException):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - every failure is an answer, never a crash
            if not isinstance(exc, LeptonError):
                log.exception("request %s failed", self.path)
            self._fail(_status(exc), exc)

    def _stream_logs(self, args: dict[str, Any]) -> None:
        if not self.server.streams.acquire(blocking=False):
            raise LeptonError(
                f"the lab service is already streaming {MAX_STREAMS} logs", "try again shortly"
            )
        try:
            self._stream_logs_held(args)
        finally:
            self.server.streams.release()

    def _client_gone(self) -> bool:
        """Whether the client closed its end (a follower that pressed Ctrl-C)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except (OSError, ValueError):
            return True

    def _sleep_unless_gone(self, seconds: float) -> None:
        time.sleep(seconds)
        if self._client_gone():
            raise ConnectionAbortedError("the client stopped following")

    def _stream_logs_held(self, args: dict[str, Any]) -> None:
        svc = self._service()
        unknown = set(args) - {"job_id", "stream", "follow", "attempt_no"}
        if unknown or "job_id" not in args:
            raise ValidationError("logs takes job_id, stream, follow and attempt_no")
        attempt = args.get("attempt_no")
        chunks = svc.read_log(
            int(args["job_id"]),
            stream=str(args.get("stream", "stdout")),
            follow=bool(args.get("follow", False)),
            attempt_no=None if attempt is None else int(attempt),
            sleep=self._sleep_unless_gone,  # a follower who left frees the worker
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True  # a stream ends its connection
        try:
            for text in chunks:
                self._chunk({"text": text})
            self._chunk(None)
        except OSError:
            pass  # the client went away: stop reading its log
        except Exception as exc:  # noqa: BLE001 - said in the stream, which then ends
            with contextlib.suppress(OSError):
                self._chunk({"error": error_body(exc)})
                self._chunk(None)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _chunk(self, item: dict[str, Any] | None) -> None:
        data = b"" if item is None else json.dumps(item).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    # -- the console's live views (engineer `console`) -----------------------------------------

    def _watch(self, args: dict[str, Any]) -> None:
        if not self.server.watches.acquire(blocking=False):
            raise LeptonError(
                f"the lab service already serves {MAX_WATCHES} live consoles", "try again shortly"
            )
        try:
            self._watch_held(args)
        finally:
            self.server.watches.release()

    def _watch_held(self, args: dict[str, Any]) -> None:
        """Push a console screen's data on the tick, and soon after the ledger changes (its
        `data_version`, which another connection's commit moves); never faster than half a tick."""
        from lepton_tui.fleet_view import ViewMemo
        from lepton_tui.screen_data import read_view, to_wire

        svc = self._service()
        memo = ViewMemo()  # this stream's refreshes read only what can have changed
        if set(args) - {"view", "args", "tick_s"} or "view" not in args:
            raise ValidationError("watch takes view, args and tick_s")
        tick = args.get("tick_s", 2.0)
        if isinstance(tick, bool) or not isinstance(tick, int | float):
            raise ValidationError("tick_s must be a number of seconds")
        tick = min(max(float(tick), WATCH_TICK_S[0]), WATCH_TICK_S[1])
        view, view_args = str(args["view"]), args.get("args") or {}
        version = self.server.ledger.data_version  # this thread's connection sees the others'

        seen = version()
        first = to_wire(read_view(svc, view, time.time(), view_args, memo=memo))  # bad: a 4xx
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True  # a stream ends its connection
        try:
            self._chunk({"view": first})
            pushed = sent = time.monotonic()
            while not self.server.stopping.is_set():
                self._sleep_unless_gone(WATCH_CHECK_S)
                now = time.monotonic()
                current = version()
                changed = current != seen and now - pushed >= tick / 2
                if changed or now - pushed >= tick:
                    seen = current
                    data = read_view(svc, view, time.time(), view_args, memo=memo)
                    self._chunk({"view": to_wire(data)})
                    pushed = sent = time.monotonic()
                elif now - sent >= WATCH_HEARTBEAT_S:
                    self._chunk({"alive": True})
                    sent = now
            self._chunk(None)
        except OSError:
            pass  # the console went away (or moved to another screen)
        except Exception as exc:  # noqa: BLE001 - said in the stream, which then ends
            with contextlib.suppress(OSError):
                self._chunk({"error": error_body(exc)})
                self._chunk(None)


class LabServer(socketserver.UnixStreamServer):
    """The socket, the pool of threads that serve its connections, and the ledger."""

    # socketserver's default backlog of 5 makes a burst of clients fail to connect (EAGAIN)
    request_queue_size = 256

    def __init__(
        self, socket_path: str | os.PathLike[str], ledger: Ledger, home: Path,
        workers: int = WORKERS,
    ) -> None:  # fmt: skip
        self.socket_path = Path(socket_path)
        self.ledger = ledger
        self.home = home
        _clear_stale_socket(self.socket_path)
        super().__init__(str(self.socket_path), LabHandler)
        # who may connect is decided by the socket's directory; what they may do, by service.py
        os.chmod(self.socket_path, 0o666)
        # a fixed pool: each worker keeps one ledger connection for the life of the service
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lab-client")
        self.streams = threading.BoundedSemaphore(min(MAX_STREAMS, max(1, workers // 2)))
        self.watches = threading.BoundedSemaphore(max(1, min(MAX_WATCHES, workers // 4)))
        self.stopping = threading.Event()  # set on close: live streams end

    def process_request(self, request: Any, client_address: Any) -> None:
        self._pool.submit(self._serve_connection, request, client_address)

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one connection's failure, logged
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        self.stopping.set()
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("a connection failed")


def _clear_stale_socket(path: Path) -> None:
    """Remove a socket left by a killed service; refuse if one still answers or it is a file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise LeptonError(
            f"{path} exists and is not a socket", "remove it or pick another --socket"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
        path.unlink()
        return
    finally:
        probe.close()
    raise LeptonError(f"a lab service already listens on {path}", "stop it first")


def check_private_state(home: Path) -> None:
    """Lab mode keeps the ledger to the service account: the state directory must be 0700."""
    paths.make_state_dir(home)
    mode = stat.S_IMODE(os.stat(home).st_mode)
    if mode & 0o077:
        raise LeptonError(
            f"the state directory {home} is open to other users (mode {mode:04o}); in lab mode "
            "only the service account may read the ledger",
            f"chmod 700 {home}",
        )
    ledger = open_ledger(home / paths.LEDGER_FILE)  # created 0600 in a 0700 directory
    ledger.close()
    for name in (paths.LEDGER_FILE, f"{paths.LEDGER_FILE}-wal", f"{paths.LEDGER_FILE}-shm"):
        target = home / name
        if target.exists() and stat.S_IMODE(os.stat(target).st_mode) & 0o077:
            raise LeptonError(
                f"the ledger file {target} is open to other users", f"chmod 600 {target}"
            )
