"""Read models: what the panels show, computed from a real ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui import fleet_view, views
from lepton_tui.service import Service
from tests.tui.data import FIXED_NOW, USER, big_fleet, busy_gpus, many_jobs


@pytest.fixture
def svc(lab: Path):
    s = Service.open(lab, user=USER, clock=lambda: FIXED_NOW)
    yield s
    s.close()


def test_fleet_rows_carry_latest_samples_and_sparklines(svc) -> None:
    rows = {r.name: r for r in fleet_view.fleet(svc.ledger, FIXED_NOW)}
    assert set(rows) == {"gpu-a", "gpu-b", "cpu-c"}
    a = rows["gpu-a"]
    assert [g.index for g in a.gpus] == [0, 1]
    # the last sample (i = 29, wave 0.9): cpu 20 + 45, GPU 0 util (30 + 54) % 100
    assert a.cpu_percent == pytest.approx(65.0)
    assert a.gpus[0].util == pytest.approx(84.0)
    assert len(a.spark) == fleet_view.SPARK_BUCKETS and max(a.spark) > 0
    assert rows["gpu-b"].shown_state == "draining"
    assert rows["cpu-c"].state == "down" and rows["cpu-c"].gpus == [] and rows["cpu-c"].spark == []
    assert (a.running, rows["gpu-b"].running) == (1, 2)


def test_stale_samples_are_not_shown_as_live(svc) -> None:
    later = FIXED_NOW + fleet_view.SAMPLE_FRESH_S + 60
    a = {r.name: r for r in fleet_view.fleet(svc.ledger, later)}["gpu-a"]
    assert a.cpu_percent is None and all(g.util is None for g in a.gpus)


def test_simple_cost_panel_by_hand(svc) -> None:
    # gpu-a $4/h: job 1 holds the whole host for 3 h - 30 s; job 7 half of it for 1 h yesterday.
    # gpu-b $8/h: job 2 holds all memory (1.0) for 2 h - 30 s; job 3 1/8 of it for 30 min - 30 s.
    c = views.simple_cost_panel(svc.ledger, FIXED_NOW)
    h1, h2, h3 = (3 * 3600 - 30) / 3600, (2 * 3600 - 30) / 3600, (1800 - 30) / 3600
    assert c.rate_now == pytest.approx(4 + 8 + 1)
    assert c.today == pytest.approx(4 * h1 + 8 * h2 + 1 * h3)
    assert c.week == pytest.approx(c.today + 2 * 1)
    assert dict(c.by_user) == pytest.approx({"alice": 4 * h1 + 2, "bob": 8 * h2, "carol": h3})
    assert c.by_project[0][0] == "nlp"
    assert c.idle_rate == pytest.approx(0.0)  # both priced hosts are fully held now
    assert c.idle_today == pytest.approx(4 * (14 - h1) + 8 * (14 - h2 - h3 / 8))
    assert (c.hosts, c.priced_hosts) == (3, 2)


def test_cost_panel_is_what_the_cost_command_reports(svc) -> None:
    from lepton_tui.economics.costs import cost_summary

    panel = views.cost_panel(svc.ledger, FIXED_NOW)
    summary = cost_summary(svc.ledger, FIXED_NOW)
    assert panel.source == "economics"
    assert (panel.today, panel.week, panel.rate_now, panel.idle_today) == pytest.approx(
        (summary["today"], summary["week"], summary["rate_per_hour"], summary["idle_today"])
    )
    assert dict(panel.by_user) == pytest.approx(summary["by_user"])
    # on this lab (whole-host prices, no energy price) both ways agree
    simple = views.simple_cost_panel(svc.ledger, FIXED_NOW)
    assert (panel.today, panel.week, panel.rate_now) == pytest.approx(
        (simple.today, simple.week, simple.rate_now)
    )


def test_cost_series_adds_up_to_todays_spend(svc) -> None:
    series = views.cost_series(svc.ledger, FIXED_NOW, span_s=14 * 3600, buckets=14)
    assert sum(series) == pytest.approx(views.cost_panel(svc.ledger, FIXED_NOW).today)
    assert series[:10] == [0.0] * 10 and series[-1] > 0


def test_queue_window_filters_and_sorts(svc) -> None:
    q = views.queue_window(svc.ledger, FIXED_NOW)
    assert [r.id for r in q.rows] == [1, 2, 3, 4, 5, 6]  # running first, then by priority, id
    assert (q.running, q.queued, q.matched) == (3, 3, 6)
    assert q.rows[0].gpu_ids == "0,1" and q.rows[0].host == "gpu-a"
    assert q.rows[4].reason.startswith("waiting: 4 GPUs")
    assert [r.id for r in views.queue_window(svc.ledger, FIXED_NOW, text="bob").rows] == [2, 5]
    assert [r.id for r in views.queue_window(svc.ledger, FIXED_NOW, text="5").rows] == [5]
    assert [r.id for r in views.queue_window(svc.ledger, FIXED_NOW, sort="id").rows][:2] == [6, 5]
    everything = views.queue_window(svc.ledger, FIXED_NOW, all_states=True)
    assert everything.matched == 7
    ended = next(r for r in everything.rows if r.id == 7)
    # an ended job still says where it ran; a queued one names no host
    assert (ended.state, ended.host, ended.gpu_ids) == ("succeeded", "gpu-a", "0")
    assert all(r.host is None for r in everything.rows if r.state == "queued")


def test_why_pending(svc) -> None:
    assert "4 GPUs fit no host now" in views.why_pending(svc.ledger, 5)
    assert views.why_pending(svc.ledger, 1) == "job 1 is running, not pending"
    assert views.why_pending(svc.ledger, 99) == "job 99 does not exist"


def test_a_big_lab_reads_a_window_not_everything(home: Path) -> None:
    """64 hosts x 8 GPUs and 10,000 jobs: the overview reads 60 queue rows and one row per host."""
    s = Service.open(home, user=USER, clock=lambda: FIXED_NOW)
    big_fleet(s.ledger, 64, 8)
    many_jobs(s.ledger, 10_000)
    before = s.ledger.queries
    fleet_view.fleet(s.ledger, FIXED_NOW)
    views.queue_window(s.ledger, FIXED_NOW, limit=60)
    # a fixed number of statements, whatever the size: fleet 4, its stranded column 4, queue 3
    assert s.ledger.queries - before <= 11
    o = views.overview(s.ledger, FIXED_NOW)
    assert len(o.fleet) == 64 and all(len(r.gpus) == 8 for r in o.fleet)
    assert len(o.queue.rows) == 60 and o.queue.matched == 10_000 and o.queue.queued == 10_000
    s.close()


def test_gpu_ranges() -> None:
    assert views.gpu_ranges([7, 0, 1, 2, 3, 4, 5, 6]) == "0-7"
    assert views.gpu_ranges([0, 1, 3, 5, 6, 7]) == "0,1,3,5-7"
    assert views.gpu_ranges([]) == ""


def test_cost_panel_counts_hosts_priced_per_resource(svc) -> None:
    # cpu-c has no flat price; a lab-wide price per core-hour prices it too, so the panel shows
    # costs instead of "no host has a price yet"
    from lepton_tui.economics.prices import set_prices

    assert views.cost_panel(svc.ledger, FIXED_NOW).priced_hosts == 2
    set_prices(svc.ledger, None, cpu_hour=0.05)
    assert views.cost_panel(svc.ledger, FIXED_NOW).priced_hosts == 3


def test_cost_panel_of_a_busy_lab(home: Path) -> None:
    # every GPU runs a job: hosts at $4/h (2 GPUs each), jobs hold half a host each, and the
    # electricity their GPUs draw is charged on top; nothing is idle
    s = Service.open(home, user=USER, clock=lambda: FIXED_NOW)
    big_fleet(s.ledger, 4, 2)
    assert busy_gpus(s.ledger) == 8
    panel = views.cost_panel(s.ledger, FIXED_NOW)
    assert panel.rate_now > 8 * 2.0  # allocation plus energy
    assert panel.idle_rate == pytest.approx(0.0)
    assert panel.priced_hosts == 4
    s.close()
