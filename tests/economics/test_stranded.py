"""`cost --waste` counts capacity stranded now: free, but of no use to the queued jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lepton_tui.cli import cli
from lepton_tui.economics.prices import set_prices
from lepton_tui.economics.stranded import stranded_now
from lepton_tui.service import Service
from tests.economics.helpers import T0, Clock, H, add_host, run_attempt, submit

GB = 1024


@pytest.fixture
def lab(home: Path):
    """gpu1: 8 CPUs, 64 GB, 2 GPUs of 16 GB, 7 CPUs and GPU 0 held by a running job.
    cpu1: 16 CPUs, 64 GB, no GPU, idle. down1: like gpu1 but down (never counted)."""
    clock = Clock(T0)
    svc = Service.open(home, clock=clock)
    led = svc.ledger
    add_host(led, "gpu1", cpus=8, mem_mb=64 * GB, gpus=2, gpu_mem_mb=2 * 16 * GB)
    add_host(led, "cpu1", cpus=16, mem_mb=64 * GB, gpus=0, gpu_mem_mb=0)
    add_host(led, "down1", cpus=8, mem_mb=64 * GB, gpus=2, gpu_mem_mb=2 * 16 * GB)
    with led.tx():
        led.execute("UPDATE hosts SET state = 'down' WHERE name = 'down1'")
    set_prices(led, None, gpu_hour=2.0, cpu_hour=0.5, gb_hour=0.01)
    running = submit(led, clock, cpus=7, mem_mb=32 * GB, gpus=1)
    run_attempt(led, clock, running, "gpu1", T0 + 60, None, gpu_ids=(0,))
    clock.now = T0 + H
    yield svc, clock
    svc.close()


def test_nothing_queued_strands_nothing(lab) -> None:
    svc, _ = lab
    got = stranded_now(svc.ledger)
    assert got == {"currency": "USD", "queued": 0, "hosts": [], "gpus": 0.0, "cpus": 0.0,
                   "mem_mb": 0, "per_hour": 0.0}  # fmt: skip


def test_a_gpu_job_that_needs_two_cpus_strands_by_hand(lab) -> None:
    svc, clock = lab
    submit(svc.ledger, clock, cpus=2, mem_mb=8 * GB, gpus=1)
    got = stranded_now(svc.ledger)
    assert got["queued"] == 1
    by_host = {h["host"]: h for h in got["hosts"]}
    # gpu1: 1 CPU and 32 GB free with GPU 1: the job needs 2 CPUs, so the free GPU, the CPU and
    # the memory are all stranded: 1 GPU x 2.0 + 1 CPU x 0.5 + 32 GB x 0.01 = 2.82 an hour
    assert by_host["gpu1"] == {"host": "gpu1", "gpus": 1.0, "cpus": 1.0, "mem_mb": 32 * GB,
                               "gpu_per_hour": 2.0, "cpu_mem_per_hour": 0.82,
                               "per_hour": 2.82}  # fmt: skip
    # cpu1: no GPU, so the job never fits: its 16 CPUs and 64 GB are stranded (8.64 an hour)
    assert by_host["cpu1"]["gpus"] == 0.0 and by_host["cpu1"]["cpus"] == 16.0
    assert by_host["cpu1"]["per_hour"] == pytest.approx(16 * 0.5 + 64 * 0.01)
    assert "down1" not in by_host
    assert [h["host"] for h in got["hosts"]] == ["cpu1", "gpu1"]  # the costliest first
    assert got["gpus"] == 1.0 and got["per_hour"] == pytest.approx(2.82 + 8.64)


def test_a_job_that_fits_strands_nothing_there(lab) -> None:
    svc, clock = lab
    submit(svc.ledger, clock, cpus=1, mem_mb=8 * GB, gpus=1)  # fits gpu1's free GPU and CPU
    by_host = {h["host"]: h for h in stranded_now(svc.ledger)["hosts"]}
    assert "gpu1" not in by_host
    assert by_host["cpu1"]["cpus"] == 16.0  # it still cannot run where there is no GPU


def test_cost_waste_shows_stranded_capacity(lab) -> None:
    svc, clock = lab
    submit(svc.ledger, clock, cpus=2, mem_mb=8 * GB, gpus=1)
    svc.ledger.close()  # the command opens the ledger itself
    out = CliRunner().invoke(cli, ["cost", "--waste", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["stranded"]["gpus"] == 1.0 and len(data["stranded"]["hosts"]) == 2
    out = CliRunner().invoke(cli, ["cost", "--waste"])
    assert out.exit_code == 0, out.output
    assert "Stranded now (free, but of no use to the 1 queued jobs): 1 GPUs" in out.output
    assert "gpu1: 1 GPUs, 1 CPUs, 32.0 GB: 2.82 USD/h" in out.output
