"""The cost roll-up of one time zone's days must not be summed into another's (review of issue
14: budget percentages that disagree). Days are keyed by their start; `add_rollup` reads a range
of starts, so the rows another time zone built inside that range are counted twice."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from lepton_tui.economics.budgets import budget_status, set_budget
from tests.economics.helpers import T0, Clock, H, add_host, make_ledger, run_attempt, submit

UTC = ZoneInfo("UTC")
KOLKATA = ZoneInfo("Asia/Kolkata")  # days start at 18:30 UTC


def test_a_report_in_one_time_zone_does_not_change_another_s(tmp_path: Path) -> None:
    clock = Clock()
    ledger = make_ledger(tmp_path, clock)
    add_host(ledger, "h1", added_at=T0 - 9 * 86400)
    with ledger.tx():
        ledger.insert("prices", {"host": None, "effective_from": T0 - 9 * 86400,
                                 "price_gpu_hour": 2.0})  # fmt: skip
    for day in (6, 5, 4, 3):  # one 6-hour GPU job a day, well inside this month
        start = T0 - day * 86400 + 2 * H
        job = submit(ledger, clock, gpus=1, at=start)
        run_attempt(ledger, clock, job, "h1", start, start + 6 * H, gpu_ids=(0,))
    clock.now = T0
    set_budget(ledger, "project", "vision", 10)
    utc = budget_status(ledger, tz=UTC)[0].spent
    assert utc == pytest.approx(48.0, rel=0.01)  # 4 x 6 GPU-hours at 2
    budget_status(ledger, tz=KOLKATA)  # someone in another time zone asks (its own roll-up)
    assert budget_status(ledger, tz=UTC)[0].spent == pytest.approx(utc)
    ledger.close()
