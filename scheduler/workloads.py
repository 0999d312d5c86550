"""Workloads: DeepRM-style synthetic jobs, a lab mix, and replays of the Alibaba 2023 GPU trace.

Every generator is deterministic for its seed and returns a `Workload` (jobs with true and estimated
runtimes, nodes, and the tasks it dropped with the reason). Estimated runtimes are the true ones
times a log-normal error `exp(N(0, estimate_sigma))`; `estimate_sigma=0` makes them exact.

Offered load (trace replays and the lab mix) is GPU load: requested GPU-seconds per second over the
cluster's GPUs. For trace replays only the part of each task's run that falls inside the arrival
window counts (see `rescale_to_load`), so a few tasks that run for weeks do not swamp the target.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scheduler.model import (
    Job,
    JobId,
    Node,
    Prices,
    Resources,
    Workload,
    fits_empty,
    gpu_equivalents,
)

TRACE_COLUMNS = (
    "name",
    "cpu_milli",
    "memory_mib",
    "num_gpu",
    "gpu_milli",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
NODE_LIST_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu")

# A node like the trace's most common GPU node (G2: 96 cores, 384 GiB, 8 GPUs); GPU memory is ours.
TRACE_NODE = Resources(96.0, 393216, 8, 8 * 32768)
# A lab server: 64 cores, 512 GB, 8 GPUs of 80 GB.
LAB_NODE = Resources(64.0, 524288, 8, 8 * 81920)
QOS_PRIORITY = {"LS": 1.0, "Burstable": 0.0, "BE": -1.0}


class TraceError(ValueError):
    """A trace file that cannot be used: the message names the file, row and field."""


@dataclass(frozen=True, slots=True)
class TraceTask:
    """One usable row of a trace."""

    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int
    qos: str
    submit_s: float
    duration_s: float
    row: int


def _estimates(rng: np.random.Generator, runtimes: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return runtimes.copy()
    return runtimes * np.exp(rng.normal(0.0, sigma, size=len(runtimes)))


# -- DeepRM ------------------------------------------------------------------------------------


def deeprm(
    num_jobs: int = 200,
    load: float | None = None,
    seed: int = 0,
    *,
    rate: float = 0.7,
    num_nodes: int = 1,
    units: int = 10,
    step_s: float = 60.0,
    estimate_sigma: float = 0.0,
) -> Workload:
    """DeepRM-style jobs (Mao et al. 2016) on `num_nodes` nodes of 2 resources x `units` units.

    The two resources are CPUs and whole GPUs. 80 % of jobs are short (1-3 steps), 20 % long
    (10-15); each has one dominant resource of 5-10 units and 1-2 of the other. Jobs arrive by
    Bernoulli trials each step with probability `rate` (per node); `load`, when given, sets the rate
    so the expected offered load per resource is `load`. A step lasts `step_s` seconds.
    """
    if num_jobs < 0 or num_nodes < 1 or units < 2:
        raise ValueError("num_jobs >= 0, num_nodes >= 1 and units >= 2 are required")
    rng = np.random.default_rng(seed)
    mean_dur = 0.8 * 2.0 + 0.2 * 12.5
    mean_units = 0.5 * (0.75 * units) + 0.5 * (0.15 * units)
    if load is not None:
        rate = load * units / (mean_dur * mean_units)
    total_rate = rate * num_nodes
    slots = max(1, math.ceil(total_rate))
    p = min(1.0, total_rate / slots)
    lo, hi = max(1, units // 2), units
    jobs: list[Job] = []
    step = 0
    while len(jobs) < num_jobs:
        arrivals = int(rng.binomial(slots, p))
        for _ in range(arrivals):
            if len(jobs) >= num_jobs:
                break
            dur = int(rng.integers(1, 4)) if rng.random() < 0.8 else int(rng.integers(10, 16))
            big = int(rng.integers(lo, hi + 1))
            small = int(rng.integers(1, max(2, units // 5) + 1))
            cpus, gpus = (big, small) if rng.random() < 0.5 else (small, big)
            jobs.append(
                Job(
                    len(jobs),
                    Resources(float(cpus), 0, gpus),
                    step * step_s,
                    dur * step_s,
                    dur * step_s,
                    kind="long" if dur >= 10 else "short",
                )
            )
        step += 1
    if estimate_sigma > 0:
        est = _estimates(rng, np.array([j.runtime_s for j in jobs]), estimate_sigma)
        jobs = [_with_est(j, float(e)) for j, e in zip(jobs, est, strict=True)]
    nodes = [
        Node(f"node-{i}", Resources(float(units), 65536, units, 0), 0.0) for i in range(num_nodes)
    ]
    offered = sum(j.runtime_s * (j.request.cpus + j.request.gpus) / 2 for j in jobs)
    span = (jobs[-1].submit_s + step_s) if jobs else 1.0
    return Workload(
        "deeprm",
        jobs,
        nodes,
        [],
        estimate_sigma <= 0,
        {"rate": rate, "offered_load": offered / (span * units * num_nodes)},
    )


def _with_est(job: Job, est: float) -> Job:
    return Job(
        job.id,
        job.request,
        job.submit_s,
        job.runtime_s,
        est,
        job.priority,
        job.user,
        job.project,
        job.kind,
    )


# -- lab mix -----------------------------------------------------------------------------------


def lab_mix(
    num_jobs: int = 500,
    load: float = 0.9,
    seed: int = 0,
    *,
    nodes: int = 8,
    node_shape: Resources = LAB_NODE,
    prices: Prices | float | None = None,
    estimate_sigma: float = 0.5,
) -> Workload:
    """A small lab's week: GPU training (1, 2, 4, 8 GPUs), notebooks on GPU shares, sweeps of
    short 1-GPU jobs that arrive together, and CPU preprocessing; log-normal (heavy-tailed)
    durations; Poisson arrivals scaled to a GPU `load` on `nodes` nodes of `node_shape`."""
    if num_jobs < 0 or nodes < 1 or load <= 0:
        raise ValueError("num_jobs >= 0, nodes >= 1 and load > 0 are required")
    rng = np.random.default_rng(seed)
    per_gpu = node_shape.gpu_mem_mb // node_shape.gpus if node_shape.gpus else 0
    users = [f"user-{i}" for i in range(1, 9)]
    projects = ["vision", "nlp", "rl", "infra"]
    groups: list[list[tuple[Resources, float, str, float]]] = []
    count = 0
    while count < num_jobs:
        u = rng.random()
        if u < 0.35 and node_shape.gpus:
            g = int(rng.choice([1, 2, 4, 8], p=[0.4, 0.3, 0.2, 0.1]))
            g = min(g, node_shape.gpus)
            req = Resources(
                float(min(8 * g, node_shape.cpus)), min(32768 * g, node_shape.mem_mb), g
            )
            dur = float(np.clip(rng.lognormal(math.log(7200), 1.2), 300, 3 * 86400))
            group = [(req, dur, "train", 0.0)]
        elif u < 0.50 and per_gpu:
            share = int(per_gpu * rng.uniform(0.125, 0.4))
            req = Resources(4.0, 16384, 0, share)
            dur = float(np.clip(rng.lognormal(math.log(5400), 0.8), 300, 86400))
            group = [(req, dur, "notebook", 1.0)]
        elif u < 0.70 and node_shape.gpus:
            k = int(rng.integers(5, 21))
            req = Resources(4.0, 16384, 1)
            group = [
                (req, float(np.clip(rng.lognormal(math.log(900), 0.6), 60, 14400)), "sweep", 0.0)
                for _ in range(k)
            ]
        else:
            req = Resources(float(rng.integers(4, 33)), int(rng.integers(8, 65)) * 1024, 0)
            dur = float(np.clip(rng.lognormal(math.log(1200), 1.0), 60, 86400))
            group = [(req, dur, "cpu", 0.0)]
        group = group[: num_jobs - count]
        groups.append(group)
        count += len(group)
    gpu_s = sum(gpu_equivalents(r, per_gpu) * d for g in groups for r, d, _, _ in g)
    cpu_s = sum(r.cpus * d for g in groups for r, d, _, _ in g)
    if gpu_s > 0 and node_shape.gpus:
        span = gpu_s / (load * nodes * node_shape.gpus)
    else:
        span = cpu_s / (load * nodes * node_shape.cpus)
    gaps = rng.exponential(span / max(1, len(groups)), size=len(groups))
    t = 0.0
    jobs: list[Job] = []
    for gap, group in zip(gaps, groups, strict=True):
        user = users[int(rng.integers(len(users)))]
        project = projects[int(rng.integers(len(projects)))]
        for k, (req, dur, kind, prio) in enumerate(group):
            jobs.append(Job(len(jobs), req, t + k, dur, dur, prio, user, project, kind))
        t += float(gap)
    est = _estimates(rng, np.array([j.runtime_s for j in jobs]), estimate_sigma)
    jobs = [_with_est(j, float(e)) for j, e in zip(jobs, est, strict=True)]
    node_list = [Node(f"gpu-{i}", node_shape, prices) for i in range(nodes)]
    return Workload("lab", jobs, node_list, [], estimate_sigma <= 0, {"load": load, "span_s": span})


# -- trace replay ------------------------------------------------------------------------------


def _int_field(row: dict[str, str], field: str, where: str) -> int:
    raw = (row.get(field) or "").strip()
    try:
        v = float(raw)
    except ValueError:
        raise TraceError(f"{where}: {field} {raw!r} is not a number") from None
    if not math.isfinite(v) or v < 0:
        raise TraceError(f"{where}: {field} {raw!r} must be a non-negative number")
    return int(v)


def load_trace(path: str | Path) -> list[TraceTask]:
    """Read a pod list in the Alibaba 2023 format (see TRACE_COLUMNS), skipping Pending rows.

    Raises TraceError naming the row and field for a missing column, a bad number, an end before
    the start, or a file without one usable row.
    """
    path = Path(path)
    tasks: list[TraceTask] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in TRACE_COLUMNS if c not in header]
        if missing:
            raise TraceError(f"{path.name}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            where = f"{path.name} row {line}"
            phase = (row.get("pod_phase") or "").strip()
            if phase == "Pending" or not (row.get("scheduled_time") or "").strip():
                continue
            cpu = _int_field(row, "cpu_milli", where)
            mem = _int_field(row, "memory_mib", where)
            ngpu = _int_field(row, "num_gpu", where)
            gmilli = _int_field(row, "gpu_milli", where)
            created = _int_field(row, "creation_time", where)
            sched = _int_field(row, "scheduled_time", where)
            deleted = _int_field(row, "deletion_time", where)
            if deleted <= sched:
                raise TraceError(
                    f"{where}: deletion_time {deleted} is not after scheduled_time {sched}"
                )
            if ngpu == 1 and gmilli > 1000:
                raise TraceError(f"{where}: gpu_milli {gmilli} is more than one GPU (1000)")
            tasks.append(
                TraceTask(
                    row.get("name") or f"row-{line}",
                    cpu,
                    mem,
                    ngpu,
                    gmilli,
                    (row.get("qos") or "").strip(),
                    float(created),
                    float(deleted - sched),
                    line,
                )
            )
    if not tasks:
        raise TraceError(f"{path.name}: no usable rows (all Pending or empty)")
    tasks.sort(key=lambda t: (t.submit_s, t.row))
    return tasks


def load_node_list(path: str | Path, gpu_mem_per_gpu_mb: int = 32768) -> list[Node]:
    """Read a node list in the Alibaba 2023 format (`sn,cpu_milli,memory_mib,gpu,...`)."""
    path = Path(path)
    nodes: list[Node] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in NODE_LIST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(f"{path.name}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            where = f"{path.name} row {line}"
            cpu = _int_field(row, "cpu_milli", where)
            mem = _int_field(row, "memory_mib", where)
            gpus = _int_field(row, "gpu", where)
            nodes.append(
                Node(row["sn"], Resources(cpu / 1000, mem, gpus, gpus * gpu_mem_per_gpu_mb))
            )
    if not nodes:
        raise TraceError(f"{path.name}: no nodes")
    return nodes


def task_request(task: TraceTask, gpu_mem_per_gpu_mb: int) -> Resources:
    """A trace task as a request: whole GPUs, or a share of one GPU's memory from gpu_milli."""
    share = task.num_gpu == 1 and 0 < task.gpu_milli < 1000
    return Resources(
        task.cpu_milli / 1000.0,
        task.memory_mib,
        0 if share else task.num_gpu,
        math.ceil(task.gpu_milli * gpu_mem_per_gpu_mb / 1000) if share else 0,
    )


