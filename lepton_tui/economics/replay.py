"""What-if replay: the lab's own recorded history, re-run in the simulator under other policies.

The ledger's jobs submitted in [since, until) that ran (their real runtime is the duration of their
last attempt) become the simulator's workload: arrival = `submitted_at`, request = the job's
request, true runtime = what it really took, estimate = its time limit when it has one (what a
policy sees at run time), else the true runtime. The cluster is the ledger's hosts with their
capacity and the prices in force now. Each policy's run and what really happened (the recorded
attempts, lost ones included) go through the same `scheduler.metrics.compute_metrics`, so wait,
slowdown, utilization and cost are side by side on one footing.

Time limits. A job's time limit is simulated where its history shows it was kept: one killed at
its limit (an attempt that ended `timeout`) times out in every row, at its limit, and a job that
was requeued at its limit (`--requeue-on-timeout`) is requeued as often as it really was, its last
attempt as long as it really ran (its work: that last attempt plus the limit of each one killed;
the restart overhead is left at 0, since the recorded last attempt already holds it; a last
attempt seen past the limit stretches the limit to its length, so the job still finishes). A job
that ended timed out needed more than its limits gave it: it is killed at every limit, as it was.
Rows count `timed_out` jobs (not finished) and `requeues`.

Like is compared with like. The simulator knows no dependencies, so a job that ran `--after`
others arrives, in every row (the recorded one too), when its last dependency really ended: its
wait is the time it waited for the cluster, not for the job before it. And time when no dispatcher
ran (no `serve`, no console: seen as a gap in the dispatcher's samples) is left out of the
timeline for every row alike: a job submitted then arrives when a dispatcher returned, and nobody
is counted as waiting while nothing could have started it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from lepton_tui.economics.costs import charged_from
from lepton_tui.economics.prices import get_currency, prices_at, whole_node_per_hour
from lepton_tui.errors import ValidationError
from lepton_tui.ledger import Ledger

ACTUAL = "actual"
# A dispatcher sample (one per host per tick; per minute or hour once compacted) shows a dispatcher
# ran for its resolution, and at least this long after it: a longer silence is time without one.
DISPATCHER_SILENCE_S = 120.0


class Timeline:
    """Time with no dispatcher running, cut out: `at(t)` maps a moment onto a clock that stops
    while no dispatcher ran (no gaps known: the identity)."""

    def __init__(self, gaps: list[tuple[float, float]]) -> None:
        self.gaps = gaps
        self.removed_s = sum(b - a for a, b in gaps)

    def at(self, t: float) -> float:
        return t - sum(min(b, t) - a for a, b in self.gaps if a < t)


def dispatcher_gaps(
    ledger: Ledger, since: float, until: float, tick_s: float
) -> list[tuple[float, float]]:
    """The stretches of [first sample, last sample] around [since, until] with no dispatcher
    running: its host samples (any resolution) are further apart than their resolution plus a
    silence of a few ticks. No samples at all: nothing is known, no gap."""
    silence = max(DISPATCHER_SILENCE_S, 10.0 * tick_s)
    rows = ledger.dispatcher_sample_times(since - 2 * 3600, until + 2 * 3600)
    gaps: list[tuple[float, float]] = []
    covered_to: float | None = None
    for r in rows:
        at, res = float(r["at"]), float(r["resolution"] or 0)
        if covered_to is not None and at > covered_to:
            gaps.append((covered_to, at))
        end = at + max(res, silence)
        covered_to = end if covered_to is None else max(covered_to, end)
    return gaps


@dataclass
class ReplayRow:
    """One policy's numbers (or those of what really happened, policy "actual")."""

    policy: str
    finished: int
    mean_wait_s: float
    p95_wait_s: float
    mean_slowdown: float
    mean_bounded_slowdown: float
    gpu_util: float
    cpu_util: float
    cost: float
    idle_cost: float
    makespan_s: float
    timed_out: int = 0
    requeues: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in self.__dict__.items()}  # fmt: skip


@dataclass
class ReplayResult:
    """The side-by-side comparison."""

    since: float
    until: float
    jobs: int
    hosts: int
    skipped: int
    currency: str
    rows: list[ReplayRow]
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since, "until": self.until, "jobs": self.jobs, "hosts": self.hosts,
            "skipped": self.skipped, "currency": self.currency,
            "rows": [r.as_dict() for r in self.rows], "notes": self.notes,
        }  # fmt: skip


