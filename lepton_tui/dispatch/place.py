"""Steps 4 to 6 of the tick: build the cluster view, ask the policy, write the intents.

Queued jobs whose dependencies are met, that no budget holds and whose last attempt is fenced
are offered to the policy; its placements are checked (a policy bug never overcommits a host),
the reasons of those left waiting recorded, and each placement written as a `starting` attempt
and committed. `place` returns those starts; the loop launches them (`launch`).
"""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from lepton_tui.dispatch import runas
from lepton_tui.dispatch import slurm as dslurm
from lepton_tui.dispatch.common import Ctx, log
from lepton_tui.dispatch.view import (
    REASON_POLICY,
    REASON_RECONCILING,
    build_view,
    job_request,
    job_resources,
    sort_queued,
    waiting_reason,
)
from lepton_tui.errors import IllegalTransition
from lepton_tui.ledger import Ledger
from lepton_tui.place_rules import PlaceRules
from lepton_tui.rows import ActiveAttempt

DECISIONS_PER_ROUND = 200
EXPLAIN_PER_ROUND = 50


def place(
    ctx: Ctx,
    hosts: list[dict[str, Any]],
    placeable: set[str],
    reconciled: bool,
    now: float,
    policy: Callable[[], Any],
    last_reason: dict[int, str],
) -> list[ActiveAttempt]:
    """Place what can be placed; return the `starting` attempts written (committed).
    `policy`: gives the policy in force; `last_reason`: job -> the reason last recorded in
    `decisions` (kept by the caller, so a reason is recorded once)."""
    queued = ctx.ledger.queued_jobs()
    if not queued:
        return []
    # A job whose lost attempt may still run on a host that answers (or on a host just
    # removed) waits until that copy is stopped, so it never runs twice; one on a host that
    # is down is requeued at once (the README says what that costs).
    fencing = ctx.ledger.fencing_holds()
    held = {j["id"] for j in queued if j["id"] in fencing}
    deps = ctx.ledger.queued_dependencies()
    free = [j for j in queued if j["id"] not in held]
    holds = budget_holds(ctx.ledger, free)
    sorting = sort_queued(free, deps, holds, hosts)
    for job_id, reason in sorting.dependency_failed.items():
        try:
            ctx.ledger.transition_job(
                job_id, "cancelled", reason=reason, actor="dispatcher", expect="queued"
            )
        except IllegalTransition:
            pass
    reasons = dict(sorting.reasons)
    if reconciled:  # jobs whose unmet dependencies all run in Slurm on one host: chained
        for job_id in ctx.slurm.chain(hosts, placeable, sorting.reasons, holds):
            reasons.pop(job_id, None)
    for job_id in held:
        reasons[job_id] = f"waiting until its last attempt on {fencing[job_id]} is stopped"
    placed: list[tuple[dict[str, Any], Any]] = []
    policy_name = None
    if sorting.pending and not reconciled:
        for job in sorting.pending:
            reasons[job["id"]] = REASON_RECONCILING
    elif sorting.pending:
        chosen = policy()
        policy_name = getattr(chosen, "name", type(chosen).__name__)
        placed = _decide(ctx, hosts, placeable, now, chosen, sorting.pending, reasons)
    dslurm.others_ahead(hosts, free, reasons)  # kept behind a Slurm partition's own queue
    current = {j["id"]: j["reason"] for j in free}
    with ctx.ledger.tx():
        for job_id, reason in reasons.items():
            if current.get(job_id) != reason:
                ctx.ledger.set_job_reason(job_id, reason)
        _record_decisions(ctx.ledger, policy_name, placed, reasons, now, last_reason)
    return _intents(ctx, placed, policy_name) if placed else []


