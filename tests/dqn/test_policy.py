"""The numpy run-time policy: feasible, torch-free, same scores as torch, fallback, explanations."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from scheduler.features import NUM_FEATURES, TEACHER, Round, RoundConfig, ShapeBook
from scheduler.heuristics import SJFPolicy
from scheduler.model import ClusterView, JobRequest, NodeView, Resources, RunningJob
from scheduler.policy import DEFAULT_WEIGHTS, DQNPolicy, QNetwork, load_weights, save_weights
from scheduler.simulator import Simulator
from scheduler.workloads import deeprm, lab_mix
from tests.dqn.test_features_env import random_view

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def small_net(seed: int = 0) -> QNetwork:
    rng = np.random.default_rng(seed)
    return QNetwork(
        [
            (rng.normal(size=(NUM_FEATURES, 16)), rng.normal(size=16)),
            (rng.normal(size=(16, 16)), rng.normal(size=16)),
            (rng.normal(size=(16, 1)), rng.normal(size=1)),
        ]
    )


def test_numpy_and_torch_give_the_same_scores():
    torch = pytest.importorskip("torch")
    from scheduler.agent import make_network, numpy_network

    torch.manual_seed(3)
    net = make_network(32)
    view, pending = random_view(np.random.default_rng(11))
    x = Round(view, pending, view.now).candidates().x
    with torch.no_grad():
        expect = net(torch.as_tensor(x)).squeeze(-1).numpy()
    assert np.allclose(numpy_network(net).scores(x), expect, atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_random_weights_never_overcommit_and_finish_every_job(seed):
    # the simulator raises InvalidPlacement on any over-commit; random weights stress the masks
    policy = DQNPolicy.from_network(small_net(seed))
    wl = (
        lab_mix(120, 1.2, seed, nodes=3)
        if seed % 2
        else deeprm(120, load=1.2, seed=seed, num_nodes=3)
    )
    res = Simulator(wl).run(policy)
    assert len(res.finished) == len(wl.jobs) and not res.unfinished


def test_cpu_only_nodes_and_any_cluster_size():
    policy = DQNPolicy.from_network(small_net())
    for n_nodes in (1, 7, 64):
        nodes = {
            f"c{i}": NodeView.empty(f"c{i}", Resources(16.0, 65536, 0)) for i in range(n_nodes)
        }
        pending = [JobRequest(i, Resources(4.0, 4096, 0), 60.0, 0.0, 0.0) for i in range(200)]
        out = policy.decide(ClusterView(tuple(nodes.values()), 0.0), pending, 0.0)
        assert out, "an idle cluster never waits when work fits"
        assert len({p.job_id for p in out}) == len(out)
        for p in out:  # raises on any over-commit
            assert p.gpu_ids == ()
            nodes[p.node_id] = nodes[p.node_id].allocate(pending[p.job_id].request, p.gpu_ids)


def test_missing_or_broken_weights_fall_back_to_backfill(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="scheduler.policy"):
        pol = DQNPolicy(tmp_path / "nope.npz")
    assert pol.is_fallback and len(caplog.records) == 1
    assert "falling back to EASY backfilling" in caplog.records[0].getMessage()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    assert DQNPolicy(bad).is_fallback
    wl = deeprm(40, load=1.0, seed=1, num_nodes=1)
    res = Simulator(wl).run(pol)
    assert len(res.finished) == 40
    assert pol.explain(0).startswith("dqn weights unavailable, EASY backfilling")


def test_weights_round_trip(tmp_path):
    net = small_net(5)
    path = tmp_path / "w.npz"
    from scheduler.features import RoundConfig

    save_weights(path, net.layers, RoundConfig(k=12), {"seed": 5})
    loaded, cfg, meta = load_weights(path)
    x = np.random.default_rng(0).normal(size=(9, NUM_FEATURES)).astype(np.float32)
    assert np.array_equal(loaded.scores(x), net.scores(x))
    assert cfg.k == 12 and meta["seed"] == 5


def test_explain_placed_and_waiting_jobs():
    cap = Resources(8.0, 65536, 2, 2 * 40960)
    busy = NodeView.empty("a", cap).allocate(Resources(4.0, 8192, 1), (0,))
    view = ClusterView(
        (busy,), 10.0, (RunningJob("r", "a", Resources(4.0, 8192, 1), (0,), 0.0, 4000.0),)
    )
    pending = [
        JobRequest("big", Resources(4.0, 8192, 2), 600.0, 0.0, 0.0),
        JobRequest("small", Resources(1.0, 1024, 1), 60.0, 0.0, 5.0),
    ]
    pol = DQNPolicy.from_network(small_net(1))
    out = pol.decide(view, pending, 10.0)
    assert "big" not in {p.job_id for p in out}
    assert pol.explain("big").startswith("waiting for 4 CPU, 8 GB, 2 GPU; first in line, a frees")
    why = pol.explain("small")
    if out:
        assert why.startswith("placed on a (GPU 1): best score")
    else:
        assert why.startswith("waiting: fits on a, but the policy chose to wait")
    assert "not among the jobs considered" in pol.explain("unknown")
    # following the teacher: the reason says so and gives the network's own scores, not the bonus
    pol = DQNPolicy.from_network(small_net(1), teacher_bonus=1000.0)
    out = pol.decide(view, pending, 10.0)
    assert out and pol.explain(out[0].job_id).startswith(f"placed on {out[0].node_id}")
    assert "SJF's pick" in pol.explain(out[0].job_id)
    assert "1000" not in pol.explain(out[0].job_id)


def test_shipped_weights_load_and_are_small():
    assert DEFAULT_WEIGHTS.exists(), "scheduler/weights/dqn.npz must ship with the package"
    assert DEFAULT_WEIGHTS.stat().st_size < 1_000_000
    pol = DQNPolicy()
    assert not pol.is_fallback
    side = json.loads(DEFAULT_WEIGHTS.with_suffix(".json").read_text())
    assert side["command"].startswith("lepton-tui train") and "seed" in side
    from scheduler.registry import make_policy

    assert isinstance(make_policy("dqn"), DQNPolicy)


def test_cost_weight_prefers_the_cheaper_node():
    cheap = NodeView.empty("cheap", Resources(16.0, 65536, 2, 2 * 40960), 1.0)
    dear = NodeView.empty("dear", Resources(16.0, 65536, 2, 2 * 40960), 10.0)
    job = JobRequest(1, Resources(2.0, 1024, 1), 60.0, 0.0, 0.0)
    for order in ((cheap, dear), (dear, cheap)):
        pol = DQNPolicy.from_network(small_net(2))
        pol.cost_weight = 1000.0
        (p,) = pol.decide(ClusterView(order, 0.0), [job], 0.0)
        assert p.node_id == "cheap"
    with pytest.raises(ValueError):
        DQNPolicy(cost_weight=-1.0)


def test_a_large_teacher_bonus_makes_the_policy_follow_sjf():
    from scheduler.heuristics import SJFPolicy

    rng = np.random.default_rng(21)
    agree = 0
    for _ in range(40):
        view, pending = random_view(rng)
        ours = DQNPolicy.from_network(small_net(3), teacher_bonus=1e6).decide(
            view, pending, view.now
        )
        sjf = SJFPolicy().decide(view, pending, view.now)
        assert bool(ours) == bool(sjf)
        if sjf:
            assert (ours[0].job_id, ours[0].node_id) == (sjf[0].job_id, sjf[0].node_id)
            agree += 1
    assert agree > 20


def _reference_decide(policy: DQNPolicy, view, pending, now):
    """The round as it was first written: every window rebuilt from a fresh view of the cluster
    with the earlier windows' placements applied (no state carried between windows)."""
    shapes = ShapeBook() if policy.shapes is not None else None
    rnd = Round(view, pending, now, policy.config, shapes=shapes)
    out = []
    passed: set = set()
    while True:
        cands = rnd.candidates()
        if len(cands) <= 1 and rnd.wants_next_window():
            placed = {p.job_id for p in out}
            if rnd.ended:  # passed over: its jobs are not looked at again this round
                passed |= {j.id for k, j in enumerate(rnd.window) if rnd.alive[k]}
            rest = [j for j in pending if j.id not in placed and j.id not in passed]
            rnd = Round(
                rnd.view_after(), rest, now, policy.config, holding=rnd.holding, shapes=shapes
            )
            continue
        if len(cands) <= 1:
            return out
        q = policy.net.scores(cands.x)
        if policy.teacher_bonus:
            q += policy.teacher_bonus * cands.x[:, TEACHER]
        if not cands.wait_allowed:
            q[-1] = -np.inf
        p = rnd.place(cands, int(np.argmax(q)))
        if p is not None:
            out.append(p)


