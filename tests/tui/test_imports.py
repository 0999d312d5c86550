"""The console never imports torch (1.15 s and 226 MB here); nor does the demo."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(out.stdout.split())


def test_console_and_demo_import_no_torch(tmp_path) -> None:
    mods = _modules_after(
        "import lepton_tui.cli.console, lepton_tui.app, lepton_tui.demo\n"
        "from lepton_tui.app import make_app\n"
        f"app = make_app(home={str(tmp_path)!r}, dispatch=False)\n"
        "for name in ('overview', 'hosts', 'queue', 'cost', 'scheduler'):\n"
        "    app.MODES[name]()\n"
        "import lepton_tui.screens.job, lepton_tui.screens.addhost, lepton_tui.screens.submit\n"
        "import lepton_tui.screens.help, lepton_tui.screens.confirm\n"
    )
    assert "textual" in mods  # the check really imported the console
    assert "lepton_tui.screens.overview" in mods
    assert not {m for m in mods if m == "torch" or m.startswith("torch.")}
