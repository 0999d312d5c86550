"""Fragmentation under arrivals and departures (scheduler/replay.py), on clusters and traces small
enough to follow by hand: rounds every 10 s, arrivals not compressed (speed 1)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from scheduler.fragmentation import mix_of, shape_of
from scheduler.packing import (
    Cluster,
    Lepton,
    NodeList,
    PackingError,
    PodList,
    load_nodes,
    load_pods,
    run_one,
)
from scheduler.replay import (
    LookAhead,
    TracePods,
    fill_up_lookahead,
    load_trace,
    offered_load,
    replay,
    speed_for,
)

DATA = Path(__file__).resolve().parents[1] / "data"
PODS = DATA / "alibaba2023_pod_slice.csv"
NODES = DATA / "alibaba2023_node_slice.csv"
WHOLE = mix_of([shape_of(0, 0, 1, 1000)], coverage=1.0)  # the yardstick: one whole GPU


def nodes_of(*gpus: int) -> NodeList:
    n = len(gpus)
    return NodeList(
        tuple(f"n{i}" for i in range(n)),
        np.full(n, 64_000.0),
        np.full(n, 262_144.0),
        np.array(gpus, dtype=np.int64),
        np.full(n, -1, dtype=np.int64),
        (),
    )


def trace_of(pods: Sequence[tuple[int, int, float, float]]) -> TracePods:
    """(GPUs, milli per GPU, arrival s, run time s) each, 1 core and 1 GiB."""
    n = len(pods)
    return TracePods(
        PodList(
            np.full(n, 1000, dtype=np.int64),
            np.full(n, 1024, dtype=np.int64),
            np.array([p[0] for p in pods], dtype=np.int64),
            np.array([p[1] for p in pods], dtype=np.int64),
            np.zeros(n, dtype=np.int64),
        ),
        np.array([p[2] for p in pods], dtype=float),
        np.array([p[3] for p in pods], dtype=float),
    )


def test_a_departure_frees_the_gpu_for_the_queued_pod_and_the_averages_follow() -> None:
    # one node, one GPU. A holds it over [0, 100); B arrives at 1, waits for A's departure (the
    # round at 100), runs to 150; a CPU-only pod arriving at 200 closes the window [0, 200].
    # Unallocated: 0 until 150, then the whole GPU for 50 of 200 s = 25 %; a GPU pod waits only
    # while nothing is free, so no idle capacity while waiting. Waits: A 0, B 99, C 0.
    row = replay(
        nodes_of(1),
        trace_of([(1, 1000, 0, 100), (1, 1000, 1, 50), (0, 0, 200, 5)]),
        "bestfit",
        speed=1.0,
        yardstick=WHOLE,
    )
    assert row["started"] == 3
    assert row["unallocated_gpu_share"] == pytest.approx(25.0)
    assert row["idle_while_waiting_share"] == pytest.approx(0.0)
    assert row["stranded_gpu_share"] == 0  # a free whole GPU is no fragment for whole GPUs
    assert row["wait_s_mean"] == pytest.approx(99 / 3, abs=0.01)


def test_stranded_capacity_is_the_yardstick_fragmentation_over_time() -> None:
    # two GPUs; a 500-milli share runs over [0, 1000): for whole-GPU requests the other half of
    # its GPU is stranded (500 of 2000 milli), the free GPU is not; window [0, 100]
    row = replay(
        nodes_of(2),
        trace_of([(1, 500, 0, 1000), (0, 0, 100, 5)]),
        "bestfit",
        speed=1.0,
        yardstick=WHOLE,
    )
    assert row["stranded_gpu_share"] == pytest.approx(25.0)
    assert row["unallocated_gpu_share"] == pytest.approx(75.0)


def test_idle_capacity_while_a_pod_waits_counts_only_then() -> None:
    # two 1-GPU nodes; a share of 600 on each (both arrive at 0), then a whole GPU at 5 that fits
    # nowhere until the first share ends at 50 (round 50); window [0, 100] closed by a CPU-only
    # pod. From 10 (its first round) to 50, 800 of 2000 milli idle while it waits: 40 s x 40 %.
    row = replay(
        nodes_of(1, 1),
        trace_of([(1, 600, 0, 50), (1, 600, 0, 1000), (1, 1000, 5, 1000), (0, 0, 100, 1)]),
        "bestfit",
        speed=1.0,
        yardstick=WHOLE,
    )
    assert row["idle_while_waiting_share"] == pytest.approx(100 * 40 * 0.4 / 100)


def test_size_order_places_the_rounds_largest_pod_first() -> None:
    # one node of two GPUs; a share and a 2-GPU pod arrive in the same round, the share first.
    # FIFO starts the share and the 2-GPU pod waits for it (100 s); largest first, the share waits
    pods = [(1, 500, 0, 100), (2, 1000, 1, 100), (0, 0, 300, 1)]
    fifo = replay(nodes_of(2), trace_of(pods), "bestfit", speed=1.0, round_s=10, order="fifo")
    size = replay(nodes_of(2), trace_of(pods), "bestfit", speed=1.0, round_s=10, order="size")
    # round 0: only the share has arrived; the 2-GPU pod arrives at 1 (round 10): same in both
    assert fifo["wait_s_mean"] == size["wait_s_mean"]
    pods = [(1, 500, 1, 100), (2, 1000, 2, 100), (0, 0, 300, 1)]  # both in round 10
    fifo = replay(nodes_of(2), trace_of(pods), "bestfit", speed=1.0, order="fifo")
    size = replay(nodes_of(2), trace_of(pods), "bestfit", speed=1.0, order="size")
    # fifo: share waits 9, 2-GPU waits 8 + 100; size: 2-GPU waits 8, share 9 + 100
    assert fifo["wait_s_mean"] == pytest.approx((9 + 108 + 0) / 3, abs=0.01)
    assert size["wait_s_mean"] == pytest.approx((109 + 8 + 0) / 3, abs=0.01)


def test_lookahead_keeps_the_node_the_next_pod_of_the_round_needs() -> None:
    # nodes of 2 and 1 GPUs; a 1-GPU pod, then a 2-GPU pod. One at a time, the 1-GPU pod takes
    # the first node (equal growth, node order) and the 2-GPU pod cannot start; looking ahead,
    # the 1-GPU pod goes to the 1-GPU node and both start
    c = Cluster(nodes_of(2, 1))
    pods = trace_of([(1, 1000, 0, 10), (2, 1000, 0, 10)]).pods
    rng = np.random.default_rng(0)
    one, ahead = Lepton(c, pods, rng), LookAhead(c, pods, rng)
    fit = c.fits(1000, 1024, 1, 1000, 0)
    assert one.choose(0, fit) == (0, (0,))
    ahead.ahead = [1]
    assert ahead.choose(0, fit) == (1, (0,))
    assert (c.left.sum(), c.busy.any()) == (3000, False)  # the trials left no trace
    ahead.ahead = []
    assert ahead.choose(0, fit) == (0, (0,))  # nothing ahead: as one at a time


def test_lookahead_in_the_replay_starts_both_pods_in_one_round() -> None:
    pods = [(1, 1000, 0, 100), (2, 1000, 0, 100), (0, 0, 200, 1)]
    one = replay(nodes_of(2, 1), trace_of(pods), "lepton", speed=1.0)
    ahead = replay(nodes_of(2, 1), trace_of(pods), "lepton-lookahead", speed=1.0)
    assert one["wait_s_mean"] == pytest.approx(100 / 3, abs=0.01)
    assert ahead["wait_s_mean"] == 0


def test_trace_slice_loads_with_times_and_the_speed_reaches_the_load() -> None:
    nodes = load_nodes(NODES)
    tr = load_trace(PODS, nodes, skip=0.0)
    assert len(tr) > 0 and tr.arrive[0] == 0 and (np.diff(tr.arrive) >= 0).all()
    assert (tr.duration >= 1).all()
    gpus = int(nodes.gpus.sum())
    target = offered_load(tr, gpus, 1e6) / 2
    s = speed_for(tr, gpus, target)
    assert offered_load(tr, gpus, s) == pytest.approx(target, rel=1e-3)
    with pytest.raises(PackingError, match="out of reach"):
        speed_for(tr, gpus, 4 * target)
    for policy in ("random", "bestfit", "fgd", "lepton", "lepton-lookahead"):
        row = replay(nodes, tr, policy, load=target, seed=1)
        assert row["started"] + row["dropped"] <= row["pods"]
        assert 0 <= row["stranded_gpu_share"] <= row["unallocated_gpu_share"] <= 100


def test_bad_names_are_refused_in_one_line() -> None:
    tr = trace_of([(1, 1000, 0, 1)])
    with pytest.raises(PackingError, match="unknown policy 'nope'"):
        replay(nodes_of(1), tr, "nope", speed=1.0)
    with pytest.raises(PackingError, match="unknown order"):
        replay(nodes_of(1), tr, "bestfit", speed=1.0, order="nope")


def test_fill_up_with_rounds_of_one_is_the_one_at_a_time_experiment() -> None:
    # nothing ahead in a round of one pod: the look-ahead placer is ours, pod for pod
    nodes = load_nodes(NODES)
    pods = load_pods(PODS, nodes)
    for seed in (42, 43):
        alone = fill_up_lookahead(nodes, pods, seed, 1.3, round_size=1)
        one = run_one(nodes, pods, "lepton", seed, 1.3)
        assert alone["unallocated_gpu_share"] == one["unallocated_gpu_share"]
        assert alone["failed"] == one["failed"]
