"""The console's cost panel reads the ledger in a bounded number of statements: the same for 4
hosts as for 16, for 8 running jobs as for 64 (counted with SQLite's trace callback, which sees
every statement, each row of an `executemany` too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui import views
from lepton_tui.ledger import Ledger
from tests.tui.data import FIXED_NOW, big_fleet, busy_gpus

MAX_STATEMENTS = 80  # per refresh of the cost panel, whatever the size of the lab


def statements_per_refresh(tmp_path: Path, hosts: int, gpus: int) -> dict[str, int]:
    """Statements of one refresh of the cost panel, and of the whole overview, on a busy lab of
    `hosts` x `gpus`."""
    ledger = Ledger(tmp_path / f"ledger-{hosts}.db", clock=lambda: FIXED_NOW)
    big_fleet(ledger, hosts, gpus)
    busy_gpus(ledger)  # a running job on every GPU, hosts priced, a lab electricity price
    views.cost_panel(ledger, FIXED_NOW)  # the first refresh also builds the daily roll-up
    counts = {}
    for name, read in (("cost", views.cost_panel), ("overview", views.overview)):
        seen: list[str] = []
        ledger.conn.set_trace_callback(seen.append)
        data = read(ledger, FIXED_NOW)
        ledger.conn.set_trace_callback(None)
        panel = data if isinstance(data, views.CostPanel) else data.cost
        assert panel.rate_now > 0 and panel.hosts == hosts  # the panel did read the lab
        counts[name] = len(seen)
    ledger.close()
    return counts


def test_cost_panel_statements_do_not_grow_with_the_lab(tmp_path: Path) -> None:
    small = statements_per_refresh(tmp_path, hosts=4, gpus=2)
    large = statements_per_refresh(tmp_path, hosts=16, gpus=4)
    assert small == large
    assert large["cost"] <= MAX_STATEMENTS
    assert large["overview"] <= MAX_STATEMENTS + 10  # the fleet, the queue and the header


def test_cost_panel_matches_the_cost_summary(tmp_path: Path) -> None:
    from lepton_tui.economics.costs import cost_summary, idle_rate

    ledger = Ledger(tmp_path / "ledger.db", clock=lambda: FIXED_NOW)
    big_fleet(ledger, 3, 2)
    busy_gpus(ledger)
    panel = views.cost_panel(ledger, FIXED_NOW)
    summary = cost_summary(ledger, FIXED_NOW)
    assert (panel.today, panel.week, panel.month, panel.rate_now) == pytest.approx(
        (summary["today"], summary["week"], summary["month"], summary["rate_per_hour"])
    )
    assert panel.idle_rate == pytest.approx(idle_rate(ledger, FIXED_NOW))
    assert panel.today > 0 and panel.idle_today > 0  # every GPU busy: idle rate 0
    ledger.close()
