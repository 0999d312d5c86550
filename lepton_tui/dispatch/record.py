"""Steps 2 and 3 of the tick: poll every host, and record what each said.

Per host, in one transaction: samples, attempt transitions (running, done with its exit code,
lost), the host's state. A host whose polls keep failing is marked down and its attempts lost.
What each transition does to the attempt and its job is decided in `outcome`; this module reads
what a rule needs from the ledger and writes its answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from inventory.fanout import Failed, Ok, fan_out
from inventory.supervisor import AttemptStatus
from lepton_tui.dispatch import outcome, runas, slurm_requeue
from lepton_tui.dispatch import slurm as dslurm
from lepton_tui.dispatch.common import Ctx, TickResult, bind, log, raiser, settle, status_of
from lepton_tui.dispatch.hostpool import Poll, poll_host
from lepton_tui.dispatch.samples import record_samples
from lepton_tui.errors import LeptonError
from lepton_tui.logins import record_login
from lepton_tui.rows import ActiveAttempt, AttemptRow

MIN_FAILED_POLLS = 2  # a host is down after this many failed polls in a row spanning the grace


def orphans(
    ctx: Ctx, hosts: list[dict[str, Any]], active: list[ActiveAttempt]
) -> list[ActiveAttempt]:
    """Lose attempts on hosts removed from the ledger (`hosts rm --force`); return the rest."""
    names = {h["name"] for h in hosts}
    gone = [a for a in active if a.host not in names]
    if not gone:
        return active
    with ctx.ledger.tx():  # left unfenced: `fence.fence_removed` stops what still runs there
        for a in gone:
            js = ctx.ledger.job_state(a.job_id)
            lose(ctx, a, f"host {a.host} was removed", js, presumed=True)
    for a in gone:
        settle(ctx.ledger, a.token)
    return [a for a in active if a.host in names]


def poll(
    ctx: Ctx,
    hosts: list[dict[str, Any]],
    active: list[ActiveAttempt],
    result: TickResult,
    poll_fn: Any = None,
) -> dict[str, Ok[Poll] | Failed]:
    """Poll every host in parallel, one round trip each, or in lab mode one per owner with
    attempts there (`runas.poll`; `poll_fn`: the host poll, a seam)."""
    poll_fn = poll_fn or poll_host
    tokens: dict[str, list[str]] = {h["name"]: [] for h in hosts}
    atts: dict[str, list[AttemptRow]] = {h["name"]: [] for h in hosts}
    for a in [*active, *ctx.ledger.unfenced_attempts()]:
        tokens.setdefault(a.host, []).append(a.token)
        atts.setdefault(a.host, []).append(a)
    calls = {}
    for host in hosts:
        try:
            ctx.pool.get(host)  # a bad row fails here, naming its field
        except LeptonError as exc:
            calls[host["name"]] = raiser(exc)
            continue
        if dslurm.is_slurm(host):  # one squeue however many jobs
            calls[host["name"]] = bind(ctx.slurm.poll, host, tokens[host["name"]])
            continue
        owners = runas.by_owner(ctx.pool, atts[host["name"]])
        calls[host["name"]] = bind(runas.poll, ctx.pool, host, owners, ctx.timeout_s, poll_fn)
    polls = fan_out(calls, timeout=ctx.timeout_s)
    result.polled = len(polls)
    result.failed = sum(1 for p in polls.values() if not isinstance(p, Ok))
    ctx.stats.polls += result.polled
    ctx.stats.poll_failures += result.failed
    return polls


def record_poll(
    ctx: Ctx,
    host: dict[str, Any],
    answer: Poll,
    active: list[ActiveAttempt],
    result: TickResult,
) -> list[ActiveAttempt]:
    """Record one host's poll in one transaction; return `starting` attempts to (re)launch."""
    name = host["name"]
    now = ctx.clock()
    relaunch = []
    ended: list[str] = []
    requeued: list[str] = []  # runs Slurm requeued: settled, the job goes on
    with ctx.ledger.tx():
        ctx.ledger.host_answered(host["id"], now, discovered_capacity(host, answer))
        if host["state"] != "up":
            ctx.ledger.event("host.up", f"host {name} is up", host=name, actor="dispatcher")
        record_samples(ctx.ledger, answer, now)
        for user, why in answer.login_failures.items():  # lab mode: whose login failed
            record_login(ctx.ledger, name, user, False, how="poll", error=why, now=now)
        if answer.slurm_runs:  # runs Slurm requeued end first: the poll's allocation is the next's
            active, requeued = slurm_requeue.split_requeued(
                ctx.ledger, name, answer.slurm_runs, active, now
            )
        if answer.slurm_nodes:  # before an end settles the cost (a price per node-hour)
            ctx.ledger.note_attempt_nodes(answer.slurm_nodes)
        if answer.slurm_alloc:  # what Slurm allocated: charged by it (a request rounded up)
            ctx.ledger.note_attempt_alloc(answer.slurm_alloc)
        for a in active:
            if a.host != name:
                continue
            st = slurm_requeue.earlier_start(
                a, status_of(answer, a.token), ctx.ledger.slurm_restarts
            )
            what = apply_status(ctx, a, st)
            if what == "relaunch":
                relaunch.append(a)
            elif what == "ended":
                ended.append(a.token)
        for token in [*requeued, *ended]:  # cost settled in the same transaction as the end
            settle(ctx.ledger, token)
    result.finished += len(ended)
    return relaunch


