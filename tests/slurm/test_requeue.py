"""Time limits and requeues on a real Slurm cluster: a job Slurm puts back in its queue while
it runs (`scontrol requeue`, as a node failure or a preemption with requeue does) and runs
again stays one Slurm job, with one lepton attempt per run, each charged for its own time and
allocation, and ends as its last run does, across a dispatcher restart too; a job Slurm kills
at its time limit ends `timeout`, and is submitted again when it asked for that."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.economics.prices import set_prices
from lepton_tui.logs import follow_log
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


def requeue_running(slurm: SlurmBed, slurm_id: str) -> float:
    """`scontrol requeue` a running job as a node failure or a preemption with requeue does,
    wait until it is back in Slurm's queue, and return when it was asked (whole seconds)."""
    asked = int(time.time())
    r = slurm.client("scontrol", "requeue", slurm_id)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: slurm.client("squeue", "-h", "-j", slurm_id, "-o", "%T").stdout.strip()
             == "PENDING")  # fmt: skip
    return asked


def release(slurm: SlurmBed, slurm_id: str, requeued_at: float) -> None:
    """A requeued job waits BeginTime (about two minutes) in Slurm's queue: let it go now, but
    not within 2 s of the requeue: slurmd refuses a credential issued in the second the job's
    earlier one was revoked (the job then fails, "Job credential revoked"), which the wait
    Slurm imposes avoids."""
    time.sleep(max(0.0, requeued_at + 2 - time.time()))
    r = slurm.client("scontrol", "update", f"JobId={slurm_id}", "StartTime=now")
    assert r.returncode == 0, r.stderr


def assert_charged_per_run(svc: Service, job: int, slurm_id: str, requeued_at: float) -> None:
    """Two attempts, one per run of the one Slurm job: the first ended `requeued` when Slurm
    requeued it, the second as the job ended; each charged its own seconds at the CPU Slurm
    allocated to it (a CPU-second costs 1), and nothing for the wait between them."""
    first, second = svc.ledger.attempts_for(job)
    assert (first["state"], second["state"]) == ("requeued", "failed")
    assert first["reason"] == "requeued by Slurm (restart 1)"
    assert first["slurm_job_id"] == second["slurm_job_id"] == slurm_id
    assert (first["attempt_no"], second["attempt_no"]) == (1, 2)
    assert first["started_at"] < requeued_at <= first["ended_at"] <= second["started_at"]
    assert second["exit_code"] == 1 and first["exit_code"] is None
    for att in (first, second):
        assert att["alloc_cpus"] == 1 and att["on_slurm"] == 1
        run = att["ended_at"] - att["started_at"]
        assert run > 0 and att["cost"] == pytest.approx(run, rel=1e-6)
    row = svc.ledger.get_job(job)
    assert (row["state"], row["exit_code"], row["attempts_used"]) == ("failed", 1, 2)
    shown = svc.show_job(job)  # `lepton-tui show`: each run an attempt
    assert [(a["state"], a["attempt_no"]) for a in shown["attempts"]] == [
        ("requeued", 1),
        ("failed", 2),
    ]


