"""Workloads: DeepRM-style synthetic jobs, lab mixes, HPC jobs (Lublin-Feitelson), and trace replays.

Families: deeprm, lab, lab-long (multi-day trainings beside short debugging jobs), hpc (the
Lublin and Feitelson 2003 model of rigid parallel jobs), and trace (the Alibaba 2023 GPU trace, any
CSV with its columns, or a Standard Workload Format file from the Parallel Workloads Archive).

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
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
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
    """One usable row of a trace (`estimate_s` 0: the trace gives no runtime estimate)."""

    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int
    qos: str
    submit_s: float
    duration_s: float
    row: int
    estimate_s: float = 0.0
    user: str = ""


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
    long_jobs: bool = False,
) -> Workload:
    """A small lab's week: GPU training (1, 2, 4, 8 GPUs), notebooks on GPU shares, sweeps of
    short 1-GPU jobs that arrive together, and CPU preprocessing; log-normal (heavy-tailed)
    durations; Poisson arrivals scaled to a GPU `load` on `nodes` nodes of `node_shape`.

    `long_jobs` (the "lab-long" family): a deadline month instead, where multi-day trainings
    (4 or 8 GPUs, median 1.5 days, up to 5) run beside many short debugging jobs (1 GPU,
    2-30 min) and the same notebooks and CPU work."""
    if num_jobs < 0 or nodes < 1 or load <= 0:
        raise ValueError("num_jobs >= 0, nodes >= 1 and load > 0 are required")
    rng = np.random.default_rng(seed)
    per_gpu = node_shape.gpu_mem_mb // node_shape.gpus if node_shape.gpus else 0
    users = [f"user-{i}" for i in range(1, 9)]
    projects = ["vision", "nlp", "rl", "infra"]
    sample = _long_group if long_jobs else _lab_group
    groups: list[list[tuple[Resources, float, str, float]]] = []
    count = 0
    while count < num_jobs:
        group = sample(rng, node_shape, per_gpu)[: num_jobs - count]
        groups.append(group)
        count += len(group)
    flat = [item for g in groups for item in g]
    gpu_s = sum(gpu_equivalents(r, per_gpu) * d for r, d, _, _ in flat)
    cpu_s = sum(r.cpus * d for r, d, _, _ in flat)
    if gpu_s > 0 and node_shape.gpus:
        span = gpu_s / (load * nodes * node_shape.gpus)
    else:
        span = cpu_s / (load * nodes * node_shape.cpus)
    gaps = rng.exponential(span / max(1, len(groups)), size=len(groups)).tolist()
    # a user, then a project per group: one call, the same draws in the same order as one
    # call per draw (bounded draws with array bounds take one draw each)
    n_users, n_projects = len(users), len(projects)
    who = rng.integers(0, np.tile([n_users, n_projects], len(groups))).reshape(-1, 2).tolist()
    durations = np.array([d for _, d, _, _ in flat])
    est = _estimates(rng, durations, estimate_sigma).tolist()
    jobs: list[Job] = []
    t = 0.0
    i = 0
    for gap, group, (u, pr) in zip(gaps, groups, who, strict=True):
        user = users[u]
        project = projects[pr]
        for k, (req, dur, kind, prio) in enumerate(group):
            jobs.append(Job(i, req, t + k, dur, est[i], prio, user, project, kind))
            i += 1
        t += gap
    node_list = [Node(f"gpu-{i}", node_shape, prices) for i in range(nodes)]
    return Workload(
        "lab-long" if long_jobs else "lab",
        jobs,
        node_list,
        [],
        estimate_sigma <= 0,
        {"load": load, "span_s": span},
    )


_Group = list[tuple[Resources, float, str, float]]


def _choice_cdf(p: Sequence[float]) -> list[float]:
    """`Generator.choice(a, p=p)`'s table: one `rng.random()` looked up in it (bisect right) picks
    the very index `choice` would, from the same draw, without choice's per-call checks."""
    cdf = np.array(p, dtype=np.double).cumsum()
    cdf /= cdf[-1]
    return cdf.tolist()


