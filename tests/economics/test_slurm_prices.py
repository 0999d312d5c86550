"""Slurm hosts' prices without a cluster: a host row whose `slurm_json` names a partition, priced
per node-hour, as the cost panel and the cost engine see it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lepton_tui import views
from lepton_tui.economics.costs import (
    attempt_cost,
    cost_summary,
    priced_hosts,
    running_rate,
    settle_attempt,
)
from lepton_tui.economics.prices import prices_at, set_prices
from lepton_tui.economics.report import cost_report, settle_ended
from lepton_tui.ledger import Ledger
from lepton_tui.service import Service
from lepton_tui.widgets.cost import cost_renderable
from lepton_tui.widgets.fit import FitTable
from tests.economics.helpers import T0, Clock, H, add_host, submit


def add_slurm_host(ledger: Ledger, name: str = "hpc", added_at: float = T0) -> None:
    with ledger.tx():
        ledger.insert(
            "hosts",
            {"name": name, "transport": "local", "state": "up", "admin_state": "active",
             "cpus": 128, "mem_mb": 1024000, "gpus": 8, "added_at": added_at,
             "slurm_json": json.dumps({"partition": "gpu"}),
             "slurm_nodes": json.dumps([{"name": "n01"}, {"name": "n02"}])},
        )  # fmt: skip


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


def _slurm_attempt(ledger: Ledger, clock: Clock, slurm_id: str) -> str:
    """A job sent to Slurm now: its attempt `starting`, with Slurm's job id, pending there."""
    job = submit(ledger, clock, cpus=2)
    token = f"j{job}a1"
    ledger.start_attempt(job, "hpc", token, ())
    ledger.mark_submitted(token, f"/tmp/lepton/{token}", slurm_id)
    return token


def _report_totals(ledger: Ledger, since: float, until: float, now: float) -> list[float]:
    return [
        cost_report(ledger, since, until, by, now=now, rollup=rollup).total.cost
        for by in ("user", "day")
        for rollup in (True, False)
    ]


def test_a_slurm_job_is_charged_from_its_start_not_while_it_waits_in_slurms_queue(
    ledger: Ledger, clock: Clock
) -> None:
    add_slurm_host(ledger)
    set_prices(ledger, "hpc", node_hour=10)
    clock.now = T0 + H
    never = _slurm_attempt(ledger, clock, "101")  # pending, then cancelled
    ran = _slurm_attempt(ledger, clock, "102")  # pending for an hour, then runs an hour
    clock.now = T0 + 1.5 * H  # both pending in Slurm's queue: nothing is charged yet
    assert running_rate(ledger) == 0.0
    assert attempt_cost(ledger, never) == attempt_cost(ledger, ran) == (0.0, 0.0)
    assert _report_totals(ledger, T0, clock.now, clock.now) == [0.0] * 4
    clock.now = T0 + 2 * H
    ledger.transition_attempt(ran, "running", job_state="running", started_at=clock.now)
    clock.now = T0 + 2.5 * H  # one node for half an hour so far
    assert running_rate(ledger) == pytest.approx(10.0)
    assert attempt_cost(ledger, ran)[0] == pytest.approx(5.0)
    assert cost_summary(ledger, clock.now)["rate_per_hour"] == pytest.approx(10.0)
    assert _report_totals(ledger, T0, clock.now, clock.now) == pytest.approx([5.0] * 4)
    clock.now = T0 + 3 * H
    ledger.transition_attempt(never, "cancelled", job_state="cancelled")
    ledger.transition_attempt(ran, "succeeded", job_state="succeeded", exit_code=0)
    later = T0 + 3 * 24 * H
    # unsettled (sliced in the cost engine's SQL), then settled (summed from the stored cost)
    assert _report_totals(ledger, T0, later, later) == pytest.approx([10.0] * 4)
    assert (settle_attempt(ledger, never), settle_attempt(ledger, ran)) == pytest.approx((0, 10))
    clock.now = later
    assert _report_totals(ledger, T0, later, later) == pytest.approx([10.0] * 4)
    assert cost_report(ledger, T0, later, "job", now=later).total.attempts == 1


def test_an_ssh_attempt_is_still_charged_from_its_intent(ledger: Ledger, clock: Clock) -> None:
    # launching on an SSH host holds its resources: charged from the intent, as before
    add_host(ledger, "ssh1")
    set_prices(ledger, "ssh1", per_hour=8)
    clock.now = T0 + H
    job = submit(ledger, clock, cpus=32)
    ledger.start_attempt(job, "ssh1", "s1", ())
    clock.now = T0 + 1.5 * H
    assert running_rate(ledger) == pytest.approx(8.0)
    assert attempt_cost(ledger, "s1")[0] == pytest.approx(4.0)
    assert _report_totals(ledger, T0, clock.now, clock.now) == pytest.approx([4.0] * 4)


