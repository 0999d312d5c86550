"""A round on a real recorded history: the best policy wins and the dispatcher runs it; too little
history runs the fallback; a pinned policy is never switched; a round killed mid-replay keeps the
previous choice."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lepton_tui import autopilot as ap
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.economics_replay import replay_ledger
from lepton_tui.service import Service
from tests.dispatch.helpers import wait_until
from tests.economics.helpers import T0, Clock, make_ledger
from tests.economics.helpers import record_history as record

pytest.importorskip("scheduler.simulator")

NOW = T0 + 2 * 86400  # two days after the recorded history began


def _history(tmp_path: Path, jobs: int = 80, start: float = T0):
    clock = Clock(now=start)
    ledger = make_ledger(tmp_path, clock)
    record(ledger, clock, "fifo", jobs=jobs, seed=3, start=start)
    return ledger, clock


def test_a_round_picks_the_best_policy_and_the_dispatcher_runs_it(tmp_path: Path) -> None:
    ledger, _ = _history(tmp_path)
    decision = ap.run_round(ledger, NOW)
    # the same replay, policy by policy, done here by hand
    by_hand = {}
    for name in ap.candidates():
        rows = replay_ledger(ledger, NOW - 7 * 86400, NOW, [name]).rows
        by_hand[name] = rows[1].mean_bounded_slowdown
    assert "ilp" not in by_hand and {"fifo", "backfill", "sjf"} <= set(by_hand)
    assert decision.policy == min(by_hand, key=by_hand.__getitem__)
    assert not decision.fallback and decision.jobs == 80
    assert {s.policy for s in decision.table} == set(by_hand)
    assert [s.objective for s in decision.table] == sorted(by_hand.values())
    # what was recorded (fifo) is clearly beaten
    assert by_hand["fifo"] > 1.2 * by_hand[decision.policy]
    assert decision.policy in decision.reason and "next" in decision.reason
    # recorded: a new ledger object (a restart) reads it back, and the dispatcher runs it
    ledger.close()
    svc = Service.open(tmp_path)
    assert svc.settings().get("policy") is None  # auto by default
    d = Dispatcher(svc)
    assert d.policy().name == decision.policy
    assert ap.policy_in_force(svc.ledger) == (decision.policy, decision.reason)
    d.close()
    svc.close()


def test_the_cost_weight_enters_the_objective(tmp_path: Path) -> None:
    ledger, _ = _history(tmp_path)
    ledger.set_setting("cost_weight", 2.0)
    decision = ap.run_round(ledger, NOW)
    assert decision.cost_weight == 2.0
    for s in decision.table:
        assert s.objective == pytest.approx(s.avg_bounded_slowdown + 2.0 * s.cost)
    ledger.close()


def test_too_little_history_runs_the_fallback_and_says_why(tmp_path: Path) -> None:
    ledger, _ = _history(tmp_path, jobs=10)
    decision = ap.run_round(ledger, NOW)
    assert decision.policy == ap.FALLBACK and decision.fallback
    assert "only 10 ended job(s)" in decision.reason and "autopilot_min_jobs" in decision.reason
    assert decision.table == []
    ledger.set_setting("autopilot_min_jobs", 5)
    decision = ap.run_round(ledger, NOW + 1)
    assert not decision.fallback and len(decision.table) == len(ap.candidates())
    ledger.close()


def test_no_round_yet_runs_the_fallback(tmp_path: Path) -> None:
    svc = Service.open(tmp_path)
    d = Dispatcher(svc)
    assert d.policy().name == ap.FALLBACK
    assert "no autopilot round yet" in ap.policy_in_force(svc.ledger)[1]
    d.close()
    svc.close()


def test_a_pinned_policy_is_not_switched(tmp_path: Path) -> None:
    ledger, _ = _history(tmp_path)
    first = ap.run_round(ledger, NOW)
    assert first.policy != "tetris"
    ledger.set_setting("policy", "tetris")
    assert not ap.due(ledger, NOW + 30 * 86400)  # the worker never runs a round when pinned
    worker = ap.AutopilotWorker(tmp_path, ledger.path, threading.Event())
    worker._check(ledger)
    assert worker.rounds == 0
    assert ap.latest(ledger).at == first.at
    ap.run_round(ledger, NOW + 1)  # an admin's `autopilot run` records, but does not switch
    assert ap.policy_in_force(ledger)[0] == "tetris"
    ledger.close()
    svc = Service.open(tmp_path)
    d = Dispatcher(svc)
    assert d.policy().name == "tetris"
    svc.set_setting("policy", "auto")  # unpinned: the autopilot's choice again
    assert d.policy().name == first.policy
    d.close()
    svc.close()


def test_a_round_is_due_once_a_period(tmp_path: Path) -> None:
    ledger, _ = _history(tmp_path, jobs=10)
    assert ap.due(ledger, NOW)
    ap.run_round(ledger, NOW)
    assert not ap.due(ledger, NOW + 3599)
    assert ap.due(ledger, NOW + 3600)
    ledger.close()


def test_a_round_killed_mid_replay_keeps_the_previous_choice(tmp_path: Path) -> None:
    start = time.time() - 86400  # the child replays the real clock's last week
    ledger, _ = _history(tmp_path, start=start)
    ledger.set_setting("autopilot_min_jobs", 1000)
    before = ap.run_round(ledger)  # a fallback: too few jobs for 1000
    assert before.fallback
    ledger.set_setting("autopilot_min_jobs", 20)
    hold = tmp_path / "hold"
    hold.touch()
    env = {**os.environ, ap.HOLD_ENV: str(hold)}
    cmd = [sys.executable, "-m", "lepton_tui.autopilot", "--home", str(tmp_path), "--force"]
    child = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: Path(f"{hold}.reached").exists() or child.poll() is not None, 60)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert Path(f"{hold}.reached").exists(), child.stderr.read().decode() if child.stderr else ""
    starts = ledger.query("SELECT COUNT(*) AS n FROM events WHERE kind = ?", (ap.EVENT_START,))
    assert starts[0]["n"] == 2  # the killed round had begun
    after = ap.latest(ledger)
    assert after is not None and after.at == before.at and after.fallback
    assert ap.policy_in_force(ledger)[0] == ap.FALLBACK
    hold.unlink()
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert not ap.latest(ledger).fallback
    ledger.close()


def test_a_round_that_outlives_its_limit_is_stopped(tmp_path: Path, monkeypatch) -> None:
    start = time.time() - 86400
    ledger, _ = _history(tmp_path, start=start)
    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv(ap.HOLD_ENV, str(hold))
    worker = ap.AutopilotWorker(tmp_path, ledger.path, threading.Event())
    worker.limit_s = 0.0  # past its limit as soon as it has started
    worker._round()  # held mid-replay by the seam, so it cannot finish in time
    assert worker.rounds == 1
    assert ap.latest(ledger) is None  # stopped before it recorded anything
    assert ap.policy_in_force(ledger)[0] == ap.FALLBACK
    # nothing is left stuck: the round's child, unhindered, records a round (whether the stopped
    # round had said it began depends on how fast its child started, so --force: not `due`)
    hold.unlink()
    env = dict(os.environ)
    env.pop(ap.HOLD_ENV, None)
    done = subprocess.run(
        [sys.executable, "-m", "lepton_tui.autopilot", "--home", str(tmp_path), "--force"],
        env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    decision = ap.latest(ledger)
    assert decision is not None and not decision.fallback
    ledger.close()


def test_choose_is_the_lowest_objective_among_complete_replays() -> None:
    def row(name: str, objective: float, finished: int = 10) -> ap.Standing:
        return ap.Standing(name, objective, objective, 0.0, 0.0, finished)

    table = [row("fifo", 2.0), row("sjf", 1.5), row("dqn", 1.2, finished=7), row("x", math.inf)]
    assert ap.choose(table, None).policy == "sjf"  # dqn left jobs unfinished
    tied = [row("fifo", 1.5), row("sjf", 1.5)]
    assert ap.choose(tied, None).policy == "fifo"  # the registry's order
    assert ap.choose(tied, "sjf").policy == "sjf"  # a tie keeps the current policy
    assert ap.choose([row("x", math.inf)], None) is None
    assert ap.objective(2.0, 10.0, 0.5) == 7.0 and ap.objective(math.nan, 1.0, 0.0) == math.inf
