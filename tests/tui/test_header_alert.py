"""The header says first what matters most: no dispatcher runs (personal mode)."""

from __future__ import annotations

from pathlib import Path

from lepton_tui import paths
from lepton_tui.widgets.header import LabHeader
from tests.tui.conftest import loaded, text_of, wait_for


def header_line(app) -> str:
    return text_of(app.screen.query_one(LabHeader))


async def test_header_says_no_dispatcher_runs_when_the_console_cannot_start_one(
    make_tui, lab: Path
) -> None:
    (lab / paths.LOCK_FILE).mkdir()  # the lock cannot be taken: this console does not dispatch
    app = make_tui(lab, dispatch=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await wait_for(pilot, lambda: app._dispatch_error is not None)
        app.screen.reload()
        await loaded(pilot, 2)
        assert "no dispatcher is running" in header_line(app)


async def test_header_says_nothing_while_this_console_dispatches(make_tui, lab: Path) -> None:
    app = make_tui(lab, dispatch=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await wait_for(pilot, lambda: app.dispatcher_handle is not None)
        app.screen.reload()
        await loaded(pilot, 2)
        assert "dispatcher" not in header_line(app)
        assert "vision-lab" in header_line(app)
