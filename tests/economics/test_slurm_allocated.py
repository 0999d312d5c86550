"""Slurm attempts' charges without a cluster: what Slurm allocated (`alloc_*`, the poll's
tres-alloc) is charged instead of the request, in Python and in the cost engine's SQL alike;
and an attempt sent to a Slurm host is charged from Slurm's start only, even before sbatch
returned its job id (migration 18)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lepton_tui.economics.costs import (
    attempt_cost,
    gpu_utilization,
    running_rate,
    settle_attempt,
)
from lepton_tui.economics.prices import allocated_text, set_prices
from lepton_tui.economics.replay import ledger_workload
from lepton_tui.economics.waste import find_waste
from lepton_tui.ledger import ECON_ROLLUP_TABLES, Ledger, open_ledger
from tests.economics.helpers import (
    T0,
    Clock,
    H,
    add_host,
    add_power_samples,
    submit,
)
from tests.economics.test_slurm_prices import _report_totals as _totals
from tests.economics.test_slurm_prices import add_slurm_host


def test_a_gpu_job_is_charged_its_gpus_where_slurm_does_not_count_them(
    ledger: Ledger, clock: Clock
) -> None:
    # a cluster whose AccountingStorageTRES lacks gres/gpu (Slurm's default): tres-alloc says
    # cpu and mem only, so the poll notes GPUs as unknown and the request's GPU is charged
    add_slurm_host(ledger)
    set_prices(ledger, "hpc", cpu_hour=1, gpu_hour=10)
    clock.now = T0 + H
    job = submit(ledger, clock, cpus=1, mem_mb=64, gpus=1)
    ledger.start_attempt(job, "hpc", "t1", ())
    ledger.mark_submitted("t1", "/tmp/lepton/t1", "301")
    ledger.transition_attempt("t1", "running", job_state="running", started_at=clock.now)
    ledger.note_attempt_alloc({"t1": (2.0, 64, None)})  # a CPU rounded up, GPUs not counted
    clock.now = T0 + 2 * H
    rate = 2 * 1 + 1 * 10
    assert running_rate(ledger) == pytest.approx(rate)
    assert attempt_cost(ledger, "t1")[0] == pytest.approx(rate)
    assert _totals(ledger, T0, clock.now, clock.now) == pytest.approx([rate] * 4)  # SQL
    att = ledger.attempt_by_token("t1")
    assert att["alloc_gpus"] is None
    assert allocated_text(att) == "Slurm allocated 2 CPUs (asked 1)"


def test_what_slurm_allocated_is_charged_and_the_request_is_kept(
    ledger: Ledger, clock: Clock
) -> None:
    add_slurm_host(ledger)
    set_prices(ledger, "hpc", cpu_hour=1, gb_hour=0.5, gpu_hour=10)
    clock.now = T0 + H
    job = submit(ledger, clock, cpus=0.5, mem_mb=1024, gpu_mem_mb=4096)  # a GPU share by memory
    ledger.start_attempt(job, "hpc", "t1", ())
    ledger.mark_submitted("t1", "/tmp/lepton/t1", "301")
    ledger.transition_attempt("t1", "running", job_state="running", started_at=clock.now)
    # the poll read Slurm's allocation: a whole CPU, 2 GiB, a whole GPU
    ledger.note_attempt_alloc({"t1": (1.0, 2048, 1)})
    clock.now = T0 + 2 * H
    rate = 1 * 1 + 2 * 0.5 + 1 * 10  # not 0.5 CPU, 1 GiB and a share of a GPU
    assert running_rate(ledger) == pytest.approx(rate)
    assert attempt_cost(ledger, "t1")[0] == pytest.approx(rate)
    assert _totals(ledger, T0, clock.now, clock.now) == pytest.approx([rate] * 4)  # SQL
    att = ledger.attempt_by_token("t1")
    assert (att["cpus"], att["mem_mb"], att["gpus"]) == (0.5, 1024, 0)  # placement's request
    assert (
        allocated_text(att)
        == "Slurm allocated 1 CPU (asked 0.5), 2048 MB (asked 1024), 1 GPU (asked 0)"
    )
    ledger.transition_attempt("t1", "succeeded", job_state="succeeded", exit_code=0)
    assert settle_attempt(ledger, "t1") == pytest.approx(rate)
    later = T0 + 3 * 24 * H
    clock.now = later
    assert _totals(ledger, T0, later, later) == pytest.approx([rate] * 4)  # from the roll-up too
    # a settled attempt is never rewritten (its cost, and the roll-up's days, stand)
    ledger.note_attempt_alloc({"t1": (64.0, 2048, 1)})
    assert ledger.attempt_by_token("t1")["alloc_cpus"] == 1.0


def test_an_attempt_with_nothing_from_slurm_is_charged_as_requested(
    ledger: Ledger, clock: Clock
) -> None:
    add_host(ledger, "ssh1")
    set_prices(ledger, "ssh1", cpu_hour=1)
    job = submit(ledger, clock, cpus=3)
    ledger.start_attempt(job, "ssh1", "s1", ())
    clock.now = T0 + H
    att = ledger.attempt_by_token("s1")
    assert (att["alloc_cpus"], att["on_slurm"], allocated_text(att)) == (None, 0, "")
    assert attempt_cost(ledger, "s1")[0] == pytest.approx(3.0)


def test_a_slurm_attempt_is_not_charged_before_sbatch_returns(ledger: Ledger, clock: Clock) -> None:
    add_slurm_host(ledger)
    set_prices(ledger, "hpc", node_hour=10)
    clock.now = T0 + H
    job = submit(ledger, clock, cpus=2)
    ledger.start_attempt(job, "hpc", "n1", ())  # the intent: sbatch has not answered yet
    assert ledger.attempt_by_token("n1")["on_slurm"] == 1
    clock.now = T0 + 2 * H  # an hour with no Slurm job id (sbatch slow, the dispatcher away)
    assert running_rate(ledger) == 0.0
    assert attempt_cost(ledger, "n1") == (0.0, 0.0)
    assert _totals(ledger, T0, clock.now, clock.now) == [0.0] * 4
    # Slurm refuses it: it ends without ever starting, and costs nothing
    ledger.transition_attempt("n1", "failed", job_state="failed", reason="Slurm refused it")
    assert settle_attempt(ledger, "n1") == 0.0
    clock.now = T0 + 3 * 24 * H
    assert _totals(ledger, T0, clock.now, clock.now) == [0.0] * 4


def test_migration_18_marks_older_slurm_attempts_and_drops_the_cost_roll_up(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    clock = Clock()
    led = Ledger(path, clock=clock)
    add_slurm_host(led)
    add_host(led, "ssh1")
    for host, token in (("hpc", "old1"), ("ssh1", "old2")):
        led.start_attempt(submit(led, clock), host, token, ())
    set_prices(led, "hpc", node_hour=5)
    led.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE attempts SET on_slurm = 0")  # as before migration 18 knew of it
    conn.execute("UPDATE hosts SET price_node_hour = NULL")
    # both ended unstarted, charged from their intent as before migration 18
    conn.execute("UPDATE attempts SET cost = 4.0, ended_at = created_at + 10")
    # ssh1 removed and its name reused for a partition later: its old attempt stays SSH's
    conn.execute(
        "UPDATE hosts SET slurm_json = (SELECT slurm_json FROM hosts WHERE name = 'hpc'), "
        "added_at = added_at + 3600 WHERE name = 'ssh1'"
    )
    for table in ECON_ROLLUP_TABLES:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        marks = ", ".join("?" * len(cols))
        conn.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", [1] * len(cols))
    conn.execute("PRAGMA user_version = 17")
    conn.commit()
    conn.close()
    led = open_ledger(path)
    try:
        marked = {
            r["token"]: r["on_slurm"] for r in led.query("SELECT token, on_slurm FROM attempts")
        }
        assert marked == {"old1": 1, "old2": 0}
        costs = {r["token"]: r["cost"] for r in led.query("SELECT token, cost FROM attempts")}
        assert costs == {"old1": 0.0, "old2": 4.0}  # a Slurm attempt that never started: free
        hosts = {h["name"]: h["price_node_hour"] for h in led.hosts()}
        assert hosts == {"hpc": 5.0, "ssh1": None}  # from the price row in force
        for table in ECON_ROLLUP_TABLES:
            assert led.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"] == 0, table
    finally:
        led.close()


def test_gpu_use_and_replay_leave_out_slurm_queue_time(ledger: Ledger, clock: Clock) -> None:
    """A Slurm attempt that Slurm forgot while it waited (lost, never started) held nothing, and
    a retry that waited an hour in Slurm's queue held its GPU from Slurm's start only: the GPU
    use panel and `replay`'s actual row count as the charge does."""
    add_slurm_host(ledger)
    set_prices(ledger, "hpc", gpu_hour=10)
    clock.now = T0 + H
    job = submit(ledger, clock, gpus=1, retries=1)
    ledger.start_attempt(job, "hpc", "q1", (0,))
    ledger.mark_submitted("q1", "/tmp/lepton/q1", "401")
    clock.now = T0 + 2 * H  # gone from Slurm before it ran: lost, never started
    ledger.transition_attempt("q1", "lost", job_state="queued")
    ledger.start_attempt(job, "hpc", "q2", (0,))
    ledger.mark_submitted("q2", "/tmp/lepton/q2", "402")
    clock.now = T0 + 3 * H  # an hour in Slurm's queue, then an hour running
    ledger.transition_attempt("q2", "running", job_state="running", started_at=clock.now)
    clock.now = T0 + 4 * H
    (held,) = [g for g in gpu_utilization(ledger, T0 + H, clock.now) if g["host"] == "hpc"
               and g["gpu"] == 0]  # fmt: skip
    assert held["allocated_pct"] == pytest.approx(100 / 3)  # 1 of these 3 hours
    ledger.transition_attempt("q2", "succeeded", job_state="succeeded", exit_code=0)
    clock.now = T0 + 5 * H
    _workload, recorded, skipped = ledger_workload(ledger, T0, clock.now)
    assert skipped == 0
    (ran,) = recorded.attempts  # the lost attempt held nothing
    assert ran.end_s - ran.start_s == pytest.approx(H)
    (rec,) = recorded.finished
    assert rec.end_s - rec.start_s == pytest.approx(H)


