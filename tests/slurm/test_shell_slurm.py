"""`lepton-tui shell` beside a real Slurm partition: a session needs an SSH host (an ssh to a
Slurm host would reach its login node, not the node Slurm chose), so `shell` says so when the
lab has no other host and keeps the allocation off the partition when it has one."""

from __future__ import annotations

import json
from pathlib import Path

from lepton_tui import interactive
from lepton_tui.dispatch.hostpool import HostPool
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.service import Service
from tests.clirun import lepton
from tests.dispatch.helpers import add_bed_hosts
from tests.slurmbed import SlurmBed

PROBE = 'echo "CVD=$CUDA_VISIBLE_DEVICES"'


def _add_cluster(home: Path, slurm: SlurmBed, tmp_path: Path) -> None:
    add = lepton(home, "hosts", "add", "cluster", "--slurm", "--slurm-conf", str(slurm.conf),
                 "--root-dir", str(tmp_path / "jobs"))  # fmt: skip
    assert add.returncode == 0, add.stderr


def test_shell_with_only_a_slurm_host_says_so_and_queues_nothing(
    slurm: SlurmBed, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    _add_cluster(home, slurm, tmp_path)
    res = lepton(home, "shell", "--gpus", "1", "--time", "5m", "--", "true")
    assert res.returncode == 2, res.stderr
    assert "`shell` opens SSH sessions on SSH hosts only, and cluster is not one" in res.stderr
    assert "srun --pty" in res.stderr and "Traceback" not in res.stderr
    assert json.loads(lepton(home, "queue", "--all", "--json").stdout) == []
    svc = Service.open(home)
    try:
        host = svc.get_host("cluster")
    finally:
        svc.close()
    assert interactive.ssh_refusal(host) == (
        "host cluster is a Slurm partition: `shell` opens sessions on SSH hosts only"
    )


def test_shell_beside_a_slurm_host_runs_on_the_ssh_host(
    slurm: SlurmBed, sshbed, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    _add_cluster(home, slurm, tmp_path)
    svc = Service.open(home)
    (bed,) = sshbed(1)
    add_bed_hosts(svc, [bed], root=tmp_path / "roots", gpus={bed.name: 2})
    d = Dispatcher(svc, pool=HostPool(svc.known_hosts, backoff_max=1.0), tick_s=0.2)
    handle = d.start_in_thread()
    try:
        res = lepton(home, "shell", "--gpus", "1", "--time", "5m", "--wait", "1m", "--", PROBE)
    finally:
        handle.stop()
        d.pool.close()
    assert res.returncode == 0, res.stderr
    assert "CVD=0" in res.stdout and f"runs on {bed.name}" in res.stderr
    job_id = int(res.stderr.split("job ", 1)[1].split()[0])
    job = svc.get_job(job_id)
    svc.close()
    assert json.loads(job["constraints"]) == {"exclude": ["cluster"]}
