"""`python bench/X.py` puts bench/ first on sys.path: a bench script named like a standard module
(bench/socket.py once) replaces it for every import in that process, the project's included."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_no_bench_script_shadows_a_standard_module() -> None:
    names = {p.stem for p in BENCH.glob("*.py")}
    assert names, "bench/ has no scripts"
    assert sorted(names & set(sys.stdlib_module_names)) == []
