"""`heuristics.JobTable`: a policy's cache of job numbers, as a long-lived dispatcher uses it."""

from __future__ import annotations

import dataclasses

from scheduler.heuristics import JobTable
from scheduler.model import JobRequest, Resources


def _queue() -> list[JobRequest]:
    return [JobRequest(i, Resources(2, 2048, 1), 600.0 + i, submitted_at=float(i))
            for i in range(300)]  # fmt: skip


def test_fresh_equal_copies_every_tick_reuse_their_rows():
    """The dispatcher builds new JobRequest objects each tick: 600 ticks of 300 queued jobs
    used to add 180,000 rows; now the table holds the 300 jobs."""
    table = JobTable()
    first = table.index(_queue())
    for _ in range(600):
        assert table.index(_queue()).tolist() == first.tolist()
    assert table.n == 300


def test_a_job_that_changes_is_read_again():
    table = JobTable()
    jobs = _queue()
    before = table.index(jobs)
    jobs[7] = dataclasses.replace(jobs[7], priority=5.0)
    after = table.index(jobs)
    assert after[7] != before[7] and table.tab[after[7], 4] == 5.0
    assert [a for k, a in enumerate(after) if k != 7] == [b for k, b in enumerate(before) if k != 7]
