"""Fencing: stale copies of lost attempts are killed before anything new runs on their host.

When a host answers again, what it says of an attempt presumed lost amends the ledger first
(`truth`); what still runs of it is then killed, in one round trip per host. Copies on hosts
removed with `hosts rm --force` are stopped through the connection their `host.removed`
event kept, or given up (with an event) after the host grace.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from inventory.fanout import Failed, Ok, fan_out
from inventory.supervisor import AttemptStatus
from lepton_tui.dispatch import truth
from lepton_tui.dispatch.common import Ctx, bind, log, settle, status_of
from lepton_tui.rows import AttemptRow

REMOVED_RETRY_S = 30.0  # how often fencing tries a removed host again

# kill(host row, attempts) -> signals that hit, per token the host handled
Kill = Callable[[Mapping[str, Any], list[AttemptRow]], dict[str, int]]


def fence(
    ctx: Ctx,
    hosts: list[dict[str, Any]],
    polls: Mapping[str, Any],
    kill: Kill,
    removed_tried: dict[str, float],
) -> set[str]:
    """Kill still-running copies of lost attempts; return hosts with nothing left to fence.
    `removed_tried`: removed host -> when fencing last tried it (kept by the caller)."""
    by_name = {h["name"]: h for h in hosts}
    todo: dict[str, list[AttemptRow]] = {}
    statuses: dict[str, AttemptStatus] = {}
    now = ctx.clock()
    for a in ctx.ledger.unfenced_attempts():
        answer = polls.get(a.host)
        if not isinstance(answer, Ok):
            continue
        st = statuses[a.token] = status_of(answer.value, a.token)
        # the host's truth first: an ended attempt's real exit code, a copy taken back
        job_state, latest = amend_context(ctx, a)
        amendment = truth.before_fence(a, job_state, st, latest, now)
        if amendment is not None:
            amend(ctx, a, amendment)
            if not amendment.fence or st.state == "done":
                continue
        if st.state == "done":  # its wrapper ended: nothing of it runs
            with ctx.ledger.tx():
                ctx.ledger.mark_fenced(a.id, now)
        else:  # running, starting, lost, or missing (its processes are looked for by token)
            todo.setdefault(a.host, []).append(a)
    if todo:
        results = fan_out(
            {n: bind(kill, by_name[n], atts) for n, atts in todo.items()}, timeout=ctx.timeout_s
        )
        for name, answer in results.items():
            if isinstance(answer, Ok):
                _killed(ctx, name, todo[name], answer.value, statuses)
            else:
                _fence_failed(ctx, name, todo[name], answer)
    fence_removed(ctx, hosts, kill, removed_tried)
    left = {a.host for a in ctx.ledger.unfenced_attempts()}
    return {h["name"] for h in hosts} - left


def _killed(
    ctx: Ctx,
    name: str,
    atts: list[AttemptRow],
    killed: Mapping[str, int],
    statuses: Mapping[str, AttemptStatus],
) -> None:
    with ctx.ledger.tx():
        for a in atts:
            if a.token in killed:  # else the host could not: next tick
                hits = killed[a.token]
                fenced(ctx, a, hits, f"stale copy on {name} killed before anything else runs there")
                job_state, latest = amend_context(ctx, a)
                amendment = truth.after_fence(a, job_state, statuses[a.token], hits, latest)
                if amendment is not None:
                    amend(ctx, a, amendment)
    log.warning("fenced %d stale attempt(s) on %s", len(atts), name)


def _fence_failed(ctx: Ctx, name: str, atts: list[AttemptRow], failed: Failed) -> None:
    log.warning("fencing on %s failed: %s", name, failed.reason)
    # once per streak: a streak begins with the oldest attempt still to fence
    since = min(a.ended_at or 0.0 for a in atts)
    if not ctx.ledger.said_fence_failed(name, since):
        ctx.ledger.event(
            "host.fence_failed",
            f"host {name} takes no new jobs until {len(atts)} old attempt(s) there are "
            f"stopped; stopping them failed: {failed.reason}",
            host=name, actor="dispatcher",
        )  # fmt: skip


def amend_context(ctx: Ctx, a: AttemptRow) -> tuple[str, bool]:
    """An attempt's job's state, and whether the attempt is the job's latest."""
    state, latest = ctx.ledger.job_and_latest(a.job_id)
    return state, latest == a.id


