"""Candidates are feasible and obey the guard rails; the environment's reward is minus slowdown."""

from __future__ import annotations

import numpy as np
import pytest

from scheduler.environment import SchedulingEnv, summarize
from scheduler.features import FEATURE_NAMES, NUM_FEATURES, TAU_S, WAIT, Round, RoundConfig
from scheduler.model import ClusterView, JobRequest, NodeView, Resources, RunningJob
from scheduler.simulator import Simulator
from scheduler.workloads import deeprm, lab_mix

GPU_NODE = Resources(32.0, 262144, 4, 4 * 81920)
CPU_NODE = Resources(16.0, 65536, 0, 0)


def job(i, cpus=4.0, mem=8192, gpus=0, share=0, est=600.0, prio=0.0, at=0.0):
    return JobRequest(i, Resources(cpus, mem, gpus, share), est, prio, at)


def random_view(rng: np.random.Generator) -> tuple[ClusterView, list[JobRequest]]:
    nodes = []
    for n in range(int(rng.integers(1, 6))):
        cap = GPU_NODE if rng.random() < 0.6 else CPU_NODE
        view = NodeView.empty(f"n{n}", cap, price_per_hour_or_none(rng))
        for _ in range(int(rng.integers(0, 4))):
            r = random_request(rng, cap)
            g = view.pick_gpus(r)
            if g is not None:
                view = view.allocate(r, g)
        nodes.append(view)
    pending = [
        JobRequest(
            k,
            random_request(rng, GPU_NODE),
            float(rng.uniform(10, 7200)),
            float(rng.integers(-1, 2)),
            float(rng.uniform(0, 100)),
        )
        for k in range(int(rng.integers(1, 80)))
    ]
    return ClusterView(tuple(nodes), 200.0), pending


def price_per_hour_or_none(rng):
    return float(rng.uniform(0, 20)) if rng.random() < 0.5 else None


def random_request(rng, cap) -> Resources:
    kind = rng.integers(3)
    if kind == 0 or cap.gpus == 0:
        return Resources(float(rng.integers(1, 12)), int(rng.integers(1, 64)) * 1024, 0)
    if kind == 1:
        return Resources(float(rng.integers(1, 8)), 16384, int(rng.integers(1, 4)))
    return Resources(2.0, 8192, 0, int(rng.integers(4096, 40960)))


def test_every_candidate_is_feasible_and_rows_match():
    rng = np.random.default_rng(7)
    for _ in range(60):
        view, pending = random_view(rng)
        rnd = Round(view, pending, view.now, RoundConfig(k=8))
        while True:
            c = rnd.candidates()
            assert c.x.shape == (len(c), NUM_FEATURES)
            assert c.jobs[-1] == WAIT and c.x[-1, -1] == 1.0
            assert np.isfinite(c.x).all()
            nodes = {n.id: n for n in rnd.view.nodes}
            for i in range(len(c) - 1):
                j = rnd.window[int(c.jobs[i])]
                assert rnd.state.feasible(j.request)[int(c.nodes[i])]
            if len(c) == 1:
                break
            # take a random pair; replay all placements on the original nodes: never over-commits
            rnd.place(c, int(rng.integers(len(c) - 1)))
        for p in rnd.placed:
            nodes[p.node_id] = nodes[p.node_id].allocate(
                next(j for j in pending if j.id == p.job_id).request, p.gpu_ids
            )
        for n in nodes.values():
            assert n.free.cpus >= -1e-9 and n.free.mem_mb >= 0


def test_priority_first_and_wait_forbidden_on_idle_cluster():
    view = ClusterView((NodeView.empty("a", GPU_NODE),), 100.0)
    pending = [job(1, prio=0.0), job(2, prio=1.0, at=50.0), job(3, prio=0.0, est=20.0)]
    rnd = Round(view, pending, 100.0)
    c = rnd.candidates()
    assert {rnd.window[int(j)].id for j in c.jobs[:-1]} == {2}
    assert not c.wait_allowed and not c.mask[-1]


