"""`--signal` and `--requeue-on-timeout` on a Slurm host: Slurm's own `--signal` (to the batch
shell, passed on to the job) and the restart count, on the real one-node Slurm bed."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory.slurm import SubmitSpec, batch_script, sbatch_argv
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.service import Service
from tests.dispatch.helpers import TERMINAL, tick_until
from tests.slurm.helpers import target
from tests.slurm.test_dispatch import add_cluster

pytestmark = pytest.mark.slow


def test_sbatch_gets_the_signal_for_the_batch_shell(slurm, tmp_path: Path) -> None:
    spec = SubmitSpec(1, "abc123", "python t.py", "/shared/j", time_limit_s=600, signal="USR1@60")
    assert "--signal=B:USR1@60" in sbatch_argv(target(slurm), spec)
    assert "trap 'kill -USR1 $child 2>/dev/null' USR1" in batch_script(spec)
    plain = SubmitSpec(1, "abc123", "python t.py", "/shared/j", time_limit_s=600)
    assert not any(a.startswith("--signal") for a in sbatch_argv(target(slurm), plain))


def test_the_job_gets_the_warning_with_its_restart_count(
    slurm, svc: Service, tmp_path: Path
) -> None:
    add_cluster(svc, slurm, tmp_path / "lepton")
    seen = tmp_path / "seen"
    script = (
        f"trap 'echo \"usr1 $LEPTON_RESTART_COUNT\" >> {seen}; exit 0' USR1\n"
        "for i in $(seq 1200); do sleep 0.1; done\nexit 7"
    )
    job_id = svc.submit(
        command=script, time="1m", signal="USR1@55", requeue_on_timeout=True, mem="64M"
    )
    d = Dispatcher(svc, tick_s=0.2)
    try:
        tick_until(d, lambda: svc.ledger.get_job(job_id)["state"] in TERMINAL, timeout=150,
                   pause=0.5)  # fmt: skip
    finally:
        d.pool.close()
    job = svc.ledger.get_job(job_id)
    assert job["state"] == "succeeded", job["reason"]
    assert seen.read_text().split("\n")[0] == "usr1 0"
