"""`scheduler.metrics.percentile` gives numpy's linear percentile bit for bit (it exists only to
skip numpy's import of `numpy.ma`), on the kinds of arrays the metrics pass it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scheduler.metrics import percentile


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or (
        a == b and math.copysign(1, a) == math.copysign(1, b)
    )


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 99.9, 100])
def test_matches_numpy_bit_for_bit(q: float) -> None:
    rng = np.random.default_rng(7)
    for n in [*range(1, 60), 97, 100, 101, 1000, 9999, 10000]:
        for draw in (
            rng.lognormal(1.0, 2.0, n),  # heavy-tailed, like slowdowns and waits
            rng.integers(0, 4, n).astype(float),  # ties
            rng.normal(0.0, 1e6, n),  # signs and large magnitudes
            np.full(n, 3.25),
        ):
            got = percentile(draw.copy(), q)
            want = float(np.percentile(draw, q))
            assert same(got, want), (n, q, got, want)


def test_nan_and_infinities_as_numpy() -> None:
    for arr in ([1.0, math.nan, 2.0], [math.inf, 1.0, 2.0], [-math.inf, 0.0], [math.inf, math.inf]):
        for q in (50, 95):
            a = np.array(arr)
            with np.errstate(invalid="ignore"):
                want = float(np.percentile(a, q))
            assert same(percentile(a, q), want), (arr, q)


def test_input_left_as_given() -> None:
    a = np.array([3.0, 1.0, 2.0])
    percentile(a, 50)
    assert a.tolist() == [3.0, 1.0, 2.0]
