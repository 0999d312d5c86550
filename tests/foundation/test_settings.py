"""Settings: known keys only, values checked, admins only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lepton_tui.errors import PermissionDenied, ValidationError
from lepton_tui.service import Service
from lepton_tui.settings import effective, parse_setting


def test_parse_known_settings() -> None:
    assert parse_setting("tick_s", "5s") == 5.0
    assert parse_setting("policy", "tetris") == "tetris"
    assert parse_setting("currency", "eur") == "EUR"
    assert parse_setting("cost_weight", "0.5") == 0.5


@pytest.mark.parametrize(
    ("key", "value"),
    [("bogus", "1"), ("tick_s", "0s"), ("tick_s", "2x"), ("policy", "random"), ("currency", "XYZ"),
     ("cost_weight", "-1"), ("lab_name", "my lab"), ("host_grace_s", "nan")],
)  # fmt: skip
def test_bad_settings(key: str, value: str) -> None:
    with pytest.raises(ValidationError):
        parse_setting(key, value)


def test_only_admins_change_settings(tmp_path: Path) -> None:
    owner = Service.open(tmp_path, user="alice")
    owner.set_setting("policy", "sjf")
    with pytest.raises(PermissionDenied):
        Service(owner.ledger, owner.home, user="bob").set_setting("policy", "fifo")
    assert effective(owner.settings())["policy"] == "sjf"


def test_settings_cli(home: Path) -> None:
    env = {**os.environ, "LEPTON_HOME": str(home)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lepton_tui", "settings", *args],
            capture_output=True,
            text=True,
            env=env,
        )

    assert cli("set", "policy", "tetris").returncode == 0
    bad = cli("set", "tick_s", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    values = json.loads(cli("ls", "--json").stdout)
    assert values["policy"] == "tetris" and values["tick_s"] == 2.0
    assert cli("get", "policy").stdout.strip() == "tetris"


def test_settings_ls_never_cuts_a_key_or_value(home: Path) -> None:
    """At 80 columns (a pipe's width) `settings ls` once printed `notify_webhook_internal_ho…` and
    cut a long value to `hooks.slack.com,chat…`: neither could be read back or copied."""
    from tests.clirun import lepton

    hosts = "hooks.slack.com,chat.example.org,another.example.org,mm.internal.lab.example.org"
    assert lepton(home, "settings", "set", "notify_webhook_hosts", hosts).returncode == 0
    res = lepton(home, "settings", "ls", columns=80)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "…" not in res.stdout and all(len(line) <= 80 for line in lines)
    keys = [line.split()[0] for line in lines[1:] if line[:1].strip()]
    assert sorted(keys) == sorted(json.loads(lepton(home, "settings", "ls", "--json").stdout))
    start = lines[0].index("VALUE")
    row = next(i for i, line in enumerate(lines) if line.startswith("notify_webhook_hosts "))
    pieces = []
    for line in lines[row:]:
        if line is not lines[row] and line[:1].strip():
            break  # the next setting
        pieces.append(line[start:].split("  ")[0].strip())
    assert "".join(pieces) == hosts
