"""The package installs and its command answers."""

import subprocess
import sys


def test_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lepton_tui", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "lepton-tui, version 0.1.0" in out.stdout
