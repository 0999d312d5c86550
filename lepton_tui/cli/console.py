"""Open the Textual console (the default when `lepton-tui` runs without a command)."""

from __future__ import annotations


def open_console(home: str | None = None, demo: bool = False, theme: str | None = None) -> None:
    """Build the app from its one factory and run it: a client of the lab service when a socket
    is configured (then no ledger is opened here), else on the personal ledger."""
    from lepton_tui.client import configured_socket

    socket_path = None if demo else configured_socket()
    from lepton_tui.app import make_app

    make_app(home=home, demo=demo, theme=theme, socket=socket_path).run()
