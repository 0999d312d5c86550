"""A job Slurm requeues by itself (`scontrol requeue`, a node failure or a preemption with
requeue) is charged for every run, each for its own time and allocation.

Slurm keeps the job (one job id, the same name and comment), puts it back in its queue and runs
it again. Lepton keeps one attempt per run, as for its own retries: the tick's one squeue (or
sacct) already says, per job, how many times Slurm restarted it (squeue's RestartCnt) and its
submit time, which Slurm resets to the moment it requeued it. When the count has risen past
the one the live attempt began at (or, under sacct, which has no count, when a run lepton saw
start shows waiting again or started again later), the attempt's run ends `requeued` and is
settled, and a new attempt takes the live token for Slurm's next run (`split_slurm_run`).

When the run lepton saw ended: Slurm's requeue time (the submit time, once it is later than the
run's start), held between that run's start and the next run's start; without it, the tick
that saw it requeued (an upper bound). A run Slurm started and requeued between two ticks,
never seen running, has no known start and is recorded as a run with no charge; several
requeues between two ticks count as one (the span runs to the last requeue).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from inventory.slurm import PENDING_STATES, SlurmJob
from inventory.supervisor import AttemptStatus
from lepton_tui.rows import ActiveAttempt

REQUEUED_WHY = "requeued by Slurm"
RUN_TOKEN_RE = re.compile(r"(?P<live>.+)-r[0-9]+")  # an ended run's token: `split_slurm_run`


def slurm_token(token: str) -> str:
    """The token a Slurm job's name, comment and directory carry, for any of its runs' attempts
    (an ended run's `TOKEN-rN` too: attempt tokens are hex, with no `-r`)."""
    m = RUN_TOKEN_RE.fullmatch(token)
    return m.group("live") if m else token


@dataclasses.dataclass(frozen=True)
class SlurmRun:
    """One Slurm job's current run, as the tick's squeue/sacct row says it."""

    pending: bool  # waiting in Slurm's queue (again, after a requeue)
    start: float | None  # Slurm's start of the run (None while pending)
    restarts: int | None  # how many times Slurm requeued it (None: sacct, not said)
    submitted: float | None  # its submit time: the last requeue's, once requeued


def run_of(job: SlurmJob) -> SlurmRun:
    """The run of a squeue/sacct row (a pending job's start time is only Slurm's forecast)."""
    pending = job.state in PENDING_STATES
    return SlurmRun(pending, None if pending else job.start, job.restarts, job.submitted)


def requeued(a: ActiveAttempt, run: SlurmRun, base: int) -> bool:
    """Whether Slurm requeued the job since attempt `a`'s run began at restart count `base`,
    and the tick's row shows it waiting again or in a later run. Not yet while the row still
    shows the run `a` saw (Slurm counts the restart while it tears that run down, COMPLETING,
    before it resets the submit time to the requeue's): the next tick tells its end."""
    if a.started_at is not None:
        later = run.start is not None and run.start > a.started_at + 1
    else:  # a run lepton never saw: a later one began after Slurm reset the submit time
        later = (run.start is not None and run.submitted is not None
                 and run.submitted > a.created_at + 1 and run.start >= run.submitted)  # fmt: skip
    if run.restarts is not None:
        # a submit time Slurm reset after the run lepton saw began: a requeue since, even where
        # the row shows the job ended (requeued and cancelled between two ticks)
        reset = (a.started_at is not None and run.submitted is not None
                 and run.submitted > a.started_at + 1)  # fmt: skip
        return run.restarts > base and (run.pending or later or reset)
    if a.state != "running" or a.started_at is None:  # sacct: only a run seen can tell
        return False
    return run.pending or later


def run_end(a: ActiveAttempt, run: SlurmRun, now: float) -> float:
    """When the run attempt `a` recorded ended: Slurm's requeue time (a submit time after the
    run's start; one before it is the job's first submission, not reset), else `now`; never
    after the next run's start nor before its own."""
    reset = run.submitted is not None and (a.started_at is None or run.submitted > a.started_at)
    end = run.submitted if reset and run.submitted is not None else now
    if run.start is not None and (a.started_at is None or run.start > a.started_at + 1):
        end = min(end, run.start)  # the next run's start (not the run `a` saw, still shown)
    end = max(end, a.started_at if a.started_at is not None else a.created_at)
    return min(end, now)


def split_requeued(
    ledger: Any, name: str, runs: Mapping[str, SlurmRun], active: Sequence[ActiveAttempt],
    now: float,
) -> tuple[list[ActiveAttempt], list[str]]:  # fmt: skip
    """End the runs Slurm requeued on host `name` (inside the host's transaction, before the
    poll's allocations are written: they are the next run's). Returns the active attempts, the
    split ones read back as their new attempts, and the tokens of the ended runs to settle."""
    out: list[ActiveAttempt] = []
    ended: list[str] = []
    for a in active:
        run = runs.get(a.token) if a.host == name else None
        if run is None or not (run.restarts or requeued(a, run, 0)):  # the common case: no query
            out.append(a)
            continue
        base = ledger.slurm_restarts(a.token)
        if not requeued(a, run, base):
            out.append(a)
            continue
        seen = "" if a.started_at is not None else "; not seen running: no charge"
        restarts = run.restarts if run.restarts is not None else base + 1
        ended.append(
            ledger.split_slurm_run(
                a.token, ended_at=run_end(a, run, now), restarts=restarts,
                why=f"{REQUEUED_WHY} (restart {restarts}){seen}",
            )
        )  # fmt: skip
        fresh = ledger.active_attempt(a.token)
        if fresh is not None:
            out.append(fresh)
    return out, ended


def earlier_start(
    a: ActiveAttempt, st: AttemptStatus, restarts_of: Callable[[str], int]
) -> AttemptStatus:
    """The status of attempt `a` with no start where the one Slurm gives is an earlier run's
    (before `a` was opened for a later run: a requeued job cancelled while it waits again may
    show its last start): that run is charged on its own attempt, not again on this one.

    Only an attempt a split opened (`restarts_of(token)` above 0) is checked: its `created_at`
    is on Slurm's clock (the requeue's time or the next run's start). A first run's is lepton's
    intent, and a controller whose clock runs behind the login node's may report a start before
    it: that start is the run's own, and is charged. `restarts_of` is read only in that rare case."""
    if not a.slurm_job_id or st.started_at is None or st.started_at >= a.created_at - 1:
        return st
    if restarts_of(a.token) <= 0:
        return st
    return dataclasses.replace(st, started_at=st.ended_at)
