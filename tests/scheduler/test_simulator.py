"""The simulator's invariants under random workloads, outages and every policy."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.model import Job, Node, Placement, Resources, Workload
from scheduler.registry import LEARNED_POLICIES, POLICY_NAMES, make_policy
from scheduler.simulator import InvalidPlacement, NodeOutage, SimResult, Simulator, random_outages

POLICIES = [p for p in POLICY_NAMES if p not in LEARNED_POLICIES]


def check_invariants(wl: Workload, result: SimResult) -> None:
    """No node over capacity, no GPU given twice, every job finishes exactly once, time moves on."""
    ids = [r.id for r in result.finished]
    assert len(ids) == len(set(ids)), "a job finished twice"
    unsched = {j for j, _ in result.unschedulable}
    assert set(ids) | unsched == {j.id for j in wl.jobs}, "a job never finished"
    assert not set(ids) & unsched
    assert result.decision_times == sorted(result.decision_times), "time went back"
    completed = [a for a in result.attempts if a.completed]
    assert sorted(map(str, (a.job_id for a in completed))) == sorted(map(str, ids))
    jobs = {j.id: j for j in wl.jobs}
    for r in result.finished:
        assert r.start_s >= r.submit_s - 1e-9
        assert r.end_s == pytest.approx(r.start_s + jobs[r.id].runtime_s)
    nodes = {n.id: n for n in wl.nodes}
    by_node = defaultdict(list)
    for a in result.attempts:
        assert a.end_s >= a.start_s
        by_node[a.node_id].append(a)
    for o in result.outages:
        for a in by_node[o.node_id]:
            assert not (o.start_s < a.start_s < o.start_s + o.duration_s), "started on a down node"
    for node_id, atts in by_node.items():
        cap = nodes[node_id].capacity
        per = nodes[node_id].gpu_mem_per_gpu_mb
        for t in sorted({a.start_s for a in atts}):
            live = [a for a in atts if a.start_s <= t < a.end_s]
            assert sum(a.request.cpus for a in live) <= cap.cpus + 1e-6
            assert sum(a.request.mem_mb for a in live) <= cap.mem_mb
            whole = [g for a in live if a.request.gpus for g in a.gpu_ids]
            assert len(whole) == len(set(whole)), "a GPU was given twice"
            assert all(0 <= g < cap.gpus for g in whole)
            shares: dict[int, int] = defaultdict(int)
            for a in live:
                if a.request.is_gpu_share:
                    (g,) = a.gpu_ids
                    shares[g] += a.request.gpu_mem_mb
            for g, used in shares.items():
                assert used <= per and g not in whole, "a GPU share overflowed or met a whole GPU"


@st.composite
def workloads(draw):  # noqa: ANN001, ANN201
    nodes = []
    for k in range(draw(st.integers(1, 3))):
        gpus = draw(st.sampled_from([0, 2, 4]))
        per_gpu = draw(st.sampled_from([16384, 16384, 0]))  # 0: GPUs without memory (DeepRM's)
        nodes.append(Node(f"n{k}", Resources(8.0, 32768, gpus, gpus * per_gpu), float(k + 1)))
    jobs = []
    for i in range(draw(st.integers(1, 25))):
        gpus = draw(st.integers(0, 5))
        share = 0 if gpus else draw(st.sampled_from([0, 0, 4096, 12000, 20000]))
        runtime = float(draw(st.integers(1, 200)))
        est = runtime * draw(st.sampled_from([0.5, 1.0, 2.0]))
        jobs.append(
            Job(
                i,
                Resources(float(draw(st.integers(0, 9))), draw(st.integers(0, 40000)), gpus, share),
                float(draw(st.integers(0, 300))),
                runtime,
                est,
                float(draw(st.integers(-1, 1))),
            )
        )
    outages = [
        NodeOutage(
            f"n{draw(st.integers(0, len(nodes) - 1))}",
            float(draw(st.integers(0, 300))),
            float(draw(st.integers(1, 100))),
        )
        for _ in range(draw(st.integers(0, 2)))
    ]
    return Workload("random", jobs, nodes), outages


@settings(max_examples=60, deadline=None)
@given(workloads(), st.sampled_from(POLICIES))
def test_invariants_hold_for_every_policy(case, policy) -> None:  # noqa: ANN001
    wl, outages = case
    result = Simulator(wl, outages).run(make_policy(policy))
    check_invariants(wl, result)
    again = Simulator(wl, outages).run(make_policy(policy))
    assert again.finished == result.finished, "same input, different result"


@settings(max_examples=25, deadline=None)
@given(workloads(), st.sampled_from(LEARNED_POLICIES))
def test_invariants_hold_for_every_learned_policy(case, policy) -> None:  # noqa: ANN001
    """The networks' rounds too: nothing over capacity, nothing lost, the same twice."""
    test_invariants_hold_for_every_policy.hypothesis.inner_test(case, policy)


