"""The fleet panel's stranded column: free GPU capacity the queued requests cannot use."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui import fleet_view
from lepton_tui.service import Service
from lepton_tui.widgets.fleet import FleetTable, fleet_cells
from tests.tui.conftest import loaded
from tests.tui.data import FIXED_NOW, USER, add_host_row

GB = 1024


def queue(ledger, *, gpus: int = 0, gpu_mem_mb: int = 0, n: int = 1) -> list[int]:
    spec = {"command": "python train.py", "project": "vision", "cpus": 1, "mem_mb": 1024,
            "gpus": gpus, "gpu_mem_mb": gpu_mem_mb, "priority": 0}  # fmt: skip
    with ledger.tx():
        return [ledger.add_job(dict(spec), USER, at=FIXED_NOW - 60) for _ in range(n)]


def run_on(ledger, host: str, gpu: int, *, gpu_mem_mb: int, token: str) -> None:
    (job,) = queue(ledger, gpu_mem_mb=gpu_mem_mb)
    ledger.start_attempt(job, host, token, [gpu], policy="fifo")
    ledger.transition_attempt(token, "running", job_state="running", started_at=FIXED_NOW - 600)


@pytest.fixture
def lab(home: Path) -> Service:
    """n1: 2 GPUs of 80 GB, a 60 GB share running on GPU 0 (20 GB left there), GPU 1 free;
    n2: 2 idle GPUs. Both at 4.00 an hour (2.00 a GPU)."""
    svc = Service.open(home, user=USER, clock=lambda: FIXED_NOW)
    led = svc.ledger
    with led.tx():
        add_host_row(led, "n1", gpus=2, cpus=32, price=4.0)
        add_host_row(led, "n2", gpus=2, cpus=32, price=4.0)
    run_on(led, "n1", 0, gpu_mem_mb=60 * GB, token="share60")
    return svc


def test_stranded_capacity_per_host_for_the_queued_shapes(lab: Service) -> None:
    led = lab.ledger
    assert fleet_view.stranded(led, FIXED_NOW) == {}  # nothing queued: nothing to be stranded for
    # Queued: half 40 GB shares, half whole GPUs. On n1 the 20 GB left of GPU 0 fits neither:
    # a quarter GPU stranded, 0.50 an hour; n2 strands nothing.
    queue(led, gpu_mem_mb=40 * GB)
    queue(led, gpus=1)
    assert fleet_view.stranded(led, FIXED_NOW) == {"n1": (0.25, 0.5, None), "n2": (0.0, 0.0, None)}
    rows = {r.name: r for r in fleet_view.fleet(led, FIXED_NOW)}
    assert (rows["n1"].stranded_gpus, rows["n1"].stranded_per_hour) == (0.25, 0.5)
    cells = dict(fleet_cells(list(rows.values()), currency="USD"))
    stranded = FleetTable.keys_of().index("stranded")
    assert cells["n1"][stranded].plain == "0.25 GPU $0.50/h"
    assert cells["n2"][stranded].plain == "-"


def test_a_remembered_stranded_follows_the_queue(lab: Service) -> None:
    led, memo = lab.ledger, fleet_view.ViewMemo()
    queue(led, gpus=1)  # whole GPUs only: n1's 20 GB left are a quarter GPU none can use
    assert fleet_view.stranded(led, FIXED_NOW, memo) == {
        "n1": (0.25, 0.5, None),
        "n2": (0.0, 0.0, None),
    }
    queue(led, gpu_mem_mb=20 * GB, n=3)  # shares that fit the 20 GB left: less is stranded
    assert fleet_view.stranded(led, FIXED_NOW, memo) == fleet_view.stranded(led, FIXED_NOW)
    assert fleet_view.stranded(led, FIXED_NOW, memo)["n1"][0] < 0.25


def test_free_cpus_are_stranded_where_no_queued_request_fits(lab: Service) -> None:
    led = lab.ledger
    with led.tx():  # a CPU-only host: the queue's GPU jobs can never run there
        add_host_row(led, "c3", gpus=0, cpus=16, price=1.0)
    queue(led, gpus=1)
    got = fleet_view.stranded(led, FIXED_NOW)
    assert got["c3"] == (None, None, 16.0)
    assert got["n2"][2] is None  # a whole GPU fits n2: its CPUs are not stranded
    row = {r.name: r for r in fleet_view.fleet(led, FIXED_NOW)}["c3"]
    cells = dict(fleet_cells([row], currency="USD"))
    assert cells["c3"][FleetTable.keys_of().index("stranded")].plain == "16 CPU"
    queue(led, gpus=0)  # a CPU job fits c3: nothing stranded there any more
    assert fleet_view.stranded(led, FIXED_NOW)["c3"] == (None, None, None)


async def test_the_fleet_panel_shows_the_stranded_column(make_tui, lab: Service) -> None:
    queue(lab.ledger, gpus=1)
    lab.close()
    app = make_tui()
    async with app.run_test(size=(200, 50)) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(FleetTable)
        assert "stranded" in table.layout_widths
        stranded = list(table.layout_widths).index("stranded")
        assert table.get_row("n1")[stranded].plain == "0.25 GPU $0.50/h"
