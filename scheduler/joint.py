"""Joint placement of a round's GPU shares: the look-ahead of the fragmentation experiments
(scheduler/replay.py `LookAhead`) in the product's scheduling rounds.

A policy decides which jobs start this round and places them one at a time. `JointShares` then
re-places the round's GPU shares (requests for part of one GPU's memory) together: the other
placements stay as they are; each share, in turn, tries its `width` best candidates (node and GPU,
least growth of the fragmentation for the shapes learned from the jobs seen, in 0.1-GPU steps) and
takes the one whose growth plus the least growth of each of the next `depth` shares placed greedily
after it is least (a share that then fits nowhere adds its whole request). The shares are taken in
two orders, the policy's and the largest first; the layout that strands least wins, and it is kept
only when it strands less than the policy's own (so a round is never made worse by the measure).

The dispatcher runs it when the setting `share_placement` is `joint` (off by default: in the
simulator it was not shown no worse, docs/benchmarks.md "Joint placement in the product's rounds").

What it may not change, so that a round is the policy's in everything but where shares sit:
* the set of jobs that start, and every placement that is not a share;
* a GPU that the policy's round leaves whole stays whole (a share moves only onto GPUs that were
  already shared or that the policy's round gave a share), so whole-GPU jobs lose nothing;
* each job's allowed hosts and GPU models, CPUs and memory of every node.
* no job left waiting may start later than under the policy's layout, by the estimates
  (`earliest_fit`, for the first `guard` waiting jobs by priority, then age): a reservation that
  a policy holds for a waiting job is never pushed back by a moved share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scheduler.fragmentation import (
    MILLI,
    STEP,
    FreeNodes,
    ModelBits,
    OnlineMix,
    RoundFragmentation,
    request_shape,
)
from scheduler.heuristics import earliest_fit
from scheduler.model import (
    ClusterView,
    JobRequest,
    NodeView,
    Placement,
    RunningJob,
    job_allows,
)


def applies(policy: Any) -> bool:
    """Whether the joint placement runs after `policy`'s rounds: a heuristic that places by
    fragmentation (its `placement` option, the default of all but FIFO); not the DQN or the ILP,
    whose (job, node) choices are their own."""
    return getattr(policy, "placement", None) == "fragmentation"


class JointShares:
    """Re-places a round's GPU shares jointly (see the module's docstring); keeps the shapes
    learned from the jobs seen across rounds."""

    width = 3
    depth = 4
    guard = 16

    def __init__(self) -> None:
        self._mix = OnlineMix(coverage=1.0, limit=64)
        self._bits = ModelBits()
        self._seen: set[Any] = set()
        self.rounds = 0
        """rounds in which the joint layout replaced the policy's (for tests and benchmarks)"""
        self.moved = 0
        """shares placed elsewhere than the policy placed them"""

    def learn(self, pending: Sequence[JobRequest]) -> None:
        """Count each job once, when first seen, as an arrival of its shape."""
        if len(self._seen) > 500_000:
            self._seen.clear()
        for j in pending:
            if j.id not in self._seen:
                self._seen.add(j.id)
                r = j.request
                mask = self._bits.mask(j.gpu_model) if j.gpu_model else 0
                self._mix.observe(request_shape(r.cpus, r.mem_mb, r.gpus, r.gpu_mem_mb, mask))

    def place(
        self, view: ClusterView, pending: Sequence[JobRequest], placements: Sequence[Placement]
    ) -> list[Placement]:
        """`placements` (the policy's, for `view`) with the GPU shares re-placed jointly when
        that strands less; otherwise `placements` unchanged."""
        self.learn(pending)
        out = list(placements)
        jobs = {j.id: j for j in pending}
        shares = [
            n
            for n, p in enumerate(out)
            if p.job_id in jobs and jobs[p.job_id].request.is_gpu_share and len(p.gpu_ids) == 1
        ]
        if len(shares) < 2:
            return out
        nodes = list(view.nodes)
        where = {n.id: i for i, n in enumerate(nodes)}
        base = list(nodes)
        try:
            for n, p in enumerate(out):
                if n not in shares:
                    i = where[p.node_id]
                    base[i] = base[i].allocate(jobs[p.job_id].request, tuple(p.gpu_ids))
            after = list(base)
            for n in shares:
                p = out[n]
                i = where[p.node_id]
                after[i] = after[i].allocate(jobs[p.job_id].request, tuple(p.gpu_ids))
        except (KeyError, ValueError):
            return out  # placements that do not fit together: not ours to mend
        # GPUs a share may go to: those not whole once the policy's round is in
        usable = [
            [g not in set(a.free_gpu_ids) for g in range(a.capacity.gpus)]
            if a.is_up
            else [False] * a.capacity.gpus
            for a in after
        ]
        mine = [jobs[out[n].job_id] for n in shares]
        theirs = self._stranded(after)
        best: tuple[float, list[tuple[int, int]]] | None = None
        largest = sorted(range(len(mine)), key=lambda k: -mine[k].request.gpu_mem_mb)
        for order in (list(range(len(mine))), largest):
            got = self._joint(base, usable, [mine[k] for k in order])
            if got is None:
                continue
            total, spots = got
            by_job = [spots[order.index(k)] for k in range(len(mine))]
            if best is None or total < best[0] - 1e-6:
                best = (total, by_job)
        if best is None or best[0] >= theirs - 1e-6:
            return out
        joint = list(out)
        for n, (i, g) in zip(shares, best[1], strict=True):
            joint[n] = Placement(out[n].job_id, nodes[i].id, (g,))
        if self._delays(view, pending, jobs, out, joint):
            return out
        self.rounds += 1
        self.moved += sum(a != b for a, b in zip(out, joint, strict=True))
        return joint

    def _delays(
        self,
        view: ClusterView,
        pending: Sequence[JobRequest],
        jobs: dict[Any, JobRequest],
        theirs: Sequence[Placement],
        mine: Sequence[Placement],
    ) -> bool:
        """Whether one of the first `guard` waiting jobs could start later (by the estimates)
        after `mine` than after `theirs`."""
        placed = {p.job_id for p in theirs}
        waiting = sorted(
            (j for j in pending if j.id not in placed), key=lambda j: (-j.priority, j.submitted_at)
        )[: self.guard]
        if not waiting:
            return False
        before, after = _after(view, jobs, theirs), _after(view, jobs, mine)
        for j in waiting:
            a, b = earliest_fit(before, j, view.now), earliest_fit(after, j, view.now)
            if a is not None and (b is None or b[0] > a[0] + 1e-6):
                return True
        return False

    # -- the look-ahead ----------------------------------------------------------------------

    def _state(self, nodes: Sequence[NodeView]) -> tuple[FreeNodes, RoundFragmentation]:
        st = FreeNodes(
            np.array([n.free.cpus for n in nodes], dtype=float),
            np.array([n.free.mem_mb for n in nodes], dtype=float),
            [list(n.gpu_free_mem_mb) for n in nodes],
            np.array([max(n.gpu_mem_per_gpu_mb, 1) for n in nodes], dtype=float),
            [n.gpu_model for n in nodes],
        )
        return st, RoundFragmentation(st, self._mix.mix(), self._bits)

    def _stranded(self, nodes: Sequence[NodeView]) -> float:
        return float(self._state(nodes)[1].cache.frag.sum())

    def _joint(
        self, base: Sequence[NodeView], usable: list[list[bool]], order: Sequence[JobRequest]
    ) -> tuple[float, list[tuple[int, int]]] | None:
        """Place `order` on `base` with the look-ahead: (stranded after, (node, GPU) of each),
        or None when one of them fits nowhere."""
        st, frag = self._state(base)
        used = np.array([any(m < n.gpu_mem_per_gpu_mb for m in n.gpu_free_mem_mb) for n in base])
        ids = [n.id for n in base]
        spots: list[tuple[int, int]] = []
        for k, job in enumerate(order):
            cands = self._candidates(st, frag, ids, usable, used, job)
            if cands is None:
                return None
            ahead = order[k + 1 : k + 1 + self.depth]
            pick = cands[0][:2]
            if ahead and len(cands) > 1:
                best = None
                for i, g, grow in cands[: self.width]:
                    self._apply(st, frag, i, g, job, +1)
                    total = grow
                    undo = []
                    for nxt in ahead:
                        got = self._candidates(st, frag, ids, usable, used, nxt)
                        if got is None:  # it no longer fits: all it asks is lost
                            total += MILLI * nxt.request.gpu_mem_mb / float(np.max(st.per_gpu))
                            continue
                        i2, g2, grow2 = got[0]
                        total += grow2
                        self._apply(st, frag, i2, g2, nxt, +1)
                        undo.append((i2, g2, nxt))
                    for i2, g2, nxt in reversed(undo):
                        self._apply(st, frag, i2, g2, nxt, -1)
                    self._apply(st, frag, i, g, job, -1)
                    key = np.floor(total / STEP + 1e-9)
                    if best is None or key < best[0]:
                        best = (key, (i, g))
                assert best is not None
                pick = best[1]
            self._apply(st, frag, pick[0], pick[1], job, +1)
            used[pick[0]] = True
            spots.append(pick)
        return float(frag.cache.frag.sum()), spots

    def _candidates(
        self,
        st: FreeNodes,
        frag: RoundFragmentation,
        ids: Sequence[str],
        usable: list[list[bool]],
        used: np.ndarray,
        job: JobRequest,
    ) -> list[tuple[int, int, float]] | None:
        """(node, GPU, growth) of each distinct candidate, best first (least growth in steps,
        nodes in use first, node order); None when there is none."""
        r = job.request
        rows: list[tuple[int, int]] = []
        for i in range(len(ids)):
            if st.fc[i] + 1e-9 < r.cpus or st.fm[i] < r.mem_mb:
                continue
            if not job_allows(job, ids[i], st.models[i]):
                continue
            seen: set[int] = set()
            for g, m in enumerate(st.gmem[i]):
                if usable[i][g] and m >= r.gpu_mem_mb and m not in seen:
                    seen.add(m)
                    rows.append((i, g))
        if not rows:
            return None
        idx = np.array([i for i, _ in rows])
        room = np.array([frag.left[i, g] for i, g in rows])
        take = r.gpu_mem_mb * MILLI / frag.per[idx]
        grow = frag.cache.growth(
            idx, (st.fc[idx] - r.cpus) * 1000 + 1e-6, st.fm[idx] - r.mem_mb, room, take, 1
        )
        rank = np.lexsort((idx, ~used[idx], np.floor(grow / STEP + 1e-9)))
        return [(rows[j][0], rows[j][1], float(grow[j])) for j in rank.tolist()]

    @staticmethod
    def _apply(
        st: FreeNodes, frag: RoundFragmentation, i: int, g: int, job: JobRequest, sign: int
    ) -> None:
        r = job.request
        st.fc[i] -= sign * r.cpus
        st.fm[i] -= sign * r.mem_mb
        st.gmem[i][g] -= sign * r.gpu_mem_mb
        frag.refresh(i)