def _scheduler() -> Any:
    from scheduler import metrics, model, registry, simulator

    return model, simulator, metrics, registry


def ledger_workload(ledger: Ledger, since: float, until: float) -> tuple[Any, Any, int]:
    """(Workload, recorded SimResult, skipped jobs) from the ledger's history in [since, until)."""
    model, simulator, _metrics, _registry = _scheduler()
    nodes = []
    for h in ledger.hosts():
        if not (h["cpus"] or 0) > 0:
            continue
        p = prices_at(ledger, h["name"])
        nodes.append(
            model.Node(
                h["name"],
                model.Resources(
                    float(h["cpus"]),
                    int(h["mem_mb"] or 0),
                    int(h["gpus"] or 0),
                    int(h["gpu_mem_mb"] or 0),
                ),
                model.Prices(whole_node_per_hour(p, h), p.cpu_hour, p.gpu_hour, p.gb_hour),
            )  # fmt: skip
        )
    by_node = {n.id: n for n in nodes}
    jobs = ledger.jobs_submitted(since, until)
    timeline = Timeline(
        dispatcher_gaps(ledger, since, until, float(ledger.get_setting("tick_s", 2.0) or 2.0))
    )
    ready = ledger.dependencies_ended(since, until)
    attempts: dict[int, list[dict[str, Any]]] = {}
    if jobs:
        for a in ledger.attempts_of_jobs_submitted(since, until):
            attempts.setdefault(a["job_id"], []).append(a)
    import json

    sim_jobs, records, sim_attempts = [], [], []
    timed_out: set[int] = set()
    skipped = 0
    for j in jobs:
        # the attempts that held resources, from when they are charged: a Slurm attempt from
        # Slurm's start (its time in Slurm's queue, or before sbatch returned, held nothing)
        atts = [
            {**a, "s0": s0}
            for a in attempts.get(j["id"], [])
            if a["ended_at"] is not None and (s0 := charged_from(a)) is not None
        ]
        last = atts[-1] if atts else None
        if last is None or j["state"] not in ("succeeded", "failed", "timeout", "cancelled"):
            skipped += 1
            continue
        start = last["s0"]
        runtime = float(last["ended_at"] - start)
        if runtime <= 0 or any(a["host"] not in by_node for a in atts):
            skipped += 1
            continue
        request = model.Resources(float(j["cpus"]), int(j["mem_mb"]), int(j["gpus"]),
                                  int(j["gpu_mem_mb"] or 0))  # fmt: skip
        est = float(j["time_limit_s"]) if j["time_limit_s"] else runtime
        # on the clock without dispatcher-less time, from when its dependencies had ended
        start_at = timeline.at(float(start))
        arrival = min(timeline.at(max(float(j["submitted_at"]), ready.get(j["id"], 0.0))), start_at)
        job = model.Job(
            j["id"], request, arrival, runtime, est, float(j["priority"] or 0), j["user"],
            j["project"],
        )  # fmt: skip
        job, ended_timed_out = with_recorded_limit(job, j, atts)
        if ended_timed_out:
            timed_out.add(j["id"])
        sim_jobs.append(job)
        for a in atts:
            s0 = float(a["s0"])
            sim_attempts.append(
                simulator.Attempt(
                    j["id"],
                    a["host"],
                    tuple(json.loads(a["gpu_ids"] or "[]")),
                    request,
                    timeline.at(s0),
                    timeline.at(s0) + float(a["ended_at"]) - s0,  # it ran its whole time
                    a is last and not ended_timed_out,
                    a["state"] == "timeout",
                )  # fmt: skip
            )
        records.append(
            simulator.JobRecord(
                j["id"],
                request,
                arrival,
                start_at,
                start_at + runtime,
                job.runtime_s,
                last["host"],
                tuple(json.loads(last["gpu_ids"] or "[]")),
                len(atts),
                float(j["priority"] or 0),
            )  # fmt: skip
        )
    fits = [j for j in sim_jobs if any(model.fits_empty(j.request, n.capacity) for n in nodes)]
    since, until = timeline.at(since), timeline.at(until)
    fit_ids = {j.id for j in fits}  # a set: comparing job to job was quadratic in the history
    dropped = [(j.id, "fits no host now") for j in sim_jobs if j.id not in fit_ids]
    workload = model.Workload("ledger", fits, nodes, dropped, False)
    t0 = min((j.submit_s for j in fits), default=since)
    t1 = max((r.end_s for r in records), default=t0)
    recorded = simulator.SimResult(
        workload="ledger", policy=ACTUAL, nodes=nodes,
        finished=[r for r in records if r.id in fit_ids and r.id not in timed_out],
        attempts=[a for a in sim_attempts if a.job_id in fit_ids],
        outages=[], unschedulable=[], unfinished=[], start_s=t0, end_s=t1, jobs=fits,
        timed_out=[r for r in records if r.id in fit_ids and r.id in timed_out],
    )  # fmt: skip
    return workload, recorded, skipped + len(dropped)


