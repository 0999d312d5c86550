"""The tick's ledger side of a Slurm requeue, without a cluster: `record_poll` fed the poll
answers a real squeue gives (tests/slurm/test_requeue_runs.py has the parsing). Each run is
charged its own seconds and allocation, days the roll-up built never change afterwards, a
first run whose controller's clock lags the login node's is charged from its own start, and a
teardown (COMPLETING) splits nothing until the job shows pending."""

from __future__ import annotations

import types

import pytest

from inventory.supervisor import AttemptStatus
from lepton_tui.dispatch import record
from lepton_tui.dispatch.common import TickResult
from lepton_tui.dispatch.hostpool import Poll
from lepton_tui.dispatch.slurm_requeue import SlurmRun
from lepton_tui.economics.prices import set_prices
from lepton_tui.economics.report import cost_report
from tests.economics.helpers import T0, Clock, H, make_ledger, submit
from tests.economics.test_slurm_prices import add_slurm_host

TOK = "aaaa11112222"


def ctx_of(led, clock):
    return types.SimpleNamespace(
        ledger=led,
        clock=clock,
        setting=lambda k: 120.0,
        pool=None,
        slurm=None,
        stats=None,
        timeout_s=5,
    )


def tick(led, clock, status, run=None, alloc=None):
    host = led.get_host("hpc")
    p = Poll(
        host="hpc",
        taken_at=clock.now,
        attempts={TOK: status},
        slurm_runs={TOK: run} if run else {},
        slurm_alloc={TOK: alloc} if alloc else {},
    )
    return record.record_poll(ctx_of(led, clock), host, p, led.active_attempts(), TickResult())


def totals(led, since, until, now):
    return [
        cost_report(led, since, until, by, now=now, rollup=r).total.cost
        for by in ("user", "day")
        for r in (True, False)
    ]


def setup(tmp_path):
    clock = Clock()
    led = make_ledger(tmp_path, clock)
    add_slurm_host(led)
    set_prices(led, "hpc", cpu_hour=3600)  # a CPU-second costs 1
    return led, clock


def test_split_costs_agree_across_midnight(tmp_path):
    led, clock = setup(tmp_path)
    clock.now = T0 + 23 * H
    job = submit(led, clock, cpus=1, mem_mb=64)
    led.start_attempt(job, "hpc", TOK, ())
    led.mark_submitted(TOK, "/tmp/x", "7")
    s1 = T0 + 23 * H + 5
    clock.now = T0 + 23 * H + 10
    tick(
        led,
        clock,
        AttemptStatus(TOK, "running", started_at=s1),
        SlurmRun(False, s1, 0, T0 + 23 * H + 1),
        (2.0, 64, None),
    )
    e1 = T0 + 24 * H + 30
    clock.now = T0 + 25 * H
    tick(
        led,
        clock,
        AttemptStatus(TOK, "starting", reason="pending in Slurm (BeginTime)"),
        SlurmRun(True, None, 1, e1),
    )
    a1, a2 = led.attempts_for(job)
    assert a1["cost"] == pytest.approx(2 * (e1 - s1))
    # day 1 (T0..T0+24h) is now final: build the roll-up once
    d1 = totals(led, T0, T0 + 24 * H, clock.now)
    s2 = T0 + 25 * H + 100
    clock.now = T0 + 25 * H + 200
    tick(
        led,
        clock,
        AttemptStatus(TOK, "running", started_at=s2),
        SlurmRun(False, s2, 1, e1),
        (1.0, 64, None),
    )
    e2 = T0 + 26 * H
    clock.now = T0 + 26 * H + 5
    tick(
        led,
        clock,
        AttemptStatus(TOK, "done", exit_code=0, started_at=s2, ended_at=e2),
        SlurmRun(False, s2, 1, e1),
        (1.0, 64, None),
    )
    a1, a2 = led.attempts_for(job)
    assert a2["cost"] == pytest.approx(e2 - s2)
    assert totals(led, T0, T0 + 24 * H, clock.now) == pytest.approx(d1)
    assert totals(led, T0, T0 + 2 * 24 * H, clock.now) == pytest.approx(
        [a1["cost"] + a2["cost"]] * 4
    )


def test_first_attempt_with_controller_clock_3s_behind(tmp_path):
    led, clock = setup(tmp_path)
    clock.now = T0 + H
    job = submit(led, clock, cpus=1, mem_mb=64)
    led.start_attempt(job, "hpc", TOK, ())  # intent at T0+H (lepton clock)
    led.mark_submitted(TOK, "/tmp/x", "7")
    start = T0 + H - 2.5  # Slurm started it at once; the controller's clock is 3 s behind
    clock.now = T0 + H + 600
    tick(
        led,
        clock,
        AttemptStatus(TOK, "done", exit_code=0, started_at=start, ended_at=start + 500),
        SlurmRun(False, start, 0, start - 0.5),
        (1.0, 64, None),
    )
    (a,) = led.attempts_for(job)
    assert a["cost"] == pytest.approx(500)


def test_first_attempt_running_skew(tmp_path):
    led, clock = setup(tmp_path)
    clock.now = T0 + H
    job = submit(led, clock, cpus=1, mem_mb=64)
    led.start_attempt(job, "hpc", TOK, ())
    led.mark_submitted(TOK, "/tmp/x", "7")
    start = T0 + H - 2.5
    clock.now = T0 + H + 60
    tick(
        led,
        clock,
        AttemptStatus(TOK, "running", started_at=start),
        SlurmRun(False, start, 0, start),
        (1.0, 64, None),
    )
    clock.now = T0 + H + 600
    tick(
        led,
        clock,
        AttemptStatus(TOK, "done", exit_code=0, started_at=start, ended_at=start + 500),
        SlurmRun(False, start, 0, start),
        (1.0, 64, None),
    )
    (a,) = led.attempts_for(job)
    assert a["cost"] == pytest.approx(500)


def test_completing_then_pending(tmp_path):
    led, clock = setup(tmp_path)
    clock.now = T0 + H
    job = submit(led, clock, cpus=1, mem_mb=64)
    led.start_attempt(job, "hpc", TOK, ())
    led.mark_submitted(TOK, "/tmp/x", "7")
    s1 = T0 + H + 2
    clock.now = T0 + H + 10
    tick(
        led,
        clock,
        AttemptStatus(TOK, "running", started_at=s1),
        SlurmRun(False, s1, 0, T0 + H),
        (1.0, 64, None),
    )
    clock.now = T0 + H + 100
    tick(
        led,
        clock,
        AttemptStatus(TOK, "running", started_at=s1),
        SlurmRun(False, s1, 1, T0 + H),
        (1.0, 64, None),
    )
    assert len(led.attempts_for(job)) == 1
    clock.now = T0 + H + 105
    tick(led, clock, AttemptStatus(TOK, "starting"), SlurmRun(True, None, 1, T0 + H + 99))
    a1, a2 = led.attempts_for(job)
    assert a1["ended_at"] == T0 + H + 99 and a1["state"] == "requeued"
    clock.now = T0 + H + 110
    tick(led, clock, AttemptStatus(TOK, "starting"), SlurmRun(True, None, 1, T0 + H + 99))
    assert len(led.attempts_for(job)) == 2
