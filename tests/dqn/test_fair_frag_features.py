"""Feature version 5: the `fair_share` and fragmentation columns, and weights that name their
features (version-4 files, which name none, keep loading and deciding as before)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scheduler.fairshare import FairShare, ShareConfig, SharedLabPolicy, Standing
from scheduler.features import (
    FAIR_SHARE,
    FEATURE_NAMES,
    FEATURE_NAMES_V4,
    FRAG_GROWTH,
    FRAG_NODE,
    NUM_FEATURES,
    TEACHER,
    Round,
    RoundConfig,
    ShapeBook,
    frag_growth,
)
from scheduler.mlp import ReluMLP
from scheduler.model import ClusterView, JobRequest, NodeView, Resources
from scheduler.policy import DQNPolicy, QNetwork, WeightsError, load_weights, save_weights
from tests.dqn.test_features_env import random_view

V4 = Path(__file__).resolve().parents[1] / "scheduler" / "data" / "dqn_v4.npz"
GPU8 = Resources(64.0, 512 * 1024, 8, 8 * 81920)
GPU2 = Resources(32.0, 256 * 1024, 2, 2 * 81920)


def _job(i, gpus=0, share=0, user="", at=0.0, est=600.0, cpus=4.0, mem=16384) -> JobRequest:
    return JobRequest(i, Resources(cpus, mem, gpus, share), est, 0.0, at, user=user)


def _column(rnd: Round, col: int) -> dict[tuple[int, str], float]:
    """The column's value on each pair row, by (job id, node id)."""
    c = rnd.candidates()
    return {
        (rnd.window[int(j)].id, rnd.state.ids[int(n)]): float(c.x[k, col])
        for k, (j, n) in enumerate(zip(c.jobs[:-1], c.nodes[:-1], strict=True))
    }


# -- fair_share -------------------------------------------------------------------------------


def test_fair_share_column_is_each_jobs_factor():
    view = ClusterView((NodeView.empty("n0", GPU8),), 100.0)
    fs = FairShare(
        [Standing("user", "alice", 3.0, 1.0, 0.5), Standing("user", "bob", 0.0, 1.0, 2.0)]
    )
    pending = [_job(1, gpus=1, user="alice"), _job(2, gpus=1, user="bob"), _job(3, gpus=1)]
    col = _column(Round(view, pending, 100.0, fair_share=fs), FAIR_SHARE)
    assert col[(1, "n0")] == 0.5
    assert col[(2, "n0")] == 2.0
    assert col[(3, "n0")] == 1.0  # a user with no standing: 1.0, as `FairShare.factor`
    # fair share off: 1.0 for every job; the wait row carries no job's factor
    off = Round(view, pending, 100.0).candidates()
    assert set(off.x[:-1, FAIR_SHARE].tolist()) == {1.0}
    assert off.x[-1, FAIR_SHARE] == 0.0


def _fair_share_net(weight: float) -> QNetwork:
    """Scores a pair `weight * fair_share`; waiting scores far below."""
    w = np.zeros((NUM_FEATURES, 1))
    w[FAIR_SHARE, 0] = weight
    w[-1, 0] = -100.0
    return QNetwork([(w, np.zeros(1))])


def test_shared_lab_policy_hands_the_factor_to_the_dqn():
    # fair share weighs nothing in the priorities (weight 0), so only the column tells alice
    # (who used the lab) from bob; a network that prefers low factors starts alice's job first
    view = ClusterView((NodeView.empty("n0", GPU2),), 100.0)
    pending = [_job(1, gpus=2, user="bob", at=0.0), _job(2, gpus=2, user="alice", at=1.0)]
    lab = SharedLabPolicy(DQNPolicy.from_network(_fair_share_net(-5.0)), ShareConfig(weight=0.0))
    lab.user_usage = {"alice": 10.0}
    assert [p.job_id for p in lab.decide(view, pending, 100.0)] == [2]
    # the same network without the factor (a plain call: every factor 1.0) takes the queue's first
    plain = DQNPolicy.from_network(_fair_share_net(-5.0))
    assert [p.job_id for p in plain.decide(view, pending, 100.0)] == [1]


# -- frag_growth ------------------------------------------------------------------------------


def _half_used_gpu_node() -> NodeView:
    """2 GPUs of 80 GB: GPU 0 free, GPU 1 with half its memory taken by a share."""
    node = NodeView.empty("half", GPU2)
    used = Resources(2.0, 8192, 0, 40960)
    return node.allocate(used, (1,))


def test_frag_growth_is_larger_where_a_placement_breaks_a_gpu_others_need():
    # the lab's jobs: half-GPU shares and whole single GPUs. A half share on the half-used GPU
    # fills it; on the empty node it breaks a whole GPU that the single-GPU jobs needed
    view = ClusterView((_half_used_gpu_node(), NodeView.empty("empty", GPU2)), 100.0)
    shapes = ShapeBook()
    shapes.learn([_job(100 + k, gpus=1) for k in range(5)])
    shapes.learn([_job(200 + k, share=40960) for k in range(5)])
    pending = [_job(1, share=40960)]
    rnd = Round(view, pending, 100.0, shapes=shapes)
    grow = _column(rnd, FRAG_GROWTH)
    assert grow[(1, "half")] < 0 < grow[(1, "empty")]
    # the node's own fragmentation: the half-used GPU is capacity the single-GPU jobs cannot use
    node = _column(rnd, FRAG_NODE)
    assert node[(1, "half")] > node[(1, "empty")] == 0.0
    # without shapes the columns stay 0 (weights that do not read them pay nothing)
    assert set(_column(Round(view, pending, 100.0), FRAG_GROWTH).values()) == {0.0}


