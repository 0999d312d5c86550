"""Notifications counted exactly once across kill -9 of the dispatcher: a real `serve` process
on the sshd test bed, killed while a hook command runs and while endings wait to be told, then
restarted; the hook appends a line per notification to a file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from lepton_tui.service import Service
from tests.dispatch.helpers import add_bed_hosts, all_ended, wait_until

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

JOBS = 12


def test_each_ending_told_exactly_once_across_kill_9(
    svc: Service, sshbed, tmp_path: Path, home: Path
) -> None:
    add_bed_hosts(svc, sshbed(1), root=tmp_path / "roots", cpus=4)
    out = tmp_path / "out"
    out.mkdir()
    # the hook marks that it started, takes a while, then appends its line: a kill while it
    # runs lands after the claim, never between the claim and the hand-over
    svc.set_setting(
        "notify_command",
        f'touch {out}/started-$LEPTON_JOB_ID; sleep 0.4; '
        f'echo "$LEPTON_JOB_ID $LEPTON_NOTIFY_EVENT" >> {out}/told',
    )  # fmt: skip
    ids = [
        svc.submit(command=f"sleep 0.{i % 4}; exit {1 if i % 3 == 0 else 0}", notify=True)
        for i in range(JOBS)
    ]
    env = {**os.environ, "LEPTON_HOME": str(home)}
    serve = [sys.executable, "-m", "lepton_tui", "serve", "--tick", "0.2"]
    db = sqlite3.connect(str(home / "ledger.db"), timeout=30)

    def started() -> set[str]:
        return {p.name.split("-", 1)[1] for p in out.glob("started-*")}

    def told() -> list[str]:
        told_file = out / "told"
        return told_file.read_text().splitlines() if told_file.exists() else []

    def mid_send(at_least: int) -> bool:
        """A hook is running (started, line not yet written), after `at_least` started."""
        done = {line.split()[0] for line in told()}
        return len(started()) >= at_least and bool(started() - done)

    kills = []
    for at_least in (2, 6):
        proc = subprocess.Popen(serve, env=env, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda n=at_least: mid_send(n), timeout=90, pause=0.01)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        kills.append(
            dict(db.execute("SELECT state, COUNT(*) FROM notifications GROUP BY state").fetchall())
        )
    proc = subprocess.Popen(serve, env=env, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: all_ended(svc), timeout=120, pause=0.2)
        wait_until(
            lambda: db.execute(
                "SELECT COUNT(*) FROM notifications WHERE state IN ('sent', 'unknown')"
            ).fetchone()[0] == JOBS,
            timeout=60, pause=0.2,
        )  # fmt: skip
        time.sleep(1.0)  # a hook left running by a killed dispatcher finishes its line
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert all(k.get("sending") for k in kills), kills  # each kill landed mid-send
    states = dict(db.execute("SELECT state, COUNT(*) FROM notifications GROUP BY state"))
    assert states.get("unknown") == 2, states  # the two cut short: recorded, not sent again
    db.close()
    lines = told()
    counts = Counter(line.split()[0] for line in lines)
    assert counts == Counter({str(i): 1 for i in ids}), lines
    for job_id in ids:
        want = "fail" if svc.get_job(job_id)["exit_code"] else "end"
        assert f"{job_id} {want}" in lines
