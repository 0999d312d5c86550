"""`lepton-tui events`: the audit trail of state changes, by acting user and since a time."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from lepton_tui.cli import cli
from lepton_tui.service import Service


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_events_lists_who_changed_what_by_user_and_since(home: Path) -> None:
    alice = Service.open(home, user="alice")  # the ledger's owner: an admin
    job = alice.submit(command="true")
    alice.set_prices(gpu_hour=2, currency="EUR")
    bob = Service(alice.ledger, home, user="bob")
    other = bob.submit(command="sleep 1")
    [refused] = bob.cancel([job])  # not his: refused, and nothing recorded
    assert not refused.ok
    bob.cancel([other])
    alice.close()

    out = invoke("events", "--user", "alice", "--json")
    assert out.exit_code == 0, out.output
    mine = json.loads(out.output)
    assert {e["actor"] for e in mine} == {"alice"}
    assert {"job.submitted", "price.set", "setting"} <= {e["kind"] for e in mine}
    out = invoke("events", "--user", "bob", "--json")
    bobs = json.loads(out.output)
    assert [e["kind"] for e in bobs] == ["job.cancelled", "job.submitted"]  # newest first
    assert {e["job_id"] for e in bobs} == {other}

    assert len(json.loads(invoke("events", "--since", "2h", "--json").output)) >= 5
    assert json.loads(invoke("events", "--since", "2999-01-01", "--json").output) == []
    table = invoke("events", "--user", "bob")
    assert table.exit_code == 0 and "job.cancelled" in table.output and "bob" in table.output


def test_bad_events_filters_are_one_line_errors(home: Path) -> None:
    Service.open(home).close()
    out = invoke("events", "--since", "last tuesday")
    assert out.exit_code == 2
    assert "--since 'last tuesday' is neither a duration nor a date" in out.output
    out = invoke("events", "--job", "x")
    assert out.exit_code == 2


def test_events_on_a_missing_home_creates_nothing(tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "typo"
    monkeypatch.setenv("LEPTON_HOME", str(missing))
    out = invoke("events")
    assert out.exit_code == 2 and "does not exist" in out.output
    assert not missing.exists()
