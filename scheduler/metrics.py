"""Metrics of a simulated run, with the lower bounds they are measured against.

* slowdown = (end - submit) / runtime, >= 1; bounded slowdown = max(1, (end - submit) /
  max(runtime, tau)) with tau = 10 s, so tiny jobs do not dominate;
* JCT = end - submit; wait = start - submit; makespan = last end - first submit;
* utilization per resource = allocated resource-seconds (every attempt, lost ones included) over
  capacity x up-time in [first submit, last end]; `gpu_util_arrivals` the same for GPUs over
  [first submit, last submit];
* cost = per-resource or flat node prices x allocation x time; idle cost = the price of the nodes'
  up-time minus that;
* bounds: slowdown >= 1, makespan >= max(latest release + its runtime, total work / capacity per
  resource); gaps are reported as value / bound - 1 (a job with a time limit counts only the work
  it can do before its limits end it);
* time limits: `timed_out` jobs ended killed at their limit (not in `finished`), `requeues` made
  at a limit (each a killed attempt whose job went back to the queue), and the GPU- and CPU-hours
  held by every attempt of the jobs that ended timed out (`timed_out_gpu_hours`,
  `timed_out_cpu_hours`: work lost, as nothing of it finished); `lost_attempts` counts attempts
  lost to outages only.
"""

from __future__ import annotations

import math

import numpy as np

from scheduler.model import Job, allocation_price_per_hour, gpu_equivalents
from scheduler.simulator import SimResult

TAU_S = 10.0


def percentile(values: np.ndarray, q: float) -> float:
    """`float(np.percentile(values, q))` (its default, linear method) for a 1-d float array, the
    same arithmetic step by step: numpy's own goes through `np.unique`, whose first call imports
    `numpy.ma` (some 10 ms of a bench command). `tests/scheduler/test_metrics_percentile.py`
    checks the two agree bit for bit."""
    n = len(values)
    top = float(values.max())
    if math.isnan(top):
        return math.nan
    v = (n - 1) * (q / 100)
    if v >= n - 1:
        return top
    lo = math.floor(v)
    part = np.partition(values, (lo, lo + 1))  # the two order statistics, as a sort would
    a, b = float(part[lo]), float(part[lo + 1])
    gamma = v - lo
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


def held_at_least(job: Job) -> float:
    """The least time `job` holds its request: its runtime, or what its time limits let it run
    before they end it (each of 1 + its requeues, if any, up to the limit)."""
    limit = job.time_limit_s
    if not limit:
        return job.runtime_s
    return min(job.runtime_s, limit * (1 + (job.max_requeues if job.requeue_on_timeout else 0)))


def makespan_lower_bound(result: SimResult) -> float:
    """max(latest release + its runtime, total work / capacity per resource), from first submit."""
    unschedulable = {u for u, _ in result.unschedulable}
    jobs = [j for j in result.jobs if j.id not in unschedulable]
    if not jobs:
        return 0.0
    t0 = result.start_s
    # a job without a time limit counts its runtime, as it always did (the same bits)
    run = [j.runtime_s if not j.time_limit_s else held_at_least(j) for j in jobs]
    release = max(j.submit_s + r for j, r in zip(jobs, run, strict=True)) - t0
    per_gpu = max((n.gpu_mem_per_gpu_mb for n in result.nodes), default=0)
    cap_c = sum(n.capacity.cpus for n in result.nodes)
    cap_m = sum(n.capacity.mem_mb for n in result.nodes)
    cap_g = sum(n.capacity.gpus for n in result.nodes)
    work_c = sum(j.request.cpus * r for j, r in zip(jobs, run, strict=True))
    work_m = sum(j.request.mem_mb * r for j, r in zip(jobs, run, strict=True))
    work_g = sum(gpu_equivalents(j.request, per_gpu) * r for j, r in zip(jobs, run, strict=True))
    bound = release
    for work, cap in ((work_c, cap_c), (work_m, cap_m), (work_g, cap_g)):
        if cap > 0:
            bound = max(bound, work / cap)
    return float(bound)


def _up_time(result: SimResult, node_id: str, t0: float, t1: float) -> float:
    """Time in [t0, t1] the node was up (overlapping outages merged)."""
    spans = sorted(
        (max(t0, o.start_s), min(t1, o.start_s + o.duration_s))
        for o in result.outages
        if o.node_id == node_id
    )
    down, reach = 0.0, t0
    for a, b in spans:
        a = max(a, reach)
        if b > a:
            down += b - a
            reach = b
    return max(0.0, (t1 - t0) - down)


