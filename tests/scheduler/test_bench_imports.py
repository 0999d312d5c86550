"""`lepton-tui bench` loads only what the replay needs: no ledger, economics, ILP solver, torch,
textual or Rich for a heuristic with the default cost weight (counted through `sys.modules` in a
fresh process), and --cost-weight is still checked as the setting is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BANNED = {
    "lepton_tui.ledger",
    "lepton_tui.economics",
    "sqlite_utils",
    "scipy",
    "torch",
    "textual",
    "rich",
    "scheduler.ilp",
    "numpy.ma",
}


def run_cli(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    code = (
        "import sys, json, runpy, atexit\n"
        "atexit.register(lambda: sys.__stderr__.write('\\nMODULES ' + json.dumps("
        "sorted(sys.modules)) + '\\n'))\n"
        f"sys.argv = ['lepton-tui', *{list(args)!r}]\n"
        "runpy.run_module('lepton_tui', run_name='__main__')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert "Traceback" not in res.stderr, res.stderr
    line = [x for x in res.stderr.splitlines() if x.startswith("MODULES ")][-1]
    return res, set(json.loads(line.removeprefix("MODULES ")))


@pytest.mark.parametrize("policy", ["backfill", "sjf", "fifo"])
def test_bench_loads_no_heavy_module(policy: str) -> None:
    args = ("bench", "--workload", "lab", "--jobs", "60", "--nodes", "2", "--json")
    res, mods = run_cli(*args, "--policies", policy)
    assert res.returncode == 0
    assert json.loads(res.stdout)[0]["policy"] == policy
    loaded = {m for m in mods if m in BANNED or m.split(".")[0] in BANNED}
    loaded |= {m for m in mods for b in BANNED if m.startswith(b + ".")}
    assert not loaded


def test_cost_weight_still_checked() -> None:
    base = ("bench", "--workload", "lab", "--jobs", "40", "--nodes", "2", "--policies", "sjf")
    res, _ = run_cli(*base, "--cost-weight", "-1")
    assert res.returncode == 2
    assert "cost weight" in res.stderr
    res, mods = run_cli(*base, "--cost-weight", "0.5", "--json")
    assert res.returncode == 0
    assert "lepton_tui.economics.prices" in mods  # a weight given: checked by the setting's rule