def _clip(x: float, lo: float, hi: float) -> float:
    """`float(np.clip(x, lo, hi))` for a float x (not NaN), without numpy's per-call cost."""
    return float(min(max(x, lo), hi))


_TRAIN_GPUS = (1, 2, 4, 8)
_TRAIN_CDF = _choice_cdf([0.4, 0.3, 0.2, 0.1])
_LONG_GPUS = (4, 8)
_LONG_CDF = _choice_cdf([0.5, 0.5])
_LOG_7200 = math.log(7200)
_LOG_5400 = math.log(5400)
_LOG_900 = math.log(900)
_LOG_1200 = math.log(1200)
_LOG_LONG = math.log(1.5 * 86400)
_LOG_3600 = math.log(3600)
_SWEEP_REQ = Resources(4.0, 16384, 1)


def _lab_group(rng: np.random.Generator, node_shape: Resources, per_gpu: int) -> _Group:
    """One arrival of the lab mix: a training, a notebook, a sweep or a CPU job.

    Draws as `rng.choice`/`np.clip` on scalars did, one call per draw except a sweep's
    durations (one `lognormal` call of k draws: the same k numbers), so a seed gives the same
    jobs as before (`tests/scheduler/test_workload_digests.py`)."""
    u = rng.random()
    if u < 0.35 and node_shape.gpus:
        g = _TRAIN_GPUS[bisect_right(_TRAIN_CDF, rng.random())]
        g = min(g, node_shape.gpus)
        req = Resources(float(min(8 * g, node_shape.cpus)), min(32768 * g, node_shape.mem_mb), g)
        dur = _clip(rng.lognormal(_LOG_7200, 1.2), 300, 3 * 86400)
        return [(req, dur, "train", 0.0)]
    if u < 0.50 and per_gpu:
        share = int(per_gpu * rng.uniform(0.125, 0.4))
        req = Resources(4.0, 16384, 0, share)
        dur = _clip(rng.lognormal(_LOG_5400, 0.8), 300, 86400)
        return [(req, dur, "notebook", 1.0)]
    if u < 0.70 and node_shape.gpus:
        k = int(rng.integers(5, 21))
        durs = np.clip(rng.lognormal(_LOG_900, 0.6, size=k), 60, 14400).tolist()
        return [(_SWEEP_REQ, d, "sweep", 0.0) for d in durs]
    return [_cpu_job(rng, node_shape)]


def _cpu_job(
    rng: np.random.Generator, node_shape: Resources
) -> tuple[Resources, float, str, float]:
    cpus = float(min(int(rng.integers(4, 33)), node_shape.cpus))
    req = Resources(cpus, min(int(rng.integers(8, 65)) * 1024, node_shape.mem_mb), 0)
    dur = _clip(rng.lognormal(_LOG_1200, 1.0), 60, 86400)
    return (req, dur, "cpu", 0.0)


def _long_group(rng: np.random.Generator, node_shape: Resources, per_gpu: int) -> _Group:
    """One arrival of the long-job lab mix: a multi-day training (15 %), a burst of short
    debugging jobs (45 %), a notebook (20 %) or a CPU job (drawn as `_lab_group` says)."""
    u = rng.random()
    if u < 0.15 and node_shape.gpus:
        g = min(_LONG_GPUS[bisect_right(_LONG_CDF, rng.random())], node_shape.gpus)
        req = Resources(float(min(8 * g, node_shape.cpus)), min(32768 * g, node_shape.mem_mb), g)
        dur = _clip(rng.lognormal(_LOG_LONG, 0.5), 43200, 5 * 86400)
        return [(req, dur, "train-long", 0.0)]
    if u < 0.60 and node_shape.gpus:
        k = int(rng.integers(1, 6))
        return [(_SWEEP_REQ, d, "debug", 0.0) for d in rng.uniform(120, 1800, size=k).tolist()]
    if u < 0.80 and per_gpu:
        share = int(per_gpu * rng.uniform(0.125, 0.4))
        req = Resources(4.0, 16384, 0, share)
        dur = _clip(rng.lognormal(_LOG_3600, 0.8), 300, 86400)
        return [(req, dur, "notebook", 1.0)]
    return [_cpu_job(rng, node_shape)]