def test_aging_lifts_an_old_job_to_the_top_level():
    view = ClusterView((NodeView.empty("a", GPU_NODE),), 10_000.0)
    pending = [job(1, prio=0.0, at=0.0), job(2, prio=1.0, at=9_000.0)]
    rnd = Round(view, pending, 10_000.0, RoundConfig(aging_s=3600.0))
    c = rnd.candidates()  # job 1 has waited 2.8 h: two levels up, above job 2
    assert {rnd.window[int(j)].id for j in c.jobs[:-1]} == {1}


def test_starving_head_is_protected_on_its_reserved_node():
    cap = Resources(8.0, 65536, 2, 2 * 40960)
    busy = NodeView.empty("a", cap).allocate(Resources(4.0, 8192, 1), (0,))
    running = (RunningJob("r", "a", Resources(4.0, 8192, 1), (0,), 0.0, 100_500.0),)
    view = ClusterView((busy,), 100_000.0, running)
    head = job("old", cpus=4.0, gpus=2, at=0.0, est=600.0)  # waited 27 h: starving
    short = job("short", cpus=1.0, gpus=1, at=99_000.0, est=100.0)  # ends before the reservation
    long_ = job("long", cpus=1.0, gpus=1, at=99_000.0, est=5000.0)  # would delay the head
    rnd = Round(view, [head, short, long_], view.now)
    c = rnd.candidates()
    ids = {rnd.window[int(j)].id for j in c.jobs[:-1]}
    assert ids == {"short"}
    assert rnd.head_id == "old" and rnd.t_res == pytest.approx(100_500.0)


def test_env_return_is_minus_total_slowdown_and_deterministic():
    wl = deeprm(60, load=1.1, seed=3, num_nodes=2)
    returns = []
    for _ in range(2):
        env = SchedulingEnv(wl, reward_scale=1.0)
        obs, info = env.reset(seed=0)
        total, done, rng = info["reward_before"], False, np.random.default_rng(1)
        while not done:
            legal = np.flatnonzero(obs.mask)
            obs, r, done, trunc, info = env.step(int(rng.choice(legal)))
            total += r
            assert not trunc
        res = env.result()
        assert len(res.finished) == 60
        expect = sum((f.end_s - f.submit_s) / max(f.runtime_s, TAU_S) for f in res.finished)
        assert total == pytest.approx(-expect, rel=1e-9)
        returns.append(total)
    assert returns[0] == returns[1]


def test_env_rejects_illegal_actions():
    env = SchedulingEnv(lab_mix(30, 1.0, 2, nodes=2))
    obs, _ = env.reset()
    with pytest.raises(ValueError):
        env.step(len(obs) + 3)


def test_teacher_replay_in_env_matches_the_heuristic_run():
    from scheduler.heuristics import SJFPolicy

    wl = deeprm(80, load=1.0, seed=5, num_nodes=2)
    env = SchedulingEnv(wl)
    obs, _ = env.reset()
    done = False
    while not done:
        a = env.teacher_action(SJFPolicy())
        assert a is not None
        obs, _, done, _, _ = env.step(a)
    ours = summarize(env.result()).avg_bsld
    theirs = summarize(Simulator(wl).run(SJFPolicy())).avg_bsld
    assert ours == pytest.approx(theirs, rel=0.05)


def test_wait_holds_the_reserved_node_for_the_head():
    cap = Resources(8.0, 65536, 2, 2 * 40960)
    busy = NodeView.empty("a", cap).allocate(Resources(4.0, 8192, 1), (0,))
    running = (RunningJob("r", "a", Resources(4.0, 8192, 1), (0,), 0.0, 4000.0),)
    view = ClusterView((busy,), 10.0, running)
    head = job("big", cpus=4.0, gpus=2, at=0.0)
    short = job("short", cpus=1.0, gpus=1, at=5.0, est=100.0)
    long_ = job("long", cpus=1.0, gpus=1, at=6.0, est=9000.0)
    rnd = Round(view, [head, short, long_], view.now)
    c = rnd.candidates()
    assert rnd.head_id == "big" and c.wait_allowed
    assert {rnd.window[int(j)].id for j in c.jobs[:-1]} == {"short", "long"}
    assert rnd.place(c, len(c) - 1) is None  # wait: hold node a for "big"
    c = rnd.candidates()
    assert {rnd.window[int(j)].id for j in c.jobs[:-1]} == {"short"}
    # holding already: waiting now ends the round (something runs, so a finish brings another)
    assert c.wait_allowed and c.x[-1, FEATURE_NAMES.index("wait_ends")] == 1.0
    assert rnd.place(c, len(c) - 1) is None and rnd.ended
    assert len(rnd.candidates()) == 1 and not rnd.wants_next_window()
    # with nothing that could delay the head, waiting ends the round at once
    rnd = Round(view, [head, short], view.now)
    c = rnd.candidates()
    assert c.wait_allowed and c.x[-1, FEATURE_NAMES.index("wait_ends")] == 1.0


