"""Backfill skips the reservation when no later job fits anywhere (issue 18, third pass): the
schedule cannot depend on it then, and `explain` still gives the text it gave when the
reservation was found in the round."""

from __future__ import annotations

import scheduler.heuristics as heuristics
from scheduler.bench import make_workload
from scheduler.heuristics import fmt_duration
from scheduler.registry import make_policy
from scheduler.simulator import Simulator


def test_a_reservation_left_for_explain_reads_as_one_found_in_the_round(monkeypatch) -> None:
    calls = []
    real = heuristics.earliest_fit

    def counted(view, job, now):
        calls.append(job.id)
        return real(view, job, now)

    monkeypatch.setattr(heuristics, "earliest_fit", counted)
    sim = Simulator(make_workload("lab", 4, jobs=400, nodes=6, load=1.4))
    policy = make_policy("backfill")
    skipped = explained = 0
    while sim.advance():
        if not sim.worth_deciding():
            continue
        pending = sim.pending()
        view = sim.view()
        before = len(calls)
        placements = policy.decide(view, pending, sim.now)
        later = policy._blocker_later
        if later is not None:
            skipped += 1
            assert len(calls) == before  # no reservation was searched for in the round
            _, state, head, now = later
            hit = real(heuristics._with_placed(view, state), head, now)
            placed = {p.job_id for p in placements}
            others = [j for j in pending if j.id != head.id and j.id not in placed][:3]
            for job in others:
                text = policy.explain(job.id)
                if hit is not None:
                    t, node, _ = hit
                    want = f"held back: job {head.id} holds a reservation on {node} in ~"
                    assert text.startswith(want + fmt_duration(t - now) + "; "), text
                    explained += 1
                else:
                    assert not text.startswith("held back"), text
        sim.apply(placements)
    assert skipped > 20 and explained > 20
