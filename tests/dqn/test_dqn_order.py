"""`dqn-bf`: a learned order under EASY backfilling (scheduler/dqn_order.py)."""

from __future__ import annotations

import numpy as np
import pytest

from scheduler.dqn_order import (
    DEFAULT_WEIGHTS,
    MLP,
    NUM_ORDER_FEATURES,
    OrderBackfillPolicy,
    OrderWeightsError,
    load_order_weights,
    save_order_weights,
)
from scheduler.environment import run_policy, summarize
from scheduler.model import ClusterView, JobRequest, NodeView, Resources
from scheduler.registry import make_policy
from scheduler.simulator import Simulator
from scheduler.workloads import deeprm, lab_mix


def linear(weights: dict[int, float]) -> MLP:
    """A one-layer network: the score is a weighted sum of the named feature columns."""
    w = np.zeros((NUM_ORDER_FEATURES, 1))
    for c, v in weights.items():
        w[c, 0] = v
    return MLP([(w, np.zeros(1))])


def test_the_network_picks_the_head():
    # one 4-CPU node; two 4-CPU jobs: only one can start, and the network decides which
    node = NodeView.empty("a", Resources(4.0, 8192, 0))
    view = ClusterView((node,), 1000.0)
    short = JobRequest("short", Resources(4.0, 1024, 0), 60.0, submitted_at=0.0)
    long_ = JobRequest("long", Resources(4.0, 1024, 0), 36_000.0, submitted_at=500.0)
    log_est = 5  # feature column: log10 of the estimate
    for sign, first in ((-1.0, "short"), (1.0, "long")):
        pol = OrderBackfillPolicy(network=linear({log_est: sign}))
        out = pol.decide(view, [short, long_], view.now)
        assert [p.job_id for p in out] == [first]


def test_the_rest_backfill_around_the_networks_head():
    # the network prefers big jobs: the 8-CPU job cannot start and is reserved; a 1-CPU job
    # that ends before the reservation still starts, one that would delay it does not
    cap = Resources(8.0, 16384, 0)
    busy = NodeView.empty("a", cap).allocate(Resources(4.0, 1024, 0), ())
    from scheduler.model import RunningJob

    running = (RunningJob("r", "a", Resources(4.0, 1024, 0), (), 0.0, 1000.0),)
    view = ClusterView((busy,), 100.0, running)
    big = JobRequest("big", Resources(8.0, 1024, 0), 600.0, submitted_at=50.0)
    quick = JobRequest("quick", Resources(1.0, 512, 0), 300.0, submitted_at=60.0)
    slow = JobRequest("slow", Resources(4.0, 512, 0), 5000.0, submitted_at=70.0)
    pol = OrderBackfillPolicy(network=linear({8: 10.0}))  # column 8: CPU share of the cluster
    out = pol.decide(view, [quick, slow, big], view.now)
    assert [p.job_id for p in out] == ["quick"]
    assert "backfilled" in pol.explain("quick")


@pytest.mark.parametrize("seed", range(3))
def test_random_networks_finish_every_job(seed):
    rng = np.random.default_rng(seed)
    net = MLP(
        [
            (rng.normal(size=(NUM_ORDER_FEATURES, 8)), rng.normal(size=8)),
            (rng.normal(size=(8, 1)), rng.normal(size=1)),
        ]
    )
    wl = lab_mix(150, 1.2, seed, nodes=3) if seed % 2 else deeprm(150, 1.2, seed, num_nodes=2)
    res = Simulator(wl).run(OrderBackfillPolicy(network=net))
    assert len(res.finished) == len(wl.jobs) and not res.unfinished


def test_a_rank_column_follows_that_heuristic():
    # column 1 is the SJF rank: EASY in that order is sjf-bf without aging
    wl = deeprm(200, 1.0, 5, num_nodes=1)
    mine = summarize(run_policy(OrderBackfillPolicy(column=1), wl)).avg_bsld
    theirs = summarize(run_policy(make_policy("sjf-bf", aging_s=None), wl)).avg_bsld
    assert mine == pytest.approx(theirs)


def test_weights_round_trip_and_refusals(tmp_path):
    net = linear({5: -1.0})
    path = tmp_path / "w.npz"
    save_order_weights(path, net.layers, {"note": "x"})
    back, meta = load_order_weights(path)
    x = np.random.default_rng(0).random((5, NUM_ORDER_FEATURES))
    assert np.allclose(back.scores(x), net.scores(x)) and meta["note"] == "x"
    with pytest.raises(OrderWeightsError, match="no such file"):
        load_order_weights(tmp_path / "missing.npz")
    with pytest.raises(OrderWeightsError, match="features"):
        MLP([(np.zeros((3, 1)), np.zeros(1))])


def test_registry_builds_dqn_bf_from_the_shipped_weights():
    assert DEFAULT_WEIGHTS.exists()
    pol = make_policy("dqn-bf", cost_weight=0.5)
    assert isinstance(pol, OrderBackfillPolicy) and pol.network is not None
    wl = deeprm(80, 0.9, 1, num_nodes=1)
    res = Simulator(wl).run(pol)
    assert len(res.finished) == len(wl.jobs)


def test_bench_runs_dqn_bf_by_name_and_the_defaults_leave_it_out():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from scheduler.registry import BENCH_DEFAULT_POLICIES, POLICY_NAMES

    assert "dqn-bf" not in POLICY_NAMES and "dqn-bf" not in BENCH_DEFAULT_POLICIES
    repo = Path(__file__).resolve().parents[2]
    res = subprocess.run(
        [sys.executable, "-m", "lepton_tui", "bench", "--workload", "deeprm", "--jobs", "60",
         "--policies", "dqn-bf,sjf-bf", "--json"],
        capture_output=True, text=True, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
        timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["policy"] for r in rows] == ["dqn-bf", "sjf-bf"]
    assert rows[0]["finished"] == 60


def test_the_long_job_limit_holds_a_long_job_that_fits():
    from scheduler.model import RunningJob

    cap = Resources(10.0, 16384, 0)
    busy = NodeView.empty("a", cap).allocate(Resources(4.0, 1024, 0), ())
    running = (RunningJob("r", "a", Resources(4.0, 1024, 0), (), 0.0, 100_000.0),)
    view = ClusterView((busy,), 100.0, running)
    long_ = JobRequest("long", Resources(2.0, 512, 0), 36_000.0, submitted_at=50.0)
    net = linear({5: -1.0})
    assert [p.job_id for p in OrderBackfillPolicy(network=net).decide(view, [long_], 100.0)] == [
        "long"
    ]
    held = OrderBackfillPolicy(network=net, long_share=0.4)
    assert held.decide(view, [long_], 100.0) == []
    assert "held back" in held.explain("long")
