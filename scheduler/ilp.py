"""One round's placement as an integer program, solved by HiGHS through `scipy.optimize.milp`.

Variables: x[j, n] in {0, 1} for every (job, node) pair where the job fits the node alone now.
Constraints: for each node, the placed jobs' CPUs, memory, whole GPUs and GPU memory stay within
what is free; each job is placed at most once. Objective (maximised):

    sum x[j, n] * (w_j * v_j - cost_weight * c[j, n])

where v_j is the job's request as a share of the cluster's capacity (CPUs + memory + GPUs, so
bigger jobs count more), w_j = 2 ** effective priority (priority plus one per `aging_s` waited),
and c[j, n] is the job's hourly cost on node n relative to the dearest node. GPU shares are
constrained by total GPU memory per node; the exact GPU index is chosen afterwards (best fit), and
a share that then finds no single GPU with room waits for the next round (reported in `unplaced`).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from scheduler.heuristics import RoundState, effective_priority
from scheduler.model import (
    ClusterView,
    JobId,
    JobRequest,
    NodeView,
    Placement,
    Prices,
    allocation_price_per_hour,
    fits_empty,
    gpu_equivalents,
    job_allows,
)


@dataclass(slots=True)
class PlanResult:
    """The outcome of one planning round."""

    placements: list[Placement]
    unplaced: list[tuple[JobId, str]] = field(default_factory=list)
    unschedulable: list[tuple[JobId, str]] = field(default_factory=list)
    status: str = "optimal"
    objective: float = 0.0
    gap: float = 0.0
    solve_s: float = 0.0
    variables: int = 0
    method: str = "greedy"
    cost_per_hour: float = 0.0
    idle_cost_per_hour: float = 0.0
    utilization: dict[str, tuple[float, float]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-friendly form."""
        return {
            "placements": [
                {"job": p.job_id, "node": p.node_id, "gpu_ids": list(p.gpu_ids)}
                for p in self.placements
            ],
            "unplaced": [{"job": j, "reason": r} for j, r in self.unplaced],
            "unschedulable": [{"job": j, "reason": r} for j, r in self.unschedulable],
            "status": self.status,
            "objective": self.objective,
            "gap": self.gap,
            "solve_s": self.solve_s,
            "variables": self.variables,
            "method": self.method,
            "cost_per_hour": self.cost_per_hour,
            "idle_cost_per_hour": self.idle_cost_per_hour,
            "utilization": {
                k: {"used": u, "capacity": c} for k, (u, c) in self.utilization.items()
            },
        }


def _node_prices(n: NodeView) -> Prices | float:
    return n.prices if n.prices is not None else n.price_per_hour


def round_gains(
    up: Sequence[NodeView], jobs: Sequence[JobRequest], prio: Sequence[float], cost_weight: float
) -> tuple[list[tuple[int, int]], list[float]]:
    """The program's variables, (job index, node index) pairs where the job fits alone, and the
    objective coefficient of each."""
    cap_c = sum(n.capacity.cpus for n in up) or 1.0
    cap_m = sum(n.capacity.mem_mb for n in up) or 1.0
    cap_g = sum(n.capacity.gpus for n in up) or 1.0
    max_price = max((n.price_per_hour for n in up), default=0.0) or 1.0
    pairs: list[tuple[int, int]] = []
    gain: list[float] = []
    for jk, j in enumerate(jobs):
        r = j.request
        w = 2.0 ** max(-10.0, min(10.0, prio[jk]))
        for i, n in enumerate(up):
            if not n.can_fit(r) or not job_allows(j, n.id, n.gpu_model):
                continue
            g = gpu_equivalents(r, n.gpu_mem_per_gpu_mb)
            v = r.cpus / cap_c + r.mem_mb / cap_m + g / cap_g
            c = 0.0
            if cost_weight:
                price = allocation_price_per_hour(r, n.capacity, _node_prices(n))
                c = cost_weight * price / max_price
            pairs.append((jk, i))
            gain.append(w * v - c + 1e-6)  # placing something beats placing nothing when equal
    return pairs, gain


_SOLVER_STDOUT_TO_STDERR = False
_STRAY_LINE = b"HighsMipSolverData::transformNewIntegerFeasibleSolution"


