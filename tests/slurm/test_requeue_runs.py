"""Pure: how the tick tells that Slurm requeued a job, and when the run it cut short ended
(`lepton_tui.dispatch.slurm_requeue`), from squeue's and sacct's rows; and that a run Slurm
requeued spends none of the job's retries. The real cluster is tests/slurm/test_requeue.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from inventory import slurm
from inventory.supervisor import AttemptStatus
from lepton_tui.dispatch.slurm_requeue import (
    SlurmRun,
    earlier_start,
    requeued,
    run_end,
    run_of,
    slurm_token,
)
from lepton_tui.rows import ActiveAttempt, JobRow
from lepton_tui.service import Service
from lepton_tui.validate import JobSpec
from tests.dispatch.helpers import add_local_hosts

# squeue_argv's fields as Slurm 22.05 prints them with SLURM_TIME_FORMAT=%s: a running job, the
# same job just requeued (COMPLETING: the count rose, the submit time not reset yet), waiting
# again (the submit time is the requeue's; the start a forecast) and running again
FIRST = "7|RUNNING|None|1000|87400|0|cpu=1,mem=64M,node=1,billing=1|n1|0|990|lepton-3-aaaa11112222|"
TEARDOWN = "7|COMPLETING|None|1000|87400|0|cpu=1,mem=64M,node=1|n1|1|990|lepton-3-aaaa11112222|"
WAITING = (
    "7|PENDING|BeginTime|1125|87525|0|cpu=1,mem=64M,node=1,billing=1||1|1005|lepton-3-aaaa11112222|"
)
AGAIN = (
    "7|RUNNING|None|1010|87410|0|cpu=2,mem=64M,node=1,billing=1|n1|1|1005|lepton-3-aaaa11112222|"
)


def row(line: str) -> slurm.SlurmJob:
    (job,) = slurm.parse_squeue(line).values()
    return job


def attempt(state: str = "running", started_at: float | None = 1000.0) -> ActiveAttempt:
    job = JobRow(id=3, state="running", command="true", workdir=None, env={},
                 time_limit_s=None, retries=0, attempts_used=1)  # fmt: skip
    return ActiveAttempt(
        id=1, job_id=3, attempt_no=1, host="cluster", token="aaaa11112222", state=state,
        gpu_ids=(), cpus=1, mem_mb=64, gpus=0, gpu_mem_mb=0, created_at=980.0,
        started_at=started_at, slurm_job_id="7", job=job,
    )  # fmt: skip


def test_squeue_gives_the_restart_count_and_the_submit_time_slurm_resets_at_a_requeue() -> None:
    assert (row(FIRST).restarts, row(FIRST).submitted) == (0, 990.0)
    assert (row(WAITING).restarts, row(WAITING).submitted, row(WAITING).state) == (
        1, 1005.0, "PENDING"
    )  # fmt: skip
    assert run_of(row(WAITING)) == SlurmRun(pending=True, start=None, restarts=1, submitted=1005)
    assert run_of(row(AGAIN)).start == 1010.0


def test_recorded_output_without_the_new_fields_still_parses() -> None:
    data = Path(__file__).resolve().parents[1] / "data" / "slurm"
    jobs = slurm.parse_squeue((data / "squeue_22.05.txt").read_text())
    assert jobs["aaaa11112222"].restarts is None and jobs["aaaa11112222"].state == "RUNNING"
    sacct = slurm.parse_sacct((data / "sacct_22.05.txt").read_text())
    assert sacct and all(j.restarts is None for j in sacct.values())


def test_a_requeue_is_told_once_the_row_shows_the_job_waiting_or_in_a_later_run() -> None:
    a = attempt()
    assert not requeued(a, run_of(row(FIRST)), 0)
    assert not requeued(a, run_of(row(TEARDOWN)), 0)  # the run lepton saw, torn down: wait
    assert requeued(a, run_of(row(WAITING)), 0)
    assert requeued(a, run_of(row(AGAIN)), 0)
    assert not requeued(a, run_of(row(AGAIN)), 1)  # the new attempt began at restart 1
    # never seen running: a run after the requeue, or the wait, tells; its teardown does not
    unseen = dataclasses.replace(attempt("starting", None), created_at=989.6)  # sbatch at 990
    assert requeued(unseen, run_of(row(AGAIN)), 0) and requeued(unseen, run_of(row(WAITING)), 0)
    assert not requeued(unseen, run_of(row(TEARDOWN)), 0)
    assert run_end(unseen, run_of(row(WAITING)), now=1100.0) == 1005.0


def test_a_requeue_then_a_cancel_between_two_ticks_still_ends_the_run_at_the_requeue() -> None:
    """Requeued and cancelled while it waited, both between two ticks: the row shows the job
    ended, with the count up and the submit time reset, and (as Slurm may) the first run's
    start. The run lepton saw ends at the requeue, not at the cancel an hour later."""
    cancelled = "7|CANCELLED|None|1000|4600|0|cpu=1,mem=64M,node=1||1|1005|lepton-3-aaaa11112222|"
    a = attempt()
    assert requeued(a, run_of(row(cancelled)), 0)
    assert run_end(a, run_of(row(cancelled)), now=4700.0) == 1005.0
    not_reset = cancelled.replace("|1|1005|", "|1|990|")  # the count up, no reset: no requeue
    assert not requeued(a, run_of(row(not_reset)), 0)


def test_under_sacct_without_a_count_a_run_seen_that_waits_or_starts_again_is_a_requeue() -> None:
    def sacct_run(line: str) -> SlurmRun:
        return dataclasses_replace(run_of(row(line)), restarts=None)

    a = attempt()
    assert not requeued(a, sacct_run(FIRST), 0)
    assert requeued(a, sacct_run(WAITING), 0) and requeued(a, sacct_run(AGAIN), 0)
    assert not requeued(attempt("starting", None), sacct_run(AGAIN), 0)  # nothing seen


def test_the_run_ends_at_slurms_requeue_time_held_between_the_two_starts() -> None:
    a = attempt()
    assert run_end(a, run_of(row(WAITING)), now=1100.0) == 1005.0
    assert run_end(a, run_of(row(AGAIN)), now=1100.0) == 1005.0
    no_submit = dataclasses_replace(run_of(row(AGAIN)), submitted=None)
    assert run_end(a, no_submit, now=1100.0) == 1010.0  # at most the next start
    waiting = dataclasses_replace(run_of(row(WAITING)), submitted=None)
    assert run_end(a, waiting, now=1100.0) == 1100.0  # the tick that saw it requeued
    early = dataclasses_replace(run_of(row(WAITING)), submitted=900.0)
    assert run_end(a, early, now=1100.0) == 1100.0  # a submit time not reset says nothing


def test_an_attempt_opened_for_a_later_run_is_never_charged_from_an_earlier_ones_start() -> None:
    later = dataclasses.replace(attempt("starting", None), created_at=1005.0)
    split = {"aaaa11112222": 1}.get  # a split opened it (Slurm's count was 1)
    cancelled = AttemptStatus("aaaa11112222", "done", started_at=1000.0, ended_at=1050.0)
    assert earlier_start(later, cancelled, split).started_at == 1050.0  # held nothing: free
    ran = AttemptStatus("aaaa11112222", "done", started_at=1010.0, ended_at=1050.0)
    assert earlier_start(later, ran, split) == ran
    assert earlier_start(attempt("starting", None), cancelled, split) == cancelled  # its own


def test_a_first_runs_start_before_its_intent_is_its_own_when_slurms_clock_lags() -> None:
    """A controller whose clock runs 3 s behind the login node's starts a job at once: the start
    Slurm reports is before lepton's intent (`created_at`), and it is still the run's own (no
    split opened the attempt), so it is charged from there, not made free."""
    first = dataclasses.replace(attempt("starting", None), created_at=1003.0)
    asked: list[str] = []

    def never_split(token: str) -> int:
        asked.append(token)
        return 0

    done = AttemptStatus("aaaa11112222", "done", started_at=1000.0, ended_at=1500.0)
    assert earlier_start(first, done, never_split) == done
    assert asked == ["aaaa11112222"]
    on_time = AttemptStatus("aaaa11112222", "done", started_at=1003.5, ended_at=1500.0)
    assert earlier_start(first, on_time, never_split) == on_time
    assert asked == ["aaaa11112222"]  # read only when the start is before the intent


def test_each_run_keeps_the_slurm_jobs_token_for_its_files() -> None:
    assert slurm_token("aaaa11112222-r1") == slurm_token("aaaa11112222") == "aaaa11112222"
    assert slurm_token("aaaa11112222-r12") == "aaaa11112222"


def dataclasses_replace(run: SlurmRun, **kw: Any) -> SlurmRun:
    return dataclasses.replace(run, **kw)


def test_a_split_run_keeps_one_live_attempt_for_the_token_and_spends_no_retry(
    svc: Service, tmp_path: Path
) -> None:
    """In the ledger: the run ends `requeued` under `TOKEN-r1` (the lower id), the token's new
    attempt waits for Slurm's next run with no allocation of the old one, and a later loss of
    that attempt finds the job's one retry unspent."""
    (host,) = add_local_hosts(svc, tmp_path, 1)
    job = svc.submit(JobSpec(command="true", cpus=1, mem_mb=64, retries=1))
    led = svc.ledger
    led.start_attempt(job, host, "aaaa11112222", [])
    led.transition_attempt("aaaa11112222", "running", job_state="running", started_at=1000.0)
    led.execute("UPDATE attempts SET slurm_job_id = '7', alloc_cpus = 2 WHERE id = 1")
    with led.tx():
        old = led.split_slurm_run("aaaa11112222", ended_at=1005.0, restarts=1, why="requeued")
    first, second = led.attempts_for(job)
    assert (old, first["token"], first["state"], first["ended_at"]) == (
        "aaaa11112222-r1", "aaaa11112222-r1", "requeued", 1005.0,
    )  # fmt: skip
    assert first["alloc_cpus"] == 2 and second["alloc_cpus"] is None
    assert (second["token"], second["state"], second["attempt_no"]) == (
        "aaaa11112222",
        "starting",
        2,
    )
    assert (second["slurm_job_id"], second["slurm_restarts"], second["started_at"]) == (
        "7",
        1,
        None,
    )
    assert [a.token for a in led.active_attempts()] == ["aaaa11112222"]
    assert led.slurm_restarts("aaaa11112222") == 1
    tally = led.retry_tally(job, "aaaa11112222")
    assert tally is not None and (tally.made, tally.ran) == (1, 0)  # the requeued run: no retry
