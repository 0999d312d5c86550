"""Snapshots of the overview, the add-host modal and the job detail at 120x40 and 80x24 (and the
overview at 200x50).

Deterministic: a fixed clock, the fixed lab of tests/tui/data.py, no dispatcher, no refresh timer
firing during the run, cursor blink off. Regenerate with `pytest tests/tui --snapshot-update`.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input

from tests.tui.conftest import loaded, settled, wait_for

SIZES = [(120, 40), (80, 24)]
WIDE = [*SIZES, (200, 50)]  # the queue's columns use the width of a big terminal


def _still(app) -> None:
    for widget in app.screen.query(Input):
        widget.cursor_blink = False


@pytest.mark.parametrize("size", WIDE, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview(snap_compare, make_tui, lab, size) -> None:
    async def run_before(pilot) -> None:
        await loaded(pilot)
        await settled(pilot)

    assert snap_compare(make_tui(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_empty_overview(snap_compare, make_tui, monkeypatch, size) -> None:
    monkeypatch.setattr("lepton_tui.app.local_host_name", lambda: "login1")

    async def run_before(pilot) -> None:
        await loaded(pilot)
        await settled(pilot)

    assert snap_compare(make_tui(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_add_host_modal(snap_compare, make_tui, lab, size) -> None:
    from lepton_tui.screens.addhost import AddHostModal

    async def run_before(pilot) -> None:
        await loaded(pilot)
        await settled(pilot)  # the overview under the modal is drawn measured, then covered
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, AddHostModal))
        modal = pilot.app.screen
        modal.query_one("#f-name", Input).value = "gpu-d"
        modal.query_one("#f-address", Input).value = "10.0.0.14"
        modal.query_one("#f-port", Input).value = "99999"  # shows an inline error
        modal.query_one("#f-user", Input).value = "lab"
        modal.query_one("#f-name", Input).focus()
        await pilot.pause()
        _still(pilot.app)
        await settled(pilot)

    assert snap_compare(make_tui(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_job_detail(snap_compare, make_tui, lab, size) -> None:
    from lepton_tui.screens.job import JobScreen

    async def run_before(pilot) -> None:
        await loaded(pilot)
        await settled(pilot)
        pilot.app.open_job(5)  # queued: why it waits, no log yet (nothing reaches a host)
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, JobScreen))
        await loaded(pilot)
        await settled(pilot)

    assert snap_compare(make_tui(), terminal_size=size, run_before=run_before)


def test_confirm_dialog(snap_compare, make_tui, lab) -> None:
    from lepton_tui.screens.confirm import ConfirmModal

    async def run_before(pilot) -> None:
        await loaded(pilot)
        await settled(pilot)
        await pilot.press("down", "down", "down", "c")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal))
        await pilot.pause()

    assert snap_compare(make_tui(), terminal_size=(80, 24), run_before=run_before)