def apply_status(ctx: Ctx, a: ActiveAttempt, st: AttemptStatus) -> str | None:
    """Move one attempt (and its job) as its host reports; inside the host's transaction.
    Returns "ended", "relaunch" or None."""
    token, js = a.token, ctx.ledger.job_state(a.job_id)
    what = outcome.action(a.state, st.state, js)
    if a.state == "starting" and a.slurm_job_id:  # Slurm's pending reason, while it waits
        dslurm.note_pending(ctx.ledger, a.job_id, st)
    if what == "start":
        mark_running(ctx, a, st)
        return None
    if what == "end":
        finish(ctx, a, st, js)
        return "ended"
    if what == "missing":
        # Not proof that the job died: a network filesystem can hide the directory for a
        # while. Lose it only once it has stayed out of sight for the host grace period.
        # (kept in the ledger: a restarted dispatcher, or `serve --once`, goes on counting)
        first = a.missing_since
        if first is None:
            first = ctx.clock()
            ctx.ledger.note_missing(token, first)
        if ctx.clock() - first < ctx.setting("host_grace_s"):
            return None
        why = f"its directory has been gone from the host for {ctx.clock() - first:.0f}s"
        lose(ctx, a, f"attempt lost on {a.host}: {why}", js)
        return "ended"
    if a.missing_since is not None and st.state != "unreadable":
        ctx.ledger.note_missing(token, None)
    if what == "lose" and st.state == "lost":
        why = st.reason or "its wrapper is gone"
        if st.started_at and not a.started_at:  # it did run: that spends a retry
            ctx.ledger.note_started(token, st.started_at)
        lose(ctx, a, f"attempt lost on {a.host}: {why}", js)
        return "ended"
    if what == "unreadable":  # nothing concluded; said once, so someone can look
        if not ctx.ledger.said_unreadable(a.job_id, token):
            ctx.ledger.event(
                "attempt.unreadable",
                f"job {a.job_id} attempt {a.attempt_no}: its files on {a.host} "
                f"cannot be read ({st.reason}); left as it is until they can",
                job_id=a.job_id, host=a.host, actor="dispatcher", data={"token": token},
            )  # fmt: skip
        return None
    if what == "lose":  # missing while starting, and a cancel is asked
        lose(ctx, a, "before it started", js)
        return "ended"
    return "relaunch" if what == "relaunch" else None


def mark_running(ctx: Ctx, a: AttemptRow, st: AttemptStatus | None) -> None:
    """A `starting` attempt runs (seen by its host, or its launch answered)."""
    started_at = (st.started_at if st else None) or ctx.clock()
    change = outcome.started(ctx.ledger.job_state(a.job_id))
    if change.job is not None:
        ctx.ledger.transition_attempt(
            a.token, change.attempt, job_state=change.job,
            job_fields={"started_at": started_at}, started_at=started_at,
        )  # fmt: skip
    else:
        ctx.ledger.transition_attempt(a.token, change.attempt, started_at=started_at)


def finish(ctx: Ctx, a: ActiveAttempt, st: AttemptStatus, js: str) -> None:
    """An attempt its host reports ended: its exit code, on the attempt and the job."""
    state, reason = outcome.ended_state(
        st.exit_code, cancelled=st.cancelled, timed_out=st.timed_out, reason=st.reason
    )
    sent = js == "cancelling" and state == "failed" and ctx.ledger.cancel_sent(a.token)
    requeue = None  # `submit --requeue-on-timeout`
    if a.job.requeue_on_timeout:
        requeue = outcome.Requeue(a.job.max_requeues, a.job.requeues)
    change = outcome.ended(js, state, reason, sent, requeue)
    fields: dict[str, Any] = {"exit_code": st.exit_code, "ended_at": st.ended_at or ctx.clock()}
    if st.started_at:
        # The host's own clock for both ends: a start this loop stamped with its clock
        # (launch seen before the wrapper wrote its pid) could land after a quick job's end.
        fields["started_at"] = st.started_at
    started = fields.get("started_at") or a.started_at
    if started is not None and fields["ended_at"] < started:
        fields["ended_at"] = started
    if change.job is None:
        ctx.ledger.transition_attempt(a.token, change.attempt, reason=reason, **fields)
        return
    job_fields = {"exit_code": st.exit_code, "ended_at": fields["ended_at"]}
    if js == "starting" and st.started_at:
        job_fields["started_at"] = st.started_at
    if change.job == "queued" and requeue is not None:  # to run again: LEPTON_RESTART_COUNT
        job_fields = {"requeues": requeue.done + 1, "host": None}
    ctx.ledger.transition_attempt(
        a.token, change.attempt, job_state=change.job, reason=change.reason,
        job_fields=job_fields, **fields,
    )  # fmt: skip


