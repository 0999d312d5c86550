"""Slurm hosts' prices without a cluster: a host row whose `slurm_json` names a partition, priced
per node-hour, as the cost panel and the cost engine see it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lepton_tui import views
from lepton_tui.economics.costs import priced_hosts
from lepton_tui.economics.prices import set_prices
from lepton_tui.ledger import Ledger
from lepton_tui.widgets.cost import cost_renderable
from lepton_tui.widgets.fit import FitTable
from tests.economics.helpers import T0, Clock, make_ledger


def add_slurm_host(ledger: Ledger, name: str = "hpc", added_at: float = T0) -> None:
    with ledger.tx():
        ledger.insert(
            "hosts",
            {"name": name, "transport": "local", "state": "up", "admin_state": "active",
             "cpus": 128, "mem_mb": 1024000, "gpus": 8, "added_at": added_at,
             "slurm_json": json.dumps({"partition": "gpu"}),
             "slurm_nodes": json.dumps([{"name": "n01"}, {"name": "n02"}])},
        )  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Ledger:
    led = make_ledger(tmp_path, clock)
    yield led
    led.close()


def test_a_host_priced_only_per_node_hour_counts_as_priced(ledger: Ledger, clock: Clock) -> None:
    add_slurm_host(ledger)
    set_prices(ledger, "hpc", node_hour=5)
    clock.now += 60
    assert priced_hosts(ledger) == 1
    panel = views.cost_panel(ledger, clock.now)
    assert (panel.hosts, panel.priced_hosts) == (1, 1)
    shown = cost_renderable(panel)
    assert isinstance(shown, FitTable)  # the rate and spend, not "no host has a price yet"
    assert "Rate now" in [str(label) for label, _ in shown.rows]