# -- HPC (Lublin and Feitelson 2003) -----------------------------------------------------------

# One large CPU-only node, the machine of the RL-scheduling papers (a 256-processor pool).
HPC_NODE = Resources(256.0, 256 * 1024, 0, 0)


def hpc(
    num_jobs: int = 1000,
    load: float = 0.9,
    seed: int = 0,
    *,
    nodes: int = 1,
    node_shape: Resources = HPC_NODE,
    prices: Prices | float | None = None,
    estimate_sigma: float = 0.5,
    mem_per_cpu_mb: int = 1024,
) -> Workload:
    """Rigid parallel batch jobs from the workload model of Lublin and Feitelson, "The workload
    on parallel supercomputers: modeling the characteristics of rigid jobs", JPDC 63(11), 2003.

    Implemented from the paper's description, batch-job parameters:

    * size: serial with probability 0.24; else log2(size) follows a two-stage uniform
      distribution, U(0.8, m) with probability 0.86 and U(m, log2 N) otherwise, where N is the
      node's processor count and m = log2 N - 2.5; with probability 0.75 log2(size) is rounded to
      an integer (the model's power-of-two preference);
    * run time: its natural logarithm follows a hyper-gamma distribution, Gamma(4.2, 0.94) with
      probability p and Gamma(312, 0.03) otherwise, p = -0.0054 * size + 0.78 clipped to [0, 1]
      (larger jobs tend to run longer);
    * arrivals: the paper's daily cycle, approximated here by a Poisson process whose rate
      during 8:00-18:00 is three times the night's (the paper fits gamma distributions to the
      inter-arrival times and to the jobs per half-hour slot); the mean rate is set so the
      offered CPU load on `nodes` nodes of `node_shape` is `load`.

    A job asks for `size` CPUs and `mem_per_cpu_mb` each; estimates are the run time times a
    log-normal error of `estimate_sigma`. Users are drawn from 32 with a Zipf-like skew.
    """
    if num_jobs < 0 or nodes < 1 or load <= 0 or node_shape.cpus < 1:
        raise ValueError("num_jobs >= 0, nodes >= 1, load > 0 and a node with CPUs are required")
    rng = np.random.default_rng(seed)
    n_procs = int(node_shape.cpus)
    hi = math.log2(n_procs)
    med = max(hi - 2.5, 0.8)
    sizes = np.ones(num_jobs)
    parallel = rng.random(num_jobs) >= 0.24
    first = rng.random(num_jobs) < 0.86
    x = np.where(first, rng.uniform(0.8, med, num_jobs), rng.uniform(med, hi, num_jobs))
    x = np.where(rng.random(num_jobs) < 0.75, np.round(x), x)
    sizes = np.where(parallel, np.clip(np.round(2.0**x), 1, n_procs), 1.0)
    p = np.clip(-0.0054 * sizes + 0.78, 0.0, 1.0)
    short = rng.random(num_jobs) < p
    log_rt = np.where(short, rng.gamma(4.2, 0.94, num_jobs), rng.gamma(312.0, 0.03, num_jobs))
    runtimes = np.clip(np.exp(log_rt), 1.0, 7 * 86400.0)
    mem = int(max(0, mem_per_cpu_mb))
    max_mem = node_shape.mem_mb
    # arrivals: thinning of a Poisson process with a day/night rate
    work = float((sizes * runtimes).sum())
    rate = num_jobs * load * nodes * node_shape.cpus / work if work > 0 else 1.0

    def cycle(t: float) -> float:
        hour = (t / 3600.0) % 24.0
        return 1.0 if 8.0 <= hour < 18.0 else 1.0 / 3.0

    mean_w = (10 * 1.0 + 14 / 3.0) / 24.0
    peak = rate / mean_w
    submit = np.zeros(num_jobs)
    t = 8 * 3600.0  # the first job comes in the morning
    k = 0
    while k < num_jobs:
        t += float(rng.exponential(1.0 / peak))
        if rng.random() < cycle(t):
            submit[k] = t
            k += 1
    submit -= submit[0] if num_jobs else 0.0
    est = _estimates(rng, runtimes, estimate_sigma)
    weights = 1.0 / np.arange(1, 33)
    users = rng.choice(32, size=num_jobs, p=weights / weights.sum())
    jobs = [
        Job(
            i,
            Resources(float(sizes[i]), min(int(sizes[i]) * mem, max_mem), 0),
            float(submit[i]),
            float(runtimes[i]),
            float(est[i]),
            0.0,
            f"user-{int(users[i]) + 1}",
            "",
            "serial" if sizes[i] == 1 else "parallel",
        )
        for i in range(num_jobs)
    ]
    span = float(submit[-1]) if num_jobs > 1 else 1.0
    offered = work / (max(span, 1.0) * nodes * node_shape.cpus)
    node_list = [Node(f"hpc-{i}", node_shape, prices) for i in range(nodes)]
    return Workload(
        "hpc",
        jobs,
        node_list,
        [],
        estimate_sigma <= 0,
        {"load": load, "offered_load": offered, "span_s": span},
    )


