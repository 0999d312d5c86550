"""Replay: a ledger recorded under a policy, replayed under the same policy, gives the same waits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lepton_tui.economics.replay import ACTUAL, replay_ledger
from lepton_tui.errors import ValidationError
from tests.economics.helpers import T0, Clock, make_ledger, record_history

# Stated tolerance: the replayed mean wait is within 1 % (plus 1 s) of the recorded one.
REL_TOL, ABS_TOL_S = 0.01, 1.0


def record(ledger, clock: Clock, policy: str, jobs: int = 80, seed: int = 3, **options):
    """The lab mix at load 0.9 recorded under `policy` (see `record_history`)."""
    return record_history(ledger, clock, policy, jobs, seed, load=0.9, **options)


@pytest.mark.parametrize("policy", ["fifo", "backfill"])
def test_replay_reproduces_the_recorded_policy(tmp_path: Path, policy: str) -> None:
    clock = Clock()
    ledger = make_ledger(tmp_path, clock)
    record(ledger, clock, policy)
    out = replay_ledger(ledger, T0 - 1, T0 + 365 * 86400, [policy, "sjf"])
    rows = {r.policy: r for r in out.rows}
    assert out.jobs == 80 and out.skipped == 0
    actual, again = rows[ACTUAL], rows[policy]
    assert actual.finished == again.finished == 80
    assert again.mean_wait_s == pytest.approx(actual.mean_wait_s, rel=REL_TOL, abs=ABS_TOL_S)
    assert again.mean_slowdown == pytest.approx(actual.mean_slowdown, rel=REL_TOL)
    assert again.gpu_util == pytest.approx(actual.gpu_util, rel=REL_TOL)
    assert "sjf" in rows
    ledger.close()


def test_replay_runs_sjf_with_the_labs_long_share(tmp_path: Path) -> None:
    clock = Clock()
    ledger = make_ledger(tmp_path, clock)
    record(ledger, clock, "sjf", jobs=120, seed=5, long_share=0.4)
    ledger.set_setting("fairshare_weight", 0.0)  # the history was simulated without fair share
    window = (T0 - 1, T0 + 365 * 86400)
    plain = {r.policy: r for r in replay_ledger(ledger, *window, ["sjf"]).rows}
    ledger.set_setting("long_share", 0.4)
    limited = {r.policy: r for r in replay_ledger(ledger, *window, ["sjf"]).rows}
    actual = limited[ACTUAL]
    assert limited["sjf"].mean_wait_s == pytest.approx(
        actual.mean_wait_s, rel=REL_TOL, abs=ABS_TOL_S
    )
    assert plain["sjf"].mean_wait_s != pytest.approx(actual.mean_wait_s, rel=REL_TOL, abs=ABS_TOL_S)
    ledger.close()


def test_replay_command_prints_the_side_by_side_table(home: Path) -> None:
    from lepton_tui.cli import cli
    from lepton_tui.ledger import Ledger

    clock = Clock()
    ledger = Ledger(home / "ledger.db", clock=clock)
    record(ledger, clock, "fifo", jobs=30)
    ledger.close()
    runner = CliRunner()
    args = ["replay", "--since", "2026-03-01", "--until", "2027-03-01", "--policies", "fifo,tetris"]
    out = runner.invoke(cli, args)
    assert out.exit_code == 0, out.output
    for word in ("POLICY", "MEAN WAIT", "actual", "fifo", "tetris", "COST"):
        assert word in out.output
    data = json.loads(runner.invoke(cli, [*args, "--json"]).output)
    assert [r["policy"] for r in data["rows"]] == ["actual", "fifo", "tetris"]
    bad = runner.invoke(cli, ["replay", "--policies", "astrology"])
    assert bad.exit_code == 2 and "unknown policy" in bad.output


def test_unknown_policy_is_refused(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path, Clock())
    with pytest.raises(ValidationError, match="unknown policy"):
        replay_ledger(ledger, T0, T0 + 1, ["nope"])
