"""Time limits and requeues on a real Slurm cluster: a job Slurm puts back in its queue while
it runs (`scontrol requeue`, as a node failure or a preemption with requeue does) and runs
again is still one lepton attempt and one Slurm job, ends as its last run does and is charged
for its last run only; a job Slurm kills at its time limit ends `timeout`, and is submitted
again when it asked for that."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.economics.prices import set_prices
from lepton_tui.service import Service
from tests.dispatch.helpers import TERMINAL, tick_until
from tests.slurm.helpers import wait_for
from tests.slurm.test_dispatch import add_cluster, slurm_jobs_named, state, submit
from tests.slurmbed import SlurmBed


@pytest.fixture
def d(svc: Service) -> Any:
    dispatcher = Dispatcher(svc, tick_s=0.2)
    yield dispatcher
    dispatcher.pool.close()


def test_a_job_slurm_requeues_while_it_runs_is_one_attempt_that_ends_as_its_last_run(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    add_cluster(svc, slurm, tmp_path / "lepton")
    set_prices(svc.ledger, "cluster", cpu_hour=3600, actor="test")  # a CPU-second costs 1
    runs = tmp_path / "runs"
    job = submit(svc, f"echo run >> {runs}; sleep 3; exit $(( $(wc -l < {runs}) - 1 ))")
    tick_until(d, lambda: state(svc, job) == "running" and runs.exists())
    (slurm_id,) = slurm_jobs_named(slurm, svc, job)
    requeued_at = time.time()
    r = slurm.client("scontrol", "requeue", slurm_id)
    assert r.returncode == 0, r.stderr
    # a requeued job waits BeginTime (about two minutes) in Slurm's queue: let it go at once
    wait_for(lambda: slurm.client("squeue", "-h", "-j", slurm_id, "-o", "%T").stdout.strip()
             == "PENDING")  # fmt: skip
    r = slurm.client("scontrol", "update", f"JobId={slurm_id}", "StartTime=now")
    assert r.returncode == 0, r.stderr
    tick_until(d, lambda: state(svc, job) in TERMINAL, timeout=120)
    row = svc.ledger.get_job(job)
    assert runs.read_text().count("run") == 2  # Slurm ran it twice
    assert (row["state"], row["exit_code"]) == ("failed", 1)  # as its second run ended
    (att,) = svc.ledger.attempts_for(job)
    assert slurm_jobs_named(slurm, svc, job) == [slurm_id]
    assert att["started_at"] >= int(requeued_at)  # charged from Slurm's last start (whole s)
    # its last run only (README, "Growing onto Slurm"): the CPU Slurm allocated to it, from
    # Slurm's last start to its end; the first run and the wait before the second are free
    last_run = att["ended_at"] - att["started_at"]
    assert att["alloc_cpus"] == 1 and att["cost"] == pytest.approx(last_run, rel=1e-6)


def test_slurms_time_limit_ends_the_job_timeout_and_lepton_requeues_it_when_asked(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    """Slurm kills the job at its time limit: the attempt ends `timeout`, and
    `--requeue-on-timeout` submits it to Slurm again, where it sees LEPTON_RESTART_COUNT=1 and
    finishes. The job asks for `--time` 1 minute (Slurm's smallest); once it runs, the test
    moves its end to now (`scontrol update EndTime=`, as an admin shortening a job does), so
    slurmctld's own time-limit check kills it within its 30 s period rather than a minute on."""
    add_cluster(svc, slurm, tmp_path / "lepton")
    script = '[ "$LEPTON_RESTART_COUNT" = 1 ] && exit 0; sleep 600'
    job = svc.submit(command=script, time="1m", requeue_on_timeout=True, max_requeues=1,
                     mem="64M")  # fmt: skip
    tick_until(d, lambda: state(svc, job) == "running", timeout=60)
    (slurm_id,) = slurm_jobs_named(slurm, svc, job)
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    r = slurm.client("scontrol", "update", f"JobId={slurm_id}", f"EndTime={now}")
    assert r.returncode == 0, r.stderr
    tick_until(d, lambda: state(svc, job) in TERMINAL, timeout=240, pause=0.5)
    first, second = svc.ledger.attempts_for(job)
    assert (first["state"], first["reason"]) == ("timeout", "requeued at its time limit (1 of 1)")
    assert second["state"] == "succeeded" and state(svc, job) == "succeeded"
    assert svc.ledger.get_job(job)["requeues"] == 1
    assert len(slurm_jobs_named(slurm, svc, job)) == 2  # one Slurm job per attempt