# -- trace replay ------------------------------------------------------------------------------


def shown(raw: str, limit: int = 24) -> str:
    """A field as an error message quotes it: cut to `limit` characters, so a 100 kB field
    cannot make the message longer than a line."""
    return repr(raw) if len(raw) <= limit else repr(raw[:limit]) + f"... ({len(raw):,} characters)"


def _int_field(row: dict[str, str | None], field: str, where: str) -> int:
    raw = (row.get(field) or "").strip()
    try:
        v = float(raw)
    except ValueError:
        raise TraceError(f"{where}: {field} {shown(raw)} is not a number") from None
    if not math.isfinite(v) or v < 0:
        raise TraceError(f"{where}: {field} {shown(raw)} must be a non-negative number")
    return int(v)


def _csv_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(line, row) of a CSV file with `columns` among its header's, raising TraceError (one line,
    naming the file and line) for text that is not UTF-8, a field over the csv module's limit, a
    missing column, or a row with fewer or more fields than the header (a truncated last row)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in columns if c not in header]
            if missing:
                raise TraceError(f"{path.name}: missing column(s) {', '.join(missing)}")
            for row in reader:
                line = reader.line_num
                if None in row.values():
                    got = sum(v is not None for v in row.values())
                    raise TraceError(
                        f"{path.name} line {line}: {got} of {len(header)} fields (a truncated row?)"
                    )
                if None in row:
                    raise TraceError(
                        f"{path.name} line {line}: more fields than the header's {len(header)}"
                    )
                yield line, row
    except UnicodeDecodeError:
        raise TraceError(f"{path.name}: not UTF-8 text") from None
    except csv.Error as exc:
        text = str(exc)
        if "field larger than field limit" in text:
            text = f"a field is longer than {csv.field_size_limit():,} characters"
        raise TraceError(f"{path.name} line {reader.line_num}: {text}") from None


def load_trace(path: str | Path) -> list[TraceTask]:
    """Read a trace: an `.swf` file as the Standard Workload Format (see `load_swf`), anything
    else as a pod list in the Alibaba 2023 format (see TRACE_COLUMNS), skipping Pending rows.

    Raises TraceError naming the file, line and field for text that is not UTF-8, a missing
    column, a truncated row, a bad number, an end before the start, or no usable row.
    """
    path = Path(path)
    if path.suffix.lower() == ".swf":
        return load_swf(path)
    tasks: list[TraceTask] = []
    for line, row in _csv_rows(path, TRACE_COLUMNS):
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
                shown_name(row.get("name")) or f"row-{line}",
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


def shown_name(raw: str | None, limit: int = 200) -> str:
    """A task name as kept: stripped and at most `limit` characters."""
    return (raw or "").strip()[:limit]


SWF_FIELDS = (
    "job number",
    "submit time",
    "wait time",
    "run time",
    "allocated processors",
    "average CPU time",
    "used memory",
    "requested processors",
    "requested time",
    "requested memory",
    "status",
    "user",
    "group",
    "executable",
    "queue",
    "partition",
    "preceding job",
    "think time",
)
"""The 18 fields of a Standard Workload Format line (Parallel Workloads Archive; -1: unknown)."""


