"""The truth a host tells when it answers again about an attempt the ledger presumed lost.

An attempt is lost on a presumption when its host does not answer (down past the grace,
removed) or hides its directory for the grace. When the host answers, what really happened
is recorded, and the job is corrected where that is still consistent: the lost attempt is the
job's latest and the job is where the loss left it (`queued` for another try, or `failed`).
A job that has moved on (placed again, cancelled) keeps its state; only the attempt is
corrected. One pure function per moment (before fencing, after it), tested from a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inventory.supervisor import AttemptStatus
from lepton_tui.dispatch import outcome
from lepton_tui.rows import AttemptRow

# where a presumed loss leaves a job: the states a host's truth may still correct
AMENDABLE_JOB_STATES = frozenset({"queued", "failed"})


@dataclass(frozen=True)
class Amendment:
    """A correction of an attempt (and maybe its job) from what its host says.

    `attempt_state`/`job_state` None: that row keeps its state (its fields may still change).
    `fence`: whether the copy must still be killed (False for one taken back as running).
    """

    note: str
    attempt_state: str | None = None
    attempt_fields: dict[str, Any] = field(default_factory=dict)
    job_state: str | None = None
    job_fields: dict[str, Any] = field(default_factory=dict)
    fence: bool = True


def ended_state(st: AttemptStatus) -> tuple[str, str | None]:
    """An ended attempt's state and reason from its host's report (`outcome.ended_state`)."""
    return outcome.ended_state(
        st.exit_code, cancelled=st.cancelled, timed_out=st.timed_out, reason=st.reason
    )


def _consistent(job_state: str, latest: bool) -> bool:
    return latest and job_state in AMENDABLE_JOB_STATES


def before_fence(
    a: AttemptRow, job_state: str, st: AttemptStatus, latest: bool, now: float
) -> Amendment | None:
    """A lost attempt its host reports ended or still running: what the ledger records.

    Ended: its real exit code, on the attempt and (where consistent) on the job. Running and
    lost only on a presumption (`presumed`), where consistent: taken back as the job's running
    attempt instead of killed (the job never ran twice). Otherwise None: fence it as usual.
    """
    where = f"{a.host} answered again"
    if st.state == "done":
        state, reason = ended_state(st)
        ended = st.ended_at or now
        started = st.started_at or a.started_at
        if started is not None and ended < started:
            ended = started
        fields: dict[str, Any] = {
            "exit_code": st.exit_code, "ended_at": ended, "fenced_at": now, "cost": None,
            "energy_wh": None,
        }  # fmt: skip
        if st.started_at:
            fields["started_at"] = st.started_at
        why = f"{where}: attempt {a.attempt_no} ended with exit code {st.exit_code}"
        if reason and reason != f"exit code {st.exit_code}":  # a time limit, a cancel, a signal
            why += f" ({reason})"
        if not _consistent(job_state, latest):
            return Amendment(f"{why}; job left {job_state}", state, fields)
        target = "failed" if state == "cancelled" else state  # no cancel was asked here
        job_fields: dict[str, Any] = {"exit_code": st.exit_code, "ended_at": ended,
                                      "host": a.host}  # fmt: skip
        if st.started_at:
            job_fields["started_at"] = st.started_at
        return Amendment(why, state, fields, target, job_fields)
    if st.state == "running" and a.presumed and _consistent(job_state, latest):
        started = st.started_at or a.started_at or now
        why = f"{where}: attempt {a.attempt_no} still runs there; taken back, not run again"
        return Amendment(
            why,
            "running",
            {"ended_at": None, "exit_code": None, "cost": None, "energy_wh": None,
             "started_at": started},
            "running",
            {"ended_at": None, "exit_code": None, "host": a.host, "started_at": started},
            fence=False,
        )  # fmt: skip
    return None


def after_fence(
    a: AttemptRow, job_state: str, st: AttemptStatus, killed: int, latest: bool
) -> Amendment | None:
    """A presumed-lost attempt whose launch may have run, fenced with nothing to kill and never
    seen started: it never ran. Its loss is free again (no retry spent), and a job that failed
    for want of retries goes back to the queue."""
    if not (a.presumed and a.launch_sent_at is not None):
        return None
    if killed or st.started_at or a.started_at or st.state not in ("missing", "starting", "lost"):
        return None
    why = f"{a.host} answered again: attempt {a.attempt_no} never started there"
    fields = {"launch_sent_at": None}
    if _consistent(job_state, latest) and job_state == "failed":
        return Amendment(
            f"{why}; requeued (no retry spent)", None, fields, "queued",
            {"ended_at": None, "exit_code": None, "host": None},
        )  # fmt: skip
    return Amendment(why, None, fields)
