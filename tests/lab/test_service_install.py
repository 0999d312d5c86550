"""`lepton-tui service install`: the units it writes, and the client config for lab mode."""

from __future__ import annotations

import contextlib
import grp
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


def test_system_install_at_root_creates_the_service_account() -> None:
    """`service install --system` at / really creates the account (a system user whose home is
    the state directory, no login shell) and says so.

    It writes /etc/systemd/system/lepton-tui.service and /etc/lepton-tui/client.toml, and the
    latter switches every CLI on the machine into lab mode while it exists: run this only inside
    the shared lock (`flock /work/userbed.lock`, with the other tests that make users). Both files
    are backed up and restored (or removed) afterwards, with the account and the state and socket
    directories this made; it skips where systemd runs (it would enable and start the unit) or a
    lab's state directory is already there (it would be handed to the test's account)."""
    import os
    import pwd
    import shutil
    import subprocess

    from lepton_tui.cli.service_cmd import SOCKET_PATH, STATE_DIR, UNIT_NAME

    if os.geteuid() != 0:
        pytest.skip("creates a system user: run as root (as CI does)")
    if shutil.which("useradd") is None:
        pytest.skip("useradd is missing (Debian's passwd)")
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs here: the install would enable and start the unit")
    state, run = Path(STATE_DIR), Path(SOCKET_PATH).parent
    if state.exists() or run.exists():
        pytest.skip(f"a lab install is on this machine ({state} or {run}): left alone")
    account = "lepton-svc2"
    with contextlib.suppress(KeyError):
        pwd.getpwnam(account)
        pytest.skip(f"the account {account} exists already")
    files = [Path("/etc/systemd/system") / UNIT_NAME, Path("/etc/lepton-tui/client.toml")]
    saved = {path: path.read_bytes() for path in files if path.exists()}
    # what this makes under /etc, innermost first (removed again if empty)
    made_dirs = [p for f in files for p in (f.parent, *f.parent.parents) if not p.exists()]
    try:
        res = CliRunner().invoke(cli, ["service", "install", "--system", "--account", account])
        assert res.exit_code == 0, res.output
        assert f"created the service account {account}\n" in res.output
        info = pwd.getpwnam(account)
        assert info.pw_uid < 1000  # a system user (Debian's SYS_UID_MAX is 999)
        assert (info.pw_dir, info.pw_shell) == (STATE_DIR, "/usr/sbin/nologin")
        assert grp.getgrgid(info.pw_gid).gr_name == account  # its own group, as the unit says
        assert f"\nUser={account}\nGroup={account}\n" in files[0].read_text()
        assert state.stat().st_uid == info.pw_uid and oct(state.stat().st_mode & 0o777) == "0o700"
        assert run.stat().st_uid == info.pw_uid
        # again: the account is there, and it is said so (not created twice)
        res = CliRunner().invoke(cli, ["service", "install", "--system", "--account", account])
        assert res.exit_code == 0, res.output
        assert f"the service account {account} exists\n" in res.output
        assert pwd.getpwnam(account).pw_uid == info.pw_uid
    finally:
        for path in files:
            if path in saved:
                path.write_bytes(saved[path])
            else:
                path.unlink(missing_ok=True)
        for path in made_dirs:
            with contextlib.suppress(OSError):
                path.rmdir()
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
        subprocess.run(["userdel", account], capture_output=True)
