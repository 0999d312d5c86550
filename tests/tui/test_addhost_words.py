"""The add-host form speaks of its own fields, not of `hosts add`'s options."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Static

from lepton_tui.screens.addhost import AddHostModal
from lepton_tui.service import Service
from tests.tui.conftest import loaded, open_modal
from tests.tui.data import USER


async def test_missing_address_names_the_form_fields(make_tui, home: Path) -> None:
    """An SSH host with no address once said `an SSH host needs --address (or use --local for
    this machine)`: options the form does not have."""
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        modal = await open_modal(pilot, "a", AddHostModal)
        modal.query_one("#f-name", Input).value = "gpu1"
        await pilot.pause()
        assert not modal.query_one("#err-address", Static).display  # not before a try
        await pilot.click("#test")
        await pilot.pause()
        error = str(modal.query_one("#err-address", Static).render())
        assert error == 'give its host name or IP address (or tick "This machine" to add this one)'
        assert modal.step == "fields"
    svc = Service.open(home, user=USER)
    try:
        assert svc.list_hosts() == []
    finally:
        svc.close()
