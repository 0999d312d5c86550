"""Personal mode says when nothing dispatches its queue."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lepton_tui.cli.jobs import NO_DISPATCHER
from tests.clirun import lepton
from tests.lab.conftest import REPO


def test_queue_and_submit_say_when_no_dispatcher_runs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = lepton(home, "submit", "--", "true")
    assert res.returncode == 0 and res.stdout.strip() == "1"
    assert NO_DISPATCHER in res.stderr
    assert NO_DISPATCHER in lepton(home, "queue", columns=200).stderr
    assert NO_DISPATCHER not in lepton(home, "queue", "--json").stderr

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    serve = subprocess.Popen(
        [sys.executable, "-m", "lepton_tui", "--home", str(home), "serve", "--tick", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serve.stderr is not None
        assert "dispatcher serving" in serve.stderr.readline()  # it holds the lock now
        res = lepton(home, "submit", "--", "true")
        assert res.returncode == 0 and NO_DISPATCHER not in res.stderr
        assert NO_DISPATCHER not in lepton(home, "queue", columns=200).stderr
    finally:
        serve.terminate()
        serve.wait(15)
    assert NO_DISPATCHER in lepton(home, "queue", columns=200).stderr
