"""The host's truth about an attempt presumed lost, decided in one pure place (a table)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from inventory.supervisor import AttemptStatus
from lepton_tui.dispatch.truth import after_fence, before_fence
from lepton_tui.rows import AttemptRow

NOW = 1000.0


BASE = AttemptRow(
    id=1, job_id=7, attempt_no=1, host="h", token="t" * 12, state="lost", gpu_ids=(), cpus=1.0,
    mem_mb=64, gpus=0, gpu_mem_mb=0, created_at=890.0, presumed=True, launch_sent_at=900.0,
)  # fmt: skip


def _attempt(**kw: Any) -> AttemptRow:
    return dataclasses.replace(BASE, **kw)


DONE0 = AttemptStatus("t", "done", exit_code=0, started_at=910.0, ended_at=950.0)
DONE2 = AttemptStatus("t", "done", exit_code=2, started_at=910.0, ended_at=950.0)
RUNNING = AttemptStatus("t", "running", started_at=910.0)
MISSING = AttemptStatus("t", "missing")


@pytest.mark.parametrize(
    ("job_state", "latest", "st", "attempt_state", "job_target", "fence"),
    [
        ("failed", True, DONE0, "succeeded", "succeeded", True),  # failed on the presumption
        ("queued", True, DONE0, "succeeded", "succeeded", True),  # requeued, not placed yet
        ("failed", True, DONE2, "failed", "failed", True),  # the real code, the same state
        ("running", False, DONE0, "succeeded", None, True),  # moved on: the attempt only
        ("cancelled", True, DONE0, "succeeded", None, True),  # the user's cancel stands
        ("failed", True, RUNNING, "running", "running", False),  # taken back, not killed
        ("queued", False, RUNNING, None, None, True),  # placed again: the old copy is fenced
        ("cancelled", True, RUNNING, None, None, True),  # cancelled: fenced
        ("failed", True, MISSING, None, None, True),  # nothing said before fencing
    ],
)
def test_before_fence(job_state, latest, st, attempt_state, job_target, fence):
    am = before_fence(_attempt(), job_state, st, latest, NOW)
    if attempt_state is None:
        assert am is None
        return
    assert am is not None
    assert (am.attempt_state, am.job_state, am.fence) == (attempt_state, job_target, fence)


def test_a_copy_lost_on_the_host_s_own_word_is_never_taken_back():
    """Lost because its host said so (wrapper gone), not presumed: a running report is fenced."""
    assert before_fence(_attempt(presumed=False), "failed", RUNNING, True, NOW) is None


def test_an_ended_attempt_keeps_its_own_times():
    am = before_fence(_attempt(), "failed", DONE0, True, NOW)
    assert am is not None
    assert am.attempt_fields["started_at"] == 910.0 and am.attempt_fields["ended_at"] == 950.0
    assert am.job_fields["exit_code"] == 0


@pytest.mark.parametrize(
    ("attempt", "job_state", "killed", "st", "job_target", "refund"),
    [
        (_attempt(), "failed", 0, MISSING, "queued", True),  # never ran: back in the queue
        (_attempt(), "queued", 0, MISSING, None, True),  # requeued with a retry: refunded
        (_attempt(), "failed", 1, MISSING, None, False),  # something of it ran: killed
        (_attempt(started_at=905.0), "failed", 0, MISSING, None, False),  # seen running
        (_attempt(launch_sent_at=None), "failed", 0, MISSING, None, False),  # free already
        (_attempt(presumed=False), "failed", 0, MISSING, None, False),  # the host's own word
        (_attempt(), "failed", 0, AttemptStatus("t", "lost", started_at=910.0), None, False),
    ],
)
def test_after_fence(attempt, job_state, killed, st, job_target, refund):
    am = after_fence(attempt, job_state, st, killed, True)
    if not refund:
        assert am is None
        return
    assert am is not None and am.attempt_fields == {"launch_sent_at": None}
    assert am.job_state == job_target


def test_the_note_says_the_exit_code_once():
    """Seen in bench/chaos.py: 'ended with exit code 3 (exit code 3)'."""
    am = before_fence(_attempt(), "failed", DONE2, True, NOW)
    assert am is not None and am.note == "h answered again: attempt 1 ended with exit code 2"
    limit = AttemptStatus("t", "done", exit_code=124, timed_out=True, reason="time limit")
    am = before_fence(_attempt(), "failed", limit, True, NOW)
    assert am is not None and am.note.endswith("exit code 124 (time limit)")
