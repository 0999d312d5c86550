"""Step 6 of the tick, second half: launch `starting` attempts, then mark them running.

Each attempt's intent is committed before it is launched (`place`); the launch itself goes out
in one round trip per host, in parallel. An attempt's token names its directory on the host,
created with `mkdir`, so a launch repeated after a crash is a no-op: exactly once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from inventory import supervisor
from inventory.fanout import Ok
from inventory.supervisor import LaunchSpec
from inventory.transport import never_sent
from lepton_tui.dispatch import outcome
from lepton_tui.dispatch import slurm as dslurm
from lepton_tui.dispatch.common import Ctx, log
from lepton_tui.dispatch.record import lose, mark_running
from lepton_tui.errors import IllegalTransition
from lepton_tui.rows import ActiveAttempt, AttemptRow

MAX_LAUNCH_TRIES = 3
MIN_START_TIMEOUT_S = 10.0  # see start_timeout_s


def start_timeout_s(host_grace_s: float) -> float:
    """How long an attempt may go without its wrapper's record before it reads as lost: the
    host grace (a wrapper killed before it recorded itself held its job 120 s whatever the
    grace), but at least MIN_START_TIMEOUT_S for a python3 slow to start on a loaded host."""
    return max(MIN_START_TIMEOUT_S, float(host_grace_s))


def launch(
    ctx: Ctx,
    starts: list[ActiveAttempt],
    hosts: Mapping[str, dict[str, Any]],
    relaunch: bool,
    drained: set[str],
) -> int:
    """Launch `starting` attempts, one round trip per host, in parallel; mark them running.
    A host whose launches keep failing is drained and added to `drained`."""
    if not starts:
        return 0
    slurm_starts = [a for a in starts if dslurm.is_slurm(hosts.get(a.host))]
    submitted = 0
    if slurm_starts:  # sbatch; the attempts stay `starting` until Slurm runs them
        submitted = ctx.slurm.launch(hosts, slurm_starts, relaunch, ctx.timeout_s)
        starts = [a for a in starts if not dslurm.is_slurm(hosts.get(a.host))]
    targets, by_token = _specs(ctx, starts, hosts)
    # The intent to send, committed before anything goes out: an answer lost on the way
    # back (a dropped connection, this process killed) leaves the attempt unknown, not
    # "never started", and a restarted dispatcher asks the host before placing it again.
    sent_before = {t: by_token[t].launch_sent_at for t in by_token}
    now = ctx.clock()
    with ctx.ledger.tx():
        for token, before in sent_before.items():
            if before is None:
                ctx.ledger.mark_launch_sent(token, now)
    results = supervisor.launch_many(
        {h: (t, s, launches) for h, (t, s, launches) in targets.items()}, timeout=ctx.timeout_s
    )
    launched = submitted
    for name, answer in results.items():
        specs = targets[name][2]
        if not isinstance(answer, Ok):
            log.warning("launch on %s failed (will retry): %s", name, answer.reason)
            broken = _count_failures(ctx, specs, by_token, sent_before, answer.error)
            if broken:  # the host answers but cannot start jobs (full disk, quota, ...)
                launch_broken(ctx, hosts[name], broken, answer.reason, drained)
            continue
        with ctx.ledger.tx():
            for s, res in zip(specs, answer.value, strict=True):
                if ctx.ledger.attempt_state(s.token) != "starting":
                    continue
                ctx.ledger.set_remote_dir(s.token, res.remote_dir)
                mark_running(ctx, by_token[s.token], None)
                launched += 1
    ctx.stats.launches += launched
    if relaunch:
        ctx.stats.relaunches += launched
    return launched


def _specs(
    ctx: Ctx, starts: list[ActiveAttempt], hosts: Mapping[str, dict[str, Any]]
) -> tuple[dict[str, tuple[Any, Any, list[LaunchSpec]]], dict[str, ActiveAttempt]]:
    """Per host, (transport, host spec, launches); and the attempts by token. Attempts whose
    job was cancelled meanwhile are cancelled, those that can never launch given up."""
    grace, host_grace = ctx.setting("cancel_grace_s"), ctx.setting("host_grace_s")
    targets: dict[str, tuple[Any, Any, list[LaunchSpec]]] = {}
    by_token = {}
    for a in starts:
        host = hosts.get(a.host)
        if host is None:
            continue
        if ctx.ledger.job_state(a.job_id) == "cancelling":  # cancelled while `starting`
            change = outcome.cancelled_before_start()
            with contextlib.suppress(IllegalTransition):
                ctx.ledger.transition_attempt(
                    a.token, change.attempt, job_state=change.job, reason=change.reason
                )
            continue
        try:
            spec = LaunchSpec(
                job_id=a.job_id, token=a.token, command=a.job.command, workdir=a.job.workdir,
                env=dict(a.job.env), gpu_ids=list(a.gpu_ids), time_limit_s=a.job.time_limit_s,
                kill_grace_s=grace, end_patience_s=max(180.0, 1.5 * host_grace),
                start_timeout_s=start_timeout_s(host_grace),
            )  # fmt: skip
        except ValueError as exc:
            give_up(ctx, a, f"cannot launch: {exc}")
            continue
        hspec, transport = ctx.pool.get(host)
        targets.setdefault(a.host, (transport, hspec, []))[2].append(spec)
        by_token[a.token] = a
    return targets, by_token


def _count_failures(
    ctx: Ctx,
    specs: list[LaunchSpec],
    by_token: Mapping[str, ActiveAttempt],
    sent_before: Mapping[str, Any],
    error: BaseException | None,
) -> list[ActiveAttempt]:
    """Count a failed launch on each attempt (in the ledger, across restarts); return those
    that failed MAX_LAUNCH_TRIES times on a host that answers."""
    broken = []
    with ctx.ledger.tx():
        if never_sent(error):  # no connection: nothing reached the host
            for s in specs:
                ctx.ledger.mark_launch_sent(s.token, sent_before[s.token])
        for s in specs:
            tries = ctx.ledger.count_launch_failure(s.token)
            if tries >= MAX_LAUNCH_TRIES and _is_remote_error(error):
                broken.append(by_token[s.token])
    return broken


def launch_broken(
    ctx: Ctx, host: Mapping[str, Any], atts: list[ActiveAttempt], why: str, drained: set[str]
) -> None:
    """A host whose agent answers but fails every launch: not the jobs' fault. Requeue them
    (a launch that never ran spends no retry, see `outcome.lost`) and drain the host with the
    reason, as Slurm drains a node whose job launch fails, until an admin fixes it and
    resumes it. The attempts stay unfenced: anything that did start there is killed before
    the job is placed again (`place`) or the host runs anything else."""
    name = host["name"]
    drained.add(name)
    with ctx.ledger.tx():
        for a in atts:
            js = ctx.ledger.job_state(a.job_id)
            with contextlib.suppress(IllegalTransition):
                lose(ctx, a, f"launch failed on {name}: {why}", js)
        ctx.ledger.note_host_error(host["id"], f"launch failed: {why}")
        if host.get("admin_state") != "draining":
            ctx.ledger.drain_host_row(host["id"])
            ctx.ledger.event(
                "host.drain",
                f"host {name} drained: launches fail there ({why}); fix it, then "
                f"`lepton-tui hosts resume {name}`",
                host=name, actor="dispatcher", data={"reason": why[:500]},
            )  # fmt: skip
    log.warning("host %s drained: %d launch(es) failed: %s", name, len(atts), why)


def give_up(ctx: Ctx, a: AttemptRow, why: str) -> None:
    """An attempt that can never launch: fail it and its job (`outcome.gave_up`)."""
    change = outcome.gave_up(ctx.ledger.job_state(a.job_id), why)
    with contextlib.suppress(IllegalTransition):
        ctx.ledger.transition_attempt(
            a.token, change.attempt, job_state=change.job, reason=change.reason
        )


def _is_remote_error(exc: BaseException | None) -> bool:
    from inventory.errors import RemoteError

    return isinstance(exc, RemoteError)
