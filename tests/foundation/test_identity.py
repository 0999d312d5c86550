"""Who the caller is comes from the real uid, never from USER or LOGNAME."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from lepton_tui import service
from lepton_tui.errors import PermissionDenied
from lepton_tui.service import Service, current_user

_ENV_NAMES = ("USER", "LOGNAME", "LNAME", "USERNAME")


@pytest.fixture
def env_says_root(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV_NAMES:
        monkeypatch.setenv(name, "root")


def _hide_passwd_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's uid has no passwd entry (a container's arbitrary uid, a broken NSS)."""

    def getpwuid(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(service.pwd, "getpwuid", getpwuid)


@pytest.fixture
def no_passwd_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_passwd_entry(monkeypatch)


def test_identity_is_the_real_uid_whatever_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = pwd.getpwuid(os.getuid()).pw_name
    for name in _ENV_NAMES:
        monkeypatch.setenv(name, "mallory")
    assert current_user() == real


@pytest.mark.usefixtures("env_says_root", "no_passwd_entry")
def test_no_passwd_entry_and_user_root_is_not_root() -> None:
    assert current_user() == f"uid-{os.getuid()}"


@pytest.mark.usefixtures("env_says_root")
def test_no_passwd_entry_is_not_admin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = Service.open(tmp_path / "state", user="alice")
    try:
        job = owner.submit(command="sleep 100")
        _hide_passwd_entry(monkeypatch)
        stranger = Service(owner.ledger, owner.home)
        assert stranger.user == f"uid-{os.getuid()}"
        assert not stranger.is_admin()
        [result] = stranger.cancel([job])
        assert not result.ok
    finally:
        owner.close()


def test_a_stand_in_name_that_is_a_real_account_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken = pwd.getpwuid(0)
    _hide_passwd_entry(monkeypatch)

    def getpwnam(name: str) -> pwd.struct_passwd:
        if name == f"uid-{os.getuid()}":
            return taken
        raise KeyError(name)

    monkeypatch.setattr(service.pwd, "getpwnam", getpwnam)
    with pytest.raises(PermissionDenied):
        current_user()
