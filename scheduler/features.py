"""Candidate featurisation for the DQN policy, shared by torch training and numpy inference.

One scheduling round is a `Round`: the up nodes' free resources (a `RoundState` from the
heuristics), a window of pending jobs, and the head job's reservation. `Round.candidates()` lists
every feasible (job, node) pair of the window, each with the GPU ids it would take, plus one "wait"
candidate, and returns their feature rows (`NUM_FEATURES` columns). The Q network scores each row on
its own, so one set of weights serves any cluster size and queue length.

"Wait" holds the head's reserved node where that would change something (only jobs that end
before its reservation, or that fit beside it in what the node has left then, may then use it),
and otherwise passes over the window: none of its jobs
starts now, and the round goes on with the next window of the queue (it ends after the last). So
the policy may leave capacity free, e.g. for the short jobs that keep arriving, rather than fill
it with long ones. Passing is refused while nothing runs (no event would come to start the work)
and while the starving queue head could start.

The teacher row (`teacher_choice`) is SJF's pick within the long-job limit of the round config
(`long_share`, as `SJFPolicy(long_share=...)`): a job estimated over `long_after_s` is passed over
while long jobs, with it, would hold more than that share of the cluster's CPUs or GPUs; when
nothing else may start, the teacher waits.

Feature version 5 adds each job's fair-share factor (`fair_share`, from the `FairShare` a caller
passes) and the fragmentation its placement would cause (`frag_growth`, `frag_node`, from the
shapes a `ShapeBook` learned, as the heuristics place); weights list the columns they read
(`scheduler.policy`), and a round given no `shapes` leaves the fragmentation ones at 0.

Window: the first `k / 2` jobs in priority-and-age order, merged with the first `k / 2` in
priority-and-estimate order among those that fit and the long-job limit lets start, so a short job
deep in a long queue can still be chosen. Guard rails live here too, as masks on the candidates,
so training and run time obey the same rules:

* only feasible pairs exist (never an over-commit);
* priorities: only jobs of the highest effective priority (priority plus one level per `aging_s`
  waited) among those that fit now (and are not held back by the long-job limit or the
  reservation below) may be placed, so aging also bounds every wait;
* starvation: once the queue head has waited `starve_after_s`, it is placed first if it fits, and
  otherwise it holds a reservation as in EASY backfilling: a job may start on its reserved node
  only if it ends before the reservation (by estimate) or fits in what the node has left at the
  reservation time beside the head (its CPUs and memory, its GPUs but the head's), so nothing
  starts that would delay it, and nothing idles the node that need not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from scheduler.fragmentation import MILLI, STEP, RoundFragmentation
from scheduler.heuristics import (
    LONG_AFTER_S,
    HeuristicPolicy,
    LongCap,
    RoundState,
    earliest_fit,
)
from scheduler.model import (
    ClusterView,
    JobId,
    JobRequest,
    NodeView,
    Placement,
    Resources,
    RunningJob,
)

TAU_S = 10.0
"""Bounded-slowdown threshold: runtimes below this count as this long."""

FEATURE_NAMES = (
    "cpu_req_share",  # request / node capacity
    "mem_req_share",
    "gpu_req_share",
    "cpu_free_after",  # free share of the node after placing
    "mem_free_after",
    "gpu_free_after",
    "leftover",  # mean of the three above (best fit = small)
    "is_best_fit",  # this node leaves the least for this job
    "node_idle",  # nothing runs on the node yet
    "price",  # node price / dearest node
    "breaks_gpu",  # a GPU share that takes a whole free GPU although a shared one would do
    "log_est",  # log(max(est, tau) / tau) / 8
    "log_wait",  # log1p(wait / tau) / 8
    "slowdown_now",  # log of the bounded slowdown if started now / 4
    "priority",  # effective priority / 4, clipped
    "est_rank",  # 0 = shortest estimate of the window, 1 = longest
    "age_rank",  # 0 = oldest of the window, 1 = newest
    "job_size",  # dominant share of the node
    "ends_before_res",  # ends (by estimate) before the head's reservation
    "delays_head",  # on the reserved node, outlasts the reservation and does not fit beside it
    "queue_len",  # log1p(pending) / 6
    "gpu_busy",  # share of the cluster's GPUs in use
    "cpu_busy",  # share of the cluster's CPUs in use
    "num_candidates",  # log1p(feasible pairs) / 8
    "teacher_choice",  # the row the teacher (SJF, with its long-job limit) would take now
    "is_long",  # estimate over `long_after_s`
    "long_cpu_after",  # share of the cluster's CPUs long jobs hold with this one started
    "long_gpu_after",  # the same for GPUs
    "short_queued",  # share of the window's jobs that are short (estimate <= `long_after_s`)
    "wait_ends",  # on the wait row: waiting passes over the window (1) or holds the head's node (0)
    "fair_share",  # the job's fair-share factor (`FairShare.factor`; 1.0 when fair share is off)
    "frag_growth",  # growth of the node's fragmentation if the job went there, per GPU of the node
    "frag_node",  # the node's fragmentation now, per GPU of the node
    "is_wait",  # the wait action (always the last feature)
)
NUM_FEATURES = len(FEATURE_NAMES)
TEACHER = FEATURE_NAMES.index("teacher_choice")
FEATURE_VERSION = 5
FEATURE_NAMES_V4 = tuple(
    n for n in FEATURE_NAMES if n not in ("fair_share", "frag_growth", "frag_node")
)
"""the columns of feature version 4 (weights of that version list no names: these are theirs)"""
FAIR_SHARE = FEATURE_NAMES.index("fair_share")
FRAG_GROWTH = FEATURE_NAMES.index("frag_growth")
FRAG_NODE = FEATURE_NAMES.index("frag_node")
WAIT = -1
_WAIT_ROW = np.array([WAIT], dtype=np.intp)


def feature_columns(names: Sequence[str]) -> np.ndarray:
    """Indices into a candidate row (`FEATURE_NAMES`) of the features `names`, in their order;
    ValueError naming an unknown feature or one named more than once."""
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise ValueError(
            f"unknown features {', '.join(unknown)} (this version knows {NUM_FEATURES})"
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"features {', '.join(twice)} named more than once")
    return np.array([FEATURE_NAMES.index(n) for n in names], dtype=np.intp)


class FairShareFactor(Protocol):
    """What a round reads of the lab's fair share (`scheduler.fairshare.FairShare`)."""

    def factor(self, job: JobRequest) -> float: ...


