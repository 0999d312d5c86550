"""Shared fixtures. Fixture modules that several test files use are imported here, one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

# -- fixture modules (one import line per module) ---------------------------------------------
from tests.sshbed import *  # noqa: F401,F403


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty lepton state directory, also exported as LEPTON_HOME."""
    state = tmp_path / "lepton-home"
    state.mkdir()
    monkeypatch.setenv("LEPTON_HOME", str(state))
    return state


@pytest.fixture
def svc(home: Path):
    """A Service on `home` (the caller is this process's user, the ledger's owner: an admin)."""
    from lepton_tui.service import Service

    service = Service.open(home)
    yield service
    service.close()


@pytest.fixture(autouse=True)
def _no_user_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a test touch the real user's state directory."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("LEPTON_HOME", raising=False)
    # personal mode, whatever the machine says (a lab's LEPTON_SOCKET or client.toml)
    monkeypatch.setenv("LEPTON_SOCKET", "")
