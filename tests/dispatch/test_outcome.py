"""The rules of a job's and an attempt's life (`lepton_tui.dispatch.outcome`), row by row."""

from __future__ import annotations

import pytest

from lepton_tui.dispatch.outcome import (
    FREE_LOSSES,
    Outcome,
    Retries,
    action,
    cancelled_before_start,
    ended,
    ended_state,
    gave_up,
    lost,
    started,
)

ACTION_ROWS = [
    # attempt state, what the host says, job state -> action
    ("starting", "running", "starting", "start"),
    ("starting", "running", "cancelling", "start"),
    ("running", "running", "running", None),
    ("starting", "starting", "starting", None),
    ("running", "done", "running", "end"),
    ("starting", "done", "starting", "end"),
    ("running", "missing", "running", "missing"),
    ("running", "lost", "running", "lose"),
    ("starting", "lost", "starting", "lose"),
    ("running", "unreadable", "running", "unreadable"),
    ("starting", "missing", "starting", "relaunch"),
    ("starting", "missing", "cancelling", "lose"),
]


@pytest.mark.parametrize(("attempt", "says", "job", "expected"), ACTION_ROWS)
def test_action_for_what_the_host_says(attempt, says, job, expected) -> None:
    assert action(attempt, says, job) == expected


@pytest.mark.parametrize(
    ("job", "expected"),
    [("starting", Outcome("running", "running")), ("cancelling", Outcome("running", None)),
     ("running", Outcome("running", None))],
)  # fmt: skip
def test_started(job, expected) -> None:
    assert started(job) == expected


@pytest.mark.parametrize(
    ("code", "cancelled", "timed_out", "reason", "expected"),
    [
        (0, False, False, None, ("succeeded", None)),
        (3, False, False, None, ("failed", "exit code 3")),
        (137, False, False, "killed by signal 9", ("failed", "killed by signal 9")),
        (124, False, True, None, ("timeout", "time limit reached")),
        (124, False, True, "time limit", ("timeout", "time limit")),
        (143, True, False, None, ("cancelled", "cancelled")),
        (0, True, True, "asked", ("cancelled", "asked")),  # a cancel wins over the time limit
    ],
)
def test_ended_state(code, cancelled, timed_out, reason, expected) -> None:
    assert ended_state(code, cancelled=cancelled, timed_out=timed_out, reason=reason) == expected


ENDED_ROWS = [
    # job state, attempt ended as, cancel sent -> job's new state
    ("running", "succeeded", False, "succeeded"),
    ("running", "failed", False, "failed"),
    ("running", "timeout", False, "timeout"),
    ("running", "cancelled", False, "failed"),  # cancelled by hand on the host, not asked here
    ("starting", "succeeded", False, "succeeded"),  # a quick job, ended before seen running
    ("cancelling", "failed", True, "cancelled"),  # the TERM it was sent killed it
    ("cancelling", "failed", False, "failed"),  # it failed before the cancel went out
    ("cancelling", "cancelled", True, "cancelled"),
    ("cancelling", "succeeded", True, "succeeded"),  # it ended well before the TERM hit
    ("queued", "succeeded", False, None),  # the job moved on (a presumed loss): kept
    ("cancelled", "failed", True, None),
]


@pytest.mark.parametrize(("job", "attempt", "sent", "expected"), ENDED_ROWS)
def test_ended(job, attempt, sent, expected) -> None:
    change = ended(job, attempt, "why", sent)
    assert change == Outcome(attempt, expected, "why")


LOST_ROWS = [
    # job state, retries, presumed -> job's new state, reason
    ("cancelling", Retries(allowed=2, ran=1, made=1, this_ran=True), False,
     "cancelled", "cancelled (gone)"),
    ("running", Retries(allowed=1, ran=1, made=1, this_ran=True), False,
     "queued", "requeued (retry 1 of 1): gone"),
    ("running", Retries(allowed=0, ran=1, made=1, this_ran=True), False,
     "failed", "gone (no retries left)"),
    ("starting", Retries(allowed=0, ran=0, made=1), False,
     "queued", "requeued (it had not started: no retry spent): gone"),
    ("starting", Retries(allowed=0, ran=0, made=FREE_LOSSES), False,
     "queued", "requeued (it had not started: no retry spent): gone"),
    ("starting", Retries(allowed=0, ran=0, made=FREE_LOSSES + 1), False,
     "failed", "gone (no retries left)"),
    ("starting", Retries(allowed=1, ran=0, made=FREE_LOSSES + 1), False,
     "queued", "requeued (retry 1 of 1): gone"),  # a free loss past the limit spends one
    ("running", Retries(allowed=1, ran=1, made=1, this_ran=True, unseen=True), True,
     "queued", "requeued (retry 1 of 1): gone; its launch may have run there"),
    ("running", Retries(allowed=1, ran=1, made=1, this_ran=True, unseen=False), True,
     "queued", "requeued (retry 1 of 1): gone"),
    ("queued", Retries(allowed=1), False, None, "gone"),
    ("failed", Retries(), True, None, "gone"),
]  # fmt: skip


@pytest.mark.parametrize(("job", "retries", "presumed", "target", "reason"), LOST_ROWS)
def test_lost(job, retries, presumed, target, reason) -> None:
    assert lost(job, "gone", retries, presumed=presumed) == Outcome("lost", target, reason)


def test_retries_spent_counts_runs_and_free_losses_past_the_limit() -> None:
    assert Retries(ran=2, made=2).spent == 2
    assert Retries(ran=0, made=FREE_LOSSES).spent == 0
    assert Retries(ran=1, made=1 + FREE_LOSSES + 2).spent == 3


@pytest.mark.parametrize(
    ("job", "expected"),
    [("starting", "failed"), ("running", "failed"), ("cancelling", "cancelled"),
     ("failed", None), ("cancelled", "failed")],
)  # fmt: skip
def test_gave_up(job, expected) -> None:
    assert gave_up(job, "bad spec") == Outcome("failed", expected, "bad spec")


def test_cancelled_before_start() -> None:
    assert cancelled_before_start() == Outcome(
        "cancelled", "cancelled", "cancelled before it started"
    )
    assert cancelled_before_start("it reached Slurm").reason == (
        "cancelled before it reached Slurm"
    )
