"""Economics on a real Slurm cluster: a hard budget holds a job before it reaches Slurm (no
intent, no sbatch), and `replay` re-runs the lab's history with the Slurm host's jobs in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.economics.prices import set_prices
from lepton_tui.service import Service
from tests.dispatch.helpers import TERMINAL, tick_until
from tests.slurm.test_dispatch import add_cluster, slurm_jobs_named, state, submit
from tests.slurmbed import SlurmBed


@pytest.fixture
def d(svc: Service) -> Any:
    dispatcher = Dispatcher(svc, tick_s=0.2)
    yield dispatcher
    dispatcher.pool.close()


def test_a_hard_budget_holds_a_job_before_it_reaches_slurm_and_replay_includes_slurm_jobs(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    add_cluster(svc, slurm, tmp_path / "lepton")
    set_prices(svc.ledger, "cluster", cpu_hour=3600, actor="test")  # a CPU-second costs 1
    svc.set_budget("project", "default", 0.5, hard=True, new_project=True)
    first = submit(svc, "sleep 1")
    tick_until(d, lambda: state(svc, first) in TERMINAL)
    assert state(svc, first) == "succeeded" and svc.ledger.attempts_for(first)[0]["cost"] >= 0.5
    held = submit(svc, "true")
    for _ in range(5):
        d.tick()
    job = svc.ledger.get_job(held)
    assert job["state"] == "queued" and str(job["reason"]).startswith("over budget")
    assert svc.ledger.attempts_for(held) == [] and slurm_jobs_named(slurm, svc, held) == []
    replay = svc.replay(since="1h", policies=["fifo"])
    # the Slurm job replayed on the partition; the held one (still queued) is left out
    assert (replay["jobs"], replay["hosts"], replay["skipped"]) == (1, 1, 1)
    actual, fifo = replay["rows"]
    assert (actual["policy"], actual["finished"], fifo["finished"]) == ("actual", 1, 1)
    assert actual["cost"] > 0  # the Slurm job's CPU-seconds at the partition's price
