"""inventory.slurm, pure: parsing real Slurm 22.05 output (tests/data/slurm) and the commands."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from inventory import slurm
from inventory.slurm import EndFiles, SlurmTarget, SubmitSpec

DATA = Path(__file__).resolve().parents[1] / "data" / "slurm"


def read(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize(
    ("json_file", "text_file", "usable"),
    [
        ("sinfo_22.05.json", "sinfo_nodes_22.05.txt", True),
        ("sinfo_draining_22.05.json", "sinfo_nodes_draining_22.05.txt", False),
    ],
)
def test_json_and_formatted_node_records_agree(
    json_file: str, text_file: str, usable: bool
) -> None:
    from_json = slurm.parse_nodes_json(read(json_file))
    from_text = slurm.parse_nodes_text(read(text_file))
    for nodes in (from_json, from_text):
        (n,) = nodes
        assert (n.name, n.cpus, n.cpus_alloc, n.mem_mb, n.mem_alloc_mb) == (
            "lepton-node", 2, 1, 24105, 100,
        )  # fmt: skip
        assert (n.gpus, n.gpus_alloc, n.partitions) == (2, 1, ("debug",))
        assert n.usable is usable
    if not usable:
        assert from_json[0].reason == from_text[0].reason == "fan broken | replace"


def test_partition_view_counts_only_usable_nodes() -> None:
    up = slurm.partition_view(slurm.parse_nodes_json(read("sinfo_22.05.json")), "debug")
    assert (up.cpus, up.mem_mb, up.gpus, up.cpus_alloc, up.gpus_alloc) == (2, 24105, 2, 1, 1)
    assert up.largest == (2, 24105, 2)
    drained = slurm.partition_view(
        slurm.parse_nodes_json(read("sinfo_draining_22.05.json")), "debug"
    )
    assert (drained.cpus, drained.gpus, len(drained.nodes)) == (0, 0, 1)
    assert drained.largest == (2, 24105, 2)  # a drained node still bounds what can ever run
    assert up.too_large(2, 24105, 2) is None
    assert up.too_large(1, 64, 3) == (
        "larger than any node of partition debug (it asks 1 CPUs, 64 MiB, 3 GPUs; the largest "
        "node has 2 CPUs, 24105 MiB, 2 GPUs)"
    )
    assert slurm.partition_view(slurm.parse_nodes_json(read("sinfo_22.05.json")), "gpu").cpus == 0


def test_squeue_rows_are_lepton_jobs_only_with_states_codes_and_times() -> None:
    jobs = slurm.parse_squeue(read("squeue_22.05.txt"))
    # lepton-2-def etc. are lepton names; "someone|else" is another job of the user
    assert set(jobs) == {"def", "abcdef0123456789abcdef", "abc", "bbbb11112222",
                         "cccc11112222", "aaaa11112222"}  # fmt: skip
    failed, cancelled = jobs["abc"], jobs["def"]
    assert (failed.state, failed.exit_code, failed.job_id) == ("FAILED", 3, 1)
    assert (cancelled.state, cancelled.exit_code) == ("CANCELLED", 128 + 15)
    running = jobs["aaaa11112222"]
    assert (running.state, running.slurm_id, running.end, running.cpus, running.mem_mb) == (
        "RUNNING", "4", None, 1, 100,
    )  # fmt: skip
    assert running.start == 1796457317.0
    pending = jobs["bbbb11112222"]
    assert (pending.state, pending.reason, pending.start) == ("PENDING", "Resources", None)
    # what Slurm allocated (tres-alloc) once it ran; a pending job's tres-alloc is its request
    # its tres-alloc has no gres/gpu (the cluster does not account GPUs): the GPUs are unknown
    assert running.allocated == (1, 100, None) and failed.allocated == (1, 64, None)
    assert pending.allocated is None


def test_a_tres_string_without_gres_gpu_says_nothing_of_gpus() -> None:
    # Slurm's default AccountingStorageTRES has no gres/gpu: a 1-GPU job's tres-alloc
    assert slurm.tres_resources("cpu=1,mem=64M,node=1,billing=1") == (1, 64, None)
    assert slurm.tres_resources("cpu=2,mem=1G,node=1,gres/gpu=2") == (2, 1024, 2)
    assert slurm.tres_resources("cpu=2,mem=1G,gres/gpu=0") == (2, 1024, 0)


@pytest.mark.parametrize(
    ("token", "files", "expect"),
    [
        ("aaaa11112222", None, {"state": "running", "started_at": 1796457317.0}),
        ("bbbb11112222", None, {"state": "starting", "reason": "pending in Slurm (Resources)"}),
        ("abc", None, {"state": "done", "exit_code": 3, "reason": None}),
        ("abc", EndFiles(True, "1", 5, 1.0, 2.0), {"state": "done", "exit_code": 5}),
        ("def", None, {"state": "done", "cancelled": True, "exit_code": 143}),
        ("abcdef0123456789abcdef", None, {"state": "done", "exit_code": 0}),
        # Slurm no longer shows it: the files decide
        ("gone", EndFiles(True, "12", 0, 10.0, 20.0),
         {"state": "done", "exit_code": 0, "started_at": 10.0, "ended_at": 20.0}),
        ("gone", EndFiles(True, "12"), {"state": "lost", "slurm_id": "12"}),
        ("gone", EndFiles(True), {"state": "missing"}),
        ("gone", EndFiles(False), {"state": "missing"}),
    ],
)  # fmt: skip
def test_slurm_status_from_squeue_then_files(
    token: str, files: EndFiles | None, expect: dict
) -> None:
    jobs = slurm.parse_squeue(read("squeue_22.05.txt"))
    status = slurm.slurm_status(jobs.get(token), files)
    assert {k: status.get(k) for k in expect} == expect


def test_sbatch_command_and_script_quote_everything() -> None:
    spec = SubmitSpec(
        job_id=42, token="t0k3n", command="echo 'hi'; exit 3", job_dir="/home/u/.lepton/slurm/42-t0k3n",
        cpus=1.5, mem_mb=2048, gpus=2, time_limit_s=3601, workdir="/data/my project",
        env={"A": "x y $(rm -rf /)"}, after=("17", "18"),
    )  # fmt: skip
    target = SlurmTarget("gpu", account="lab", qos="normal")
    argv = slurm.sbatch_argv(target, spec)
    assert argv[:2] == ["sbatch", "--parsable"]
    for want in (
        "--job-name=lepton-42-t0k3n",
        "--comment=lepton:42:t0k3n",
        "--partition=gpu",
        "--cpus-per-task=2",
        "--mem=2048M",
        "--gres=gpu:2",
        "--time=0-01:01:00",
        "--account=lab",
        "--qos=normal",
        "--dependency=afterok:17:18",
        "--chdir=/data/my project",
        "--output=/home/u/.lepton/slurm/42-t0k3n/stdout",
    ):
        assert want in argv  # fmt: skip
    assert argv[-1] == "/home/u/.lepton/slurm/42-t0k3n/job.sh"
    script = slurm.batch_script(spec)
    assert "export A='x y $(rm -rf /)'" in script
    assert "bash -c 'echo '\"'\"'hi'\"'\"'; exit 3'" in script
    with pytest.raises(ValueError):
        SubmitSpec(job_id=1, token="x;y", command="true", job_dir="/tmp/x")
    with pytest.raises(ValueError):
        SlurmTarget("debug; rm")


def test_durations_versions_and_refusals() -> None:
    assert slurm.slurm_time(90) == "0-00:02:00"
    assert slurm.slurm_version("slurm-wlm 22.05.8") == (22, 5)
    assert slurm.has_json((22, 5)) and not slurm.has_json((20, 11))
    info = slurm.parse_partition(read("scontrol_partition_22.05.txt"))
    assert (info["State"], info["MaxTime"], info["TotalCPUs"]) == ("UP", "UNLIMITED", "2")
    assert slurm.sbatch_refused(
        "sbatch: error: Batch job submission failed: Requested time limit is invalid "
        "(missing or exceeds some limit)"
    )
    assert not slurm.sbatch_refused(
        "sbatch: error: Batch job submission failed: Unable to contact slurm controller"
    )
    assert slurm.gres_gpus("gpu:a100:4(S:0-1),gpu:v100:1,shard:8") == 5


def test_a_job_pending_for_a_reason_that_never_passes_is_refused() -> None:
    # captured after `scontrol update PartitionName=debug MaxTime=30` with the job pending
    jobs = slurm.parse_squeue(read("squeue_never_22.05.txt"))
    status = slurm.slurm_status(jobs["neverrun1234"], None, now=100.0)
    assert status == {
        "slurm_id": "2", "state": "done", "exit_code": None, "refused": True,
        "started_at": 100.0, "ended_at": 100.0,
        "reason": "Slurm will never run it as asked: PartitionTimeLimit",
    }  # fmt: skip
    assert slurm.never_runs("QOSMaxWallDurationPerJobLimit")
    assert not slurm.never_runs("Resources") and not slurm.never_runs("QOSMaxCpuPerUserLimit")


def test_sacct_rows_read_like_squeue_rows() -> None:
    jobs = slurm.parse_sacct(read("sacct_22.05.txt"))
    assert set(jobs) == {"aaaa00000001", "aaaa00000002", "aaaa00000003", "aaaa00000004"}
    failed, running = jobs["aaaa00000001"], jobs["aaaa00000002"]
    assert (failed.state, failed.exit_code, failed.start, failed.end) == (
        "FAILED", 3, 1796459144.0, 1796459145.0,
    )  # fmt: skip
    assert (running.state, running.end, running.gpus, running.cpus) == ("RUNNING", None, 1, 1)
    assert jobs["aaaa00000003"].state == "CANCELLED"  # "CANCELLED by 0"
    pending = jobs["aaaa00000004"]
    assert (pending.state, pending.start, pending.nodes) == ("PENDING", None, "")
    assert running.allocated == (1, 64, 1) and pending.allocated is None  # AllocTRES
    assert slurm.slurm_status(jobs["aaaa00000003"], None)["cancelled"] is True
    assert slurm.sacct_argv(10)[4] == "--starttime=now-60"


def test_a_job_slurm_has_not_looked_at_yet_says_only_that_it_is_pending() -> None:
    """squeue's %r reads `None` until the scheduler has looked at a job: no "(None)"."""
    pending = dataclasses.replace(slurm.parse_squeue(read("squeue_22.05.txt"))["bbbb11112222"],
                                  reason="None")  # fmt: skip
    assert slurm.slurm_status(pending, None)["reason"] == "pending in Slurm"


