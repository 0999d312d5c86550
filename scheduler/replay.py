"""Fragmentation under arrivals and departures: the FGD experiment's placements over a trace replay.

The fill-up experiment (scheduler/packing.py) places pods and never removes them. Here pods arrive
at the trace's creation times (compressed by a factor so the cluster is loaded, see `speed_for`),
run for the trace's duration (deletion - scheduled time) and then free what they held. Every
`round_s` seconds a scheduling round first applies the departures, then starts queued pods in
order (FIFO with backfill: a pod that does not fit waits, those behind it may start), each placed
by one of the experiment's placers (`PLACERS`). A pod that fits no node even when it is empty
(CPU, memory, GPUs, GPU model) is dropped and counted.

Measures, time-averaged over the arrival window (the state after a round holds until the next):

* `stranded_gpu_share`: the fragmentation (FGD's measure) of every node for the trace's typical
  request shapes (the same yardstick for every policy: the shapes covering 95 % of the replayed
  pods), as a share of the cluster's GPU capacity: GPU capacity those requests cannot use;
* `unallocated_gpu_share`: GPU capacity allocated to nobody;
* `idle_while_waiting_share`: GPU capacity allocated to nobody at times when a GPU pod waits in
  the queue (0 otherwise), the replay's version of the fill-up experiment's metric;
* `wait_s_mean`: the mean wait of the pods that started.

Round order (`order`): "fifo" takes the queue in arrival order and places pods one at a time;
"size" places the round's pods that may fit jointly, largest GPU demand first (then CPU, then
arrival), the bin-packing order that keeps small shares for the gaps big pods leave.
"""

from __future__ import annotations

import csv
import heapq
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scheduler.fragmentation import MILLI, STEP, FragCache, Mix, mix_of
from scheduler.packing import (
    PLACERS,
    Choice,
    Cluster,
    GpuClustering,
    Lepton,
    NodeList,
    PackingError,
    Placer,
    PodList,
    inflate,
    load_pods,
)

ORDERS = ("fifo", "size")


class LookAhead(Lepton):
    """Ours with a look-ahead over the round: for pod k, the `width` best candidates of `Lepton`
    (least growth in 0.1-GPU steps, nodes in use first, then node order) are each tried, and the
    one whose growth plus the least growth of each of the next `depth` pods of the round (`ahead`,
    placed greedily on the cluster as it would then be; a pod that does not fit adds its whole GPU
    request) is least wins, in 0.1-GPU steps, the first tried on ties. With nothing ahead it is
    `Lepton`."""

    name = "lepton-lookahead"
    width = 3
    depth = 4

    def __init__(self, cluster: Cluster, pods: PodList, rng: np.random.Generator) -> None:
        super().__init__(cluster, pods, rng)
        self.ahead: list[int] = []
        self.tries = 0

    def _learn(self, k: int) -> None:
        self.online.observe(self.pods.shape(k))
        if self.online.version != self._version:
            self._version = self.online.version
            self.set_mix(self.online.mix())

    def _gpu_ids(self, i: int, g: int, k: int) -> tuple[int, ...]:
        return (g,) if g >= 0 else self._gpus(i, k)

    def _apply(self, i: int, k: int, ids: Sequence[int], sign: int) -> None:
        p, c = self.pods, self.c
        if sign > 0:
            c.place(i, int(p.cpu[k]), int(p.mem[k]), int(p.milli[k]), ids)
        else:
            _release(c, i, int(p.cpu[k]), int(p.mem[k]), int(p.milli[k]), ids)
        self.placed(i)

    def _best(self, k: int) -> tuple[int, tuple[int, ...], float] | None:
        """Pod k's own choice on the cluster as it stands: node, GPUs, growth."""
        p = self.pods
        fit = self.c.fits(
            int(p.cpu[k]), int(p.mem[k]), int(p.gpus[k]), int(p.milli[k]), int(p.models[k])
        )
        if not len(fit):
            return None
        nodes, gpus, grow = self.candidates(k, fit)
        j = int(self.rank(k, nodes, grow)[0])
        i = int(nodes[j])
        return i, self._gpu_ids(i, int(gpus[j]), k), float(grow[j])

    def choose(self, k: int, fit: np.ndarray) -> Choice:
        self._learn(k)
        nodes, gpus, grow = self.candidates(k, fit)
        rank = self.rank(k, nodes, grow)
        ahead = self.ahead[: self.depth]
        if not ahead or len(rank) == 1:
            j = int(rank[0])
            i = int(nodes[j])
            return i, self._gpu_ids(i, int(gpus[j]), k)
        best: tuple[float, int, tuple[int, ...]] | None = None
        busy = self.c.busy.copy()
        for j in rank[: self.width].tolist():
            i = int(nodes[j])
            ids = self._gpu_ids(i, int(gpus[j]), k)
            self._apply(i, k, ids, +1)
            total = float(grow[j])
            undo: list[tuple[int, int, tuple[int, ...]]] = []
            for k2 in ahead:
                got = self._best(k2)
                if got is None:  # it no longer fits (or never did): all it asks is lost
                    total += float(self.pods.gpus[k2] * self.pods.milli[k2])
                    continue
                total += got[2]
                self._apply(got[0], k2, got[1], +1)
                undo.append((got[0], k2, got[1]))
            for i2, k2, ids2 in reversed(undo):
                self._apply(i2, k2, ids2, -1)
            self._apply(i, k, ids, -1)
            self.c.busy[:] = busy
            self.tries += 1
            key = np.floor(total / STEP + 1e-9)
            if best is None or key < best[0]:
                best = (key, i, ids)
        assert best is not None
        return best[1], best[2]


