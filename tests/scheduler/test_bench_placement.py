"""`lepton-tui bench --placement`: the heuristics' node choice, so the scheduling rows can be
measured with best fit (the previous placement) beside fragmentation from the same command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "lepton_tui", "bench", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_placement_bestfit_changes_the_heuristics_node_choice() -> None:
    # 300 lab jobs on 8 nodes at load 0.9, seed 0: SJF's bounded slowdown differs by placement
    common = ("--workload", "lab", "--jobs", "300", "--nodes", "8", "--policies", "sjf")
    rows = {}
    for placement in ("bestfit", "fragmentation"):
        res = bench(*common, "--load", "0.9", "--placement", placement, "--json")
        assert res.returncode == 0, res.stderr
        rows[placement] = json.loads(res.stdout)[0]["avg_bounded_slowdown"]
    assert rows["bestfit"] != rows["fragmentation"]
    default = bench(*common, "--load", "0.9", "--json")
    assert json.loads(default.stdout)[0]["avg_bounded_slowdown"] == rows["fragmentation"]


def test_an_unknown_placement_is_refused_in_one_line() -> None:
    res = bench("--workload", "lab", "--jobs", "10", "--placement", "nope")
    assert res.returncode == 2
    assert "--placement" in res.stderr and "Traceback" not in res.stderr
