"""A cluster with accounting (slurmdbd): the tick asks sacct, the preflight checks the user's
association, and a job slurmctld has already forgotten still ends right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.dispatch.slurm_admin import onboard_slurm
from lepton_tui.errors import LeptonError
from lepton_tui.service import Service
from tests.dispatch.helpers import TERMINAL, tick_until
from tests.slurm.helpers import wait_for
from tests.slurm.test_dispatch import slurm_jobs_named, state, submit
from tests.slurmbed import ACCOUNT, PARTITION, SlurmBed


def add(svc: Service, bed: SlurmBed, root: Path, **kw: Any) -> dict[str, Any]:
    lines: list[str] = []
    done = onboard_slurm(svc, "cluster", partition=PARTITION, slurm_conf=str(bed.conf),
                         root_dir=str(root), echo=lines.append, **kw)  # fmt: skip
    assert done.ok
    return {"host": done.host, "lines": lines}


def test_preflight_checks_the_users_association(
    slurm_accounting: SlurmBed, svc: Service, tmp_path: Path
) -> None:
    added = add(svc, slurm_accounting, tmp_path / "lepton", account=ACCOUNT)
    assert "ok   accounting: accounting_storage/slurmdbd" in added["lines"]
    assert f"ok   association: account {ACCOUNT} may use {PARTITION}" in added["lines"]
    with pytest.raises(LeptonError) as err:
        onboard_slurm(svc, "other", partition=PARTITION, account="nosuch",
                      slurm_conf=str(slurm_accounting.conf), root_dir=str(tmp_path))  # fmt: skip
    assert "association: none for account nosuch on debug; your accounts:" in str(err.value)


def test_the_tick_asks_sacct_once_and_exit_codes_come_back(
    slurm_accounting: SlurmBed, svc: Service, tmp_path: Path
) -> None:
    host = add(svc, slurm_accounting, tmp_path / "lepton", account=ACCOUNT)["host"]
    d = Dispatcher(svc, tick_s=0.2)
    try:
        jobs = [submit(svc, f"echo acct; exit {code}") for code in (0, 5)]
        tick_until(d, lambda: all(state(svc, j) in TERMINAL for j in jobs))
        assert [svc.ledger.get_job(j)["exit_code"] for j in jobs] == [0, 5]
        sh = d.slurm.get(host)
        sacct, squeue, trips = sh.commands["sacct"], sh.commands["squeue"], d.pool.round_trips
        running = submit(svc, "sleep 20")
        tick_until(d, lambda: state(svc, running) == "running")
        wait_for(lambda: "RUNNING" in slurm_accounting.client(
            "sacct", "--noheader", "--allocations", "--format=State",
            f"--jobs={slurm_jobs_named(slurm_accounting, svc, running)[0]}").stdout)  # fmt: skip
        sacct, squeue, trips = sh.commands["sacct"], sh.commands["squeue"], d.pool.round_trips
        with svc.ledger.tx():  # what Slurm allocated comes from sacct alone from here on
            svc.ledger.execute("UPDATE attempts SET alloc_cpus = NULL, alloc_mem_mb = NULL")
        for _ in range(3):
            d.tick()
        # once sacct has the job: one sacct, no squeue, one round trip per tick
        assert (sh.commands["sacct"] - sacct, sh.commands["squeue"] - squeue) == (3, 0)
        assert d.pool.round_trips - trips == 3
        (att,) = svc.ledger.attempts_for(running)
        assert (att["alloc_cpus"], att["alloc_mem_mb"]) == (1, 64)  # sacct's AllocTRES
        assert sh.commands["scontrol"] == 0  # `hosts add` recorded that accounting runs
    finally:
        d.pool.close()


def test_a_job_slurmctld_has_forgotten_ends_as_sacct_says(
    slurm_accounting: SlurmBed, svc: Service, tmp_path: Path
) -> None:
    """Cancelled in Slurm while it waited, then purged by slurmctld (MinJobAge) before lepton
    looked again: no end file, no squeue row; sacct still says cancelled (not lost).
    It waits in Slurm for a dependency (lepton submits it with afterok at once), so it was
    never eligible: sacct's time window never shows such a job; lepton asks for it by id."""
    add(svc, slurm_accounting, tmp_path / "lepton", account=ACCOUNT)
    d = Dispatcher(svc, tick_s=0.2)
    try:
        first = submit(svc, "sleep 300", time_limit_s=600)
        job = submit(svc, "echo never", after=[first])
        tick_until(d, lambda: state(svc, job) == "starting")
        (sid,) = slurm_jobs_named(slurm_accounting, svc, job)
        slurm_accounting.client("scancel", sid)  # by hand in Slurm, not through lepton
        wait_for(lambda: sid not in slurm_accounting.client(
            "squeue", "--noheader", "--states=all", "--format=%i").stdout.split(),
            timeout=180, every=1)  # fmt: skip
        tick_until(d, lambda: state(svc, job) in TERMINAL)
        assert state(svc, job) == "cancelled"  # not lost, not submitted again
        (att,) = svc.ledger.attempts_for(job)
        assert (att["state"], att["reason"]) == ("cancelled", "cancelled in Slurm")
        assert state(svc, first) == "running"  # the job it waited for is untouched
        slurm_accounting.client("scancel", *slurm_jobs_named(slurm_accounting, svc, first))
    finally:
        d.pool.close()
