"""What the dispatcher's steps share: their dependencies (`Ctx`), counters and small helpers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inventory.supervisor import AttemptStatus
from lepton_tui.dispatch.hostpool import HostPool, Poll
from lepton_tui.dispatch.slurm import SlurmHosts
from lepton_tui.ledger import Ledger

log = logging.getLogger("lepton_tui.dispatcher")  # one name for the whole loop's log


@dataclass
class Stats:
    """What the dispatcher did, for the benchmark, tests and the console."""

    ticks: int = 0
    polls: int = 0
    poll_failures: int = 0
    launches: int = 0
    relaunches: int = 0
    cancels_sent: int = 0
    fenced: int = 0
    placements: int = 0
    cpu_s: float = 0.0  # this process's CPU time spent inside tick()
    last_tick_s: float = 0.0
    last_round_trips: int = 0
    phase_s: dict[str, float] = field(default_factory=dict)  # wall time per phase, summed


@dataclass
class TickResult:
    """One tick's outcome (for `serve --once` and tests)."""

    polled: int = 0
    failed: int = 0
    placed: int = 0
    launched: int = 0
    finished: int = 0
    reconciled: bool = True
    round_trips: int = 0


@dataclass(frozen=True)
class Ctx:
    """What a step of the tick works with: the ledger, the hosts' connections, the clock,
    the counters, the per-call timeout and the settings (read through `setting`)."""

    ledger: Ledger
    pool: HostPool
    slurm: SlurmHosts
    clock: Callable[[], float]
    stats: Stats
    timeout_s: float
    setting: Callable[[str], Any]


def status_of(poll: Poll, token: str) -> AttemptStatus:
    """What a poll says of an attempt (`missing` when it says nothing)."""
    return poll.attempts.get(token) or AttemptStatus(token, "missing")


def settle(ledger: Ledger, token: str) -> None:
    """Compute and store an ended attempt's cost."""
    from lepton_tui.economics import settle_attempt

    try:
        settle_attempt(ledger, token)
    except Exception:  # noqa: BLE001
        log.exception("settle_attempt(%s) failed", token)


def bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


def raiser(exc: BaseException) -> Callable[[], Any]:
    def call() -> Any:
        raise exc

    return call