def _decide(
    ctx: Ctx,
    hosts: list[dict[str, Any]],
    placeable: set[str],
    now: float,
    policy: Any,
    pending: Sequence[dict[str, Any]],
    reasons: dict[int, str],
) -> list[tuple[dict[str, Any], Any]]:
    """Ask the policy; keep the placements that fit; say why each other job waits."""
    # the shared lab's rules: constraints, outside GPU use, limits, arrays, fair share
    rules = PlaceRules.prepare(ctx.ledger, pending, hosts, now)
    pending = rules.pending
    view = build_view(hosts, ctx.ledger.placed_attempts(), placeable, now)
    # a Slurm partition's room less what other users' jobs queued there for it claim first
    view = rules.view(dslurm.with_claims(view, hosts))
    # lab mode: each job only where its owner can log in (one group when everyone can)
    groups, unreachable = runas.login_groups(ctx, hosts, placeable, pending, now)
    reasons.update(unreachable)
    lab = bool(getattr(ctx.pool, "lab_key", None))
    joint: bool | None = None  # the setting, read once a round has two GPU shares to place
    free = {n.id: n for n in view.nodes}
    placed: list[tuple[dict[str, Any], Any]] = []
    for allowed, jobs in groups:
        within = view  # personal mode: the whole view, as ever
        if lab:
            nodes_in = tuple(n for n in free.values() if n.id in allowed)
            within = type(view)(nodes_in, now, view.running)
        requests = [rules.request(j, job_request(j)) for j in jobs]
        try:
            if rules.fair is not None and getattr(policy, "sees_fair_share", False):
                # the DQN reads each job's factor too, not only the raised priority
                decisions = list(policy.decide(within, requests, now, fair_share=rules.fair))
            else:
                decisions = list(policy.decide(within, requests, now))
        except Exception:  # noqa: BLE001 - a broken policy must not stop the loop
            name = getattr(policy, "name", type(policy).__name__)
            log.exception("policy %s failed; placing nothing this tick", name)
            decisions = []
        if sum(r.request.is_gpu_share for r in requests) > 1:
            if joint is None:
                joint = _share_placement(ctx.ledger) == "joint"
            if joint:
                decisions = _joint_shares(policy, within, requests, decisions)
        for job, p in rules.admit(check_placements(within, jobs, decisions)):
            placed.append((job, p))
            free[p.node_id] = free[p.node_id].allocate(job_resources(job), tuple(p.gpu_ids))
    reasons.update(rules.reasons)
    placed_ids = {j["id"] for j, _ in placed}
    # placed, held by the lab's rules, or its owner can log in nowhere
    settled = placed_ids | set(rules.reasons) | set(unreachable)
    nodes = {n.id: n for n in view.nodes}
    # the view after the accepted placements, for honest "waiting for GPUs" reasons
    for job, p in placed:
        nodes[p.node_id] = nodes[p.node_id].allocate(job_resources(job), tuple(p.gpu_ids))
    after = type(view)(tuple(nodes.values()), now, view.running)
    memo: dict[Any, str] = {}  # many queued jobs ask for the same resources
    explained = 0
    for job in pending:
        if job["id"] in settled:
            continue
        req = job_resources(job)
        if req not in memo:
            memo[req] = waiting_reason(req, after, None)
        reason = memo[req]
        # The policy's own words where they matter (it passed over a job that fits),
        # for the first jobs of the queue: explaining costs as much as deciding.
        if reason == REASON_POLICY and explained < EXPLAIN_PER_ROUND:
            explained += 1
            text = _explain(policy, job["id"])
            reason = f"{reason}: {text}" if text else reason
        reasons[job["id"]] = rules.waiting(job, reason, placed_ids)
    return placed


_JOINT: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
"""policy -> its JointShares, so the shapes it learns persist while the policy is in force"""


def _share_placement(ledger: Ledger) -> str:
    """The `share_placement` setting (`single` when unset or not valid)."""
    from lepton_tui.settings import SETTINGS

    value = ledger.get_setting("share_placement", SETTINGS["share_placement"].default)
    return "joint" if str(value).strip().lower() == "joint" else "single"