def test_a_node_hour_price_does_not_outlive_its_host(tmp_path: Path) -> None:
    clock = Clock()
    svc = Service.open(tmp_path, user="labowner", clock=clock)
    try:
        row = svc.add_host("hpc", address="127.0.0.9", user="lab")
        svc.ledger.set_slurm_target(row["id"], {"cpus": 64.0}, json.dumps({"partition": "gpu"}))
        svc.set_prices("hpc", node_hour=5, power_kwh=0.3)
        clock.now = T0 + H
        svc.remove_host("hpc")
        clock.now = T0 + 2 * H
        svc.add_host("hpc", address="127.0.0.9", user="lab")  # an SSH host, the same name
        clock.now = T0 + 3 * H
        now = prices_at(svc.ledger, "hpc")
        assert (now.node_hour, now.power_kwh) == (0.0, 0.3)  # only the node-hour price goes
        assert priced_hosts(svc.ledger) == 1
        # the old host's history keeps it, up to the new host's arrival
        assert prices_at(svc.ledger, "hpc", T0 + 1.5 * H).node_hour == 5.0
    finally:
        svc.close()


def test_bulk_settling_stores_nothing_for_a_slurm_job_cancelled_while_pending(
    ledger: Ledger, clock: Clock
) -> None:
    add_slurm_host(ledger)
    set_prices(ledger, "hpc", node_hour=10)
    clock.now = T0 + H
    never = _slurm_attempt(ledger, clock, "201")
    clock.now = T0 + 3 * H
    ledger.transition_attempt(never, "cancelled", job_state="cancelled")
    assert settle_ended(ledger) == 1
    assert ledger.attempt_by_token(never)["cost"] == 0.0


def test_the_cost_chart_charges_no_slurm_queue_time(ledger: Ledger, clock: Clock) -> None:
    """The cost screen's chart charges as the panel beside it does: nothing for a Slurm job
    still waiting in Slurm's queue, and from its start once it runs."""
    add_slurm_host(ledger)
    set_prices(ledger, "hpc", per_hour=10)
    clock.now += 60
    token = _slurm_attempt(ledger, clock, "901")
    clock.now += 4 * H
    assert sum(views.cost_series(ledger, clock.now)) == 0.0
    assert views.cost_panel(ledger, clock.now).today == 0.0
    ledger.execute("UPDATE attempts SET state = 'running', started_at = ? WHERE token = ?",
                   (clock.now - H, token))  # fmt: skip
    assert sum(views.cost_series(ledger, clock.now)) > 0.0


def test_the_cost_chart_and_simple_panel_charge_nothing_before_sbatch_returns(
    ledger: Ledger, clock: Clock
) -> None:
    """An attempt sent to Slurm whose sbatch has not answered yet (no Slurm job id) holds
    nothing: the chart and the flat-price panel charge it as the cost engine does, and once it
    runs they charge what Slurm allocated (a CPU request rounded up to the node's 64)."""
    add_slurm_host(ledger)
    set_prices(ledger, "hpc", per_hour=64)
    clock.now += 60
    job = submit(ledger, clock, cpus=1)
    ledger.start_attempt(job, "hpc", "t1", ())  # the intent, before sbatch
    clock.now += 4 * H
    assert sum(views.cost_series(ledger, clock.now)) == 0.0
    assert views.simple_cost_panel(ledger, clock.now).today == 0.0
    ledger.mark_submitted("t1", "/tmp/lepton/t1", "902")
    ledger.execute("UPDATE attempts SET state = 'running', started_at = ? WHERE token = ?",
                   (clock.now - H, "t1"))  # fmt: skip
    host_cpus = ledger.query_one("SELECT cpus FROM hosts WHERE name = ?", ("hpc",))["cpus"]
    ledger.note_attempt_alloc({"t1": (float(host_cpus), 1024, None)})  # the whole node
    assert views.simple_cost_panel(ledger, clock.now).today == pytest.approx(64.0)
    assert sum(views.cost_series(ledger, clock.now)) == pytest.approx(64.0)


def test_an_older_ledgers_cost_rollup_is_summed_again(tmp_path: Path) -> None:
    """Migration 17: the roll-up's cached days were summed when a Slurm job waiting in Slurm's
    queue was still charged; an older ledger drops them, and the next report sums them again."""
    import sqlite3

    from lepton_tui.ledger import ECON_ROLLUP_TABLES, open_ledger

    path = tmp_path / "ledger.db"
    open_ledger(path).close()
    conn = sqlite3.connect(path)
    for table in ECON_ROLLUP_TABLES:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        marks = ", ".join("?" * len(cols))
        conn.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", [1] * len(cols))
    conn.execute("PRAGMA user_version = 16")  # before migration 17
    conn.commit()
    conn.close()
    led = open_ledger(path)
    for table in ECON_ROLLUP_TABLES:
        assert led.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"] == 0, table
    led.close()