@pytest.mark.parametrize("shipped", [False, True])
def test_windows_carried_over_decide_exactly_as_rebuilt_ones(shipped):
    # the round keeps its fit and leftover matrices current column by column and carries the
    # node state into the next window; decisions must match rebuilding everything from the view
    rng = np.random.default_rng(5)
    for seed in range(40):
        view, pending = random_view(rng)
        policy = DQNPolicy(k=8) if shipped else DQNPolicy.from_network(small_net(seed))
        policy.config = type(policy.config)(k=8)
        got = policy.decide(view, pending, view.now)
        want = _reference_decide(policy, view, pending, view.now)
        assert got == want, seed


def test_round_matrices_stay_equal_to_a_fresh_computation():
    rng = np.random.default_rng(8)
    for _ in range(20):
        view, pending = random_view(rng)
        rnd = Round(view, pending, view.now)
        st = rnd.state
        while True:
            cands = rnd.candidates()
            if len(cands) <= 1:
                break
            rnd.place(cands, 0)
            assert np.array_equal(rnd._fit, st.fit_matrix(rnd.req))
            fresh = Round(rnd.view_after(), pending, view.now)  # same nodes, fresh arrays
            assert np.array_equal(fresh.state.fc, st.fc) and np.array_equal(fresh.state.fg, st.fg)
            nn = len(st.nodes)
            left = (
                (st.fc[None, :] - rnd.req[:, 0:1]) / st.cap_c[None, :]
                + (st.fm[None, :] - rnd.req[:, 1:2]) / st.cap_m[None, :]
                + np.where(
                    st.has_gpu[None, :], (st.fg[None, :] - rnd._gfrac) / st.cap_g[None, :], 0.0
                )
                + 1e-9 * np.arange(nn)[None, :]
            )
            assert np.array_equal(rnd._left, left)


