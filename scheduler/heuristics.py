"""Classic scheduling heuristics: FIFO, SJF, Tetris, EASY backfilling in several orders, and
conservative backfilling.

EASY backfilling (`BackfillPolicy`, Slurm's default idea) takes jobs in some order; the first that
does not fit gets a reservation and the rest start only where they do not delay it. The order
is the policy: `backfill` FIFO, `sjf-bf` shortest estimate, `priority` a Slurm-like multifactor
priority (age and job size), and the score functions of the RL-scheduling papers, `wfp3`,
`unicep` and `f1` (see `ScoreBackfillPolicy`). `conservative` gives every job (up to a depth) a
reservation. `sjf` places every job that fits, shortest first, without reservations.

All of them respect GPU indices (a whole GPU is given once; GPU shares pack onto one GPU by memory),
never overcommit a node, and are deterministic. Common options:

* `cost_weight` (default 0): when > 0, among feasible nodes prefer cheaper ones and nodes already in
  use (packing onto fewer nodes). 0 keeps the classic behaviour (best fit).
* `aging_s` (default 1 h; 12 h for SJF, see `SJF_AGING_S`): a job's effective priority is
  `priority + floor(wait / aging_s)`, so old jobs climb past newer ones of the same priority.
* `starve_after_s` (default 24 h): a job that has waited that long goes first; if it does not fit,
  it gets a reservation (the earliest time and node it could start if running jobs end at their
  estimates) and the rest of the round backfills around it, as Slurm does: other jobs start only
  if they end before it, run on another node, or leave its resources untouched. Nothing blocks.
* `max_scan`: at most this many queued jobs are looked at per round (default 512).
* `placement` (default "fragmentation", "bestfit" for FIFO): how a job's node is chosen among
  those that fit. With
  "fragmentation", the node where the expected GPU capacity that the lab's typical requests
  (learned from the jobs seen, by share of arrivals) could no longer use grows least, in steps of
  0.1 GPU (scheduler/fragmentation.py, after FGD, Weng et al., ATC'23); best fit (and the cost
  term) decides between equal steps. "bestfit" is best fit alone. A job that names GPU models
  (`JobRequest.gpu_model`) only goes to nodes of those models, and one that names hosts
  (`JobRequest.hosts`, its constraints) only to those hosts, either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scheduler.fragmentation import (
    ModelBits,
    OnlineMix,
    RoundFragmentation,
    least_growth,
    request_shape,
)
from scheduler.model import (
    ClusterView,
    JobId,
    JobRequest,
    NodeView,
    Placement,
    Resources,
    RunningJob,
    allocation_price_per_hour,
    fits_empty,
    gpu_equivalents,
    gpu_model_allows,
    job_allows,
)

_any = np.logical_or.reduce
"""`a.any(axis=0)` (pass axis=None for all) without numpy's Python-level wrapper: the rounds
call it on arrays of a few to a few hundred elements, where the wrapper costs more"""
_all = np.logical_and.reduce

PLACEMENTS = ("fragmentation", "bestfit")


def fmt_duration(seconds: float) -> str:
    """'45 s', '20 min', '3.5 h', '2.0 d'."""
    if seconds < 90:
        return f"{max(0.0, seconds):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


class _NodeConstants:
    """What a round reads of its up nodes that no placement changes (read-only arrays)."""

    def __init__(self, nodes: Sequence[NodeView]) -> None:
        self.ids = [n.id for n in nodes]
        self.cap_c = _frozen([max(n.capacity.cpus, 1e-9) for n in nodes])
        self.cap_m = _frozen([max(n.capacity.mem_mb, 1) for n in nodes])
        self.cap_g = _frozen([max(n.capacity.gpus, 1) for n in nodes])
        self.per_gpu = _frozen([max(n.gpu_mem_per_gpu_mb, 1) for n in nodes])
        self.has_gpu = _frozen([n.capacity.gpus > 0 for n in nodes], bool)
        self.inv_c = _frozen(1.0 / self.cap_c)
        self.inv_m = _frozen(1.0 / self.cap_m)
        self.inv_g = _frozen(np.where(self.has_gpu, 1.0 / self.cap_g, 0.0))
        prices = _frozen([n.price_per_hour for n in nodes])
        self.price = prices
        self.max_price = float(prices.max()) if len(prices) and prices.max() > 0 else 1.0
        self.models = [n.gpu_model for n in nodes]
        self.any_model = any(self.models)


def _frozen(values: Sequence[float] | np.ndarray, dtype: type = float) -> np.ndarray:
    out: np.ndarray = np.array(values, dtype=dtype)
    out.flags.writeable = False
    return out


class RoundState:
    """Free resources of every up node during one round, updated as jobs are placed.

    Vectorised over nodes for the fit test; exact per-GPU bookkeeping in lists.
    """

    def __init__(self, view: ClusterView) -> None:
        table: np.ndarray | None = getattr(view, "node_table", None)
        if table is None:
            nodes = [n for n in view.nodes if n.is_up]
        else:
            up = table[:, 4] > 0
            nodes = list(view.nodes) if _all(up) else [n for n in view.nodes if n.is_up]
        self.nodes: list[NodeView] = nodes
        self.free_ids = [list(n.free_gpu_ids) for n in nodes]
        self.gmem = [list(n.gpu_free_mem_mb) for n in nodes]
        if table is None:
            self.fc = np.array([n.free.cpus for n in nodes], dtype=float)
            self.fm = np.array([n.free.mem_mb for n in nodes], dtype=float)
            self.fg = np.array([len(x) for x in self.free_ids], dtype=float)
            self.fpm = np.array([max(x, default=0) for x in self.gmem], dtype=float)
            fixed = _NodeConstants(nodes)
        else:
            # the simulator's node table: free CPUs, memory, whole GPUs, most memory on one
            # GPU a share may use (the largest free GPU memory: a whole GPU's is 0)
            rows = table if len(nodes) == len(table) else table[up]
            self.fc = rows[:, 0].copy()
            self.fm = rows[:, 1].copy()
            self.fg = rows[:, 2].copy()
            self.fpm = rows[:, 3].copy()
            # what never changes for a set of up nodes, kept by the simulator between rounds
            constants: dict[object, _NodeConstants] = view.node_constants  # type: ignore[attr-defined]
            key = len(nodes) if len(nodes) == len(table) else tuple(np.flatnonzero(up).tolist())
            known = constants.get(key)
            if known is None:
                known = constants[key] = _NodeConstants(nodes)
            fixed = known
        self.ids = fixed.ids
        self.cap_c, self.cap_m, self.cap_g = fixed.cap_c, fixed.cap_m, fixed.cap_g
        self.per_gpu, self.has_gpu = fixed.per_gpu, fixed.has_gpu
        self.inv_c, self.inv_m, self.inv_g = fixed.inv_c, fixed.inv_m, fixed.inv_g
        # a node is idle when nothing runs on it; with cost_weight we prefer busy ones
        if table is None:
            self.idle = np.array([n.free == n.capacity for n in nodes])
        else:
            self.idle = rows[:, 5] > 0
        self.price = fixed.price
        self.max_price = fixed.max_price
        self.placed: list[tuple[int, JobRequest, tuple[int, ...]]] = []
        self.models = fixed.models
        self.any_model = fixed.any_model
        self.frag: RoundFragmentation | None = None  # set by a policy that places by it
        self._refresh_max()

    def model_ok(self, accepted: str) -> np.ndarray | None:
        """Nodes of the GPU models a job accepts (None: every node, it names none)."""
        if not accepted:
            return None
        return np.array([gpu_model_allows(accepted, m) for m in self.models], dtype=bool)

    def allowed(self, job: JobRequest) -> np.ndarray | None:
        """Nodes `job` may run on by its GPU models and host constraints (None: every node)."""
        ok = self.model_ok(job.gpu_model)
        if job.hosts is not None:
            hosts = np.array([i in job.hosts for i in self.ids], dtype=bool)
            ok = hosts if ok is None else ok & hosts
        return ok

    def model_matrix(self, jobs: Sequence[JobRequest]) -> np.ndarray | None:
        """(jobs x nodes) True where the node suits the job: its GPU model and the job's host
        constraints (None: all suit)."""
        if not any(j.gpu_model or j.hosts is not None for j in jobs):
            return None
        out = np.ones((len(jobs), len(self.nodes)), dtype=bool)
        for k, j in enumerate(jobs):
            ok = self.allowed(j)
            if ok is not None:
                out[k] = ok
        return out

    def _refresh_max(self) -> None:
        if len(self.nodes):
            # Python's max over a few floats costs less than numpy's (the same exact value)
            self.max_c = max(self.fc.tolist()) + 1e-9
            self.max_m = max(self.fm.tolist())
            self.max_g = max(self.fg.tolist())
            self.max_pm = max(self.fpm.tolist())
        else:
            self.max_c = self.max_m = self.max_g = self.max_pm = -1.0

    def might_fit(self, r: Resources) -> bool:
        """Cheap necessary test against the largest free amounts of any node."""
        if r.cpus > self.max_c or r.mem_mb > self.max_m:
            return False
        if r.gpus:
            return r.gpus <= self.max_g
        if r.gpu_mem_mb:
            return r.gpu_mem_mb <= self.max_pm
        return True

    def feasible(self, r: Resources) -> np.ndarray:
        """Boolean mask of the nodes where `r` fits now."""
        ok = (self.fc + 1e-9 >= r.cpus) & (self.fm >= r.mem_mb)
        if r.gpus:
            ok &= self.fg >= r.gpus
        elif r.gpu_mem_mb:
            ok &= self.fpm >= r.gpu_mem_mb
        return ok

    def fit_matrix(self, reqs: np.ndarray) -> np.ndarray:
        """(jobs x nodes) fit mask for request rows (cpus, mem, gpus, share memory)."""
        return (
            (self.fc[None, :] + 1e-9 >= reqs[:, 0:1])
            & (self.fm[None, :] >= reqs[:, 1:2])
            & (self.fg[None, :] >= reqs[:, 2:3])
            & (self.fpm[None, :] >= reqs[:, 3:4])
        )

    def fit_column(self, reqs: np.ndarray, i: int) -> np.ndarray:
        """Fit mask of every request row on node i."""
        return (
            (self.fc[i] + 1e-9 >= reqs[:, 0])
            & (self.fm[i] >= reqs[:, 1])
            & (self.fg[i] >= reqs[:, 2])
            & (self.fpm[i] >= reqs[:, 3])
        )

    def gpu_fraction(self, r: Resources) -> np.ndarray:
        """GPUs the request occupies on each node (a share as its fraction of one GPU)."""
        if r.gpus:
            return np.full(len(self.nodes), float(r.gpus))
        if r.gpu_mem_mb:
            return np.minimum(1.0, r.gpu_mem_mb / self.per_gpu)
        return np.zeros(len(self.nodes))

    def leftover(self, r: Resources) -> np.ndarray:
        """Normalised free resources left on each node after placing `r` (best fit = smallest)."""
        left = (self.fc - r.cpus) * self.inv_c + (self.fm - r.mem_mb) * self.inv_m
        if not r.gpus and not r.gpu_mem_mb:
            return left + self.fg * self.inv_g
        return left + (self.fg - self.gpu_fraction(r)) * self.inv_g

    def cost_term(self, r: Resources, mask: np.ndarray) -> np.ndarray:
        """Per node: hourly cost of `r` there (relative to the dearest node) plus 1 if the node
        is idle (placing there wakes a node up)."""
        out = np.zeros(len(self.nodes))
        for i in np.flatnonzero(mask):
            n = self.nodes[i]
            prices = n.prices if n.prices is not None else n.price_per_hour
            out[i] = allocation_price_per_hour(r, n.capacity, prices) / self.max_price
        return out + self.idle.astype(float)

    def pick_gpus(
        self, i: int, r: Resources, exclude: frozenset[int] = frozenset()
    ) -> tuple[int, ...] | None:
        """GPU ids for `r` on node i (lowest free ids; best-fit GPU for a share)."""
        if r.gpus:
            ids = [g for g in self.free_ids[i] if g not in exclude]
            return tuple(ids[: r.gpus]) if len(ids) >= r.gpus else None
        if r.gpu_mem_mb:
            best, best_free = -1, math.inf
            for g, m in enumerate(self.gmem[i]):
                if g not in exclude and r.gpu_mem_mb <= m < best_free:
                    best, best_free = g, m
            return (best,) if best >= 0 else None
        return ()

    def place(self, i: int, job: JobRequest, gpu_ids: tuple[int, ...]) -> None:
        """Record `job` on node i using `gpu_ids`."""
        r = job.request
        # the largest free amounts only fall, and only if node i held them
        stale = (
            self.fc[i] + 1e-9 >= self.max_c
            or self.fm[i] >= self.max_m
            or self.fg[i] >= self.max_g
            or self.fpm[i] >= self.max_pm
        )
        self.fc[i] -= r.cpus
        self.fm[i] -= r.mem_mb
        if r.gpus:
            for g in gpu_ids:
                self.free_ids[i].remove(g)
                self.gmem[i][g] = 0
        elif r.gpu_mem_mb:
            g = gpu_ids[0]
            self.gmem[i][g] -= r.gpu_mem_mb
            if g in self.free_ids[i]:
                self.free_ids[i].remove(g)
        self.fg[i] = len(self.free_ids[i])
        self.fpm[i] = max(self.gmem[i], default=0)
        if r.cpus or r.mem_mb or r.gpus or r.gpu_mem_mb:  # idle: free == capacity, as above
            self.idle[i] = False
        self.placed.append((i, job, gpu_ids))
        if self.frag is not None:
            self.frag.mark(i)
        if stale:
            self._refresh_max()


class JobTable:
    """A policy's cache of the numbers of the jobs it has seen, so a round reads them from an
    array instead of rebuilding them from objects (columns: cpus, mem, whole GPUs, share memory,
    priority, submitted, estimate). A job whose JobRequest changes is re-read; an equal copy
    (the dispatcher builds fresh objects every tick) reuses its row, so a long-lived policy's
    table grows by the jobs it sees, not by ticks."""

    COLS = 7
    LIMIT = 500_000

    def __init__(self) -> None:
        self.rows: dict[JobId, tuple[JobRequest, int]] = {}
        self.tab = np.zeros((1024, self.COLS))
        self.n = 0

    def index(self, jobs: Sequence[JobRequest]) -> np.ndarray:
        """Row numbers of `jobs` in `tab`, adding the new ones."""
        if self.n > self.LIMIT:
            self.rows.clear()
            self.n = 0
        rows = self.rows
        out = []
        for j in jobs:
            hit = rows.get(j.id)
            if hit is None or (hit[0] is not j and hit[0] != j):
                hit = (j, self._add(j))
                rows[j.id] = hit
            out.append(hit[1])
        return np.array(out, dtype=np.intp)

    def _add(self, j: JobRequest) -> int:
        if self.n == len(self.tab):
            self.tab = np.concatenate([self.tab, np.zeros_like(self.tab)])
        r = j.request
        self.tab[self.n] = (
            r.cpus, r.mem_mb, r.gpus, r.gpu_mem_mb if r.gpus == 0 else 0,
            j.priority, j.submitted_at, j.est_runtime_s,
        )  # fmt: skip
        self.n += 1
        return self.n - 1


def effective_priority(job: JobRequest, now: float, aging_s: float | None) -> float:
    """Priority plus one level per `aging_s` waited."""
    if not aging_s:
        return job.priority
    return job.priority + math.floor(max(0.0, now - job.submitted_at) / aging_s)


Release = tuple[float, Resources, tuple[int, ...]]
"""(time, request, GPU ids) of a running job's end by estimate"""

