"""Metrics on runs whose numbers are known by hand; registry and bench rows."""

from __future__ import annotations

import pytest

from scheduler.bench import ROW_METRICS, make_workload, run_bench, summarize
from scheduler.metrics import compute_metrics, makespan_lower_bound
from scheduler.model import Job, Node, Policy, Prices, Resources, Workload
from scheduler.registry import POLICY_NAMES, make_policy
from scheduler.simulator import NodeOutage, Simulator
from tests.scheduler.test_workloads import PODS


def _one_gpu_node_run(outages=()):  # noqa: ANN001, ANN202
    node = Node("g", Resources(4.0, 4096, 1, 0), Prices(gpu_hour=3600.0))  # $1 per GPU-second
    jobs = [
        Job("a", Resources(1.0, 1024, 1), 0.0, 100.0, 100.0),
        Job("b", Resources(1.0, 1024, 1), 0.0, 5.0, 5.0),
    ]
    wl = Workload("hand", jobs, [node])
    return wl, Simulator(wl, outages).run(make_policy("fifo"))


def test_slowdowns_jct_wait_and_makespan_by_hand() -> None:
    _, result = _one_gpu_node_run()
    m = compute_metrics(result)
    # FIFO: a runs 0-100, b waits and runs 100-105
    assert m["avg_jct"] == pytest.approx((100 + 105) / 2)
    assert m["avg_wait"] == pytest.approx(50)
    assert m["avg_slowdown"] == pytest.approx((1 + 21) / 2)
    assert m["avg_bounded_slowdown"] == pytest.approx((1 + 105 / 10) / 2)
    assert m["makespan"] == 105
    assert m["gpu_util"] == pytest.approx(1.0)
    assert m["cpu_util"] == pytest.approx(0.25)
    assert m["cost"] == pytest.approx(105.0)
    assert m["idle_cost"] == pytest.approx(0.0)  # only GPUs are priced, and the GPU was busy
    # bounds: work on the one GPU is 105 s; latest release + duration is 100 s
    assert makespan_lower_bound(result) == pytest.approx(105)
    assert m["gap_makespan"] == pytest.approx(0.0)
    assert m["bound_slowdown"] == 1.0 and m["gap_bounded_slowdown"] == pytest.approx(
        m["avg_bounded_slowdown"] - 1
    )


def test_outages_count_lost_work_and_down_time() -> None:
    wl, result = _one_gpu_node_run([NodeOutage("g", 50.0, 10.0), NodeOutage("g", 55.0, 10.0)])
    m = compute_metrics(result)
    assert m["lost_attempts"] == 1 and m["finished"] == 2
    # a is lost at 50, the node is back at 65; b (queued first) runs 65-70, a 70-170
    assert m["makespan"] == 170
    # busy 50 + 5 + 100 GPU-seconds over 170 - 15 s up
    assert m["gpu_util"] == pytest.approx(155 / 155)


def test_idle_cost_is_the_price_of_unused_capacity() -> None:
    node = Node("n", Resources(2.0, 1024, 0), 7.2)  # $7.20/h flat = $0.002/s
    wl = Workload("idle", [Job(1, Resources(1.0, 512, 0), 0.0, 1000.0, 1000.0)], [node])
    m = compute_metrics(Simulator(wl).run(make_policy("sjf")))
    assert m["total_cost"] == pytest.approx(2.0)
    assert m["cost"] == pytest.approx(1.0)  # dominant share 0.5 of the node
    assert m["idle_cost"] == pytest.approx(1.0)


def test_registry_builds_every_policy_by_name() -> None:
    for name in POLICY_NAMES:
        if name == "dqn":
            continue
        pol = make_policy(name)
        assert isinstance(pol, Policy) and pol.name == name
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("lottery")
    with pytest.raises(ValueError, match="bad options"):
        make_policy("fifo", nonsense=1)


def test_registry_dqn_is_loaded_lazily_or_explained() -> None:
    try:
        pol = make_policy("dqn")
    except ValueError as exc:  # not trained or not built yet: a clear message
        assert "dqn" in str(exc)
    else:
        assert isinstance(pol, Policy)


def test_bench_rows_cover_every_policy_and_seed() -> None:
    rows = run_bench("trace", ["fifo", "backfill"], 2, trace=PODS, jobs=120, nodes=1, load=0.9)
    assert [(r["policy"], r["seed"]) for r in rows] == [
        ("fifo", 0),
        ("backfill", 0),
        ("fifo", 1),
        ("backfill", 1),
    ]
    for r in rows:
        assert set(ROW_METRICS) <= set(r)
        assert r["avg_bounded_slowdown"] >= r["bound_slowdown"] == 1.0
        assert r["makespan"] >= r["bound_makespan"] - 1e-6
        assert r["finished"] + r["unschedulable"] == r["jobs"]
    again = run_bench("trace", ["fifo"], 1, trace=PODS, jobs=120, nodes=1, load=0.9)
    assert again[0]["avg_jct"] == rows[0]["avg_jct"]
    s = summarize(rows)
    assert [x["policy"] for x in s] == ["fifo", "backfill"] and s[0]["seeds"] == 2


def test_bench_workloads_are_small_and_deterministic() -> None:
    for kind in ("deeprm", "lab"):
        a = make_workload(kind, 1, jobs=50)
        assert len(a.jobs) == 50 and a.jobs == make_workload(kind, 1, jobs=50).jobs
    with pytest.raises(ValueError, match="--trace"):
        make_workload("trace", 0)
