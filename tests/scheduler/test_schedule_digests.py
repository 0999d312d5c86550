"""Fixed-seed replays at a queue length where the fast paths matter, pinned job by job.

`tests/scheduler/test_pinned_runs.py` pins 300-job runs on one to three nodes; those queues are
short, so a DQN round there is one window and the backfill reservation rarely moves. These runs
are longer and wider (16 nodes, a queue of dozens to hundreds of jobs, several DQN windows per
round), so the incremental node table, the batched DQN scoring and the reservation reuse all run.

`data/schedule_digests.json` holds, for each run, a digest of every job's (node, GPUs, start,
attempts) and every attempt's (node, start, end), recorded from main at `cc5c0e6` before the
second speed pass (issue 18). Rewrite it (`python -m tests.scheduler.test_schedule_digests`) only
for a change meant to alter schedules, and say why in its commit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from scheduler.bench import make_workload
from scheduler.model import Workload
from scheduler.registry import make_policy
from scheduler.simulator import SimResult, Simulator, random_outages

DIGESTS = Path(__file__).parent / "data" / "schedule_digests.json"
POLICIES = ("fifo", "sjf", "backfill", "tetris", "dqn")
CASES = ("lab-1.1", "lab-1.6", "lab-0.9-outages", "lab-long-1.0", "lab-1.2-cost")


def _case(name: str) -> tuple[Workload, list]:
    if name == "lab-1.1":
        return make_workload("lab", 7, jobs=1200, nodes=16, load=1.1), []
    if name == "lab-1.6":  # overloaded: a queue of hundreds, many DQN windows a round
        return make_workload("lab", 8, jobs=1500, nodes=16, load=1.6), []
    if name == "lab-1.2-cost":  # with cost_weight (idle nodes and prices count)
        return make_workload("lab", 9, jobs=800, nodes=12, load=1.2), []
    if name == "lab-0.9-outages":
        wl = make_workload("lab", 11, jobs=1000, nodes=16, load=0.9)
        horizon = max(j.submit_s for j in wl.jobs)
        return wl, random_outages(wl.nodes, horizon, horizon / 2, 3600.0, seed=5)
    return make_workload("lab-long", 3, jobs=800, nodes=8, load=1.0), []


def schedule_digest(result: SimResult) -> dict:
    """Every job's placement and start, every attempt's span, as short digests and counts."""
    jobs = sorted(
        (str(r.id), r.node_id, tuple(r.gpu_ids), round(r.start_s, 6), r.attempts)
        for r in result.finished
    )
    attempts = sorted(
        (str(a.job_id), a.node_id, round(a.start_s, 6), round(a.end_s, 6), a.completed)
        for a in result.attempts
    )
    return {
        "jobs": hashlib.sha256(repr(jobs).encode()).hexdigest()[:20],
        "attempts": hashlib.sha256(repr(attempts).encode()).hexdigest()[:20],
        "finished": len(result.finished),
        "unfinished": len(result.unfinished),
        "rounds": len(result.decision_times),
    }


DQN_V4 = Path(__file__).parent / "data" / "dqn_v4.npz"
"""the DQN weights the `dqn` digests were recorded with (feature version 4, shipped until the
retraining with the `fair_share` and fragmentation columns): they must still decide the same"""


DQN_V5 = Path(__file__).resolve().parents[2] / "scheduler" / "weights" / "dqn_v5.npz"
"""the weights retrained on feature version 5, kept beside the default (not shipped)"""
DQN_RUNS = ("dqn-shipped", "dqn-v5")


def _run(case: str, policy: str) -> dict:
    wl, outages = _case(case)
    options: dict = {"cost_weight": 0.5} if case.endswith("-cost") else {}
    if policy == "dqn":
        options["weights"] = DQN_V4
    elif policy == "dqn-v5":
        options["weights"] = DQN_V5
    name = "dqn" if policy in DQN_RUNS else policy
    return schedule_digest(Simulator(wl, outages).run(make_policy(name, **options)))


@pytest.mark.parametrize("policy", (*POLICIES, *DQN_RUNS))
@pytest.mark.parametrize("case", CASES)
def test_schedule_matches_mains(case: str, policy: str) -> None:
    """Each policy's schedule as recorded; `dqn` with the version-4 weights of the recording,
    `dqn-shipped` with the weights shipped now (`scheduler/weights/dqn.npz`), `dqn-v5` with
    the version-5 weights beside them."""
    assert _run(case, policy) == json.loads(DIGESTS.read_text())[f"{case}/{policy}"]


if __name__ == "__main__":
    # only the DQN weights files' own digests are rewritten: every other one is main's at
    # `cc5c0e6` (the `dqn` ones with the version-4 weights of tests/scheduler/data/dqn_v4.npz)
    known = json.loads(DIGESTS.read_text())
    known.update({f"{c}/{p}": _run(c, p) for c in CASES for p in DQN_RUNS})
    DIGESTS.write_text(json.dumps(known, indent=1) + "\n")