def test_the_policy_and_the_fleets_stranded_column_see_a_node_hour_price(
    ledger: Ledger, clock: Clock
) -> None:
    """A partition priced only per node-hour is not free to the cost-aware policy nor to the
    fleet's stranded column: it costs its nodes x the price an hour, as in replay."""
    from lepton_tui import fleet_view
    from lepton_tui.cluster_view import build_view
    from scheduler.model import JobRequest, Resources
    from scheduler.registry import make_policy

    add_slurm_host(ledger)  # two nodes as its last poll saw them: 128 CPUs, 8 GPUs
    with ledger.tx():
        ledger.execute("UPDATE hosts SET gpu_mem_mb = ? WHERE name = 'hpc'", (8 * 80 * 1024,))
    add_host(ledger, "ssh1", cpus=128, mem_mb=1024000, gpus=8)  # alike, but free
    set_prices(ledger, "hpc", node_hour=5)
    clock.now += 60
    hosts = ledger.hosts()
    view = build_view(hosts, [], ["hpc", "ssh1"], clock.now)
    prices = {n.id: n.price_per_hour for n in view.nodes}
    assert prices == {"hpc": 10.0, "ssh1": 0.0}  # 2 nodes x 5
    # the cost-aware policy sends a job where it costs less (the unpriced SSH host)
    policy = make_policy("backfill", cost_weight=1.0)
    (placed,) = policy.decide(view, [JobRequest(1, Resources(4, 1024, 1), 3600.0)], clock.now)
    assert placed.node_id == "ssh1"
    # the fleet: a job holds every CPU of the partition, a queued one needs a CPU with its GPU:
    # its 8 free GPUs are stranded, at the partition's price (10 an hour, 1.25 a GPU)
    job = submit(ledger, clock, cpus=128, mem_mb=1024)
    ledger.start_attempt(job, "hpc", "hog", ())
    ledger.transition_attempt("hog", "running", job_state="running", started_at=clock.now)
    with ledger.tx():
        ledger.execute("UPDATE hosts SET state = 'down' WHERE name = 'ssh1'")
    submit(ledger, clock, cpus=1, mem_mb=1024, gpus=1)
    gpus, per_hour, _cpus = fleet_view.stranded(ledger, clock.now)["hpc"]
    assert (gpus, per_hour) == (8.0, pytest.approx(10.0))


def test_cost_waste_prices_stranded_cpus_of_a_node_hour_partition(
    ledger: Ledger, clock: Clock
) -> None:
    """A CPU partition priced per node-hour where no queued job fits (they all want a GPU): its
    free CPUs are stranded at its price, not for free."""
    from lepton_tui.economics.stranded import stranded_now

    with ledger.tx():
        ledger.insert(
            "hosts",
            {"name": "cpus", "transport": "local", "state": "up", "admin_state": "active",
             "cpus": 64, "mem_mb": 256000, "gpus": 0, "added_at": T0,
             "slurm_json": json.dumps({"partition": "cpu"}),
             "slurm_nodes": json.dumps([{"name": "c1"}, {"name": "c2"}])},
        )  # fmt: skip
    set_prices(ledger, "cpus", node_hour=3)
    clock.now += 60
    submit(ledger, clock, cpus=1, mem_mb=1024, gpus=1)
    (row,) = stranded_now(ledger, clock.now)["hosts"]
    assert (row["host"], row["cpus"], row["gpus"]) == ("cpus", 64.0, 0.0)
    assert row["cpu_mem_per_hour"] == pytest.approx(6.0)  # all of it: 2 nodes x 3


def test_a_partition_that_reports_no_gpu_memory_still_shows_its_stranded_gpus(
    ledger: Ledger, clock: Clock
) -> None:
    """Slurm hands out whole GPUs and the host row records no GPU memory (0): a free GPU there
    is still a whole free GPU, so GPUs the queue cannot reach are stranded, not "0"."""
    from lepton_tui import fleet_view
    from lepton_tui.economics.stranded import stranded_now

    add_slurm_host(ledger)  # 128 CPUs, 8 GPUs, gpu_mem_mb as Slurm leaves it
    assert ledger.hosts()[0]["gpu_mem_mb"] in (0, None)
    set_prices(ledger, "hpc", node_hour=5)
    clock.now += 60
    job = submit(ledger, clock, cpus=128, mem_mb=1024, gpus=2)
    ledger.start_attempt(job, "hpc", "hog", (0, 1))
    ledger.transition_attempt("hog", "running", job_state="running", started_at=clock.now)
    submit(ledger, clock, cpus=1, mem_mb=1024, gpus=1)  # needs a CPU beside its GPU: none left
    gpus, per_hour, _cpus = fleet_view.stranded(ledger, clock.now)["hpc"]
    assert (gpus, per_hour) == (6.0, pytest.approx(7.5))  # 10 an hour, 1.25 a GPU
    (row,) = stranded_now(ledger, clock.now)["hosts"]
    assert (row["host"], row["gpus"]) == ("hpc", 6.0)
    # with a free CPU the queued job fits: nothing is stranded
    ledger.transition_attempt("hog", "succeeded", job_state="succeeded", exit_code=0)
    gpus, _per_hour, _cpus = fleet_view.stranded(ledger, clock.now)["hpc"]
    assert gpus == 0.0