def test_waiting_is_refused_on_an_idle_cluster_and_for_a_starving_job():
    cap = Resources(8.0, 65536, 2, 2 * 40960)
    idle = ClusterView((NodeView.empty("a", cap),), 10.0, ())
    rnd = Round(idle, [job("x", cpus=1.0)], idle.now)
    assert not rnd.candidates().wait_allowed  # nothing runs: no later event would wake it
    busy = NodeView.empty("a", cap).allocate(Resources(1.0, 1024, 0), ())
    running = (RunningJob("r", "a", Resources(1.0, 1024, 0), (), 0.0, 500.0),)
    now = 200_000.0
    view = ClusterView((busy,), now, running)
    old = job("old", cpus=1.0, at=0.0)  # waited more than a day
    rnd = Round(view, [old], now)
    c = rnd.candidates()
    assert not c.wait_allowed and {rnd.window[int(j)].id for j in c.jobs[:-1]} == {"old"}


def test_the_teacher_keeps_room_for_short_jobs():
    cap = Resources(10.0, 65536, 0)
    node = NodeView.empty("a", cap).allocate(Resources(4.0, 1024, 0), ())
    # a long job runs on 4 of 10 CPUs: 40 %, the limit
    running = (RunningJob("r", "a", Resources(4.0, 1024, 0), (), 0.0, 50_000.0),)
    view = ClusterView((node,), 10.0, running)
    long_ = job("long", cpus=1.0, at=0.0, est=7200.0)
    short = job("short", cpus=1.0, at=5.0, est=600.0)
    teacher = FEATURE_NAMES.index("teacher_choice")
    rnd = Round(view, [long_, short], view.now)
    c = rnd.candidates()
    picked = [rnd.window[int(c.jobs[i])].id for i in np.flatnonzero(c.x[:-1, teacher])]
    assert picked == ["short"]
    row = {rnd.window[int(j)].id: c.x[i] for i, j in enumerate(c.jobs[:-1])}
    lc = FEATURE_NAMES.index("long_cpu_after")
    assert row["long"][lc] == pytest.approx(0.5) and row["short"][lc] == pytest.approx(0.4)
    assert c.x[-1, lc] == pytest.approx(0.4)
    # only the long job left: the teacher waits (the network may still place it)
    rnd = Round(view, [long_], view.now)
    c = rnd.candidates()
    assert c.x[-1, teacher] == 1.0 and len(c) == 2
    # no limit: SJF's pick
    rnd = Round(view, [long_], view.now, RoundConfig(long_share=None))
    c = rnd.candidates()
    assert c.x[0, teacher] == 1.0 and c.x[-1, teacher] == 0.0
    # the first long job may always start, however large
    empty = ClusterView((NodeView.empty("a", cap),), 10.0, ())
    big = job("big", cpus=9.0, at=0.0, est=7200.0)
    c = Round(empty, [big], empty.now).candidates()
    assert c.x[0, teacher] == 1.0


def _ids(rnd, c):
    return {rnd.window[int(j)].id for j in c.jobs[:-1]}


