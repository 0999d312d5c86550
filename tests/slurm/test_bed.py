"""The test bed itself: a real one-node Slurm cluster that runs a batch job."""

from __future__ import annotations

import time

from tests.slurmbed import GPUS, NODE, PARTITION, SlurmBed


def test_bed_node_is_idle_with_the_machines_cpus_and_gpus(slurm: SlurmBed) -> None:
    out = slurm.client("sinfo", "-h", "-N", "-o", "%N|%P|%t|%c|%m|%G").stdout.split()
    assert out == [f"{NODE}|{PARTITION}*|idle|{slurm.cpus}|{slurm.mem_mb}|gpu:{GPUS}"]


def test_bed_runs_a_batch_job(slurm: SlurmBed) -> None:
    out = slurm.base / "jobs" / "bed-smoke.out"
    sub = slurm.client(
        "sbatch", "--parsable", "--mem=64M", f"--output={out}", "--wrap", "echo bed-ok"
    )
    assert sub.returncode == 0, sub.stderr
    job_id = sub.stdout.strip()
    for _ in range(300):
        state = slurm.client("scontrol", "show", "job", job_id).stdout
        if "JobState=COMPLETED" in state:
            break
        time.sleep(0.1)
    assert "JobState=COMPLETED" in state
    assert out.read_text() == "bed-ok\n"
