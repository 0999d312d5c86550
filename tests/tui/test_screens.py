"""Screens and dialogs as a newcomer meets them: focus on the scheduler screen, what the command
palette offers, the confirm dialog's buttons, the add-host form's words."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Input

from tests.tui.conftest import loaded, wait_for


async def test_escape_leaves_the_job_id_box_for_good(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        await pilot.press("5")
        await wait_for(pilot, lambda: app.screen.id == "scheduler")
        await loaded(pilot)
        box = app.screen.query_one("#why-job", Input)
        await pilot.press("w")
        assert app.focused is box
        await pilot.press("escape")  # out of the box, still on the scheduler screen
        assert app.screen.id == "scheduler"
        assert isinstance(app.focused, DataTable) and app.focused.id == "decisions"
        await pilot.press("escape")  # then back to the overview
        await wait_for(pilot, lambda: app.screen.id == "overview")
        await pilot.press("5")
        await wait_for(pilot, lambda: app.screen.id == "scheduler")
        await pilot.pause()
        assert app.focused is not box  # the box does not take the focus back
        await pilot.press("1")  # so a digit switches screens again
        await wait_for(pilot, lambda: app.screen.id == "overview")
        assert box.value == ""


def palette_titles(app) -> list[str]:
    return [command.title for command in app.get_system_commands(app.screen)]


async def test_palette_offers_this_machine_only_until_it_is_added(make_tui, lab: Path) -> None:
    from lepton_tui.service import Service
    from tests.tui.data import USER

    app = make_tui()
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        assert "Add this machine" in palette_titles(app)
        svc = Service.open(lab, user=USER)
        svc.add_host("login1", local=True)  # what the form stores once the preflight passed
        svc.close()
        loads = app.screen.loads
        app.refresh_screen()
        await loaded(pilot, loads + 1)
        assert "Add this machine" not in palette_titles(app)
        assert "Add a host" in palette_titles(app)
        await pilot.press("5")  # every screen's header read says so
        await wait_for(pilot, lambda: app.screen.id == "scheduler")
        await loaded(pilot)
        assert "Add this machine" not in palette_titles(app)
        svc = Service.open(lab, user=USER)
        svc.remove_host("login1")
        svc.close()
        loads = app.screen.loads
        app.refresh_screen()
        await loaded(pilot, loads + 1)
        assert "Add this machine" in palette_titles(app)  # offered again once removed


async def test_confirm_buttons_sit_on_one_row(make_tui, lab: Path) -> None:
    from textual.widgets import Button

    from lepton_tui.screens.confirm import ConfirmModal
    from tests.tui.conftest import open_modal

    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("down", "down", "down")  # job 4, queued
        modal = await open_modal(pilot, "c", ConfirmModal)
        await pilot.pause()
        yes, no = modal.query_one("#yes", Button), modal.query_one("#no", Button)
        assert yes.region.y == no.region.y
        assert yes.region.height == no.region.height == 1
        assert yes.region.right < no.region.x  # side by side, yes first
        assert app.focused is no  # the safe answer has the focus
