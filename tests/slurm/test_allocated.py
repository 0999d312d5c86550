"""A Slurm job is charged for what Slurm allocated to it, not for what it asked, where Slurm
rounds the request up (here a whole node on an `OverSubscribe=EXCLUSIVE` partition); placement
keeps the request, and `show` gives both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.economics.costs import cost_summary
from lepton_tui.economics.prices import set_prices
from lepton_tui.economics.report import cost_report
from lepton_tui.service import Service
from tests.clirun import lepton
from tests.dispatch.helpers import TERMINAL, tick_until
from tests.slurm.test_dispatch import add_cluster, state, submit
from tests.slurmbed import PARTITION, SlurmBed


@pytest.fixture
def d(svc: Service) -> Any:
    dispatcher = Dispatcher(svc, tick_s=0.2)
    yield dispatcher
    dispatcher.pool.close()


@pytest.fixture
def exclusive(slurm: SlurmBed) -> Iterator[SlurmBed]:
    """The bed's partition gives each job its whole node; put back as it was afterwards."""

    def oversubscribe(value: str) -> None:
        done = slurm.client("scontrol", "update", f"PartitionName={PARTITION}",
                            f"OverSubscribe={value}")  # fmt: skip
        assert done.returncode == 0, done.stderr

    oversubscribe("EXCLUSIVE")
    try:
        yield slurm
    finally:
        slurm.cancel_all(wait_s=15)
        oversubscribe("NO")


def test_a_job_slurm_gives_a_whole_node_is_charged_for_the_nodes_cpus(
    exclusive: SlurmBed, svc: Service, d: Dispatcher, home: Path, tmp_path: Path
) -> None:
    bed = exclusive
    assert bed.cpus > 1  # a node larger than the job's one CPU, or nothing is rounded up
    add_cluster(svc, bed, tmp_path / "lepton")
    set_prices(svc.ledger, "cluster", cpu_hour=3600, actor="test")  # a CPU-second costs 1
    (priced_from,) = [r["effective_from"] for r in svc.prices(history=True)["prices"]]
    job = submit(svc, "sleep 3", cpus=1)

    def allocated_seen() -> bool:
        atts = svc.ledger.attempts_for(job)
        return bool(atts) and atts[0]["state"] == "running" and atts[0]["alloc_cpus"] is not None

    tick_until(d, allocated_seen)
    (running,) = svc.ledger.attempts_for(job)
    # Slurm's tres-alloc, read from the tick's one squeue: the node's CPUs (slurm.conf's count)
    assert running["alloc_cpus"] == bed.cpus and running["cpus"] == 1
    # while it runs: the panel's rate (Python) and the spend so far (sliced in the cost engine's
    # SQL, over a span that starts at the price: not "today", which midnight could cut) charge
    # the node's CPUs
    now = svc.ledger.clock()
    panel = cost_summary(svc.ledger, now)
    assert panel["rate_per_hour"] == pytest.approx(bed.cpus * 3600)
    so_far = bed.cpus * (now - max(running["started_at"], priced_from))
    spent = cost_report(svc.ledger, priced_from, now, "user", now=now).total.cost
    assert so_far > 0 and spent == pytest.approx(so_far, abs=1e-3)
    tick_until(d, lambda: state(svc, job) in TERMINAL)
    assert state(svc, job) == "succeeded"
    (att,) = svc.ledger.attempts_for(job)
    seconds = att["ended_at"] - max(att["started_at"], priced_from)
    assert seconds > 0
    # settled at the end, and the same from the cost engine's SQL (reports, budgets)
    assert att["cost"] == pytest.approx(bed.cpus * seconds, rel=1e-6)
    by_host = svc.cost(since="1h", by="host")["report"]
    (row,) = [r for r in by_host["rows"] if r["key"] == "cluster"]
    assert row["cost"] == pytest.approx(bed.cpus * seconds, abs=1e-5)
    # the request is left as asked: placement and the queue keep using it
    assert svc.ledger.get_job(job)["cpus"] == 1
    shown = lepton(home, "show", str(job))
    assert shown.returncode == 0, shown.stderr
    assert f"Slurm allocated {bed.cpus} CPUs (asked 1)" in shown.stdout
