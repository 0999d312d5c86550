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
from lepton_tui.dispatch import outcome
from lepton_tui.dispatch import slurm as dslurm
from lepton_tui.dispatch.common import Ctx, TickResult, bind, log, raiser, settle, status_of
from lepton_tui.dispatch.hostpool import Poll, poll_host
from lepton_tui.dispatch.samples import record_samples
from lepton_tui.errors import LeptonError

MIN_FAILED_POLLS = 2  # a host is down after this many failed polls in a row spanning the grace
# an attempt that may have started: seen running, or lost unseen after its launch went out
_MAY_HAVE_RUN = "(started_at IS NOT NULL OR (presumed = 1 AND launch_sent_at IS NOT NULL))"


def active_attempts(ctx: Ctx) -> list[dict[str, Any]]:
    """`starting` and `running` attempts with what their jobs say."""
    return ctx.ledger.query(
        "SELECT a.*, j.state AS job_state, j.retries, j.attempts_used, j.time_limit_s, "
        "j.command, j.workdir, j.env FROM attempts a JOIN jobs j ON j.id = a.job_id "
        "WHERE a.state IN ('starting', 'running') ORDER BY a.id"
    )


def unfenced(ctx: Ctx) -> list[dict[str, Any]]:
    """Lost attempts whose copies may still run somewhere."""
    return ctx.ledger.query(
        "SELECT * FROM attempts WHERE state = 'lost' AND fenced_at IS NULL ORDER BY id"
    )


def job_state(ctx: Ctx, job_id: int) -> str:
    row = ctx.ledger.query_one("SELECT state FROM jobs WHERE id = ?", (job_id,))
    return row["state"] if row else "missing"


