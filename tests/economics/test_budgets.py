"""Budgets: warnings at 80 % and 100 %, hard budgets holding and releasing queued jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui.economics.budgets import (
    apply_budget_holds,
    budget_hold_reasons,
    budget_status,
    budget_warnings,
    remove_budget,
    set_budget,
)
from lepton_tui.economics.prices import set_prices
from lepton_tui.errors import NotFound, ValidationError
from tests.economics.helpers import T0, UTC, Clock, H, add_host, make_ledger, run_attempt, submit


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock):
    led = make_ledger(tmp_path, clock)
    add_host(led, "gpu1", cpus=8, mem_mb=8192, gpus=0, gpu_mem_mb=0)
    set_prices(led, "gpu1", per_hour=10.0)
    yield led
    led.close()


def spend(ledger, clock, project: str, hours: float, user: str = "alice") -> int:
    """One whole-host job of `project` running `hours` (10 per hour), ending now."""
    job = submit(ledger, clock, project=project, user=user, cpus=8)
    start = clock.now
    run_attempt(ledger, clock, job, "gpu1", start, start + hours * H)
    return job


def test_warnings_at_80_and_100_percent(ledger, clock) -> None:
    spend(ledger, clock, "vision", 1)
    spend(ledger, clock, "nlp", 1)
    set_budget(ledger, "project", "vision", 12.5)  # 10 of 12.5: 80 %
    set_budget(ledger, "project", "nlp", 10)  # 100 %
    set_budget(ledger, "user", "alice", 100, "gpu_hours")  # no GPUs used: fine
    warnings = budget_warnings(ledger, now=clock.now, tz=UTC)
    assert [(w.name, w.level) for w in warnings] == [("nlp", "over"), ("vision", "warning")]
    assert "nlp spent 10.00 USD of its 10.00 USD monthly budget (100 %)" in warnings[0].message
    assert "(80 %)" in warnings[1].message


def test_hard_budget_holds_new_jobs_and_releases_them(ledger, clock) -> None:
    spend(ledger, clock, "vision", 2)  # 20 spent
    running = submit(ledger, clock, project="vision", cpus=1)
    run_attempt(ledger, clock, running, "gpu1", clock.now, None)
    set_budget(ledger, "project", "vision", 15, hard=True)
    waiting = submit(ledger, clock, project="vision")
    other = submit(ledger, clock, project="nlp")
    jobs = ledger.query("SELECT * FROM jobs")
    held = budget_hold_reasons(ledger, jobs, now=clock.now, tz=UTC)
    assert list(held) == [waiting]  # never the running job, never another project
    assert held[waiting].startswith("over budget: project vision spent")
    apply_budget_holds(ledger, now=clock.now, tz=UTC)
    assert ledger.get_job(waiting)["reason"].startswith("over budget")
    assert ledger.get_job(other)["reason"] == "waiting for the scheduler"
    assert ledger.get_job(running)["state"] == "running"
    # raising the budget releases the job
    set_budget(ledger, "project", "vision", 1000, hard=True)
    assert apply_budget_holds(ledger, now=clock.now, tz=UTC) == {}
    assert ledger.get_job(waiting)["reason"] == "waiting for the scheduler"


def test_the_new_month_releases_held_jobs(ledger, clock) -> None:
    clock.now = T0 + 20 * 24 * H  # 2026-03-30
    spend(ledger, clock, "vision", 2)
    set_budget(ledger, "project", "vision", 5, hard=True)
    job = submit(ledger, clock, project="vision")
    assert job in budget_hold_reasons(ledger, [ledger.get_job(job)], now=clock.now, tz=UTC)
    april = T0 + 23 * 24 * H  # 2026-04-02
    assert budget_hold_reasons(ledger, [ledger.get_job(job)], now=april, tz=UTC) == {}


def test_gpu_hour_budget(ledger, clock) -> None:
    add_host(ledger, "g", cpus=32, mem_mb=65536, gpus=4, gpu_mem_mb=4 * 24576)
    job = submit(ledger, clock, project="vision", gpus=2)
    run_attempt(ledger, clock, job, "g", clock.now, clock.now + 3 * H, gpu_ids=(0, 1))
    set_budget(ledger, "project", "vision", 5, "gpu_hours", hard=True)
    (status,) = budget_status(ledger, now=clock.now, tz=UTC)
    assert status.spent == pytest.approx(6.0)
    assert status.level == "over"


def test_bad_budgets_write_nothing(ledger, clock) -> None:
    spend(ledger, clock, "vision", 1)
    before = ledger.query_one("SELECT COUNT(*) AS n FROM events")["n"]
    with pytest.raises(ValidationError, match="unknown project 'ghost'"):
        set_budget(ledger, "project", "ghost", 10)
    with pytest.raises(ValidationError, match="unknown user"):
        set_budget(ledger, "user", "nobody-at-all", 10)
    with pytest.raises(ValidationError, match="between 0"):
        set_budget(ledger, "project", "vision", -5)
    with pytest.raises(ValidationError, match="not a number"):
        set_budget(ledger, "project", "vision", "lots")
    with pytest.raises(ValidationError, match="more than zero"):
        set_budget(ledger, "project", "vision", 0)
    with pytest.raises(ValidationError, match="money or gpu_hours"):
        set_budget(ledger, "project", "vision", 5, "euros")
    with pytest.raises(NotFound):
        remove_budget(ledger, "project", "vision")
    assert ledger.query_one("SELECT COUNT(*) AS n FROM budgets")["n"] == 0
    assert ledger.query_one("SELECT COUNT(*) AS n FROM events")["n"] == before
    # a project with no jobs yet may be declared
    set_budget(ledger, "project", "ghost", 10, new_project=True)
    assert [s.name for s in budget_status(ledger, now=clock.now, tz=UTC)] == ["ghost"]