def make_placer(policy: str, cluster: Cluster, pods: PodList, rng: np.random.Generator) -> Placer:
    """A placer of the experiment (`PLACERS`) or `LookAhead` ("lepton-lookahead")."""
    if policy == LookAhead.name:
        return LookAhead(cluster, pods, rng)
    if policy not in PLACERS:
        names = ", ".join((*PLACERS, LookAhead.name))
        raise PackingError(f"unknown policy {policy!r}; choose from {names}")
    return PLACERS[policy](cluster, pods, rng)


@dataclass(frozen=True, slots=True)
class TracePods:
    """Pods with the trace's times: arrival (s from the trace start) and run time (s, >= 1)."""

    pods: PodList
    arrive: np.ndarray
    duration: np.ndarray

    def __len__(self) -> int:
        return len(self.arrive)


def load_trace(path: str | Path, nodes: NodeList, skip: float = 0.01) -> TracePods:
    """Read a pod list with times (Alibaba 2023 columns). Rows without times (Pending) are left
    out; a run time below one second counts as one second. The first `skip` of the pods by
    arrival are left out too: in the default list the first 1 % arrive over 116 of the 149 days
    (long-running pods created before the busy part), and would stretch the window."""
    path = Path(path)
    pods = load_pods(path, nodes)
    arrive, dur, keep = [], [], []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = ("creation_time", "scheduled_time", "deletion_time")
        missing = [c for c in need if c not in (reader.fieldnames or [])]
        if missing:
            raise PackingError(f"{path.name}: missing column(s) {', '.join(missing)}")
        for n, r in enumerate(reader):
            raw = [(r.get(c) or "").strip() for c in need]
            if not all(raw):
                continue
            try:
                created, started, ended = (float(x) for x in raw)
            except ValueError:
                raise PackingError(f"{path.name} row {n + 2}: a time is not a number") from None
            if not all(math.isfinite(x) for x in (created, started, ended)):
                raise PackingError(f"{path.name} row {n + 2}: a time is not finite")
            keep.append(n)
            arrive.append(created)
            dur.append(max(ended - started, 1.0))
    if not keep:
        raise PackingError(f"{path.name}: no pod has times (creation/scheduled/deletion)")
    idx = np.array(keep, dtype=np.int64)
    sub = PodList(*(a[idx] for a in (pods.cpu, pods.mem, pods.gpus, pods.milli, pods.models)))
    a = np.array(arrive, dtype=float)
    order = np.argsort(a, kind="stable")
    order = order[min(int(skip * len(order)), len(order) - 1) :]
    sub = PodList(*(x[order] for x in (sub.cpu, sub.mem, sub.gpus, sub.milli, sub.models)))
    return TracePods(sub, a[order] - a[order][0], np.array(dur, dtype=float)[order])


def offered_load(trace: TracePods, cluster_gpus: int, speed: float) -> float:
    """Requested GPU-seconds inside the arrival window over the cluster's GPU-seconds in it, with
    arrivals compressed `speed` times (run times unchanged): a pod's run counts only up to the
    window's end, so the heavy tail does not inflate the load."""
    arrive = trace.arrive / speed
    span = max(float(arrive[-1]), 1.0)
    inside = np.minimum(trace.duration, span - arrive)
    gpu = trace.pods.gpu_milli() / MILLI
    return float((gpu * np.maximum(inside, 0.0)).sum() / (cluster_gpus * span))