def load_swf(path: str | Path) -> list[TraceTask]:
    """Read a Standard Workload Format file (the Parallel Workloads Archive's format).

    Lines starting with `;` are the header's comments. Each job line has the 18 whitespace-
    separated fields of `SWF_FIELDS`; -1 means unknown. A job asks for its requested processors
    (falling back to the allocated ones) as CPUs and, where the requested memory (KB per
    processor; else the used memory) is known, that much memory; it runs for its run time; its
    estimate is the requested time where known (0 = none); its submit time is the trace's. Jobs
    without a positive run time or processor count (cancelled before they started) are skipped.
    Raises TraceError naming the file and line for text that is not UTF-8, a line with fewer or
    more than 18 fields (a truncated last line), a field that is not a number, or no usable job.
    """
    path = Path(path)
    tasks: list[TraceTask] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            for line_no, line in enumerate(f, start=1):
                text = line.strip()
                if not text or text.startswith(";"):
                    continue
                task = _swf_task(text, path.name, line_no, line.endswith("\n"))
                if task is not None:
                    tasks.append(task)
    except UnicodeDecodeError:
        raise TraceError(f"{path.name}: not UTF-8 text") from None
    if not tasks:
        raise TraceError(f"{path.name}: no usable jobs (no line with a run time and processors)")
    tasks.sort(key=lambda t: (t.submit_s, t.row))
    return tasks


def _swf_task(text: str, name: str, line_no: int, complete: bool) -> TraceTask | None:
    where = f"{name} line {line_no}"
    parts = text.split()
    if len(parts) != len(SWF_FIELDS):
        cut = " (a truncated line?)" if len(parts) < len(SWF_FIELDS) and not complete else ""
        raise TraceError(
            f"{where}: {len(parts)} fields, the Standard Workload Format has {len(SWF_FIELDS)}{cut}"
        )
    values: list[float] = []
    for field, raw in zip(SWF_FIELDS, parts, strict=True):
        try:
            v = float(raw)
        except ValueError:
            raise TraceError(f"{where}: {field} {shown(raw)} is not a number") from None
        if not math.isfinite(v) or abs(v) > 1e15:
            raise TraceError(f"{where}: {field} {shown(raw)} is out of range")
        values.append(v)
    job, submit, _, run, alloc, _, used_mem, req_procs, req_time, req_mem = values[:10]
    user = values[11]
    procs = req_procs if req_procs > 0 else alloc
    if run <= 0 or procs <= 0:
        return None
    if submit < 0:
        raise TraceError(f"{where}: submit time {submit:g} is negative")
    kb_per_proc = req_mem if req_mem > 0 else used_mem if used_mem > 0 else 0
    return TraceTask(
        f"{job:g}" if job >= 0 else f"line-{line_no}",
        int(round(procs * 1000)),
        int(math.ceil(procs * kb_per_proc / 1024)),
        0,
        0,
        "",
        float(submit),
        float(run),
        line_no,
        float(req_time) if req_time > 0 else 0.0,
        f"user-{user:g}" if user >= 0 else "",
    )