def _small() -> Workload:
    nodes = [
        Node("a", Resources(4.0, 8192, 2, 2 * 16384)),
        Node("b", Resources(4.0, 8192, 2, 2 * 16384)),
    ]
    jobs = [Job(i, Resources(1.0, 1024, 1), float(i), 50.0 + i, 40.0) for i in range(8)]
    return Workload("small", jobs, nodes)


def test_policies_see_estimates_not_true_runtimes() -> None:
    seen = {}

    class Spy:
        name = "spy"

        def __init__(self) -> None:
            self.inner = make_policy("fifo")

        def decide(self, view, pending, now):  # noqa: ANN001, ANN201
            for j in pending:
                seen[j.id] = j.est_runtime_s
            for r in view.running:
                assert r.est_end == pytest.approx(r.started_at + 40.0)
            return self.inner.decide(view, pending, now)

        def explain(self, job_id):  # noqa: ANN001, ANN201
            return ""

    Simulator(_small()).run(Spy())
    assert seen and set(seen.values()) == {40.0}


def test_stepping_by_hand_matches_run() -> None:
    wl = _small()
    sim = Simulator(wl)
    pol = make_policy("backfill")
    times = []
    while sim.advance():
        times.append(sim.now)
        if sim.worth_deciding():
            sim.apply(pol.decide(sim.view(), sim.pending(), sim.now))
    assert sim.done and times == sorted(times)
    assert sim.result().finished == Simulator(wl).run(make_policy("backfill")).finished


def test_next_decision_skips_moments_with_nothing_to_decide() -> None:
    wl = _small()
    sim = Simulator(wl)
    pol = make_policy("sjf")
    while sim.next_decision():
        assert sim.pending_count and sim.worth_deciding()
        sim.apply(pol.decide(sim.view(), sim.pending(), sim.now))
    assert sim.result().finished == Simulator(wl).run(make_policy("sjf")).finished


def test_one_placement_at_a_time() -> None:
    sim = Simulator(_small())
    sim.advance()
    assert sim.pending_count == 1
    job = sim.pending()[0]
    sim.apply([Placement(job.id, "a", (1,))])
    assert sim.pending_count == 0
    node = sim.view().node("a")
    assert node.free_gpu_ids == (0,) and node.free.cpus == 3.0


def test_bad_placements_are_refused() -> None:
    sim = Simulator(_small())
    sim.advance()
    jid = sim.pending()[0].id
    for bad in (
        Placement(jid, "nope", (0,)),
        Placement(jid, "a", (5,)),
        Placement(jid, "a", ()),
        Placement("ghost", "a", (0,)),
    ):
        with pytest.raises(InvalidPlacement):
            sim.apply([bad])
    sim.apply([Placement(jid, "a", (0,))])
    sim.advance()
    other = sim.pending()[0].id
    with pytest.raises(InvalidPlacement, match="not free"):
        sim.apply([Placement(other, "a", (0,))])


def test_a_job_larger_than_every_node_is_reported_unschedulable() -> None:
    wl = _small()
    wl.jobs.append(Job("huge", Resources(1.0, 1024, 8), 0.0, 10.0, 10.0))
    result = Simulator(wl).run(make_policy("fifo"))
    assert [j for j, _ in result.unschedulable] == ["huge"]
    assert "more than any node" in result.unschedulable[0][1]
    assert result.unfinished == []


def test_outage_requeues_the_lost_jobs_and_they_finish_once() -> None:
    wl = _small()
    outages = [NodeOutage("a", 10.0, 30.0)]
    result = Simulator(wl, outages).run(make_policy("fifo"))
    check_invariants(wl, result)
    lost = [a for a in result.attempts if not a.completed]
    assert lost and all(a.node_id == "a" and a.end_s == 10.0 for a in lost)
    assert all(r.attempts == 2 for r in result.finished if r.id in {a.job_id for a in lost})


def test_random_outages_are_seeded() -> None:
    nodes = _small().nodes
    assert random_outages(nodes, 1e5, 1e4, 1e3, seed=3) == random_outages(
        nodes, 1e5, 1e4, 1e3, seed=3
    )
    assert random_outages(nodes, 1e5, 1e4, 1e3, seed=3) != random_outages(
        nodes, 1e5, 1e4, 1e3, seed=4
    )


def test_duplicate_ids_and_bad_runtimes_are_rejected() -> None:
    wl = _small()
    with pytest.raises(ValueError, match="duplicate"):
        Simulator(Workload("d", wl.jobs + [wl.jobs[0]], wl.nodes))
    with pytest.raises(ValueError, match="runtime"):
        Simulator(Workload("d", [Job(1, Resources(1.0, 1, 0), 0.0, 0.0, 1.0)], wl.nodes))


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_every_policy_finishes_deeprm_jobs_on_gpus_without_memory(policy: str) -> None:
    from scheduler.workloads import deeprm

    wl = deeprm(60, 0.9, seed=0)  # whole GPUs, no GPU memory given
    result = Simulator(wl).run(make_policy(policy))
    check_invariants(wl, result)
    assert len(result.finished) == 60