def send_solver_output_to_stderr(enabled: bool = True) -> None:
    """Catch what HiGHS prints on file descriptor 1 during solves: its stray debug line is
    dropped, anything else goes to stderr.

    HiGHS 1.12 sometimes prints a stray debug line on stdout (ERGO-Code/HiGHS#2783); a
    single-threaded command whose stdout is JSON or a table turns this on. Not for threaded programs: the
    redirection is process-wide while a solve runs.
    """
    global _SOLVER_STDOUT_TO_STDERR
    _SOLVER_STDOUT_TO_STDERR = enabled


@contextmanager
def _solver_stdout() -> Iterator[None]:
    if not _SOLVER_STDOUT_TO_STDERR:
        yield
        return
    sys.stdout.flush()
    with tempfile.TemporaryFile() as caught:
        saved = os.dup(1)
        try:
            os.dup2(caught.fileno(), 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            caught.seek(0)
            # pass on whatever else the solver said, without its known stray debug line
            rest = [
                line
                for line in caught.read().splitlines(keepends=True)
                if not line.startswith(_STRAY_LINE)
            ]
            if rest:
                os.write(2, b"".join(rest))


def plan_round(
    view: ClusterView,
    pending: Sequence[JobRequest],
    now: float | None = None,
    *,
    cost_weight: float = 0.0,
    time_limit_s: float = 1.0,
    mip_rel_gap: float = 1e-4,
    aging_s: float | None = 3600.0,
    max_jobs: int = 200,
    always_solve: bool = False,
) -> PlanResult:
    """Solve one round: which pending jobs to start now, and where.

    At most `max_jobs` jobs (highest effective priority, then oldest) are considered. Jobs that fit
    no node even when it is empty are returned in `unschedulable`, never dropped silently.

    A greedy plan is built first. When it places every job that fits somewhere and cost is not
    weighed, nothing can beat it: no solver runs (`method` "greedy") unless `always_solve`.
    Otherwise HiGHS gets what is left of `time_limit_s` (the limit covers the whole round), the
    better plan wins, and `gap` is its relative distance to HiGHS's dual bound.
    """
    t0 = time.perf_counter()
    now = view.now if now is None else now
    up = [n for n in view.nodes if n.is_up]
    result = PlanResult([])
    jobs: list[JobRequest] = []
    for j in pending:
        if any(fits_empty(j.request, n.capacity) for n in view.nodes):
            jobs.append(j)
        else:
            result.unschedulable.append(
                (j.id, f"needs {j.request.describe()}, more than any node has")
            )
    prio = [effective_priority(j, now, aging_s) for j in jobs]
    order = sorted(range(len(jobs)), key=lambda k: (-prio[k], jobs[k].submitted_at))
    for k in order[max_jobs:]:
        result.unplaced.append((jobs[k].id, f"not considered: only {max_jobs} jobs per round"))
    order = order[:max_jobs]
    jobs = [jobs[k] for k in order]
    prio = [prio[k] for k in order]

    pairs, gain = round_gains(up, jobs, prio, cost_weight)
    result.variables = len(pairs)
    base = ClusterView(tuple(up), view.now, view.running)
    greedy, greedy_value = _greedy(base, jobs, pairs, gain)
    chosen = greedy
    placeable = {jk for jk, _ in pairs}
    if pairs and (always_solve or cost_weight > 0 or len(greedy) < len(placeable)):
        result.method = "highs"
        # the greedy plan is not provably optimal: solve the program, keep the better plan
        # the limit covers the whole round, not only the solver
        left = max(0.05, 0.9 * time_limit_s - (time.perf_counter() - t0))
        res = _solve(up, jobs, pairs, gain, left, mip_rel_gap)
        result.status = {0: "optimal", 1: "time_limit", 2: "infeasible"}.get(res.status, "error")
        bound = getattr(res, "mip_dual_bound", None)
        if res.x is not None:
            plan = _exact(base, jobs, [pairs[v] for v in np.flatnonzero(res.x > 0.5)])
            gain_of = dict(zip(pairs, gain, strict=True))
            value = sum(gain_of[(jk, i)] for jk, i, _ in plan)
            if value >= greedy_value - 1e-12:
                chosen, greedy_value = plan, value
        elif result.status == "optimal":
            result.status = "error"
        result.objective = greedy_value
        if bound is not None and math.isfinite(bound) and abs(bound) > 1e-12:
            result.gap = max(0.0, (-bound - greedy_value) / abs(bound))
        elif result.status != "optimal":
            result.gap = math.inf
        if result.status == "optimal":
            result.gap = min(result.gap, float(mip_rel_gap))
    else:
        # every job that fits somewhere was placed: nothing can beat that when cost is not weighed
        result.objective = greedy_value
    placed_ids = set()
    for jk, i, gids in chosen:
        j = jobs[jk]
        placed_ids.add(j.id)
        result.placements.append(Placement(j.id, up[i].id, gids))
    dropped = {j for j, _ in result.unplaced}
    for jk, j in enumerate(jobs):
        if j.id in placed_ids or j.id in dropped:
            continue
        if jk not in placeable:
            result.unplaced.append((j.id, "does not fit any node's free resources now"))
        else:
            result.unplaced.append((j.id, "does not fit beside the jobs placed this round"))
    _account(result, view, jobs)
    result.solve_s = time.perf_counter() - t0
    return result


def _solve(up, jobs, pairs, gain, time_limit_s, mip_rel_gap):  # noqa: ANN001, ANN202
    """The integer program through scipy.optimize.milp (HiGHS)."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    nv = len(pairs)
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    ub: list[float] = []
    node_row: dict[int, int] = {}
    for i, n in enumerate(up):
        node_row[i] = len(ub)
        ub += [
            n.free.cpus,
            n.free.mem_mb / 1024.0,
            float(len(n.free_gpu_ids)),
            sum(n.gpu_free_mem_mb) / 1024.0,
        ]
    job_row0 = len(ub)
    ub += [1.0] * len(jobs)
    share_nodes = {i for jk, i in pairs if jobs[jk].request.is_gpu_share}
    for v, (jk, i) in enumerate(pairs):
        r = jobs[jk].request
        base = node_row[i]
        per = up[i].gpu_mem_per_gpu_mb
        gmem = r.gpus * per if r.gpus else r.gpu_mem_mb
        for off, val in ((0, r.cpus), (1, r.mem_mb / 1024.0), (2, r.gpus), (3, gmem / 1024.0)):
            # the GPU-memory row only matters where shares compete; without them it is a
            # multiple of the GPU row, which confuses HiGHS's presolve
            if val and (off != 3 or i in share_nodes):
                rows.append(base + off)
                cols.append(v)
                vals.append(float(val))
        rows.append(job_row0 + jk)
        cols.append(v)
        vals.append(1.0)
    a = coo_matrix((vals, (rows, cols)), shape=(len(ub), nv)).tocsr()
    with _solver_stdout():
        return milp(
            c=-np.asarray(gain),
            integrality=np.ones(nv),
            bounds=Bounds(0, 1),
            constraints=LinearConstraint(a, -np.inf, np.asarray(ub)),
            options={
                "time_limit": float(time_limit_s),
                "mip_rel_gap": float(mip_rel_gap),
                "disp": False,
            },
        )


def _exact(
    base: ClusterView, jobs: Sequence[JobRequest], chosen: Sequence[tuple[int, int]]
) -> list[tuple[int, int, tuple[int, ...]]]:
    """GPU indices for the solver's choice: whole-GPU jobs first, then shares by size (best
    fit); a share that finds no single GPU with room is left out."""
    state = RoundState(base)
    out = []
    for jk, i in sorted(
        chosen, key=lambda p: (-jobs[p[0]].request.gpus, -jobs[p[0]].request.gpu_mem_mb, p[0])
    ):
        r = jobs[jk].request
        if not state.feasible(r)[i]:
            continue
        gids = state.pick_gpus(i, r)
        if gids is None:
            continue
        state.place(i, jobs[jk], gids)
        out.append((jk, i, gids))
    return out


def _greedy(
    base: ClusterView,
    jobs: Sequence[JobRequest],
    pairs: Sequence[tuple[int, int]],
    gain: Sequence[float],
) -> tuple[list[tuple[int, int, tuple[int, ...]]], float]:
    """A fast feasible plan: jobs by best gain (largest first), each on its best-gain node that
    still fits (ties: best fit). Also the incumbent the solver must beat."""
    by_job: dict[int, list[tuple[float, int]]] = {}
    for (jk, i), g in zip(pairs, gain, strict=True):
        if g > 0:
            by_job.setdefault(jk, []).append((g, i))
    state = RoundState(base)
    out = []
    value = 0.0
    for jk in sorted(by_job, key=lambda k: (-max(g for g, _ in by_job[k]), k)):
        r = jobs[jk].request
        if not state.might_fit(r):
            continue
        ok = state.feasible(r)
        left = state.leftover(r)
        cands = [(-g, left[i], i) for g, i in by_job[jk] if ok[i]]
        for neg_g, _, i in sorted(cands):
            gids = state.pick_gpus(i, r)
            if gids is not None:
                state.place(i, jobs[jk], gids)
                out.append((jk, i, gids))
                value -= neg_g
                break
    return out, value


def _account(result: PlanResult, view: ClusterView, jobs: Sequence[JobRequest]) -> None:
    """Utilization per resource after the round and the hourly cost of what runs and is placed."""
    up = [n for n in view.nodes if n.is_up]
    by_id = {j.id: j for j in jobs}
    nodes = {n.id: n for n in up}
    used_c = sum(n.capacity.cpus - n.free.cpus for n in up)
    used_m = sum(n.capacity.mem_mb - n.free.mem_mb for n in up)
    used_g = sum(n.capacity.gpus - len(n.free_gpu_ids) for n in up)
    cost = 0.0
    for run in view.running:
        n = nodes.get(run.node_id)
        if n is not None:
            cost += allocation_price_per_hour(run.request, n.capacity, _node_prices(n))
    for p in result.placements:
        r = by_id[p.job_id].request
        n = nodes[p.node_id]
        used_c += r.cpus
        used_m += r.mem_mb
        used_g += r.gpus
        cost += allocation_price_per_hour(r, n.capacity, _node_prices(n))
    result.utilization = {
        "cpu": (float(used_c), float(sum(n.capacity.cpus for n in up))),
        "gpu": (float(used_g), float(sum(n.capacity.gpus for n in up))),
        "mem_gb": (used_m / 1024.0, sum(n.capacity.mem_mb for n in up) / 1024.0),
    }
    total = sum(n.price_per_hour for n in up)
    result.cost_per_hour = cost
    result.idle_cost_per_hour = max(0.0, total - cost)


class ILPPolicy:
    """Solve the round's integer program at every decision point ("ilp")."""

    name = "ilp"

    def __init__(
        self,
        *,
        cost_weight: float = 0.0,
        time_limit_s: float = 1.0,
        mip_rel_gap: float = 1e-4,
        aging_s: float | None = 3600.0,
        max_jobs: int = 200,
    ) -> None:
        if cost_weight < 0 or time_limit_s <= 0:
            raise ValueError("cost_weight must be >= 0 and time_limit_s > 0")
        self.cost_weight = cost_weight
        self.time_limit_s = time_limit_s
        self.mip_rel_gap = mip_rel_gap
        self.aging_s = aging_s
        self.max_jobs = max_jobs
        self.last: PlanResult | None = None
        self.gaps: list[float] = []
        self._reasons: dict[JobId, str] = {}

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        """Place what the round's integer program chooses."""
        res = plan_round(
            view,
            pending,
            now,
            cost_weight=self.cost_weight,
            time_limit_s=self.time_limit_s,
            mip_rel_gap=self.mip_rel_gap,
            aging_s=self.aging_s,
            max_jobs=self.max_jobs,
        )
        self.last = res
        self.gaps.append(res.gap)
        self._reasons = {j: f"waiting: {why}" for j, why in res.unplaced}
        self._reasons.update({j: f"unschedulable: {why}" for j, why in res.unschedulable})
        for p in res.placements:
            gpus = f" (GPU {','.join(map(str, p.gpu_ids))})" if p.gpu_ids else ""
            self._reasons[p.job_id] = (
                f"placed on {p.node_id}{gpus}: chosen by the round's integer program "
                f"({res.status}, gap {res.gap:.2%})"
            )
        return res.placements

    def explain(self, job_id: JobId) -> str:
        """The last round's reason for this job."""
        return self._reasons.get(job_id, "not seen in the last scheduling round")
