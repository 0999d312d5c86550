"""The window's kept feature table gives the same float32 rows, bit for bit, as computing every
candidate's columns from the round state at each step (the formulas before the table)."""

from __future__ import annotations

import numpy as np

from scheduler.features import NUM_FEATURES, TEACHER, WAIT, Round
from tests.dqn.test_features_env import random_view


def direct_rows(rnd: Round, jk: np.ndarray, nk: np.ndarray) -> np.ndarray:
    """The pair, job and step columns of candidates (jk, nk), computed per candidate from the
    round's current state (wait row, cluster columns, best fit, head and teacher excluded)."""
    st = rnd.state
    m = len(jk)
    x = np.zeros((m, NUM_FEATURES), dtype=np.float32)
    req = rnd.req[jk]
    cap_c, cap_m, cap_g = st.cap_c[nk], st.cap_m[nk], st.cap_g[nk]
    has_gpu, per_gpu = st.has_gpu[nk], st.per_gpu[nk]
    share = rnd.share[jk]
    gfrac = np.where(share, np.minimum(1.0, req[:, 3] / per_gpu), req[:, 2])
    x[:, 0] = req[:, 0] / cap_c
    x[:, 1] = req[:, 1] / cap_m
    x[:, 2] = np.where(has_gpu, gfrac / cap_g, 0.0)
    fc_after = (st.fc[nk] - req[:, 0]) / cap_c
    fm_after = (st.fm[nk] - req[:, 1]) / cap_m
    fg_after = np.where(has_gpu, (st.fg[nk] - np.where(share, 0.0, req[:, 2])) / cap_g, 0.0)
    x[:, 3], x[:, 4], x[:, 5] = fc_after, fm_after, fg_after
    x[:, 6] = (fc_after + fm_after + fg_after) / 3.0
    x[:, 8] = st.idle[nk]
    x[:, 9] = st.price[nk] / st.max_price
    x[:, 10] = share & (rnd.partial[nk] < req[:, 3])
    x[:, 11:15] = rnd.job_block[jk]
    x[:, 17] = np.maximum(np.maximum(x[:, 0], x[:, 1]), x[:, 2])
    x[:, 18] = rnd.ends_before[jk]
    long = rnd.is_long[jk]
    x[:, 25] = long
    x[:, 26] = (rnd.long_c + np.where(long, req[:, 0], 0.0)) / max(rnd.cap_c_total, 1e-9)
    if rnd.cap_g_total:
        x[:, 27] = (rnd.long_g + np.where(long, rnd.req_geq[jk], 0.0)) / rnd.cap_g_total
    return x


CHECKED = [c for c in range(NUM_FEATURES) if c not in (7, 15, 16, 19, 20, 21, 22, 23, 28, TEACHER)]


def test_kept_table_rows_equal_direct_formulas_bit_for_bit():
    rng = np.random.default_rng(11)
    steps = placed = cpu_only = 0
    for _ in range(60):
        view, pending = random_view(rng)
        cpu_only += sum(n.capacity.gpus == 0 for n in view.nodes)
        rnd = Round(view, pending, 200.0)
        for _ in range(200):
            c = rnd.candidates()
            if len(c) <= 1:
                if rnd.wants_next_window():
                    rnd = rnd.next_window()
                    continue
                break
            jk, nk = c.jobs[:-1], c.nodes[:-1]
            want = direct_rows(rnd, jk, nk)
            assert c.x[:-1, CHECKED].tobytes() == want[:, CHECKED].tobytes()
            assert c.x.dtype == np.float32 and c.x[-1, -1] == 1.0
            steps += 1
            # place a random pair (not always the network's pick: every node's column moves)
            i = int(rng.integers(len(c) - 1))
            assert c.jobs[i] != WAIT
            rnd.place(c, i)
            placed += 1
    assert steps > 300 and placed > 300 and cpu_only > 20


def test_the_table_is_built_once_per_window_and_updated_by_node():
    rng = np.random.default_rng(3)
    view, pending = random_view(rng)
    while len(pending) < 20 or len(view.nodes) < 3:
        view, pending = random_view(rng)
    rnd = Round(view, pending, 200.0)
    builds = []
    real = rnd._pair_block
    rnd._pair_block = lambda nodes: builds.append(nodes) or real(nodes)  # type: ignore[method-assign]
    for _ in range(5):
        c = rnd.candidates()
        if len(c) <= 1:
            break
        rnd.place(c, 0)
    assert builds == [slice(None)]