def test_window_edges_decide_as_rebuilt_ones():
    from scheduler.features import RoundConfig

    node = NodeView.empty("n0", Resources(8.0, 65536, 0), None)
    view = ClusterView((node,), 100.0)
    policy = DQNPolicy.from_network(small_net(0), RoundConfig(k=2), teacher_bonus=1e6)
    # one id queued twice (a replayed trace can do that): placed once, like the rebuilt round
    twice = [JobRequest(1, Resources(1.0, 1024, 0), 60.0, 0.0, t) for t in (10.0, 20.0)]
    got = policy.decide(view, twice, 100.0)
    assert got == _reference_decide(policy, view, twice, 100.0) and len(got) == 1
    # a job that asks for nothing leaves its node idle in the carried state, as in a fresh one
    jobs = [JobRequest(k, Resources(0.0, 0, 0), 60.0, 0.0, float(k)) for k in range(3)]
    jobs += [JobRequest(10 + k, Resources(2.0, 2048, 0), 60.0, 0.0, 5.0 + k) for k in range(4)]
    two = ClusterView((node, NodeView.empty("n1", Resources(8.0, 65536, 0), 3.0)), 100.0)
    assert policy.decide(two, jobs, 100.0) == _reference_decide(policy, two, jobs, 100.0)


def _follow_teacher(config: RoundConfig | None = None) -> DQNPolicy:
    """A policy that always takes the teacher's row (a zero network, an overwhelming bonus)."""
    zero = QNetwork([(np.zeros((NUM_FEATURES, 1)), np.zeros(1))])
    return DQNPolicy.from_network(zero, config or RoundConfig(), teacher_bonus=1e6)


