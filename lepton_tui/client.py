"""A client of the lab service: the `Service` methods the faces call, over the Unix socket.

When a socket is configured (`LEPTON_SOCKET`, or `socket = "..."` in
`/etc/lepton-tui/client.toml`) the CLI talks to `lepton-tui serve --socket` through a `LabClient`
and never opens a ledger itself; the code above it is the same as in personal mode. Who the
caller is, the service learns from the kernel, so nothing here says it.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from lepton_tui import errors
from lepton_tui.errors import LeptonError, ValidationError
from lepton_tui.labd import PROTOCOL, PROTOCOL_HEADER, ProtocolMismatch, mismatch_message
from lepton_tui.service import CancelResult
from lepton_tui.validate import JobSpec, validate_job

CLIENT_CONFIG = Path("/etc/lepton-tui/client.toml")
SOCKET_ENV = "LEPTON_SOCKET"
CALL_TIMEOUT_S = 60.0
REPLAY_TIMEOUT_S = 900.0
RETRY_DELAY_S = 1.0
_DROPPED = (ConnectionError, FileNotFoundError, BlockingIOError, http.client.RemoteDisconnected,
            http.client.BadStatusLine, http.client.IncompleteRead)  # fmt: skip


class ServiceUnreachable(LeptonError):
    """The lab service does not answer on its socket."""


def configured_socket(config: Path = CLIENT_CONFIG) -> str | None:
    """The lab service's socket: `LEPTON_SOCKET` (empty: personal mode), else the system's
    client config, else None (personal mode)."""
    env = os.environ.get(SOCKET_ENV)
    if env is not None:
        return env or None
    try:
        text = config.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        value = tomllib.loads(text).get("socket")
    except tomllib.TOMLDecodeError as exc:
        raise LeptonError(f"{config} is not valid TOML: {exc}", "ask an admin to fix it") from None
    if value is not None and not isinstance(value, str):
        raise LeptonError(f"{config}: `socket` must be a path in quotes", "ask an admin to fix it")
    return value or None


class _UnixConnection(http.client.HTTPConnection):
    """http.client over a Unix domain socket."""

    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("lepton", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _raise_error(body: dict[str, Any]) -> NoReturn:
    kind = str(body.get("type") or "LeptonError")
    message = str(body.get("message") or "the lab service refused the request")
    hint = body.get("hint")
    if kind == "ProtocolMismatch":
        raise ProtocolMismatch(message, hint)
    if kind == "ValidationError":
        raise ValidationError(message, hint, field=body.get("field"))
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, LeptonError)):
        cls = LeptonError
    raise cls(message, hint)


class _Report:
    """A preflight report as the service sent it (what the CLI prints with --json)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        return self._data


class _Onboarded:
    """What the service's `hosts add` stored, shaped as `onboarding.Onboarded` for the CLI."""

    def __init__(self, host: dict[str, Any], preflight: _Report) -> None:
        self.host = host
        self.preflight = preflight


class _SlurmAdded:
    """What the service's `hosts add --slurm` stored, shaped as `dispatch.slurm_admin.SlurmOnboarded`."""

    def __init__(self, host: dict[str, Any], lines: list[tuple[bool, str]]) -> None:
        self.host = host
        self.lines = lines

    @property
    def ok(self) -> bool:
        return all(ok for ok, _ in self.lines)