def test_starving_head_reserves_as_easy_on_one_node():
    # one 256-CPU node (the SWF benchmark's cluster): a starving head reserves it, and a job that
    # outlasts the reservation may still start where it leaves the head's resources untouched
    cap = Resources(256.0, 262144, 0, 0)
    node = NodeView.empty("n", cap).allocate(Resources(150.0, 1024, 0), ())
    node = node.allocate(Resources(50.0, 1024, 0), ())
    now = 100_000.0
    running = (
        RunningJob("r1", "n", Resources(150.0, 1024, 0), (), 0.0, now + 1000.0),
        RunningJob("r2", "n", Resources(50.0, 1024, 0), (), 0.0, now + 100_000.0),
    )
    view = ClusterView((node,), now, running)
    head = job("old", cpus=180.0, mem=1024, at=0.0, est=600.0)  # waited 27 h: starving
    beside = job("beside", cpus=20.0, mem=1024, at=99_000.0, est=5000.0)  # 20 <= 256-50-180
    wide = job("wide", cpus=40.0, mem=1024, at=99_001.0, est=5000.0)  # would delay the head
    short = job("short", cpus=30.0, mem=1024, at=99_002.0, est=100.0)  # ends before
    rnd = Round(view, [head, beside, wide, short], now)
    c = rnd.candidates()
    assert rnd.head_id == "old" and rnd.t_res == pytest.approx(now + 1000.0)
    assert rnd.extra[0] == pytest.approx(26.0)
    assert _ids(rnd, c) == {"beside", "short"}
    x = c.x[:-1, FEATURE_NAMES.index("delays_head")]
    assert not x.any()  # neither of them delays the head
    # once "beside" runs, only 6 CPUs are left beside the head: a second such job must wait
    more = job("more", cpus=10.0, mem=1024, at=99_003.0, est=5000.0)
    rnd = Round(view, [head, beside, wide, short, more], now)
    c = rnd.candidates()
    assert _ids(rnd, c) == {"beside", "short", "more"}
    i = next(i for i in range(len(c) - 1) if rnd.window[int(c.jobs[i])].id == "beside")
    rnd.place(c, i)
    assert rnd.extra[0] == pytest.approx(6.0)
    assert _ids(rnd, rnd.candidates()) == {"short"}


def test_a_job_beside_the_reservation_keeps_off_the_heads_gpus():
    cap = Resources(8.0, 65536, 4, 4 * 40960)
    busy = NodeView.empty("a", cap).allocate(Resources(4.0, 8192, 2), (0, 1))
    running = (RunningJob("r", "a", Resources(4.0, 8192, 2), (0, 1), 0.0, 100_500.0),)
    view = ClusterView((busy,), 100_000.0, running)
    head = job("old", cpus=2.0, gpus=3, at=0.0, est=600.0)  # starving; reserves GPUs 0, 1, 2
    long_ = job("long", cpus=1.0, gpus=1, at=99_000.0, est=5000.0)
    rnd = Round(view, [head, long_], view.now)
    c = rnd.candidates()
    assert rnd.res_gpus == frozenset({0, 1, 2})
    assert _ids(rnd, c) == {"long"}
    p = rnd.place(c, 0)
    assert p is not None and p.gpu_ids == (3,)  # not GPU 2, the lowest free one


def test_an_older_job_the_reservation_holds_back_does_not_block_younger_ones():
    # aging puts "older" a level above "beside" (12 h levels); "older" would delay the starving
    # head, so the reservation holds it back, and "beside", which fits beside the head, may start
    cap = Resources(256.0, 262144, 0, 0)
    node = NodeView.empty("n", cap).allocate(Resources(150.0, 1024, 0), ())
    node = node.allocate(Resources(50.0, 1024, 0), ())
    now = 100_000.0
    running = (
        RunningJob("r1", "n", Resources(150.0, 1024, 0), (), 0.0, now + 1000.0),
        RunningJob("r2", "n", Resources(50.0, 1024, 0), (), 0.0, now + 100_000.0),
    )
    view = ClusterView((node,), now, running)
    head = job("old", cpus=180.0, mem=1024, at=0.0, est=600.0)  # waited 27 h: starving
    older = job("older", cpus=40.0, mem=1024, at=50_000.0, est=5000.0)  # waited 13.9 h
    beside = job("beside", cpus=20.0, mem=1024, at=99_000.0, est=5000.0)
    rnd = Round(view, [head, older, beside], now)
    assert rnd.eff[[j.id for j in rnd.window].index("older")] == 1.0
    assert _ids(rnd, rnd.candidates()) == {"beside"}
