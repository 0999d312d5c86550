"""The scheduler screen shows the autopilot's league table and why it chose; pinning shows too."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Select

from lepton_tui import autopilot as ap
from lepton_tui.ledger import Ledger
from tests.economics.helpers import T0, Clock
from tests.economics.helpers import record_history as record
from tests.tui.conftest import loaded, text_of, wait_for

pytest.importorskip("scheduler.simulator")


async def test_the_scheduler_screen_shows_the_league_table(make_tui, home: Path) -> None:
    clock = Clock()
    ledger = Ledger(home / "ledger.db", clock=clock)
    record(ledger, clock, "fifo", jobs=60, seed=3)
    decision = ap.run_round(ledger, T0 + 86400)
    ledger.close()
    app = make_tui()
    async with app.run_test(size=(120, 44)) as pilot:
        await loaded(pilot)
        await pilot.press("5")
        await wait_for(pilot, lambda: app.screen.id == "scheduler")
        await loaded(pilot)
        shown = text_of(app.screen.query_one("#league"))
        assert f"Running {decision.policy} (chosen by the autopilot)" in shown
        assert decision.reason[:60] in shown.replace("\n", " ")
        for name in ap.candidates():
            assert name in shown
        assert f"{decision.policy} *" in shown  # the winner is marked
        best = decision.table[0]
        assert f"{best.objective:.4g}" in shown
        select = app.screen.query_one("#policy", Select)
        assert select.value == ap.AUTO
        select.value = "tetris"  # an admin pins a policy
        await wait_for(pilot, lambda: app.ledger.get_setting("policy") == "tetris")
        await wait_for(
            pilot,
            lambda: (
                "Running tetris (pinned by an admin)" in text_of(app.screen.query_one("#league"))
            ),
        )
