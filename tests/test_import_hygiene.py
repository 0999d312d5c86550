"""The layers stay apart: the core runs without the screen, the console without torch.

Each check imports in a fresh interpreter and inspects `sys.modules` (harlequin's habit).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def loaded_after(module: str) -> set[str]:
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in json.loads(out.stdout)}


@pytest.mark.parametrize(
    ("module", "banned"),
    [
        (
            "scheduler.model",
            {"textual", "paramiko", "sqlite3", "sqlite_utils", "torch", "lepton_tui", "inventory"},
        ),
        (
            "scheduler.simulator",
            {"textual", "paramiko", "sqlite3", "sqlite_utils", "torch", "lepton_tui", "inventory"},
        ),
        (
            "scheduler.heuristics",
            {"textual", "paramiko", "sqlite3", "torch", "lepton_tui", "inventory"},
        ),
        ("inventory", {"textual", "scheduler", "lepton_tui", "torch"}),
        ("lepton_tui.cli", {"textual", "torch", "scipy", "paramiko"}),
        ("lepton_tui.service", {"textual", "torch"}),
    ],
)
def test_layers(module: str, banned: set[str]) -> None:
    assert not (loaded_after(module) & banned)
