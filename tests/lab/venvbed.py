"""A lepton-tui install other accounts can run, and a real service account to run it.

Root's Python (and, in CI, the checkout) may live under /root (0700): no other account can start
it. A lab installs lepton-tui where everyone can execute it and runs `serve --socket` as a
dedicated system account; `world_venv` is that install (`/usr/bin/python3 -m venv` in a fresh
0755 directory under /tmp, then a regular, not editable, `pip install` of this repository) and
`service_account` a throwaway system user (`useradd --system`), both removed afterwards.
"""

from __future__ import annotations

import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")
SERVICE_ACCOUNT = "lepton-svc"


@pytest.fixture(scope="session")
def world_venv() -> Iterator[Path]:
    """A virtual environment (world-readable and -executable, 0755 all the way) holding this
    repository installed as a package; its `bin/lepton-tui` runs as any account."""
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"{SYSTEM_PYTHON} is missing: the install for other accounts needs it")
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import venv, ensurepip"],
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"{SYSTEM_PYTHON} has no venv module: install Debian's python3-venv")
    root = Path(tempfile.mkdtemp(prefix="lepton-venv-", dir="/tmp"))
    try:
        venv = root / "venv"
        steps = [
            [str(SYSTEM_PYTHON), "-m", "venv", str(venv)],
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(REPO)],
            ["chmod", "-R", "a+rX", str(root)],  # whatever the umask was: 0755 all the way
        ]
        for cmd in steps:
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"`{' '.join(cmd)}` failed:\n{done.stdout}\n{done.stderr}")
        yield venv
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def service_account(lab_users: object) -> Iterator[pwd.struct_passwd]:
    """A system account for the lab service (no home, no login shell), as the unit's `lepton`;
    removed afterwards when the session made it."""
    made = False
    try:
        pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        SERVICE_ACCOUNT], check=True, capture_output=True)  # fmt: skip
        made = True
    try:
        yield pwd.getpwnam(SERVICE_ACCOUNT)
    finally:
        if made:
            subprocess.run(["userdel", SERVICE_ACCOUNT], capture_output=True)
