"""How an attempt and its job change state: the rules of a job's life, in one pure place.

Every function here takes plain values (the job's state, what the host said, the retries) and
returns an `Outcome`: the attempt's new state, the job's new state (None: it keeps its own),
and the reason recorded with the change. Nothing here reads or writes the ledger; the steps of
the tick (`record`, `launch`, `slurm`) read what a rule needs, ask it, and write its answer.

Job states: queued -> starting -> running -> {succeeded, failed, cancelled, timeout}; a cancel
request moves a running job through `cancelling`. A lost attempt requeues its job while
retries last. A retry is spent by an attempt that ran (or may have); one lost before its job
ever ran is free, up to FREE_LOSSES per job.
"""

from __future__ import annotations

from dataclasses import dataclass

FREE_LOSSES = 3  # attempts per job lost before they ran that spend no retry
ACTIVE_JOB_STATES = frozenset({"starting", "running", "cancelling"})


@dataclass(frozen=True)
class Outcome:
    """A change of one attempt and (maybe) its job."""

    attempt: str  # the attempt's new state
    job: str | None  # the job's new state; None: the job keeps its state
    reason: str | None = None


@dataclass(frozen=True)
class Retries:
    """A job's retries and how its attempts went, for a loss.

    `ran`: attempts that ran or may have (seen running, or lost unseen after their launch went
    out); `made`: all its attempts; `this_ran`: whether the attempt being lost is one of `ran`;
    `unseen`: whether the ledger never saw it running."""

    allowed: int = 0
    ran: int = 0
    made: int = 0
    this_ran: bool = False
    unseen: bool = True

    @property
    def spent(self) -> int:
        """Retries spent: every attempt that ran, and every free loss past FREE_LOSSES."""
        return self.ran + max(0, self.made - self.ran - FREE_LOSSES)


def action(attempt_state: str, host_says: str, job_state: str) -> str | None:
    """What to do with an active attempt given what its host says of it (`running`, `done`,
    `lost`, `missing`, `unreadable`): `start` (mark it running), `end`, `lose`, `missing`
    (lose it once it has stayed out of sight for the host grace), `unreadable` (say so, change
    nothing), `relaunch` (a `starting` attempt the host has never seen), or None."""
    if host_says == "running" and attempt_state == "starting":
        return "start"
    if host_says == "done":
        return "end"
    if host_says == "missing" and attempt_state == "running":
        return "missing"
    if host_says == "lost":
        return "lose"
    if host_says == "unreadable":
        return "unreadable"
    if host_says == "missing" and attempt_state == "starting":
        # lost, not cancelled, when a cancel is asked: a launch still in flight may yet start
        # it, and a lost attempt is fenced (looked for by token and killed) before anything
        return "lose" if job_state == "cancelling" else "relaunch"
    return None


def started(job_state: str) -> Outcome:
    """The host runs a `starting` attempt: its job runs too, unless it is being cancelled
    (the cancel goes out next tick)."""
    return Outcome("running", "running" if job_state == "starting" else None)


def ended_state(
    exit_code: int | None, *, cancelled: bool, timed_out: bool, reason: str | None
) -> tuple[str, str | None]:
    """An ended attempt's state and reason from its host's report."""
    if cancelled:
        return "cancelled", reason or "cancelled"
    if timed_out:
        return "timeout", reason or "time limit reached"
    if exit_code == 0:
        return "succeeded", None
    return "failed", reason or f"exit code {exit_code}"


def ended(job_state: str, attempt_state: str, reason: str | None, cancel_sent: bool) -> Outcome:
    """An attempt ended on its host as `attempt_state` (see `ended_state`): the job ends alike,
    except that a cancel nobody asked for here (an admin by hand) fails a running job, and a
    job whose cancel went out is cancelled however its process died."""
    target = attempt_state
    if job_state == "running" and attempt_state == "cancelled":
        target = "failed"
    if job_state == "cancelling" and attempt_state == "failed" and cancel_sent:
        target = "cancelled"
    return Outcome(attempt_state, target if job_state in ACTIVE_JOB_STATES else None, reason)


def lost(job_state: str, why: str, retries: Retries, *, presumed: bool = False) -> Outcome:
    """An attempt is lost (host down or removed, wrapper gone, directory gone, a launch that
    failed): a cancelled job ends cancelled; a starting or running one is requeued while its
    retries last, else failed; a job in any other state keeps it.

    `presumed`: the host did not answer, so what became of the attempt is unknown; one whose
    launch may have gone out is said so (it counts as having run)."""
    if presumed and retries.this_ran and retries.unseen:
        why = f"{why}; its launch may have run there"
    if job_state == "cancelling":
        return Outcome("lost", "cancelled", f"cancelled ({why})")
    if job_state not in ("starting", "running"):
        return Outcome("lost", None, why)
    spent = retries.spent
    if spent > retries.allowed:
        return Outcome("lost", "failed", f"{why} (no retries left)")
    if retries.this_ran or spent > retries.ran:
        how = f"retry {spent} of {retries.allowed}"
    else:
        how = "it had not started: no retry spent"
    return Outcome("lost", "queued", f"requeued ({how}): {why}")


def gave_up(job_state: str, why: str) -> Outcome:
    """An attempt that can never launch (bad spec, refused, too many failed submissions): it
    fails, and so does its job (cancelled if a cancel was asked)."""
    target = "cancelled" if job_state == "cancelling" else "failed"
    return Outcome("failed", target if job_state != target else None, why)


def cancelled_before_start(where: str = "it started") -> Outcome:
    """A `starting` attempt whose job was cancelled before its launch went out."""
    return Outcome("cancelled", "cancelled", f"cancelled before {where}")
