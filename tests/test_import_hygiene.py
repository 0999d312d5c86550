"""What the import contract (`[tool.importlinter]` in pyproject.toml, run by `lint-imports` in
scripts/test) cannot say, checked at run time in a fresh interpreter: the scheduler does no I/O
(it loads no module that reaches a socket, a process, a database or a screen), and loading the
run-time policy and the planners loads neither torch nor scipy (scipy is imported by the ILP
planner only when it plans).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCHEDULER_AT_RUN_TIME = (
    "scheduler.model", "scheduler.simulator", "scheduler.workloads", "scheduler.heuristics",
    "scheduler.registry", "scheduler.metrics", "scheduler.snapshot", "scheduler.bench",
    "scheduler.policy", "scheduler.features",
)  # fmt: skip
IO = {
    "socket", "ssl", "http", "asyncio", "select", "selectors", "subprocess", "multiprocessing",
    "sqlite3", "sqlite_utils", "paramiko", "textual",
}  # fmt: skip


def _loaded_after(modules: tuple[str, ...]) -> set[str]:
    code = f"import sys, json, {', '.join(modules)}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return {name.split(".")[0] for name in json.loads(out.stdout)}


def test_the_scheduler_does_no_io_and_loads_no_torch() -> None:
    loaded = _loaded_after(SCHEDULER_AT_RUN_TIME)
    assert "scheduler" in loaded and "numpy" in loaded  # the check really imported it
    assert not loaded & IO
    assert not loaded & {"torch", "scipy", "lepton_tui", "inventory"}
