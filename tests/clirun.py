"""Run the command line as a user does: a real process on a state directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def lepton(
    home: Path, *args: str, stdin: str | None = None, columns: int | None = None
) -> subprocess.CompletedProcess[str]:
    """`lepton-tui --home HOME ARGS...` in a subprocess; `columns` widens Rich's tables."""
    env = dict(os.environ)
    if columns:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "lepton_tui", "--home", str(home), *args],
        capture_output=True, text=True, timeout=60, input=stdin, env=env,
    )  # fmt: skip
