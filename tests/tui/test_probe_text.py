"""What hosts report, users type and errors say is shown as text, never as markup, in the
console's notifications too."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui.screens import onboard
from tests.tui.conftest import host_row, loaded, wait_for


async def test_a_probe_answer_with_brackets_is_shown_as_sent(
    make_tui, lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`p` on the hosts screen put the host's lines in a notification parsed as markup: a `[/]`
    in them (an SSH banner, a path) crashed the console, and `[b]` styled the rest."""
    said = ["✗ SSH handshake failed: banner '[/] [b]lab gateway' is not SSH"]
    monkeypatch.setattr(onboard, "probe_now", lambda svc, host: onboard.Outcome(False, said))
    app = make_tui()
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await loaded(pilot)
        await host_row(pilot, "gpu-a")
        await pilot.press("p")
        await wait_for(pilot, lambda: any(said[0] in n.message for n in app._notifications))
        await wait_for(pilot, lambda: len(app.screen.query("Toast")) > 1 or not app.is_running)
        await pilot.pause(0.2)  # the toast is drawn
        assert app.is_running and app._exception is None
        shown = [toast.render().plain for toast in app.screen.query("Toast")]
        assert any(said[0] in text for text in shown), shown


async def test_an_unknown_theme_with_brackets_is_named_as_typed(make_tui, lab: Path) -> None:
    """`lepton-tui --theme '[/]'` crashed the console: its warning was parsed as markup."""
    app = make_tui(theme="[/]")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await loaded(pilot)
        await wait_for(pilot, lambda: len(app.screen.query("Toast")) > 0 or not app.is_running)
        await pilot.pause(0.2)
        assert app.is_running and app._exception is None and app.theme == "lepton"
        shown = [toast.render().plain for toast in app.screen.query("Toast")]
        assert any("unknown theme '[/]'" in text for text in shown), shown
