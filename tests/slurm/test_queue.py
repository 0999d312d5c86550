"""The partition's own pending queue, seen by the policy, on the real bed: another job (not
lepton's) waiting there for Resources claims the free capacity first, so lepton keeps its job
queued (saying why) instead of submitting it behind that job, and submits it once the others
have run; the listing rides in the poll's one round trip."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.fleet_view import fleet
from lepton_tui.service import Service
from tests.dispatch.helpers import TERMINAL, tick_until
from tests.slurm.helpers import wait_for
from tests.slurm.test_dispatch import add_cluster, slurm_jobs_named, state, submit
from tests.slurmbed import PARTITION, SlurmBed


@pytest.fixture
def d(svc: Service) -> Any:
    dispatcher = Dispatcher(svc, tick_s=0.2)
    yield dispatcher
    dispatcher.pool.close()


def sbatch(bed: SlurmBed, tmp_path: Path, name: str, cpus: int, command: str, *more: str) -> str:
    """A job that is not lepton's, straight to Slurm."""
    r = bed.client("sbatch", "--parsable", f"--job-name={name}", f"--cpus-per-task={cpus}",
                   "--mem=64M", f"--output={tmp_path / name}.out", *more,
                   "--wrap", command)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


def job_field(bed: SlurmBed, slurm_id: str, key: str) -> str:
    out = bed.client("scontrol", "show", "job", slurm_id, "--oneliner").stdout
    return next((w.split("=", 1)[1] for w in out.split() if w.startswith(key + "=")), "")


def test_other_users_pending_jobs_claim_the_partition_before_lepton_submits(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    n = slurm.cpus
    if n < 2:
        pytest.skip("the bed's node needs 2 CPUs: one held, one free")
    host = add_cluster(svc, slurm, tmp_path / "lepton")
    hog = sbatch(slurm, tmp_path, "hog", n - 1, "sleep 300")  # holds all CPUs but one
    wait_for(lambda: job_field(slurm, hog, "JobState") == "RUNNING")
    # asks every CPU: waits in Slurm's queue for Resources, ahead of anything submitted later
    other = sbatch(slurm, tmp_path, "other", n, "sleep 3")
    wait_for(lambda: job_field(slurm, other, "Reason") in ("Resources", "Priority"))
    d.tick()  # a poll sees the partition's queue (the policy places on the last poll's view)
    job = submit(svc, "echo mine", cpus=1, mem_mb=64)  # it fits the CPU left free
    sh = d.slurm.get(host)
    per_tick = []
    for _ in range(3):
        before, trips = dict(sh.commands), d.pool.round_trips
        d.tick()
        per_tick.append((sh.commands["squeue"] - before.get("squeue", 0),
                         sh.commands["squeue:pending"] - before.get("squeue:pending", 0),
                         d.pool.round_trips - trips))  # fmt: skip
    # still one round trip per tick: the status squeue and the partition's queue in it
    assert per_tick == [(1, 1, 1)] * 3
    queued = svc.ledger.get_job(job)
    assert queued["state"] == "queued"
    assert queued["reason"] == f"Slurm partition {PARTITION}: 1 job of other users waits ahead"
    assert slurm_jobs_named(slurm, svc, job) == []  # never sent behind it
    rows = {r.name: r for r in fleet(svc.ledger, time.time())}
    assert rows["cluster"].others_pending == 1
    # the claim keeps lepton's job back, but the recorded capacity stays the partition's less
    # what runs there (the one CPU the hog leaves), not less what waits (0)
    assert svc.ledger.get_host("cluster")["cpus"] == n - (n - 1)
    slurm.client("scancel", hog)  # the other job runs, then lepton's
    tick_until(d, lambda: state(svc, job) in TERMINAL, timeout=60)
    assert state(svc, job) == "succeeded"
    (att,) = svc.ledger.attempts_for(job)
    assert job_field(slurm, other, "JobState") == "COMPLETED"
    # submitted only once the job ahead had started (Slurm's own times, whole seconds)
    started = datetime.fromisoformat(job_field(slurm, other, "StartTime")).timestamp()  # local
    assert att["created_at"] >= started - 1
    assert {r.name: r for r in fleet(svc.ledger, time.time())}["cluster"].others_pending == 0


def test_only_jobs_waiting_for_room_claim_the_partition(slurm: SlurmBed, tmp_path: Path) -> None:
    """Pending for Resources claims what it asks (CPUs, memory, GRES GPUs); a job that waits
    for its begin time or is held claims nothing, but counts as pending; the poll's own
    attempts are not in the partition's queue of others (a lepton-named job it did not ask
    about is)."""
    from tests.slurm.helpers import local_host

    n = slurm.cpus
    if n < 2:
        pytest.skip("the bed's node needs 2 CPUs: one held, one free")
    hog = sbatch(slurm, tmp_path, "hog", n - 1, "sleep 300")
    wait_for(lambda: job_field(slurm, hog, "JobState") == "RUNNING")
    big = sbatch(slurm, tmp_path, "big", n, "true", "--gres=gpu:2")
    sbatch(slurm, tmp_path, "later", 1, "true", "--begin=now+3600")
    sbatch(slurm, tmp_path, "held", 1, "true", "--hold")
    sbatch(slurm, tmp_path, "lepton-7-aaaa11112222", 1, "true", "--begin=now+3600")  # lepton's
    wait_for(lambda: job_field(slurm, big, "Reason") in ("Resources", "Priority"))
    sh = local_host(slurm, tmp_path / "root")
    others = sh.poll({"aaaa11112222": 7}).others  # lepton-7-aaaa11112222 is an asked attempt
    assert others is not None
    assert (others.jobs, others.ahead, others.cpus, others.mem_mb, others.gpus) == (3, 1, n, 64, 2)
    # not asked (a colleague's personal ledger): someone else's pending job, like any
    others = sh.poll({}).others
    assert others is not None
    assert (others.jobs, others.ahead) == (4, 1)


def test_a_pending_job_under_mem_per_cpu_claims_its_whole_memory(
    slurm: SlurmBed, tmp_path: Path
) -> None:
    """`--mem-per-cpu=300M` on 2 CPUs claims 600 MB, not the 300 MB squeue's MinMemory shows."""
    from tests.slurm.helpers import local_host

    n = slurm.cpus
    if n < 2:
        pytest.skip("the bed's node needs 2 CPUs")
    hog = sbatch(slurm, tmp_path, "hog", n, "sleep 300")
    wait_for(lambda: job_field(slurm, hog, "JobState") == "RUNNING")
    r = slurm.client("sbatch", "--parsable", "--job-name=percpu", "--cpus-per-task=2",
                     "--mem-per-cpu=300M", f"--output={tmp_path}/percpu.out", "--wrap", "true")  # fmt: skip
    assert r.returncode == 0, r.stderr
    percpu = r.stdout.strip().split(";")[0]
    wait_for(lambda: job_field(slurm, percpu, "Reason") in ("Resources", "Priority"))
    others = local_host(slurm, tmp_path / "root").poll({}).others
    assert others is not None
    assert (others.ahead, others.cpus, others.mem_mb) == (1, 2, 600)
