"""The ILP planner against brute force, the worked example, and snapshot checking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.heuristics import effective_priority
from scheduler.ilp import ILPPolicy, plan_round, round_gains
from scheduler.snapshot import EXAMPLE_SNAPSHOT, SnapshotError, parse_snapshot
from tests.scheduler.helpers import check_fits, job, node, res, view


def brute_force(v, pending, cost_weight=0.0):  # noqa: ANN001, ANN201
    """Best objective over every assignment of jobs to nodes (or to nothing)."""
    up = [n for n in v.nodes if n.is_up]
    prio = [effective_priority(j, v.now, 3600.0) for j in pending]
    pairs, gains = round_gains(up, pending, prio, cost_weight)
    gain = dict(zip(pairs, gains, strict=True))
    best = 0.0
    choices = [[None] + [i for (jk, i) in pairs if jk == k] for k in range(len(pending))]
    for assign in itertools.product(*choices):
        used = [[0.0, 0, 0] for _ in up]
        total = 0.0
        for k, i in enumerate(assign):
            if i is None:
                continue
            r = pending[k].request
            used[i][0] += r.cpus
            used[i][1] += r.mem_mb
            used[i][2] += r.gpus
            total += gain[(k, i)]
        if all(
            u[0] <= n.free.cpus + 1e-9 and u[1] <= n.free.mem_mb and u[2] <= len(n.free_gpu_ids)
            for u, n in zip(used, up, strict=True)
        ):
            best = max(best, total)
    return best


@st.composite
def instances(draw):  # noqa: ANN001, ANN201
    nodes = [
        node(
            f"n{k}",
            cpus=draw(st.integers(2, 8)),
            mem_gb=draw(st.integers(4, 16)),
            gpus=draw(st.sampled_from([0, 2, 4])),
            price=float(draw(st.integers(0, 5))),
        )
        for k in range(draw(st.integers(1, 2)))
    ]
    pending = [
        job(
            i,
            cpus=draw(st.integers(0, 5)),
            mem_gb=draw(st.integers(0, 8)),
            gpus=draw(st.integers(0, 3)),
            priority=draw(st.integers(-1, 2)),
            at=float(i),
        )
        for i in range(draw(st.integers(1, 6)))
    ]
    return view(*nodes, now=100.0), pending, draw(st.sampled_from([0.0, 0.5]))


@settings(max_examples=60, deadline=None)
@given(instances())
def test_ilp_matches_brute_force(case) -> None:  # noqa: ANN001
    v, pending, cw = case
    result = plan_round(v, pending, cost_weight=cw, mip_rel_gap=0.0)
    check_fits(v, pending, result.placements)
    assert result.status == "optimal"
    assert result.objective == pytest.approx(brute_force(v, pending, cw), rel=1e-6, abs=1e-9)


def test_worked_example_costs_38_dollars_an_hour() -> None:
    v, jobs = parse_snapshot(EXAMPLE_SNAPSHOT)
    result = plan_round(v, jobs)
    assert {p.job_id for p in result.placements} == {"t1", "t2", "t3", "t4"}
    assert result.cost_per_hour == pytest.approx(38.0)
    assert result.idle_cost_per_hour == pytest.approx(7.0)
    assert result.utilization == {"cpu": (8.0, 10.0), "gpu": (4.0, 5.0), "mem_gb": (20.0, 20.0)}
    gpus = [g for p in result.placements for g in p.gpu_ids]
    assert len(gpus) == len(set(gpus)) == 4
    assert result.gap == 0.0 and result.status == "optimal"
    assert result.method == "greedy"  # every task placed: provably optimal without the solver
    solved = plan_round(v, jobs, always_solve=True)
    assert solved.method == "highs" and solved.cost_per_hour == pytest.approx(38.0)


def test_a_job_that_fits_nowhere_is_reported_not_dropped() -> None:
    v = view(node("n0", gpus=2))
    result = plan_round(v, [job("ok", gpus=1), job("big", gpus=4)])
    assert [p.job_id for p in result.placements] == ["ok"]
    assert [j for j, _ in result.unschedulable] == ["big"]
    assert "4 GPU" in result.unschedulable[0][1]


def test_jobs_beyond_the_round_limit_wait_with_a_reason() -> None:
    v = view(node("n0", cpus=64, gpus=0))
    result = plan_round(v, [job(i, at=float(i)) for i in range(5)], max_jobs=3)
    assert len(result.placements) == 3
    assert all("only 3 jobs" in why for _, why in result.unplaced)


def test_gpu_shares_get_a_gpu_with_room() -> None:
    v = view(node("n0", gpus=2, gpu_mem_gb=40))
    pending = [job(i, gpu_mem_gb=15, at=float(i)) for i in range(5)]
    result = plan_round(v, pending)
    check_fits(v, pending, result.placements)
    assert len(result.placements) == 4  # two per 40 GB GPU; the fifth waits
    assert len(result.unplaced) == 1


def test_cost_weight_trades_allocation_for_money() -> None:
    v = view(node("dear", gpus=2, price=100.0), node("cheap", gpus=2, price=1.0))
    pending = [job("a", gpus=1)]
    assert plan_round(v, pending).placements[0].node_id == "dear"
    assert plan_round(v, pending, cost_weight=1.0).placements[0].node_id == "cheap"
    # a heavy weight can make running nothing the best plan on dear nodes
    only_dear = view(node("dear", gpus=2, price=100.0))
    assert plan_round(only_dear, pending, cost_weight=50.0).placements == []


def test_policy_explains_its_choices() -> None:
    pol = ILPPolicy()
    v = view(node("h2", gpus=1))
    out = pol.decide(v, [job("a", gpus=1), job("b", gpus=1, at=1)], 0)
    assert len(out) == 1
    placed = out[0].job_id
    other = "b" if placed == "a" else "a"
    assert pol.explain(placed).startswith("placed on h2")
    assert pol.explain(other).startswith("waiting")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"nodes": [{"id": "a", "cpus": -1, "mem_gb": 1}], "jobs": []},
            "nodes[0].cpus: must be >= 0",
        ),
        ({"nodes": [{"id": "a", "cpus": 1}], "jobs": []}, "nodes[0].mem_gb: missing"),
        ({"nodes": [], "jobs": []}, "nodes: must be a non-empty list"),
        ({"nodes": [{"id": "a", "cpus": 1, "mem_gb": 1}], "jobs": [{"cpus": "x"}]}, "jobs[0].cpus"),
        ({"nodes": [{"id": "a", "cpus": 1, "mem_gb": 1, "gpus": 1.5}], "jobs": []}, "whole number"),
        ({"nodes": [{"id": "a", "cpus": 1, "mem_gb": 1}] * 2, "jobs": []}, "duplicate node"),
        (
            {
                "prices": {"gpu_hour": -2},
                "nodes": [{"id": "a", "cpus": 1, "mem_gb": 1}],
                "jobs": [],
            },
            "prices.gpu_hour",
        ),
        ([], "JSON object"),
    ],
)
def test_bad_snapshots_name_the_field(data, message) -> None:  # noqa: ANN001
    with pytest.raises(SnapshotError) as err:
        parse_snapshot(data)
    assert message in str(err.value)


def test_snapshot_prices_per_node() -> None:
    v, _ = parse_snapshot(
        {
            "prices": {"gpu_hour": 2.0},
            "nodes": [
                {"id": "a", "cpus": 4, "mem_mb": 1024, "gpus": 2},
                {"id": "b", "cpus": 4, "mem_gb": 1, "price_per_hour": 3.5},
            ],
            "jobs": [],
        }
    )
    assert [n.price_per_hour for n in v.nodes] == [4.0, 3.5]
    assert v.nodes[1].capacity == res(4, 1, 0)


def test_solver_stray_line_is_dropped_and_other_output_goes_to_stderr(capfd) -> None:
    import os

    from scheduler import ilp

    ilp.send_solver_output_to_stderr(True)
    try:
        with ilp._solver_stdout():
            os.write(
                1, b"HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();\n"
            )
            os.write(1, b"something else\n")
    finally:
        ilp.send_solver_output_to_stderr(False)
    out, err = capfd.readouterr()
    assert out == "" and err == "something else\n"