def load_node_list(path: str | Path, gpu_mem_per_gpu_mb: int = 32768) -> list[Node]:
    """Read a node list in the Alibaba 2023 format (`sn,cpu_milli,memory_mib,gpu,...`)."""
    path = Path(path)
    nodes: list[Node] = []
    for line, row in _csv_rows(path, NODE_LIST_COLUMNS):
        where = f"{path.name} row {line}"
        cpu = _int_field(row, "cpu_milli", where)
        mem = _int_field(row, "memory_mib", where)
        gpus = _int_field(row, "gpu", where)
        nodes.append(
            Node(
                shown_name(row["sn"]) or f"row-{line}",
                Resources(cpu / 1000, mem, gpus, gpus * gpu_mem_per_gpu_mb),
            )
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
    estimate_sigma: float | None = 0.5,
    seed: int = 0,
    gpu_mem_per_gpu_mb: int = 32768,
    prices: Prices | float | None = None,
    name: str = "trace",
) -> Workload:
    """Replay `jobs` consecutive tasks (from index `start`) of a trace on a small cluster.

    The cluster is `nodes` nodes of `node_shape`, or, with `node_list`, `nodes` nodes sampled
    (by `seed`) from that list. Tasks that fit no node are dropped and listed in `dropped`.
    Inter-arrival times are rescaled so the offered load is `load` (None keeps the trace's
    own times: native arrivals); `info` holds the scale and the load reached. The load is of
    GPUs when the cluster has GPUs and the tasks ask for some, else of CPUs (an HPC trace on
    CPU-only nodes). Estimates: a task's own (an SWF requested time) when `estimate_sigma` is
    None and the trace gives one, else the true runtime times a log-normal error of
    `estimate_sigma` (None: 0.5 for tasks without an estimate of their own).
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
            dropped.append((t.name, f"line {t.row}: needs {req.describe()}, more than any node"))
    if not kept:
        raise TraceError(
            f"no task of the trace window ({len(window)} tasks from {start}) fits the chosen "
            "nodes; use a larger --node-shape"
        )
    submit = np.array([t.submit_s for t, _ in kept])
    dur = np.array([t.duration_s for t, _ in kept])
    per_gpu = gpu_mem_per_gpu_mb
    demand = np.array([gpu_equivalents(r, per_gpu) for _, r in kept])
    gpu_capacity = float(sum(n.capacity.gpus for n in cluster))
    unit = "GPUs"
    if gpu_capacity <= 0 or demand.sum() <= 0:
        unit = "CPUs"
        demand = np.array([r.cpus for _, r in kept])
    capacity = (
        gpu_capacity if unit == "GPUs" else float(sum(n.capacity.cpus for n in cluster))
    ) or 1.0
    scale, reached = 1.0, offered_load(submit, dur, demand, capacity, 1.0)
    if load is not None:
        if load <= 0:
            raise ValueError("load must be > 0")
        scale, reached = rescale_to_load(submit, dur, demand, capacity, load)
        if reached < load * (1 - 1e-6):
            raise TraceError(
                f"load {load:g} is out of reach for this window of {len(kept)} tasks on "
                f"{capacity:g} {unit} (at most {reached:.2f}); use fewer nodes or more jobs"
            )
    own = np.array([t.estimate_s for t, _ in kept])
    sigma = 0.5 if estimate_sigma is None else estimate_sigma
    est = _estimates(rng, dur, sigma)
    if estimate_sigma is None:
        est = np.where(own > 0, own, est)
    exact = bool(np.all(est == dur))
    t0 = submit.min()
    out = [
        Job(
            t.name,
            req,
            float((t.submit_s - t0) * scale),
            float(t.duration_s),
            float(e),
            QOS_PRIORITY.get(t.qos, 0.0),
            user=t.user,
            kind=t.qos,
        )
        for (t, req), e in zip(kept, est, strict=True)
    ]
    return Workload(
        name,
        out,
        cluster,
        dropped,
        exact,
        {
            "scale": scale,
            "offered_load": reached,
            "target_load": load or 0.0,
            "dropped": len(dropped),
            "gpus": int(gpu_capacity),
            "load_of": unit,
            "start": start,
        },
    )


def with_time_limits(
    workload: Workload, factor: float, *, requeue_on_timeout: bool = False, max_requeues: int = 10
) -> Workload:
    """`workload` with every job given a time limit of `factor` times its estimate (the way users
    pad a request: the true runtime beyond it is killed), and, with `requeue_on_timeout`, requeued
    at its limit up to `max_requeues` times (see `scheduler.simulator`)."""
    if not (factor > 0 and math.isfinite(factor)):
        raise ValueError(f"the time limit factor must be a positive number, got {factor!r}")
    if max_requeues < 0:
        raise ValueError(f"max requeues must be >= 0, got {max_requeues!r}")
    jobs = [
        replace(j, time_limit_s=factor * j.est_runtime_s, requeue_on_timeout=requeue_on_timeout,
                max_requeues=max_requeues)
        for j in workload.jobs
    ]  # fmt: skip
    info = dict(workload.info)
    info["time_limit_factor"] = factor
    info["requeue_on_timeout"] = int(requeue_on_timeout)
    return replace(workload, jobs=jobs, info=info)
