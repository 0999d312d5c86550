"""Who and where this process is: its OS user, its machine's name, its state directory and
whether a dispatcher holds that directory's lock. Plain facts; `service.py` decides what they
allow."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from lepton_tui import paths
from lepton_tui.errors import ValidationError
from lepton_tui.identity import user_name


def current_user() -> str:
    """The OS user running this process, from its real uid.

    Never from the environment: USER and LOGNAME are whatever the caller set (`USER=root` must
    not make anyone root). A uid with no passwd entry is `uid-N`, which no check takes for root,
    the admin group or another user; if a real account bears that name, this refuses.
    """
    return user_name(os.getuid())


def local_host_name() -> str:
    """This machine's short host name, made safe as a lepton host name."""
    raw = socket.gethostname().split(".")[0] or "login"
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", raw).strip("-._") or "login"
    return safe[:63]


def check_state_exists(state: Path) -> None:
    """A read-only command's state directory: it and its ledger exist (a mistyped --home or
    LEPTON_HOME must not quietly become a new, empty lab)."""
    how = "check --home / LEPTON_HOME; the console, `serve` or `submit` creates it"
    if not state.is_dir():
        raise ValidationError(f"the state directory {state} does not exist", how, field="home")
    if not (state / paths.LEDGER_FILE).is_file():
        raise ValidationError(
            f"the state directory {state} has no ledger ({paths.LEDGER_FILE})", how, field="home"
        )


def dispatcher_running(home: Path) -> bool:
    """Whether a dispatcher (a console or `serve`) holds the lock of state directory `home`."""
    import fcntl

    try:
        fd = os.open(home / paths.LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False  # never created: no dispatcher ever ran here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # drops the probe's shared lock, if it got one
    return False
