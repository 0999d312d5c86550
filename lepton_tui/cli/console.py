"""Open the Textual console (the default when `lepton-tui` runs without a command)."""

from __future__ import annotations


def open_console(home: str | None = None, demo: bool = False, theme: str | None = None) -> None:
    """Build the app from its one factory and run it."""
    from lepton_tui.app import make_app

    make_app(home=home, demo=demo, theme=theme).run()