def speed_for(trace: TracePods, cluster_gpus: int, load: float) -> float:
    """The compression of arrivals that gives the offered `load` (bisection in log space; the
    load grows with the speed)."""
    lo, hi = 1e-3, 1e7
    if offered_load(trace, cluster_gpus, hi) < load:
        raise PackingError(f"load {load} is out of reach: the trace offers less at any speed")
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        if offered_load(trace, cluster_gpus, mid) < load:
            lo = mid
        else:
            hi = mid
    return hi


def sample_nodes(nodes: NodeList, fraction: float, seed: int) -> NodeList:
    """A random `fraction` of the nodes (at least one), in node-list order: on all 6,212 GPUs of
    its cluster the default trace's offered load (`offered_load`) cannot pass about 0.35, so a
    replay loads a sample of it."""
    if not 0 < fraction <= 1:
        raise PackingError(f"node fraction {fraction} must be in (0, 1]")
    n = len(nodes.names)
    keep = np.sort(
        np.random.default_rng(seed).choice(n, size=max(1, round(fraction * n)), replace=False)
    )
    return NodeList(
        tuple(nodes.names[i] for i in keep),
        nodes.cpu[keep],
        nodes.mem[keep],
        nodes.gpus[keep],
        nodes.model[keep],
        nodes.model_names,
    )


def _release(c: Cluster, i: int, cpu: int, mem: int, milli: int, gpu_ids: Sequence[int]) -> None:
    c.cpu[i] += cpu
    c.mem[i] += mem
    row = c.left[i]
    for g in gpu_ids:
        row[g] += milli
    c.full[i] = int((row >= MILLI).sum())
    c.room[i] = row.max()
    c.total[i] = row.sum()


def _fits_at_all(nodes: NodeList, pods: PodList) -> np.ndarray:
    """Which pods fit some node when it is empty (the others are dropped on arrival)."""
    empty = Cluster(nodes)
    return np.array(
        [
            len(empty.fits(int(pods.cpu[k]), int(pods.mem[k]), int(pods.gpus[k]),
                           int(pods.milli[k]), int(pods.models[k]))) > 0
            for k in range(len(pods))
        ]
    )  # fmt: skip


def _size_rank(pods: PodList) -> np.ndarray:
    """Each pod's place in the largest-first order (GPU demand, then CPUs, then arrival)."""
    demand = pods.gpu_milli().astype(float)
    size_key = np.lexsort((np.arange(len(pods)), -pods.cpu, -demand))
    rank = np.empty(len(pods), dtype=np.int64)
    rank[size_key] = np.arange(len(pods))
    return rank


def _startable(
    cluster: Cluster, pods: PodList, queue: list[int], rank: np.ndarray | None
) -> list[int]:
    """The queued pods that may start (a quick bound: a pod above every node's largest free
    resource cannot), in queue order or, given `rank`, largest first."""
    q = np.array(queue, dtype=np.int64)
    maybe = (
        (pods.cpu[q] <= cluster.cpu.max())
        & (pods.mem[q] <= cluster.mem.max())
        & ((pods.gpus[q] == 0) | (pods.milli[q] <= cluster.room.max()))
        & ((pods.gpus[q] <= 1) | (pods.gpus[q] <= cluster.full.max()))
    )
    todo = q[maybe]
    if rank is not None:
        todo = todo[np.argsort(rank[todo], kind="stable")]
    return [int(k) for k in todo.tolist()]


def _end_finished(
    cluster: Cluster, placer: Any, pods: PodList, running: list[Any], on_node: np.ndarray,
    t: float,
) -> set[int]:  # fmt: skip
    """Free what the pods ended by `t` held; the nodes touched."""
    touched: set[int] = set()
    while running and running[0][0] <= t:
        _, k, i, gpu_ids = heapq.heappop(running)
        _release(cluster, i, int(pods.cpu[k]), int(pods.mem[k]), int(pods.milli[k]), gpu_ids)
        on_node[i] -= 1
        cluster.busy[i] = on_node[i] > 0
        if isinstance(placer, GpuClustering) and pods.gpus[k]:
            placer.kinds[i, placer.kind(k)] -= 1
        placer.placed(i)
        touched.add(i)
    return touched