def _after(
    view: ClusterView, jobs: dict[Any, JobRequest], placements: Sequence[Placement]
) -> ClusterView:
    """`view` with `placements` started (free resources, and running until their estimates)."""
    nodes = {n.id: n for n in view.nodes}
    running = list(view.running)
    for p in placements:
        job = jobs[p.job_id]
        nodes[p.node_id] = nodes[p.node_id].allocate(job.request, tuple(p.gpu_ids))
        running.append(
            RunningJob(
                p.job_id,
                p.node_id,
                job.request,
                tuple(p.gpu_ids),
                view.now,
                view.now + job.est_runtime_s,
            )  # fmt: skip
        )
    return ClusterView(tuple(nodes[n.id] for n in view.nodes), view.now, tuple(running))


class JointPolicy:
    """`policy` with each round's GPU shares placed jointly (`JointShares`) where `applies`;
    `enabled=False` keeps the policy's own placements (the baseline of a benchmark). Given a
    `yardstick` of requests, it also measures the GPU capacity stranded after each round for
    their shapes, as a share of the cluster's GPUs, held until the next round (`stranded_share`)."""

    def __init__(
        self, policy: Any, enabled: bool = True, yardstick: Sequence[JobRequest] = ()
    ) -> None:
        self.policy = policy
        self.enabled = enabled
        self.joint = JointShares()
        self.name = getattr(policy, "name", type(policy).__name__)
        self._bits = ModelBits()
        self._yard = None
        if yardstick:
            from collections import Counter

            from scheduler.fragmentation import Mix

            shapes = Counter(
                request_shape(
                    j.request.cpus,
                    j.request.mem_mb,
                    j.request.gpus,
                    j.request.gpu_mem_mb,
                    self._bits.mask(j.gpu_model) if j.gpu_model else 0,
                )  # fmt: skip
                for j in yardstick
            )
            self._yard = Mix.from_counts(shapes, coverage=0.95, limit=64)
        self._acc = 0.0
        self._span = 0.0
        self._last: tuple[float, float] | None = None

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        """The policy's placements, the shares re-placed jointly when enabled."""
        out = list(self.policy.decide(view, pending, now))
        if self.enabled and applies(self.policy):
            out = self.joint.place(view, pending, out)
        if self._yard is not None:
            self._measure(view, pending, out, now)
        return out

    def explain(self, job_id: Any) -> str:
        """The policy's explanation."""
        return str(self.policy.explain(job_id))

    def _measure(
        self, view: ClusterView, pending: Sequence[JobRequest], out: Sequence[Placement], now: float
    ) -> None:
        assert self._yard is not None
        if self._last is not None and now > self._last[0]:
            self._acc += self._last[1] * (now - self._last[0])
            self._span += now - self._last[0]
        nodes = [n for n in _after(view, {j.id: j for j in pending}, out).nodes if n.is_up]
        cap = sum(n.capacity.gpus for n in nodes)
        if not cap:
            return
        st = FreeNodes(
            np.array([n.free.cpus for n in nodes], dtype=float),
            np.array([n.free.mem_mb for n in nodes], dtype=float),
            [list(n.gpu_free_mem_mb) for n in nodes],
            np.array([max(n.gpu_mem_per_gpu_mb, 1) for n in nodes], dtype=float),
            [n.gpu_model for n in nodes],
        )
        frag = RoundFragmentation(st, self._yard, self._bits)
        self._last = (now, float(frag.cache.frag.sum()) / (cap * MILLI))

    @property
    def stranded_share(self) -> float:
        """Percent of the GPU capacity stranded, averaged over the time between rounds."""
        return 100.0 * self._acc / self._span if self._span > 0 else 0.0
