"""The attempt wrapper's warning before the time limit (`--signal USR1@N`), then TERM at the
limit: run for real on this machine, the job a bash script that traps both."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import inventory.remote.wrapper as wrapper_module

TRAPS = (
    'trap \'echo "USR1 $LEPTON_RESTART_COUNT" >> "$LEPTON_ATTEMPT_DIR/seen"\' USR1; '
    "trap 'echo TERM >> \"$LEPTON_ATTEMPT_DIR/seen\"; exit 0' TERM; "
    "for i in $(seq 200); do sleep 0.05; done"
)


def _run(tmp_path: Path, signal: str | None, limit: float, command: str = TRAPS) -> Path:
    d = tmp_path / "1-abcdef123456"
    d.mkdir()
    (d / "command").write_text(command)
    spec = {"job_id": 1, "token": "abcdef123456", "time_limit_s": limit, "kill_grace_s": 2,
            "env": {"LEPTON_RESTART_COUNT": "3"}, "signal": signal}  # fmt: skip
    (d / "launch.json").write_text(json.dumps(spec))
    subprocess.run([sys.executable, wrapper_module.__file__, str(d)], timeout=30, check=True)
    return d


def test_warning_signal_before_the_limit_then_term(tmp_path: Path) -> None:
    d = _run(tmp_path, "USR1@2", 3.0)
    assert (d / "seen").read_text().split("\n")[:2] == ["USR1 3", "TERM"]
    end = json.loads((d / "end.json").read_text())
    assert end["timed_out"] is True and end["reason"] == "time limit"


def test_no_warning_without_signal(tmp_path: Path) -> None:
    d = _run(tmp_path, None, 1.0)
    assert (d / "seen").read_text().split() == ["TERM"]


def test_a_job_that_ends_before_the_warning_gets_none(tmp_path: Path) -> None:
    d = _run(tmp_path, "USR1@1", 30.0, command=TRAPS.replace("seq 200", "seq 2"))
    assert not (d / "seen").exists()
    assert json.loads((d / "end.json").read_text())["exit_code"] == 0
