"""`lepton-tui service install`: the systemd unit that keeps a dispatcher (or the lab service) up.

`--user` (personal mode): a systemd user unit running `lepton-tui serve` on your own ledger.
`--system` (lab mode, as root): the service account, the system unit running
`serve --socket`, and `/etc/lepton-tui/client.toml` so that every user's CLI finds the socket.
Where systemd is not running, the files are written and the `systemctl` commands printed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click

from lepton_tui.cli.common import CONTEXT_SETTINGS, LeptonGroup, printable
from lepton_tui.errors import LeptonError, ValidationError

UNIT_NAME = "lepton-tui.service"
STATE_DIR = "/var/lib/lepton-tui"
SOCKET_PATH = "/run/lepton-tui/lab.sock"

SYSTEM_UNIT = """\
# The lepton-tui lab service: it owns the ledger (0600 in a 0700 state directory), runs the
# dispatcher and serves the service API to the lab's users on a Unix socket.
# Written by `lepton-tui service install --system`.
[Unit]
Description=lepton-tui lab service (ledger, dispatcher, socket API)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User={account}
Group={account}
ExecStart={python} -m lepton_tui --home {state_dir} serve --socket {socket}
StateDirectory=lepton-tui
StateDirectoryMode=0700
RuntimeDirectory=lepton-tui
RuntimeDirectoryMode=0755
UMask=0077
Restart=always
RestartSec=2
# stop only the service: a `--local` host's jobs run in this unit's process tree and must survive
# a restart, which reconciles them
KillMode=process
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=read-only

[Install]
WantedBy=multi-user.target
"""

USER_UNIT = """\
# A personal lepton-tui dispatcher: your jobs run while you are logged out.
# Written by `lepton-tui service install --user`.
[Unit]
Description=lepton-tui dispatcher (personal)

[Service]
Type=simple
ExecStart={python} -m lepton_tui serve
Restart=always
RestartSec=2
# stop only the dispatcher: a `--local` host's jobs run in this unit's process tree and must
# survive a restart, which reconciles them
KillMode=process

