"""GPUs used by processes lepton did not start ("outside use"), marked in the overview's fleet
panel and on the hosts screen: a marker with a count per host, and the fleet's count in the
panel's title. The fixed lab's gpu-b holds memory on GPUs 0, 1 and 3 that no lepton job holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from lepton_tui.service import Service
from lepton_tui.widgets.fleet import FleetPanel, FleetTable
from tests.tui.conftest import loaded, settled, text_of, wait_for
from tests.tui.data import FIXED_NOW, USER


def _host_cell(app, name: str) -> str:
    return str(app.screen.query_one(FleetTable).get_row(name)[0])


async def test_the_overview_marks_gpus_used_outside_lepton(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert _host_cell(app, "gpu-b") == "gpu-b ⚠3"
        assert _host_cell(app, "gpu-a") == "gpu-a"  # its GPUs hold what lepton's job holds
        assert _host_cell(app, "cpu-c") == "cpu-c"
        title = str(app.screen.query_one(FleetPanel).border_title)
        assert "⚠3 GPUs used outside lepton" in title


async def test_a_lepton_job_on_the_gpu_is_not_outside_use(make_tui, lab: Path) -> None:
    svc = Service.open(lab, user=USER, clock=lambda: FIXED_NOW)
    with svc.ledger.tx():  # lepton starts a job on gpu-b's GPU 3: its memory is lepton's now
        job = svc.ledger.add_job({"command": "python t.py", "cpus": 1, "mem_mb": 1024,
                                  "gpus": 1}, USER, at=FIXED_NOW - 60)  # fmt: skip
    svc.ledger.start_attempt(job, "gpu-b", "tok-outside", [3], policy="fifo")
    svc.close()
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert _host_cell(app, "gpu-b") == "gpu-b ⚠2"
        assert "⚠2 GPUs used outside lepton" in str(app.screen.query_one(FleetPanel).border_title)


async def test_the_hosts_screen_marks_them_and_says_which(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen.id == "hosts")
        await loaded(pilot)
        table = app.screen.query_one(FleetTable)
        assert _host_cell(app, "gpu-b") == "gpu-b ⚠3"
        assert "⚠3 GPUs used outside lepton" in str(app.screen.query_one(FleetPanel).border_title)
        table.move_cursor(row=table.get_row_index("gpu-b"))
        await pilot.pause()
        details = text_of(app.screen.query_one("#host-details", Static))
        lines = {line.split()[1]: line for line in details.splitlines() if line.startswith("GPU")}
        assert "in use outside lepton" in lines["0"] and "in use outside lepton" in lines["3"]
        assert "outside" not in lines["2"]  # bob's job holds GPU 2


@pytest.mark.parametrize("size", [(120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_hosts_screen_snapshot(snap_compare, make_tui, lab: Path, size) -> None:
    async def run_before(pilot) -> None:
        await loaded(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: pilot.app.screen.id == "hosts")
        await loaded(pilot)
        table = pilot.app.screen.query_one(FleetTable)
        table.move_cursor(row=table.get_row_index("gpu-b"))
        await settled(pilot)

    assert snap_compare(make_tui(), terminal_size=size, run_before=run_before)


def test_the_marker_crosses_the_lab_socket(lab: Path) -> None:
    """Lab mode: the console reads the fleet over the socket, as JSON."""
    import json

    from lepton_tui import fleet_view
    from lepton_tui.screen_data import from_wire, to_wire

    svc = Service.open(lab, user=USER, clock=lambda: FIXED_NOW)
    rows = fleet_view.fleet(svc.ledger, FIXED_NOW)
    svc.close()
    (gpu_b,) = [r for r in rows if r.name == "gpu-b"]
    assert gpu_b.outside_gpus == (0, 1, 3)
    back = from_wire(fleet_view.FleetRow, json.loads(json.dumps(to_wire(gpu_b))))
    assert back == gpu_b