def lose(ctx: Ctx, a: AttemptRow, why: str, js: str, *, presumed: bool = False) -> None:
    """Mark an attempt lost; requeue its job while retries last, else fail it (`outcome.lost`).

    `presumed`: the host did not answer (down, removed), so what became of the attempt is
    not known. One whose launch may have gone out (`launch_sent_at`) then counts as started:
    it is *unknown*, never "not started", until its host says (`truth`), so a job with no
    retries left is not placed again while that copy may run.
    """
    if presumed:
        ctx.ledger.mark_presumed(a.token)  # first: it decides whether the attempt may have run
    tally = ctx.ledger.retry_tally(a.job_id, a.token)
    retries = outcome.Retries()
    if tally is not None:
        retries = outcome.Retries(
            # attempts requeued at their time limit ran, but spent no retry
            allowed=tally.allowed, ran=tally.ran - tally.requeued,
            made=tally.made - tally.requeued, this_ran=tally.this_ran,
            unseen=tally.unseen,
        )  # fmt: skip
    change = outcome.lost(js, why, retries, presumed=presumed)
    ctx.ledger.transition_attempt(
        a.token, change.attempt, job_state=change.job, reason=change.reason
    )
    if change.job == "queued":
        ctx.ledger.unassign_job(a.job_id)


def record_failure(
    ctx: Ctx, host: dict[str, Any], failed: Failed, active: list[ActiveAttempt], now: float
) -> bool:
    """A missed poll: count it in the host's streak; mark the host down once consecutive
    failed polls (at least MIN_FAILED_POLLS) span the grace period. True if down.

    The time since the host last answered is no measure: one tick slower than the grace (a
    loaded login node) would mark a healthy host down on its first missed poll, and its
    jobs, running fine, would be lost with it.
    """
    name = host["name"]
    grace = ctx.setting("host_grace_s")
    streak = int(host.get("failed_polls") or 0) + 1
    since = host.get("failing_since")
    since = now if since is None else float(since)
    with ctx.ledger.tx():
        ctx.ledger.host_poll_failed(host["id"], failed.reason, streak, since)
        if host["state"] == "down":
            return True
        if streak < MIN_FAILED_POLLS or now - since < grace:
            return False
        ctx.ledger.mark_host_down(host["id"])
        ctx.ledger.event(
            "host.down",
            f"host {name} is down: {streak} polls in a row failed over {now - since:.0f}s "
            f"({failed.reason})",
            host=name, actor="dispatcher",
        )  # fmt: skip
        if dslurm.is_slurm(host):  # its jobs run in Slurm, not on the node lepton
            active = []  # reaches: none is lost; they are reconciled when it answers again
        for a in active:
            if a.host == name:
                lose(ctx, a, f"host {name} is down", ctx.ledger.job_state(a.job_id), presumed=True)
    for a in active:
        if a.host == name:
            settle(ctx.ledger, a.token)
    log.warning("host %s is down: %s", name, failed.reason)
    return True


def discovered_capacity(host: Mapping[str, Any], answer: Poll) -> dict[str, Any]:
    """Probed capacity, except fields an admin fixed when adding the host (capacity_json)."""
    fixed = json.loads(host.get("capacity_json") or "{}")
    found: dict[str, Any] = {
        "cpus": float(answer.cpus),
        "mem_mb": int(answer.mem_total_mb),
        "gpus": len(answer.gpus),
        "gpu_mem_mb": int(sum(g.mem_total_mb or 0 for g in answer.gpus)),
    }
    if answer.gpus and answer.gpus[0].name:
        found["gpu_model"] = answer.gpus[0].name
    if answer.nodes is not None:  # a Slurm partition: its nodes, for the fleet panel
        nodes = json.dumps(answer.nodes, separators=(",", ":"))
        if nodes != host.get("slurm_nodes"):  # written when they changed, not every tick
            found["slurm_nodes"] = nodes
    if answer.slurm_pending is not None:  # its own queue: other users' pending jobs
        queue = json.dumps(answer.slurm_pending, separators=(",", ":"), sort_keys=True)
        if queue != host.get("slurm_pending"):
            found["slurm_pending"] = queue
    elif answer.nodes is not None and host.get("slurm_pending"):
        found["slurm_pending"] = None  # the listing failed: no stale claims on the pool
    return {k: v for k, v in found.items() if k not in fixed}
