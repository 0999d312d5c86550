"""Open the Textual console (the default when `lepton-tui` runs without a command)."""

from __future__ import annotations

import sys

from lepton_tui.cli.listing import is_terminal
from lepton_tui.errors import ValidationError


def has_terminal() -> bool:
    """Whether the console can be seen and used: Textual reads keys from stdin and draws on
    stderr."""
    return is_terminal(sys.__stdin__) and is_terminal(sys.__stderr__)


def open_console(home: str | None = None, demo: bool = False, theme: str | None = None) -> None:
    """Build the app from its one factory and run it: a client of the lab service when a socket
    is configured (then no ledger is opened here), else on the personal ledger."""
    # Without a terminal (`ssh host lepton-tui` without -t, cron, a script) the console would
    # run unseen, busy, until killed.
    if not has_terminal():
        raise ValidationError(
            "the console needs a terminal, and its stdin or stderr is not one",
            "open it in a terminal (over ssh: ssh -t); scripts use commands such as "
            "`lepton-tui queue`",
        )
    from lepton_tui.client import configured_socket

    socket_path = None if demo else configured_socket()
    from lepton_tui.app import make_app

    make_app(home=home, demo=demo, theme=theme, socket=socket_path).run()
