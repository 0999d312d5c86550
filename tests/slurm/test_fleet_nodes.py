"""A Slurm partition in the fleet panel: the dispatcher's tick keeps its nodes (state, CPUs,
memory, GRES GPUs, what is allocated of each) in the ledger, where the fleet's expandable row
reads them, in personal mode and over the lab socket's wire format alike."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.fleet_view import FleetRow, NodeCell, fleet
from lepton_tui.screen_data import from_wire, to_wire
from lepton_tui.service import Service
from tests.dispatch.helpers import tick_until
from tests.slurm.test_dispatch import add_cluster, state, submit
from tests.slurmbed import GPUS, NODE, PARTITION, SlurmBed


@pytest.fixture
def d(svc: Service) -> Any:
    dispatcher = Dispatcher(svc, tick_s=0.2)
    yield dispatcher
    dispatcher.pool.close()


def test_a_tick_keeps_the_partitions_nodes_for_the_fleet_row(
    slurm: SlurmBed, svc: Service, d: Dispatcher, tmp_path: Path
) -> None:
    add_cluster(svc, slurm, tmp_path / "lepton")
    (before,) = fleet(svc.ledger, time.time())
    assert (before.partition, before.nodes) == (PARTITION, [])  # no poll yet: no nodes
    job = submit(svc, "sleep 60", cpus=1, gpus=1)
    tick_until(d, lambda: state(svc, job) == "running")
    d.tick()  # a poll while the job holds its CPU and GPU in Slurm
    (row,) = fleet(svc.ledger, time.time())
    assert row.partition == PARTITION
    (node,) = row.nodes
    assert (node.name, node.cpus, node.gpus) == (NODE, slurm.cpus, GPUS)
    assert node.state in ("mixed", "allocated")
    assert node.cpus_alloc >= 1 and node.gpus_alloc == 1
    assert node.mem_mb > 0 and node.mem_alloc_mb >= 64
    svc.cancel([job])
    tick_until(d, lambda: state(svc, job) == "cancelled")
    tick_until(d, lambda: fleet(svc.ledger, time.time())[0].nodes[0].state == "idle")
    (row,) = fleet(svc.ledger, time.time())
    assert (row.nodes[0].cpus_alloc, row.nodes[0].gpus_alloc) == (0, 0)


def test_the_nodes_cross_the_lab_socket_as_the_console_reads_them() -> None:
    row = FleetRow(
        "cluster", "up", "active", "local", None, 8.0, 2, 0.0, partition="gpu", others_pending=3,
        nodes=[NodeCell("n1", "mixed", 8, 4, 64000, 1000, 2, 1, ""),
               NodeCell("n2", "drained", 8, 0, 64000, 0, 0, 0, "maintenance")],
    )  # fmt: skip
    back = from_wire(FleetRow, to_wire(row))
    assert back == row and isinstance(back.nodes[1], NodeCell)


def test_the_partition_row_shows_other_users_pending_jobs() -> None:
    from lepton_tui.widgets.fleet import host_cells

    row = FleetRow("cluster", "up", "active", "local", None, 8.0, 2, 0.0, partition="gpu")
    assert "pending" not in host_cells(row, 6, False, "USD")[0].plain  # none seen yet
    row.others_pending = 4
    assert host_cells(row, 6, False, "USD")[0].plain.endswith("cluster +4 pending")
