"""The queue filter is echoed in the queue's border title as the user typed it: text, never
markup (a border title given as a string is markup, and `[/]` does not parse)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.content import Content

from lepton_tui.screens.overview import QueueFilter
from tests.tui.conftest import loaded, wait_for


def shown(title: str) -> str:
    """What a border title shows (the property gives it back as markup)."""
    try:
        return Content.from_markup(title).plain
    except Exception as exc:  # noqa: BLE001 - a title that does not parse shows nothing
        return f"<{exc}>"


@pytest.mark.parametrize("screen_key", ["1", "3"])  # the overview and the queue screen
async def test_a_filter_with_brackets_is_shown_as_typed(
    make_tui, lab: Path, screen_key: str
) -> None:
    """Typing `[/]` in the filter once crashed the console (MarkupError) and `[b]x` showed as a
    bold `x`."""
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        if screen_key == "3":
            await pilot.press("3")
            await wait_for(pilot, lambda: app.screen.id == "queue")
            await loaded(pilot)
        panel = app.screen.query_one("#queue-panel" if screen_key == "1" else "QueueTable")
        await pilot.press("slash")
        await wait_for(pilot, lambda: isinstance(app.focused, QueueFilter))
        for typed in ("[b]x", "[/]"):
            app.focused.value = typed
            await wait_for(pilot, lambda t=typed: f"filter '{t}'" in shown(panel.border_title))
            await pilot.pause()
            assert app.is_running
