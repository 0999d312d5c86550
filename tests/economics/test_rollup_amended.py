"""A past attempt amended by its host's truth (issue 14, budget percentages that disagree): the
daily cost roll-up summed it as it was, so the budget's spend must not keep the old figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui.economics.budgets import budget_status, set_budget
from lepton_tui.economics.prices import month_start
from lepton_tui.economics.report import cost_report
from tests.economics.helpers import T0, Clock, H, add_host, make_ledger, run_attempt, submit


def test_an_amended_attempt_is_not_counted_from_a_stale_roll_up(tmp_path: Path) -> None:
    clock = Clock()
    ledger = make_ledger(tmp_path, clock)
    add_host(ledger, "h1", added_at=T0 - 5 * 86400)
    with ledger.tx():
        ledger.insert("prices", {"host": None, "effective_from": T0 - 5 * 86400,
                                 "price_gpu_hour": 2.0})  # fmt: skip
    start = T0 - 3 * 86400
    job = submit(ledger, clock, gpus=1, at=start)
    token = run_attempt(ledger, clock, job, "h1", start, start + 6 * H, gpu_ids=(0,))
    clock.now = T0
    set_budget(ledger, "project", "vision", 10)  # its status builds the roll-up of past days
    assert ledger.query_one("SELECT COUNT(*) AS n FROM econ_rollup_days")["n"] > 0
    before = budget_status(ledger)[0].spent
    assert before == pytest.approx(12.0, rel=0.01)  # 6 GPU-hours at 2

    # the host answers again: the attempt really ended after one hour, not six
    ledger.amend_attempt(token, "h1 answered again", ended_at=start + H, cost=None,
                         energy_wh=None)  # fmt: skip
    truth = cost_report(ledger, month_start(T0), T0, "project", rollup=False).rows[0].cost
    assert truth == pytest.approx(2.0, rel=0.01)
    assert budget_status(ledger)[0].spent == pytest.approx(truth)
    assert budget_status(ledger)[0].spent == pytest.approx(truth)  # the rebuilt roll-up agrees
    ledger.close()