def _start(
    cluster: Cluster, placer: Any, pods: PodList, k: int, rest: list[int]
) -> tuple[int, Any] | None:
    """Place pod `k` where the placer chooses (a look-ahead sees the next pods of the round,
    `rest`); (node, GPU ids), or None when it fits nowhere now."""
    cpu, mem = int(pods.cpu[k]), int(pods.mem[k])
    gpus, milli = int(pods.gpus[k]), int(pods.milli[k])
    fit = cluster.fits(cpu, mem, gpus, milli, int(pods.models[k]))
    if not len(fit):
        return None
    if isinstance(placer, LookAhead):
        placer.ahead = rest[: placer.depth]
    choice = placer.choose(k, fit)
    assert choice is not None
    i, gpu_ids = choice
    cluster.place(i, cpu, mem, milli, gpu_ids)
    placer.placed(i)
    return i, gpu_ids


def replay(
    nodes: NodeList,
    trace: TracePods,
    policy: str,
    *,
    load: float | None = 1.0,
    speed: float | None = None,
    order: str = "fifo",
    round_s: float = 10.0,
    seed: int = 42,
    yardstick: Mix | None = None,
    observe: Callable[[float, Cluster, FragCache], None] | None = None,
) -> dict[str, Any]:
    """Replay `trace` on `nodes` with one placer and round order; one row of measures. Give
    `load` (the speed is found for it) or `speed` (arrivals divided by it). `observe(t, cluster,
    measure)` is called after each round (for profiles: `stranded_parts`)."""
    if order not in ORDERS:
        raise PackingError(f"unknown order {order!r}; choose from {', '.join(ORDERS)}")
    if round_s <= 0:
        raise PackingError("round_s must be positive")
    cap_gpus = int(nodes.gpus.sum())
    if speed is None:
        if load is None:
            raise PackingError("give a load or a speed")
        speed = speed_for(trace, cap_gpus, load)
    pods = trace.pods
    arrive = trace.arrive / speed
    end_window = float(arrive[-1])
    cluster = Cluster(nodes)
    placer = make_placer(policy, cluster, pods, np.random.default_rng(seed))
    if yardstick is None:
        yardstick = mix_of(pods.shape(k) for k in range(len(pods)))
    measure = FragCache(yardstick, nodes.model)
    everyone = np.arange(len(nodes.names))
    measure.rows(everyone, cluster.cpu, cluster.mem, cluster.left)
    cap = float(cap_gpus * MILLI)
    ok, rank = _fits_at_all(nodes, pods), _size_rank(pods)
    queue: list[int] = []
    running: list[tuple[float, int, int, tuple[int, ...]]] = []  # heap: (end, pod, node, gpus)
    on_node = np.zeros(len(nodes.names), dtype=np.int64)
    started_at = np.full(len(pods), np.nan)
    nxt = 0
    t = 0.0
    first = True
    acc = {"stranded": 0.0, "unalloc": 0.0, "idle_wait": 0.0}
    last_t = 0.0
    last = {"stranded": 0.0, "unalloc": 0.0, "idle_wait": 0.0}
    decisions = 0
    t_all = time.perf_counter()
    while True:
        # the next round with something to do
        cand = []
        if nxt < len(pods):
            cand.append(arrive[nxt])
        if running:
            cand.append(running[0][0])
        if not cand:
            break  # only pods that never fit are left queued
        due = math.ceil(min(cand) / round_s) * round_s
        t = due if first else max(due, t + round_s)
        first = False
        span = min(t, end_window) - min(last_t, end_window)
        if span > 0:
            for key in acc:
                acc[key] += last[key] * span
        last_t = t
        touched = _end_finished(cluster, placer, pods, running, on_node, t)
        while nxt < len(pods) and arrive[nxt] <= t:
            if ok[nxt]:
                queue.append(nxt)
            nxt += 1
        if queue:
            todo = _startable(cluster, pods, queue, rank if order == "size" else None)
            started: set[int] = set()
            for n, k in enumerate(todo):
                placed = _start(cluster, placer, pods, k, todo[n + 1 :])
                if placed is None:
                    continue
                i, gpu_ids = placed
                on_node[i] += 1
                touched.add(i)
                started.add(k)
                started_at[k] = t
                decisions += 1
                heapq.heappush(running, (t + float(trace.duration[k]), k, i, tuple(gpu_ids)))
            if started:
                queue = [k for k in queue if k not in started]
        if touched:
            measure.rows(np.array(sorted(touched)), cluster.cpu, cluster.mem, cluster.left)
        if observe is not None:
            observe(t, cluster, measure)
        free = float(cluster.left.sum()) / cap
        waiting = any(pods.gpus[k] > 0 for k in queue)
        last = {"stranded": float(measure.frag.sum()) / cap, "unalloc": free,
                "idle_wait": free if waiting else 0.0}  # fmt: skip
        if nxt >= len(pods) and t >= end_window and not queue:
            break
    span_all = end_window - float(arrive[0])
    if t < end_window:  # the last state holds to the window's end
        for key in acc:
            acc[key] += last[key] * (end_window - t)
    mean = {k: 100.0 * v / span_all if span_all > 0 else 0.0 for k, v in acc.items()}
    done = ~np.isnan(started_at)
    wait = started_at[done] - arrive[done]
    return {
        "policy": policy,
        "order": order,
        "load": load,
        "speed": round(speed, 3),
        "stranded_gpu_share": round(mean["stranded"], 4),
        "unallocated_gpu_share": round(mean["unalloc"], 4),
        "idle_while_waiting_share": round(mean["idle_wait"], 4),
        "wait_s_mean": round(float(wait.mean()) if len(wait) else 0.0, 2),
        "pods": len(pods),
        "started": int(done.sum()),
        "dropped": int((~ok).sum()),
        "decisions": decisions,
        "seconds": round(time.perf_counter() - t_all, 2),
    }


