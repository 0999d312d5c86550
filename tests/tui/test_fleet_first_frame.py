"""The fleet before the console's first read: neither the table nor "No hosts yet"."""

from __future__ import annotations

from textual.app import App, ComposeResult

from lepton_tui.widgets.fleet import EmptyFleet, FleetPanel, FleetTable
from tests.tui.conftest import loaded


async def test_no_hosts_yet_is_not_flashed_before_the_first_read() -> None:
    """The overview once opened with the empty fleet ("No hosts yet. Add this machine...") and
    its buttons until the first read came back, even for a lab with hosts: the panel as it is
    mounted, before `show`, shows neither."""

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield FleetPanel("login", id="fleet")

    app = Bare()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        panel = app.query_one(FleetPanel)
        assert not panel.query_one(EmptyFleet).display
        assert not panel.query_one(FleetTable).display
        panel.show([], currency="USD")  # the first read: no hosts
        await pilot.pause()
        assert panel.query_one(EmptyFleet).display


async def test_an_empty_lab_still_offers_this_machine(make_tui) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        assert app.screen.query_one(EmptyFleet).display
        assert not app.screen.query_one(FleetTable).display
