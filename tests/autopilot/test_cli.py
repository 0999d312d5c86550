"""`lepton-tui autopilot` and `autopilot run`, and `settings set policy`, as a user runs them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from lepton_tui import autopilot as ap
from lepton_tui.ledger import Ledger
from lepton_tui.service import Service
from tests.clirun import lepton
from tests.economics.helpers import Clock
from tests.economics.helpers import record_history as record

pytest.importorskip("scheduler.simulator")


def _events(home: Path) -> int:
    ledger = Ledger(home / "ledger.db")
    try:
        return int(ledger.query_one("SELECT COUNT(*) AS n FROM events")["n"])
    finally:
        ledger.close()


def test_show_before_any_round(home: Path) -> None:
    Service.open(home).close()
    out = lepton(home, "autopilot")
    assert out.returncode == 0, out.stderr
    assert "policy backfill (auto)" in out.stdout
    assert "no autopilot round yet" in out.stdout
    shown = json.loads(lepton(home, "autopilot", "--json").stdout)
    assert shown["setting"] == "auto" and shown["last_round"] is None
    assert shown["period_s"] == 3600 and shown["min_jobs"] == 20


def test_run_a_round_now_and_show_the_table(home: Path) -> None:
    clock = Clock(now=time.time() - 86400)
    ledger = Ledger(home / "ledger.db", clock=clock)
    record(ledger, clock, "fifo", jobs=60, seed=3, start=clock.now)
    ledger.close()
    Service.open(home).close()  # the owner (an admin) is this user
    out = lepton(home, "autopilot", "run", "--json")
    assert out.returncode == 0, out.stderr
    state = json.loads(out.stdout)
    last = state["last_round"]
    assert state["policy"] == last["policy"] and not last["fallback"] and last["jobs"] == 60
    assert [r["policy"] for r in last["table"]] != [] and len(last["table"]) == len(ap.candidates())
    objectives = [r["objective"] for r in last["table"]]
    assert objectives == sorted(objectives) and last["policy"] == last["table"][0]["policy"]
    text = lepton(home, "autopilot", columns=160).stdout
    assert f"{last['policy']} *" in text and "OBJECTIVE" in text and "last round" in text
    # pinned: a round still shows its table, but the pinned policy runs
    assert lepton(home, "settings", "set", "policy", "TETRIS").stdout.strip() == "policy = tetris"
    pinned = json.loads(lepton(home, "autopilot", "run", "--json").stdout)
    assert pinned["pinned"] and pinned["policy"] == "tetris" and "pinned" in pinned["why"]
    assert lepton(home, "settings", "set", "policy", "auto").returncode == 0
    assert json.loads(lepton(home, "autopilot", "--json").stdout)["policy"] == last["policy"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("settings", "set", "policy", "bogus"), "unknown policy 'bogus'"),
        (("settings", "set", "autopilot_period_s", "5s"), "between 10s"),
        (("settings", "set", "autopilot_min_jobs", "0"), "autopilot_min_jobs"),
        (("settings", "set", "autopilot_window_s", "soon"), "autopilot_window_s"),
    ],
)
def test_bad_settings_are_refused_and_nothing_written(home: Path, args, message) -> None:
    Service.open(home).close()
    before = _events(home)
    out = lepton(home, *args)
    assert out.returncode == 2 and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert _events(home) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root is always an admin")
def test_only_admins_run_a_round(home: Path) -> None:
    svc = Service.open(home)
    svc.ledger.set_setting("owner", "somebody-else")
    svc.close()
    before = _events(home)
    out = lepton(home, "autopilot", "run")
    assert out.returncode != 0 and "only admins may run an autopilot round" in out.stderr
    assert "Traceback" not in out.stderr
    assert _events(home) == before