_releases_cache: tuple[tuple[RunningJob, ...], float, dict[str, list[Release]]] | None = None


def releases_by_node(view: ClusterView, now: float) -> dict[str, list[Release]]:
    """Each node's running jobs as (estimated end, no earlier than `now`; request; GPU ids),
    soonest first, ties in the view's order. Kept for the last (running jobs, now) asked, so
    several reservations computed on one view build it once (the lists are shared: read only)."""
    global _releases_cache
    hit = _releases_cache
    if hit is not None and hit[0] is view.running and hit[1] == now:
        return hit[2]
    by_node: dict[str, list[Release]] = {}
    for run in view.running:
        lst = by_node.get(run.node_id)
        if lst is None:
            lst = by_node[run.node_id] = []
        end = run.est_end
        lst.append((end if end > now else now, run.request, run.gpu_ids))
    for lst in by_node.values():
        lst.sort(key=_release_time)
    _releases_cache = (view.running, now, by_node)
    return by_node


def _release_time(x: Release) -> float:
    return x[0]


def earliest_fit(
    view: ClusterView, job: JobRequest, now: float
) -> tuple[float, str, tuple[int, ...]] | None:
    """When and where `job` could start at the earliest if running jobs end at their estimates.

    Returns (time, node id, GPU ids it would take then), preferring GPUs that are busy now (so
    free ones stay usable for backfilling); None when no up node can ever hold it.
    """
    r = job.request
    r_cpus, r_mem, r_gpus, r_share = r.cpus, r.mem_mb, r.gpus, r.gpu_mem_mb
    by_node = releases_by_node(view, now)
    no_releases: list[Release] = []
    best: tuple[float, str, tuple[int, ...]] | None = None
    for n in view.nodes:
        if not n.is_up or not fits_empty(r, n.capacity):
            continue
        if not job_allows(job, n.id, n.gpu_model):
            continue
        if best is not None and best[0] <= now:
            break  # no node can start it earlier than now, and on a tie the first node wins
        releases = by_node.get(n.id, no_releases)
        per = n.gpu_mem_per_gpu_mb
        cpus, mem = n.free.cpus, n.free.mem_mb
        free_now: frozenset[int] | set[int] = frozenset()
        free_ids: set[int] = set()
        gmem: list[int] = []
        if r_gpus or r_share:
            free_now = frozenset(n.free_gpu_ids)
            free_ids = set(free_now)
            gmem = list(n.gpu_free_mem_mb)
        k = 0
        t = now
        while True:
            if cpus + 1e-9 >= r_cpus and mem >= r_mem:
                ids: tuple[int, ...] | None = None
                if r_gpus:
                    if len(free_ids) >= r_gpus:
                        pref = sorted(free_ids, key=lambda g: (g in free_now, g))
                        ids = tuple(sorted(pref[:r_gpus]))
                elif r_share:
                    cands = [g for g, m in enumerate(gmem) if m >= r_share]
                    if cands:
                        ids = (min(cands, key=lambda g: (g in free_now, gmem[g], g)),)
                else:
                    ids = ()
                if ids is not None:
                    if best is None or t < best[0]:
                        best = (t, n.id, ids)
                    break
            if k >= len(releases) or (best is not None and releases[k][0] >= best[0]):
                break
            t, req, gids = releases[k]
            k += 1
            cpus += req.cpus
            mem += req.mem_mb
            if not (r_gpus or r_share):
                continue
            if req.gpus:
                for g in gids:
                    gmem[g] = per
                    free_ids.add(g)
            elif req.gpu_mem_mb and gids:
                g = gids[0]
                gmem[g] += req.gpu_mem_mb
                if per and gmem[g] >= per:
                    free_ids.add(g)
    return best


