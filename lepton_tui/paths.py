"""Where lepton-tui keeps its state: `--home`, `LEPTON_HOME`, or `$XDG_DATA_HOME/lepton-tui`."""

from __future__ import annotations

import os
from pathlib import Path

LEDGER_FILE = "ledger.db"
LOCK_FILE = "dispatcher.lock"
KNOWN_HOSTS_FILE = "known_hosts"


def state_dir(home: str | os.PathLike[str] | None = None) -> Path:
    """The state directory for `home`, else LEPTON_HOME, else the XDG data directory."""
    if home:
        return Path(home).expanduser()
    env = os.environ.get("LEPTON_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(xdg) / "lepton-tui"


def ledger_path(home: str | os.PathLike[str] | None = None) -> Path:
    return state_dir(home) / LEDGER_FILE


def lock_path(home: str | os.PathLike[str] | None = None) -> Path:
    return state_dir(home) / LOCK_FILE


def known_hosts_path(home: str | os.PathLike[str] | None = None) -> Path:
    return state_dir(home) / KNOWN_HOSTS_FILE