class ShapeBook:
    """The typical request shapes and the round's fragmentation, as the heuristics place by them
    (`HeuristicPolicy`, placement "fragmentation"; scheduler/fragmentation.py): the shapes are
    learned from each job once, when first seen, and a round's `RoundFragmentation` carries over
    from the last round's where only some nodes changed."""

    def __init__(self) -> None:
        self._heuristic = HeuristicPolicy(placement="fragmentation")

    def learn(self, pending: Sequence[JobRequest]) -> None:
        """Count the jobs not seen before as arrivals of their shapes."""
        self._heuristic._learn(pending)

    def fragmentation(self, state: RoundState) -> RoundFragmentation | None:
        """The fragmentation of `state`'s nodes for the shapes learned so far (attached to the
        state, so its placements mark their nodes); None without GPUs or shapes."""
        if not len(state.ids) or not state.has_gpu.any():
            return None
        if not len(self._heuristic._mix.mix()):
            return None
        return self._heuristic._fragmentation(state)


def frag_growth(frag: RoundFragmentation, nodes: np.ndarray, req: np.ndarray) -> np.ndarray:
    """Growth of the fragmentation (milli-GPUs) of each of `nodes` if the request on the same row
    of `req` (CPUs, memory, whole GPUs, share memory) went there: `RoundFragmentation.growth`
    for many requests at once (a share to the GPU with the least room that holds it)."""
    frag.flush()
    cache = frag.cache
    if not len(nodes) or not len(cache.mix):
        return np.zeros(len(nodes))
    st = frag.state
    cpu_after = (np.asarray(st.fc, float)[nodes] - req[:, 0]) * 1000 + 1e-6
    mem_after = np.asarray(st.fm, float)[nodes] - req[:, 1]
    small = cache.small[nodes]
    big = cache.big[nodes]
    total = cache.total[nodes]
    whole = req[:, 2]
    # whole GPUs: fully free ones
    big = big - whole.astype(np.int64)[:, None]
    total = total - whole * MILLI
    share = np.flatnonzero((whole <= 0) & (req[:, 3] > 0))
    if len(share):
        at = nodes[share]
        take = req[share, 3] * MILLI / frag.per[at]
        rows = frag.left[at]
        room = np.where(rows >= take[:, None] - 1e-9, rows, np.inf).min(axis=1)
        need = cache.need[at]
        before = room[:, None] >= need
        after_room = room - take
        after = after_room[:, None] >= need
        small[share] = (
            small[share]
            - np.where(before, 0.0, room[:, None])
            + np.where(after, 0.0, after_room[:, None])
        )
        big[share] = big[share] - before + after
        total[share] = total[share] - take
    return cache._expect(nodes, cpu_after, mem_after, total, small, big) - cache.frag[nodes]


def effective_priorities(
    prio: np.ndarray, submitted: np.ndarray, now: float, aging_s: float | None
) -> np.ndarray:
    """Priority plus one level per `aging_s` waited (no aging when `aging_s` is falsy)."""
    if not aging_s:
        return prio.copy()
    return prio + np.floor(np.maximum(0.0, now - submitted) / aging_s)


@dataclass(frozen=True, slots=True)
class RoundConfig:
    """Knobs of a round; the defaults are what the shipped weights were trained with."""

    k: int = 32
    nodes_per_job: int = 4
    aging_s: float | None = 12 * 3600.0
    starve_after_s: float | None = 86400.0
    long_after_s: float = LONG_AFTER_S
    """a job is long when its estimate (a running one: its estimated time left) is over this"""
    long_share: float | None = 0.4
    """the teacher's limit: long jobs hold at most this share of the CPUs and of the GPUs
    (`SJFPolicy(long_share=...)`); None: plain SJF"""
    teacher_placement: str = "bestfit"
    """the teacher's node for its job among the job's candidates: "bestfit" (least leftover),
    or "fragmentation" (least growth of the fragmentation in steps of 0.1 GPU, then best fit,
    as SJF places; best fit where the round has no fragmentation: no GPUs, no `shapes`)"""


DEFAULT_CONFIG = RoundConfig()


@dataclass(slots=True)
class Candidates:
    """Feasible actions of one step: `jobs[i]`/`nodes[i]` index the window and the up nodes (-1
    for the wait row, always the last), `x` the feature rows."""

    jobs: np.ndarray
    nodes: np.ndarray
    x: np.ndarray
    wait_allowed: bool = True

    @property
    def mask(self) -> np.ndarray:
        """Legal rows: every pair, and the wait row when waiting is allowed."""
        m = np.ones(len(self.jobs), dtype=bool)
        m[-1] = self.wait_allowed
        return m

    def __len__(self) -> int:
        return len(self.jobs)


