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
    """What the service's `hosts add --slurm` stored, shaped as `dispatch.slurm.SlurmOnboarded`."""

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
            self._drop()
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

    def add_host(self, name: str, same_machine_ok: bool = False, **fields: Any) -> dict[str, Any]:
        return dict(self.call("add_host", name=name, **fields))

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
        before = self.timeout  # a long history under several policies takes a while
        self.timeout = max(before, REPLAY_TIMEOUT_S)
        try:
            return dict(self.call("replay", since=since, until=until, policies=list(policies),
                                  cost_weight=cost_weight))  # fmt: skip
        finally:
            self.timeout = before

    def probe_host(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        """The service samples the host (with its own keys); the wait covers the probe's."""
        before = self.timeout
        self.timeout = max(before, float(timeout) + 15.0)
        try:
            return dict(self.call("probe_host", name=name, timeout=timeout))
        finally:
            self.timeout = before

    # -- the DQN's weights --

    def policies(self) -> list[dict[str, Any]]:
        return list(self.call("policies"))

    def install_policy(
        self, source: str, name: str | None = None, *, force: bool = False
    ) -> dict[str, Any]:
        before = self.timeout  # the check replay takes a while
        self.timeout = max(before, 300.0)
        try:
            source = str(Path(source).resolve())  # the service's working directory is not ours
            return dict(self.call("install_policy", source=source, name=name, force=force))
        finally:
            self.timeout = before

    # -- lab mode's logins (jobs run as their submitter; lepton_tui.logins) --

    def check_login(self, name: str, user: str | None = None) -> dict[str, Any]:
        return dict(self.call("check_login", name=name, user=user))

    def set_run_as(self, name: str, mode: str) -> dict[str, Any]:
        return dict(self.call("set_run_as", name=name, mode=mode))

    def logins(self, user: str | None = None) -> list[dict[str, Any]]:
        return list(self.call("logins", user=user))
