"""Where lepton-tui keeps its state: `--home`, `LEPTON_HOME`, or `$XDG_DATA_HOME/lepton-tui`.

The ledger holds every job's command and `--env` values (tokens), so nothing lepton creates there
is readable by other users. A state directory lepton creates is 0700. The ledger file it creates
(and with it SQLite's `-wal` and `-shm`, which SQLite gives the mode of the database file) is 0600,
except in a directory an admin made group-writable for a lab-wide ledger (`LEPTON_HOME` shared by
the lab, e.g. `chgrp lab DIR && chmod 2770 DIR`): there it is 0660 in the directory's group, so
the lab's members can queue jobs into it. Lepton never changes the mode of an existing directory
or file.
"""

from __future__ import annotations

import os
import stat
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


def known_hosts_path(home: str | os.PathLike[str] | None = None) -> Path:
    return state_dir(home) / KNOWN_HOSTS_FILE


def make_state_dir(path: str | os.PathLike[str]) -> bool:
    """Create the state directory 0700 if it is missing (missing parents get the default mode, as
    `mkdir -p` gives them); an existing directory is left as it is. True if this created it."""
    path = Path(path)
    if path.is_dir():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return False
    os.chmod(path, 0o700)  # exactly, whatever the umask
    return True


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create `path` empty if it is missing: 0600, or 0660 in its directory's group when that
    directory is writable by its group (a lab-wide ledger). An existing file is left as it is.
    True if this created it."""
    path = Path(path)
    directory = os.stat(path.parent)
    shared = bool(directory.st_mode & stat.S_IWGRP)
    mode = 0o660 if shared else 0o600
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        return False
    try:
        if shared and os.fstat(fd).st_gid != directory.st_gid:
            try:
                os.fchown(fd, -1, directory.st_gid)  # a directory without the setgid bit
            except PermissionError:
                pass  # not a member of that group: the file stays in ours
        os.fchmod(fd, mode)  # exactly, whatever the umask
    finally:
        os.close(fd)
    return True