def test_a_gpu_job_waiting_in_slurms_queue_is_not_idle_waste(ledger: Ledger, clock: Clock) -> None:
    add_slurm_host(ledger)
    set_prices(ledger, "hpc", gpu_hour=10)
    job = submit(ledger, clock, gpus=1)
    ledger.start_attempt(job, "hpc", "w1", (0,))
    ledger.mark_submitted("w1", "/tmp/lepton/w1", "501")
    add_power_samples(ledger, "hpc", 0, T0, T0 + H, 60.0, util=0.0)  # the GPU idle meanwhile
    clock.now = T0 + H
    assert find_waste(ledger, threshold=5, after_s=1800) == []  # it holds nothing yet
    ledger.transition_attempt("w1", "running", job_state="running", started_at=T0 + H)
    add_power_samples(ledger, "hpc", 0, T0 + H, T0 + 2 * H, 60.0, util=0.0)
    clock.now = T0 + 2 * H
    (found,) = find_waste(ledger, threshold=5, after_s=1800)  # an hour running, idle
    assert (found.host, found.gpu) == ("hpc", 0)


def test_the_job_screen_gives_the_allocation_beside_the_request() -> None:
    from rich.console import Console

    from lepton_tui.screens.job import attempts_table

    att = {"attempt_no": 1, "host": "hpc", "gpu_ids": [], "state": "running", "reason": None,
           "started_at": T0, "created_at": T0, "ended_at": None, "exit_code": None,
           "cpus": 1.0, "mem_mb": 64, "gpus": 0, "alloc_cpus": 2.0, "alloc_mem_mb": 64,
           "alloc_gpus": 0}  # fmt: skip
    console = Console(width=100, record=True)
    console.print(attempts_table([att], T0 + H, "USD"))
    assert "#1: Slurm allocated 2 CPUs (asked 1)" in console.export_text()
    console.print(attempts_table([{**att, "alloc_cpus": None}], T0 + H, "USD"))
    assert console.export_text().count("Slurm allocated") == 0  # export_text clears the record


