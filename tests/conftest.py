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


# -- two workers (scripts/test runs `-n 2 --dist loadgroup`) -----------------------------------
SHARED_MACHINE_FIXTURES = frozenset(
    {"lab_users", "service_account", "world_venv", "slurmbed", "slurmbed_accounting"}
)
"""Session fixtures that change the machine itself (Unix accounts, /etc/sudoers.d, the systemd
unit, a Slurm node named after this host): two workers each making their own would collide."""
SHARED_MACHINE_DIRS = ("lab", "slurm", "share", "autopilot")


def shares_the_machine(item: pytest.Item) -> bool:
    """Whether `item` needs one of `SHARED_MACHINE_FIXTURES`, directly or through another
    fixture, or lives in a directory of such tests."""
    in_dir = item.path.parent.name in SHARED_MACHINE_DIRS and "tests" in item.path.parts
    return in_dir or bool(SHARED_MACHINE_FIXTURES & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that changes the machine runs on one xdist worker, one after the other (the
    group `machine`); the rest are spread over the workers. Without xdist the mark does nothing."""
    for item in items:
        if shares_the_machine(item):
            item.add_marker(pytest.mark.xdist_group("machine"))
