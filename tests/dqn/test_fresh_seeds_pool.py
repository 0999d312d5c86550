"""`bench/dqn_fresh_seeds.py --table --pool --ci`: rows of disjoint seed sets pooled into one
row, and a bootstrap interval of the network's ratio to the best heuristic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _fresh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/dqn_fresh_seeds.py", *args],
                          capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)  # fmt: skip


def _row(first: int, net: list[float], sjf: list[float], f1: list[float]) -> dict:
    cells = {n: [[v, 1.0, 0.5] for v in vs] for n, vs in (("new", net), ("sjf", sjf), ("f1", f1))}
    cells["base"] = cells["sjf"]
    mean = {n: [sum(c[0] for c in v) / len(v), 1.0, 0.5] for n, v in cells.items()}
    return {"family": "hpc", "load": 0.7, "seeds": [first, first + len(net) - 1],
            "nets": ["new"], "new": mean["new"], "base": mean["base"],
            "heur": {"sjf": mean["sjf"], "f1": mean["f1"]}, "per_seed": cells,
            "best": min(("sjf", "f1"), key=lambda n: mean[n][0]), "cpu_s": 1.0}  # fmt: skip


def _write(path: Path, *rows: dict) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_pool_takes_the_means_over_every_seed_set(tmp_path):
    """Set one: sjf best (2 against 4), the network 2.2 (1.10x); set two: f1 best (1 against
    5), the network 1.2. Pooled over four seeds sjf is 3.5, f1 2.5, the network 1.7: 0.68x f1.
    Without --pool the two sets stay two rows."""
    a = _write(tmp_path / "a.jsonl", _row(13, [2.2, 2.2], [2.0, 2.0], [4.0, 4.0]))
    b = _write(tmp_path / "b.jsonl", _row(33, [1.2, 1.2], [5.0, 5.0], [1.0, 1.0]))
    res = _fresh("--table", a, b)
    assert res.returncode == 0, res.stderr
    rows = [ln for ln in res.stdout.splitlines() if ln.startswith("| hpc |")]
    assert len(rows) == 2 and "**1.10**" in rows[0] and "**1.20**" in rows[1]
    res = _fresh("--table", a, b, "--pool")
    assert res.returncode == 0, res.stderr
    rows = [ln for ln in res.stdout.splitlines() if ln.startswith("| hpc |")]
    assert len(rows) == 1 and "| 13-34 |" in rows[0]
    assert "**0.68**" in rows[0] and "(f1)" in rows[0]  # 1.7 / 2.5


def test_the_interval_says_whether_a_row_is_clearly_over_the_aim(tmp_path):
    """A network twice the best heuristic on every seed: the interval lies wholly above 1.05;
    one equal to it on every seed: wholly at or below."""
    bad = _row(13, [4.0, 6.0, 8.0, 10.0], [2.0, 3.0, 4.0, 5.0], [9.0] * 4)
    rows = _write(tmp_path / "bad.jsonl", bad)
    res = _fresh("--table", rows, "--ci")
    assert res.returncode == 0, res.stderr
    row = next(ln for ln in res.stdout.splitlines() if ln.startswith("| hpc |"))
    assert row.endswith(" 2.00-2.00 |")
    assert "1 rows wholly above 1.05, 0 wholly at or below it, 0 straddle it" in res.stdout
    same = _row(13, [2.0, 3.0, 4.0, 5.0], [2.0, 3.0, 4.0, 5.0], [9.0] * 4)
    res = _fresh("--table", _write(tmp_path / "same.jsonl", same), "--ci")
    assert "0 rows wholly above 1.05, 1 wholly at or below it" in res.stdout


def test_pool_refuses_overlapping_seed_sets_with_one_line(tmp_path):
    a = _write(tmp_path / "a.jsonl", _row(13, [2.0, 2.0], [2.0, 2.0], [3.0, 3.0]))
    b = _write(tmp_path / "b.jsonl", _row(14, [2.0, 2.0], [2.0, 2.0], [3.0, 3.0]))
    res = _fresh("--table", a, b, "--pool")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "overlap" in res.stderr.strip().splitlines()[-1]