def with_recorded_limit(
    job: Any, row: dict[str, Any], atts: list[dict[str, Any]]
) -> tuple[Any, bool]:
    """`job` (its true runtime: its last attempt's) with the time limit its history shows was
    kept (see the module docstring), and whether it ended timed out."""
    limit = float(row.get("time_limit_s") or 0)
    killed = sum(1 for a in atts if a["state"] == "timeout")
    if not limit or (not killed and job.runtime_s > limit):
        return job, False  # no limit, or one it was let run past: it runs as it did
    if not killed:
        return replace(job, time_limit_s=limit), False
    if row["state"] == "timeout":  # killed at its last limit too: it needed more than it got
        work, requeues = (killed + 1) * limit, killed - 1
    else:
        # a last attempt seen past its limit (it ended near it, and a poll later) still ends
        # well: each attempt killed at its limit or there
        limit = max(limit, job.runtime_s)
        work, requeues = job.runtime_s + killed * limit, killed
    timed = replace(job, runtime_s=work, time_limit_s=limit, requeue_on_timeout=requeues > 0,
                    max_requeues=requeues)  # fmt: skip
    return timed, row["state"] == "timeout"


def _row(policy: str, m: dict[str, float]) -> ReplayRow:
    return ReplayRow(
        policy, int(m["finished"]), m["avg_wait"], m["p95_wait"], m["avg_slowdown"],
        m["avg_bounded_slowdown"], m["gpu_util"], m["cpu_util"], m["cost"], m["idle_cost"],
        m["makespan"], int(m["timed_out"]), int(m["requeues"]),
    )  # fmt: skip


def replay_ledger(
    ledger: Ledger,
    since: float,
    until: float,
    policies: list[str],
    *,
    cost_weight: float | None = None,
) -> ReplayResult:
    """Replay [since, until) under each policy; the first row is what really happened."""
    _model, simulator, metrics, registry = _scheduler()
    bad = [p for p in policies if p.strip().lower() not in registry.POLICY_NAMES]
    if bad:
        raise ValidationError(
            f"unknown policy {bad[0]!r}", f"choose from {', '.join(registry.POLICY_NAMES)}"
        )
    weight = float(ledger.get_setting("cost_weight", 0.0) if cost_weight is None else cost_weight)
    workload, recorded, skipped = ledger_workload(ledger, since, until)
    result = ReplayResult(since, until, len(workload.jobs), len(workload.nodes), skipped,
                          get_currency(ledger), [])  # fmt: skip
    if not workload.jobs:
        result.notes.append("no finished jobs in this window: nothing to replay")
        return result
    result.rows.append(_row(ACTUAL, metrics.compute_metrics(recorded)))
    share = float(ledger.get_setting("long_share", 0.0) or 0.0)
    for name in policies:
        options: dict[str, Any] = {"cost_weight": weight} if weight else {}
        if name == "sjf" and 0 < share <= 1:  # as the dispatcher runs it
            options["long_share"] = share
        try:
            policy = registry.make_policy(name, **options)
        except ValueError as exc:
            result.notes.append(f"{name}: {exc}")
            continue
        from lepton_tui.sharing import lab_policy  # the lab's fair share and limits, as live

        # restart overhead 0: a requeued job's recorded last attempt already holds it
        sim = simulator.Simulator(workload, restart_overhead_s=0.0)
        run = sim.run(lab_policy(ledger, policy))
        result.rows.append(_row(name, metrics.compute_metrics(run)))
    result.notes.append(
        "cost = allocation x today's prices x time for every row (energy not simulated); "
        "estimates are the jobs' time limits where set; in every row a job run --after others "
        "arrives when they ended, and time with no dispatcher running is left out"
    )
    return result
