"""`lepton-tui` without a command opens the console, which needs a terminal: without one it says
so at once rather than running unseen (and busy) until killed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("args", [[], ["--demo"]])
def test_console_without_a_terminal_is_a_one_line_error(tmp_path: Path, args: list[str]) -> None:
    home = tmp_path / "state"
    try:
        res = subprocess.run(
            [sys.executable, "-m", "lepton_tui", "--home", str(home), *args],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the console ran without a terminal instead of refusing")
    assert res.returncode == 2 and res.stdout == ""
    [line] = res.stderr.splitlines()
    assert line.startswith("lepton-tui: error: the console needs a terminal")
    assert "ssh -t" in line and "Traceback" not in res.stderr
    assert not home.exists()  # nothing created
