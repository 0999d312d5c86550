"""The fragmentation recomputed for the changed nodes only equals a pass over all nodes, bit for
bit (issue 18, third pass): the replay's schedules depend on ties between growths, so "close"
is not enough."""

from __future__ import annotations

import numpy as np

from scheduler.fragmentation import FragCache, Mix, ModelBits, RoundFragmentation, request_shape


def _mix(rng: np.random.Generator, k: int) -> Mix:
    w = rng.random(k)
    return Mix(
        rng.integers(0, 64_000, k),
        rng.integers(0, 500_000, k),
        rng.integers(0, 9, k),
        rng.choice([0, 1000, 137, 333, 500], k),
        rng.integers(0, 4, k),
        w / w.sum(),
    )


def _nodes(rng: np.random.Generator, per: np.ndarray) -> tuple[np.ndarray, ...]:
    n = len(per)
    left = rng.integers(0, 81_920, (n, 8)) * 1000 / per[:, None]
    left[rng.random((n, 8)) < 0.3] = 0
    cpu = rng.integers(0, 64, n) * 1000 + 1e-6
    return cpu, rng.integers(0, 500_000, n).astype(float), left


def test_changed_rows_then_one_expectation_pass_equals_an_all_node_pass() -> None:
    rng = np.random.default_rng(2)
    for _ in range(400):
        n = int(rng.integers(2, 20))
        mix = _mix(rng, int(rng.integers(1, 60)))
        models = rng.integers(-1, 3, n)
        per_gpu = rng.choice([24_000.0, 40_960.0, 81_920.0], n)
        need = np.where((mix.milli > 0)[None, :], mix.milli[None, :] * 1000 / per_gpu[:, None], 1e3)
        need = np.where((mix.gpus > 0)[None, :], need, 0.0)
        cpu, mem, left = _nodes(rng, per_gpu)
        kept = FragCache(mix, models, need)
        kept.rows(np.arange(n), cpu, mem, left)
        changed = np.zeros(n, dtype=bool)
        for _step in range(2):
            cpu2, mem2, left2 = _nodes(rng, per_gpu)
            now = rng.random(n) < 0.3
            cpu = np.where(now, cpu2, cpu)
            mem = np.where(now, mem2, mem)
            left = np.where(now[:, None], left2, left)
            changed |= now
            for i in np.flatnonzero(now)[:2]:  # placements in a round: one-node refreshes
                kept.rows(np.array([i]), cpu, mem, left)
        kept.rows(np.flatnonzero(changed), cpu, mem, left, whole=True)
        fresh = FragCache(mix, models, need)
        fresh.rows(np.arange(n), cpu, mem, left)
        for name in ("small", "big", "total", "per", "frag"):
            assert np.array_equal(getattr(kept, name), getattr(fresh, name)), name


def test_one_changed_node_by_its_own_path_equals_an_all_node_pass() -> None:
    rng = np.random.default_rng(5)
    for _ in range(400):
        n = int(rng.integers(2, 20))
        mix = _mix(rng, int(rng.integers(1, 60)))
        models = rng.integers(-1, 3, n)
        per_gpu = rng.choice([24_000.0, 40_960.0, 81_920.0], n)
        need = np.where((mix.milli > 0)[None, :], mix.milli[None, :] * 1000 / per_gpu[:, None], 1e3)
        need = np.where((mix.gpus > 0)[None, :], need, 0.0)
        cpu, mem, left = _nodes(rng, per_gpu)
        kept = FragCache(mix, models, need)
        kept.rows(np.arange(n), cpu, mem, left)
        i = int(rng.integers(0, n))
        cpu2, mem2, left2 = _nodes(rng, per_gpu)
        cpu[i] = mix.cpu[0] + 1e-6 if rng.random() < 0.3 else cpu2[i]  # at a shape's edge
        mem[i] = mix.mem[0] if rng.random() < 0.3 else mem2[i]
        left[i] = left2[i]
        kept.rows(np.array([i]), cpu, mem, left, whole=True)
        fresh = FragCache(mix, models, need)
        fresh.rows(np.arange(n), cpu, mem, left)
        for name in ("small", "big", "total", "per", "frag"):
            assert np.array_equal(getattr(kept, name), getattr(fresh, name)), name


def test_a_whole_pass_with_no_changed_node_redoes_the_expectation() -> None:
    rng = np.random.default_rng(3)
    n = 16
    mix = _mix(rng, 40)
    per_gpu = np.full(n, 81_920.0)
    cpu, mem, left = _nodes(rng, per_gpu)
    cache = FragCache(mix, rng.integers(-1, 3, n), None)
    cache.rows(np.arange(n), cpu, mem, left)
    expected = cache.frag.copy()
    cache.frag[:] = -1.0  # stale figures must not survive a whole pass
    cache.rows(np.zeros(0, dtype=np.intp), cpu, mem, left, whole=True)
    assert np.array_equal(cache.frag, expected)


class _Round:
    """The free resources of a round's nodes, as RoundFragmentation reads them."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self.fc = rng.integers(0, 64, n).astype(float)
        self.fm = rng.integers(0, 500_000, n).astype(float)
        self.per_gpu = np.full(n, 81_920.0)
        self.gmem = [[int(x) for x in rng.integers(0, 81_920, 8)] for _ in range(n)]
        self.models = ["A100"] * n


def test_a_marked_node_refreshed_at_the_next_growth_equals_an_immediate_refresh() -> None:
    rng = np.random.default_rng(4)
    bits = ModelBits()
    shapes = {
        request_shape(float(c), int(m), int(g), int(s)): 1.0 + k
        for k, (c, m, g, s) in enumerate(
            [(1, 4096, 0, 0), (4, 32_000, 1, 0), (2, 8000, 0, 20_000), (8, 64_000, 2, 0)]
        )
    }
    mix = Mix.from_counts(shapes, coverage=1.0)
    state = _Round(rng, 12)
    eager = RoundFragmentation(state, mix, bits)
    lazy = RoundFragmentation(state, mix, bits)
    for _ in range(30):
        i = int(rng.integers(0, 12))
        state.fc[i] = max(0.0, state.fc[i] - 1)
        state.gmem[i][int(rng.integers(0, 8))] //= 2
        eager.refresh(i)
        lazy.mark(i)
        if rng.random() < 0.5:
            idx = np.arange(12)
            a = eager.growth(idx, 1.0, 1000, 0, 10_000)
            b = lazy.growth(idx, 1.0, 1000, 0, 10_000)
            assert np.array_equal(a, b)
            assert not lazy.dirty
            for name in ("small", "big", "total", "per", "frag"):
                assert np.array_equal(getattr(eager.cache, name), getattr(lazy.cache, name))
