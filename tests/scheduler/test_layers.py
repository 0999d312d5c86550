"""scheduler/ stays pure: no screen, SSH, SQLite, torch or app imports; scipy only for the ILP."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

BANNED = {"textual", "paramiko", "sqlite3", "sqlite_utils", "torch", "lepton_tui", "inventory"}


def loaded_after(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in json.loads(out.stdout)}


@pytest.mark.parametrize(
    ("module", "scipy_allowed"),
    [
        ("scheduler.model", False),
        ("scheduler.simulator", False),
        ("scheduler.workloads", False),
        ("scheduler.heuristics", False),
        ("scheduler.registry", False),
        ("scheduler.metrics", False),
        ("scheduler.snapshot", False),
        ("scheduler.bench", False),
        ("scheduler.ilp", True),
    ],
)
def test_scheduler_modules_stay_pure(module: str, scipy_allowed: bool) -> None:
    loaded = loaded_after(module)
    assert not loaded & BANNED
    if not scipy_allowed:
        assert "scipy" not in loaded
