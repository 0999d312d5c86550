"""The queue-wide fair-share reason (`AheadIndex`) says what one scan per job said, in a number
of factor lookups that grows with the queue, not with its square."""

from __future__ import annotations

import random

import pytest

from lepton_tui.place_rules import PlaceRules
from scheduler.fairshare import AheadIndex, FairShare, ShareConfig, standings
from scheduler.model import JobRequest, Resources

GPU = Resources(1, 1024, 1)
USERS = ("alice", "bob", "carol", "dave")
PROJECTS = ("p", "q", "")


def _fair(weight: float = 1.0) -> FairShare:
    st = standings(
        {"alice": 40.0, "bob": 10.0, "carol": 10.0},
        {"p": 5.0, "q": 20.0},
        ShareConfig(),
        USERS,
        ["p", "q"],
    )
    return FairShare(st, weight)


def _queue(rng: random.Random, fair: FairShare, n: int) -> list[JobRequest]:
    jobs = [
        JobRequest(
            i,
            GPU,
            60,
            priority=float(rng.choice((0, 0, 1, 2))),
            user=rng.choice(USERS),
            project=rng.choice(PROJECTS),
        )
        for i in range(n)
    ]
    return [fair.apply(j) for j in jobs]


@pytest.mark.parametrize("seed", range(8))
def test_the_index_says_what_the_scan_says(seed: int) -> None:
    rng = random.Random(seed)
    fair = _fair()
    queue = _queue(rng, fair, rng.randint(1, 120))
    index = AheadIndex(fair, queue)
    reasons = []
    for job in queue:
        scan = fair.held_back(job, [o for o in queue if o.priority > job.priority])
        assert index.held_back(job) == scan
        reasons.append(scan)
    assert any(reasons), "the queues must hold some job back, or the test shows nothing"


def test_ties_name_the_earliest_job_of_the_highest_factor() -> None:
    fair = _fair()
    # bob and carol used the same, so they have one factor: the scan names whoever comes first
    for first, second in (("bob", "carol"), ("carol", "bob")):
        queue = [
            fair.apply(JobRequest(1, GPU, 60, priority=1, user=first)),
            fair.apply(JobRequest(2, GPU, 60, priority=1, user=second)),
            fair.apply(JobRequest(3, GPU, 60, priority=0, user="alice")),
        ]
        why = AheadIndex(fair, queue).held_back(queue[2])
        assert why == fair.held_back(queue[2], queue[:2])
        assert why is not None and f"{first}'s jobs" in why


def test_no_weight_no_reason() -> None:
    fair = _fair(0.0)
    queue = _queue(random.Random(1), fair, 30)
    index = AheadIndex(fair, queue)
    assert all(index.held_back(j) is None for j in queue)


def test_a_long_queue_costs_factor_lookups_in_proportion(monkeypatch) -> None:
    """PlaceRules.waiting over a whole queue with nothing placed: before the index, each job
    scanned every job of a higher priority (n^2 / 2 lookups, 2 million for 2,000 jobs)."""
    fair = _fair()
    n = 2000
    queue = _queue(random.Random(3), fair, n)
    rules = PlaceRules()
    rules.fair = fair
    rules.requests = {int(j.id): j for j in queue}
    calls = 0
    real = FairShare.factor

    def counted(self: FairShare, job: JobRequest) -> float:
        nonlocal calls
        calls += 1
        return real(self, job)

    monkeypatch.setattr(FairShare, "factor", counted)
    reasons = [rules.waiting({"id": int(j.id)}, "waiting for GPUs") for j in queue]
    assert sum("fair share" in r for r in reasons) > n // 10
    assert calls <= 4 * n  # one per job to build the index, a few per job to ask it
