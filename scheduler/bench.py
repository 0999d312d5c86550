"""Policies x workloads x seeds: one row of metrics per run, and a summary (mean and spread).

For trace workloads each seed replays a different window of the trace (seed 0 the last `jobs`
tasks, seed s the window `s * jobs` tasks earlier, wrapping around) with its own estimate errors,
so seeds measure spread over real stretches of work.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scheduler.metrics import compute_metrics
from scheduler.model import Node, Prices, Resources, Workload
from scheduler.registry import make_policy
from scheduler.simulator import Simulator
from scheduler.workloads import (
    LAB_NODE,
    TRACE_NODE,
    TraceTask,
    deeprm,
    lab_mix,
    load_trace,
    trace_workload,
)

WORKLOADS: tuple[str, ...] = ("deeprm", "lab", "trace")
ROW_METRICS: tuple[str, ...] = (
    "avg_slowdown",
    "avg_bounded_slowdown",
    "p95_bounded_slowdown",
    "avg_jct",
    "avg_wait",
    "makespan",
    "gpu_util",
    "gpu_util_arrivals",
    "cpu_util",
    "cost",
    "idle_cost",
    "decision_ms_p50",
    "decision_ms_p99",
    "bound_slowdown",
    "bound_makespan",
    "gap_makespan",
    "gap_bounded_slowdown",
    "finished",
    "unfinished",
    "unschedulable",
    "lost_attempts",
    "rounds",
)
# Prices for the bench's nodes, near a cloud's: $2.50 per GPU-hour, 3 cents per core-hour,
# 0.4 cents per GB-hour (so cost and idle cost mean something in the tables).
BENCH_PRICES = Prices(cpu_hour=0.03, gpu_hour=2.5, gb_hour=0.004)
DEFAULT_JOBS = {"deeprm": 1000, "lab": 1000, "trace": 2000}
DEFAULT_NODES = {"deeprm": 1, "lab": 8, "trace": 8}

_TRACE_CACHE: dict[str, list[TraceTask]] = {}


def _tasks(path: str | Path) -> list[TraceTask]:
    key = str(Path(path).resolve())
    if key not in _TRACE_CACHE:
        _TRACE_CACHE[key] = load_trace(path)
    return _TRACE_CACHE[key]


def make_workload(
    kind: str,
    seed: int = 0,
    *,
    jobs: int | None = None,
    load: float = 0.9,
    nodes: int | None = None,
    trace: str | Path | None = None,
    node_list: str | Path | None = None,
    node_shape: Resources | None = None,
    estimate_sigma: float | None = None,
    start: int | None = None,
) -> Workload:
    """Build workload `kind` (deeprm, lab, trace) for `seed` with the bench's defaults."""
    if kind not in WORKLOADS:
        raise ValueError(f"unknown workload {kind!r}; choose from {', '.join(WORKLOADS)}")
    n_jobs = DEFAULT_JOBS[kind] if jobs is None else jobs
    n_nodes = DEFAULT_NODES[kind] if nodes is None else nodes
    if n_jobs < 1 or n_nodes < 1:
        raise ValueError("jobs and nodes must be >= 1")
    if not (load > 0 and math.isfinite(load)):
        raise ValueError("load must be a positive number")
    if kind == "deeprm":
        wl = deeprm(
            n_jobs,
            load,
            seed,
            num_nodes=n_nodes,
            estimate_sigma=0.0 if estimate_sigma is None else estimate_sigma,
        )
    elif kind == "lab":
        wl = lab_mix(
            n_jobs,
            load,
            seed,
            nodes=n_nodes,
            node_shape=node_shape or LAB_NODE,
            estimate_sigma=0.5 if estimate_sigma is None else estimate_sigma,
        )
    else:
        wl = _trace(
            seed, n_jobs, n_nodes, load, trace, node_list, node_shape, estimate_sigma, start
        )
    wl.nodes = [Node(n.id, n.capacity, n.prices or BENCH_PRICES) for n in wl.nodes]
    return wl


def _trace(seed, n_jobs, n_nodes, load, trace, node_list, node_shape, estimate_sigma, start):  # noqa: ANN001, ANN202
    if trace is None:
        raise ValueError("the trace workload needs a trace CSV (--trace)")
    tasks = _tasks(trace)
    if start is None:
        # windows count back from the trace's end: its first rows are pods that were already
        # running when the trace began, spread over months, not a stretch of arrivals
        room = max(0, len(tasks) - n_jobs)
        start = room - (seed * n_jobs) % (room + 1)
    return trace_workload(
        tasks,
        jobs=n_jobs,
        start=start,
        nodes=n_nodes,
        node_shape=node_shape or TRACE_NODE,
        node_list=node_list,
        load=load,
        seed=seed,
        estimate_sigma=0.5 if estimate_sigma is None else estimate_sigma,
    )


def bench_run(
    workload: Workload, policy: str, seed: int = 0, policy_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One simulated run: a row of metrics."""
    pol = make_policy(policy, **(policy_options or {}))
    t0 = time.perf_counter()
    result = Simulator(workload).run(pol)
    wall = time.perf_counter() - t0
    m = compute_metrics(result)
    row: dict[str, Any] = {
        "policy": policy,
        "workload": workload.name,
        "seed": seed,
        "jobs": len(workload.jobs),
        "nodes": len(workload.nodes),
        "dropped": len(workload.dropped),
        "offered_load": float(workload.info.get("offered_load", math.nan)),
        "wall_s": wall,
    }
    for k in ROW_METRICS:
        row[k] = m[k]
    gaps = getattr(pol, "gaps", None)
    if gaps:
        row["ilp_gap_max"] = float(max(gaps))
    return row


def run_bench(
    kind: str,
    policies: Sequence[str],
    seeds: int | Sequence[int] = 1,
    *,
    policy_options: dict[str, dict[str, Any]] | None = None,
    **workload_options: Any,
) -> list[dict[str, Any]]:
    """Every policy on `kind` for every seed (the same workload per seed for all policies)."""
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("at least one seed is needed")
    for p in policies:  # fail before any work on a bad name or option
        make_policy(p, **((policy_options or {}).get(p, {})))
    rows = []
    for seed in seed_list:
        wl = make_workload(kind, seed, **workload_options)
        for p in policies:
            row = bench_run(wl, p, seed, (policy_options or {}).get(p))
            row["load"] = workload_options.get("load", 0.9)
            rows.append(row)
    return rows


def summarize(
    rows: Sequence[dict[str, Any]], keys: Sequence[str] = ROW_METRICS
) -> list[dict[str, Any]]:
    """Mean and standard deviation of each metric per (workload, load, policy), in row order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["workload"], r.get("load"), r["policy"]), []).append(r)
    out = []
    for (wl, load, pol), rs in groups.items():
        s: dict[str, Any] = {"workload": wl, "load": load, "policy": pol, "seeds": len(rs)}
        for k in keys:
            vals = np.array([r[k] for r in rs], dtype=float)
            s[k] = float(np.nanmean(vals)) if len(vals) else math.nan
            s[k + "_std"] = float(np.nanstd(vals)) if len(vals) > 1 else 0.0
        out.append(s)
    return out
