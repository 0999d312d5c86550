"""The tick's ledger side of a Slurm requeue, without a cluster: `record_poll` fed the poll
answers a real squeue gives (tests/slurm/test_requeue_runs.py has the parsing). Each run is
charged its own seconds and allocation, days the roll-up built never change afterwards, a
first run whose controller's clock lags the login node's is charged from its own start, and a
teardown (COMPLETING) splits nothing until the job shows pending."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from inventory.supervisor import AttemptStatus
from lepton_tui.dispatch import record
from lepton_tui.dispatch.common import TickResult
from lepton_tui.dispatch.hostpool import Poll
from lepton_tui.dispatch.slurm_requeue import SlurmRun
from lepton_tui.economics.prices import set_prices
from lepton_tui.ledger import Ledger
from tests.economics.helpers import T0, Clock, H, make_ledger, submit
from tests.economics.test_slurm_prices import _report_totals as totals
from tests.economics.test_slurm_prices import add_slurm_host

TOK = "aaaa11112222"


class Bed:
    """A ledger with one Slurm host priced at a CPU-second a unit, and its tick."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.led: Ledger = make_ledger(tmp_path, self.clock)
        add_slurm_host(self.led)
        set_prices(self.led, "hpc", cpu_hour=3600)

    def sent(self, at: float) -> int:
        """A 1-CPU job sent to Slurm at `at` (intent, then sbatch's job id 7)."""
        self.clock.now = at
        job = submit(self.led, self.clock, cpus=1, mem_mb=64)
        self.led.start_attempt(job, "hpc", TOK, ())
        self.led.mark_submitted(TOK, "/tmp/x", "7")
        return job

    def tick(self, at: float, status: AttemptStatus, run: SlurmRun, cpus: float = 0) -> None:
        """The poll at `at`: the attempt's status, its run, and Slurm's allocation (`cpus`)."""
        self.clock.now = at
        ctx: Any = types.SimpleNamespace(
            ledger=self.led, clock=self.clock, setting=lambda key: 120.0, pool=None,
            slurm=None, stats=None, timeout_s=5,
        )  # fmt: skip
        poll = Poll(
            host="hpc", taken_at=at, attempts={TOK: status}, slurm_runs={TOK: run},
            slurm_alloc={TOK: (cpus, 64, None)} if cpus else {},
        )  # fmt: skip
        host = self.led.get_host("hpc")
        record.record_poll(ctx, host, poll, self.led.active_attempts(), TickResult())


def running(start: float) -> AttemptStatus:
    return AttemptStatus(TOK, "running", started_at=start)


def done(start: float, end: float) -> AttemptStatus:
    return AttemptStatus(TOK, "done", exit_code=0, started_at=start, ended_at=end)


def test_split_costs_agree_across_midnight(tmp_path: Path) -> None:
    bed = Bed(tmp_path)
    job = bed.sent(T0 + 23 * H)
    s1, e1 = T0 + 23 * H + 5, T0 + 24 * H + 30
    bed.tick(T0 + 23 * H + 10, running(s1), SlurmRun(False, s1, 0, T0 + 23 * H + 1), cpus=2)
    waiting = AttemptStatus(TOK, "starting", reason="pending in Slurm (BeginTime)")
    bed.tick(T0 + 25 * H, waiting, SlurmRun(True, None, 1, e1))
    a1, a2 = bed.led.attempts_for(job)
    assert a1["cost"] == pytest.approx(2 * (e1 - s1))  # the first run's 2 CPUs
    day1 = totals(bed.led, T0, T0 + 24 * H, bed.clock.now)  # day 1 is final: the roll-up's
    s2, e2 = T0 + 25 * H + 100, T0 + 26 * H
    bed.tick(T0 + 25 * H + 200, running(s2), SlurmRun(False, s2, 1, e1), cpus=1)
    bed.tick(T0 + 26 * H + 5, done(s2, e2), SlurmRun(False, s2, 1, e1), cpus=1)
    a1, a2 = bed.led.attempts_for(job)
    assert a2["cost"] == pytest.approx(e2 - s2)  # the second run's 1 CPU
    assert totals(bed.led, T0, T0 + 24 * H, bed.clock.now) == pytest.approx(day1)
    both = totals(bed.led, T0, T0 + 2 * 24 * H, bed.clock.now)
    assert both == pytest.approx([a1["cost"] + a2["cost"]] * 4)


@pytest.mark.parametrize("seen_running", [False, True])
def test_a_first_run_on_a_controller_3s_behind_is_charged_from_its_start(
    tmp_path: Path, seen_running: bool
) -> None:
    bed = Bed(tmp_path)
    job = bed.sent(T0 + H)  # the intent, on the login node's clock
    start = T0 + H - 2.5  # Slurm started it at once, by a clock 3 s behind
    if seen_running:
        bed.tick(T0 + H + 60, running(start), SlurmRun(False, start, 0, start), cpus=1)
    bed.tick(T0 + H + 600, done(start, start + 500), SlurmRun(False, start, 0, start), cpus=1)
    (a,) = bed.led.attempts_for(job)
    assert a["cost"] == pytest.approx(500)


def test_completing_then_pending(tmp_path: Path) -> None:
    bed = Bed(tmp_path)
    job = bed.sent(T0 + H)
    s1 = T0 + H + 2
    bed.tick(T0 + H + 10, running(s1), SlurmRun(False, s1, 0, T0 + H), cpus=1)
    # the count is up while Slurm tears the run down, the submit time not reset yet
    bed.tick(T0 + H + 100, running(s1), SlurmRun(False, s1, 1, T0 + H), cpus=1)
    assert len(bed.led.attempts_for(job)) == 1
    pending = AttemptStatus(TOK, "starting")
    bed.tick(T0 + H + 105, pending, SlurmRun(True, None, 1, T0 + H + 99))
    a1, _ = bed.led.attempts_for(job)
    assert a1["ended_at"] == T0 + H + 99 and a1["state"] == "requeued"
    bed.tick(T0 + H + 110, pending, SlurmRun(True, None, 1, T0 + H + 99))
    assert len(bed.led.attempts_for(job)) == 2  # split once


def test_a_requeue_then_a_cancel_between_two_ticks_charges_the_first_run_only(
    tmp_path: Path,
) -> None:
    """Slurm requeued the job and it was cancelled while it waited, both between two ticks: the
    next row shows it ended, with the first run's start, the count up and the submit time reset
    at the requeue. The run lepton saw is charged to the requeue, the wait after it nothing."""
    bed = Bed(tmp_path)
    job = bed.sent(T0 + H)
    s1, requeued_at = T0 + H + 5, T0 + H + 100
    bed.tick(T0 + H + 10, running(s1), SlurmRun(False, s1, 0, T0 + H), cpus=1)
    cancelled = AttemptStatus(TOK, "done", exit_code=None, started_at=s1, ended_at=T0 + 2 * H)
    bed.tick(T0 + 2 * H + 10, cancelled, SlurmRun(False, s1, 1, requeued_at))
    first, second = bed.led.attempts_for(job)
    assert (first["state"], first["ended_at"]) == ("requeued", requeued_at)
    assert first["cost"] == pytest.approx(requeued_at - s1)
    assert second["ended_at"] is not None and second["cost"] == pytest.approx(0.0)
    assert totals(bed.led, T0, T0 + 3 * H, bed.clock.now) == pytest.approx([first["cost"]] * 4)
