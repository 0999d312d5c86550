"""Lab mode: the console reads the fleet through a real lab service's socket (`serve --socket`),
and a Slurm partition's row expands into its nodes there as in personal mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lepton_tui.app import make_app
from lepton_tui.service import Service
from lepton_tui.widgets.fleet import FleetTable
from tests.tui.conftest import wait_for
from tests.tui.test_fleet_slurm import NODES, cell, node_rows
from tests.tui.test_lab_console import Daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    lab = Daemon(tmp_path)
    svc = Service.open(lab.state)  # the lab's ledger, with a Slurm host its last poll saw
    with svc.ledger.tx():
        svc.ledger.insert("hosts", {
            "name": "hpc", "transport": "ssh", "address": "127.0.0.1", "port": 1, "user": "lab",
            "state": "up", "admin_state": "draining", "cpus": 192, "mem_mb": 1536000,
            "gpus": 8, "added_at": svc.ledger.clock(), "added_by": "admin", "labels": "[]",
            "slurm_json": json.dumps({"partition": "gpu"}), "slurm_nodes": json.dumps(NODES),
        })  # fmt: skip
    svc.close()
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


async def test_the_partition_expands_in_a_lab_console(
    daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "personal"))
    app = make_app(socket=daemon.socket, refresh_s=1.0)
    assert app.lab and app.ledger is None
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(FleetTable)
        await wait_for(pilot, lambda: "hpc" in {str(k.value) for k in table.rows})
        assert cell(table, "hpc") == "▸ hpc"
        table.focus()
        table.move_cursor(row=table.get_row_index("hpc"), animate=False)
        await pilot.press("space")
        assert node_rows(table) == ["n01", "n02", "n03"]
        loads = app.screen.loads
        await wait_for(pilot, lambda: app.screen.loads >= loads + 2)  # pushed again: still open
        assert node_rows(table) == ["n01", "n02", "n03"] and cell(table, "hpc") == "▾ hpc"