def test_gpu_use_counts_the_whole_gpu_slurm_allocated_as_cost_does(
    ledger: Ledger, clock: Clock
) -> None:
    """A share of a GPU by memory that Slurm rounded up to a whole GPU is held whole: the GPU
    use panel and measured energy count what cost charges, not the request's share."""
    add_slurm_host(ledger)
    ledger.execute("UPDATE hosts SET gpu_mem_mb = 8 * 80000 WHERE name = 'hpc'")
    set_prices(ledger, "hpc", gpu_hour=10)
    clock.now = T0 + H
    job = submit(ledger, clock, gpu_mem_mb=20000)  # a quarter of an 80 GB GPU
    ledger.start_attempt(job, "hpc", "t1", (0,))
    ledger.mark_submitted("t1", "/tmp/lepton/t1", "301")
    ledger.transition_attempt("t1", "running", job_state="running", started_at=clock.now)
    clock.now = T0 + 2 * H
    (quarter,) = [g for g in gpu_utilization(ledger, T0 + H, clock.now) if g["gpu"] == 0]
    assert quarter["allocated_pct"] == pytest.approx(25.0)  # as asked, before Slurm says more
    ledger.note_attempt_alloc({"t1": (1.0, 1024, 1)})  # Slurm gave the whole GPU
    (whole,) = [g for g in gpu_utilization(ledger, T0 + H, clock.now) if g["gpu"] == 0]
    assert whole["allocated_pct"] == pytest.approx(100.0)
    assert attempt_cost(ledger, "t1")[0] == pytest.approx(10.0)  # the whole GPU's hour
    add_power_samples(ledger, "hpc", 0, T0 + H, clock.now, 400.0)
    assert attempt_cost(ledger, "t1")[1] == pytest.approx(400.0, rel=0.05)  # whole GPU's Wh


def test_the_cost_panels_memo_sees_an_allocation_noted_later(ledger: Ledger, clock: Clock) -> None:
    """The console's money totals are kept between refreshes while nothing they depend on
    changed: an allocation a later poll notes (a job rounded up to a whole node) is such a
    change, so the next refresh reads the totals again rather than keep the request's."""
    from lepton_tui import views
    from lepton_tui.fleet_view import ViewMemo

    add_slurm_host(ledger)
    set_prices(ledger, "hpc", cpu_hour=1)
    clock.now = T0 + H
    job = submit(ledger, clock, cpus=1)
    ledger.start_attempt(job, "hpc", "t1", ())
    ledger.mark_submitted("t1", "/tmp/lepton/t1", "301")
    ledger.transition_attempt("t1", "running", job_state="running", started_at=clock.now)
    clock.now = T0 + 2 * H
    memo = ViewMemo()
    assert views.cost_panel(ledger, clock.now, memo).week == pytest.approx(1.0)
    ledger.note_attempt_alloc({"t1": (128.0, 1024, None)})  # the whole node, seen a tick later
    clock.now += 1  # well within the totals' refresh period
    assert views.cost_panel(ledger, clock.now, memo).week == pytest.approx(128.0, rel=1e-3)