def amend(ctx: Ctx, a: AttemptRow, amendment: truth.Amendment) -> None:
    """Record what the host said of an attempt presumed lost (and correct its job)."""
    with ctx.ledger.tx():
        ctx.ledger.amend_attempt(
            a.token, amendment.note, state=amendment.attempt_state, **amendment.attempt_fields
        )
        if amendment.job_state is not None:
            ctx.ledger.amend_job(
                a.job_id, amendment.job_state, amendment.note, **amendment.job_fields
            )
    log.warning("job %s: %s", a.job_id, amendment.note)
    if amendment.attempt_fields.get("ended_at"):
        settle(ctx.ledger, a.token)


def fenced(ctx: Ctx, a: AttemptRow, killed: int, what: str) -> None:
    """Record that nothing of attempt `a` runs any more (inside the caller's transaction)."""
    ctx.ledger.mark_fenced(a.id, ctx.clock())
    ctx.ledger.event(
        "attempt.fenced",
        f"job {a.job_id} attempt {a.attempt_no}: {what} ({killed} signal(s))",
        job_id=a.job_id, host=a.host, actor="dispatcher",
        data={"token": a.token, "killed": killed},
    )  # fmt: skip
    ctx.stats.fenced += 1


def fence_removed(
    ctx: Ctx, hosts: list[dict[str, Any]], kill: Kill, removed_tried: dict[str, float]
) -> None:
    """Stop what still runs of attempts on hosts removed with `hosts rm --force`, reaching
    them with the connection their `host.removed` event kept. One that cannot be reached
    for the host grace period is given up, with an event saying the job may still run."""
    names = {h["name"] for h in hosts}
    by_host: dict[str, list[AttemptRow]] = {}
    for a in ctx.ledger.unfenced_attempts():
        if a.host not in names:
            by_host.setdefault(a.host, []).append(a)
    if not by_host:
        return
    removed = {name: ctx.ledger.removed_host(name) for name in by_host}
    now, grace = ctx.clock(), ctx.setting("host_grace_s")
    # at most one try per host every REMOVED_RETRY_S (or grace): an unreachable host (the
    # usual reason for --force) must not add a connection timeout to every tick
    every = min(REMOVED_RETRY_S, grace)
    calls = {
        name: bind(kill, {**conn, "name": name}, by_host[name])
        for name, (_, conn) in removed.items()
        if conn and now - removed_tried.get(name, -math.inf) >= every
    }
    removed_tried.update(dict.fromkeys(calls, now))
    results = fan_out(calls, timeout=ctx.timeout_s) if calls else {}
    with ctx.ledger.tx():
        for name, atts in by_host.items():
            answer = results.get(name)
            at, conn = removed[name]
            if isinstance(answer, Ok):
                for a in atts:
                    if a.token in answer.value:
                        fenced(ctx, a, answer.value[a.token], f"stopped on removed host {name}")
                atts = [a for a in atts if a.token not in answer.value]
                if not atts:
                    continue
            if conn is None or (name in calls and now - at >= grace):
                if conn is None:
                    why = "no connection kept"
                elif isinstance(answer, Failed):
                    why = answer.reason
                else:
                    why = "the host could not stop it"
                _give_up_removed(ctx, name, atts, why, now)


def _give_up_removed(ctx: Ctx, name: str, atts: list[AttemptRow], why: str, now: float) -> None:
    for a in atts:
        ctx.ledger.mark_fenced(a.id, now)
        ctx.ledger.event(
            "attempt.unfenced",
            f"job {a.job_id} attempt {a.attempt_no}: could not reach removed host "
            f"{name} to stop it ({why}); it may still run there (its directory ends in "
            f"-{a.token})",
            job_id=a.job_id, host=name, actor="dispatcher", data={"token": a.token},
        )  # fmt: skip
    log.warning("gave up stopping %d attempt(s) on removed %s", len(atts), name)