[Install]
WantedBy=default.target
"""


def system_unit(account: str = "lepton", python: str | None = None) -> str:
    """The system unit `service install --system` writes (docs/lepton-tui.service)."""
    return SYSTEM_UNIT.format(account=account, python=python or sys.executable,
                              state_dir=STATE_DIR, socket=SOCKET_PATH)  # fmt: skip


def user_unit(python: str | None = None) -> str:
    """The user unit `service install --user` writes."""
    return USER_UNIT.format(python=python or sys.executable)


def _systemd_running(root: Path) -> bool:
    return root == Path("/") and Path("/run/systemd/system").is_dir()


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@click.group(cls=LeptonGroup, context_settings=CONTEXT_SETTINGS)
def service() -> None:
    """Install the systemd unit that keeps the dispatcher (or the lab service) running."""


@service.command("install", context_settings=CONTEXT_SETTINGS)
@click.option("--user", "scope", flag_value="user", help="A user unit for your own ledger.")
@click.option("--system", "scope", flag_value="system", help="The lab service (as root).")
@click.option("--account", default="lepton", show_default=True, help="The service account.")
@click.option(
    "--root",
    "root_dir",
    default="/",
    type=click.Path(file_okay=False),
    help="Write under this directory instead of / (to stage or inspect the files).",
)
@click.option(
    "--import",
    "import_path",
    default=None,
    help="--system: take this personal ledger (file or state directory) into the lab's, "
    "keeping job ids, history and costs.",
)
def install(scope: str | None, account: str, root_dir: str, import_path: str | None) -> None:
    """Write (and, where systemd runs, enable) the unit; say what was done."""
    if scope is None:
        raise ValidationError("say --user (personal mode) or --system (the lab service)")
    if import_path is not None and scope != "system":
        raise ValidationError(
            "--import takes a personal ledger into the lab's: it goes with --system",
            field="import",
        )
    root = Path(root_dir)
    if scope == "user":
        config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        unit = root / str(config).lstrip("/") / "systemd" / "user" / UNIT_NAME
        _write(unit, user_unit())
        click.echo(f"wrote {unit}")
        commands = [["systemctl", "--user", "daemon-reload"],
                    ["systemctl", "--user", "enable", "--now", UNIT_NAME]]  # fmt: skip
    else:
        if os.geteuid() != 0 and root == Path("/"):
            raise LeptonError("service install --system must run as root", "use sudo")
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", account):
            raise ValidationError(
                f"account {account!r} is not a valid user name", "e.g. --account lepton"
            )
        if import_path is not None:
            _import_ledger(import_path, root)
        _ensure_account(account, root)
        if import_path is not None:
            _give_state_to(account, root)
        unit = root / "etc/systemd/system" / UNIT_NAME
        _write(unit, system_unit(account))
        click.echo(f"wrote {unit}")
        client = root / "etc/lepton-tui/client.toml"
        _write(
            client, f'# written by lepton-tui service install --system\nsocket = "{SOCKET_PATH}"\n'
        )
        click.echo(f"wrote {client}: every user's lepton-tui now talks to {SOCKET_PATH}")
        commands = [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", UNIT_NAME]]
    if _systemd_running(root):
        for cmd in commands:
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise LeptonError(f"`{shlex.join(cmd)}` failed: {done.stderr.strip()}")
            click.echo(f"ran {shlex.join(cmd)}")
    else:
        click.echo("systemd is not running here; to start the service, run:")
        for cmd in commands:
            click.echo(f"  {shlex.join(cmd)}")
        if scope == "system":
            _make_service_dirs(account, root)


def _ensure_account(account: str, root: Path) -> None:
    """Create the service account (a system user whose home is the state directory)."""
    if root != Path("/"):
        click.echo(f"(staged under {root}: the account {account!r} is not created)")
        return
    try:
        pwd.getpwnam(account)
        click.echo(f"the service account {account} exists")
        return
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise LeptonError("useradd is not installed", f"create the system user {account} first")
    cmd = [useradd, "--system", "--user-group", "--home-dir", STATE_DIR, "--no-create-home",
           "--shell", "/usr/sbin/nologin", account]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise LeptonError(f"cannot create the account {account}: {printable(done.stderr.strip())}")
    click.echo(f"created the service account {account}")


def _make_service_dirs(account: str, root: Path) -> None:
    """Without systemd, what its StateDirectory= and RuntimeDirectory= would make: the state
    directory (0700) and the socket's (0755), the account's; and the command that starts it."""
    for where, mode in ((STATE_DIR, 0o700), (str(Path(SOCKET_PATH).parent), 0o755)):
        path = root / where.lstrip("/")
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
        if root == Path("/"):
            info = pwd.getpwnam(account)
            os.chown(path, info.pw_uid, info.pw_gid)
        click.echo(f"made {path} ({mode:04o}, {account}'s)")
    serve = [sys.executable, "-m", "lepton_tui", "--home", STATE_DIR, "serve", "--socket",
             SOCKET_PATH]  # fmt: skip
    click.echo(f"or, without systemd: sudo -u {account} {shlex.join(serve)}")
    click.echo(f"  ({Path(SOCKET_PATH).parent} is on a tmpfs: make it again after a reboot)")


def _import_ledger(source: str, root: Path) -> None:
    """Take a personal ledger into the lab's (all or nothing; a lab ledger this made is removed
    again when the import fails)."""
    from lepton_tui import paths
    from lepton_tui.ledger import open_ledger
    from lepton_tui.ledger_import import import_ledger, personal_ledger_file
    from lepton_tui.service import current_user

    personal_ledger_file(source)  # a wrong path is said before anything is made
    state = root / STATE_DIR.lstrip("/")
    made = [p for p in (state, *state.parents) if not p.exists()]
    lab_file = state / paths.LEDGER_FILE
    new_ledger = not lab_file.exists()
    lab = open_ledger(lab_file)
    try:
        summary = import_ledger(lab, source, current_user())
    except BaseException:
        lab.close()
        if new_ledger:
            for name in (paths.LEDGER_FILE, f"{paths.LEDGER_FILE}-wal", f"{paths.LEDGER_FILE}-shm"):
                (state / name).unlink(missing_ok=True)
            for directory in made:  # innermost first
                with contextlib.suppress(OSError):
                    directory.rmdir()
        raise
    lab.close()
    for line in summary.lines():
        click.echo(printable(line))


def _give_state_to(account: str, root: Path) -> None:
    """The state directory and ledger to the service account, readable by nobody else."""
    state = root / STATE_DIR.lstrip("/")
    os.chmod(state, 0o700)
    files = [p for p in state.iterdir() if p.is_file()]
    for path in files:
        os.chmod(path, 0o600)
    if root != Path("/"):
        return
    info = pwd.getpwnam(account)
    for path in (state, *files):
        os.chown(path, info.pw_uid, info.pw_gid)
    click.echo(f"{state} now belongs to {account} (0700, ledger 0600)")