def orphans(
    ctx: Ctx, hosts: list[dict[str, Any]], active: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Lose attempts on hosts removed from the ledger (`hosts rm --force`); return the rest."""
    names = {h["name"] for h in hosts}
    gone = [a for a in active if a["host"] not in names]
    if not gone:
        return active
    with ctx.ledger.tx():  # left unfenced: `fence.fence_removed` stops what still runs there
        for a in gone:
            lose(ctx, a, f"host {a['host']} was removed", job_state(ctx, a["job_id"]),
                 presumed=True)  # fmt: skip
    for a in gone:
        settle(ctx.ledger, a["token"])
    return [a for a in active if a["host"] in names]


def poll(
    ctx: Ctx,
    hosts: list[dict[str, Any]],
    active: list[dict[str, Any]],
    result: TickResult,
    poll_fn: Any = None,
) -> dict[str, Ok[Poll] | Failed]:
    """Poll every host in parallel, one round trip each (`poll_fn`: the host poll, a seam)."""
    poll_fn = poll_fn or poll_host
    tokens: dict[str, list[str]] = {h["name"]: [] for h in hosts}
    for a in active:
        tokens.setdefault(a["host"], []).append(a["token"])
    for a in unfenced(ctx):
        tokens.setdefault(a["host"], []).append(a["token"])
    calls = {}
    for host in hosts:
        try:
            spec, transport = ctx.pool.get(host)
        except LeptonError as exc:
            calls[host["name"]] = raiser(exc)
            continue
        if dslurm.is_slurm(host):  # one squeue however many jobs
            calls[host["name"]] = bind(ctx.slurm.poll, host, tokens[host["name"]])
            continue
        calls[host["name"]] = bind(poll_fn, transport, spec, tokens[host["name"]])
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
    active: list[dict[str, Any]],
    result: TickResult,
) -> list[dict[str, Any]]:
    """Record one host's poll in one transaction; return `starting` attempts to (re)launch."""
    name = host["name"]
    now = ctx.clock()
    relaunch = []
    ended: list[str] = []
    with ctx.ledger.tx():
        values: dict[str, Any] = {
            "last_seen": now, "last_error": None, "state": "up",
            "failed_polls": 0, "failing_since": None,
        }  # fmt: skip
        values.update(discovered_capacity(host, answer))
        ctx.ledger.update("hosts", host["id"], values)
        if host["state"] != "up":
            ctx.ledger.event("host.up", f"host {name} is up", host=name, actor="dispatcher")
        record_samples(ctx.ledger, answer, now)
        for a in active:
            if a["host"] != name:
                continue
            what = apply_status(ctx, a, status_of(answer, a["token"]))
            if what == "relaunch":
                relaunch.append(a)
            elif what == "ended":
                ended.append(a["token"])
        for token in ended:  # cost settled in the same transaction as the end
            settle(ctx.ledger, token)
    result.finished += len(ended)
    return relaunch


def apply_status(ctx: Ctx, a: dict[str, Any], st: AttemptStatus) -> str | None:
    """Move one attempt (and its job) as its host reports; inside the host's transaction.
    Returns "ended", "relaunch" or None."""
    token, js = a["token"], job_state(ctx, a["job_id"])
    what = outcome.action(a["state"], st.state, js)
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
        first = a.get("missing_since")
        if first is None:
            first = ctx.clock()
            ctx.ledger.execute(
                "UPDATE attempts SET missing_since = ? WHERE token = ?", (first, token)
            )
        if ctx.clock() - first < ctx.setting("host_grace_s"):
            return None
        why = f"its directory has been gone from the host for {ctx.clock() - first:.0f}s"
        lose(ctx, a, f"attempt lost on {a['host']}: {why}", js)
        return "ended"
    if a.get("missing_since") is not None and st.state != "unreadable":
        ctx.ledger.execute("UPDATE attempts SET missing_since = NULL WHERE token = ?", (token,))
    if what == "lose" and st.state == "lost":
        why = st.reason or "its wrapper is gone"
        if st.started_at and not a.get("started_at"):  # it did run: that spends a retry
            ctx.ledger.execute(
                "UPDATE attempts SET started_at = ? WHERE token = ?", (st.started_at, token)
            )
        lose(ctx, a, f"attempt lost on {a['host']}: {why}", js)
        return "ended"
    if what == "unreadable":  # nothing concluded; said once, so someone can look
        said = ctx.ledger.query_one(
            "SELECT 1 AS x FROM events WHERE kind = 'attempt.unreadable' AND job_id = ? "
            "AND json_extract(data, '$.token') = ?",
            (a["job_id"], token),
        )
        if not said:
            ctx.ledger.event(
                "attempt.unreadable",
                f"job {a['job_id']} attempt {a['attempt_no']}: its files on {a['host']} "
                f"cannot be read ({st.reason}); left as it is until they can",
                job_id=a["job_id"], host=a["host"], actor="dispatcher", data={"token": token},
            )  # fmt: skip
        return None
    if what == "lose":  # missing while starting, and a cancel is asked
        lose(ctx, a, "before it started", js)
        return "ended"
    return "relaunch" if what == "relaunch" else None


def cancel_was_sent(ctx: Ctx, token: str) -> bool:
    row = ctx.ledger.query_one("SELECT cancel_sent_at FROM attempts WHERE token = ?", (token,))
    return bool(row and row["cancel_sent_at"] is not None)


def mark_running(ctx: Ctx, a: Mapping[str, Any], st: AttemptStatus | None) -> None:
    """A `starting` attempt runs (seen by its host, or its launch answered)."""
    started_at = (st.started_at if st else None) or ctx.clock()
    change = outcome.started(job_state(ctx, a["job_id"]))
    if change.job is not None:
        ctx.ledger.transition_attempt(
            a["token"], change.attempt, job_state=change.job,
            job_fields={"started_at": started_at}, started_at=started_at,
        )  # fmt: skip
    else:
        ctx.ledger.transition_attempt(a["token"], change.attempt, started_at=started_at)


def finish(ctx: Ctx, a: Mapping[str, Any], st: AttemptStatus, js: str) -> None:
    """An attempt its host reports ended: its exit code, on the attempt and the job."""
    state, reason = outcome.ended_state(
        st.exit_code, cancelled=st.cancelled, timed_out=st.timed_out, reason=st.reason
    )
    sent = js == "cancelling" and state == "failed" and cancel_was_sent(ctx, a["token"])
    change = outcome.ended(js, state, reason, sent)
    fields: dict[str, Any] = {"exit_code": st.exit_code, "ended_at": st.ended_at or ctx.clock()}
    if st.started_at:
        # The host's own clock for both ends: a start this loop stamped with its clock
        # (launch seen before the wrapper wrote its pid) could land after a quick job's end.
        fields["started_at"] = st.started_at
    started = fields.get("started_at") or a.get("started_at")
    if started is not None and fields["ended_at"] < started:
        fields["ended_at"] = started
    if change.job is None:
        ctx.ledger.transition_attempt(a["token"], change.attempt, reason=reason, **fields)
        return
    job_fields = {"exit_code": st.exit_code, "ended_at": fields["ended_at"]}
    if js == "starting" and st.started_at:
        job_fields["started_at"] = st.started_at
    ctx.ledger.transition_attempt(
        a["token"], change.attempt, job_state=change.job, reason=change.reason,
        job_fields=job_fields, **fields,
    )  # fmt: skip


def lose(ctx: Ctx, a: Mapping[str, Any], why: str, js: str, *, presumed: bool = False) -> None:
    """Mark an attempt lost; requeue its job while retries last, else fail it (`outcome.lost`).

    `presumed`: the host did not answer (down, removed), so what became of the attempt is
    not known. One whose launch may have gone out (`launch_sent_at`) then counts as started:
    it is *unknown*, never "not started", until its host says (`truth`), so a job with no
    retries left is not placed again while that copy may run.
    """
    if presumed:
        ctx.ledger.execute("UPDATE attempts SET presumed = 1 WHERE token = ?", (a["token"],))
    job = ctx.ledger.query_one(
        f"SELECT retries, (SELECT COUNT(*) FROM attempts WHERE job_id = jobs.id "
        f"AND {_MAY_HAVE_RUN}) AS ran, (SELECT COUNT(*) FROM attempts "
        f"WHERE job_id = jobs.id) AS made, (SELECT {_MAY_HAVE_RUN} FROM attempts "
        "WHERE token = ?) AS this_ran, (SELECT started_at IS NULL FROM attempts "
        "WHERE token = ?) AS unseen FROM jobs WHERE id = ?",
        (a["token"], a["token"], a["job_id"]),
    )
    retries = outcome.Retries()
    if job:
        retries = outcome.Retries(
            allowed=int(job["retries"]), ran=int(job["ran"]), made=int(job["made"]),
            this_ran=bool(job["this_ran"]), unseen=bool(job["unseen"]),
        )  # fmt: skip
    change = outcome.lost(js, why, retries, presumed=presumed)
    ctx.ledger.transition_attempt(
        a["token"], change.attempt, job_state=change.job, reason=change.reason
    )
    if change.job == "queued":
        ctx.ledger.update("jobs", a["job_id"], {"host": None})


def record_failure(
    ctx: Ctx, host: dict[str, Any], failed: Failed, active: list[dict[str, Any]], now: float
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
        ctx.ledger.update(
            "hosts", host["id"],
            {"last_error": failed.reason[:500], "failed_polls": streak, "failing_since": since},
        )  # fmt: skip
        if host["state"] == "down":
            return True
        if streak < MIN_FAILED_POLLS or now - since < grace:
            return False
        ctx.ledger.update("hosts", host["id"], {"state": "down"})
        ctx.ledger.event(
            "host.down",
            f"host {name} is down: {streak} polls in a row failed over {now - since:.0f}s "
            f"({failed.reason})",
            host=name, actor="dispatcher",
        )  # fmt: skip
        if dslurm.is_slurm(host):  # its jobs run in Slurm, not on the node lepton
            active = []  # reaches: none is lost; they are reconciled when it answers again
        for a in active:
            if a["host"] == name:
                lose(ctx, a, f"host {name} is down", job_state(ctx, a["job_id"]), presumed=True)
    for a in active:
        if a["host"] == name:
            settle(ctx.ledger, a["token"])
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
    return {k: v for k, v in found.items() if k not in fixed}
