"""Step 1 of the tick: control requests. `cancelling` jobs are cancelled on their hosts (drain
and resume act through the host rows the view is built from)."""

from __future__ import annotations

from typing import Any

from inventory import supervisor
from inventory.fanout import Ok, fan_out
from lepton_tui.dispatch import slurm as dslurm
from lepton_tui.dispatch.common import Ctx, bind, log
from lepton_tui.rows import ActiveAttempt


def send_cancels(ctx: Ctx, hosts: list[dict[str, Any]], active: list[ActiveAttempt]) -> None:
    """TERM (then KILL after the grace) the attempts of `cancelling` jobs, one call per host."""
    up = {h["name"]: h for h in hosts if h["state"] == "up"}
    todo: dict[str, list[str]] = {}
    for a in active:
        if a.job.state == "cancelling" and a.cancel_sent_at is None and a.host in up:
            todo.setdefault(a.host, []).append(a.token)
    if not todo:
        return
    grace = ctx.setting("cancel_grace_s")

    def call(host: dict[str, Any], tokens: list[str]) -> list[str]:
        if dslurm.is_slurm(host):
            return ctx.slurm.cancel(host, tokens)  # one scancel
        spec, transport = ctx.pool.get(host)
        found = supervisor.cancel_batch(transport, spec, tokens, grace_s=grace)  # 1 trip
        # a token the host did not find (a directory hidden for a while) or could not handle
        # is sent again next tick, until its attempt ends one way or the other
        return [t for t in tokens if found.get(t)]

    results = fan_out(
        {name: bind(call, up[name], toks) for name, toks in todo.items()}, timeout=ctx.timeout_s
    )
    now = ctx.clock()
    with ctx.ledger.tx():  # kept in the ledger: `serve --once` does not TERM again each run
        for name, answer in results.items():
            if isinstance(answer, Ok):
                for token in answer.value:
                    ctx.ledger.mark_cancel_sent(token, now)
                ctx.stats.cancels_sent += len(answer.value)
            else:
                log.warning("cancel on %s failed: %s", name, answer.reason)
