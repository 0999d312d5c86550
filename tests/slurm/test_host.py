"""inventory.slurm_host on a real Slurm cluster, on the login node and over SSH."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory.slurm import SubmitSpec
from inventory.slurm_host import Refused, SlurmHost, Submitted
from tests.slurm.helpers import local_host, ssh_host, wait_for
from tests.slurmbed import GPUS, NODE, SlurmBed


@pytest.fixture(params=["local", "ssh"])
def host(request: pytest.FixtureRequest, slurm: SlurmBed, tmp_path: Path) -> SlurmHost:
    if request.param == "local":
        return local_host(slurm, tmp_path / "lepton")
    ssh = request.getfixturevalue("sshbed")(1)[0]
    return ssh_host(slurm, ssh, tmp_path / "lepton")


def spec(host: SlurmHost, job_id: int, token: str, command: str, **kw: object) -> SubmitSpec:
    return SubmitSpec(
        job_id=job_id,
        token=token,
        command=command,
        job_dir=host.job_dir(job_id, token),
        mem_mb=64,
        **kw,
    )  # type: ignore[arg-type]


def test_preflight_says_one_line_per_check(host: SlurmHost) -> None:
    lines = host.preflight()
    text = "\n".join(line for _, line in lines)
    assert all(ok for ok, _ in lines), text
    assert text.startswith("sinfo: slurm")
    assert "sbatch: slurm" in text
    assert "partition debug: UP, MaxTime 1-00:00:00, 1 node(s) (1 idle)" in text
    assert "accounting: none" in text


def test_preflight_names_a_missing_partition(slurm: SlurmBed, tmp_path: Path) -> None:
    from inventory.slurm import SlurmTarget

    host = local_host(slurm, tmp_path)
    host.target = SlurmTarget("nosuch", slurm_conf=str(slurm.conf))
    bad = [line for ok, line in host.preflight() if not ok]
    assert bad == ["partition nosuch: Partition nosuch not found; `sinfo -s` lists them"]


def test_inventory_json_and_formatted_agree_on_the_real_cluster(
    host: SlurmHost, slurm: SlurmBed
) -> None:
    from_json = host.inventory()
    host.prefer_json = False
    from_text = host.inventory()
    assert host.commands["sinfo"] == 2
    for view in (from_json, from_text):
        assert [n.name for n in view.nodes] == [NODE]
        assert (view.gpus, view.cpus, view.mem_mb) == (GPUS, slurm.cpus, slurm.mem_mb)


def test_job_runs_and_its_exit_code_and_output_come_back(host: SlurmHost) -> None:
    s = spec(host, 1, "runs1", "echo out-$LEPTON_JOB_ID; echo err >&2; exit 7", env={"X": "1"})
    (res,) = host.submit([s]).values()
    assert isinstance(res, Submitted)
    status = wait_for(lambda: (st := host.poll({"runs1": 1}).statuses["runs1"])["state"] == "done"
                      and st)  # fmt: skip
    assert (status["exit_code"], status["slurm_id"]) == (7, res.slurm_id)
    assert status["started_at"] and status["ended_at"] >= status["started_at"]
    assert host.read_log(1, "runs1", "stdout", 0) == (b"out-1\n", 6)
    assert host.read_log(1, "runs1", "stdout", 6) == (b"", 6)
    assert host.read_log(1, "runs1", "stderr", 0)[0] == b"err\n"


def test_cancel_ends_a_running_job_as_cancelled(host: SlurmHost) -> None:
    (res,) = host.submit([spec(host, 2, "cancel2", "sleep 300")]).values()
    assert isinstance(res, Submitted)
    wait_for(lambda: host.poll({"cancel2": 2}).statuses["cancel2"]["state"] == "running")
    host.cancel([res.slurm_id])
    st = wait_for(lambda: (s := host.poll({"cancel2": 2}).statuses["cancel2"])["state"] == "done"
                  and s)  # fmt: skip
    assert st["cancelled"] is True


def test_a_job_over_the_partitions_limits_is_refused_with_the_reason(host: SlurmHost) -> None:
    out = host.submit([
        spec(host, 3, "toolong3", "true", time_limit_s=2 * 86400),
        spec(host, 4, "toobig4", "true", cpus=64),
    ])  # fmt: skip
    assert out["toolong3"] == Refused(
        "Slurm refused it: sbatch: error: Batch job submission failed: Requested time limit is "
        "invalid (missing or exceeds some limit)"
    )
    assert isinstance(out["toobig4"], Refused)
    assert out["toobig4"].reason.endswith("More processors requested than permitted")


def test_a_guarded_submission_finds_the_job_slurm_already_has(host: SlurmHost) -> None:
    first = host.submit([spec(host, 5, "guard5", "sleep 30")])["guard5"]
    again = host.submit([spec(host, 5, "guard5", "sleep 30")], guard=True)["guard5"]
    assert isinstance(first, Submitted) and isinstance(again, Submitted)
    assert (again.slurm_id, again.existing) == (first.slurm_id, True)
    names = host.run(["squeue", "--me", "--noheader", "--name=lepton-5-guard5", "--format=%i"])
    assert names[0]["out"].split() == [first.slurm_id]


def test_one_squeue_per_poll_however_many_jobs(host: SlurmHost) -> None:
    specs = [spec(host, 100 + i, f"many{i}", "sleep 60") for i in range(20)]
    before_trips = host.transport.round_trips
    results = host.submit(specs)
    assert all(isinstance(r, Submitted) for r in results.values())
    assert host.transport.round_trips - before_trips == 1  # twenty sbatch, one exec
    host.poll({})  # warm: the root directory resolved once
    before = dict(host.commands)
    trips = host.transport.round_trips
    poll = host.poll({s.token: s.job_id for s in specs})
    assert host.transport.round_trips - trips == 1
    assert host.commands["squeue"] - before.get("squeue", 0) == 1
    assert host.commands["sinfo"] - before.get("sinfo", 0) == 1
    assert {st["state"] for st in poll.statuses.values()} <= {"starting", "running"}
