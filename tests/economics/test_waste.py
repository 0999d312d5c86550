"""Idle allocated GPUs and GPUs busy outside lepton: found with owner and money, notified once."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui.economics.prices import set_prices
from lepton_tui.economics.waste import find_waste, notify_waste
from tests.economics.helpers import (
    T0,
    Clock,
    H,
    add_host,
    add_power_samples,
    make_ledger,
    run_attempt,
    submit,
)


@pytest.fixture
def lab(tmp_path: Path):
    clock = Clock()
    led = make_ledger(tmp_path, clock)
    add_host(led, "g1", cpus=32, mem_mb=256 * 1024, gpus=4, gpu_mem_mb=4 * 81920)
    set_prices(led, "g1", gpu_hour=2.0)
    yield led, clock
    led.close()


def test_idle_allocated_gpu_is_reported_to_its_owner(lab) -> None:
    led, clock = lab
    busy = submit(led, clock, user="alice", gpus=1)
    idle = submit(led, clock, user="bob", gpus=2)
    run_attempt(led, clock, busy, "g1", T0, None, gpu_ids=(0,))
    run_attempt(led, clock, idle, "g1", T0, None, gpu_ids=(1, 2))
    add_power_samples(led, "g1", 0, T0, T0 + H, 300.0, util=95.0)
    add_power_samples(led, "g1", 1, T0, T0 + H, 60.0, util=0.0)
    add_power_samples(led, "g1", 2, T0, T0 + H, 60.0, util=2.0)
    clock.now = T0 + H
    found = find_waste(led, threshold=5, after_s=1800)
    assert [(f.kind, f.gpu, f.job_id, f.user) for f in found] == [
        ("idle_gpu", 1, idle, "bob"),
        ("idle_gpu", 2, idle, "bob"),
    ]
    assert found[0].rate_per_hour == pytest.approx(2.0)
    assert "holds GPU 1 of g1" in found[0].message
    assert notify_waste(led, found) == 2
    assert notify_waste(led, find_waste(led, threshold=5, after_s=1800)) == 0  # once only
    events = led.query("SELECT * FROM events WHERE kind = 'waste.idle_gpu'")
    assert {e["job_id"] for e in events} == {idle}
    # nothing was killed
    assert led.get_job(idle)["state"] == "running"


def test_a_young_attempt_is_not_idle_yet(lab) -> None:
    led, clock = lab
    job = submit(led, clock, gpus=1)
    run_attempt(led, clock, job, "g1", T0 + 0.9 * H, None, gpu_ids=(0,))
    add_power_samples(led, "g1", 0, T0 + 0.9 * H, T0 + H, 60.0, util=0.0)
    clock.now = T0 + H
    assert find_waste(led, threshold=5, after_s=1800) == []


def test_gpu_busy_outside_lepton(lab) -> None:
    led, clock = lab
    add_power_samples(led, "g1", 3, T0, T0 + H, 250.0, util=80.0)
    clock.now = T0 + H
    (f,) = find_waste(led, threshold=5, after_s=1800)
    assert (f.kind, f.gpu, f.job_id) == ("foreign_gpu", 3, None)
    assert "did not start" in f.message
    assert notify_waste(led, [f]) == 1
