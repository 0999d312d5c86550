"""`lepton-tui service install`: the units it writes, and the client config for lab mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lepton_tui.cli import cli
from lepton_tui.cli.service_cmd import system_unit, user_unit
from lepton_tui.client import configured_socket

DOCS_UNIT = Path(__file__).resolve().parents[2] / "docs" / "lepton-tui.service"


def test_the_unit_in_docs_is_the_one_install_writes() -> None:
    assert DOCS_UNIT.read_text() == system_unit(python="/usr/bin/python3")
    # and no other unit in docs/ says something else (an older example made the state directory
    # group-writable, the very thing lab mode ends)
    units = sorted(DOCS_UNIT.parent.rglob("*.service"))
    assert units == [DOCS_UNIT]


def test_units_stop_only_the_dispatcher_so_local_jobs_survive_a_restart() -> None:
    # a `--local` host's jobs run in the unit's process tree: systemd's default KillMode
    # (control-group) would kill them on every restart
    assert "\nKillMode=process\n" in user_unit(python="/usr/bin/python3")
    assert "\nKillMode=process\n" in system_unit(python="/usr/bin/python3")


def test_system_install_writes_the_unit_and_the_client_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = CliRunner().invoke(cli, ["service", "install", "--system", "--root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    unit = (tmp_path / "etc/systemd/system/lepton-tui.service").read_text()
    assert "User=lepton" in unit and "serve --socket /run/lepton-tui/lab.sock" in unit
    assert "StateDirectoryMode=0700" in unit and "Restart=always" in unit
    monkeypatch.delenv("LEPTON_SOCKET")
    assert configured_socket(tmp_path / "etc/lepton-tui/client.toml") == "/run/lepton-tui/lab.sock"
    assert "systemctl enable --now lepton-tui.service" in res.output  # no systemd here: said
    # and what systemd would have made, so that the service also starts without it
    state, run = tmp_path / "var/lib/lepton-tui", tmp_path / "run/lepton-tui"
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    assert oct(run.stat().st_mode & 0o777) == "0o755"
    assert "--home /var/lib/lepton-tui serve --socket /run/lepton-tui/lab.sock" in res.output


def test_user_install_writes_a_user_unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    stage = tmp_path / "stage"
    res = CliRunner().invoke(cli, ["service", "install", "--user", "--root", str(stage)])
    assert res.exit_code == 0, res.output
    config = str(tmp_path / "config").lstrip("/")
    unit = (stage / config / "systemd/user/lepton-tui.service").read_text()
    assert " -m lepton_tui serve\n" in unit and "--socket" not in unit


@pytest.mark.parametrize(
    ("args", "message"),
    [([], "say --user"), (["--system", "--account", "Bad Name"], "not a valid user name")],
)
def test_install_refuses_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(cli, ["service", "install", "--root", str(tmp_path), *args])
    assert res.exit_code == 2 and message in res.output
    assert not list(tmp_path.iterdir())  # nothing written
