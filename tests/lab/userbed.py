"""The loopback sshd test bed for lab mode: the lab's users log in as themselves.

The shared bed (tests/sshbed.py) reads one authorized_keys file for every login and sets HOME to
a directory of its own. Here each host also reads the user's `~/.ssh/authorized_keys`, and only
the test runner's own login gets the bed's HOME, so a job run as alice sees alice's uid and
home. The users get real home directories (created here if `useradd -M` left none) and, through
`user_keys`, the lab's public key in their authorized_keys (the line `keys show` prints).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from tests.sshbed import SSHBed, SSHHost, find_sshd


class UserSSHHost(SSHHost):
    """An sshd that reads each user's ~/.ssh/authorized_keys and keeps their HOME."""

    def _write_config(self) -> Path:
        config = super()._write_config()
        lines = []
        set_env = ""
        for line in config.read_text().splitlines():
            if line.startswith("AuthorizedKeysFile "):
                line = f"{line} .ssh/authorized_keys"
            elif line.startswith("SetEnv HOME="):
                set_env = line
                continue
            lines.append(line)
        lines += [f"Match User {self.user}", f"  {set_env}", ""]
        config.write_text("\n".join(lines))
        return config


class UserSSHBed(SSHBed):
    """The bed with `UserSSHHost`s."""

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.hosts = [
            UserSSHHost(**{f.name: getattr(h, f.name) for f in fields(h) if f.init})
            for h in self.hosts
        ]


@pytest.fixture(scope="session")
def lab_bed(tmp_path_factory: pytest.TempPathFactory, lab_users: Any) -> Iterator[UserSSHBed]:
    """Loopback sshd hosts where the lab's users log in as themselves: `lab_bed(n)`."""
    if find_sshd() is None:
        pytest.skip("sshd is missing: install Debian's openssh-server")
    bed = UserSSHBed(tmp_path_factory.mktemp("labbed"))
    try:
        yield bed
    finally:
        bed.close()


@pytest.fixture
def lab_homes(lab_users: dict[str, pwd.struct_passwd]) -> Iterator[dict[str, Path]]:
    """A real home directory for each lab user, owned by them (made here when the account had
    none), and an account sshd lets log in with a key (`useradd` leaves it locked, `!`; `*`: no
    password). Per test: on a shared machine another test session may have made the accounts
    again meanwhile (locked, with new uids)."""
    made: list[Path] = []
    homes = {}
    for name in lab_users:
        info = pwd.getpwnam(name)
        subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)
        home = Path(info.pw_dir)
        if not home.exists():
            home.mkdir(parents=True, mode=0o750)
            made.append(home)
        for path in (home, home / ".ssh", home / ".lepton"):
            if path.exists() and path.stat().st_uid != info.pw_uid:
                subprocess.run(["chown", "-R", f"{info.pw_uid}:{info.pw_gid}", str(path)],
                               check=True)  # fmt: skip
        os.chown(home, info.pw_uid, info.pw_gid)
        homes[name] = home
    try:
        yield homes
    finally:
        for home in made:
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def user_keys(lab_homes: dict[str, Path]) -> Iterator[Callable[[str, str], None]]:
    """`user_keys(user, line)` adds `line` to the user's ~/.ssh/authorized_keys (owned by the
    user, 0600); every line added is taken out again after the test."""
    added: list[tuple[Path, str]] = []

    def add(user: str, line: str) -> None:
        info = pwd.getpwnam(user)
        ssh = lab_homes[user] / ".ssh"
        if not ssh.exists():
            ssh.mkdir(mode=0o700)
            os.chown(ssh, info.pw_uid, info.pw_gid)
        keys = ssh / "authorized_keys"
        with open(keys, "a", encoding="ascii") as out:
            out.write(line.strip() + "\n")
        os.chown(keys, info.pw_uid, info.pw_gid)
        os.chmod(keys, 0o600)
        added.append((keys, line.strip()))

    try:
        yield add
    finally:
        for keys, line in added:
            try:
                kept = [x for x in keys.read_text().splitlines() if x.strip() != line]
                keys.write_text("".join(f"{x}\n" for x in kept))
            except OSError:
                pass
