"""The fleet's columns are as wide as the rows shown need: a collapsed Slurm partition's node
with a long drain reason leaves no column of any host out (pure: the cells, their widths and
`fit_columns`, as `FleetTable` lays them out)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lepton_tui.fleet_view import fleet
from lepton_tui.service import Service
from lepton_tui.widgets.fit import cell_widths, fit_columns
from lepton_tui.widgets.fleet import COLUMNS, DROP_ORDER, FleetTable, fleet_cells, visible_cells
from tests.tui.data import FIXED_NOW, USER
from tests.tui.test_fleet_slurm import slurm_lab  # noqa: F401 - the fixture

REASON = "fan broken on the second riser, replace it before use!!"  # 55 characters


def columns(lab: Path, room: int, reason: str, expanded: set[str]) -> list[str]:
    svc = Service.open(lab, user=USER, clock=lambda: FIXED_NOW)
    try:
        rows = fleet(svc.ledger, FIXED_NOW)
    finally:
        svc.close()
    rows = [
        dataclasses.replace(r, nodes=[dataclasses.replace(n, reason=reason) for n in r.nodes])
        if r.partition is not None
        else r
        for r in rows
    ]
    cells = fleet_cells(rows, compact=room < 120, currency="USD")
    measured = cell_widths(FleetTable.keys_of(), visible_cells(cells, expanded))
    natural = {k: max(len(label), measured.get(k, 0)) for k, label in COLUMNS}
    return list(fit_columns(FleetTable.keys_of(), natural, room, drop_order=DROP_ORDER))


@pytest.mark.parametrize("room", [116, 78])
def test_a_collapsed_partitions_long_drain_reason_leaves_no_column_out(
    slurm_lab: Path,  # noqa: F811
    room: int,
) -> None:
    assert len(REASON) == 55
    without = columns(slurm_lab, room, "", set())
    assert columns(slurm_lab, room, REASON, set()) == without
    # expanded, the reason is cut at NODE_STATE_CELLS: the state column stays in
    assert "state" in columns(slurm_lab, room, REASON, {"hpc"})
