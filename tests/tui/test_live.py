"""Live behaviour: the demo, the dispatcher decision, refresh pausing under modals, the palette."""

from __future__ import annotations

from pathlib import Path

from textual.command import CommandPalette

from lepton_tui.screens.submit import SubmitJobModal
from lepton_tui.widgets.fleet import FleetTable
from lepton_tui.widgets.queue import QueueTable
from tests.tui.conftest import loaded, open_modal, text_of, wait_for


async def test_demo_shows_a_busy_lab_and_leaves_nothing_behind(tmp_path, monkeypatch) -> None:
    import tempfile

    from lepton_tui.app import make_app

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the demo's ledger goes
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "must-not-exist"))
    app = make_app(demo=True, demo_speed=60)
    demo_dir = app.svc.home
    assert demo_dir.parent == tmp_path and demo_dir.name.startswith("lepton-demo-")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.demo_driver.ready.is_set(), timeout=60)
        assert app.demo_driver.error is None
        fleet = app.screen.query_one(FleetTable)
        queue = app.screen.query_one(QueueTable)
        await wait_for(pilot, lambda: fleet.row_count == 8 and queue.row_count > 10)
        running = app.ledger.query_one("SELECT COUNT(*) AS n FROM jobs WHERE state = 'running'")
        assert running["n"] > 5
        placed = app.ledger.query_one("SELECT COUNT(*) AS n FROM decisions WHERE placed = 1")
        assert placed["n"] >= running["n"]
        assert "DEMO" in text_of(app.screen.query_one("#lab-header"))
    assert not demo_dir.exists()  # the temporary ledger is removed on exit
    assert not (tmp_path / "must-not-exist").exists()


async def test_console_only_shows_while_another_process_dispatches(make_tui, lab: Path) -> None:
    from lepton_tui import paths
    from lepton_tui.dispatch.loop import DispatcherLock

    serve = DispatcherLock(lab / paths.LOCK_FILE)
    assert serve.acquire()  # as `lepton-tui serve` would
    try:
        app = make_tui(dispatch=True, dispatch_retry_s=0.1)
        async with app.run_test(size=(80, 24)) as pilot:
            await loaded(pilot)
            await wait_for(pilot, lambda: app.dispatcher_handle is not None)
            await pilot.pause(0.3)  # a few retries: the lock stays taken
            assert not app.dispatcher_handle.dispatching
            assert "only shows" in app.dispatch_note
            serve.release()  # serve stops: this console takes over
            await wait_for(pilot, lambda: app.dispatcher_handle.dispatching)
            assert app.dispatch_note == "dispatching in this console"
    finally:
        serve.release()


async def test_this_console_dispatches_when_the_lock_is_free(make_tui, lab: Path) -> None:
    app = make_tui(dispatch=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await wait_for(pilot, lambda: app.dispatcher_handle is not None)
        assert app.dispatcher_handle.dispatching
    assert app.dispatcher_handle is None  # stopped and released on exit


async def test_refresh_pauses_under_a_modal(make_tui, lab: Path) -> None:
    app = make_tui(refresh_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        overview = app.screen
        await loaded(pilot, 3)  # the re-armed timer keeps reading
        await open_modal(pilot, "s", SubmitJobModal)
        await pilot.pause(0.2)
        frozen = overview.loads
        await pilot.pause(0.5)
        assert overview.loads == frozen  # ten ticks passed; nothing was read under the modal
        await pilot.press("escape")
        await wait_for(pilot, lambda: overview.loads > frozen + 1)


async def test_colon_opens_the_command_palette(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("colon")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"go to cost", "enter")
        await wait_for(pilot, lambda: app.screen.id == "cost-screen")