def test_squeue_and_sacct_list_the_given_users_in_lab_mode() -> None:
    assert "--me" in slurm.squeue_argv()
    assert "--users=alice,bob" in slurm.squeue_argv(["bob", "alice", "bob"])
    assert "--user=alice,bob" in slurm.sacct_argv(60, ["alice", "bob"])
    with pytest.raises(ValueError, match="invalid user name"):
        slurm.squeue_argv(["alice,root"])


def test_hostlist_count_counts_the_nodes_a_nodelist_names() -> None:
    cases = {"c1": 1, "c[1-3,7]": 4, "a[1-2]b[1-2]": 4, "c1,g[01-04]": 5, "": 0,
             "None assigned": 0, "(null)": 0, "gpu-[001-010],cpu7": 11}  # fmt: skip
    assert {text: slurm.hostlist_count(text) for text in cases} == cases


def test_pending_skips_only_the_polls_own_attempts_by_name() -> None:
    """A job named like lepton's that is not one of the asked attempts (a colleague's personal
    ledger, another lab's) is someone else's: it claims the partition like any job."""
    text = (
        "101|alice|Resources|4|1G|N/A|N/A|cpu=4,mem=1G,node=1|train|\n"
        "102|bob|Resources|2|512M|gres:gpu:1|N/A|cpu=2,mem=512M,node=1|lepton-12-abcd1234|\n"
    )
    assert slurm.parse_pending(text) == slurm.OthersPending(2, 2, 6, 1536, 1)
    assert slurm.parse_pending(text, {"lepton-3-ffff0000"}) == slurm.OthersPending(2, 2, 6, 1536, 1)
    # bob's job is one of this poll's asked attempts (lab mode: every user's on the host)
    own = {slurm.job_name(12, "abcd1234")}
    assert slurm.parse_pending(text, own) == slurm.OthersPending(1, 1, 4, 1024, 0)