def test_following_the_teacher_places_what_sjf_with_the_limit_places():
    cap = Resources(64.0, 524288, 8, 8 * 81920)
    idle = ClusterView((NodeView.empty("a", cap), NodeView.empty("b", cap)), 0.0, ())
    # eight long jobs on an idle cluster: the first starts, then the limit holds (40 % of 16 GPUs)
    longs = [JobRequest(i, Resources(8.0, 65536, 2), 8 * 3600.0, 0.0, float(i)) for i in range(8)]
    want = SJFPolicy(long_share=0.4).decide(idle, longs, 0.0)
    got = _follow_teacher().decide(idle, longs, 0.0)
    assert [p.job_id for p in got] == [p.job_id for p in want] == [0, 1, 2]
    # a window of two: passing over the long job goes on to the next window's short job
    node = NodeView.empty("n", Resources(16.0, 65536, 0)).allocate(Resources(6.0, 1024, 0), ())
    running = (RunningJob("r", "n", Resources(6.0, 1024, 0), (), 0.0, 90_000.0),)
    view = ClusterView((node,), 100.0, running)
    queue = [
        JobRequest("L", Resources(4.0, 1024, 0), 7200.0, 0.0, 0.0),
        JobRequest("S1", Resources(1.0, 1024, 0), 60.0, 0.0, 1.0),
        JobRequest("S2", Resources(1.0, 1024, 0), 90.0, 0.0, 2.0),
    ]
    want = SJFPolicy(long_share=0.4).decide(view, queue, 100.0)
    pol = _follow_teacher(RoundConfig(k=2))
    got = pol.decide(view, queue, 100.0)
    assert {p.job_id for p in got} == {p.job_id for p in want} == {"S1", "S2"}
    why = pol.explain("L")
    assert why.startswith(
        "held back: fits on n, but with it long jobs (estimate over 1 h) would hold 62% of the "
        "CPUs, over the limit of 40% each; the rest is kept for short jobs"
    )
    assert "GPUs" not in why and "1000" not in why  # no GPUs here; the bonus is never shown
    assert _reference_decide(pol, view, queue, 100.0) == got


def test_a_policy_that_always_waits_still_finishes_every_job():
    # waiting that ends a round is refused while nothing runs, even where a node's free amounts
    # are not exactly its capacity (GPU memory not divisible by the GPU count, float CPUs)
    wait_w = np.zeros((NUM_FEATURES, 1))
    wait_w[-1, 0] = 1.0  # the is_wait feature: the wait row always scores best
    waiter = DQNPolicy.from_network(QNetwork([(wait_w, np.zeros(1))]))
    from scheduler.model import Job, Node, Workload

    odd = Node("g", Resources(8.0, 65536, 3, 100_000))
    jobs = [
        Job(0, Resources(0.1, 1024, 0), 0.0, 50.0, 50.0),
        Job(1, Resources(0.2, 1024, 1), 0.0, 80.0, 80.0),
        Job(2, Resources(0.5, 1024, 0, 20_000), 200.0, 30.0, 30.0),
        Job(3, Resources(7.9, 1024, 3), 400.0, 30.0, 7200.0),
    ]
    result = Simulator(Workload("odd", jobs, [odd])).run(waiter)
    assert sorted(j.id for j in result.finished) == [0, 1, 2, 3] and not result.unfinished


def test_a_replay_builds_no_reason_text_until_explain_asks(monkeypatch):
    # the words cost 15 % of a DQN replay when every round wrote them for every job
    from scheduler.bench import make_workload
    from scheduler.model import Resources as R
    from scheduler.simulator import Simulator

    calls = []
    describe = R.describe
    monkeypatch.setattr(R, "describe", lambda self: calls.append(1) or describe(self))
    wl = make_workload("lab", 4, jobs=150, nodes=2, load=1.2)
    pol = DQNPolicy()
    sim = Simulator(wl)
    waiting = None
    while sim.next_decision():
        sim.apply(pol.decide(sim.view(), sim.pending(), sim.now))
        if sim.pending_count >= 10 and waiting is None:
            waiting = sim.pending()[-1].id
            break
    assert waiting is not None and not calls
    assert pol.explain(waiting).startswith("waiting") and calls