def fill_up_lookahead(
    nodes: NodeList, pods: PodList, seed: int, ratio: float = 1.3, round_size: int = 16
) -> dict[str, Any]:
    """The fill-up experiment (scheduler/packing.py `run_one`: pods drawn until `ratio` x the
    GPUs, placed in turn, never removed) with `LookAhead`: arrivals come in rounds of
    `round_size`, and each pod looks ahead over the pods after it in its round."""
    order = inflate(pods, int(nodes.gpus.sum()), ratio, seed).tolist()
    cluster = Cluster(nodes)
    placer = LookAhead(cluster, pods, np.random.default_rng(seed))
    failed = 0
    t_all = time.perf_counter()
    for n, k in enumerate(order):
        cpu, mem = int(pods.cpu[k]), int(pods.mem[k])
        gpus, milli = int(pods.gpus[k]), int(pods.milli[k])
        fit = cluster.fits(cpu, mem, gpus, milli, int(pods.models[k]))
        if not len(fit):
            failed += 1
            placer.failed(k)
            continue
        end = (n // round_size + 1) * round_size
        placer.ahead = order[n + 1 : min(end, n + 1 + placer.depth)]
        choice = placer.choose(k, fit)
        assert choice is not None
        i, gpu_ids = choice
        cluster.place(i, cpu, mem, milli, gpu_ids)
        placer.placed(i)
    return {
        "policy": LookAhead.name,
        "seed": seed,
        "inflate": ratio,
        "round_size": round_size,
        "unallocated_gpu_share": round(cluster.unallocated_share(), 4),
        "pods": len(order),
        "failed": failed,
        "seconds": round(time.perf_counter() - t_all, 2),
    }


PARTS = ("rooms", "cpu_mem", "gpu_count", "model", "cpu_only")


def stranded_parts(cluster: Cluster, measure: FragCache) -> dict[str, float]:
    """The stranded GPU capacity (milli-GPU, `measure`'s fragmentation summed over nodes) split by
    why each typical shape cannot use it: `rooms`, GPUs whose room is too small for a shape that
    can run on the node; for a shape that cannot run there at all (all the node's free GPU lost),
    `cpu_only` (a shape without GPUs: FGD counts all free GPU as lost to it), `model` (wrong GPU
    model), else `cpu_mem` (too few CPUs or too little memory), else `gpu_count` (too few GPUs
    with room for it)."""
    m = measure.mix
    cpu_ok = (cluster.cpu[:, None] >= m.cpu[None, :]) & (cluster.mem[:, None] >= m.mem[None, :])
    gpu_ok = measure.big >= m.gpus[None, :]
    runs = cpu_ok & gpu_ok & measure.acc
    total = measure.total[:, None]
    w = m.weight[None, :]
    gpu_shape = measure.gpu_shape[None, :]
    model = gpu_shape & ~measure.acc
    cpu = measure.acc & ~cpu_ok
    count = measure.acc & cpu_ok & ~gpu_ok
    return {
        "rooms": float((np.where(runs, measure.small, 0.0) * w).sum()),
        "cpu_mem": float((np.where(cpu, total, 0.0) * w).sum()),
        "gpu_count": float((np.where(count, total, 0.0) * w).sum()),
        "model": float((np.where(model, total, 0.0) * w).sum()),
        "cpu_only": float((np.where(~gpu_shape, total, 0.0) * w).sum()),
    }
