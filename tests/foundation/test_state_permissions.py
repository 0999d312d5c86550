"""The state directory and the ledger are private: job commands and `--env` tokens live there."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lepton_tui import paths
from lepton_tui.ledger import Ledger, open_ledger
from lepton_tui.service import Service


@pytest.fixture(autouse=True)
def _umask_022() -> Iterator[None]:
    """The usual login-node umask, under which SQLite alone would make the ledger 0644."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _write_a_job(ledger: Ledger) -> None:
    with ledger.tx():
        ledger.add_job({"command": "train", "env": {"HF_TOKEN": "secret"}}, "alice")


def _db_files(db: Path) -> list[Path]:
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


def test_a_state_directory_lepton_creates_is_private(tmp_path: Path) -> None:
    state = tmp_path / "missing" / "lepton-tui"
    svc = Service.open(state, user="alice")
    try:
        _write_a_job(svc.ledger)
        assert _mode(state) == 0o700
        db = state / paths.LEDGER_FILE
        for f in _db_files(db):
            assert f.exists(), f
            assert _mode(f) == 0o600, f"{f.name} is {_mode(f):o}"
    finally:
        svc.close()


def test_the_default_xdg_state_directory_is_private(tmp_path: Path) -> None:
    svc = Service.open(user="alice")  # XDG_DATA_HOME points into tmp_path (conftest)
    try:
        assert svc.home == tmp_path / "xdg-data" / "lepton-tui"
        assert _mode(svc.home) == 0o700
        assert _mode(svc.home / paths.LEDGER_FILE) == 0o600
    finally:
        svc.close()


def test_an_existing_directory_keeps_its_mode_and_the_ledger_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o755)
    ledger = open_ledger(state / "ledger.db")
    try:
        _write_a_job(ledger)
        assert _mode(state) == 0o755
        for f in _db_files(state / "ledger.db"):
            assert _mode(f) == 0o600, f"{f.name} is {_mode(f):o}"
    finally:
        ledger.close()


def test_a_lab_wide_group_writable_directory_gets_a_group_ledger(tmp_path: Path) -> None:
    """An admin's shared LEPTON_HOME (group-writable, setgid): the lab's members must be able to
    queue jobs, so the ledger is 0660 in the directory's group; never world-readable."""
    state = tmp_path / "shared"
    state.mkdir()
    os.chmod(state, 0o2770)
    ledger = open_ledger(state / "ledger.db")
    try:
        _write_a_job(ledger)
        assert _mode(state) == 0o2770
        for f in _db_files(state / "ledger.db"):
            assert _mode(f) == 0o660, f"{f.name} is {_mode(f):o}"
            assert os.stat(f).st_gid == os.stat(state).st_gid
    finally:
        ledger.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a directory's group to any gid needs root")
def test_the_shared_ledger_follows_the_directory_group_without_setgid(tmp_path: Path) -> None:
    state = tmp_path / "shared"
    state.mkdir()
    other_gid = os.getegid() + 4242
    os.chown(state, -1, other_gid)
    os.chmod(state, 0o770)  # no setgid bit: a new file would take the creator's group
    ledger = open_ledger(state / "ledger.db")
    try:
        assert os.stat(state / "ledger.db").st_gid == other_gid
        assert _mode(state / "ledger.db") == 0o660
    finally:
        ledger.close()


def test_an_existing_ledger_keeps_its_mode(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    open_ledger(db).close()
    os.chmod(db, 0o640)  # an admin's choice
    ledger = open_ledger(db)
    try:
        assert _mode(db) == 0o640
    finally:
        ledger.close()


def test_create_private_file_leaves_an_existing_file_alone(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_text("keep")
    os.chmod(f, 0o644)
    assert not paths.create_private_file(f)
    assert f.read_text() == "keep" and _mode(f) == 0o644
    assert paths.create_private_file(tmp_path / "y")
    assert _mode(tmp_path / "y") == 0o600


def test_make_state_dir_leaves_an_existing_directory_alone(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    os.chmod(d, 0o750)
    assert not paths.make_state_dir(d)
    assert _mode(d) == 0o750
    assert paths.make_state_dir(tmp_path / "a" / "b")
    assert _mode(tmp_path / "a" / "b") == 0o700