def offered_load(
    submit: np.ndarray, dur: np.ndarray, gpus: np.ndarray, capacity: float, scale: float
) -> float:
    """GPU load when arrivals are spread by `scale`: the GPU-seconds that fall inside the arrival
    window [0, scale * span] over the window times the GPU capacity."""
    rel = submit - submit.min()
    span = max(float(rel.max()), 1.0)
    window = scale * span
    inside = np.minimum(dur, window - scale * rel)
    return float((gpus * inside).sum() / (window * capacity))


def rescale_to_load(
    submit: np.ndarray, dur: np.ndarray, gpus: np.ndarray, capacity: float, target: float
) -> tuple[float, float]:
    """The factor on inter-arrival times that makes `offered_load` hit `target` (bisection: the
    load falls as arrivals spread out); returns (scale, load reached)."""
    lo, hi = 1e-9, 1e9
    if offered_load(submit, dur, gpus, capacity, lo) < target:
        return lo, offered_load(submit, dur, gpus, capacity, lo)
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if offered_load(submit, dur, gpus, capacity, mid) > target:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-9:
            break
    scale = math.sqrt(lo * hi)
    return scale, offered_load(submit, dur, gpus, capacity, scale)


def trace_workload(
    source: str | Path | Sequence[TraceTask],
    *,
    jobs: int | None = 2000,
    start: int = 0,
    nodes: int = 8,
    node_shape: Resources = TRACE_NODE,
    node_list: str | Path | Sequence[Node] | None = None,
    load: float | None = 0.9,
    estimate_sigma: float = 0.5,
    seed: int = 0,
    gpu_mem_per_gpu_mb: int = 32768,
    prices: Prices | float | None = None,
) -> Workload:
    """Replay `jobs` consecutive tasks (from index `start`) of a trace on a small cluster.

    The cluster is `nodes` nodes of `node_shape`, or, with `node_list`, `nodes` nodes sampled
    (by `seed`) from that list. Tasks that fit no node are dropped and listed in `dropped`.
    Inter-arrival times are rescaled so the offered GPU load is `load` (None keeps the trace's
    own times); `info` holds the scale and the load reached.
    """
    tasks = load_trace(source) if isinstance(source, (str, Path)) else list(source)
    if nodes < 1:
        raise ValueError("nodes must be >= 1")
    if start < 0 or start >= len(tasks):
        raise ValueError(f"start {start} is outside the trace's {len(tasks)} usable tasks")
    window = tasks[start : start + jobs if jobs is not None else None]
    rng = np.random.default_rng(seed)
    if node_list is not None:
        pool = (
            load_node_list(node_list, gpu_mem_per_gpu_mb)
            if isinstance(node_list, (str, Path))
            else list(node_list)
        )
        picks = rng.choice(len(pool), size=min(nodes, len(pool)), replace=False)
        cluster = [Node(pool[i].id, pool[i].capacity, prices) for i in sorted(picks)]
    else:
        shape = node_shape
        cluster = [Node(f"node-{i:02d}", shape, prices) for i in range(nodes)]
    kept: list[tuple[TraceTask, Resources]] = []
    dropped: list[tuple[JobId, str]] = []
    for t in window:
        req = task_request(t, gpu_mem_per_gpu_mb)
        if any(fits_empty(req, n.capacity) for n in cluster):
            kept.append((t, req))
        else:
            dropped.append((t.name, f"row {t.row}: needs {req.describe()}, more than any node"))
    if not kept:
        raise TraceError("no task of the trace window fits the chosen nodes")
    submit = np.array([t.submit_s for t, _ in kept])
    dur = np.array([t.duration_s for t, _ in kept])
    per_gpu = gpu_mem_per_gpu_mb
    gpus = np.array([gpu_equivalents(r, per_gpu) for _, r in kept])
    capacity = float(sum(n.capacity.gpus for n in cluster)) or 1.0
    scale, reached = 1.0, offered_load(submit, dur, gpus, capacity, 1.0)
    if load is not None:
        if load <= 0:
            raise ValueError("load must be > 0")
        scale, reached = rescale_to_load(submit, dur, gpus, capacity, load)
        if reached < load * (1 - 1e-6):
            raise TraceError(
                f"load {load:g} is out of reach for this window of {len(kept)} tasks on "
                f"{int(capacity)} GPUs (at most {reached:.2f}); use fewer nodes or more jobs"
            )
    est = _estimates(rng, dur, estimate_sigma)
    t0 = submit.min()
    out = [
        Job(
            t.name,
            req,
            float((t.submit_s - t0) * scale),
            float(t.duration_s),
            float(e),
            QOS_PRIORITY.get(t.qos, 0.0),
            kind=t.qos,
        )
        for (t, req), e in zip(kept, est, strict=True)
    ]
    return Workload(
        "trace",
        out,
        cluster,
        dropped,
        estimate_sigma <= 0,
        {
            "scale": scale,
            "offered_load": reached,
            "target_load": load or 0.0,
            "dropped": len(dropped),
            "gpus": int(capacity),
        },
    )
