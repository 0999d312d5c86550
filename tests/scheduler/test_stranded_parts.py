"""The replay's stranded capacity split by cause (scheduler/replay.py `stranded_parts`), on a
cluster small enough to follow by hand, and the profile hook of `replay`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scheduler.fragmentation import FragCache, mix_of, shape_of
from scheduler.packing import Cluster, NodeList, load_nodes
from scheduler.replay import PARTS, load_trace, replay, stranded_parts

DATA = Path(__file__).resolve().parents[1] / "data"


def two_nodes() -> NodeList:
    """n0: 8 cores, 4 GPUs of model 0; n1: 32 cores, 2 GPUs of model 1."""
    return NodeList(
        ("n0", "n1"),
        np.array([8000.0, 32000.0]),
        np.array([65536.0, 65536.0]),
        np.array([4, 2], dtype=np.int64),
        np.array([0, 1], dtype=np.int64),
        ("A", "B"),
    )


def test_parts_follow_the_causes_by_hand():
    c = Cluster(two_nodes())
    c.place(0, 6000, 0, 600, (0,))  # n0: 2 cores left, GPU 0 has 400 milli left
    mix = mix_of(
        [
            shape_of(4000, 0, 1, 500),  # a half GPU with 4 cores: n0 lacks CPUs
            shape_of(1000, 0, 1, 500),  # a half GPU with 1 core: GPU 0's 400 too small
            shape_of(1000, 0, 4, 1000, models=0b01),  # 4 GPUs of model A: n0 has 3 whole
            shape_of(1000, 0, 0, 0),  # CPU only: every free GPU counts
        ],
        coverage=1.0,
    )
    m = FragCache(mix, c.nodes.model)
    m.rows(np.arange(2), c.cpu, c.mem, c.left)
    got = stranded_parts(c, m)
    q = 0.25  # each shape a quarter of arrivals
    n0, n1 = 3400.0, 2000.0  # free GPU milli
    assert got["cpu_mem"] == pytest.approx(q * n0)
    assert got["rooms"] == pytest.approx(q * 400)
    assert got["gpu_count"] == pytest.approx(q * n0)  # n0: 3 GPUs with room for a whole one
    assert got["model"] == pytest.approx(q * n1)  # model B for the model-A shape
    assert got["cpu_only"] == pytest.approx(q * (n0 + n1))
    assert sum(got.values()) == pytest.approx(float(m.frag.sum()))


def test_replay_profile_sums_to_the_stranded_measure():
    nodes = load_nodes(DATA / "alibaba2023_node_slice.csv")
    trace = load_trace(DATA / "alibaba2023_pod_slice.csv", nodes, skip=0.0)
    seen: list[float] = []

    def observe(t: float, cluster: Cluster, measure: FragCache) -> None:
        parts = stranded_parts(cluster, measure)
        assert set(parts) == set(PARTS)
        assert sum(parts.values()) == pytest.approx(float(measure.frag.sum()), abs=1e-6)
        seen.append(t)

    row = replay(nodes, trace, "lepton", speed=1.0, seed=1, observe=observe)
    assert len(seen) >= 2 and seen == sorted(seen)
    assert row["started"] > 0


def test_a_cpu_only_pod_goes_where_no_gpu_is_left():
    """Both nodes are in use and the pod's growth is nil on both: ours puts it on the node with
    no free GPU, not the first node (whose CPUs the GPU pods still need)."""
    from scheduler.packing import Lepton, PodList

    nodes = NodeList(
        ("n0", "n1"),
        np.array([64000.0, 64000.0]),
        np.array([262144.0, 262144.0]),
        np.array([4, 4], dtype=np.int64),
        np.array([-1, -1], dtype=np.int64),
        (),
    )
    pods = PodList(  # a 1-GPU pod, a 4-GPU pod, a CPU-only pod
        np.array([8000, 8000, 1000], dtype=np.int64),
        np.array([1024, 1024, 1024], dtype=np.int64),
        np.array([1, 4, 0], dtype=np.int64),
        np.array([1000, 1000, 0], dtype=np.int64),
        np.zeros(3, dtype=np.int64),
    )
    c = Cluster(nodes)
    placer = Lepton(c, pods, np.random.default_rng(0))
    for k, i in ((0, 0), (1, 1)):
        placer.online.observe(pods.shape(k))
        c.place(i, int(pods.cpu[k]), int(pods.mem[k]), 1000, tuple(range(int(pods.gpus[k]))))
        placer.placed(i)
    fit = c.fits(1000, 1024, 0, 0, 0)
    assert list(fit) == [0, 1]
    i, gpu_ids = placer.choose(2, fit)
    assert (i, gpu_ids) == (1, ())