def test_frag_growth_matches_the_heuristics_one_job_at_a_time():
    rng = np.random.default_rng(4)
    checked = 0
    for _ in range(30):
        view, pending = random_view(rng)
        shapes = ShapeBook()
        rnd = Round(view, pending, view.now, shapes=shapes)
        if rnd.frag is None:
            continue
        c = rnd.candidates()
        jk, nk = c.jobs[:-1], c.nodes[:-1]
        got = frag_growth(rnd.frag, nk, rnd.req[jk])
        for k, (j, n) in enumerate(zip(jk.tolist(), nk.tolist(), strict=True)):
            r = rnd.window[j].request
            one = rnd.frag.growth(np.array([n]), r.cpus, r.mem_mb, r.gpus, r.gpu_mem_mb)
            assert got[k] == pytest.approx(float(one[0]), abs=1e-6)
            checked += 1
    assert checked > 50


def test_the_teacher_places_by_fragmentation_when_configured():
    # the lab runs 2-GPU jobs. One GPU on the empty 2-GPU node leaves a GPU they cannot use;
    # on the big node (one GPU busy) two stay free. Best fit picks the small node; by
    # fragmentation (as SJF places), the teacher row picks the big one
    big = NodeView.empty("big", Resources(128.0, 1024 * 1024, 4, 4 * 81920))
    big = big.allocate(Resources(4.0, 16384, 1), (0,))
    view = ClusterView((NodeView.empty("small", GPU2), big), 100.0)
    shapes = ShapeBook()
    shapes.learn([_job(100 + k, gpus=2) for k in range(5)])
    pending = [_job(1, gpus=1)]
    pick = {}
    for placement in ("bestfit", "fragmentation"):
        rnd = Round(view, pending, 100.0, RoundConfig(teacher_placement=placement), shapes=shapes)
        c = rnd.candidates()
        pick[placement] = rnd.state.ids[int(c.nodes[int(np.argmax(c.x[:, TEACHER]))])]
    assert pick == {"bestfit": "small", "fragmentation": "big"}


# -- weights name their features -------------------------------------------------------------


def test_version_4_weights_load_as_the_version_4_columns():
    net, config, meta = load_weights(V4)
    assert meta["feature_version"] == 4 and "features" not in meta
    assert net.features == FEATURE_NAMES_V4 and len(FEATURE_NAMES_V4) == 31
    assert not net.uses_fragmentation and not net.uses_fair_share
    assert config.teacher_placement == "bestfit"
    # its scores on version-5 rows are its scores on the same rows without the new columns
    view, pending = random_view(np.random.default_rng(3))
    x = Round(view, pending, view.now).candidates().x
    keep = [FEATURE_NAMES.index(n) for n in FEATURE_NAMES_V4]
    assert np.array_equal(net.scores(x), ReluMLP(net.layers).scores(x[:, keep]))


def test_version_4_weights_decide_as_before_on_random_clusters():
    # the shipped version-4 policy followed the teacher: the same placements as its teacher row
    # (bonus 1000), whatever the new columns hold
    policy = DQNPolicy(V4)
    assert not policy.is_fallback and policy.shapes is None
    rng = np.random.default_rng(9)
    for _ in range(20):
        view, pending = random_view(rng)
        got = policy.decide(view, pending, view.now)
        again = DQNPolicy(V4).decide(view, pending, view.now, fair_share=None)
        assert got == again


def test_save_writes_the_names_and_load_builds_those_columns(tmp_path):
    names = ("is_wait", "fair_share", "frag_growth")
    w = np.zeros((3, 1))
    w[1, 0] = 2.0
    save_weights(tmp_path / "w.npz", [(w, np.zeros(1))], RoundConfig(), features=names)
    net, _, meta = load_weights(tmp_path / "w.npz")
    assert meta["features"] == list(names) and meta["num_features"] == 3
    assert net.features == names and net.uses_fair_share and net.uses_fragmentation
    x = np.zeros((2, NUM_FEATURES), np.float32)
    x[0, FAIR_SHARE] = 0.25
    assert net.scores(x).tolist() == [0.5, 0.0]
    assert DQNPolicy(tmp_path / "w.npz").shapes is not None


@pytest.mark.parametrize(
    ("meta_features", "error"),
    [(["fair_share", "no_such_feature"], "no_such_feature"), (None, "lists no features")],
)
def test_weights_naming_unknown_or_no_features_are_refused(tmp_path, meta_features, error):
    import json

    from scheduler.mlp import write_npz

    info = {"feature_version": 5}
    if meta_features is not None:
        info["features"] = meta_features
    n = len(meta_features or [1])
    write_npz(tmp_path / "bad.npz", [(np.zeros((n, 1)), np.zeros(1))], info)
    with pytest.raises(WeightsError, match=error):
        load_weights(tmp_path / "bad.npz")
    assert json.dumps(info)  # the file's meta was plain JSON


def test_evaluation_learns_each_workloads_shapes_afresh():
    # one policy for every validation workload let the first one's shapes steer the
    # fragmentation teacher on the next (checkpoints were chosen on those scores)
    pytest.importorskip("torch")
    from scheduler.agent import evaluate
    from scheduler.environment import run_policy, summarize
    from scheduler.workloads import lab_mix

    zero = QNetwork([(np.zeros((NUM_FEATURES, 1)), np.zeros(1))])
    config = RoundConfig(teacher_placement="fragmentation")
    first, second = lab_mix(80, 1.2, 31, nodes=2), lab_mix(80, 1.3, 41, nodes=2)
    got = evaluate(zero, [first, second], config, {"none": [1.0, 1.0]}, teacher_bonus=1000.0)
    alone = run_policy(DQNPolicy.from_network(zero, config, 1000.0), second)
    assert got["dqn"][1] == summarize(alone).avg_bsld
