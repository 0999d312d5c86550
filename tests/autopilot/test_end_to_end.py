"""`settings set policy auto` end to end: `serve` on the loopback sshd hosts, the autopilot's
worker runs a round on the jobs that really ran, records it, and the dispatcher uses it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lepton_tui import autopilot as ap
from lepton_tui.service import Service
from tests.dispatch.helpers import add_bed_hosts, all_ended, wait_until

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


def _cli(home: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "lepton_tui", "--home", str(home), *args],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_policy_auto_end_to_end_with_serve(sshbed, tmp_path: Path, home: Path) -> None:
    svc = Service.open(home)
    add_bed_hosts(svc, sshbed(2), root=tmp_path, cpus=2, mem_mb=4096)
    _cli(home, "settings", "set", "policy", "fifo")  # pinned while the history is made
    _cli(home, "settings", "set", "autopilot_min_jobs", "6")
    _cli(home, "settings", "set", "autopilot_period_s", "10")
    for i in range(8):
        svc.submit(command=f"sleep 0.{2 + i % 4}", cpus=1 + i % 2, mem="512M")
    serve = subprocess.Popen([sys.executable, "-m", "lepton_tui", "serve", "--tick", "0.2"],
                             env={**os.environ, "LEPTON_HOME": str(home)},
                             stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_until(lambda: all_ended(svc), timeout=120, pause=0.2)
        assert ap.latest(svc.ledger) is None  # pinned: the worker ran no round
        assert _cli(home, "settings", "set", "policy", "auto").strip() == "policy = auto"
        wait_until(lambda: ap.latest(svc.ledger) is not None, timeout=120, pause=0.2)
        decision = ap.latest(svc.ledger)
        assert decision is not None and not decision.fallback, decision
        assert decision.jobs == 8 and decision.policy in ap.candidates()
        assert {s.policy for s in decision.table} == set(ap.candidates())
        event = svc.ledger.query_one("SELECT actor FROM events WHERE kind = ?", (ap.EVENT,))
        assert event == {"actor": "autopilot"}  # the worker's round, not ours
        _cli(home, "settings", "set", "autopilot_period_s", "3600")  # no second round now
        ids = [svc.submit(command="sleep 0.2", cpus=1, mem="512M") for _ in range(4)]
        wait_until(lambda: all_ended(svc), timeout=120, pause=0.2)
        for job_id in ids:
            (attempt,) = svc.ledger.attempts_for(job_id)
            assert attempt["policy"] == decision.policy
        shown = json.loads(_cli(home, "autopilot", "--json"))
        assert shown["setting"] == "auto" and not shown["pinned"]
        assert shown["policy"] == decision.policy and shown["why"] == decision.reason
        assert len(shown["last_round"]["table"]) == len(ap.candidates())
    finally:
        serve.send_signal(signal.SIGTERM)
        _, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err.decode()
    svc.close()
