"""Policies x workloads x seeds: one row of metrics per run, and a summary (mean and spread).

Families: deeprm, lab, lab-long, hpc (synthetic) and trace (a replay of a CSV in the Alibaba 2023
format or of a Standard Workload Format `.swf` file).

For trace workloads each seed replays a different window of the trace, so seeds measure spread
over real stretches of work: with native arrival times (`load=None`) or an SWF file, seed s is the
window of `jobs` tasks that starts `s * jobs` tasks after `start` (default 0; successive windows,
as the RL-scheduling papers evaluate); otherwise (a CSV rescaled to a load) seed 0 is the last
`jobs` tasks and seed s the window `s * jobs` tasks earlier, wrapping around, unless `start` fixes
one window for every seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from scheduler.metrics import compute_metrics
from scheduler.model import Node, Prices, Resources, Workload
from scheduler.registry import make_policy
from scheduler.simulator import Simulator
from scheduler.workloads import (
    HPC_NODE,
    LAB_NODE,
    TRACE_NODE,
    TraceError,
    TraceTask,
    deeprm,
    hpc,
    lab_mix,
    load_trace,
    trace_workload,
    with_time_limits,
)

WORKLOADS: tuple[str, ...] = ("deeprm", "lab", "lab-long", "hpc", "trace")
"""The workload families."""
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
    "timed_out",
    "requeues",
    "timed_out_gpu_hours",
)
# Prices for the bench's nodes, near a cloud's: $2.50 per GPU-hour, 3 cents per core-hour,
# 0.4 cents per GB-hour (so cost and idle cost mean something in the tables).
BENCH_PRICES = Prices(cpu_hour=0.03, gpu_hour=2.5, gb_hour=0.004)
DEFAULT_JOBS = {"deeprm": 1000, "lab": 1000, "lab-long": 1000, "hpc": 1000, "trace": 2000}
DEFAULT_NODES = {"deeprm": 1, "lab": 8, "lab-long": 8, "hpc": 1, "trace": 8}
"""Nodes when none are given (an SWF trace: one)."""
JOBS_PER_NODE = {"deeprm": 0, "lab": 125, "lab-long": 125, "hpc": 0, "trace": 250}
"""The `bench` command's cluster size when --nodes is not given: one node per this many jobs, 1
to `DEFAULT_NODES` (0: always one node), so a short run (`--jobs 200`) still queues work
instead of giving every policy a slowdown of 1. The default job counts get `DEFAULT_NODES`."""


def default_nodes(kind: str, jobs: int, swf: bool = False) -> int:
    """The `bench` command's nodes for `jobs` jobs of `kind` (an SWF trace: one)."""
    per = 0 if swf else JOBS_PER_NODE[kind]
    return 1 if per == 0 else max(1, min(DEFAULT_NODES[kind], jobs // per))


def is_swf(path: str | Path | None) -> bool:
    """True for a Standard Workload Format file (by its `.swf` suffix)."""
    return path is not None and Path(path).suffix.lower() == ".swf"


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
    load: float | None = 0.9,
    nodes: int | None = None,
    trace: str | Path | None = None,
    node_list: str | Path | None = None,
    node_shape: Resources | None = None,
    estimate_sigma: float | None = None,
    start: int | None = None,
    repeat: bool = False,
    time_limit_factor: float | None = None,
    requeue_on_timeout: bool = False,
    max_requeues: int = 10,
) -> Workload:
    """Build workload `kind` (see WORKLOADS) for `seed` with the bench's defaults; `load` None
    keeps a trace's native arrival times. A trace window runs short of `jobs` at the trace's end:
    `info["jobs_asked"]` then says how many were asked for, unless `repeat` cycles the trace
    (`cycle_tasks`). `time_limit_factor` gives every job a time limit of that many times its
    estimate, requeued at it up to `max_requeues` times with `requeue_on_timeout`
    (`with_time_limits`)."""
    if kind not in WORKLOADS:
        raise ValueError(f"unknown workload {kind!r}; choose from {', '.join(WORKLOADS)}")
    if repeat and kind != "trace":
        raise ValueError("repeat cycles a trace (the trace workload only)")
    swf = kind == "trace" and is_swf(trace)
    n_jobs = DEFAULT_JOBS[kind] if jobs is None else jobs
    n_nodes = (1 if swf else DEFAULT_NODES[kind]) if nodes is None else nodes
    if n_jobs < 1 or n_nodes < 1:
        raise ValueError("jobs and nodes must be >= 1")
    if load is None:
        if kind != "trace":
            raise ValueError("native arrival times (load 'native') need a trace (--trace FILE)")
    elif not (load > 0 and math.isfinite(load)):
        raise ValueError("load must be a positive number")
    if kind == "deeprm":
        wl = deeprm(
            n_jobs,
            load,
            seed,
            num_nodes=n_nodes,
            estimate_sigma=0.0 if estimate_sigma is None else estimate_sigma,
        )
    elif kind in ("lab", "lab-long"):
        wl = lab_mix(
            n_jobs,
            float(load or 0.9),
            seed,
            nodes=n_nodes,
            node_shape=node_shape or LAB_NODE,
            estimate_sigma=0.5 if estimate_sigma is None else estimate_sigma,
            long_jobs=kind == "lab-long",
        )
    elif kind == "hpc":
        wl = hpc(
            n_jobs,
            float(load or 0.9),
            seed,
            nodes=n_nodes,
            node_shape=node_shape or HPC_NODE,
            estimate_sigma=0.5 if estimate_sigma is None else estimate_sigma,
        )
    else:
        wl = _trace(
            seed, n_jobs, n_nodes, load, trace, node_list, node_shape, estimate_sigma, start, repeat
        )
    wl.nodes = [Node(n.id, n.capacity, n.prices or BENCH_PRICES) for n in wl.nodes]
    if time_limit_factor is not None:
        wl = with_time_limits(
            wl, time_limit_factor, requeue_on_timeout=requeue_on_timeout, max_requeues=max_requeues
        )
    elif requeue_on_timeout:
        raise ValueError("requeue on timeout needs time limits (a time limit factor)")
    return wl


def trace_window(
    n_tasks: int, jobs: int, seed: int, start: int | None, *, forward: bool, name: str = "trace"
) -> int:
    """First task of seed `seed`'s window (see the module docstring); ValueError when it falls
    past the trace's end."""
    if not forward:
        if start is not None:
            return start
        # windows count back from the trace's end: an Alibaba trace's first rows are pods that
        # were already running when it began, spread over months, not a stretch of arrivals
        room = max(0, n_tasks - jobs)
        return room - (seed * jobs) % (room + 1)
    first = (start or 0) + seed * jobs
    if first >= n_tasks:
        raise TraceError(
            f"{name} has {n_tasks} usable jobs: window {seed + 1} of {jobs} jobs would start at "
            f"job {first}; use fewer --seeds, fewer --jobs or an earlier --start"
        )
    return first


def cycle_tasks(tasks: Sequence[TraceTask], n: int) -> list[TraceTask]:
    """The trace's tasks played again and again until there are `n`: each round starts where the
    last one's arrivals ended (plus the trace's mean gap between arrivals), with names suffixed
    `~k` so every job id stays unique."""
    if not tasks or n <= len(tasks):
        return list(tasks)
    first = min(t.submit_s for t in tasks)
    span = max(t.submit_s for t in tasks) - first
    span += span / max(1, len(tasks) - 1)
    out = list(tasks)
    k = 0
    while len(out) < n:
        k += 1
        for t in tasks[: n - len(out)]:
            out.append(replace(t, name=f"{t.name}~{k}", submit_s=t.submit_s + k * span))
    return out


def _trace(
    seed, n_jobs, n_nodes, load, trace, node_list, node_shape, estimate_sigma, start, repeat
):  # noqa: ANN001, ANN202, E501
    if trace is None:
        raise ValueError("the trace workload needs a trace file (--trace)")
    tasks = _tasks(trace)
    if repeat:
        tasks = cycle_tasks(tasks, (start or 0) + n_jobs * (1 + seed))
    swf = is_swf(trace)
    if start is not None and not 0 <= start < len(tasks):
        raise TraceError(
            f"--start {start} is outside {Path(trace).name}'s {len(tasks)} usable jobs"
        )
    first = trace_window(
        len(tasks), n_jobs, seed, start, forward=swf or load is None, name=Path(trace).name
    )
    wl = trace_workload(
        tasks,
        jobs=n_jobs,
        start=first,
        nodes=n_nodes,
        node_shape=node_shape or (HPC_NODE if swf else TRACE_NODE),
        node_list=node_list,
        load=load,
        seed=seed,
        estimate_sigma=estimate_sigma if estimate_sigma is not None or swf else 0.5,
    )
    if len(tasks) - first < n_jobs:
        wl.info["jobs_asked"] = n_jobs
        wl.info["trace_tasks"] = len(tasks)
    return wl


def bench_run(
    workload: Workload, policy: str, seed: int = 0, policy_options: dict[str, Any] | None = None,
    lab_rules: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One simulated run: a row of metrics. `lab_rules` ({"fair_share": bool, "user_gpus": N})
    puts fair share and a per-user GPU limit around the policy (`scheduler.fairshare`)."""
    pol = make_policy(policy, **(policy_options or {}))
    if lab_rules:
        pol, policy = _with_lab_rules(pol, policy, lab_rules)
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
        "jobs_asked": int(
            workload.info.get("jobs_asked", len(workload.jobs) + len(workload.dropped))
        ),
        "wall_s": wall,
    }
    for k in ROW_METRICS:
        row[k] = m[k]
    if "time_limit_factor" in workload.info:
        row["time_limit_factor"] = workload.info["time_limit_factor"]
        row["requeue_on_timeout"] = bool(workload.info["requeue_on_timeout"])
    gaps = getattr(pol, "gaps", None)
    if gaps:
        row["ilp_gap_max"] = float(max(gaps))
    return row


def _with_lab_rules(pol: Any, name: str, rules: dict[str, Any]) -> tuple[Any, str]:
    from scheduler.fairshare import Limit, ShareConfig, SharedLabPolicy

    fair = bool(rules.get("fair_share"))
    gpus = rules.get("user_gpus")
    limits = [Limit("user", "*", gpus=int(gpus))] if gpus else []
    config = ShareConfig(weight=1.0 if fair else 0.0)
    label = name + ("+fs" if fair else "") + (f"+gpus{gpus}" if gpus else "")
    return SharedLabPolicy(pol, config, limits), label


def run_bench(
    kind: str,
    policies: Sequence[str],
    seeds: int | Sequence[int] = 1,
    *,
    policy_options: dict[str, dict[str, Any]] | None = None,
    lab_rules: dict[str, Any] | None = None,
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
            row = bench_run(wl, p, seed, (policy_options or {}).get(p), lab_rules)
            ld = workload_options.get("load", 0.9)
            row["load"] = "native" if ld is None else ld
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
