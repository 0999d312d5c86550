"""Small fixed-seed runs whose schedules are pinned: a speed change to the simulator, the round
features or the DQN round must place every job on the same node at the same time.

The pins in `data/pinned_runs.json` were recorded with the code before the vectorised simulator
(`python -m tests.scheduler.test_pinned_runs` rewrites them: only do that for a change that is
meant to alter schedules, and say why in its commit).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from scheduler.bench import make_workload
from scheduler.metrics import compute_metrics
from scheduler.model import Workload
from scheduler.registry import POLICY_NAMES, make_policy
from scheduler.simulator import SimResult, Simulator, random_outages

PINS = Path(__file__).parent / "data" / "pinned_runs.json"
TRACE = Path(__file__).parents[1] / "data" / "alibaba2023_pod_slice.csv"
CASES = ("lab", "lab-long", "deeprm", "hpc", "trace", "lab-outages")
POLICIES = [p for p in POLICY_NAMES if p != "ilp"]


def _case(name: str) -> tuple[Workload, list]:
    if name == "lab-outages":
        wl = make_workload("lab", 3, jobs=300, nodes=3, load=1.0)
        horizon = max(j.submit_s for j in wl.jobs)
        return wl, random_outages(wl.nodes, horizon, horizon / 3, 3600.0, seed=3)
    if name == "trace":
        return make_workload("trace", 1, jobs=300, nodes=1, trace=TRACE, load=0.9), []
    nodes = 1 if name in ("deeprm", "hpc") else 3
    return make_workload(name, 2, jobs=300, nodes=nodes, load=1.0), []


def _digest(result: SimResult) -> str:
    rows = sorted(
        (str(r.id), r.node_id, tuple(r.gpu_ids), round(r.start_s, 6), r.attempts)
        for r in result.finished
    )
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def _run(case: str, policy: str) -> dict:
    wl, outages = _case(case)
    result = Simulator(wl, outages).run(make_policy(policy))
    m = compute_metrics(result)
    return {
        "schedule": _digest(result),
        "avg_bounded_slowdown": round(float(m["avg_bounded_slowdown"]), 9),
        "rounds": int(m["rounds"]),
    }


def _pins() -> dict:
    return json.loads(PINS.read_text())


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("case", CASES)
def test_schedule_matches_the_pinned_one(case: str, policy: str) -> None:
    assert _run(case, policy) == _pins()[f"{case}/{policy}"]


if __name__ == "__main__":
    PINS.write_text(
        json.dumps({f"{c}/{p}": _run(c, p) for c in CASES for p in POLICIES}, indent=1) + "\n"
    )
