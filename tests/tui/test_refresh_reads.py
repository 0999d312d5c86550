"""What a console refresh reads: a bounded number of statements, and the same numbers as a full
read (the memo keeps only what cannot have changed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui import fleet_view, views
from lepton_tui.service import Service
from tests.tui.data import (
    FIXED_NOW,
    USER,
    big_fleet,
    busy_gpus,
    insert_samples,
    many_jobs,
    sample_rows,
)


@pytest.fixture
def busy(home: Path) -> Service:
    svc = Service.open(home, user=USER, clock=lambda: FIXED_NOW)
    big_fleet(svc.ledger, 8, 4)
    many_jobs(svc.ledger, 500)
    busy_gpus(svc.ledger)
    return svc


def statements(ledger, fn) -> list[str]:
    seen: list[str] = []
    ledger.conn.set_trace_callback(seen.append)
    try:
        fn()
    finally:
        ledger.conn.set_trace_callback(None)
    return seen


def test_a_refresh_reads_a_handful_of_statements(busy: Service) -> None:
    ledger, memo = busy.ledger, fleet_view.ViewMemo()
    views.overview(ledger, FIXED_NOW, memo=memo)  # the first read: everything
    full = statements(ledger, lambda: views.overview(ledger, FIXED_NOW + 4))
    again = statements(ledger, lambda: views.overview(ledger, FIXED_NOW + 2, memo=memo))
    # fleet 4, queue 3, cost rates 6 and what the totals depend on 1, the header's settings 1
    assert len(again) <= 15 < len(full)
    # the money totals are not recomputed within COST_TOTALS_S while their inputs stay put
    assert not any("econ_rollup" in s or "econ_period" in s for s in again)


def test_the_money_totals_are_read_again_after_the_interval(busy: Service) -> None:
    ledger, memo = busy.ledger, fleet_view.ViewMemo()
    views.overview(ledger, FIXED_NOW, memo=memo)
    later = FIXED_NOW + views.COST_TOTALS_S
    seen = statements(ledger, lambda: views.cost_panel(ledger, later, memo))
    assert any("econ_period" in s for s in seen)
    assert views.cost_panel(ledger, later, memo) == views.cost_panel(ledger, later)


def test_a_remembered_cost_panel_follows_a_change(busy: Service) -> None:
    ledger, memo = busy.ledger, fleet_view.ViewMemo()
    before = views.cost_panel(ledger, FIXED_NOW, memo)
    with ledger.tx():  # a dearer lab electricity price from an hour ago
        ledger.insert(
            "prices", {"host": None, "effective_from": FIXED_NOW - 3600, "power_price_kwh": 2.0}
        )
    after = views.cost_panel(ledger, FIXED_NOW, memo)
    assert after == views.cost_panel(ledger, FIXED_NOW)
    assert after.today > before.today


def test_a_remembered_fleet_is_the_fleet_a_full_read_sees(busy: Service) -> None:
    ledger, memo = busy.ledger, fleet_view.ViewMemo()
    fleet_view.fleet(ledger, FIXED_NOW, memo)
    for step in range(1, 40):  # ten minutes more of samples, a refresh every 15 s
        now = FIXED_NOW + 15 * step
        rows = sample_rows("node03", 4, now, minutes=0.25, step=5.0)
        with ledger.tx():
            insert_samples(ledger, rows)
        kept = {r.name: r for r in fleet_view.fleet(ledger, now + 1, memo)}
        fresh = {r.name: r for r in fleet_view.fleet(ledger, now + 1)}
        assert kept["node03"].spark == fresh["node03"].spark
        assert kept["node03"].gpus == fresh["node03"].gpus
        assert kept["node03"].cpu_percent == fresh["node03"].cpu_percent
        assert kept == fresh  # the other hosts' samples age out the same way


async def test_refreshes_run_no_full_collection(make_tui, lab: Path) -> None:
    """A full collection stops the event loop for as long as it scans everything Textual holds;
    once the console shows data, what start-up made is frozen and refreshes collect young
    objects only, and the interpreter changes threads sooner. Exit restores both (tests run many
    consoles in one process)."""
    import gc
    import sys

    from lepton_tui.app import GC_THRESHOLDS, SWITCH_INTERVAL_S
    from tests.tui.conftest import loaded

    before, switch = gc.get_threshold(), sys.getswitchinterval()
    full: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(info["generation"])

    app = make_tui(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == GC_THRESHOLDS
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S != switch
        gc.callbacks.append(count)
        try:
            for n in range(2, 12):
                app.screen.reload()
                await loaded(pilot, n)
        finally:
            gc.callbacks.remove(count)
    assert full == []
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    assert sys.getswitchinterval() == switch


def test_the_overview_read_pauses_between_its_pieces(busy: Service) -> None:
    ledger, memo, pauses = busy.ledger, fleet_view.ViewMemo(), []
    views.overview(ledger, FIXED_NOW, memo=memo, pause=lambda: pauses.append(1))
    # after the fleet, the queue and the cost panel, and before the money totals are read again
    assert len(pauses) == 4
    pauses.clear()
    views.overview(ledger, FIXED_NOW + 2, memo=memo, pause=lambda: pauses.append(1))
    assert len(pauses) == 3  # the totals are remembered


async def test_a_refresh_worker_waits_until_a_key_press_is_drawn(
    make_tui, lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's pauses (`LeptonApp.yield_to_input`) hold it, the GIL released, while a key
    press is not drawn yet; a drawn one lets it go on."""
    import threading

    import lepton_tui.app as app_module
    from tests.tui.conftest import loaded

    monkeypatch.setattr(app_module, "YIELD_MAX_S", 60.0)  # only the drawing lets it go
    app = make_tui(lab)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert app.source.pause == app.yield_to_input  # the ledger reads pause there
        await pilot.press("down")
        await pilot.pause()
        assert app._inputs > 0 and app._inputs_drawn == app._inputs  # a key press, drawn
        app._inputs += 1  # a key press the loop has not drawn yet
        worker = threading.Thread(target=app.yield_to_input)
        worker.start()
        worker.join(0.3)
        assert worker.is_alive()
        app._input_drawn(app._inputs)
        app.input_at = float("-inf")
        worker.join(30)
        assert not worker.is_alive()
