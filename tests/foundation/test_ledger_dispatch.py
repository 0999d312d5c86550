"""The ledger's named reads and writes for the dispatcher, and its typed rows, on a real file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lepton_tui.ledger import Ledger, open_ledger
from lepton_tui.rows import ActiveAttempt, AttemptRow


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    clock = iter(range(1_000_000, 2_000_000))
    return open_ledger(tmp_path / "ledger.db", clock=lambda: float(next(clock)))


def _start(ledger: Ledger, token: str, **spec) -> int:
    with ledger.tx():
        job_id = ledger.add_job({"command": "echo hi", "env": {"A": "1"}, **spec}, "alice")
    ledger.start_attempt(job_id, "h1", token, [0, 2])
    return job_id


def test_active_attempts_come_typed_with_their_job(ledger: Ledger) -> None:
    job_id = _start(ledger, "aaaaaaaaaaaa", retries=2, time_limit_s=60, cpus=2)
    (a,) = ledger.active_attempts()
    assert isinstance(a, ActiveAttempt)
    assert (a.job_id, a.token, a.host, a.state, a.gpu_ids) == (
        job_id, "aaaaaaaaaaaa", "h1", "starting", (0, 2),
    )  # fmt: skip
    assert (a.cpus, a.attempt_no, a.presumed, a.launch_failures) == (2.0, 1, False, 0)
    assert (a.job.state, a.job.command, a.job.env, a.job.retries) == (
        "starting", "echo hi", {"A": "1"}, 2,
    )  # fmt: skip
    assert a.job.time_limit_s == 60.0
    assert ledger.active_attempt("aaaaaaaaaaaa") == a
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.state = "running"  # type: ignore[misc]


def test_a_row_ignores_columns_it_does_not_know(ledger: Ledger) -> None:
    _start(ledger, "bbbbbbbbbbbb")
    row = {**ledger.query_one("SELECT * FROM attempts"), "a_later_column": 1}
    assert AttemptRow.from_row(row).token == "bbbbbbbbbbbb"


def test_named_writes_change_what_they_say(ledger: Ledger) -> None:
    job_id = _start(ledger, "cccccccccccc")
    with ledger.tx():
        ledger.mark_cancel_sent("cccccccccccc", 5.0)
        ledger.note_missing("cccccccccccc", 6.0)
        ledger.mark_launch_sent("cccccccccccc", 7.0)
        ledger.set_remote_dir("cccccccccccc", "/r/1-cccccccccccc")
        assert ledger.count_launch_failure("cccccccccccc") == 1
        assert ledger.count_launch_failure("cccccccccccc") == 2
    a = ledger.attempt_row("cccccccccccc")
    assert a is not None
    assert (a.cancel_sent_at, a.missing_since, a.launch_sent_at) == (5.0, 6.0, 7.0)
    assert (a.remote_dir, a.launch_failures) == ("/r/1-cccccccccccc", 2)
    assert ledger.cancel_sent("cccccccccccc")
    with ledger.tx():
        ledger.note_missing("cccccccccccc", None)
        ledger.mark_fenced(a.id, 8.0)
    a = ledger.attempt_row("cccccccccccc")
    assert a is not None and a.missing_since is None and a.fenced_at == 8.0
    assert ledger.job_state(job_id) == "starting" and ledger.job_state(999) == "missing"
    assert ledger.attempt_state("cccccccccccc") == "starting"
    assert ledger.attempt_state("none") is None


def test_retry_tally_counts_what_may_have_run(ledger: Ledger) -> None:
    """An attempt lost unseen after its launch went out, on a presumption, may have run."""
    job_id = _start(ledger, "dddddddddddd", retries=1)
    tally = ledger.retry_tally(job_id, "dddddddddddd")
    assert tally is not None
    assert (tally.allowed, tally.ran, tally.made, tally.this_ran, tally.unseen) == (
        1, 0, 1, False, True,
    )  # fmt: skip
    with ledger.tx():
        ledger.mark_launch_sent("dddddddddddd", 1.0)
        ledger.mark_presumed("dddddddddddd")
    tally = ledger.retry_tally(job_id, "dddddddddddd")
    assert tally is not None and (tally.ran, tally.this_ran, tally.unseen) == (1, True, True)
    with ledger.tx():
        ledger.note_started("dddddddddddd", 2.0)
    tally = ledger.retry_tally(job_id, "dddddddddddd")
    assert tally is not None and (tally.ran, tally.unseen) == (1, False)
    assert ledger.retry_tally(999, "dddddddddddd") is None


def test_unfenced_attempts_and_fencing_holds(ledger: Ledger) -> None:
    job_id = _start(ledger, "eeeeeeeeeeee")
    ledger.transition_attempt("eeeeeeeeeeee", "lost", job_state="queued", reason="gone")
    (a,) = ledger.unfenced_attempts()
    assert isinstance(a, AttemptRow) and a.state == "lost"
    assert ledger.fencing_holds() == {job_id: "h1"}  # h1 is not a known host: it may run there
    with ledger.tx():
        ledger.mark_fenced(a.id, 9.0)
    assert ledger.unfenced_attempts() == [] and ledger.fencing_holds() == {}
