"""Remote supervision of attempts: launch detached, status, cancel, logs, fencing.

Each attempt lives in `<root_dir>/jobs/<job>-<token>/` on its host. The command reaches the
host as data (inside the agent's request, written to a file there) and runs as `bash -c
<file content>` under a detached wrapper; nothing is spliced into a shell string. Every
function here is one round trip (one exec) to the host.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from inventory.errors import RemoteError
from inventory.fanout import Failed, Ok, fan_out
from inventory.hostspec import HostSpec, check_token
from inventory.remote import wrapper_source
from inventory.remote_call import agent_call
from inventory.transport import Transport

AttemptState = Literal["starting", "running", "done", "lost", "missing", "unreadable"]


@dataclass(frozen=True)
class LaunchSpec:
    """One attempt to start: the job's command, env, workdir, GPUs and time limit.

    `kill_grace_s` is how long the wrapper waits between TERM and KILL at the time limit;
    `end_patience_s` how long it keeps trying to record the job's end in a directory that is
    out of reach (longer than the dispatcher waits for a hidden directory); `start_timeout_s`
    how long the attempt may stay without a wrapper record before it reads as lost ("wrapper
    never started": killed or failed before it recorded itself).
    """

    job_id: int
    token: str
    command: str
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    gpu_ids: list[int] = field(default_factory=list)
    time_limit_s: float | None = None
    kill_grace_s: float = 10.0
    end_patience_s: float = 180.0
    start_timeout_s: float = 120.0
    signal: str | None = None  # "USR1@120": sent that many seconds before the time limit

    def __post_init__(self) -> None:
        check_token(self.token)
        if not isinstance(self.job_id, int) or self.job_id < 0:
            raise ValueError(f"invalid job id {self.job_id!r}")
        for key in self.env:
            if (
                not key
                or not (key[0].isalpha() or key[0] == "_")
                or not all(c.isalnum() or c == "_" for c in key)
                or not key.isascii()
            ):
                raise ValueError(f"invalid environment variable name {key!r}")
        if any(not isinstance(g, int) or g < 0 for g in self.gpu_ids):
            raise ValueError(f"invalid GPU ids {self.gpu_ids!r}")

    def request(self) -> dict[str, Any]:
        """The launch as the agent's JSON request item."""
        return asdict(self)


@dataclass(frozen=True)
class LaunchResult:
    """Where the attempt lives, and whether this token had been launched before (a no-op)."""

    remote_dir: str
    already_launched: bool


@dataclass(frozen=True)
class AttemptStatus:
    """What the host says about one attempt.

    state: "starting" (dir made, wrapper not recorded yet), "running", "done" (exit_code set;
    includes time limit: exit 124, timed_out, reason "time limit"; and cancelled runs:
    cancelled, reason "cancelled"), "lost" (wrapper gone without an exit code, or reboot),
    "missing" (no such attempt directory), "unreadable" (its files could not be read: permissions,
    a failing network filesystem; `reason` says why, and nothing is concluded from it). `pid` is
    the job's pid (its process group).
    """

    token: str
    state: AttemptState
    exit_code: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    pid: int | None = None
    reason: str | None = None
    timed_out: bool = False
    cancelled: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttemptStatus:
        """Build from the agent's (or to_json's) dict, ignoring unknown keys."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


def launch_batch(
    transport: Transport, spec: HostSpec, launches: Sequence[LaunchSpec], timeout: float = 30
) -> list[LaunchResult]:
    """Launch several attempts on one host in ONE round trip; results in the same order."""
    if not launches:
        return []
    reply = agent_call(
        transport,
        spec,
        "launch",
        timeout=timeout,
        launches=[launch.request() for launch in launches],
        wrapper=wrapper_source(),
    )
    return [LaunchResult(r["remote_dir"], bool(r["already_launched"])) for r in reply["launches"]]


def launch(
    transport: Transport, spec: HostSpec, launch: LaunchSpec, timeout: float = 30
) -> LaunchResult:
    """Start one attempt detached; a repeated call with the same token does nothing (exactly once)."""
    return launch_batch(transport, spec, [launch], timeout)[0]


def status(
    transport: Transport, spec: HostSpec, tokens: Sequence[str] | None, timeout: float = 30
) -> dict[str, AttemptStatus]:
    """Status of each token (None: of every attempt directory on the host), one round trip."""
    if tokens is not None:
        tokens = [check_token(t) for t in tokens]
    reply = agent_call(transport, spec, "status", timeout=timeout, tokens=tokens)
    return {t: AttemptStatus.from_dict(s) for t, s in reply["attempts"].items()}


def _per_token(reply: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The agent's per-token results, less the tokens it could not handle (an `error` each:
    a full or read-only filesystem, say); the caller sends those again."""
    return {t: r[key] for t, r in reply["results"].items() if "error" not in r}


def _one(spec: HostSpec, results: Mapping[str, Any], reply: Mapping[str, Any], token: str) -> Any:
    if token not in results:
        raise RemoteError(spec.name, f"attempt {token}: {reply['results'][token]['error']}")
    return results[token]


def cancel_batch(
    transport: Transport,
    spec: HostSpec,
    tokens: Sequence[str],
    grace_s: float = 10,
    timeout: float = 30,
) -> dict[str, bool]:
    """Cancel several attempts on one host in ONE round trip: TERM each job's process group and
    session now, KILL what is left after `grace_s` (left to a detached process on the host, so
    this returns at once). Per token: True if the host has the attempt, False if not; a token
    the host could not handle is left out."""
    return _per_token(_cancel_reply(transport, spec, tokens, grace_s, timeout), "found")


def _cancel_reply(
    transport: Transport, spec: HostSpec, tokens: Sequence[str], grace_s: float, timeout: float
) -> dict[str, Any]:
    if not tokens:
        return {"results": {}}
    return agent_call(
        transport,
        spec,
        "cancel",
        timeout=timeout,
        tokens=[check_token(t) for t in tokens],
        grace_s=float(grace_s),
    )


def cancel(
    transport: Transport, spec: HostSpec, token: str, grace_s: float = 10, timeout: float = 30
) -> bool:
    """Cancel one attempt (see `cancel_batch`); False if the host has no such attempt."""
    reply = _cancel_reply(transport, spec, [token], grace_s, timeout)
    return bool(_one(spec, _per_token(reply, "found"), reply, token))


def _kill_reply(
    transport: Transport, spec: HostSpec, tokens: Sequence[str], timeout: float
) -> dict[str, Any]:
    if not tokens:
        return {"results": {}}
    return agent_call(
        transport, spec, "kill_stale", timeout=timeout, tokens=[check_token(t) for t in tokens]
    )


def kill_stale_batch(
    transport: Transport, spec: HostSpec, tokens: Sequence[str], timeout: float = 30
) -> dict[str, int]:
    """Fencing in ONE round trip: SIGKILL each attempt's wrapper and job if they still run (its
    processes are also looked for by token among the user's, for an attempt whose files are gone
    or unreadable); per token, how many signals hit. A wrapper that has not started yet will not
    run its job. A token the host could not handle is left out."""
    return _per_token(_kill_reply(transport, spec, tokens, timeout), "killed")


def kill_stale(transport: Transport, spec: HostSpec, token: str, timeout: float = 30) -> int:
    """Fence one attempt (see `kill_stale_batch`); returns how many signals hit."""
    reply = _kill_reply(transport, spec, [token], timeout)
    return int(_one(spec, _per_token(reply, "killed"), reply, token))


def read_log(
    transport: Transport,
    spec: HostSpec,
    token: str,
    stream: Literal["stdout", "stderr"],
    offset: int,
    max_bytes: int = 1 << 20,
    timeout: float = 30,
) -> tuple[bytes, int]:
    """Up to `max_bytes` of a log from byte `offset`; returns (data, offset to read from next)."""
    if stream not in ("stdout", "stderr"):
        raise ValueError(f"unknown stream {stream!r}")
    if offset < 0 or max_bytes <= 0:
        raise ValueError("offset must be >= 0 and max_bytes > 0")
    reply = agent_call(
        transport,
        spec,
        "read_log",
        timeout=timeout,
        token=check_token(token),
        stream=stream,
        offset=int(offset),
        max_bytes=int(max_bytes),
    )
    return base64.b64decode(reply["data"]), int(reply["offset"])


def log_size(
    transport: Transport,
    spec: HostSpec,
    token: str,
    stream: Literal["stdout", "stderr"],
    timeout: float = 30,
) -> int:
    """How many bytes an attempt's stdout or stderr holds now (0 when it has none)."""
    if stream not in ("stdout", "stderr"):
        raise ValueError(f"unknown stream {stream!r}")
    reply = agent_call(
        transport, spec, "read_log", timeout=timeout, token=check_token(token), stream=stream,
        offset=0, max_bytes=0,
    )  # fmt: skip
    return int(reply.get("size", 0))


def launch_many(
    targets: Mapping[str, tuple[Transport, HostSpec, Sequence[LaunchSpec]]], timeout: float = 30
) -> dict[str, Ok[list[LaunchResult]] | Failed]:
    """Launch on many hosts in parallel, one round trip per host; one result per host."""
    calls: dict[str, Callable[[], list[LaunchResult]]] = {}
    for host, (transport, spec, launches) in targets.items():
        calls[host] = _bind(launch_batch, transport, spec, list(launches), timeout)
    return fan_out(calls, timeout=timeout + 1)


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)
