"""The DQN round's queue pair matrices, kept current after placements (several changed nodes
refreshed in one pass), equal a fresh build bit for bit."""

from __future__ import annotations

import numpy as np

from scheduler.features import Round
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