def test_a_pending_jobs_memory_under_mem_per_cpu_is_its_whole_request() -> None:
    """squeue's MinMemory is per CPU under `--mem-per-cpu` (300M for 2 CPUs: 600M in all, as its
    tres-alloc says); without a tres-alloc (an older squeue's empty field) MinMemory stands."""
    text = (
        "201|carol|Resources|2|300M|N/A|N/A|cpu=2,mem=600M,node=1,billing=2|percpu|\n"
        "202|dave|Priority|2|500M|N/A|N/A||pernode|\n"
    )
    assert slurm.parse_pending(text) == slurm.OthersPending(2, 2, 4, 1100, 0)


def test_a_run_killed_before_its_end_leaves_no_earlier_runs_exit_code(tmp_path: Path) -> None:
    """All runs of a job Slurm requeues share its directory: a run killed before it writes
    `exit_code` (its node lost, `scancel -s KILL`) must not leave an earlier run's code there
    to be read as its own once Slurm has forgotten the job. The script runs here under bash."""
    import subprocess

    spec = SubmitSpec(job_id=5, token="t0k3n", command="kill -9 $PPID", job_dir=str(tmp_path))
    (tmp_path / slurm.END_FILE).write_text("0\n")  # the earlier run's
    script = tmp_path / "job.sh"
    script.write_text(slurm.batch_script(spec))
    done = subprocess.run(["bash", str(script)], capture_output=True, timeout=30)
    assert done.returncode == -9  # killed: no end written
    assert (tmp_path / "started_at").exists()
    assert not (tmp_path / slurm.END_FILE).exists()
