"""bench/placement_pairs.py: the paired statistics on hand-made numbers, one real 2-seed run, and
its refusals (issue 21's "bounded slowdown within 1 %" measured on paired seeds)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "placement_pairs.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("placement_pairs", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


pp = load()


def test_ratio_and_t_interval_by_hand() -> None:
    # ratios 1.0, 1.1, 1.0: mean 31/30, sd sqrt(3/900), t(0.975, 2 df) = 4.302653
    r = pp.ratios([2.0, 3.3, 1.0], [2.0, 3.0, 1.0])
    assert r.tolist() == pytest.approx([1.0, 1.1, 1.0])
    m, lo, hi = pp.t_interval(r)
    half = 4.302652729911275 * math.sqrt(3 / 900) / math.sqrt(3)
    assert m == pytest.approx(31 / 30)
    assert lo == pytest.approx(31 / 30 - half)
    assert hi == pytest.approx(31 / 30 + half)
    assert half == pytest.approx(0.1434218, abs=1e-6)


def test_paired_counts_and_verdict() -> None:
    p = pp.paired([2.0, 3.3, 1.0], [2.0, 3.0, 1.0])
    assert (p["higher"], p["equal"], p["n"]) == (1, 2, 3)
    assert p["sd"] == pytest.approx(math.sqrt(3 / 900))
    assert p["boot_low"] <= p["ratio"] <= p["boot_high"]
    assert 1.0 <= p["boot_low"] and p["boot_high"] <= 1.1
    # 1.96^2 sd^2 / 0.01^2 = 3.8415 * 3/900 * 10^4 = 128.05 -> 129 seeds for +-1 %
    assert p["seeds_for_margin"] == 129
    assert pp.verdict(p["low"], p["high"], identical=False) == "not resolved"


@pytest.mark.parametrize(
    ("low", "high", "identical", "expected"),
    [
        (1.0, 1.0, True, "identical"),
        (0.95, 0.999, False, "better"),
        (0.985, 1.009, False, "within 1 %"),
        (0.995, 1.0, False, "within 1 %"),
        (1.011, 1.05, False, "worse"),
        (1.005, 1.02, False, "not resolved"),
        (0.9, 1.2, False, "not resolved"),
    ],
)
def test_verdict_table(low: float, high: float, identical: bool, expected: str) -> None:
    assert pp.verdict(low, high, identical) == expected


def test_zero_over_zero_is_no_change_and_shapes_must_pair() -> None:
    assert pp.ratios([0.0, 2.0], [0.0, 4.0]).tolist() == [1.0, 0.5]
    with pytest.raises(ValueError):
        pp.ratios([1.0, 2.0], [1.0])


def test_geometric_mean_is_symmetric_where_the_mean_of_ratios_is_not() -> None:
    frag, best = [2.0, 1.0], [1.0, 2.0]  # twice as slow on one seed, twice as fast on the other
    g, lo, hi = pp.geometric(frag, best)
    assert g == pytest.approx(1.0)
    assert lo < 1.0 < hi
    assert pp.ratios(frag, best).mean() == pytest.approx(1.25)  # noise alone reads as a loss
    assert pp.ratios(best, frag).mean() == pytest.approx(1.25)  # and so does its inverse
    g3 = pp.geometric([2.0, 3.3, 1.0], [2.0, 3.0, 1.0])[0]
    assert g3 == pytest.approx(1.1 ** (1 / 3))


def test_pooled_over_rows() -> None:
    rows = [
        {"per_seed": [[1, 1.1, 1.0], [2, 1.0, 1.0]]},
        {"per_seed": [[1, 0.9, 1.0]]},
    ]
    pool = pp.pooled(rows)
    assert pool["pairs"] == 3 and pool["worse"] == 1
    assert pool["ratio"] == pytest.approx(1.0)
    assert pool["ci"][0] < 1.0 < pool["ci"][1]
    assert pool["geo"] == pytest.approx((1.1 * 0.9) ** (1 / 3))


def test_two_real_seeds_give_a_row_with_its_keys(tmp_path: Path) -> None:
    # 250 lab jobs: 2 nodes of 8 GPUs, so a job's node has an alternative
    rows = pp.run_pairs(["lab"], [0.9], ["sjf"], [1000, 1001], jobs=250)
    assert len(rows) == 1
    row = rows[0]
    for key in (
        "family", "load", "policy", "seeds", "bsld_fragmentation", "bsld_bestfit", "bsld_ratio",
        "bsld_ci", "bsld_boot_ci", "worse_seeds", "identical_seeds", "p95_ratio", "p95_ci",
        "util_metric", "util_ratio", "util_ci", "makespan_ratio", "verdict", "per_seed",
        "seeds_for_1pct", "bsld_geo", "bsld_geo_ci", "verdict_geo",
    ):  # fmt: skip
        assert key in row, key
    assert (row["family"], row["load"], row["policy"], row["seeds"]) == (
        "lab",
        0.9,
        "sjf",
        [1000, 1001],
    )
    assert row["util_metric"] == "gpu_util_arrivals"
    # the ratio is the mean of the per-seed ratios of the two runs on the same workload
    per = row["per_seed"]
    assert row["bsld_ratio"] == pytest.approx(sum(f / b for _, f, b in per) / 2)
    assert row["bsld_ci"][0] <= row["bsld_ratio"] <= row["bsld_ci"][1]
    assert all(f >= 1.0 and b >= 1.0 for _, f, b in per)
    # the saved rows render as the Markdown table of the docs
    saved = tmp_path / "rows.json"
    saved.write_text(json.dumps(rows))
    res = run_script("--render", str(saved))
    assert res.returncode == 0, res.stderr
    assert f"| lab | 0.9 | sjf | {row['bsld_bestfit']:.3f} → " in res.stdout
    assert f"| {row['verdict']} / {row['verdict_geo']} |" in res.stdout


def test_profile_parts_add_up_to_the_mean_change() -> None:
    seeds = [1000, 1001]
    row = pp.run_pairs(["lab"], [0.9], ["sjf"], seeds, jobs=250)[0]
    change = sum(f - b for _, f, b in row["per_seed"]) / len(seeds)
    groups = pp.profile("lab", 0.9, "sjf", seeds, 250, pp.TRACE)
    assert sum(g["part_of_change"] for g in groups) == pytest.approx(change, abs=1e-9)
    assert change != 0.0  # 2 nodes: the placements differ on these seeds
    assert {g["group"] for g in groups} >= {"sweep / 1 GPU", "train / 8 GPU"}
    assert sum(g["jobs_per_seed"] for g in groups) == pytest.approx(250)


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--families", "hpc"), "no GPUs"),
        (("--policies", "fifo"), "does not place by fragmentation"),
        (("--loads", "x"), "--loads"),
        (("--profile", "lab:0.9"), "FAMILY:LOAD:POLICY"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: tuple[str, ...], words: str) -> None:
    res = run_script(*args)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1 and words in res.stderr
