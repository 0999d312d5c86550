"""Read-only commands on a state directory that does not exist: an error, and nothing created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clirun import lepton
from tests.foundation.test_cli import assert_one_line_error

READ_ONLY = [
    ["queue"], ["queue", "--all"], ["show", "1"], ["logs", "1"], ["hosts", "ls"],
    ["hosts", "probe", "h1"], ["cost"], ["cost", "--waste"], ["budget", "ls"], ["price", "ls"],
    ["settings", "ls"], ["settings", "get", "policy"], ["replay"],
]  # fmt: skip


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a))
def test_read_only_commands_never_create_a_state_directory(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "typo" / "lepton-home"
    res = lepton(missing, *args)
    assert_one_line_error(res, 2)
    assert f"the state directory {missing} does not exist" in res.stderr
    assert not (tmp_path / "typo").exists()


def test_nor_a_ledger_in_an_existing_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "LEPTON_HOME": str(empty)}
    res = subprocess.run([sys.executable, "-m", "lepton_tui", "queue"], capture_output=True,
                         text=True, env=env, timeout=60)  # fmt: skip
    assert_one_line_error(res, 2)
    assert "has no ledger" in res.stderr
    assert list(empty.iterdir()) == []


def test_commands_that_write_create_it(tmp_path: Path) -> None:
    home = tmp_path / "new" / "lepton-home"
    res = lepton(home, "submit", "--", "true")
    assert res.returncode == 0, res.stderr
    assert (home / "ledger.db").is_file()
    res = lepton(home, "queue")
    assert res.returncode == 0 and "waiting for the scheduler" in res.stdout
