"""Lepton's dispatcher on a real Slurm cluster: jobs, exit codes and logs come back, cancel,
refusal, kill -9 between intent and sbatch, a slurmctld restart, one squeue per tick."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lepton_tui import paths
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.dispatch.slurm_admin import onboard_slurm
from lepton_tui.logs import follow_log
from lepton_tui.service import Service
from tests.dispatch.helpers import TERMINAL, tick_until
from tests.slurmbed import PARTITION, SlurmBed

REPO = Path(__file__).resolve().parents[2]


def add_cluster(svc: Service, bed: SlurmBed, root: Path, ssh: Any = None) -> dict[str, Any]:
    """The bed as a Slurm host, through the same onboarding as `hosts add --slurm`."""
    conn: dict[str, Any] = {}
    if ssh is not None:
        shutil.copy(ssh.known_hosts_path, svc.home / paths.KNOWN_HOSTS_FILE)
        conn = {"address": ssh.address, "port": ssh.port, "user": ssh.user,
                "key_path": ssh.key_path}  # fmt: skip
    done = onboard_slurm(
        svc, "cluster", partition=PARTITION, slurm_conf=str(bed.conf), root_dir=str(root), **conn
    )
    assert done.ok
    return done.host


def submit(svc: Service, command: str, **kw: Any) -> int:
    from lepton_tui.validate import JobSpec

    return svc.submit(JobSpec(command=command, **{"cpus": 1, "mem_mb": 64, **kw}))


def state(svc: Service, job_id: int) -> str:
    return str(svc.ledger.get_job(job_id)["state"])


def slurm_jobs_named(bed: SlurmBed, svc: Service, job_id: int) -> list[str]:
    """Slurm job ids of every attempt of a lepton job (by the names lepton gives them: the job
    id and the attempt's token; other tests' ledgers reuse job ids, never tokens)."""
    names = {f"lepton-{job_id}-{a['token']}" for a in svc.ledger.attempts_for(job_id)}
    out = bed.client("squeue", "--me", "--noheader", "--states=all", "--format=%i %j").stdout
    return [line.split()[0] for line in out.splitlines() if line.split()[1] in names]


@pytest.fixture
def d(svc: Service) -> Any:
    dispatcher = Dispatcher(svc, tick_s=0.2)
    yield dispatcher
    dispatcher.pool.close()


@pytest.mark.parametrize("via", ["login-node", "ssh"])
def test_job_runs_in_slurm_and_its_exit_code_and_output_come_back(
    via: str, request: pytest.FixtureRequest, slurm: SlurmBed, svc: Service, d: Dispatcher,
    tmp_path: Path,
) -> None:  # fmt: skip
    ssh = request.getfixturevalue("sshbed")(1)[0] if via == "ssh" else None
    add_cluster(svc, slurm, tmp_path / "lepton", ssh)
    ok = submit(svc, "echo hello $LEPTON_JOB_ID; echo oops >&2", env={"GREETING": "hi"})
    bad = submit(svc, "echo $GREETING; exit 3", env={"GREETING": "hi there"})
    tick_until(d, lambda: state(svc, ok) in TERMINAL and state(svc, bad) in TERMINAL)
    assert state(svc, ok) == "succeeded" and state(svc, bad) == "failed"
    job = svc.ledger.get_job(bad)
    assert (job["exit_code"], job["reason"]) == (3, "exit code 3")
    (att,) = svc.ledger.attempts_for(ok)
    assert att["slurm_job_id"] == slurm_jobs_named(slurm, svc, ok)[0]
    assert att["started_at"] and att["ended_at"] >= att["started_at"]
    assert "".join(follow_log(svc, ok, "stdout", pool=d.pool)) == f"hello {ok}\n"
    assert "".join(follow_log(svc, ok, "stderr", pool=d.pool)) == "oops\n"
    assert "".join(follow_log(svc, bad, "stdout", pool=d.pool)) == "hi there\n"


def test_cancel_stops_the_job_in_slurm(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    add_cluster(svc, slurm, tmp_path / "lepton")
    job = submit(svc, "sleep 300")
    tick_until(d, lambda: state(svc, job) == "running")
    svc.cancel([job])
    tick_until(d, lambda: state(svc, job) in TERMINAL)
    assert state(svc, job) == "cancelled"
    (sid,) = slurm_jobs_named(slurm, svc, job)
    assert "JobState=CANCELLED" in slurm.client("scontrol", "show", "job", sid).stdout


def test_a_job_over_the_partitions_limit_is_refused_with_the_reason(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    add_cluster(svc, slurm, tmp_path / "lepton")
    job = submit(svc, "true", time_limit_s=2 * 86400)  # the partition allows one day
    tick_until(d, lambda: state(svc, job) in TERMINAL)
    row = svc.ledger.get_job(job)
    assert row["state"] == "failed"
    assert row["reason"] == (
        "Slurm refused it: sbatch: error: Batch job submission failed: Requested time limit is "
        "invalid (missing or exceeds some limit)"
    )
    assert slurm_jobs_named(slurm, svc, job) == []


CRASH = """
import os, signal, sys
from lepton_tui.dispatch.loop import Dispatcher
d = Dispatcher(sys.argv[1])
assert d.acquire()
def die(starts):  # the intents are committed; sbatch has not run
    print(len(starts), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
d.before_launch = die
for _ in range(100):
    d.tick()
"""


def test_kill_9_between_intent_and_sbatch_neither_loses_nor_duplicates(
    slurm: SlurmBed, svc: Service, tmp_path: Path
) -> None:
    add_cluster(svc, slurm, tmp_path / "lepton")
    jobs = [submit(svc, f"echo once-{i}") for i in range(3)]
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(svc.home)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    placed = min(3, slurm.cpus)  # one CPU each: the pool holds as many as the node has CPUs
    assert proc.stdout.split() == [str(placed)]
    assert sorted(state(svc, j) for j in jobs) == sorted(
        ["starting"] * placed + ["queued"] * (3 - placed)
    )
    assert all(slurm_jobs_named(slurm, svc, j) == [] for j in jobs)  # sbatch never ran
    d = Dispatcher(svc, tick_s=0.2)
    try:
        tick_until(d, lambda: all(state(svc, j) in TERMINAL for j in jobs))
    finally:
        d.pool.close()
    for j in jobs:
        assert state(svc, j) == "succeeded"
        assert len(slurm_jobs_named(slurm, svc, j)) == 1
        assert len(svc.ledger.attempts_for(j)) == 1


def test_a_job_slurm_took_before_the_crash_is_found_not_submitted_again(
    slurm: SlurmBed, svc: Service, tmp_path: Path
) -> None:
    """The crash came after sbatch, before lepton recorded the Slurm id: found by its name."""
    from inventory.slurm import SubmitSpec
    from tests.slurm.helpers import local_host

    host = add_cluster(svc, slurm, tmp_path / "lepton")
    job = submit(svc, "echo taken")

    def sbatch_then_die(starts: list[Any]) -> None:
        (a,) = starts
        sh = local_host(slurm, Path(host["root_dir"]))
        spec = SubmitSpec(job_id=job, token=a.token, command=a.job.command, mem_mb=64,
                          job_dir=sh.job_dir(job, a.token))  # fmt: skip
        sh.submit([spec])  # as the dead dispatcher did, and then nothing was recorded
        raise KeyboardInterrupt

    d = Dispatcher(svc, tick_s=0.2, before_launch=sbatch_then_die)
    with pytest.raises(KeyboardInterrupt):
        d.tick()
    d.pool.close()
    assert state(svc, job) == "starting"
    d = Dispatcher(svc, tick_s=0.2)
    try:
        tick_until(d, lambda: state(svc, job) in TERMINAL)
    finally:
        d.pool.close()
    assert state(svc, job) == "succeeded"
    assert len(slurm_jobs_named(slurm, svc, job)) == 1


def test_a_slurmctld_restart_while_jobs_run_loses_nothing(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    add_cluster(svc, slurm, tmp_path / "lepton")
    jobs = [submit(svc, "sleep 6; echo survived") for _ in range(2)]
    tick_until(d, lambda: all(state(svc, j) == "running" for j in jobs))
    slurm.stop_slurmctld()
    failed = [d.tick().failed for _ in range(3)]  # the controller is gone: polls fail
    assert failed == [1, 1, 1]
    assert all(state(svc, j) == "running" for j in jobs)  # within the host grace: nothing lost
    slurm.start_slurmctld()
    tick_until(d, lambda: all(state(svc, j) in TERMINAL for j in jobs))
    for j in jobs:
        assert state(svc, j) == "succeeded"
        assert len(svc.ledger.attempts_for(j)) == 1
        assert "".join(follow_log(svc, j, "stdout", pool=d.pool)) == "survived\n"


def test_one_squeue_round_trip_per_tick_however_many_jobs(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    host = add_cluster(svc, slurm, tmp_path / "lepton")
    sh = d.slurm.get(host)
    per_tick = []
    for n in (1, 12):
        # a tenth of a CPU each for lepton's pool; Slurm gives each a whole CPU, so most wait
        # in Slurm's own queue: n jobs in Slurm, pending or running
        jobs = [submit(svc, "sleep 30", cpus=0.1, mem_mb=32) for _ in range(n)]
        tick_until(d, lambda jobs=jobs: all(state(svc, j) != "queued" for j in jobs))
        for _ in range(2):
            squeues, trips = sh.commands["squeue"], d.pool.round_trips
            result = d.tick()
            per_tick.append((sh.commands["squeue"] - squeues, d.pool.round_trips - trips,
                             result.round_trips))  # fmt: skip
        time.sleep(0.1)
    # one squeue in one round trip per tick, with 1 job or 13 in Slurm
    assert per_tick == [(1, 1, 1)] * 4
    assert len(sh.poll({}).jobs) >= 13


def test_a_slurm_job_is_charged_from_slurms_times_and_the_partition_is_a_fleet_row(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    from lepton_tui.economics.prices import set_prices
    from lepton_tui.fleet_view import fleet
    from tests.slurmbed import GPUS

    add_cluster(svc, slurm, tmp_path / "lepton")
    set_prices(svc.ledger, "cluster", cpu_hour=3600, actor="test")  # a CPU-second costs 1
    job = submit(svc, "sleep 2", cpus=1)
    tick_until(d, lambda: state(svc, job) in TERMINAL)
    (att,) = svc.ledger.attempts_for(job)
    held_s = att["ended_at"] - att["started_at"]  # Slurm's StartTime and EndTime
    assert held_s >= 2
    # Slurm's times are whole seconds: its StartTime may fall up to 1 s before the price (set a
    # moment before the submit, to the microsecond) came into force, and that part is free
    assert held_s - 1.0 <= att["cost"] <= held_s + 1e-6
    rows = {r.name: r for r in fleet(svc.ledger, time.time())}
    assert rows["cluster"].state == "up"
    assert (rows["cluster"].gpus_total, rows["cluster"].cpus) == (GPUS, slurm.cpus)


def test_a_controller_away_longer_than_the_host_grace_loses_no_job(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    """The host goes down (nothing new is placed there) but its jobs run on in Slurm: they are
    neither lost nor started again, and end normally once the controller answers."""
    add_cluster(svc, slurm, tmp_path / "lepton")
    svc.ledger.set_setting("host_grace_s", 1.0)
    job = submit(svc, "sleep 5; echo still-here", retries=1)
    tick_until(d, lambda: state(svc, job) == "running")
    slurm.stop_slurmctld()
    try:
        tick_until(d, lambda: svc.ledger.get_host("cluster")["state"] == "down", timeout=30)
        assert state(svc, job) == "running"
    finally:
        slurm.start_slurmctld()
    tick_until(d, lambda: state(svc, job) in TERMINAL)
    assert state(svc, job) == "succeeded"
    assert len(svc.ledger.attempts_for(job)) == 1
    assert len(slurm_jobs_named(slurm, svc, job)) == 1
    assert svc.ledger.get_host("cluster")["state"] == "up"


def test_a_job_slurm_would_queue_for_ever_is_cancelled_there_and_fails(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    """A cluster without EnforcePartLimits queues a job over a limit (here: the partition's
    MaxTime lowered while the job waits) with a reason that never passes. It waits because the
    partition is down (new jobs queue, none start): a hog job instead raced lepton's first
    poll, which saw its GPUs taken and kept the job (CI)."""
    from tests.slurmbed import MAX_TIME

    add_cluster(svc, slurm, tmp_path / "lepton")
    part = f"PartitionName={PARTITION}"
    try:
        slurm.client("scontrol", "update", part, "State=DOWN")
        job = submit(svc, "true", gpus=1, time_limit_s=7200)
        tick_until(d, lambda: bool(slurm_jobs_named(slurm, svc, job)))
        assert state(svc, job) == "starting"  # pending in Slurm (PartitionDown): may pass
        slurm.client("scontrol", "update", part, "MaxTime=30")
        slurm.client("scontrol", "update", part, "State=UP")
        tick_until(d, lambda: state(svc, job) in TERMINAL)
    finally:
        slurm.client("scontrol", "update", part, f"MaxTime={MAX_TIME}", "State=UP")
    row = svc.ledger.get_job(job)
    assert (row["state"], row["reason"]) == (
        "failed", "Slurm will never run it as asked: PartitionTimeLimit",
    )  # fmt: skip
    (sid,) = slurm_jobs_named(slurm, svc, job)
    assert "JobState=CANCELLED" in slurm.client("scontrol", "show", "job", sid).stdout
    assert svc.ledger.attempts_for(job)[0]["cost"] == 0


def test_a_slurm_host_removed_with_force_has_its_jobs_cancelled_in_slurm(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    add_cluster(svc, slurm, tmp_path / "lepton")
    job = submit(svc, "sleep 300")
    tick_until(d, lambda: state(svc, job) == "running")
    (sid,) = slurm_jobs_named(slurm, svc, job)
    svc.remove_host("cluster", force=True)
    tick_until(d, lambda: svc.ledger.attempts_for(job)[0]["fenced_at"] is not None)
    assert state(svc, job) == "failed"  # no retries, and its host is gone
    out = slurm.client("scontrol", "show", "job", sid).stdout
    assert "JobState=CANCELLED" in out or "JobState=COMPLETING" in out


def test_a_job_after_one_in_slurm_is_submitted_with_afterok_and_runs_after_it(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    add_cluster(svc, slurm, tmp_path / "lepton")
    first = submit(svc, "sleep 3; echo first > order", workdir=str(tmp_path))
    second = submit(svc, "cat order; echo second", after=[first], workdir=str(tmp_path))
    doomed_parent = submit(svc, "sleep 1; exit 1")
    doomed = submit(svc, "echo never", after=[doomed_parent])
    tick_until(d, lambda: state(svc, second) == "starting")
    assert state(svc, first) in ("starting", "running")  # not waiting for it to end here
    (sid,) = slurm_jobs_named(slurm, svc, second)
    (first_sid,) = slurm_jobs_named(slurm, svc, first)
    shown = slurm.client("scontrol", "show", "job", sid).stdout
    assert f"Dependency=afterok:{first_sid}" in shown
    tick_until(d, lambda: all(state(svc, j) in TERMINAL for j in (second, doomed)))
    assert (state(svc, first), state(svc, second)) == ("succeeded", "succeeded")
    assert "".join(follow_log(svc, second, "stdout", pool=d.pool)) == "first\nsecond\n"
    assert state(svc, doomed_parent) == "failed"
    job = svc.ledger.get_job(doomed)
    assert (job["state"], job["reason"]) == ("cancelled", "a job it runs after did not succeed")
    assert "".join(follow_log(svc, doomed, "stdout", pool=d.pool)) == ""


def test_logs_follow_a_slurm_job_while_it_runs(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    from lepton_tui.dispatch.hostpool import HostPool

    add_cluster(svc, slurm, tmp_path / "lepton")
    job = submit(svc, "echo a; sleep 3; echo b")
    handle = d.start_in_thread()
    assert handle.dispatching
    seen: list[str] = []
    try:
        pool = HostPool(svc.known_hosts)
        for text in follow_log(svc, job, "stdout", follow=True, pool=pool, poll_s=0.2):
            seen.append(text)  # the first line arrives while the job still runs (sleep 3)
        pool.close()
    finally:
        handle.stop()
    assert seen == ["a\n", "b\n"]  # read by offset as the job wrote them, never twice
    assert state(svc, job) == "succeeded"


def test_a_submission_that_keeps_failing_fails_the_job_after_five_tries(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    from lepton_tui.dispatch.slurm import MAX_SUBMIT_TRIES

    root = tmp_path / "lepton"
    add_cluster(svc, slurm, root)
    shutil.rmtree(root)
    root.write_text("")  # the job directory can no longer be made
    job = submit(svc, "true")
    ticks = tick_until(d, lambda: state(svc, job) in TERMINAL)
    assert ticks >= MAX_SUBMIT_TRIES
    row = svc.ledger.get_job(job)
    assert row["state"] == "failed"
    assert row["reason"].startswith(f"submission failed {MAX_SUBMIT_TRIES} times: cannot write ")
    assert len(svc.ledger.attempts_for(job)) == 1


def test_cancel_of_a_job_waiting_in_slurms_queue_costs_nothing(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    """It waits in Slurm's queue because the partition is down (new jobs queue, none start):
    a hog job holding the GPUs raced lepton's first poll, which then kept the job (CI)."""
    from lepton_tui.economics.prices import set_prices

    add_cluster(svc, slurm, tmp_path / "lepton")
    set_prices(svc.ledger, "cluster", cpu_hour=3600, actor="test")
    part = f"PartitionName={PARTITION}"
    try:
        slurm.client("scontrol", "update", part, "State=DOWN")
        job = submit(svc, "echo never", gpus=1)
        tick_until(d, lambda: bool(slurm_jobs_named(slurm, svc, job)))
        # waiting in Slurm's queue: Slurm's pending reason is the job's (squeue's %r)
        tick_until(
            d, lambda: svc.ledger.get_job(job)["reason"] == "pending in Slurm (PartitionDown)"
        )
        assert state(svc, job) == "starting"
        svc.cancel([job])
        tick_until(d, lambda: state(svc, job) in TERMINAL)
    finally:
        slurm.client("scontrol", "update", part, "State=UP")
    assert state(svc, job) == "cancelled"
    (att,) = svc.ledger.attempts_for(job)
    assert (att["state"], att["cost"]) == ("cancelled", 0)
    (sid,) = slurm_jobs_named(slurm, svc, job)
    assert "JobState=CANCELLED" in slurm.client("scontrol", "show", "job", sid).stdout


def test_a_job_no_node_of_the_partition_can_hold_fails_before_sbatch(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    """A partition of many small nodes holds a big job in sum, no node alone: lepton says so
    instead of sending it (here the policy's choice is made by hand: the bed has one node)."""
    host = add_cluster(svc, slurm, tmp_path / "lepton")
    d.tick()  # one poll: the partition's nodes are known
    job = submit(svc, "true", cpus=slurm.cpus + 1)
    token = "bigjob000001"
    svc.ledger.start_attempt(job, "cluster", token, [])
    start = svc.ledger.active_attempt(token)
    assert start is not None
    sbatches = d.slurm.get(host).commands["sbatch"]
    assert d.slurm.launch({"cluster": host}, [start], relaunch=False) == 0
    row = svc.ledger.get_job(job)
    assert (row["state"], row["reason"]) == ("failed", (
        f"Slurm cannot run it: larger than any node of partition {PARTITION} (it asks "
        f"{slurm.cpus + 1} CPUs, 64 MiB, 0 GPUs; the largest node has {slurm.cpus} CPUs, "
        f"{slurm.mem_mb} MiB, 2 GPUs)"
    ))  # fmt: skip
    assert d.slurm.get(host).commands["sbatch"] == sbatches  # never sent