class LabClient:
    """The service API of a lab service, called over its socket (same methods as `Service`)."""

    def __init__(
        self, path: str, *, timeout: float = CALL_TIMEOUT_S, retry_delay_s: float = RETRY_DELAY_S
    ) -> None:
        self.socket_path = path
        self.timeout = timeout
        self.retry_delay_s = retry_delay_s
        self._conn: _UnixConnection | None = None
        self._me: dict[str, Any] | None = None

    # -- transport -------------------------------------------------------------------------------

    def _unreachable(self, exc: BaseException) -> ServiceUnreachable:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return ServiceUnreachable(
            f"cannot reach the lab service at {self.socket_path}: {reason}; "
            "is `lepton-tui serve --socket` running?"
        )

    def _exchange(self, method: str, url: str, args: dict[str, Any] | None,
                  timeout: float | None) -> http.client.HTTPResponse:  # fmt: skip
        """Send one request and return its response; a dropped connection is retried once."""
        body = None if args is None else json.dumps({"args": args}).encode()
        headers = {PROTOCOL_HEADER: str(PROTOCOL)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            # a kept-alive connection the service closed while idle is the common drop: its
            # retry goes at once; a service that is restarting gets a moment
            reused = self._conn is not None and self._conn.sock is not None
            if self._conn is None:
                self._conn = _UnixConnection(self.socket_path, timeout)
            self._conn.timeout = timeout
            if self._conn.sock is not None:
                self._conn.sock.settimeout(timeout)
            try:
                self._conn.request(method, url, body=body, headers=headers)
                return self._conn.getresponse()
            except _DROPPED as exc:
                self._drop()
                if attempt == 2:
                    raise self._unreachable(exc) from None
                if not reused:
                    time.sleep(self.retry_delay_s)
            except OSError as exc:
                self._drop()
                raise self._unreachable(exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _json(self, response: http.client.HTTPResponse) -> dict[str, Any]:
        try:
            data = json.loads(response.read())
        except (ValueError, OSError, http.client.HTTPException) as exc:
            self._drop()  # gone mid-answer (killed, restarting) is unreachable, not a bad answer
            if isinstance(exc, _DROPPED):
                raise self._unreachable(exc) from None
            raise LeptonError(f"the lab service sent a bad answer: {exc}") from None
        if not isinstance(data, dict):
            raise LeptonError("the lab service sent a bad answer")
        if response.will_close:
            self._drop()
        if "error" in data:
            _raise_error(data["error"])
        return data

    def hello(self) -> dict[str, Any]:
        """The service's protocol and version, and who it says we are; checks the protocol."""
        data = self._json(self._exchange("GET", "/v1/hello", None, self.timeout))
        if data.get("protocol") != PROTOCOL:
            raise ProtocolMismatch(mismatch_message(data.get("protocol"), PROTOCOL))
        self._me = data.get("you") or {}
        return data

    def call(self, method: str, /, **args: Any) -> Any:
        """One service call by name."""
        if self._me is None:
            self.hello()
        response = self._exchange("POST", f"/v1/call/{method}", args, self.timeout)
        return self._json(response)["result"]

    def _long_call(self, seconds: float, method: str, /, **args: Any) -> Any:
        """A call that may take `seconds` (a replay, a probe): the wait covers it."""
        before, self.timeout = self.timeout, max(self.timeout, seconds)
        try:
            return self.call(method, **args)
        finally:
            self.timeout = before

    def close(self) -> None:
        self._drop()

    # -- who -------------------------------------------------------------------------------------

    @property
    def user(self) -> str:
        if self._me is None:
            self.hello()
        assert self._me is not None
        return str(self._me.get("user"))

    def dispatcher_running(self) -> bool:
        """The lab service is the dispatcher: reachable means running."""
        return True

    def is_admin(self) -> bool:
        return bool(self.call("whoami")["admin"])

    @property
    def ledger(self) -> Any:
        raise LeptonError(
            "this command is not available through the lab service yet",
            f"it works in personal mode ({SOCKET_ENV}= lepton-tui ...) on a ledger you own",
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise LeptonError(
            f"this command is not available through the lab service yet (no {name!r} call)",
            f"it works in personal mode ({SOCKET_ENV}= lepton-tui ...) on a ledger you own",
        )

    # -- jobs ------------------------------------------------------------------------------------

    def submit(self, spec: JobSpec | None = None, **raw: Any) -> int:
        return self.submit_many([spec or validate_job(**raw)])[0]

    def submit_many(self, specs: Sequence[JobSpec]) -> list[int]:
        # one key per submit: a retry after a dropped answer gets the same jobs back
        ids = self.call("submit", spec=[s.to_dict() for s in specs], key=uuid.uuid4().hex)
        return [int(i) for i in ids]

    def cancel(self, job_ids: Iterable[int]) -> list[CancelResult]:
        return [CancelResult(**r) for r in self.call("cancel", job_ids=[int(j) for j in job_ids])]

    def get_job(self, job_id: int) -> dict[str, Any]:
        return dict(self.call("get_job", job_id=int(job_id)))

    def show_job(self, job_id: int, events: int = 50) -> dict[str, Any]:
        return dict(self.call("show_job", job_id=int(job_id), events=int(events)))

    def list_jobs(self, **kwargs: Any) -> list[dict[str, Any]]:
        if kwargs.get("states") is not None:
            kwargs["states"] = list(kwargs["states"])
        return list(self.call("list_jobs", **kwargs))

    def iter_jobs(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return iter(self.list_jobs(**kwargs))

    def job_counts(self) -> dict[str, int]:
        return dict(self.call("job_counts"))

    def count_jobs(self, **kwargs: Any) -> int:
        if kwargs.get("states") is not None:
            kwargs["states"] = list(kwargs["states"])
        return int(self.call("count_jobs", **kwargs))

    def stderr_bytes(self, job_id: int, attempt_no: int | None = None) -> int:
        return int(self.call("stderr_bytes", job_id=int(job_id), attempt_no=attempt_no))

    def read_log(self, job_id: int, stream: str = "stdout", follow: bool = False,
                 attempt_no: int | None = None) -> Iterator[str]:  # fmt: skip
        """A job's log as the service reads it from the host (a chunked stream)."""
        if self._me is None:
            self.hello()
        args = {"job_id": int(job_id), "stream": stream, "follow": bool(follow),
                "attempt_no": attempt_no}  # fmt: skip
        response = self._exchange("POST", "/v1/logs", args, None if follow else self.timeout)
        if response.status != 200:
            self._json(response)
            raise LeptonError("the lab service refused the log")
        return self._log_lines(response)

    def _log_lines(self, response: http.client.HTTPResponse) -> Iterator[str]:
        try:
            while True:
                try:
                    line = response.readline()
                except (OSError, http.client.HTTPException) as exc:
                    raise self._unreachable(exc) from None
                if not line:
                    return
                item = json.loads(line)
                if "error" in item:
                    _raise_error(item["error"])
                yield str(item.get("text", ""))
        finally:
            self._drop()  # a stream ends its connection

    # -- hosts and settings ----------------------------------------------------------------------

    def list_hosts(self) -> list[dict[str, Any]]:
        return list(self.call("list_hosts"))

    def get_host(self, name: str) -> dict[str, Any]:
        return dict(self.call("get_host", name=name))

    def add_host(self, name: str, same_machine_ok: bool = False, host_key: Any = None,
                 **fields: Any) -> dict[str, Any]:  # fmt: skip
        fingerprint = host_key[1] if host_key else None  # `--no-connect --fingerprint`
        return dict(self.call("add_host", name=name, fingerprint=fingerprint, **fields))

    def onboard(self, name: str, *, echo: Any = None, **options: Any) -> Any:
        """The service connects to the host, checks and stores it; its lines are echoed."""
        out = self.call("onboard", name=name, **options)
        for line in out.get("lines") or ():
            if echo is not None:
                echo(str(line))
        return _Onboarded(out["host"], _Report(out.get("preflight") or {}))

    def onboard_slurm(self, name: str, *, echo: Any = None, **options: Any) -> Any:
        """`hosts add NAME --slurm`: the service checks the partition and stores it."""
        out = self.call("onboard_slurm", name=name, **options)
        for line in out.get("lines") or ():
            if echo is not None:
                echo(str(line))
        return _SlurmAdded(out["host"], [(bool(ok), str(line)) for ok, line in out["checks"]])

    def remove_host(self, name: str, force: bool = False) -> None:
        self.call("remove_host", name=name, force=force)

    def set_draining(self, name: str, draining: bool) -> dict[str, Any]:
        return dict(self.call("set_draining", name=name, draining=draining))

    def last_host_event(self, name: str, kind: str) -> dict[str, Any] | None:
        return self.call("last_host_event", name=name, kind=kind)  # type: ignore[no-any-return]

    def settings(self) -> dict[str, Any]:
        return dict(self.call("settings"))

    def set_setting(self, key: str, value: Any) -> None:
        self.call("set_setting", key=key, value=value)

    def events(self, limit: int = 100, job_id: int | None = None, *, user: str | None = None,
               since: float | None = None) -> list[dict[str, Any]]:  # fmt: skip
        return list(self.call("events", limit=limit, job_id=job_id, user=user, since=since))

    def lab_key(self) -> str:
        return str(self.call("lab_key"))

    # -- notifications (lepton_tui.notify) --------------------------------------------------------

    def notify_prefs(self) -> dict[str, Any]:
        return dict(self.call("notify_prefs"))

    def set_notify_prefs(
        self, notify_on: Any = None, email: str | None = None, webhook: str | None = None
    ) -> dict[str, Any]:
        return dict(
            self.call("set_notify_prefs", notify_on=notify_on, email=email, webhook=webhook)
        )

    def notifications(self, limit: int = 50) -> list[dict[str, Any]]:
        return list(self.call("notifications", limit=int(limit)))

    def budget_warnings(self) -> list[str]:
        return [str(w) for w in self.call("budget_warnings")]

    # -- economics -------------------------------------------------------------------------------

    def cost(self, since: str | None = None, until: str | None = None,
             by: str = "user") -> dict[str, Any]:  # fmt: skip
        return dict(self.call("cost", since=since, until=until, by=by))

    def waste(self) -> dict[str, Any]:
        return dict(self.call("waste"))

    def prices(self, history: bool = False) -> dict[str, Any]:
        return dict(self.call("prices", history=bool(history)))

    def set_prices(self, host: str | None = None, **options: Any) -> dict[str, Any]:
        return dict(self.call("set_prices", host=host, **options))

    def set_currency(self, code: str) -> str:
        return str(self.call("set_currency", code=code))

    def set_cost_weight(self, weight: Any) -> float:
        return float(self.call("set_cost_weight", weight=weight))

    def budgets(self) -> dict[str, Any]:
        return dict(self.call("budgets"))

    def set_budget(self, scope: str, name: str, amount: Any, unit: str = "money", *,
                   hard: bool = False, new_project: bool = False) -> dict[str, Any]:  # fmt: skip
        return dict(self.call("set_budget", scope=scope, name=name, amount=amount, unit=unit,
                              hard=hard, new_project=new_project))  # fmt: skip

    def remove_budget(self, scope: str, name: str, unit: str | None = None) -> int:
        return int(self.call("remove_budget", scope=scope, name=name, unit=unit))

    def replay(self, since: str | None = None, until: str | None = None,
               policies: Sequence[str] = ("fifo", "sjf", "backfill", "dqn"),
               cost_weight: Any = None) -> dict[str, Any]:  # fmt: skip
        # a long history under several policies takes a while
        return dict(self._long_call(REPLAY_TIMEOUT_S, "replay", since=since, until=until,
                                    policies=list(policies), cost_weight=cost_weight))  # fmt: skip

    def probe_host(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        """The service samples the host (with its own keys); the wait covers the probe's."""
        wait = float(timeout) + 15.0
        return dict(self._long_call(wait, "probe_host", name=name, timeout=timeout))

    # -- the DQN's weights --

    def policies(self) -> list[dict[str, Any]]:
        return list(self.call("policies"))

    def install_policy(
        self, source: str, name: str | None = None, *, force: bool = False
    ) -> dict[str, Any]:
        source = str(Path(source).resolve())  # the service's working directory is not ours
        # the check replay takes a while
        return dict(self._long_call(300.0, "install_policy", source=source, name=name, force=force))

    def autopilot_round(self) -> dict[str, Any]:  # the policy autopilot; a round replays history
        return dict(self._long_call(300.0, "autopilot_round"))

    def autopilot_summary(self) -> dict[str, Any]:
        return dict(self.call("autopilot_summary"))

    def training_history(self) -> dict[str, Any]:
        return dict(self.call("training_history"))

    # -- lab mode's logins (jobs run as their submitter; lepton_tui.logins) --

    def check_login(self, name: str, user: str | None = None) -> dict[str, Any]:
        return dict(self.call("check_login", name=name, user=user))

    def set_run_as(self, name: str, mode: str) -> dict[str, Any]:
        return dict(self.call("set_run_as", name=name, mode=mode))

    def logins(self, user: str | None = None) -> list[dict[str, Any]]:
        return list(self.call("logins", user=user))

    # -- shared lab (issue 19): fair share, limits, host labels, arrays ------------------------

    def share_list(self) -> list[dict[str, Any]]:
        return list(self.call("share_list"))

    def share_set(self, scope: str, name: str, shares: Any) -> dict[str, Any]:
        return dict(self.call("share_set", scope=scope, name=name, shares=shares))

    def limit_list(self) -> list[dict[str, Any]]:
        return list(self.call("limit_list"))

    def limit_set(self, scope: str, name: str, *, gpus: Any = None, cpus: Any = None,
                  jobs: Any = None, clear: bool = False) -> dict[str, Any]:  # fmt: skip
        return dict(self.call("limit_set", scope=scope, name=name, gpus=gpus, cpus=cpus,
                              jobs=jobs, clear=clear))  # fmt: skip

    def label_host(self, name: str, add: Sequence[str] = (), remove: Sequence[str] = ()
                   ) -> dict[str, Any]:  # fmt: skip
        return dict(self.call("label_host", name=name, add=list(add), remove=list(remove)))

    def resolve_jobs(self, ref: str, live: bool = False) -> list[int]:
        return [int(i) for i in self.call("resolve_jobs", ref=str(ref), live=bool(live))]


class ViewStream:
    """A stream of JSON lines on a connection of its own: a `watch` (the lab service pushes a
    screen's data on its tick and whenever the ledger changes; each item a dict, as
    `screen_data.to_wire` made it) or a followed log (`key="text"`). `close()` from any thread
    ends it (a read blocked in another thread returns at once)."""

    def __init__(
        self, conn: _UnixConnection, response: http.client.HTTPResponse, key: str = "view"
    ) -> None:
        self._conn = conn
        self._response = response
        self._key = key
        self.closed = False
        # the reading thread alone closes the connection (http.client is not thread-safe): a
        # close() from another thread only shuts the socket down, which wakes that read
        self._lock = threading.Lock()
        self._reading = False

    def __iter__(self) -> Iterator[Any]:
        with self._lock:
            if self.closed:
                self._conn.close()
                return
            self._reading = True
        try:
            while not self.closed:
                try:
                    line = self._response.readline()
                except (OSError, ValueError, AttributeError, http.client.HTTPException) as exc:
                    if self.closed:
                        return
                    raise ServiceUnreachable(f"the lab service stopped answering: {exc}") from None
                if not line:
                    if self.closed or self._key == "text":  # a log ends when its job does
                        return
                    raise ServiceUnreachable("the lab service closed the stream")
                try:
                    item = json.loads(line)
                except ValueError:
                    raise LeptonError("the lab service sent a bad stream") from None
                if "error" in item:
                    _raise_error(item["error"])
                if self._key in item:  # else a heartbeat: the service is there, nothing new
                    yield item[self._key]
        finally:
            with self._lock:
                self.closed, self._reading = True, False
            self._conn.close()

    def close(self) -> None:
        """End the stream; safe to call from another thread and more than once."""
        with self._lock:
            self.closed = True
            reading = self._reading
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a read blocked in another thread
            except OSError:
                pass
        if not reading:
            self._conn.close()


def _open_stream(
    socket_path: str, url: str, args: dict[str, Any], key: str, timeout: float | None
) -> ViewStream:
    conn = _UnixConnection(socket_path, timeout)
    body = json.dumps({"args": args}).encode()
    headers = {PROTOCOL_HEADER: str(PROTOCOL), "Content-Type": "application/json"}
    try:
        conn.request("POST", url, body=body, headers=headers)
        response = conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ServiceUnreachable(
            f"cannot reach the lab service at {socket_path}: {reason}; "
            "is `lepton-tui serve --socket` running?"
        ) from None
    if response.status != 200:
        try:
            data = json.loads(response.read())
        except (ValueError, OSError, http.client.HTTPException):
            data = {}
        finally:
            conn.close()
        _raise_error(data.get("error") or {"message": f"the lab service refused the stream "
                                                      f"(HTTP {response.status})"})  # fmt: skip
    return ViewStream(conn, response, key)


def watch_view(
    socket_path: str, view: str, args: dict[str, Any], tick_s: float,
    timeout: float = CALL_TIMEOUT_S,
) -> ViewStream:  # fmt: skip
    """Open a `watch` stream of console view `view` on its own connection (a stream holds its
    connection to the end, so it never shares one with calls)."""
    return _open_stream(
        socket_path, "/v1/watch", {"view": view, "args": args, "tick_s": tick_s}, "view", timeout
    )


def follow_log_stream(
    socket_path: str, job_id: int, stream: str = "stdout", attempt_no: int | None = None
) -> ViewStream:
    """A job's log, followed by the lab service, on a connection of its own that `close()` ends
    from any thread (the console's job screen closes it when it goes)."""
    args = {"job_id": int(job_id), "stream": stream, "follow": True, "attempt_no": attempt_no}
    return _open_stream(socket_path, "/v1/logs", args, "text", None)