def _joint_shares(
    policy: Any, view: Any, requests: Sequence[Any], decisions: list[Any]
) -> list[Any]:
    """The round's GPU shares placed jointly (scheduler/joint.py, setting `share_placement
    joint`) when the policy places by fragmentation; the policy's own placements when not, or
    when that fails."""
    from scheduler.joint import JointShares, applies

    if not decisions or not applies(policy):
        return decisions
    try:
        joint = _JOINT.get(policy)
        if joint is None:
            joint = _JOINT[policy] = JointShares()
        return list(joint.place(view, requests, decisions))
    except Exception:  # noqa: BLE001 - the policy's placements stand
        log.exception("joint placement of GPU shares failed; keeping the policy's")
        return decisions


def _intents(
    ctx: Ctx, placed: list[tuple[dict[str, Any], Any]], policy_name: str | None
) -> list[ActiveAttempt]:
    """Every intent of the round, committed before any launch."""
    starts = []
    with ctx.ledger.tx():
        present = ctx.ledger.host_names()
        for job, p in placed:
            if p.node_id not in present:  # removed (`hosts rm`) since this tick read it
                continue
            token = secrets.token_hex(6)
            try:
                ctx.ledger.start_attempt(
                    job["id"], p.node_id, token, list(p.gpu_ids), policy=policy_name
                )
            except IllegalTransition:  # cancelled since we read it
                continue
            start = ctx.ledger.active_attempt(token)
            if start is not None:
                starts.append(start)
    ctx.stats.placements += len(starts)
    return starts


def check_placements(
    view: Any, pending: Sequence[dict[str, Any]], decisions: Sequence[Any]
) -> list[tuple[dict[str, Any], Any]]:
    """Keep only placements that fit together (a policy bug never overcommits a host)."""
    from scheduler.model import Placement

    jobs = {j["id"]: j for j in pending}
    nodes = {n.id: n for n in view.nodes}
    out = []
    for p in decisions:
        job = jobs.pop(int(p.job_id), None) if str(p.job_id).isdigit() else None
        node = nodes.get(p.node_id)
        if job is None or node is None or not node.is_up:
            log.warning("policy placement %s ignored: unknown job or host not up", p)
            continue
        req = job_resources(job)
        gpu_ids = tuple(p.gpu_ids) or (node.pick_gpus(req) or ())
        try:
            nodes[p.node_id] = node.allocate(req, gpu_ids)
        except ValueError as exc:
            log.warning("policy placement of job %s ignored: %s", job["id"], exc)
            jobs[job["id"]] = job
            continue
        out.append((job, Placement(job["id"], p.node_id, gpu_ids)))
    return out


def _record_decisions(
    ledger: Ledger,
    policy_name: str | None,
    placed: list[tuple[dict[str, Any], Any]],
    reasons: dict[int, str],
    now: float,
    last_reason: dict[int, str],
) -> None:
    rows = 0
    for job, p in placed:
        gpus = f" GPUs {','.join(map(str, p.gpu_ids))}" if p.gpu_ids else ""
        ledger.record_decision(
            now, policy_name, job["id"], p.node_id, f"placed on {p.node_id}{gpus}"
        )
        last_reason.pop(job["id"], None)
    for job_id, reason in reasons.items():
        if rows >= DECISIONS_PER_ROUND or last_reason.get(job_id) == reason:
            continue
        last_reason[job_id] = reason
        ledger.record_decision(now, policy_name, job_id, None, reason)
        rows += 1


def budget_holds(ledger: Ledger, jobs: list[dict[str, Any]]) -> dict[int, str]:
    """Jobs a hard budget holds."""
    from lepton_tui.economics.budgets import budget_hold_reasons

    try:
        return {int(k): str(v) for k, v in budget_hold_reasons(ledger, jobs).items()}
    except Exception:  # noqa: BLE001 - a budget bug must not stop dispatching
        log.exception("budget_hold_reasons failed; holding nothing")
        return {}


def _explain(policy: Any, job_id: int) -> str:
    try:
        return str(policy.explain(job_id) or "")
    except Exception:  # noqa: BLE001
        return ""
