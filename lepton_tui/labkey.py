"""The lab's own SSH key: the lab service logs in to hosts with it (lab mode).

`serve --socket` creates it on its first start (`lab_key`, ed25519, 0600, in the service's 0700
state directory); users add its public key to their `~/.ssh/authorized_keys` with `restrict`
(no port, agent or X11 forwarding, no pty, no ~/.ssh/rc), which is all a job launch needs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from lepton_tui.errors import LeptonError, NotFound

KEY_FILE = "lab_key"
OPTIONS = "restrict"


def ensure_lab_key(home: Path) -> tuple[Path, bool]:
    """The lab key's path, created if missing; True when this call created it."""
    key = home / KEY_FILE
    if key.exists():
        return key, False
    ssh_keygen = shutil.which("ssh-keygen")
    if ssh_keygen is None:
        raise LeptonError("ssh-keygen is not installed", "install openssh-client")
    comment = f"lepton-lab@{socket.gethostname().split('.')[0] or 'login'}"
    old = os.umask(0o077)
    try:
        done = subprocess.run(
            [ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        os.umask(old)
    if done.returncode != 0:
        raise LeptonError(f"cannot create the lab key {key}: {done.stderr.strip()}")
    return key, True


def authorized_keys_line(home: Path) -> str:
    """The line users add to `~/.ssh/authorized_keys` so jobs can start as them."""
    public = home / f"{KEY_FILE}.pub"
    try:
        text = public.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise NotFound(
            "this lepton has no lab key", "`lepton-tui serve --socket` creates it on first start"
        ) from None
    return f"{OPTIONS} {text}"
