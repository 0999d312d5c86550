"""The simulator's and the heuristics' shortcuts (issue 18, second pass) give exactly what the
long way gives: the round state read from the simulator's node table, the "anything might fit?"
answer kept between events, the fragmentation carried from round to round, the reservation."""

from __future__ import annotations

import numpy as np

import scheduler.heuristics as heuristics
from scheduler.bench import make_workload
from scheduler.fragmentation import RoundFragmentation
from scheduler.heuristics import RoundState, earliest_fit
from scheduler.model import ClusterView, JobRequest
from scheduler.registry import make_policy
from scheduler.simulator import Simulator, random_outages

ARRAYS = ("fc", "fm", "fg", "fpm", "cap_c", "cap_m", "cap_g", "per_gpu", "has_gpu", "idle")


def _sim(seed: int = 4) -> Simulator:
    wl = make_workload("lab", seed, jobs=400, nodes=6, load=1.2)
    horizon = max(j.submit_s for j in wl.jobs)
    return Simulator(wl, random_outages(wl.nodes, horizon, horizon / 2, 3600.0, seed=seed))


def test_round_state_from_the_node_table_equals_the_one_from_node_views() -> None:
    sim, policy, compared, partial = _sim(), make_policy("backfill"), 0, 0
    while sim.advance():
        view = sim.view()
        fast = RoundState(view)
        slow = RoundState(ClusterView(view.nodes, view.now, view.running))
        assert fast.ids == slow.ids and fast.models == slow.models
        assert fast.free_ids == slow.free_ids and fast.gmem == slow.gmem
        for name in ARRAYS:
            assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
        assert fast.max_price == slow.max_price
        compared += 1
        partial += len(fast.ids) < len(view.nodes)
        if sim.worth_deciding():
            sim.apply(policy.decide(view, sim.pending(), sim.now))
    assert compared > 500 and partial > 0  # outages took nodes out of some rounds


def test_worth_deciding_kept_between_events_equals_a_full_check() -> None:
    sim, policy, answers = _sim(5), make_policy("sjf"), set()
    while sim.advance():
        table = sim.view().node_table  # type: ignore[attr-defined]
        up = table[:, 4] > 0
        pending = sim.pending()
        if up.any() and len(pending):
            most = table[up].max(axis=0)
            sub = pending.table[pending.rows]
            full = bool(
                (
                    (sub[:, 0] <= most[0] + 1e-9)
                    & (sub[:, 1] <= most[1])
                    & (sub[:, 2] <= most[2])
                    & (sub[:, 3] <= most[3])
                ).any()
            )
        else:
            full = False
        assert sim.worth_deciding() == full
        answers.add(full)
        if full:
            sim.apply(policy.decide(sim.view(), pending, sim.now))
    assert answers == {True, False}


def test_fragmentation_carried_between_rounds_equals_a_fresh_one(monkeypatch) -> None:
    carried = heuristics.HeuristicPolicy._fragmentation
    checked = []

    def both(self, state: RoundState) -> RoundFragmentation:
        frag = carried(self, state)
        fresh = RoundFragmentation(state, self._mix.mix(), self._bits)
        for name in ("small", "big", "total", "frag"):
            assert np.array_equal(getattr(frag.cache, name), getattr(fresh.cache, name)), name
        assert np.array_equal(frag.left, fresh.left)
        checked.append(frag)
        return frag

    monkeypatch.setattr(heuristics.HeuristicPolicy, "_fragmentation", both)
    for name in ("backfill", "tetris"):
        _sim(6).run(make_policy(name))
    carried_over = sum(a is b for a, b in zip(checked, checked[1:], strict=False))
    assert len(checked) > 100 and carried_over > 50


def _earliest_fit_by_hand(view: ClusterView, job: JobRequest, now: float):
    """The reservation the long way: every node, every release, no shortcut."""
    best = None
    r = job.request
    for n in view.nodes:
        if not n.is_up or r.cpus > n.capacity.cpus or r.mem_mb > n.capacity.mem_mb:
            continue
        if r.gpus > n.capacity.gpus:
            continue
        rel = sorted(
            (
                (max(x.est_end, now), x.request, x.gpu_ids)
                for x in view.running
                if x.node_id == n.id
            ),
            key=lambda x: x[0],
        )
        free_now = set(n.free_gpu_ids)
        free, gmem, per = set(n.free_gpu_ids), list(n.gpu_free_mem_mb), n.gpu_mem_per_gpu_mb
        cpus, mem, t = n.free.cpus, n.free.mem_mb, now
        for k in range(len(rel) + 1):
            if k:
                t, req, gids = rel[k - 1]
                cpus, mem = cpus + req.cpus, mem + req.mem_mb
                for g in gids if req.gpus else ():
                    gmem[g], _ = per, free.add(g)
                if not req.gpus and req.gpu_mem_mb and gids:
                    gmem[gids[0]] += req.gpu_mem_mb
                    if gmem[gids[0]] >= per:
                        free.add(gids[0])
            if cpus + 1e-9 < r.cpus or mem < r.mem_mb:
                continue
            if r.gpus:
                if len(free) < r.gpus:
                    continue
                ids = tuple(sorted(sorted(free, key=lambda g: (g in free_now, g))[: r.gpus]))
            elif r.gpu_mem_mb:
                c = [g for g, m in enumerate(gmem) if m >= r.gpu_mem_mb]
                if not c:
                    continue
                ids = (min(c, key=lambda g: (g in free_now, gmem[g], g)),)
            else:
                ids = ()
            if best is None or t < best[0]:
                best = (t, n.id, ids)
            break
    return best


def test_the_reservation_equals_one_found_the_long_way() -> None:
    sim, policy, compared = _sim(7), make_policy("backfill"), 0
    while sim.advance():
        if not sim.worth_deciding():
            continue
        view, pending = sim.view(), sim.pending()
        for job in list(pending)[:6]:
            assert earliest_fit(view, job, sim.now) == _earliest_fit_by_hand(view, job, sim.now)
            compared += 1
        sim.apply(policy.decide(view, pending, sim.now))
    assert compared > 1000


def test_a_later_dqn_window_sees_the_view_allocate_would_give(monkeypatch) -> None:
    from scheduler import features

    fast = features.Round._view_from_state
    compared = []

    def both(self):
        view = fast(self)
        # the long way: this window's placements allocated onto the window's own view
        slow = features.Round.view.fget(self)  # type: ignore[attr-defined]
        jobs = {j.id: j for j in self.window}
        nodes = {n.id: n for n in slow.nodes}
        running = list(slow.running)
        for p in self.placed:
            job = jobs[p.job_id]
            nodes[p.node_id] = nodes[p.node_id].allocate(job.request, p.gpu_ids)
            running.append(
                features.RunningJob(
                    p.job_id, p.node_id, job.request, p.gpu_ids, self.now,
                    self.now + job.est_runtime_s,
                )
            )  # fmt: skip
        assert view.nodes == tuple(nodes[n.id] for n in slow.nodes)
        assert view.running == tuple(running)
        compared.append(len(self.placed))
        return view

    monkeypatch.setattr(features.Round, "_view_from_state", both)
    wl = make_workload("lab", 3, jobs=500, nodes=8, load=1.4)
    Simulator(wl).run(make_policy("dqn"))
    assert len(compared) > 20