class HeuristicPolicy:
    """Shared machinery: ordering with aging, node choice (best fit, cost-aware), explanations."""

    name = "heuristic"
    default_placement = "fragmentation"

    def __init__(
        self,
        *,
        cost_weight: float = 0.0,
        aging_s: float | None = 3600.0,
        starve_after_s: float | None = 86400.0,
        max_scan: int = 512,
        placement: str | None = None,
    ) -> None:
        if cost_weight < 0:
            raise ValueError("cost_weight must be >= 0")
        placement = placement or self.default_placement
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}")
        self.placement = placement
        # every shape seen counts, the rare ones too: without the few 8-GPU tasks (coverage
        # 95 %), nothing kept whole nodes for them and SJF's avg bounded slowdown on the trace at
        # load 0.7 rose from 3.20 to 8.39 (one seed's 8-GPU tasks waited days); with them, 3.28
        self._mix = OnlineMix(coverage=1.0, limit=64)
        self._bits = ModelBits()
        self._seen: set[JobId] = set()
        self._seen_rows: tuple[np.ndarray, np.ndarray] | None = None
        """(the simulator's job table, which of its rows `_learn` has looked at)"""
        self.cost_weight = float(cost_weight)
        self.aging_s = aging_s
        self.starve_after_s = starve_after_s
        self.max_scan = int(max_scan)
        self._reasons: dict[JobId, str] = {}
        self._last_view: ClusterView | None = None
        self._last_pending: Sequence[JobRequest] = ()
        self._blocker: tuple[JobId, str] | None = None
        self._blocker_later: tuple[ClusterView, RoundState, JobRequest, float] | None = None
        """(view, round state, head, now) of a reservation left to `explain` to find"""
        self._held: dict[JobId, str] = {}
        self._table = JobTable()
        self._last_frag: tuple[RoundFragmentation, object, RoundState] | None = None
        """the last round's fragmentation, its shape mix and its state (see `_fragmentation`)"""
        self.reservations = 0
        """rounds in which a job got a reservation because it had waited `starve_after_s` (the
        guard fired), for tests and benchmarks"""

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        """Placements for this round (each heuristic defines it)."""
        raise NotImplementedError

    # -- hooks --------------------------------------------------------------------------------

    def sort_columns(self, tab: np.ndarray, prio: np.ndarray, now: float) -> tuple[np.ndarray, ...]:
        """Sort keys for np.lexsort (last = primary) from the jobs' table rows (cpus, mem, whole
        GPUs, share memory, priority, submitted, estimate) and effective priorities: higher
        effective priority, then FIFO."""
        return (tab[:, 5], -prio)

    def ordered(
        self, pending: Sequence[JobRequest], now: float
    ) -> tuple[list[JobRequest], np.ndarray]:
        """The first `max_scan` jobs in this policy's order, and their request rows
        (cpus, mem, whole GPUs, share memory) for fit matrices."""
        if not pending:
            return [], np.zeros((0, 4))
        tab = self._rows_of(pending)
        prio = tab[:, 4]
        if self.aging_s:
            prio = prio + np.floor(np.maximum(0.0, now - tab[:, 5]) / self.aging_s)
        keys = self.sort_columns(tab, prio, now)
        if self.starve_after_s is not None:
            # the guard: starving jobs first, the longest-waiting first
            starving = (now - tab[:, 5]) >= self.starve_after_s
            if _any(starving):
                keys = (*keys, np.where(starving, tab[:, 5], np.inf))
        idx = np.lexsort(keys)[: self.max_scan]
        return [pending[i] for i in idx.tolist()], tab[idx, :4]

    def order(self, pending: Sequence[JobRequest], now: float) -> list[JobRequest]:
        """The first `max_scan` jobs of the queue, in the order this policy considers them."""
        return self.ordered(pending, now)[0]

    def request_rows(self, jobs: Sequence[JobRequest]) -> np.ndarray:
        """(jobs x 4) array of (cpus, mem, whole GPUs, share memory) for fit matrices."""
        if not jobs:
            return np.zeros((0, 4))
        return self._rows_of(jobs)[:, :4]

    def _rows_of(self, jobs: Sequence[JobRequest]) -> np.ndarray:
        """The jobs' table rows: from the arrays the simulator attaches, else from our cache."""
        table = getattr(jobs, "table", None)
        if table is not None:
            return table[jobs.rows]  # type: ignore[attr-defined]
        rows = self._table.index(jobs)  # may grow the table: index first
        return self._table.tab[rows]

    # -- the EASY pass: place in order, reserve for the first protected job that does not fit ---

    def protects(self, job: JobRequest, now: float) -> bool:
        """Whether `job`, first in order among those that do not fit, gets a reservation that
        later jobs must not delay (EASY: every job; otherwise: a starving one)."""
        return self._starving(job, now)

    def holds(self, job: JobRequest, now: float) -> str | None:
        """Why `job` is held back although it fits (None: it may start)."""
        return None

    def note_placed(self, job: JobRequest) -> None:
        """Called after each placement of the EASY pass."""

    def why_placed(self, job: JobRequest) -> str:
        """The end of a placed job's reason: why it went now."""
        return "first in queue"

    def _easy(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        """Jobs in `ordered` order start while they fit; the first one that does not and that
        `protects` gets a reservation (`earliest_fit`); the rest start only if they do not delay
        it (they end before it by estimate, run on another node, or leave its node's reserved
        resources and GPUs untouched)."""
        state = self._start(view, pending)
        out: list[Placement] = []
        order, reqs_all = self.ordered(pending, now)
        if not order or not len(state.nodes):
            return out
        ok = state.fit_matrix(reqs_all)
        any_ok = _any(ok, axis=1)
        head_k = -1
        for k, job in enumerate(order):
            if any_ok[k]:
                held = self.holds(job, now)
                if held is not None:
                    self._held[job.id] = held
                    continue
                i = self.choose_node(state, job, ok[k])
                if i is not None and self._place(state, i, job, "", out):
                    _update_column(ok, any_ok, state.fit_column(reqs_all, i), i)
                    self.note_placed(job)
                    self._reasons[job.id] = (
                        f"placed on {state.ids[i]}{_gpus(out[-1])}: fits, {self.why_placed(job)}"
                    )
                    continue
            if self.protects(job, now):
                head_k = k
                break
        if head_k < 0:
            return out
        head = order[head_k]
        starving = self._starving(head, now)
        if not starving and not _any(ok[head_k + 1 :], axis=None):
            # no later job fits anywhere, so none can backfill: the reservation would only
            # explain, and is found if `explain` asks (a starving head's counts: found now)
            self._blocker = None
            self._blocker_later = (view, state, head, now)
            return out
        shadow = earliest_fit(_with_placed(view, state), head, now)
        r_gpus: tuple[int, ...]
        if shadow is None:
            # the head can never fit on the nodes that are up: nothing to protect
            t_res, r_node, r_gpus = math.inf, "", ()
            self._blocker = None
        else:
            t_res, r_node, r_gpus = shadow
            if starving:
                self.reservations += 1
            why = "has waited too long and " if starving else ""
            self._blocker = (
                head.id,
                f"job {head.id} {why}holds a reservation on {r_node} in "
                f"~{fmt_duration(t_res - now)}",
            )
        rest = order[head_k + 1 :]
        if not rest:
            return out
        reqs = reqs_all[head_k + 1 :]
        r_idx = state.ids.index(r_node) if r_node in state.ids else -1
        extra = _extra_at(view, state, r_idx, head, t_res, now, r_gpus) if r_idx >= 0 else None
        reserved: frozenset[int] = frozenset(r_gpus)
        est = np.fromiter((j.est_runtime_s for j in rest), float, len(rest))
        ends_before = now + est <= t_res
        okm = ok[head_k + 1 :].copy()
        if r_idx >= 0:
            okm[:, r_idx] &= ends_before | _fits_extra_col(state, reqs, r_idx, extra, reserved)
        any_ok = _any(okm, axis=1)
        for kk in np.flatnonzero(any_ok).tolist():
            if not any_ok[kk]:
                continue
            job = rest[kk]
            held = self.holds(job, now)
            if held is not None:
                self._held[job.id] = held
                continue
            r = job.request
            i = self.choose_node(state, job, okm[kk])
            if i is None:
                continue
            protect = i == r_idx and not ends_before[kk]
            if self._place(state, i, job, "", out, reserved if protect else frozenset()):
                self.note_placed(job)
                if protect and extra is not None:
                    extra[0] -= r.cpus
                    extra[1] -= r.mem_mb
                col = state.fit_column(reqs, i)
                if i == r_idx:
                    col &= ends_before | _fits_extra_col(state, reqs, r_idx, extra, reserved)
                _update_column(okm, any_ok, col, i)
                how = (
                    "does not touch the reserved resources"
                    if protect
                    else "ends before the reservation"
                    if ends_before[kk]
                    else "runs on another node than the reservation"
                )
                self._reasons[job.id] = (
                    f"placed on {state.ids[i]}{_gpus(out[-1])}: backfilled, {how} of job {head.id}"
                )
        return out

    # -- node choice --------------------------------------------------------------------------

    def choose_node(
        self, state: RoundState, job: JobRequest, mask: np.ndarray | None = None
    ) -> int | None:
        """Index of the node to put `job` on (best fit, cost-aware), or None."""
        r = job.request
        if not state.might_fit(r):
            return None
        ok = state.feasible(r) if mask is None else mask
        if job.gpu_model or job.hosts is not None:
            allowed = state.allowed(job)
            ok = ok if allowed is None else ok & allowed
        if not _any(ok):
            return None
        score = state.leftover(r)
        if self.cost_weight > 0:
            score = score + self.cost_weight * state.cost_term(r, ok)
        if self.placement == "fragmentation" and _any(state.has_gpu):
            idx = np.flatnonzero(ok)
            if len(idx) > 1:
                frag = self._fragmentation(state)
                grow = frag.growth(idx, r.cpus, r.mem_mb, r.gpus, r.gpu_mem_mb)
                return int(idx[least_growth(grow, score[idx])])
        score = np.where(ok, score, np.inf)
        return int(np.argmin(score))

    def _fragmentation(self, state: RoundState) -> RoundFragmentation:
        """The round's fragmentation for the shapes learned so far (built on first use).

        The last round's is carried over when the shapes and the nodes are the same: only the
        nodes whose free resources changed since it ended are recomputed (each node's figures
        depend on that node alone)."""
        if state.frag is None:
            mix = self._mix.mix()
            last = self._last_frag
            frag: RoundFragmentation | None = None
            if last is not None:
                old, old_mix, old_state = last
                # (the node constants are shared while the set of up nodes is the same)
                if (
                    old_mix is mix
                    and (old_state.ids is state.ids or old_state.ids == state.ids)
                    and (old_state.models is state.models or old_state.models == state.models)
                    and (
                        old_state.per_gpu is state.per_gpu
                        or np.array_equal(old_state.per_gpu, state.per_gpu)
                    )
                ):
                    frag = old
                    frag.state = state
                    differs = ((old_state.fc != state.fc) | (old_state.fm != state.fm)).tolist()
                    for i in frag.dirty:  # placed on last round, not refreshed since
                        differs[i] = True
                    frag.dirty.clear()
                    changed = []
                    for i, (a, b) in enumerate(zip(old_state.gmem, state.gmem, strict=True)):
                        if differs[i] or a != b:
                            changed.append(i)
                            frag._load(i)
                    if old_state.placed or changed:
                        # the changed nodes, then the expectation of all in one pass, as a
                        # fresh build does: a one-node pass (`refresh`) can round the last bit
                        # differently
                        frag.cache.rows(
                            np.array(changed, dtype=np.intp),
                            frag._cpu(),
                            np.asarray(state.fm, float),
                            frag.left,
                            whole=True,
                        )
            if frag is None:
                frag = RoundFragmentation(state, mix, self._bits)
            state.frag = frag
            self._last_frag = (frag, mix, state)
        elif state.frag.dirty:
            state.frag.flush()  # nodes placed on earlier in this round (`RoundState.place`)
        return state.frag

    def _learn(self, pending: Sequence[JobRequest]) -> None:
        """Count each job once, when first seen, as an arrival of its request's shape."""
        seen = self._seen
        if len(seen) > 500_000:
            seen.clear()
            self._seen_rows = None
        table = getattr(pending, "table", None)
        if table is not None:
            # the simulator's queue: only rows not seen before need a look (in queue order)
            known = self._seen_rows
            if known is None or known[0] is not table:
                known = self._seen_rows = (table, np.zeros(len(table), dtype=bool))
            rows = pending.rows  # type: ignore[attr-defined]
            got = known[1][rows]
            if _all(got):
                return  # nothing new in the queue (most rounds)
            fresh = np.flatnonzero(~got)
            known[1][rows[fresh]] = True
            pending = [pending[k] for k in fresh.tolist()]
        for j in pending:
            if j.id not in seen:
                seen.add(j.id)
                r = j.request
                mask = self._bits.mask(j.gpu_model) if j.gpu_model else 0
                self._mix.observe(request_shape(r.cpus, r.mem_mb, r.gpus, r.gpu_mem_mb, mask))

    def _start(self, view: ClusterView, pending: Sequence[JobRequest]) -> RoundState:
        self._reasons = {}
        self._held = {}
        self._blocker = None
        self._blocker_later = None
        self._last_view = view
        self._last_pending = pending
        if self.placement == "fragmentation":
            self._learn(pending)
        return RoundState(view)

    def _place(
        self,
        state: RoundState,
        i: int,
        job: JobRequest,
        why: str,
        out: list[Placement],
        exclude: frozenset[int] = frozenset(),
    ) -> bool:
        gpu_ids = state.pick_gpus(i, job.request, exclude)
        if gpu_ids is None:
            return False
        state.place(i, job, gpu_ids)
        out.append(Placement(job.id, state.ids[i], gpu_ids))
        self._reasons[job.id] = why
        return True

    def _starving(self, job: JobRequest, now: float) -> bool:
        return self.starve_after_s is not None and now - job.submitted_at >= self.starve_after_s

    # -- explanations -------------------------------------------------------------------------

    def _blocker_now(self) -> tuple[JobId, str] | None:
        """The last round's blocker, finding a reservation `_easy` left for later."""
        later = self._blocker_later
        if later is not None:
            self._blocker_later = None
            view, state, head, now = later
            shadow = earliest_fit(_with_placed(view, state), head, now)
            if shadow is not None:
                t_res, r_node, _ = shadow
                self._blocker = (
                    head.id,
                    f"job {head.id} holds a reservation on {r_node} in ~{fmt_duration(t_res - now)}",
                )
        return self._blocker

    def explain(self, job_id: JobId) -> str:
        """Why the job was placed where it was, or why it is still waiting (last round)."""
        if job_id in self._reasons:
            return self._reasons[job_id]
        if job_id in self._held:
            return self._held[job_id]
        view = self._last_view
        job = next((j for j in self._last_pending if j.id == job_id), None)
        if view is None or job is None:
            return "not seen in the last scheduling round"
        need = job.request.describe()
        hit = earliest_fit(view, job, view.now)
        if hit is None:
            return f"waiting for {need}; no node that is up can hold it"
        t, node, _ = hit
        prefix = ""
        blocker = self._blocker_now()
        if blocker is not None and blocker[0] != job_id:
            prefix = f"held back: {blocker[1]}; "
        if t <= view.now:
            return f"{prefix}waiting: {need} fits on {node} but other jobs went first"
        return f"{prefix}waiting for {need}; best node {node} frees them in ~{fmt_duration(t - view.now)}"


class FIFOPolicy(HeuristicPolicy):
    """First in, first out: place jobs in queue order, stop at the first that does not fit.

    Best fit by default: placed by fragmentation, FIFO's avg bounded slowdown rose on the lab mix
    at load 0.7 (10 seeds: 1.92 to 2.24) and on the trace at 0.9 (202.7 to 223.2), while SJF's
    and backfilling's did not (docs/benchmarks.md, "Fragmentation")."""

    name = "fifo"
    default_placement = "bestfit"

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        """Place the head of the queue while it fits."""
        state = self._start(view, pending)
        out: list[Placement] = []
        for k, job in enumerate(self.order(pending, now)):
            if k >= self.max_scan:
                break
            i = self.choose_node(state, job)
            if i is None or not self._place(state, i, job, "", out):
                self._blocker = (job.id, f"job {job.id} is first in the FIFO queue")
                break
            self._reasons[job.id] = (
                f"placed on {state.ids[i]}{_gpus(out[-1])}: fits, first in queue"
            )
        return out


LONG_AFTER_S = 3600.0
"""A job is long when its estimate (a running job: its estimated time left) is over this."""

SJF_AGING_S = 12 * 3600.0
"""SJF's aging: one level per 12 h waited. With one level per hour, every job that has waited an
hour outranks every fresh one, so under load SJF degrades towards FIFO: on validation workloads
(seeds 900-905, `python bench/scheduler.py --section aging`) its average bounded slowdown was up
to 5.7x higher at 1 h than at 12 h (deeprm 1.1:
86.7 vs 15.2; deeprm 0.9: 47.1 vs 10.1; trace 1.1: 13.3 vs 10.8; lab 1.1: 1.26 vs 1.16), and p95
too. Starvation stays bounded by `starve_after_s`."""


class LongCapHolds:
    """SJF's long-job limit for a policy that keeps a `LongCap` in `_cap` (None: off) for the
    round: a long job that is not starving waits while the limit blocks it."""

    _cap: LongCap | None

    def holds(self, job: JobRequest, now: float) -> str | None:
        cap = self._cap
        if cap is not None and not self._starving(job, now) and cap.blocks(job):  # type: ignore[attr-defined]
            return cap.reason(job)
        return None

    def note_placed(self, job: JobRequest) -> None:
        if self._cap is not None:
            self._cap.add(job)


class SJFPolicy(LongCapHolds, HeuristicPolicy):
    """Shortest (estimated) job first: place every job that fits, shortest estimate first.

    `long_share` (default None: off) keeps room for short jobs: a long job (estimate over
    `long_after_s`, 1 h) starts only while long jobs (running ones by their estimated time left)
    would hold at most that share of the cluster's CPUs and of its GPUs, like a Slurm "long" QOS
    with a group limit. A starving job is exempt, and so is a long job while no other long job
    runs (one larger than the share would otherwise never start)."""

    name = "sjf"

    def __init__(
        self,
        *,
        aging_s: float | None = SJF_AGING_S,
        long_share: float | None = None,
        long_after_s: float = LONG_AFTER_S,
        **options: Any,
    ) -> None:
        super().__init__(aging_s=aging_s, **options)
        if long_share is not None and not 0.0 < long_share <= 1.0:
            raise ValueError("long_share must be in (0, 1], e.g. 0.4 (or None for no limit)")
        if not long_after_s > 0 or not math.isfinite(long_after_s):
            raise ValueError("long_after_s must be a positive number of seconds")
        self.long_share = long_share
        self.long_after_s = float(long_after_s)
        self._cap: LongCap | None = None

    def sort_columns(self, tab: np.ndarray, prio: np.ndarray, now: float) -> tuple[np.ndarray, ...]:
        return (tab[:, 5], tab[:, 6], -prio)

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        """Greedy by estimate; a starving job that does not fit gets a reservation."""
        self._cap = None
        if self.long_share is not None:
            self._cap = LongCap(view, now, self.long_after_s, self.long_share)
        return self._easy(view, pending, now)

    def protects(self, job: JobRequest, now: float) -> bool:
        return self._starving(job, now)

    def why_placed(self, job: JobRequest) -> str:
        return f"shortest estimate ({fmt_duration(job.est_runtime_s)})"


class LongCap:
    """How much of the cluster long jobs hold (running ones by their estimated time left, plus
    those placed this round), and whether one more long job would pass `share` of the CPUs or
    GPUs. `share` None: never blocks."""

    def __init__(
        self, view: ClusterView, now: float, long_after_s: float, share: float | None
    ) -> None:
        up = [n for n in view.nodes if n.is_up]
        self.after_s = long_after_s
        self.share = share
        self.per_gpu = max((n.gpu_mem_per_gpu_mb for n in up), default=0)
        self.cap_c = float(sum(n.capacity.cpus for n in up))
        self.cap_g = float(sum(n.capacity.gpus for n in up))
        self.cpus = 0.0
        self.gpus = 0.0
        ids = {n.id for n in up}  # the share is of the up nodes, so count what runs on them
        for r in view.running:
            if r.node_id in ids and r.est_end - now > long_after_s:
                self.cpus += r.request.cpus
                self.gpus += gpu_equivalents(r.request, self.per_gpu)

    def is_long(self, job: JobRequest) -> bool:
        return job.est_runtime_s > self.after_s

    def shares_with(self, job: JobRequest) -> tuple[float, float]:
        """Shares of CPUs and GPUs long jobs would hold with `job` started (if it is long)."""
        c, g = self.cpus, self.gpus
        if self.is_long(job):
            c += job.request.cpus
            g += gpu_equivalents(job.request, self.per_gpu)
        return c / self.cap_c if self.cap_c else 0.0, g / self.cap_g if self.cap_g else 0.0

    def blocks(self, job: JobRequest) -> bool:
        if self.share is None or not self.is_long(job) or (self.cpus <= 0 and self.gpus <= 0):
            return False  # no limit, a short job, or the first long one (which always may start)
        c, g = self.shares_with(job)
        return c > self.share + 1e-9 or g > self.share + 1e-9

    def add(self, job: JobRequest) -> None:
        if self.is_long(job):
            self.cpus += job.request.cpus
            self.gpus += gpu_equivalents(job.request, self.per_gpu)

    def reason(self, job: JobRequest) -> str:
        """Why `job` is held back: what long jobs would hold with it started."""
        c, g = self.shares_with(job)
        return (
            f"held back: with it, long jobs (estimate over {fmt_hours(self.after_s)}) would "
            f"hold {held_shares(c, g, self.cap_g > 0)}, over the limit of {self.share:.0%} "
            "each; the rest is kept for short jobs"
        )


def fmt_hours(seconds: float) -> str:
    """'1 h', '2 h', '90 min': how the long-job threshold is written everywhere."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:.0f} h"
    return fmt_duration(seconds)


def held_shares(cpus: float, gpus: float, has_gpus: bool) -> str:
    """'40% of the CPUs and 36% of the GPUs' (the GPUs left out on a cluster without any)."""
    text = f"{cpus:.0%} of the CPUs"
    return text + (f" and {gpus:.0%} of the GPUs" if has_gpus else "")


class TetrisPolicy(HeuristicPolicy):
    """Tetris: repeatedly place the (job, node) pair whose demand best aligns with the node's free
    resources (dot product of normalised vectors), highest effective priority first."""

    name = "tetris"

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        """Greedy packing by alignment score."""
        state = self._start(view, pending)
        out: list[Placement] = []
        order = self.order(pending, now)
        r_idx, t_res = -1, math.inf
        extra: list[float] | None = None
        reserved: frozenset[int] = frozenset()
        if order and self._starving(order[0], now) and len(state.nodes):
            # the guard: the longest-waiting starving job (first in order) goes first; if it
            # does not fit it gets a reservation, and its node only takes jobs that end before
            job = order[0]
            order = order[1:]
            i = self.choose_node(state, job)
            if i is not None and self._place(state, i, job, "", out):
                self._reasons[job.id] = (
                    f"placed on {state.ids[i]}{_gpus(out[-1])}: starving, goes first"
                )
            else:
                shadow = earliest_fit(view, job, now)
                if shadow is not None:
                    t_res, r_node, r_gpus = shadow
                    r_idx = state.ids.index(r_node)
                    extra = _extra_at(view, state, r_idx, job, t_res, now, r_gpus)
                    reserved = frozenset(r_gpus)
                    self.reservations += 1
                    self._blocker = (
                        job.id,
                        f"job {job.id} has waited too long and holds a reservation on {r_node} "
                        f"in ~{fmt_duration(t_res - now)}",
                    )
        if not order or not len(state.nodes):
            return out
        req = self.request_rows(order)
        prio = np.array([effective_priority(j, now, self.aging_s) for j in order])
        nn = len(state.nodes)
        cost = None
        if self.cost_weight > 0:
            everywhere = np.ones(nn, dtype=bool)
            cost = np.array([state.cost_term(j.request, everywhere) for j in order])
            cost = np.minimum(self.cost_weight * cost, 4.9)
        # per-job normalised demand on each node (a share counts as its fraction of one GPU)
        share = req[:, 3] > 0
        gfrac = np.where(
            share[:, None], np.minimum(1.0, req[:, 3:4] / state.per_gpu[None, :]), req[:, 2:3]
        )
        dc = req[:, 0:1] / state.cap_c[None, :]
        dm = req[:, 1:2] / state.cap_m[None, :]
        dg = np.where(state.has_gpu[None, :], gfrac / state.cap_g[None, :], 0.0)

        def column(i: int) -> np.ndarray:
            # priority levels dominate the alignment, which is at most 3
            align = (
                state.fc[i] / state.cap_c[i] * dc[:, i]
                + state.fm[i] / state.cap_m[i] * dm[:, i]
                + state.fg[i] / state.cap_g[i] * dg[:, i]
            )
            col = 10.0 * prio + align
            if cost is not None:
                col = col - cost[:, i]
            ok = state.fit_column(req, i)
            if models is not None:
                ok &= models[:, i]
            if i == r_idx and ends_before is not None:
                ok &= ends_before | _fits_extra_col(state, req, i, extra, reserved)
            return np.where(ok, col, -np.inf)

        # the whole matrix at once; after a placement only its node's column is rescored
        align = (
            (state.fc * state.inv_c)[None, :] * dc
            + (state.fm * state.inv_m)[None, :] * dm
            + (state.fg / state.cap_g)[None, :] * dg
        )
        score = 10.0 * prio[:, None] + align
        if cost is not None:
            score = score - cost
        fit = state.fit_matrix(req)
        models = state.model_matrix(order)
        if models is not None:
            fit &= models
        ends_before = None
        if r_idx >= 0:
            ends_before = now + np.array([j.est_runtime_s for j in order]) <= t_res
            fit[:, r_idx] &= ends_before | _fits_extra_col(state, req, r_idx, extra, reserved)
        score = np.where(fit, score, -np.inf)
        alive = np.ones(len(order), dtype=bool)
        while True:
            flat = int(np.argmax(score))
            jk, i = divmod(flat, nn)
            if score[jk, i] == -np.inf:
                break
            job = order[jk]
            alive[jk] = False
            score[jk, :] = -np.inf
            protect = i == r_idx and ends_before is not None and not ends_before[jk]
            if self._place(state, i, job, "", out, reserved if protect else frozenset()):
                if protect and extra is not None:
                    extra[0] -= job.request.cpus
                    extra[1] -= job.request.mem_mb
                self._reasons[job.id] = (
                    f"placed on {state.ids[i]}{_gpus(out[-1])}: best fit of demand to free resources"
                )
                # only node i changed: rescore its column
                score[:, i] = np.where(alive, column(i), -np.inf)
        return out


class BackfillPolicy(HeuristicPolicy):
    """EASY backfilling (Slurm's default idea): jobs start in queue order; the first that does not
    fit gets a reservation at the earliest time its resources free up (running jobs end at their
    estimates); later jobs start now only if they do not delay that reservation: they end before
    it, or run on another node, or leave the reserved resources of its node untouched.

    The queue order is `sort_columns` (FIFO here, with priorities and aging); subclasses change
    it. The same pass serves SJF's starvation guard (`HeuristicPolicy._easy`)."""

    name = "backfill"

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        """Place in order; reserve for the first blocked job; backfill the rest around it."""
        return self._easy(view, pending, now)

    def protects(self, job: JobRequest, now: float) -> bool:
        return True


class SJFBackfillPolicy(BackfillPolicy):
    """EASY backfilling in shortest-estimate order (SJF with a reservation for the first job that
    does not fit, so a large job is not passed over forever). Aging as SJF's (`SJF_AGING_S`)."""

    name = "sjf-bf"

    def __init__(self, *, aging_s: float | None = SJF_AGING_S, **options: Any) -> None:
        super().__init__(aging_s=aging_s, **options)

    def sort_columns(self, tab: np.ndarray, prio: np.ndarray, now: float) -> tuple[np.ndarray, ...]:
        return (tab[:, 5], tab[:, 6], -prio)

    def why_placed(self, job: JobRequest) -> str:
        return f"shortest estimate ({fmt_duration(job.est_runtime_s)})"


class PriorityPolicy(BackfillPolicy):
    """EASY backfilling in the order of a Slurm-like multifactor priority (Slurm's
    `priority/multifactor`): `qos_weight * priority + age_weight * min(wait / max_age_s, 1) +
    size_weight * size`, highest first, where size is the job's dominant share of the cluster's
    CPUs and GPUs (`favor_small`: one minus it, Slurm's PriorityFavorSmall). The defaults follow
    Slurm's: 7 days to full age, the job's own priority level (lepton's QOS) outranking both.
    The fair-share factor is not here yet."""

    name = "priority"

    def __init__(
        self,
        *,
        age_weight: float = 1000.0,
        size_weight: float = 1000.0,
        qos_weight: float = 10000.0,
        max_age_s: float = 7 * 86400.0,
        favor_small: bool = False,
        aging_s: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(aging_s=aging_s, **options)
        for name, v in (("age_weight", age_weight), ("size_weight", size_weight),
                        ("qos_weight", qos_weight)):  # fmt: skip
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a number >= 0")
        if not (max_age_s > 0 and math.isfinite(max_age_s)):
            raise ValueError("max_age_s must be a positive number of seconds")
        self.age_weight, self.size_weight, self.qos_weight = age_weight, size_weight, qos_weight
        self.max_age_s = float(max_age_s)
        self.favor_small = bool(favor_small)
        self._cap_c = self._cap_g = 0.0

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        """EASY in multifactor order."""
        up = [n for n in view.nodes if n.is_up]
        self._cap_c = float(sum(n.capacity.cpus for n in up))
        self._cap_g = float(sum(n.capacity.gpus for n in up))
        return self._easy(view, pending, now)

    def scores(self, tab: np.ndarray, now: float) -> np.ndarray:
        """The multifactor priority of each table row."""
        age = np.minimum(np.maximum(0.0, now - tab[:, 5]) / self.max_age_s, 1.0)
        size = tab[:, 0] / self._cap_c if self._cap_c else np.zeros(len(tab))
        if self._cap_g:
            size = np.maximum(size, tab[:, 2] / self._cap_g)
        size = np.clip(size, 0.0, 1.0)
        if self.favor_small:
            size = 1.0 - size
        return self.qos_weight * tab[:, 4] + self.age_weight * age + self.size_weight * size

    def sort_columns(self, tab: np.ndarray, prio: np.ndarray, now: float) -> tuple[np.ndarray, ...]:
        return (tab[:, 5], -self.scores(tab, now))

    def why_placed(self, job: JobRequest) -> str:
        return "highest multifactor priority (age and size)"


class ScoreBackfillPolicy(BackfillPolicy):
    """EASY backfilling in the order of a score function of the RL-scheduling literature, lowest
    score first (ties: FIFO), after the job's priority level. With w the wait, r the estimate,
    n the requested processors (CPUs here) and s the submit time (seconds since the start of the
    workload; at least 1):

    * `wfp3`: -(w / r)^3 * n (Tang et al. 2009: waiting jobs climb with the cube of their
      expansion factor, larger ones faster);
    * `unicep`: -w / (log2(n) * r) (Tang et al. 2009; a serial job's log2(1) = 0 is taken as 1);
    * `f1`: log10(r) * n + 870 * log10(s) (Carastan-Santos and de Camargo, "Obtaining dynamic
      scheduling policies with simulation and machine learning", SC 2017: the best of their
      functions learned from simulations).

    Estimates and waits under 1 s count as 1 s. No aging by default (wfp3 and unicep age by
    themselves); the starvation guard still applies."""

    score = "wfp3"

    def __init__(self, *, aging_s: float | None = None, **options: Any) -> None:
        super().__init__(aging_s=aging_s, **options)

    def scores(self, tab: np.ndarray, now: float) -> np.ndarray:
        """The score of each table row (lower goes first)."""
        r = np.maximum(tab[:, 6], 1.0)
        n = np.maximum(tab[:, 0], 1.0)
        w = np.maximum(now - tab[:, 5], 0.0)
        if self.score == "wfp3":
            return -((w / r) ** 3) * n
        if self.score == "unicep":
            return -w / (np.maximum(np.log2(n), 1.0) * r)
        return np.log10(r) * n + 870.0 * np.log10(np.maximum(tab[:, 5], 1.0))

    def sort_columns(self, tab: np.ndarray, prio: np.ndarray, now: float) -> tuple[np.ndarray, ...]:
        return (tab[:, 5], self.scores(tab, now), -prio)

    def why_placed(self, job: JobRequest) -> str:
        return f"best {self.score} score"


class WFP3Policy(ScoreBackfillPolicy):
    """EASY backfilling in WFP3 order (see ScoreBackfillPolicy)."""

    name = score = "wfp3"


class UNICEPPolicy(ScoreBackfillPolicy):
    """EASY backfilling in UNICEP order (see ScoreBackfillPolicy)."""

    name = score = "unicep"


class F1Policy(ScoreBackfillPolicy):
    """EASY backfilling in F1 order (see ScoreBackfillPolicy)."""

    name = score = "f1"


class Profile:
    """Free CPUs, memory and GPUs of each up node over time, from now on, if running jobs end at
    their estimates and reserved jobs run then: per node i, breakpoints `t[i, :n[i]]` and rows
    `free[i, k]` that hold from `t[i, k]` to `t[i, k + 1]` (the last row for ever; the arrays
    are padded with that row and infinite times, so every node is searched at once). GPUs count
    in GPU units, a share as its fraction of one GPU, so a reservation in the future ignores
    which GPU ids will be free (placement now is checked exactly)."""

    def __init__(self, view: ClusterView, state: RoundState, now: float) -> None:
        self.now = now
        self.per_gpu = np.array([max(n.gpu_mem_per_gpu_mb, 1) for n in state.nodes], dtype=float)
        by_node: dict[str, list[RunningJob]] = {}
        for run in view.running:
            by_node.setdefault(run.node_id, []).append(run)
        rows_of: list[tuple[list[float], np.ndarray]] = []
        for i, n in enumerate(state.nodes):
            per = int(self.per_gpu[i])
            events = sorted(
                (max(run.est_end, now), run.request.cpus, float(run.request.mem_mb),
                 gpu_equivalents(run.request, per))
                for run in by_node.get(n.id, [])
            )  # fmt: skip
            times = [now] + [e[0] for e in events]
            rows = np.zeros((len(times), 3))
            whole = set(n.free_gpu_ids)
            shared = sum(m for g, m in enumerate(n.gpu_free_mem_mb) if g not in whole)
            units = len(whole) + (shared / n.gpu_mem_per_gpu_mb if n.gpu_mem_per_gpu_mb else 0)
            rows[0] = (n.free.cpus, n.free.mem_mb, units)
            for k, (_, c, m, g) in enumerate(events, start=1):
                rows[k] = rows[k - 1] + (c, m, g)
            cap = np.array([n.capacity.cpus, n.capacity.mem_mb, n.capacity.gpus], dtype=float)
            rows_of.append((times, np.minimum(rows, cap)))
        nn = len(rows_of)
        width = max((len(t) for t, _ in rows_of), default=1) + 16
        self.n = np.array([len(t) for t, _ in rows_of], dtype=np.intp)
        self.t = np.full((nn, width), np.inf)
        self.free = np.zeros((nn, width, 3))
        for i, (times, rows) in enumerate(rows_of):
            self._write(i, np.array(times), rows)

    def _write(self, i: int, times: np.ndarray, rows: np.ndarray) -> None:
        """Store node i's breakpoints and rows, padded; widen the arrays when they are full."""
        k = len(times)
        if k > self.t.shape[1]:
            grow = max(k, 2 * self.t.shape[1]) - self.t.shape[1]
            self.t = np.concatenate([self.t, np.full((len(self.t), grow), np.inf)], axis=1)
            pad = np.repeat(self.free[:, -1:, :], grow, axis=1)
            self.free = np.concatenate([self.free, pad], axis=1)
        self.n[i] = k
        self.t[i, :k] = times
        self.t[i, k:] = np.inf
        self.free[i, :k] = rows
        self.free[i, k:] = rows[-1]

    def needs(self, r: Resources) -> np.ndarray:
        """The profile's view of a request on every node: CPUs, memory, GPU units (N x 3)."""
        if r.gpus:
            g = np.full(len(self.per_gpu), float(r.gpus))
        elif r.gpu_mem_mb:
            g = np.minimum(1.0, r.gpu_mem_mb / self.per_gpu)
        else:
            g = np.zeros(len(self.per_gpu))
        return np.column_stack([np.full_like(g, r.cpus), np.full_like(g, r.mem_mb), g])

    def earliest(self, r: Resources, duration: float, after: float) -> np.ndarray:
        """Per node, the earliest start >= `after` at which `r` is free for `duration` (inf:
        never, on a node too small)."""
        ok = np.all(self.free + 1e-9 >= self.needs(r)[:, None, :], axis=2)
        width = ok.shape[1]
        cols = np.arange(width)
        # the row in force at `after` is the first candidate; earlier rows are past
        k0 = np.maximum((self.t <= after).sum(axis=1) - 1, 0)
        ok &= cols[None, :] >= k0[:, None]
        # for each row, the first row at or after it where `r` does not fit
        bad = np.where(ok, width, cols[None, :])
        next_bad = np.minimum.accumulate(bad[:, ::-1], axis=1)[:, ::-1]
        end = np.where(
            next_bad < width,
            np.take_along_axis(self.t, np.minimum(next_bad, width - 1), axis=1),
            np.inf,
        )
        start = np.maximum(self.t, after)
        with np.errstate(invalid="ignore"):  # inf - inf on padded rows, which `ok` rules out
            good = ok & (end - start >= duration - 1e-9)
        first = np.argmax(good, axis=1)
        found = good[np.arange(len(good)), first]
        return np.where(found, start[np.arange(len(good)), first], np.inf)

    def reserve(self, i: int, start: float, duration: float, r: Resources) -> None:
        """Take `r` on node i from `start` for `duration`."""
        k = int(self.n[i])
        t, rows = self.t[i, :k].copy(), self.free[i, :k].copy()
        end = start + duration
        for x in (start, end):
            j = int(np.searchsorted(t, x))
            if j < len(t) and t[j] == x:
                continue
            t = np.insert(t, j, x)
            rows = np.insert(rows, j, rows[j - 1], axis=0)
        lo, hi = int(np.searchsorted(t, start)), int(np.searchsorted(t, end))
        rows[lo:hi] -= self.needs(r)[i]
        self._write(i, t, rows)


class ConservativePolicy(HeuristicPolicy):
    """Conservative backfilling (Mu'alem and Feitelson 2001): in queue order (FIFO, with
    priorities and aging), every job gets a reservation at the earliest time and node where it
    fits for its whole estimate, given the running jobs and every earlier reservation; it starts
    now when that time is now. So a job never delays any job ahead of it, not only the first.

    Only the first `depth` jobs (default 64, like Slurm's limit on the jobs its backfill pass
    tests) get reservations; later ones start now only where they delay no reservation."""

    name = "conservative"

    def __init__(self, *, depth: int = 64, **options: Any) -> None:
        super().__init__(**options)
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.depth = int(depth)

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        """Reserve in order; start the jobs whose reservation is now."""
        state = self._start(view, pending)
        out: list[Placement] = []
        order, reqs = self.ordered(pending, now)
        if not order or not len(state.nodes):
            return out
        prof = Profile(view, state, now)
        fits_now = state.fit_matrix(reqs)
        first_wait: JobRequest | None = None
        for k, job in enumerate(order):
            deep = k >= self.depth
            if deep and not fits_now[k].any():
                continue
            r = job.request
            d = max(job.est_runtime_s, 1.0)
            starts = prof.earliest(r, d, now)
            mask = (starts <= now) & fits_now[k]
            i = self.choose_node(state, job, mask) if mask.any() else None
            if i is not None and self._place(state, i, job, "", out):
                prof.reserve(i, now, d, r)
                fits_now[:, i] = state.fit_column(reqs, i)
                self._reasons[job.id] = (
                    f"placed on {state.ids[i]}{_gpus(out[-1])}: fits without delaying any "
                    "reservation"
                )
                continue
            if deep:
                continue
            if (starts <= now).any():
                # the profile has room now but the GPU ids do not fit: reserve just after now
                later = prof.earliest(r, d, now + 1e-3)
                starts = np.where(starts <= now, later, starts)
            if not np.isfinite(starts).any():
                continue
            j = int(np.argmin(starts))
            prof.reserve(j, float(starts[j]), d, r)
            if first_wait is None:
                first_wait = job
                self._blocker = (
                    job.id,
                    f"job {job.id} holds a reservation on {state.ids[j]} in "
                    f"~{fmt_duration(float(starts[j]) - now)}; every job ahead keeps its own",
                )
        return out


def _fits_extra_col(
    state: RoundState,
    reqs: np.ndarray,
    i: int,
    extra: list[float] | None,
    reserved: frozenset[int],
) -> np.ndarray:
    """Which requests, outlasting the reservation, fit in what the head leaves on node i."""
    if extra is None:
        return np.zeros(len(reqs), dtype=bool)
    free_ids = [g for g in state.free_ids[i] if g not in reserved]
    share_room = max((m for g, m in enumerate(state.gmem[i]) if g not in reserved), default=0)
    return (
        (reqs[:, 0] <= extra[0] + 1e-9)
        & (reqs[:, 1] <= extra[1])
        & (reqs[:, 2] <= len(free_ids))
        & (reqs[:, 3] <= share_room)
    )


def _with_placed(view: ClusterView, state: RoundState) -> ClusterView:
    """The view with this round's placements applied (free resources and running jobs)."""
    if not state.placed:
        return view
    nodes = {n.id: n for n in view.nodes}
    running = list(view.running)
    for i, job, gids in state.placed:
        nid = state.ids[i]
        nodes[nid] = nodes[nid].allocate(job.request, gids)
        running.append(
            RunningJob(job.id, nid, job.request, gids, view.now, view.now + job.est_runtime_s)
        )
    return ClusterView(tuple(nodes[n.id] for n in view.nodes), view.now, tuple(running))


def _extra_at(
    view: ClusterView,
    state: RoundState,
    r_idx: int,
    head: JobRequest,
    t_res: float,
    now: float,
    r_gpus: tuple[int, ...],
) -> list[float] | None:
    """[cpus, mem] that node r_idx still has at the reservation time after the head is placed,
    counting only jobs that will still run then (estimates)."""
    node = state.nodes[r_idx]
    cpus = node.capacity.cpus
    mem = node.capacity.mem_mb
    for run in view.running:
        if run.node_id == node.id and max(run.est_end, now) > t_res:
            cpus -= run.request.cpus
            mem -= run.request.mem_mb
    for i, job, _ in state.placed:
        if i == r_idx and now + job.est_runtime_s > t_res:
            cpus -= job.request.cpus
            mem -= job.request.mem_mb
    return [cpus - head.request.cpus, mem - head.request.mem_mb]


def _update_column(ok: np.ndarray, any_ok: np.ndarray, col: np.ndarray, i: int) -> None:
    """Set column i of a fit matrix (it only loses entries) and the rows' any-fit flags."""
    lost = ok[:, i] & ~col
    ok[:, i] = col
    if _any(lost):
        any_ok[lost] = _any(ok[lost], axis=1)


def _gpus(p: Placement) -> str:
    return f" (GPU {','.join(map(str, p.gpu_ids))})" if p.gpu_ids else ""


HEURISTICS: dict[str, type[HeuristicPolicy]] = {
    "fifo": FIFOPolicy,
    "sjf": SJFPolicy,
    "tetris": TetrisPolicy,
    "backfill": BackfillPolicy,
    "sjf-bf": SJFBackfillPolicy,
    "priority": PriorityPolicy,
    "wfp3": WFP3Policy,
    "unicep": UNICEPPolicy,
    "f1": F1Policy,
    "conservative": ConservativePolicy,
}
"""Every heuristic by name (the registry adds the ILP and the DQN)."""
