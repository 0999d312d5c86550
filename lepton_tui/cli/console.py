"""Open the Textual console (the default when `lepton-tui` runs without a command)."""

from __future__ import annotations


def open_console(home: str | None = None, demo: bool = False, theme: str | None = None) -> None:
    """Build the app from its one factory and run it."""
    from lepton_tui.client import configured_socket

    socket_path = None if demo else configured_socket()
    if socket_path is not None:
        # it would open a personal ledger beside the lab's, and show none of the lab's jobs
        from lepton_tui.errors import LeptonError

        raise LeptonError(
            f"the console does not work through the lab service ({socket_path}) yet",
            "use `lepton-tui queue`, `show`, `logs -f`; or `LEPTON_SOCKET= lepton-tui` for a "
            "personal console",
        )
    from lepton_tui.app import make_app

    make_app(home=home, demo=demo, theme=theme).run()
