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

Routes (every request carries the `Lepton-Protocol` header):
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from lepton_tui import __version__, paths
from lepton_tui.errors import LeptonError, PermissionDenied, ValidationError
from lepton_tui.identity import Identity, peer_identity
from lepton_tui.ledger import Ledger, open_ledger
from lepton_tui.service import Service
from lepton_tui.validate import JobSpec, parse_number, validate_job

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


# -- the calls --------------------------------------------------------------------------------

_SPEC_FIELDS = {f.name for f in fields(JobSpec)}


def spec_from_wire(raw: Any) -> JobSpec:
    """A job spec a client sent, validated again here: nothing from the socket is trusted."""
    if not isinstance(raw, dict):
        raise ValidationError("the job spec must be a JSON object")
    unknown = sorted(set(raw) - _SPEC_FIELDS)
    if unknown:
        raise ValidationError(f"unknown job field {unknown[0]!r}")
    if "command" not in raw:
        raise ValidationError("the job spec has no command", field="command")
    gpu_mem = int(raw.get("gpu_mem_mb") or 0)
    return validate_job(
        command=str(raw["command"]),
        name=raw.get("name"),
        cpus=raw.get("cpus", 1),
        mem=f"{int(raw.get('mem_mb', 1024))}M",
        gpus=raw.get("gpus", 0),
        gpu_mem=f"{gpu_mem}M" if gpu_mem else None,
        time=raw.get("time_limit_s"),
        priority=raw.get("priority", 0),
        project=raw.get("project"),
        after=[int(a) for a in raw.get("after") or ()],
        retries=raw.get("retries", 0),
        workdir=raw.get("workdir"),
        env=dict(raw.get("env") or {}),
        # -- notifications, requeue at the time limit, job kind (lepton_tui.job_options) --
        notify_on=raw.get("notify_on"),
        notify=None if raw.get("notify_on") is None else bool(raw.get("notify_on")),
        requeue_on_timeout=bool(raw.get("requeue_on_timeout")),
        max_requeues=raw.get("max_requeues") if raw.get("requeue_on_timeout") else None,
        signal=raw.get("signal"),
        kind=raw.get("kind"),
        **_placement_from_wire(raw),
    )


def _placement_from_wire(raw: dict[str, Any]) -> dict[str, Any]:
    """Constraints as `validate_job` takes them (checked there again)."""
    c = raw.get("constraints") or {}
    if not isinstance(c, dict):
        raise ValidationError("constraints must be a JSON object")
    return {"gpu_type": c.get("gpu_type"), "constraint": list(c.get("labels") or ()),
            "host": list(c.get("hosts") or ()), "exclude_host": list(c.get("exclude") or ())}  # fmt: skip


def _array_from_wire(raw: Any, spec: JobSpec) -> JobSpec:
    """An array element's index and cap, checked."""
    index, limit = raw.get("array_index"), raw.get("array_limit")
    if index is not None:
        spec.array_index = int(parse_number(index, "array index", minimum=0, maximum=10**9,
                                            integer=True))  # fmt: skip
        if limit is not None:
            spec.array_limit = int(parse_number(limit, "array limit", minimum=1, maximum=10**9,
                                                integer=True))  # fmt: skip
    return spec


def _submit(svc: Service, spec: Any, key: str | None = None) -> list[int]:
    specs = spec if isinstance(spec, list) else [spec]
    if not specs or len(specs) > 1000:
        raise ValidationError("submit 1 to 1000 jobs at a time")
    if key is not None and (not isinstance(key, str) or not 8 <= len(key) <= 64):
        raise ValidationError("the submit key must be 8 to 64 characters")
    return svc.submit_many([_array_from_wire(s, spec_from_wire(s)) for s in specs], key=key)


def _cancel(svc: Service, job_ids: Any) -> list[dict[str, Any]]:
    return [asdict(r) for r in svc.cancel([int(j) for j in job_ids])]


def _set_setting(svc: Service, key: str, value: Any) -> Any:
    from lepton_tui.settings import parse_setting

    parsed = parse_setting(str(key), value if isinstance(value, str) else json.dumps(value))
    svc.set_setting(str(key), parsed)
    return parsed


def _whoami(svc: Service) -> dict[str, Any]:
    ident = svc.identity
    assert ident is not None
    return {"user": ident.user, "uid": ident.uid, "gid": ident.gid,
            "groups": sorted(ident.groups), "admin": svc.is_admin()}  # fmt: skip


_HOST_ARGS = {"address", "port", "user", "key_path", "local", "price_per_hour", "root_dir",
              "gpus_override"}  # fmt: skip


