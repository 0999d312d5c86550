"""Replay compares like with like: dependencies and time with no dispatcher count the same in the
recorded row and in the replays; the default policies include the lab's own (dqn)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lepton_tui.economics.replay import ACTUAL, replay_ledger
from lepton_tui.ledger import Ledger
from tests.clirun import lepton
from tests.economics.helpers import T0, Clock, add_host, make_ledger, run_attempt

pytest.importorskip("scheduler.simulator")

WINDOW = (T0 - 1, T0 + 86400)


def _job(ledger: Ledger, at: float, after: tuple[int, ...] = ()) -> int:
    spec = {"command": "true", "project": "p", "cpus": 1, "mem_mb": 1024, "gpus": 0,
            "gpu_mem_mb": 0, "after": list(after)}  # fmt: skip
    with ledger.tx():
        return ledger.add_job(spec, "alice", at=at)


def _samples(ledger: Ledger, start: float, end: float, step: float = 60.0) -> None:
    """What a running dispatcher leaves behind: a host sample every `step` seconds."""
    with ledger.tx():
        t = start
        while t <= end:
            ledger.insert("samples", {"host": "h1", "gpu_index": -1, "at": t, "resolution": 0,
                                      "cpu_percent": 10.0})  # fmt: skip
            t += step


def _waits(ledger: Ledger) -> dict[str, float]:
    rows = replay_ledger(ledger, *WINDOW, ["fifo"]).rows
    return {r.policy: r.mean_wait_s for r in rows}


def test_a_dependency_wait_counts_alike(tmp_path: Path) -> None:
    clock = Clock()
    ledger = make_ledger(tmp_path, clock)
    add_host(ledger, "h1", cpus=4, gpus=0, gpu_mem_mb=0)
    first = _job(ledger, T0)
    second = _job(ledger, T0, after=(first,))  # could only start once `first` ended
    third = _job(ledger, T0 + 10)
    run_attempt(ledger, clock, first, "h1", T0, T0 + 1000)
    run_attempt(ledger, clock, third, "h1", T0 + 10, T0 + 500)
    run_attempt(ledger, clock, second, "h1", T0 + 1000, T0 + 1500)
    waits = _waits(ledger)
    # nobody waited for the cluster, in the recorded run or in FIFO's
    assert waits[ACTUAL] == pytest.approx(0.0, abs=1.0)
    assert waits["fifo"] == pytest.approx(waits[ACTUAL], abs=1.0)
    ledger.close()


def test_time_with_no_dispatcher_counts_alike(tmp_path: Path) -> None:
    clock = Clock()
    ledger = make_ledger(tmp_path, clock)
    add_host(ledger, "h1", cpus=4, gpus=0, gpu_mem_mb=0)
    _samples(ledger, T0, T0 + 1000)  # a dispatcher ran, stopped for an hour, came back
    _samples(ledger, T0 + 5000, T0 + 6000)
    early = _job(ledger, T0 + 100)
    stranded = _job(ledger, T0 + 2000)  # submitted while nothing dispatched
    run_attempt(ledger, clock, early, "h1", T0 + 100, T0 + 200)
    run_attempt(ledger, clock, stranded, "h1", T0 + 5000, T0 + 5300)
    waits = _waits(ledger)
    assert waits[ACTUAL] == pytest.approx(0.0, abs=1.0)
    assert waits["fifo"] == pytest.approx(waits[ACTUAL], abs=1.0)
    ledger.close()


def test_the_default_policies_include_dqn(home: Path) -> None:
    clock = Clock()
    ledger = Ledger(home / "ledger.db", clock=clock)
    add_host(ledger, "h1", cpus=4, gpus=0, gpu_mem_mb=0)
    job = _job(ledger, T0)
    run_attempt(ledger, clock, job, "h1", T0, T0 + 100)
    ledger.close()
    res = lepton(home, "replay", "--since", "2026-03-01", "--until", "2026-04-01", "--json")
    assert res.returncode == 0, res.stderr
    policies = [r["policy"] for r in json.loads(res.stdout)["rows"]]
    assert policies == ["actual", "fifo", "sjf", "backfill", "dqn"]