def time_limit_metrics(result: SimResult) -> dict[str, float]:
    """Jobs ended at their time limit, requeues at a limit, and the hours the timed-out jobs
    held (see the module docstring)."""
    ended = {r.id for r in result.timed_out}
    killed = sum(1 for a in result.attempts if a.timed_out)
    gpu_h = cpu_h = 0.0
    if ended:
        per_gpu = {n.id: n.gpu_mem_per_gpu_mb for n in result.nodes}
        for a in result.attempts:
            if a.job_id in ended:
                d = max(0.0, a.end_s - a.start_s) / 3600.0
                gpu_h += gpu_equivalents(a.request, per_gpu.get(a.node_id, 0)) * d
                cpu_h += a.request.cpus * d
    return {
        "timed_out": float(len(ended)),
        "requeues": float(max(0, killed - len(ended))),
        "timed_out_gpu_hours": gpu_h,
        "timed_out_cpu_hours": cpu_h,
    }


def compute_metrics(result: SimResult, tau_s: float = TAU_S) -> dict[str, float]:
    """All metrics of a run as a flat dict of numbers (JSON-friendly)."""
    fin = result.finished
    out: dict[str, float] = {
        "jobs": float(len(result.jobs)),
        "finished": float(len(fin)),
        "unfinished": float(len(result.unfinished)),
        "unschedulable": float(len(result.unschedulable)),
        "lost_attempts": float(
            sum(1 for a in result.attempts if not a.completed and not a.timed_out)
        ),
    }
    out.update(time_limit_metrics(result))
    if fin:
        submit = np.array([j.submit_s for j in fin])
        start = np.array([j.start_s for j in fin])
        end = np.array([j.end_s for j in fin])
        run = np.array([j.runtime_s for j in fin])
        jct = end - submit
        sd = jct / run
        bsd = np.maximum(1.0, jct / np.maximum(run, tau_s))
        out.update(
            avg_slowdown=float(sd.mean()),
            p95_slowdown=percentile(sd, 95),
            avg_bounded_slowdown=float(bsd.mean()),
            p95_bounded_slowdown=percentile(bsd, 95),
            avg_jct=float(jct.mean()),
            p95_jct=percentile(jct, 95),
            avg_wait=float((start - submit).mean()),
            p95_wait=percentile(start - submit, 95),
        )
    else:
        for k in (
            "avg_slowdown",
            "p95_slowdown",
            "avg_bounded_slowdown",
            "p95_bounded_slowdown",
            "avg_jct",
            "p95_jct",
            "avg_wait",
            "p95_wait",
        ):
            out[k] = math.nan
    t0, t1 = result.start_s, result.end_s
    makespan = t1 - t0
    out["makespan"] = float(makespan)

    nodes = {n.id: n for n in result.nodes}
    per_gpu = {n.id: n.gpu_mem_per_gpu_mb for n in result.nodes}
    up = {n.id: _up_time(result, n.id, t0, t1) for n in result.nodes}
    alloc_c = alloc_m = alloc_g = 0.0
    cost = 0.0
    # GPU utilization while jobs still arrive: heavy-tailed traces leave a long tail of a few jobs
    # after the last arrival, which the whole-run figure averages in
    last_submit = max((j.submit_s for j in result.jobs), default=t0)
    busy_g = 0.0
    for a in result.attempts:  # one pass, each sum still in attempt order (the same bits)
        n = nodes[a.node_id]
        req = a.request
        g = gpu_equivalents(req, per_gpu[a.node_id])
        began = max(a.start_s, t0)
        d = max(0.0, min(a.end_s, t1) - began)
        alloc_c += req.cpus * d
        alloc_m += req.mem_mb * d
        alloc_g += g * d
        cost += allocation_price_per_hour(req, n.capacity, n.prices) * d / 3600.0
        busy_g += g * max(0.0, min(a.end_s, last_submit) - began)
    cap_arr = sum(n.capacity.gpus * _up_time(result, n.id, t0, last_submit) for n in result.nodes)
    out["gpu_util_arrivals"] = busy_g / cap_arr if cap_arr else 0.0
    cap_c = sum(n.capacity.cpus * up[n.id] for n in result.nodes)
    cap_m = sum(n.capacity.mem_mb * up[n.id] for n in result.nodes)
    cap_g = sum(n.capacity.gpus * up[n.id] for n in result.nodes)
    out["cpu_util"] = alloc_c / cap_c if cap_c else 0.0
    out["mem_util"] = alloc_m / cap_m if cap_m else 0.0
    out["gpu_util"] = alloc_g / cap_g if cap_g else 0.0
    total = sum(n.price_per_hour * up[n.id] for n in result.nodes) / 3600.0
    out["cost"] = cost
    out["idle_cost"] = max(0.0, total - cost)
    out["total_cost"] = total

    lb = makespan_lower_bound(result)
    out["bound_slowdown"] = 1.0
    out["bound_makespan"] = lb
    out["gap_bounded_slowdown"] = out["avg_bounded_slowdown"] - 1.0
    out["gap_makespan"] = makespan / lb - 1.0 if lb > 0 else 0.0
    ds = np.array(result.decision_s) * 1e3
    out["decision_ms_p50"] = percentile(ds, 50) if len(ds) else 0.0
    out["decision_ms_p99"] = percentile(ds, 99) if len(ds) else 0.0
    out["rounds"] = float(len(ds))
    return out
