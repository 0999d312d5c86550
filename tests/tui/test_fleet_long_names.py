"""A host name as long as allowed (63) in the fleet: the name is cut, not the fleet's columns."""

from __future__ import annotations

from pathlib import Path

from lepton_tui.service import Service
from lepton_tui.widgets.fit import fit_columns
from lepton_tui.widgets.fleet import COLUMNS, FleetTable
from tests.tui.conftest import loaded, settled
from tests.tui.data import USER, add_host_row

LONG = "gpu-server-with-a-rather-long-name-for-testing-the-widths-01234"


def test_a_soft_cap_shrinks_before_anything_is_dropped() -> None:
    keys = ["name", "a", "b"]
    natural = {"name": 40, "a": 10, "b": 10}
    # room enough: the name whole
    assert fit_columns(keys, natural, 70, drop_order=["b"], soft_caps={"name": 8}) == natural
    # less room: the name gives up what it must, the others stay
    assert fit_columns(keys, natural, 50, drop_order=["b"], soft_caps={"name": 8}) == {
        "name": 24, "a": 10, "b": 10}  # fmt: skip
    # down to its soft cap; only then is a column left out, and the room it freed goes back
    # to the name (30 cells: the name 16 and a 10, with their padding)
    assert fit_columns(keys, natural, 30, drop_order=["b"], soft_caps={"name": 8}) == {
        "name": 16, "a": 10}  # fmt: skip
    # a name a little over its soft cap, in a room that drops a column: shown whole
    assert fit_columns(keys, {"name": 12, "a": 10, "b": 10}, 30, drop_order=["b"],
                       soft_caps={"name": 8}) == {"name": 12, "a": 10}  # fmt: skip


async def test_fleet_at_80_columns_cuts_a_long_host_name(make_tui, lab: Path) -> None:
    """A 63-character host name once took the fleet's whole width at 80 columns: state, CPU
    and memory were left out for every host."""
    svc = Service.open(lab, user=USER)
    try:
        with svc.ledger.tx():
            add_host_row(svc.ledger, LONG, gpus=0, cpus=8, price=None)
    finally:
        svc.close()
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await settled(pilot)
        fleet = app.screen.query_one(FleetTable)
        assert {"host", "state", "cpu", "mem", "gpus"} <= set(fleet.layout_widths)
        assert fleet.layout_widths["host"] < len(LONG)
        assert fleet.max_scroll_x == 0
        await pilot.resize_terminal(200, 50)
        await loaded(pilot)
        await settled(pilot)
        assert fleet.layout_widths["host"] == len(LONG)  # room enough: the whole name
        assert list(fleet.layout_widths) == [key for key, _ in COLUMNS]