def test_each_run_of_a_job_slurm_requeues_is_an_attempt_charged_for_its_own_time(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    add_cluster(svc, slurm, tmp_path / "lepton")
    set_prices(svc.ledger, "cluster", cpu_hour=3600, actor="test")  # a CPU-second costs 1
    time.sleep(1)  # in force before Slurm's first start (whole seconds)
    runs = tmp_path / "runs"
    job = submit(svc, f"echo run >> {runs}; echo out $(wc -l < {runs}); sleep 3; "
                      f"exit $(( $(wc -l < {runs}) - 1 ))")  # fmt: skip
    tick_until(d, lambda: state(svc, job) == "running" and runs.exists())
    followed: list[str] = []  # `logs -f` from the first run on, across the requeue
    follower = threading.Thread(
        target=lambda: followed.extend(follow_log(svc, job, "stdout", follow=True, poll_s=0.2))
    )
    follower.start()
    time.sleep(1.1)  # the first run holds its CPU at least a second
    (slurm_id,) = slurm_jobs_named(slurm, svc, job)
    requeued_at = requeue_running(slurm, slurm_id)
    tick_until(d, lambda: len(svc.ledger.attempts_for(job)) == 2)
    first, second = svc.ledger.attempts_for(job)
    assert first["state"] == "requeued" and first["cost"] is not None  # settled at once
    assert second["state"] == "starting" and second["started_at"] is None  # waits, free
    assert state(svc, job) == "running" and not svc.ledger.unfenced_attempts()
    release(slurm, slurm_id, requeued_at)
    tick_until(d, lambda: state(svc, job) in TERMINAL, timeout=120)
    assert runs.read_text().count("run") == 2  # Slurm ran it twice, lepton submitted it once
    assert slurm_jobs_named(slurm, svc, job) == [slurm_id]
    assert_charged_per_run(svc, job, slurm_id, requeued_at)
    whole = "".join(follow_log(svc, job, "stdout", pool=d.pool))
    assert whole == "out 1\nout 2\n"  # both runs' output: the second's after the first's
    assert "".join(follow_log(svc, job, "stdout", attempt_no=1, pool=d.pool)) == whole
    follower.join(timeout=30)
    assert not follower.is_alive() and "".join(followed) == whole  # nothing twice


def test_a_dispatcher_restarted_between_the_runs_ends_with_exactly_one_attempt_per_run(
    slurm: SlurmBed, svc: Service, tmp_path: Path
) -> None:
    """The dispatcher stops after it saw the first run; Slurm requeues the job meanwhile; a
    new dispatcher splits the run off, stops too while the second run waits; a third one
    sees it run and end. Nothing is submitted again, lost or split twice."""
    add_cluster(svc, slurm, tmp_path / "lepton")
    set_prices(svc.ledger, "cluster", cpu_hour=3600, actor="test")
    time.sleep(1)
    runs = tmp_path / "runs"
    job = submit(svc, f"echo run >> {runs}; sleep 3; exit $(( $(wc -l < {runs}) - 1 ))")
    first_d = Dispatcher(svc, tick_s=0.2)
    try:
        tick_until(first_d, lambda: state(svc, job) == "running" and runs.exists())
    finally:
        first_d.pool.close()
    time.sleep(1.1)
    (slurm_id,) = slurm_jobs_named(slurm, svc, job)
    requeued_at = requeue_running(slurm, slurm_id)
    second_d = Dispatcher(svc, tick_s=0.2)
    try:
        tick_until(second_d, lambda: len(svc.ledger.attempts_for(job)) == 2)
        second_d.tick()  # a tick more changes nothing: the restart count is the new attempt's
        assert len(svc.ledger.attempts_for(job)) == 2
    finally:
        second_d.pool.close()
    release(slurm, slurm_id, requeued_at)
    third_d = Dispatcher(svc, tick_s=0.2)
    try:
        tick_until(third_d, lambda: state(svc, job) in TERMINAL, timeout=120)
    finally:
        third_d.pool.close()
    assert runs.read_text().count("run") == 2
    assert slurm_jobs_named(slurm, svc, job) == [slurm_id]
    assert_charged_per_run(svc, job, slurm_id, requeued_at)


def test_a_requeued_job_cancelled_while_it_waits_again_costs_only_its_first_run(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    add_cluster(svc, slurm, tmp_path / "lepton")
    set_prices(svc.ledger, "cluster", cpu_hour=3600, actor="test")
    time.sleep(1)
    job = submit(svc, "sleep 30")
    tick_until(d, lambda: state(svc, job) == "running")
    time.sleep(1.1)
    (slurm_id,) = slurm_jobs_named(slurm, svc, job)
    requeue_running(slurm, slurm_id)
    tick_until(d, lambda: len(svc.ledger.attempts_for(job)) == 2)
    svc.cancel([job])
    tick_until(d, lambda: state(svc, job) in TERMINAL)
    first, second = svc.ledger.attempts_for(job)
    assert (first["state"], second["state"], state(svc, job)) == (
        "requeued", "cancelled", "cancelled"
    )  # fmt: skip
    run = first["ended_at"] - first["started_at"]
    assert run > 0 and first["cost"] == pytest.approx(run, rel=1e-6)
    assert second["cost"] == 0  # it never ran again: nothing held
    assert slurm_jobs_named(slurm, svc, job) == [slurm_id]


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


def test_under_sacct_each_run_of_a_requeued_job_is_charged_too(
    slurm_accounting: SlurmBed, svc: Service, tmp_path: Path
) -> None:
    """Where accounting runs the tick asks sacct, which has no restart count: the run lepton
    saw start is split off when sacct shows the job waiting again (or in a later run)."""
    from tests.slurm.test_accounting import add
    from tests.slurmbed import ACCOUNT

    add(svc, slurm_accounting, tmp_path / "lepton", account=ACCOUNT)
    set_prices(svc.ledger, "cluster", cpu_hour=3600, actor="test")
    time.sleep(1)
    runs = tmp_path / "runs"
    job = submit(svc, f"echo run >> {runs}; sleep 3; exit $(( $(wc -l < {runs}) - 1 ))")
    d = Dispatcher(svc, tick_s=0.2)
    try:
        tick_until(d, lambda: state(svc, job) == "running" and runs.exists())
        assert d.slurm.get(svc.ledger.get_host("cluster")).accounting()
        time.sleep(1.1)
        (slurm_id,) = slurm_jobs_named(slurm_accounting, svc, job)
        requeued_at = requeue_running(slurm_accounting, slurm_id)
        tick_until(d, lambda: len(svc.ledger.attempts_for(job)) == 2)
        release(slurm_accounting, slurm_id, requeued_at)
        tick_until(d, lambda: state(svc, job) in TERMINAL, timeout=120)
    finally:
        d.pool.close()
    assert runs.read_text().count("run") == 2
    assert_charged_per_run(svc, job, slurm_id, requeued_at)