class Round:
    """One decision time: pick candidates one at a time with `place(i)` until "wait" is chosen."""

    def __init__(
        self,
        view: ClusterView | None,
        pending: Sequence[JobRequest],
        now: float,
        config: RoundConfig = DEFAULT_CONFIG,
        *,
        holding: bool = False,
        rows: np.ndarray | None = None,
        after: Round | None = None,
        fair_share: FairShareFactor | None = None,
        shapes: ShapeBook | None = None,
    ) -> None:
        """`rows`: the pending jobs' (priority, submitted, estimate, cpus, mem, GPUs, share memory)
        if already known; `after`: the previous window of the same decision time, whose node state
        (with its placements) this window continues from (`view` is then None).

        `fair_share`: the jobs' fair-share factors (column `fair_share`; 1.0 for every job
        without it); `shapes`: the lab's typical request shapes, learned from `pending` here, for
        the columns `frag_growth` and `frag_node` (left 0 without it, so weights that do not
        list them cost nothing). A later window takes both from `after`."""
        self.now = float(now)
        self.config = config
        self._view = view
        self._before = after
        self.ended = False
        """"wait" was chosen where it holds nothing: none of this window's jobs starts now (the
        round goes on with the next window when jobs remain outside this one, else ends)"""
        self.long_c: float = 0.0
        """CPUs held by long jobs (running ones by estimated time left, and this round's)"""
        self.long_g: float = 0.0
        """GPU equivalents held by long jobs"""
        self.busy: bool = False
        """something runs (its finish brings another round)"""
        if after is None:
            if view is None:
                raise ValueError("a first window needs the cluster view")
            self._root_view: ClusterView = view
            self.state = st = RoundState(view)
            self.fair_share = fair_share
            self.frag: RoundFragmentation | None = None
            if shapes is not None:
                shapes.learn(pending)
                self.frag = shapes.fragmentation(st)
            self.cap_c_total = float(st.cap_c.sum()) if len(st.nodes) else 1.0
            self.cap_g_total = float(sum(n.capacity.gpus for n in st.nodes))
            self.per_gpu_max = float(st.per_gpu.max()) if len(st.nodes) else 0.0
            self._long_held(view)
        else:
            self._root_view = after._root_view
            self.state = after.state
            self.fair_share, self.frag = after.fair_share, after.frag
            self.cap_c_total, self.cap_g_total = after.cap_c_total, after.cap_g_total
            self.per_gpu_max = after.per_gpu_max
            self.long_c, self.long_g = after.long_c, after.long_g
            self.busy = after.busy or bool(after.placed)
        self._placed_before = len(self.state.placed)
        """placements of earlier windows of this decision time"""
        self.pending = pending
        if after is None:
            self._queue = _Queue(pending, pending_rows(pending) if rows is None else rows, self)
        else:
            self._queue = after._queue
        q = self._queue
        rows = self.rows = q.rows
        self.pending_total = q.left
        sub = rows[:, 1]
        eff = q.eff
        live = ~q.gone
        by_age = q.by_age[live[q.by_age]]
        self._order_pos = by_age[: max(config.k // 2, 1)]
        self.queue_order = [pending[i] for i in self._order_pos.tolist()]
        by_est = q.by_est[live[q.by_est]]
        if q.left and len(self.state.nodes):
            # the shortest jobs that fit and that the long-job limit lets start
            by_est = by_est[q.startable(self)[by_est]]
        half = max(1, config.k // 2)
        idx = list(
            dict.fromkeys(by_age[:half].tolist() + by_est[: max(1, config.k - half)].tolist())
        )
        idx.sort(key=lambda i: (-eff[i], sub[i]))
        self.index = np.array(idx, dtype=np.intp)
        """position in `pending` of each window job"""
        self.window: list[JobRequest] = [pending[i] for i in idx]
        self._placed_k: list[int] = []
        """window positions of this window's placements"""
        self.alive = np.ones(len(idx), dtype=bool)
        w_est = rows[idx, 2]
        w_sub = sub[idx]
        self.eff = eff[idx]
        self.req = rows[idx, 3:].reshape(-1, 4)
        self.share = self.req[:, 3] > 0
        self.est = w_est
        self.wait = np.maximum(0.0, self.now - w_sub)
        fs = self.fair_share
        self.fair = (
            np.ones(len(idx))
            if fs is None
            else np.array([fs.factor(j) for j in self.window], dtype=float)
        )
        self.placed: list[Placement] = []
        self._per_version: tuple = (-1,)
        """(placements, capped, estimate ranks, age ranks) of the window, see `candidates`"""
        self._capped_at: tuple = (None,)
        """((long CPUs, long GPUs), capped) the limit mask was last computed for"""
        self._by_est = np.argsort(self.est, kind="stable")
        self._by_age = np.argsort(-self.wait, kind="stable")
        """the window's jobs by estimate and by age, ties in window order (for `_ranks`)"""
        self.holding = holding
        self._reservation()
        per_gpu = self.per_gpu_max
        self.is_long = self.est > config.long_after_s
        # GPU equivalents of each window job (a share: its memory share of one GPU)
        self.req_geq = np.where(
            self.req[:, 2] > 0,
            self.req[:, 2],
            np.minimum(1.0, self.req[:, 3] / per_gpu) if per_gpu > 0 else 0.0,
        )
        self.wait_holds = False
        # per-job features that stay fixed during the round
        bounded = np.maximum(self.est, TAU_S)
        self.job_block = np.stack(
            [
                np.log(bounded / TAU_S) / 8.0,
                np.log1p(self.wait / TAU_S) / 8.0,
                np.log((self.wait + bounded) / bounded) / 4.0,
                np.clip(self.eff, -2.0, 6.0) / 4.0,
            ],
            axis=1,
        ).reshape(-1, 4)
        self.ends_before = self.now + self.est <= self.t_res
        self.partial: np.ndarray
        if after is not None:
            self.partial = after.partial
        else:
            self.partial = np.array(
                [self._partial(i) for i in range(len(self.state.nodes))], dtype=float
            )
        self._pair_matrices()

    def _pair_matrices(self) -> None:
        """Fit and best-fit leftover of every (window job, node), kept current column by column
        as jobs are placed (`place`)."""
        # the window's rows of the queue's matrices (the same numbers, computed once per
        # decision time and kept current by node as jobs are placed)
        fit, gfrac, left = self._queue.pairs(self.state)
        self._fit = fit[self.index]
        self._gfrac = gfrac[self.index]
        self._left = left[self.index]

    @property
    def view(self) -> ClusterView:
        """The cluster as this window sees it (built on demand for a later window)."""
        if self._view is None:
            assert self._before is not None
            self._view = self._before.view_after()
            self._before = None
        return self._view

    def next_window(self) -> Round:
        """The next window of the same decision time: the queue without this window's
        placements (and, once "wait" passed over this window, without its other jobs too),
        continuing from its node state. The queue's order and fit masks carry over: only the
        jobs that left are marked."""
        gone = list(self._placed_k)
        if self.ended:
            gone += np.flatnonzero(self.alive).tolist()
        self._queue.remove(self.index[gone], [self.window[k].id for k in gone])
        return Round(None, self.pending, self.now, self.config, holding=self.holding, after=self)

    def _long_held(self, view: ClusterView) -> None:
        """CPUs and GPU equivalents held by running jobs with more than `long_after_s` left (by
        estimate); whether anything runs (a later finish brings a new round)."""
        held = LongCap(view, self.now, self.config.long_after_s, self.config.long_share)
        self.long_c, self.long_g = held.cpus, held.gpus
        # only a running job brings a later event (its finish); free == capacity is not exact
        # enough to tell an empty node (float CPUs, GPU memory not divisible by the GPU count)
        self.busy = bool(view.running)

    def _partial(self, i: int) -> float:
        """Most free memory on one already-shared GPU of node i (0 when none is shared)."""
        st = self.state
        free, gmem = st.free_ids[i], st.gmem[i]
        if len(free) == len(gmem):
            return 0.0
        if not free:  # every GPU taken or shared: all of them count
            return float(max(gmem))
        return float(max([m for g, m in enumerate(gmem) if g not in free]))

    # -- reservation and starvation --------------------------------------------------------------

    def _reservation(self) -> None:
        """The head (first job in priority-and-age order that fits no node now) and when and where
        it could start at the earliest; and whether the first job of the queue is starving."""
        self.t_res = math.inf
        self.res_node = -1
        self.res_gpus: frozenset[int] = frozenset()
        """the GPU ids the head takes at its reservation"""
        self.extra = [0.0, 0.0]
        """CPUs and memory the reserved node has left at the reservation time beside the head
        (jobs that outlast the reservation may start there within these)"""
        self._guard = False
        """the last candidates obey the reservation (pairs on its node must not delay the head)"""
        self.head_id: JobId | None = None
        self.first_id: JobId | None = self.queue_order[0].id if self.queue_order else None
        self.first_starving = bool(self.queue_order) and self._starving(self.queue_order[0])
        st = self.state
        if not len(st.nodes) or not self.queue_order:
            return
        # the head: the first of the queue order that fits no node now
        fits = np.asarray(self._queue.pairs(st)[0][self._order_pos].any(axis=1))
        k = int(np.argmin(fits))
        if fits[k]:
            return
        job = self.queue_order[k]
        self.head_id = job.id
        key = (job.id, len(st.placed))
        hit_res = self._queue.reservations.get(key)
        if hit_res is None:
            hit = earliest_fit(self.view, job, self.now)
            hit_res = (math.inf, -1, frozenset(), (0.0, 0.0))
            if hit is not None:
                self.t_res = hit[0]  # `_extra_at` counts what still runs then
                node = st.ids.index(hit[1]) if hit[1] in st.ids else -1
                extra = self._extra_at(hit[1], job) if node >= 0 else [0.0, 0.0]
                hit_res = (hit[0], node, frozenset(hit[2]), (extra[0], extra[1]))
            self._queue.reservations[key] = hit_res
        self.t_res, self.res_node, self.res_gpus = hit_res[0], hit_res[1], hit_res[2]
        self.extra = list(hit_res[3])

    def _extra_at(self, node_id: str, head: JobRequest) -> list[float]:
        """[CPUs, memory] node `node_id` has left at the reservation time once the head starts
        there, counting the jobs that still run then by estimate (this decision time's earlier
        windows included: they run in the view)."""
        view = self.view
        node = next(n for n in view.nodes if n.id == node_id)
        cpus, mem = float(node.capacity.cpus), float(node.capacity.mem_mb)
        for run in view.running:
            if run.node_id == node_id and max(run.est_end, self.now) > self.t_res:
                cpus -= run.request.cpus
                mem -= run.request.mem_mb
        return [cpus - head.request.cpus, mem - head.request.mem_mb]

    def _fits_extra(self) -> np.ndarray:
        """Which window jobs fit beside the head on its reserved node at the reservation time:
        within the CPUs and memory left then, on GPUs other than the head's."""
        if self.res_node < 0:
            return np.zeros(len(self.window), dtype=bool)
        st, i, res = self.state, self.res_node, self.res_gpus
        free_ids = [g for g in st.free_ids[i] if g not in res]
        share_room = max((m for g, m in enumerate(st.gmem[i]) if g not in res), default=0)
        req = self.req
        return (
            (req[:, 0] <= self.extra[0] + 1e-9)
            & (req[:, 1] <= self.extra[1])
            & (req[:, 2] <= len(free_ids))
            & (req[:, 3] <= share_room)
        )

    def _starving(self, job: JobRequest) -> bool:
        s = self.config.starve_after_s
        return s is not None and self.now - job.submitted_at >= s

    # -- candidates ---------------------------------------------------------------------------------

    def candidates(self) -> Candidates:
        """Every feasible (job, node) pair of the window allowed by the guard rails, plus wait."""
        if self.ended:
            # passed over: nothing of this window may start (the round moves on)
            self.wait_holds = False
            empty = np.zeros(0, dtype=np.intp)
            x = self._features(empty, empty, np.zeros(0, bool), True, np.zeros(0, bool))
            return Candidates(np.array([WAIT]), np.array([WAIT]), x, True)
        st = self.state
        nn = len(st.nodes)
        alive = self.alive
        if nn and alive.any():
            ok = self._fit & alive[:, None]
        else:
            ok = np.zeros((len(self.window), nn), dtype=bool)
        # jobs that may use the reserved node under the reservation: they end before it, or
        # outlast it within what the node has left beside the head then
        spares = self.ends_before | self._fits_extra()
        guard = False
        if self.first_starving:
            hk = next(
                (k for k, j in enumerate(self.window) if j.id == self.first_id and alive[k]),
                None,
            )
            if hk is not None and ok[hk].any():
                keep = np.zeros_like(ok)
                keep[hk] = ok[hk]
                ok = keep
            elif self.head_id == self.first_id and self.res_node >= 0:
                ok[~spares, self.res_node] = False
                guard = True
        if self.holding and self.res_node >= 0:
            # "wait" was chosen: nothing more may start that would delay the head's reservation
            ok[~spares, self.res_node] = False
            guard = True
        # priorities among what the reservation lets start: a job it holds back does not hold
        # back lower levels that fit beside it (else the reserved node idles, as EASY would not)
        jobs_ok: np.ndarray = np.asarray(ok.any(axis=1))
        version = len(self.placed)
        if self._per_version[0] != version:
            # what changes only with a placement: the window's ranks, and the long-job limit
            # (only when a long job was placed)
            held = (self.long_c, self.long_g)
            if self._capped_at[0] != held:
                self._capped_at = (held, self._capped())
            self._per_version = (
                version,
                self._capped_at[1],
                self._ranks(self._by_est),
                self._ranks(self._by_age),
            )
        capped = self._per_version[1]
        if (jobs_ok & ~capped).any():
            # a long job held back by the teacher's limit does not hold back shorter work of a
            # lower priority (as in SJF, which skips it)
            jobs_ok &= ~capped
        if jobs_ok.any():
            top = self.eff[jobs_ok].max()
            ok &= (self.eff >= top)[:, None]
        self._guard = guard
        # each job's best few nodes by SJF's best fit (leftover), lowest index first on ties
        if nn and ok.any():
            left = np.where(ok, self._left, np.inf)
            m = self.config.nodes_per_job
            if nn > m:
                top_n = np.argpartition(left, m - 1, axis=1)[:, :m]
                keep = np.zeros_like(ok)
                keep[np.arange(len(keep))[:, None], top_n] = True
                ok &= keep
        jk, nk = np.nonzero(ok)
        # waiting holds the head's reserved node where that changes something; otherwise it
        # passes over this window (none of its jobs starts now; the round goes on with the next
        # window), allowed while something runs and no starving job could start
        self.wait_holds = (
            not self.holding
            and self.res_node >= 0
            and bool(((nk == self.res_node) & ~spares[jk]).any())
        )
        starving_fits = self.first_starving and any(
            self.window[j].id == self.first_id for j in jk.tolist()
        )
        can_end = self.busy and not starving_fits
        wait_ok = not len(jk) or self.wait_holds or can_end
        x = self._features(jk, nk, capped, wait_ok, spares)
        return Candidates(
            np.concatenate((jk, _WAIT_ROW)), np.concatenate((nk, _WAIT_ROW)), x, wait_ok
        )

    def _ranks(self, order: np.ndarray) -> np.ndarray:
        """Rank of each alive window job in `order`, scaled to [0, 1] (0 = first); as
        `_rank01`, from the window's sort kept for the round."""
        out = np.zeros(len(order))
        live = order[self.alive[order]]
        if len(live) > 1:
            out[live] = np.arange(len(live)) / (len(live) - 1)
        return out

    def _capped(self) -> np.ndarray:
        """Window jobs the teacher's long-job limit holds back now."""
        return self._capped_rows(self.req, self.est, self.now - self.wait)

    def _capped_rows(self, req: np.ndarray, est: np.ndarray, submitted: np.ndarray) -> np.ndarray:
        """Jobs (request rows, estimates, submit times) the long-job limit holds back now: long
        ones that would take long jobs past `long_share` of the CPUs or GPUs. Never a starving
        job, nor any while no long job runs (the first may always start)."""
        share = self.config.long_share
        if share is None or (self.long_c <= 0 and self.long_g <= 0) or not len(req):
            return np.zeros(len(req), dtype=bool)
        per_gpu = self.per_gpu_max
        geq = np.where(
            req[:, 2] > 0, req[:, 2], np.minimum(1.0, req[:, 3] / per_gpu) if per_gpu else 0.0
        )
        cap_c = self.cap_c_total if len(self.state.nodes) else 0.0
        cap_g = self.cap_g_total
        over = (self.long_c + req[:, 0]) > share * cap_c + 1e-9
        if cap_g:
            over |= (self.long_g + geq) > share * cap_g + 1e-9
        capped = (est > self.config.long_after_s) & over
        starve = self.config.starve_after_s
        if starve is not None:
            capped &= self.now - submitted < starve
        return capped

    def _features(
        self,
        jk: np.ndarray,
        nk: np.ndarray,
        capped: np.ndarray,
        wait_ok: bool,
        spares: np.ndarray,
    ) -> np.ndarray:
        st = self.state
        m = len(jk)
        x = np.zeros((m + 1, NUM_FEATURES), dtype=np.float32)
        # cluster features, on every row (the wait row included)
        used_g = (1.0 - float(st.fg.sum()) / self.cap_g_total) if self.cap_g_total else 0.0
        used_c = 1.0 - float(st.fc.sum()) / max(self.cap_c_total, 1e-9)
        x[:, 20] = math.log1p(self.pending_total - len(self.placed)) / 6.0
        x[:, 21] = used_g
        x[:, 22] = used_c
        x[:, 23] = math.log1p(m) / 8.0
        cap_g = self.cap_g_total
        x[m, 26] = self.long_c / max(self.cap_c_total, 1e-9)
        x[m, 27] = self.long_g / cap_g if cap_g else 0.0
        alive = self.alive
        x[:, 28] = float((~self.is_long & alive).sum()) / max(1, int(alive.sum()))
        x[m, 29] = 0.0 if self.wait_holds else 1.0
        x[m, NUM_FEATURES - 1] = 1.0
        if m == 0:
            return x
        req = self.req[jk]
        cap_c, cap_m, cap_g = st.cap_c[nk], st.cap_m[nk], st.cap_g[nk]
        has_gpu = st.has_gpu[nk]
        per_gpu = st.per_gpu[nk]
        gfrac = np.where(self.share[jk], np.minimum(1.0, req[:, 3] / per_gpu), req[:, 2])
        gshare = np.where(has_gpu, gfrac / cap_g, 0.0)
        x[:m, 0] = req[:, 0] / cap_c
        x[:m, 1] = req[:, 1] / cap_m
        x[:m, 2] = gshare
        fc_after = (st.fc[nk] - req[:, 0]) / cap_c
        fm_after = (st.fm[nk] - req[:, 1]) / cap_m
        fg_after = np.where(
            has_gpu, (st.fg[nk] - np.where(self.share[jk], 0.0, req[:, 2])) / cap_g, 0.0
        )
        x[:m, 3] = fc_after
        x[:m, 4] = fm_after
        x[:m, 5] = fg_after
        left = (fc_after + fm_after + fg_after) / 3.0
        x[:m, 6] = left
        # best fit per job: smallest leftover among that job's candidates
        best = np.full(len(self.window), np.inf)
        np.minimum.at(best, jk, left)
        x[:m, 7] = left <= best[jk] + 1e-9
        x[:m, 8] = st.idle[nk]
        x[:m, 9] = st.price[nk] / st.max_price
        # a share breaks a whole GPU when no already-shared GPU of the node could hold it
        x[:m, 10] = self.share[jk] & (self.partial[nk] < req[:, 3])
        est = self.est[jk]
        x[:m, 11:15] = self.job_block[jk]
        x[:m, 15] = self._per_version[2][jk]
        x[:m, 16] = self._per_version[3][jk]
        x[:m, 17] = np.maximum(np.maximum(x[:m, 0], x[:m, 1]), x[:m, 2])
        ends_before = self.ends_before[jk]
        x[:m, 18] = ends_before
        x[:m, 19] = (nk == self.res_node) & ~spares[jk]
        long = self.is_long[jk]
        x[:m, 25] = long
        x[:m, 26] = (self.long_c + np.where(long, req[:, 0], 0.0)) / max(self.cap_c_total, 1e-9)
        x[:m, 27] = (
            (self.long_g + np.where(long, self.req_geq[jk], 0.0)) / self.cap_g_total
            if self.cap_g_total
            else 0.0
        )
        x[:m, FAIR_SHARE] = self.fair[jk]
        grow: np.ndarray | None = None
        if self.frag is not None:
            # per GPU of the node, in the node's own GPUs (RoundFragmentation's milli of them)
            per_node = np.where(has_gpu, MILLI * np.maximum(cap_g, 1.0), np.inf)
            grow = frag_growth(self.frag, nk, req)
            x[:m, FRAG_GROWTH] = np.clip(grow / per_node, -1.0, 1.0)
            x[:m, FRAG_NODE] = self.frag.cache.frag[nk] / per_node
        # the teacher's pick: SJF's (shortest estimate, then queue order, on its best-fit node,
        # then lowest index) among the jobs its long-job limit lets start; none: wait
        free = ~capped[jk]
        if free.any():
            sjf_left = (
                (st.fc[nk] - req[:, 0]) / cap_c
                + (st.fm[nk] - req[:, 1]) / cap_m
                + np.where(has_gpu, (st.fg[nk] - gfrac) / cap_g, 0.0)
            )
            order = np.lexsort((nk, sjf_left, jk, est, ~free))
            pick = int(order[0])
            if grow is not None and self.config.teacher_placement == "fragmentation":
                # SJF's node choice by fragmentation (`HeuristicPolicy._node`), among the job's
                # candidates
                rows = np.flatnonzero(jk == jk[pick])
                steps = np.floor(grow[rows] / STEP + 1e-9)
                pick = int(rows[np.lexsort((nk[rows], sjf_left[rows], steps))[0]])
            x[pick, TEACHER] = 1.0
        elif wait_ok:
            x[m, TEACHER] = 1.0
        return x

    def wants_next_window(self) -> bool:
        """True when this window placed something or was passed over, and jobs outside it
        remain: a fresh window (the next shortest jobs that fit) may hold more candidates at the
        same time."""
        outside = self.pending_total - len(self.placed) - int(self.alive.sum())
        return (bool(self.placed) or self.ended) and outside > 0

    def view_after(self) -> ClusterView:
        """The view with this round's placements applied (for the next window)."""
        if not self.placed:
            return self.view
        st = self.state
        if len(st.placed) == self._placed_before + len(self.placed):
            # no later window has placed anything yet: the round's node state is this view
            return self._view_from_state()
        nodes = {n.id: n for n in self.view.nodes}
        running = list(self.view.running)
        jobs = {j.id: j for j in self.window}
        for p in self.placed:
            job = jobs[p.job_id]
            nodes[p.node_id] = nodes[p.node_id].allocate(job.request, p.gpu_ids)
            running.append(
                RunningJob(
                    p.job_id,
                    p.node_id,
                    job.request,
                    p.gpu_ids,
                    self.now,
                    self.now + job.est_runtime_s,
                )
            )
        return ClusterView(tuple(nodes[n.id] for n in self.view.nodes), self.now, tuple(running))

    def _view_from_state(self) -> ClusterView:
        """The decision time's first view with every placement of the round state applied:
        the nodes they went to rebuilt from the state's free resources (as `allocate` would
        leave them), the placed jobs added to the running ones in the order they started."""
        st, root, now = self.state, self._root_view, self.now
        nodes = list(root.nodes)
        where = {n.id: k for k, n in enumerate(nodes)}
        running = list(root.running)
        touched: dict[int, None] = {}
        for i, job, gids in st.placed:
            touched[i] = None
            running.append(
                RunningJob(job.id, st.ids[i], job.request, gids, now, now + job.est_runtime_s)
            )
        for i in touched:
            k = where[st.ids[i]]
            n = nodes[k]
            free_ids, gmem = tuple(st.free_ids[i]), tuple(st.gmem[i])
            free = Resources(float(st.fc[i]), int(st.fm[i]), len(free_ids), sum(gmem))
            nodes[k] = NodeView(
                n.id, n.capacity, free, free_ids, gmem, n.price_per_hour, n.state, n.prices,
                n.gpu_model,
            )  # fmt: skip
        return ClusterView(tuple(nodes), now, tuple(running))

    # -- acting -------------------------------------------------------------------------------------

    def place(self, cands: Candidates, i: int) -> Placement | None:
        """Apply candidate `i`: a pair starts its job (returned); the wait row starts holding the
        head's reserved node (None), after which only pairs that do not delay the head remain."""
        j = int(cands.jobs[i])
        if j == WAIT:
            if self.wait_holds:
                self.holding = True
            else:
                self.ended = True
            return None
        node = int(cands.nodes[i])
        job = self.window[j]
        # a job that outlasts the reservation on its node stays off the head's GPUs
        beside = self._guard and node == self.res_node and not self.ends_before[j]
        gids = self.state.pick_gpus(node, job.request, self.res_gpus if beside else frozenset())
        if gids is None:  # pragma: no cover - the fit matrix is exact
            raise RuntimeError(f"candidate {i} does not fit")
        st = self.state
        st.place(node, job, gids)
        self.partial[node] = self._partial(node)
        self._fit[:, node] = st.fit_column(self.req, node)
        if self._queue.allow is not None:
            self._fit[:, node] &= self._queue.allow[self.index, node]
        self._left[:, node] = (
            (st.fc[node] - self.req[:, 0]) / st.cap_c[node]
            + (st.fm[node] - self.req[:, 1]) / st.cap_m[node]
            + np.where(st.has_gpu[node], (st.fg[node] - self._gfrac[:, node]) / st.cap_g[node], 0.0)
            + 1e-9 * node
        )
        if node == self.res_node and not self.ends_before[j]:
            # it still runs at the reservation time: less is left beside the head then
            self.extra[0] -= float(self.req[j, 0])
            self.extra[1] -= float(self.req[j, 1])
        self.alive[j] = False
        self._placed_k.append(j)
        self.busy = True
        if self.is_long[j]:
            self.long_c += float(self.req[j, 0])
            self.long_g += float(self.req_geq[j])
        p = Placement(job.id, self.state.ids[node], gids)
        self.placed.append(p)
        return p

    def find(self, cands: Candidates, placement: Placement) -> int | None:
        """Index of the candidate that makes `placement` (same job and node), if any."""
        for i in range(len(cands) - 1):
            j, n = int(cands.jobs[i]), int(cands.nodes[i])
            if self.window[j].id == placement.job_id and self.state.ids[n] == placement.node_id:
                return i
        return None


class _Queue:
    """The pending jobs of one decision time, shared by its windows: their rows, effective
    priorities and the two orders windows draw from, computed once; which jobs left (placed, or
    passed over by "wait"); the fit-and-limit mask and the head's reservation, kept while no
    placement changes the node state."""

    def __init__(self, pending: Sequence[JobRequest], rows: np.ndarray, first: Round) -> None:
        now, config = first.now, first.config
        self.pending = pending
        self.rows = rows
        n = len(pending)
        prio, sub, est = rows[:, 0], rows[:, 1], rows[:, 2]
        self.eff = effective_priorities(prio, sub, now, config.aging_s)
        self.by_age = np.lexsort((sub, -self.eff))
        self.by_est = np.lexsort((sub, est, -self.eff))
        self.gone = np.zeros(n, dtype=bool)
        self.left = n
        # the simulator's queue holds each job once; any other list may repeat an id (a
        # replayed trace can): then a placed id leaves the queue everywhere it appears
        self._ids: list[JobId] | None = None if hasattr(pending, "table") else []
        self._startable: tuple[int, np.ndarray] | None = None
        self.reservations: dict[tuple[JobId, int], tuple] = {}
        self._pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.allow = first.state.model_matrix(pending) if len(first.state.nodes) else None
        """(jobs x nodes) where each job may run by its GPU models and host constraints (None:
        anywhere): the fit matrix never offers a pair it forbids"""
        self._pairs_placed = 0
        """placements of the round state that `_pairs` includes"""
        """(head, placements so far) -> (time, node, GPU ids, [CPUs, memory] beside the head)"""

    def startable(self, rnd: Round) -> np.ndarray:
        """Jobs that fit some node now and that the long-job limit lets start (every job of the
        decision time; recomputed only after a placement)."""
        version = len(rnd.state.placed)
        if self._startable is None or self._startable[0] != version:
            rows = self.rows
            fits = np.asarray(self.pairs(rnd.state)[0].any(axis=1))
            fits &= ~rnd._capped_rows(rows[:, 3:], rows[:, 2], rows[:, 1])
            self._startable = (version, fits)
        return self._startable[1]

    def pairs(self, st: RoundState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(jobs x nodes) of every queued job: whether it fits the node now, the GPUs it takes
        there (a share: its part of one GPU), and SJF's best-fit leftover with the node's index
        as a tie-break. Built once per decision time; after placements only the columns of the
        nodes they went to are recomputed (the same element-wise formulas, so the same numbers
        as a fresh build)."""
        done = self._pairs_placed
        if self._pairs is None or done > len(st.placed):
            self._pairs = self._pair_matrices(st)
        elif done < len(st.placed):
            fit, gfrac, left = self._pairs
            req = self.rows[:, 3:]
            changed = sorted({i for i, _, _ in st.placed[done:]})
            if len(changed) == 1:
                i = changed[0]
                fit[:, i] = st.fit_column(req, i)
                if self.allow is not None:
                    fit[:, i] &= self.allow[:, i]
                left[:, i] = (
                    (st.fc[i] - req[:, 0]) / st.cap_c[i]
                    + (st.fm[i] - req[:, 1]) / st.cap_m[i]
                    + np.where(st.has_gpu[i], (st.fg[i] - gfrac[:, i]) / st.cap_g[i], 0.0)
                    + 1e-9 * i
                )
            else:
                # the changed columns at once: the same element-wise formulas, the same numbers
                at = np.array(changed, dtype=np.intp)
                fc, fm, fg, fpm = st.fc[at], st.fm[at], st.fg[at], st.fpm[at]
                fit[:, at] = (
                    (fc[None, :] + 1e-9 >= req[:, 0:1])
                    & (fm[None, :] >= req[:, 1:2])
                    & (fg[None, :] >= req[:, 2:3])
                    & (fpm[None, :] >= req[:, 3:4])
                )
                if self.allow is not None:
                    fit[:, at] &= self.allow[:, at]
                left[:, at] = (
                    (fc[None, :] - req[:, 0:1]) / st.cap_c[at][None, :]
                    + (fm[None, :] - req[:, 1:2]) / st.cap_m[at][None, :]
                    + np.where(
                        st.has_gpu[at][None, :],
                        (fg[None, :] - gfrac[:, at]) / st.cap_g[at][None, :],
                        0.0,
                    )
                    + 1e-9 * at[None, :]
                )
        self._pairs_placed = len(st.placed)
        return self._pairs

    def _pair_matrices(self, st: RoundState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        req = self.rows[:, 3:]
        nn = len(st.nodes)
        fit = st.fit_matrix(req) if nn else np.zeros((len(req), 0), dtype=bool)
        if self.allow is not None:
            fit &= self.allow
        gfrac = np.where(
            (req[:, 3] > 0)[:, None],
            np.minimum(1.0, req[:, 3:4] / st.per_gpu[None, :]),
            req[:, 2:3],
        )
        left = (
            (st.fc[None, :] - req[:, 0:1]) / st.cap_c[None, :]
            + (st.fm[None, :] - req[:, 1:2]) / st.cap_m[None, :]
            + np.where(st.has_gpu[None, :], (st.fg[None, :] - gfrac) / st.cap_g[None, :], 0.0)
            + 1e-9 * np.arange(nn)[None, :]
        )
        return fit, gfrac, left

    def remove(self, positions: np.ndarray, ids: list[JobId]) -> None:
        """Mark the jobs at `positions` (with ids `ids`) as gone from the queue."""
        if self._ids is not None and ids:
            if not self._ids:
                self._ids = [j.id for j in self.pending]
            out = set(ids)
            self.gone |= np.fromiter((i in out for i in self._ids), bool, len(self._ids))
        else:
            self.gone[positions] = True
        self.left = len(self.gone) - int(self.gone.sum())


_FROM_TABLE = np.array([4, 5, 6, 0, 1, 2, 3])
"""columns of the simulator's job table (cpus, mem, whole GPUs, share memory, priority,
submitted, estimate) in `pending_rows` order"""


def pending_rows(pending: Sequence[JobRequest]) -> np.ndarray:
    """(jobs x 7) rows of priority, submitted, estimate, cpus, mem, whole GPUs, share memory
    (read from the simulator's job table when the queue carries one)."""
    table = getattr(pending, "table", None)
    if table is not None:
        return table[pending.rows][:, _FROM_TABLE]  # type: ignore[attr-defined]
    out = np.empty((len(pending), 7), dtype=float)
    for i, j in enumerate(pending):
        r = j.request
        out[i] = (
            j.priority,
            j.submitted_at,
            j.est_runtime_s,
            r.cpus,
            r.mem_mb,
            r.gpus,
            r.gpu_mem_mb if r.gpus == 0 else 0,
        )
    return out


def _rank01(values: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Rank of each value among the alive ones, scaled to [0, 1] (0 = smallest)."""
    out = np.zeros(len(values))
    idx = np.flatnonzero(alive)
    if len(idx) > 1:
        order = np.argsort(values[idx], kind="stable")
        ranks = np.empty(len(idx))
        ranks[order] = np.arange(len(idx)) / (len(idx) - 1)
        out[idx] = ranks
    return out
