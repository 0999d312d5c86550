"""Economics on a real Slurm cluster: a hard budget holds a job before it reaches Slurm (no
intent, no sbatch), and `replay` re-runs the lab's history with the Slurm host's jobs in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.economics.costs import cost_summary
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


def test_a_slurm_job_is_charged_nodes_x_hours_x_the_node_hour_price(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    add_cluster(svc, slurm, tmp_path / "lepton")
    done = svc.set_prices("cluster", node_hour=7200)  # a node-second costs 2
    assert done["in_force"]["node_hour"] == 7200 and done["in_force"]["source"] == "host"
    # Slurm's times are whole seconds: its start may fall up to 1 s before the price came into
    # force (to the microsecond), and that part is free
    (priced_from,) = [r["effective_from"] for r in svc.prices(history=True)["prices"]]
    job = submit(svc, "sleep 4", cpus=2)

    def nodes_seen() -> bool:
        atts = svc.ledger.attempts_for(job)
        return bool(atts) and atts[0]["state"] == "running" and bool(atts[0]["slurm_nodes"])

    tick_until(d, nodes_seen)
    # while it runs: the cost panel's rate and today's spend (sliced in the cost engine's SQL)
    (running,) = svc.ledger.attempts_for(job)
    now = svc.ledger.clock()
    panel = cost_summary(svc.ledger, now)
    assert panel["rate_per_hour"] == pytest.approx(running["slurm_nodes"] * 7200)
    so_far = running["slurm_nodes"] * (now - max(running["started_at"], priced_from)) / 3600 * 7200
    assert so_far > 0 and panel["today"] == pytest.approx(so_far, abs=1e-5)
    tick_until(d, lambda: state(svc, job) in TERMINAL)
    assert state(svc, job) == "succeeded"
    (att,) = svc.ledger.attempts_for(job)
    assert att["slurm_nodes"] == 1  # as Slurm's NodeList for the job says
    hours = (att["ended_at"] - max(att["started_at"], priced_from)) / 3600.0
    assert hours > 0
    expected = att["slurm_nodes"] * hours * 7200
    # settled at the end, and the same from the cost engine's SQL (reports, budgets, the panel)
    assert att["cost"] == pytest.approx(expected, rel=1e-6)
    by_host = svc.cost(since="1h", by="host")["report"]
    (row,) = [r for r in by_host["rows"] if r["key"] == "cluster"]
    assert row["cost"] == pytest.approx(expected, abs=1e-5)
    # nothing idle is charged for a node-hour price: only the nodes Slurm allocated to lepton
    assert by_host["idle_cost"] == pytest.approx(0.0, abs=1e-9)
    replay = svc.replay(since="1h", policies=["fifo"])
    actual = replay["rows"][0]
    assert actual["policy"] == "actual" and actual["cost"] > 0
    # a budget counts it: a hard budget under what it cost holds the next job before sbatch
    svc.set_budget("project", "default", expected / 2, hard=True, new_project=True)
    held = submit(svc, "true")
    for _ in range(3):
        d.tick()
    assert str(svc.ledger.get_job(held)["reason"]).startswith("over budget")
    assert slurm_jobs_named(slurm, svc, held) == []
