"""`python bench/X.py` puts bench/ first on sys.path: a bench script named like a standard module
(bench/socket.py once) replaces it for every import in that process, the project's included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.registry import EXPERIMENTAL_POLICIES, POLICY_NAMES, make_policy

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_no_bench_script_shadows_a_standard_module() -> None:
    names = {p.stem for p in BENCH.glob("*.py")}
    assert names, "bench/ has no scripts"
    assert sorted(names & set(sys.stdlib_module_names)) == []


def test_unknown_bench_policy_lists_the_experimental_ones() -> None:
    """`bench --policies nope` names every policy it accepts, `dqn-self` and the other
    experimental ones included (it listed only the ones settings offer)."""
    res = subprocess.run(
        [sys.executable, "-m", "lepton_tui", "bench", "--policies", "fifo,nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert "unknown policy 'nope'" in lines[0]
    listed = lines[0].split("choose from ", 1)[1]
    assert EXPERIMENTAL_POLICIES and all(
        p in listed for p in (*POLICY_NAMES, *EXPERIMENTAL_POLICIES)
    )
    with pytest.raises(ValueError, match="experimental: " + ", ".join(EXPERIMENTAL_POLICIES)):
        make_policy("nope")
