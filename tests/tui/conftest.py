"""Console test fixtures: a fixed lab, a fixed clock, UTC, and a helper to wait on the real app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.tui.data import USER, fill, fixed_clock


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Days and weeks start at UTC midnight in tests, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()


@pytest.fixture
def lab(home: Path) -> Path:
    """A state directory holding the fixed lab of tests/tui/data.py."""
    fill(home).close()
    return home


@pytest.fixture
def make_tui(home: Path):
    """Build the real app from its factory: fixed clock, no dispatcher, slow refresh."""
    from lepton_tui.app import make_app

    def build(path: Path | None = None, **kwargs):
        options = {"clock": fixed_clock, "dispatch": False, "refresh_s": 3600.0, "user": USER}
        options.update(kwargs)
        return make_app(home=path or home, **options)

    return build


async def wait_for(pilot, condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Let the app run until `condition()` holds (fails the test after `timeout` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


async def loaded(pilot, count: int = 1) -> None:
    """Wait until the current screen drew its data `count` times."""
    await wait_for(pilot, lambda: getattr(pilot.app.screen, "loads", 0) >= count)
    await pilot.pause()


async def host_row(pilot, name: str):
    """Open the hosts screen (`2`), wait for its data, and put the fleet's cursor on host
    `name`; return the fleet table."""
    from lepton_tui.widgets.fleet import FleetTable

    await pilot.press("2")
    await wait_for(pilot, lambda: pilot.app.screen.id == "hosts")
    await loaded(pilot)
    fleet = pilot.app.screen.query_one(FleetTable)
    fleet.focus()
    fleet.move_cursor(row=fleet.get_row_index(name))
    return fleet


async def open_modal(pilot, key: str, modal: type):
    """Press `key` and wait until a `modal` screen is on top; return it."""
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, modal))
    return pilot.app.screen


def text_of(static) -> str:
    """The plain text a Static shows (Rich tables and Text included)."""
    from rich.console import Console

    console = Console(width=200, color_system=None)
    with console.capture() as capture:
        console.print(static.content)
    return capture.get()


async def settled(pilot) -> None:
    """Wait until every table on every visible screen has measured its rows (DataTable does that
    when idle; a screenshot taken before would show columns at their header widths)."""
    from textual.widgets import DataTable

    def done() -> bool:
        return all(
            not t._require_update_dimensions and not t._updated_cells
            for screen in pilot.app.screen_stack
            for t in screen.query(DataTable)
        )

    await wait_for(pilot, done)
    await pilot.pause()
