"""A Slurm partition in the fleet panel: one row (`▸ hpc`) that expands into a row per node
(its state and Slurm's reason, CPUs, memory and GRES GPUs allocated of its total) and collapses
again, by keyboard (space toggles, right expands, left collapses) and by a click on its name;
the expansion survives a refresh; a node's row selects its partition's host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lepton_tui.service import Service
from lepton_tui.widgets.fleet import NODE_SEP, FleetTable
from tests.tui.conftest import loaded, settled, wait_for
from tests.tui.data import FIXED_NOW, USER

NODES = [
    {"name": "n01", "state": "mixed", "cpus": 64, "cpus_alloc": 40, "mem_mb": 512000,
     "mem_alloc_mb": 256000, "gpus": 4, "gpus_alloc": 1, "reason": ""},
    {"name": "n02", "state": "idle", "cpus": 64, "cpus_alloc": 0, "mem_mb": 512000,
     "mem_alloc_mb": 0, "gpus": 4, "gpus_alloc": 0, "reason": ""},
    {"name": "n03", "state": "drained", "cpus": 64, "cpus_alloc": 0, "mem_mb": 512000,
     "mem_alloc_mb": 0, "gpus": 0, "gpus_alloc": 0, "reason": "maintenance"},
]  # fmt: skip


@pytest.fixture
def slurm_lab(lab: Path) -> Path:
    """The fixed lab and a Slurm host `hpc` (partition gpu) whose last poll saw three nodes."""
    svc = Service.open(lab, user=USER, clock=lambda: FIXED_NOW)
    with svc.ledger.tx():
        svc.ledger.insert("hosts", {
            "name": "hpc", "transport": "local", "state": "up", "admin_state": "active",
            "cpus": 128, "mem_mb": 1024000, "gpus": 8, "added_at": FIXED_NOW - 86400,
            "added_by": USER, "last_seen": FIXED_NOW - 5, "labels": "[]",
            "slurm_json": json.dumps({"partition": "gpu"}), "slurm_nodes": json.dumps(NODES),
        })  # fmt: skip
    svc.close()
    return lab


def keys(table: FleetTable) -> list[str]:
    return [str(k.value) for k in table.rows]


def cell(table: FleetTable, key: str, column: int = 0) -> str:
    value = table.get_row(key)[column]
    return str(getattr(value, "plain", value))


def node_rows(table: FleetTable) -> list[str]:
    return [k.split(NODE_SEP)[1] for k in keys(table) if NODE_SEP in k]


async def fleet_focused(pilot, host: str) -> FleetTable:
    await loaded(pilot)
    table = pilot.app.screen.query_one(FleetTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(host), animate=False)
    await pilot.pause()
    return table


async def test_the_partition_is_one_row_that_expands_into_its_nodes_by_keyboard(
    make_tui, slurm_lab: Path
) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        table = await fleet_focused(pilot, "hpc")
        assert keys(table) == ["cpu-c", "gpu-a", "gpu-b", "hpc"]
        assert cell(table, "hpc") == "▸ hpc"
        from lepton_tui.screens.help import binding_rows  # `?` lists the keys

        assert "show/hide a Slurm partition's nodes" in dict(binding_rows(app)).values()
        assert cell(table, "gpu-a") == "gpu-a"  # an SSH host does not expand
        await pilot.press("space")
        assert node_rows(table) == ["n01", "n02", "n03"]
        assert cell(table, "hpc") == "▾ hpc"
        n01, n03 = f"hpc{NODE_SEP}n01", f"hpc{NODE_SEP}n03"
        assert cell(table, n01) == "  ├ n01" and cell(table, n03) == "  └ n03"
        assert cell(table, n01, 1) == "mixed" and cell(table, n03, 1) == "drained (maintenance)"
        assert cell(table, n01, 2).endswith(" 40/64")  # CPUs allocated of its total
        assert cell(table, n01, 3).endswith("50%")  # memory allocated
        assert cell(table, n01, 4).endswith(" 1/4 GPU") and cell(table, n03, 4) == "no GPUs"
        await pilot.press("down", "down")  # onto n02: a node's row is its partition's host
        assert table.selected_host == "hpc"
        await pilot.press("left")  # collapses the partition, the cursor back on its row
        assert node_rows(table) == [] and table.selected_host == "hpc"
        assert keys(table)[table.cursor_row] == "hpc"
        await pilot.press("right")
        assert node_rows(table) == ["n01", "n02", "n03"]
        await pilot.press("right")  # already expanded: nothing changes
        assert len(keys(table)) == 7
        await pilot.press("up")  # gpu-b: space there expands nothing
        await pilot.press("space")
        assert len(keys(table)) == 7 and cell(table, "gpu-b").startswith("gpu-b")
        await pilot.press("down", "space")
        assert node_rows(table) == [] and cell(table, "hpc") == "▸ hpc"


async def test_a_click_on_the_partitions_name_expands_and_collapses_it(
    make_tui, slurm_lab: Path
) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        table = await fleet_focused(pilot, "gpu-a")
        await settled(pilot)

        def at(key: str, column: int) -> tuple[int, int]:  # a cell's place in the table
            x = sum(c.get_render_width(table) for c in table.ordered_columns[:column]) + 1
            return x, table.header_height + table.get_row_index(key)

        await pilot.click(FleetTable, offset=at("hpc", 2))  # its CPU bar: only highlighted
        assert node_rows(table) == [] and table.selected_host == "hpc"
        await pilot.click(FleetTable, offset=at("hpc", 0))
        assert node_rows(table) == ["n01", "n02", "n03"]
        await pilot.click(FleetTable, offset=at(f"hpc{NODE_SEP}n02", 0))  # a node's name
        assert node_rows(table) == [] and table.selected_host == "hpc"
        await pilot.click(FleetTable, offset=at("gpu-b", 0))  # an SSH host: highlighted only
        assert node_rows(table) == [] and table.selected_host == "gpu-b"


async def test_the_expansion_survives_a_refresh_and_follows_the_nodes(
    make_tui, slurm_lab: Path
) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        table = await fleet_focused(pilot, "hpc")
        await pilot.press("space")
        svc = Service.open(slurm_lab, user=USER, clock=lambda: FIXED_NOW)
        with svc.ledger.tx():  # the next poll saw n03 come back and n02 go
            nodes = [NODES[0], {**NODES[2], "state": "idle", "reason": ""}]
            svc.ledger.execute("UPDATE hosts SET slurm_nodes = ? WHERE name = 'hpc'",
                               (json.dumps(nodes),))  # fmt: skip
        svc.close()
        app.screen.reload()
        await wait_for(pilot, lambda: node_rows(table) == ["n01", "n03"])
        assert cell(table, "hpc") == "▾ hpc"
        assert cell(table, f"hpc{NODE_SEP}n03", 1) == "idle"


async def test_the_hosts_screen_shows_the_partition_as_the_overview_left_it(
    make_tui, slurm_lab: Path
) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await fleet_focused(pilot, "hpc")
        await pilot.press("space")  # expanded in the overview
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen.id == "hosts")
        table = await fleet_focused(pilot, "hpc")
        assert node_rows(table) == ["n01", "n02", "n03"] and cell(table, "hpc") == "▾ hpc"
        await pilot.press("down")
        assert table.selected_host == "hpc"  # details, drain and remove act on the partition
        await pilot.press("left")
        assert node_rows(table) == []


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview_with_an_expanded_partition(snap_compare, make_tui, slurm_lab, size) -> None:
    async def run_before(pilot) -> None:
        table = await fleet_focused(pilot, "hpc")
        await pilot.press("space")
        assert len(keys(table)) == 7
        await settled(pilot)

    assert snap_compare(make_tui(), terminal_size=size, run_before=run_before)