def _host_args(options: dict[str, Any], extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    unknown = set(options) - _HOST_ARGS - extra
    if unknown:
        raise ValidationError(f"unknown host field {sorted(unknown)[0]!r}")
    return options


def _add_host(svc: Service, name: str, **options: Any) -> dict[str, Any]:
    """`hosts add --no-connect`: record the host only."""
    return svc.add_host(str(name), same_machine_ok=False, **_host_args(options))


def _onboard(svc: Service, name: str, **options: Any) -> dict[str, Any]:
    """`hosts add`: the service connects (its own keys and known_hosts), checks and stores."""
    svc.require_admin("add hosts")  # before the service connects anywhere for anyone
    lines: list[str] = []
    args = _host_args(options, frozenset({"accept_new_host_key", "fingerprint"}))
    from lepton_tui.logins import lab_onboard_args, record_onboarded

    args = lab_onboard_args(svc, args)  # the lab key, as --user (default: the admin)
    done = svc.onboard(str(name), echo=lines.append, **args)
    record_onboarded(svc, done.host)
    return {"host": done.host, "preflight": done.preflight.to_dict(), "lines": lines}


CALLS: dict[str, Callable[..., Any]] = {
    "whoami": _whoami,
    "submit": _submit,
    "cancel": _cancel,
    "get_job": lambda svc, job_id: svc.get_job(int(job_id)),
    "show_job": lambda svc, job_id, events=50: svc.show_job(int(job_id), int(events)),
    "list_jobs": lambda svc, **kw: svc.list_jobs(**kw),
    "job_counts": lambda svc: svc.job_counts(),
    "count_jobs": lambda svc, **kw: svc.count_jobs(**kw),
    "stderr_bytes": lambda svc, job_id, attempt_no=None: svc.stderr_bytes(
        int(job_id), None if attempt_no is None else int(attempt_no)
    ),
    "list_hosts": lambda svc: svc.list_hosts(),
    "get_host": lambda svc, name: svc.get_host(str(name)),
    "add_host": _add_host,
    "onboard": _onboard,
    "remove_host": lambda svc, name, force=False: svc.remove_host(str(name), bool(force)),
    "set_draining": lambda svc, name, draining: svc.set_draining(str(name), bool(draining)),
    "settings": lambda svc: svc.settings(),
    "set_setting": _set_setting,
    "events": lambda svc, **kw: svc.events(**kw),
    "budget_warnings": lambda svc: svc.budget_warnings(),
    "lab_key": lambda svc: svc.lab_key(),
    "last_host_event": lambda svc, name, kind: svc.last_host_event(str(name), str(kind)),
    # -- notifications (lepton_tui.notify) --
    "notify_prefs": lambda svc: svc.notify_prefs(),
    "set_notify_prefs": lambda svc, notify_on=None, email=None, webhook=None: svc.set_notify_prefs(
        notify_on, email, webhook
    ),  # fmt: skip
    "notifications": lambda svc, limit=50: svc.notifications(int(limit)),
}

# -- economics: reports for everyone; prices, currency, cost weight and budgets (service.py says
# who may write them) -------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A date or name a client sent: text or nothing."""
    if value is None or isinstance(value, str):
        return value
    raise ValidationError(f"expected text, not {type(value).__name__}")


def _set_prices(svc: Service, host: Any = None, **options: Any) -> dict[str, Any]:
    return svc.set_prices(_text(host), **options)


def _replay(svc: Service, since: Any = None, until: Any = None, policies: Any = None,
            cost_weight: Any = None) -> dict[str, Any]:  # fmt: skip
    names = ["fifo", "sjf", "backfill", "dqn"] if policies is None else policies
    if not isinstance(names, list) or not all(isinstance(p, str) for p in names):
        raise ValidationError("policies must be a list of names")
    return svc.replay(_text(since), _text(until), names, cost_weight)


CALLS.update(
    {
        "cost": lambda svc, since=None, until=None, by="user": svc.cost(
            _text(since), _text(until), str(by)
        ),
        "waste": lambda svc: svc.waste(),
        "prices": lambda svc, history=False: svc.prices(bool(history)),
        "set_prices": _set_prices,
        "set_currency": lambda svc, code: svc.set_currency(str(code)),
        "set_cost_weight": lambda svc, weight: svc.set_cost_weight(weight),
        "budgets": lambda svc: svc.budgets(),
        "set_budget": lambda svc, scope, name, amount, unit="money", hard=False, new_project=False: (
            svc.set_budget(
                str(scope),
                str(name),
                amount,
                str(unit),
                hard=bool(hard),
                new_project=bool(new_project),
            )  # fmt: skip
        ),
        "remove_budget": lambda svc, scope, name, unit=None: svc.remove_budget(
            str(scope), str(name), _text(unit)
        ),
        "replay": _replay,
        "probe_host": lambda svc, name, timeout=30.0: svc.probe_host(str(name), timeout),
    }
)

# -- lab mode's logins (jobs run as their submitter; lepton_tui.logins) --
CALLS.update({
    "check_login": lambda svc, name, user=None: svc.check_login(
        str(name), None if user is None else str(user)
    ),
    "set_run_as": lambda svc, name, mode: svc.set_run_as(str(name), str(mode)),
    "logins": lambda svc, user=None: svc.logins(None if user is None else str(user)),
})  # fmt: skip
# -- Slurm hosts (lepton_tui.dispatch.slurm): `hosts add NAME --slurm` by an admin --
_SLURM_ARGS = frozenset({"accept_new_host_key", "fingerprint", "partition", "account", "qos",
                         "slurm_conf"})  # fmt: skip


def _onboard_slurm(svc: Service, name: str, **options: Any) -> dict[str, Any]:
    """The service checks the partition (over SSH with the lab key as the admin, as `hosts
    add`, or on this node) and stores it; its preflight lines come back."""
    from lepton_tui.dispatch.slurm import onboard_slurm
    from lepton_tui.logins import lab_onboard_args, record_onboarded

    svc.require_admin("add hosts")  # before the service connects anywhere for anyone
    args = dict(_host_args(options, _SLURM_ARGS))
    args.pop("gpus_override", None)
    local = not args.get("address")
    args.pop("local", None)  # without an address Slurm's commands run on this node
    if not local:
        args = lab_onboard_args(svc, args)  # the lab key, as --user (default: the admin)
    lines: list[str] = []
    done = onboard_slurm(svc, str(name), echo=lines.append, **args)
    if not local:
        record_onboarded(svc, done.host)
    return {"host": done.host, "lines": lines,
            "checks": [[ok, line] for ok, line in done.lines]}  # fmt: skip


CALLS["onboard_slurm"] = _onboard_slurm
# -- the DQN's weights (service.py decides who may install) --
CALLS.update({
    "policies": lambda svc: svc.policies(),
    "install_policy": lambda svc, source, name=None, force=False: svc.install_policy(
        str(source), None if name is None else str(name), force=bool(force)
    ),
})  # fmt: skip


# -- the console's live views (engineer `console`) ---------------------------------------------

WATCH_CHECK_S = 0.25  # how often a watch looks at the ledger's data_version (one cheap PRAGMA)
WATCH_HEARTBEAT_S = 15.0  # a quiet watch says it is alive this often (the client's read times out)
WATCH_TICK_S = (1.0, 60.0)  # the tick a console may ask for (a push of a big lab: ~30 ms CPU)
MAX_WATCHES = WORKERS // 4  # live consoles at once; more are refused and read once per tick


def _console_view(svc: Service, view: str, args: dict[str, Any] | None = None) -> Any:
    """One read of a console screen (what a console that cannot watch reads each tick)."""
    from lepton_tui.screen_data import read_view, to_wire

    return to_wire(read_view(svc, str(view), time.time(), args or {}))


CALLS["console_view"] = _console_view


# shared lab (issue 19): fair share, limits, host labels, arrays
CALLS.update({
    "share_list": lambda svc: svc.share_list(),
    "share_set": lambda svc, scope, name, shares=None: svc.share_set(str(scope), str(name), shares),
    "limit_list": lambda svc: svc.limit_list(),
    "limit_set": lambda svc, scope, name, gpus=None, cpus=None, jobs=None, clear=False:
        svc.limit_set(str(scope), str(name), gpus=gpus, cpus=cpus, jobs=jobs, clear=bool(clear)),
    "label_host": lambda svc, name, add=(), remove=(): svc.label_host(
        str(name), [str(x) for x in add], [str(x) for x in remove]
    ),
    "resolve_jobs": lambda svc, ref, live=False: svc.resolve_jobs(str(ref), bool(live)),
})  # fmt: skip
_LIST_JOBS_ARGS = {"all_states", "user", "project", "states", "limit", "offset"}
_COUNT_JOBS_ARGS = {"all_states", "user", "project", "states"}
_EVENTS_ARGS = {"limit", "job_id", "user", "since"}


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
            result = _whoami(self._service())
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
            allowed = {
                "list_jobs": _LIST_JOBS_ARGS, "count_jobs": _COUNT_JOBS_ARGS, "events": _EVENTS_ARGS
            }.get(name)  # fmt: skip
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
        from lepton_tui.screen_data import read_view, to_wire
        from lepton_tui.views import ViewMemo

        svc = self._service()
        memo = ViewMemo()  # this stream's refreshes read only what can have changed
        if set(args) - {"view", "args", "tick_s"} or "view" not in args:
            raise ValidationError("watch takes view, args and tick_s")
        tick = args.get("tick_s", 2.0)
        if isinstance(tick, bool) or not isinstance(tick, int | float):
            raise ValidationError("tick_s must be a number of seconds")
        tick = min(max(float(tick), WATCH_TICK_S[0]), WATCH_TICK_S[1])
        view, view_args = str(args["view"]), args.get("args") or {}
        ledger = self.server.ledger

        def version() -> Any:
            row = ledger.query_one("PRAGMA data_version")
            return None if row is None else next(iter(row.values()))

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
