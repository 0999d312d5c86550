"""Money keeps the currency it was charged in: changing the lab currency relabels nothing."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from lepton_tui.economics.budgets import budget_status, set_budget
from lepton_tui.economics.prices import set_currency, set_prices
from lepton_tui.economics.report import cost_report
from lepton_tui.ledger import Ledger
from tests.clirun import lepton
from tests.economics.helpers import T0, Clock, H, add_host, run_attempt, submit


def _two_currencies(ledger: Ledger, clock: Clock) -> None:
    """2.00 USD spent in the morning, the lab switched to EUR at noon, 3.00 EUR spent after."""
    add_host(ledger, "h1", added_at=T0)
    clock.now = T0
    set_prices(ledger, gpu_hour=2.0)  # in USD, the default
    job = submit(ledger, clock, gpus=1, at=T0)
    run_attempt(ledger, clock, job, "h1", T0 + 1 * H, T0 + 2 * H, gpu_ids=(0,))
    clock.now = T0 + 12 * H
    set_currency(ledger, "EUR")
    set_prices(ledger, gpu_hour=3.0)
    job = submit(ledger, clock, gpus=1, at=T0 + 13 * H)
    run_attempt(ledger, clock, job, "h1", T0 + 13 * H, T0 + 14 * H, gpu_ids=(0,))
    clock.now = T0 + 20 * H


def test_past_costs_keep_their_currency(tmp_path: Path) -> None:
    clock = Clock()
    ledger = Ledger(tmp_path / "ledger.db", clock=clock)
    _two_currencies(ledger, clock)
    morning = cost_report(ledger, T0, T0 + 6 * H)
    assert (morning.currency, morning.total.cost) == ("USD", pytest.approx(2.0))
    day = cost_report(ledger, T0, T0 + 20 * H, "user")
    assert (day.currency, day.total.cost) == ("EUR", pytest.approx(3.0))  # never 5.00 of anything
    (usd,) = day.other_currencies
    assert (usd.currency, usd.total.cost) == ("USD", pytest.approx(2.0))
    assert [(r.key, r.cost) for r in usd.rows] == [("alice", pytest.approx(2.0))]
    ledger.close()


def test_budgets_count_the_money_of_their_currency(tmp_path: Path) -> None:
    clock = Clock()
    ledger = Ledger(tmp_path / "ledger.db", clock=clock)
    _two_currencies(ledger, clock)
    set_budget(ledger, "project", "vision", 10, "money")
    (status,) = budget_status(ledger)
    assert status.spent == pytest.approx(3.0)  # the EUR spent, not 2 USD + 3 EUR
    ledger.close()


def test_a_budget_keeps_the_currency_it_was_set_in(tmp_path: Path) -> None:
    # a USD budget, then the lab switches to EUR: the budget still reads USD and counts the
    # dollars spent (not relabelled "EUR", not reset to 0 % by the switch)
    clock = Clock()
    ledger = Ledger(tmp_path / "ledger.db", clock=clock)
    add_host(ledger, "h1", added_at=T0)
    clock.now = T0
    set_prices(ledger, gpu_hour=2.0)
    set_budget(ledger, "project", "vision", 10, "money", new_project=True)
    job = submit(ledger, clock, gpus=1, at=T0)
    run_attempt(ledger, clock, job, "h1", T0 + 1 * H, T0 + 2 * H, gpu_ids=(0,))
    clock.now = T0 + 12 * H
    set_currency(ledger, "EUR")
    set_prices(ledger, gpu_hour=3.0)
    job = submit(ledger, clock, gpus=1, at=T0 + 13 * H)
    run_attempt(ledger, clock, job, "h1", T0 + 13 * H, T0 + 14 * H, gpu_ids=(0,))
    clock.now = T0 + 20 * H
    (status,) = budget_status(ledger)
    assert (status.currency, status.spent) == ("USD", pytest.approx(2.0))
    assert status.as_dict()["currency"] == "USD"
    set_budget(ledger, "project", "vision", 10, "money")  # set again: now in EUR
    (status,) = budget_status(ledger)
    assert (status.currency, status.spent) == ("EUR", pytest.approx(3.0))
    ledger.close()


def test_the_cost_command_shows_each_currency(home: Path) -> None:
    clock = Clock()
    ledger = Ledger(home / "ledger.db", clock=clock)
    _two_currencies(ledger, clock)
    ledger.close()
    window = ("--since", "2026-03-01", "--until", "2026-04-01")
    res = lepton(home, "cost", *window, columns=200)
    assert res.returncode == 0, res.stderr
    assert "2.00 USD" in res.stdout and "3.00 EUR" in res.stdout
    assert "2.00 EUR" not in res.stdout and "5.00" not in res.stdout
    data = json.loads(lepton(home, "cost", *window, "--json").stdout)
    assert data["currency"] == "EUR" and data["total"]["cost"] == pytest.approx(3.0)
    assert [(o["currency"], o["total"]["cost"]) for o in data["other_currencies"]] == [
        ("USD", pytest.approx(2.0))
    ]
    rows = list(csv.DictReader(io.StringIO(lepton(home, "cost", *window, "--csv").stdout)))
    totals = {(r["currency"], float(r["cost"])) for r in rows if r["user"] == "total"}
    assert totals == {("USD", 2.0), ("EUR", 3.0)}
    early = json.loads(lepton(home, "cost", "--since", "2026-03-10T00:00", "--until",
                              "2026-03-10T06:00", "--json").stdout)  # fmt: skip
    assert early["currency"] == "USD" and early["other_currencies"] == []
