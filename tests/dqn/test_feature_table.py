"""Shortcuts of the DQN round against the long way, bit for bit: the queue's pair matrices kept
column by column (several changed nodes at once) and each job's best nodes partitioned only
where a job has more allowed nodes than it keeps."""

from __future__ import annotations

import numpy as np

from scheduler.features import Round, _keep_best_nodes
from tests.dqn.test_features_env import random_view


def test_queue_pair_matrices_after_placements_equal_a_fresh_build():
    rng = np.random.default_rng(5)
    multi = 0
    for _ in range(40):
        view, pending = random_view(rng)
        rnd = Round(view, pending, 200.0)
        q = rnd._queue
        for _ in range(int(rng.integers(1, 8))):
            c = rnd.candidates()
            if len(c) <= 1:
                break
            rnd.place(c, int(rng.integers(len(c) - 1)))
        done = q._pairs_placed
        multi += len({i for i, _, _ in rnd.state.placed[done:]}) > 1
        kept = q.pairs(rnd.state)
        fresh = q._pair_matrices(rnd.state)
        for a, b in zip(kept, fresh, strict=True):
            assert a.tobytes() == b.tobytes()
    assert multi > 5


def whole_partition(ok: np.ndarray, left: np.ndarray, m: int) -> np.ndarray:
    """Before: every row partitioned, disallowed nodes at infinity."""
    top_n = np.argpartition(np.where(ok, left, np.inf), m - 1, axis=1)[:, :m]
    keep = np.zeros_like(ok)
    keep[np.arange(len(keep))[:, None], top_n] = True
    return ok & keep


def test_best_nodes_only_where_needed_equal_the_whole_partition():
    rng = np.random.default_rng(2)
    partial = 0
    for _ in range(300):
        jobs, nodes, m = int(rng.integers(1, 40)), int(rng.integers(5, 70)), 4
        ok = rng.random((jobs, nodes)) < rng.random()
        # few distinct values: ties at the partition boundary are common
        left = rng.integers(0, 4, (jobs, nodes)).astype(float)
        want = whole_partition(ok, left, m)
        got = ok.copy()
        _keep_best_nodes(got, left, m)
        assert (got == want).all()
        counts = ok.sum(axis=1)
        partial += bool((counts > m).any() and (counts <= m).any())
    assert partial > 50
