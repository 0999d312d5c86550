"""Accounting against hand-computed cases: prices x allocation x time, plus measured energy."""

from __future__ import annotations

import pytest

from lepton_tui.economics.costs import gpu_utilization, settle_attempt
from lepton_tui.economics.prices import allocation_rate, prices_at, set_prices
from lepton_tui.economics.report import cost_report
from lepton_tui.errors import ValidationError
from tests.economics.helpers import (
    T0,
    UTC,
    H,
    add_host,
    add_power_samples,
    run_attempt,
    submit,
)


def report(ledger, since, until, by, now):
    return cost_report(ledger, since, until, by, now=now, tz=UTC)


def test_per_resource_lab_prices(ledger, clock) -> None:
    add_host(ledger, "gpu1")
    set_prices(ledger, None, cpu_hour=0.05, gpu_hour=2.0, gb_hour=0.01)
    job = submit(ledger, clock, cpus=4, mem_mb=16 * 1024, gpus=1)
    run_attempt(ledger, clock, job, "gpu1", T0 + H, T0 + 3 * H, gpu_ids=(0,))
    rep = report(ledger, T0, T0 + 24 * H, "user", T0 + 24 * H)
    # 2 h x (4 x 0.05 + 1 x 2.0 + 16 GB x 0.01) = 2 x 2.36
    assert rep.rows[0].key == "alice"
    assert rep.rows[0].cost == pytest.approx(4.72)
    assert rep.rows[0].gpu_hours == pytest.approx(2.0)
    assert rep.rows[0].cpu_hours == pytest.approx(8.0)
    assert rep.total.attempts == 1


def test_price_change_in_the_middle_of_a_job(ledger, clock) -> None:
    add_host(ledger, "gpu1")  # 32 CPUs, 256 GB, 8 GPUs
    set_prices(ledger, "gpu1", per_hour=8.0)
    job = submit(ledger, clock, cpus=8, mem_mb=64 * 1024, gpus=2)  # a quarter of the host
    token = run_attempt(ledger, clock, job, "gpu1", T0, None, gpu_ids=(0, 1))
    clock.now = T0 + H
    set_prices(ledger, "gpu1", per_hour=16.0)
    clock.now = T0 + 3 * H
    ledger.transition_attempt(token, "succeeded", job_state="succeeded", exit_code=0)
    rep = report(ledger, T0, T0 + 24 * H, "job", T0 + 24 * H)
    # 1 h x 8 x 0.25 + 2 h x 16 x 0.25 = 2 + 8; history is not rewritten
    assert rep.rows[0].cost == pytest.approx(10.0)
    assert settle_attempt(ledger, token) == pytest.approx(10.0)
    stored = ledger.query_one("SELECT cost FROM attempts WHERE token = ?", (token,))
    assert stored["cost"] == pytest.approx(10.0)
    assert prices_at(ledger, "gpu1", T0 + 0.5 * H).per_hour == 8.0
    assert prices_at(ledger, "gpu1").per_hour == 16.0


def test_job_spanning_midnight_splits_by_day(ledger, clock) -> None:
    add_host(ledger, "cpu1", cpus=10, mem_mb=10 * 1024, gpus=0, gpu_mem_mb=0)
    set_prices(ledger, None, cpu_hour=0.5)
    job = submit(ledger, clock, cpus=2, mem_mb=1024)
    run_attempt(ledger, clock, job, "cpu1", T0 + 22 * H, T0 + 26 * H)
    rep = report(ledger, T0, T0 + 48 * H, "day", T0 + 48 * H)
    by_day = {r.key: r.cost for r in rep.rows}
    # 2 CPUs x 0.5 = 1/h: 2 h before midnight, 2 h after
    assert by_day["2026-03-10"] == pytest.approx(2.0)
    assert by_day["2026-03-11"] == pytest.approx(2.0)
    assert rep.total.cost == pytest.approx(4.0)
    assert rep.total.attempts == 1
    # a report window cuts the attempt too
    part = report(ledger, T0 + 25 * H, T0 + 48 * H, "total", T0 + 48 * H)
    assert part.total.cost == pytest.approx(1.0)


def test_requeued_job_is_charged_for_its_lost_attempt(ledger, clock) -> None:
    add_host(ledger, "a", cpus=8, mem_mb=8192, gpus=0, gpu_mem_mb=0)
    add_host(ledger, "b", cpus=8, mem_mb=8192, gpus=0, gpu_mem_mb=0)
    set_prices(ledger, "a", per_hour=4.0)
    set_prices(ledger, "b", per_hour=2.0)
    job = submit(ledger, clock, cpus=8, mem_mb=1024, retries=1)  # whole host (dominant CPU share)
    lost = run_attempt(ledger, clock, job, "a", T0, T0 + H, final="lost")
    assert ledger.get_job(job)["state"] == "queued"
    run_attempt(ledger, clock, job, "b", T0 + 2 * H, T0 + 4 * H)
    rep = report(ledger, T0, T0 + 24 * H, "job", T0 + 24 * H)
    assert rep.rows[0].cost == pytest.approx(4.0 + 4.0)
    assert rep.rows[0].attempts == 2
    assert settle_attempt(ledger, lost) == pytest.approx(4.0)
    by_host = {r.key: r for r in report(ledger, T0, T0 + 4 * H, "host", T0 + 4 * H).rows}
    assert by_host["a"].cost == pytest.approx(4.0)
    # idle: host a 4 h x 4 = 16, 4 used; host b 4 h x 2 = 8, 4 used
    assert by_host["a"].idle_cost == pytest.approx(12.0)
    assert by_host["b"].idle_cost == pytest.approx(4.0)


def test_energy_at_the_electricity_price(ledger, clock) -> None:
    add_host(ledger, "owned", gpus=4, gpu_mem_mb=4 * 80 * 1024)
    set_prices(ledger, None, power_kwh=0.30)
    add_power_samples(ledger, "owned", 0, T0, T0 + 2 * H, 300.0)
    add_power_samples(ledger, "owned", 1, T0, T0 + 2 * H, 100.0)
    add_power_samples(ledger, "owned", 2, T0, T0 + 2 * H, 250.0)
    whole = submit(ledger, clock, gpus=2)
    share = submit(ledger, clock, gpu_mem_mb=40 * 1024, user="bob")  # half of GPU 2
    t1 = run_attempt(ledger, clock, whole, "owned", T0, T0 + 2 * H, gpu_ids=(0, 1))
    t2 = run_attempt(ledger, clock, share, "owned", T0, T0 + 2 * H, gpu_ids=(2,))
    # whole: (300 + 100) W x 2 h = 800 Wh = 0.24; share: 250 W x 2 h x 1/2 = 250 Wh = 0.075
    assert settle_attempt(ledger, t1) == pytest.approx(0.24)
    assert settle_attempt(ledger, t2) == pytest.approx(0.075)
    rep = {r.key: r for r in report(ledger, T0, T0 + 24 * H, "user", T0 + 24 * H).rows}
    assert rep["alice"].energy_kwh == pytest.approx(0.8)
    assert rep["alice"].cost == pytest.approx(0.24)
    assert rep["bob"].cost == pytest.approx(0.075)


def test_energy_measured_for_a_running_attempt(ledger, clock) -> None:
    add_host(ledger, "owned", gpus=1, gpu_mem_mb=80 * 1024)
    set_prices(ledger, None, power_kwh=0.5)
    add_power_samples(ledger, "owned", 0, T0, T0 + H, 200.0)
    job = submit(ledger, clock, gpus=1)
    run_attempt(ledger, clock, job, "owned", T0, None, gpu_ids=(0,))
    rep = report(ledger, T0, T0 + H, "total", T0 + H)
    assert rep.total.cost == pytest.approx(0.1)  # 200 W x 1 h x 0.5


def test_user_and_project_rollups_match_the_hand_sum(ledger, clock) -> None:
    add_host(ledger, "h1", cpus=16, mem_mb=64 * 1024, gpus=4, gpu_mem_mb=4 * 24 * 1024)
    add_host(ledger, "h2", cpus=16, mem_mb=64 * 1024, gpus=0, gpu_mem_mb=0)
    set_prices(ledger, "h1", gpu_hour=1.5, cpu_hour=0.1)
    set_prices(ledger, "h2", per_hour=3.2)
    cases = [  # user, project, cpus, mem GB, gpus, host, start h, end h
        ("alice", "vision", 4, 8, 1, "h1", 0, 2),
        ("alice", "nlp", 2, 4, 0, "h2", 1, 4),
        ("bob", "vision", 8, 32, 2, "h1", 0.5, 1.5),
        ("carol", "nlp", 16, 16, 0, "h2", 2, 5),
    ]
    expected_user: dict[str, float] = {}
    expected_project: dict[str, float] = {}
    for user, project, cpus, mem, gpus, host, s, e in cases:
        job = submit(
            ledger, clock, user=user, project=project, cpus=cpus, mem_mb=mem * 1024, gpus=gpus
        )
        run_attempt(ledger, clock, job, host, T0 + s * H, T0 + e * H, gpu_ids=tuple(range(gpus)))
        if host == "h1":
            rate = 1.5 * gpus + 0.1 * cpus
        else:
            rate = 3.2 * min(1.0, max(cpus / 16, mem / 64))
        cost = rate * (e - s)
        expected_user[user] = expected_user.get(user, 0.0) + cost
        expected_project[project] = expected_project.get(project, 0.0) + cost
    now = T0 + 6 * H
    by_user = {r.key: r.cost for r in report(ledger, T0, now, "user", now).rows}
    by_project = {r.key: r.cost for r in report(ledger, T0, now, "project", now).rows}
    assert by_user == pytest.approx(expected_user)
    assert by_project == pytest.approx(expected_project)


def test_rate_agrees_with_the_scheduler_cost_model() -> None:
    model = pytest.importorskip("scheduler.model")
    cap = model.Resources(32, 256 * 1024, 8, 8 * 80 * 1024)
    for req in [
        model.Resources(8, 64 * 1024, 2, 0),
        model.Resources(1, 200 * 1024, 0, 0),
        model.Resources(2, 4096, 0, 40 * 1024),
    ]:
        for prices in [model.Prices(node_hour=10), model.Prices(cpu_hour=0.1, gpu_hour=2, gb_hour=0.01),
                       model.Prices(node_hour=3, gpu_hour=1)]:  # fmt: skip
            from lepton_tui.economics.prices import PriceSet

            ours = allocation_rate(
                PriceSet(prices.node_hour, prices.cpu_hour, prices.gpu_hour, prices.gb_hour),
                {"cpus": req.cpus, "mem_mb": req.mem_mb, "gpus": req.gpus,
                 "gpu_mem_mb": req.gpu_mem_mb},
                {"cpus": cap.cpus, "mem_mb": cap.mem_mb, "gpus": cap.gpus,
                 "gpu_mem_mb": cap.gpu_mem_mb},
            )  # fmt: skip
            assert ours == pytest.approx(model.allocation_price_per_hour(req, cap, prices))


def test_host_price_replaces_lab_default_but_power_falls_back(ledger, clock) -> None:
    add_host(ledger, "rented")
    add_host(ledger, "owned")
    set_prices(ledger, None, gpu_hour=1.0, power_kwh=0.2)
    set_prices(ledger, "rented", per_hour=5.0)
    rented, owned = prices_at(ledger, "rented"), prices_at(ledger, "owned")
    assert (rented.per_hour, rented.gpu_hour, rented.power_kwh) == (5.0, 0.0, 0.2)
    assert (owned.per_hour, owned.gpu_hour, owned.power_kwh) == (0.0, 1.0, 0.2)
    clock.now += 10
    set_prices(ledger, "rented", use_lab_default=True)
    assert prices_at(ledger, "rented").gpu_hour == 1.0
    assert prices_at(ledger, "rented", T0 + 5).per_hour == 5.0


def test_idle_cost_is_unallocated_capacity_times_price(ledger, clock) -> None:
    add_host(ledger, "gpu1", added_at=T0)
    set_prices(ledger, "gpu1", per_hour=8.0)
    job = submit(ledger, clock, cpus=8, mem_mb=64 * 1024, gpus=2)
    run_attempt(ledger, clock, job, "gpu1", T0 + H, T0 + 5 * H, gpu_ids=(0, 1))
    rep = report(ledger, T0, T0 + 10 * H, "host", T0 + 10 * H)
    # 10 h x 8 = 80 of which 4 h x 2 = 8 allocated
    assert rep.idle_cost == pytest.approx(72.0)
    assert rep.rows[0].idle_cost == pytest.approx(72.0)
    util = {
        (r["host"], r["gpu"]): r for r in gpu_utilization(ledger, T0, T0 + 10 * H, now=T0 + 10 * H)
    }
    assert util[("gpu1", 0)]["allocated_pct"] == pytest.approx(40.0)
    assert util[("gpu1", 2)]["allocated_pct"] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_hour": -1}, "between 0"),
        ({"gpu_hour": "cheap"}, "not a number"),
        ({"cpu_hour": "nan"}, "finite"),
        ({}, "no price given"),
    ],
)
def test_bad_prices_write_nothing(ledger, kwargs, message) -> None:
    add_host(ledger, "gpu1")
    before = ledger.query_one("SELECT COUNT(*) AS n FROM prices")["n"]
    with pytest.raises(ValidationError, match=message):
        set_prices(ledger, "gpu1", **kwargs)
    assert ledger.query_one("SELECT COUNT(*) AS n FROM prices")["n"] == before


def test_range_that_ends_before_it_starts(ledger) -> None:
    with pytest.raises(ValidationError, match="ends before it starts"):
        cost_report(ledger, T0 + H, T0, "user", now=T0 + 2 * H)


def test_settled_and_live_reports_agree(ledger, clock, monkeypatch) -> None:
    """Reports read settled attempts from their stored cost: the numbers must not move."""
    from lepton_tui.economics.report import settle_ended

    add_host(ledger, "rent", gpus=4, gpu_mem_mb=4 * 80 * 1024)
    add_host(ledger, "own", gpus=4, gpu_mem_mb=4 * 80 * 1024)
    set_prices(ledger, None, gpu_hour=1.0, cpu_hour=0.05, power_kwh=0.2)
    set_prices(ledger, "rent", per_hour=9.0)
    add_power_samples(ledger, "own", 0, T0, T0 + 40 * H, 250.0, step=600)
    add_power_samples(ledger, "rent", 1, T0, T0 + 40 * H, 120.0, step=600)
    plan = [  # user, project, host, gpus, start h, end h, final
        ("alice", "vision", "own", 1, 1, 3, "succeeded"),
        ("bob", "nlp", "rent", 2, 2, 30, "succeeded"),  # spans midnight and a price change
        ("alice", "nlp", "own", 0, 5, 6, "lost"),
        ("carol", "vision", "rent", 1, 20, 21, "failed"),
        ("carol", "vision", "own", 1, 22, None, None),  # still running
    ]
    for user, project, host, gpus, s, e, final in plan:
        job = submit(ledger, clock, user=user, project=project, cpus=4, gpus=gpus, retries=1)
        clock.now = T0 + s * H
        run_attempt(ledger, clock, job, host, T0 + s * H, None if e is None else T0 + e * H,
                    gpu_ids=tuple(range(gpus)) if host == "own" else tuple(range(1, 1 + gpus)),
                    final=final or "succeeded")  # fmt: skip
        if s == 2:
            clock.now = T0 + 10 * H
            set_prices(ledger, "rent", per_hour=12.0)
            set_prices(ledger, None, power_kwh=0.3)
    now = T0 + 40 * H
    # the electricity price changes at 10 h: windows after it read settled attempts' stored cost
    windows = [(T0, now), (T0 + 2.5 * H, T0 + 22.5 * H), (T0 + 11 * H, now),
               (T0 + 10 * H, T0 + 23 * H)]  # fmt: skip
    before = {
        (by, w): cost_report(ledger, *w, by, now=now, tz=UTC, rollup=False).as_dict()
        for by in ("user", "project", "host", "day")
        for w in windows
    }
    assert settle_ended(ledger, now) == 4
    from lepton_tui import ledger_econ as economics

    calls = []
    real = economics._settled_sql
    monkeypatch.setattr(economics, "_settled_sql", lambda *a: calls.append(a) or real(*a))
    for key, expected in before.items():
        got = cost_report(ledger, *key[1], key[0], now=now, tz=UTC, rollup=False).as_dict()
        assert [r["key"] for r in got["rows"]] == [r["key"] for r in expected["rows"]], key
        for g, e in zip(got["rows"], expected["rows"], strict=True):
            assert g == pytest.approx(e), (key, g, e)
        assert got["total"] == pytest.approx(expected["total"]), key
        assert got["idle_cost"] == pytest.approx(expected["idle_cost"]), key
    assert calls  # the stored-cost path was taken


@pytest.mark.parametrize(
    ("chunk_days", "power_change"), [(32, False), (2, False), (1, True), (32, True)]
)
def test_daily_rollup_gives_the_same_report(
    ledger, clock, monkeypatch, chunk_days: int, power_change: bool
) -> None:
    """Whole settled days come from the roll-up; the numbers equal a report from the attempts,
    however many days the roll-up builds at a time, and when the electricity price changes (the
    days around it are sliced whole, not summed from stored costs)."""
    import lepton_tui.economics.rollup as report
    from lepton_tui.economics.report import settle_ended

    monkeypatch.setattr(report, "ROLLUP_CHUNK_DAYS", chunk_days)

    add_host(ledger, "rent", gpus=4, gpu_mem_mb=4 * 80 * 1024)
    add_host(ledger, "own", cpus=16, mem_mb=65536, gpus=2, gpu_mem_mb=2 * 24 * 1024)
    set_prices(ledger, None, gpu_hour=1.0, cpu_hour=0.05, power_kwh=0.2)
    set_prices(ledger, "rent", per_hour=9.0)
    add_power_samples(ledger, "own", 0, T0, T0 + 120 * H, 250.0, step=1800)
    plan = [  # user, project, host, gpus, start h, end h, final
        ("alice", "vision", "own", 1, 1, 3, "succeeded"),
        ("bob", "nlp", "rent", 2, 20, 50, "succeeded"),  # two midnights, a price change
        ("alice", "nlp", "own", 0, 30, 31, "lost"),
        ("carol", "vision", "rent", 1, 47, 49, "failed"),
        ("dave", "vision", "own", 1, 70, 75, "succeeded"),
        ("carol", "nlp", "own", 1, 100, None, None),  # still running: later days stay live
    ]
    for user, project, host, gpus, s, e, final in plan:
        job = submit(ledger, clock, user=user, project=project, cpus=2, gpus=gpus, retries=1)
        run_attempt(ledger, clock, job, host, T0 + s * H, None if e is None else T0 + e * H,
                    gpu_ids=tuple(range(gpus)), final=final or "succeeded")  # fmt: skip
        if s == 20:
            clock.now = T0 + 30 * H
            set_prices(ledger, "rent", per_hour=12.0)
        if s == 47 and power_change:
            clock.now = T0 + 60 * H
            set_prices(ledger, "own", power_kwh=0.3)
    now = T0 + 110 * H
    settle_ended(ledger, now)
    windows = [(T0, now), (T0 + 5 * H, T0 + 90 * H), (T0 - 48 * H, T0 + 200 * H)]
    for by in ("user", "project", "host", "day", "total"):
        for w in windows:
            live = cost_report(ledger, *w, by, now=now, tz=UTC, rollup=False).as_dict()
            rolled = cost_report(ledger, *w, by, now=now, tz=UTC).as_dict()
            assert [r["key"] for r in rolled["rows"]] == [r["key"] for r in live["rows"]], (by, w)
            for a, b in zip(rolled["rows"], live["rows"], strict=True):
                assert a == pytest.approx(b), (by, w, a, b)
            assert rolled["total"] == pytest.approx(live["total"]), (by, w)
            assert rolled["idle_by_host"] == pytest.approx(live["idle_by_host"]), (by, w)
    days = ledger.query("SELECT label FROM econ_rollup_days ORDER BY day")
    # whole days up to the start of the running attempt (2026-03-14 04:00) are rolled up
    assert [d["label"] for d in days] == [f"2026-03-{d:02d}" for d in range(8, 14)]


def test_console_summary_and_series(ledger, clock) -> None:
    from lepton_tui.economics.costs import cost_series, cost_summary

    add_host(ledger, "h", cpus=10, mem_mb=10240, gpus=0, gpu_mem_mb=0, added_at=T0)
    set_prices(ledger, "h", cpu_hour=1.0)
    done = submit(ledger, clock, user="alice", project="vision", cpus=2)
    run_attempt(ledger, clock, done, "h", T0 + 1 * H, T0 + 3 * H)  # 4
    live = submit(ledger, clock, user="bob", project="nlp", cpus=3)
    run_attempt(ledger, clock, live, "h", T0 + 4 * H, None)  # 3/h, running
    now = T0 + 6 * H  # Tuesday 06:00 UTC
    clock.now = now
    s = cost_summary(ledger, now, tz=UTC)
    assert s["today"] == pytest.approx(4 + 6)
    assert s["week"] == pytest.approx(10) and s["month"] == pytest.approx(10)
    assert s["rate_per_hour"] == pytest.approx(3.0)
    assert s["by_user"] == pytest.approx({"alice": 4.0, "bob": 6.0})
    assert s["by_project"] == pytest.approx({"vision": 4.0, "nlp": 6.0})
    assert s["idle_today"] == pytest.approx(6 * 10 - 10)  # 10 CPUs x 1/h for 6 h, 10 used
    series = cost_series(ledger, T0, now, 2 * H, now=now)
    assert [p["cost"] for p in series] == pytest.approx([2.0, 2.0, 6.0])
    assert sum(p["idle"] for p in series) == pytest.approx(50.0)
    with pytest.raises(ValidationError):
        cost_series(ledger, T0, now, 0.0)


def test_attempt_on_a_removed_host_is_priced_by_its_recorded_capacity(tmp_path, clock) -> None:
    # `hosts rm --force` while a job runs: the dispatcher loses and settles the attempt after the
    # host row is gone; the removal event keeps the capacity, so the job pays its share, not the
    # whole host
    from lepton_tui.service import Service

    svc = Service.open(tmp_path, user="root", clock=clock)
    led = svc.ledger
    add_host(led, "gpu1")  # 32 CPUs, 256 GB, 8 GPUs
    set_prices(led, "gpu1", per_hour=8.0)
    job = submit(led, clock, cpus=8, mem_mb=64 * 1024, gpus=2)  # a quarter of the host
    token = run_attempt(led, clock, job, "gpu1", T0, None, gpu_ids=(0, 1))
    clock.now = T0 + 2 * H
    svc.remove_host("gpu1", force=True)
    led.transition_attempt(token, "lost", job_state="failed", reason="host gpu1 was removed")
    assert settle_attempt(led, token) == pytest.approx(2 * 8.0 * 0.25)
    rep = report(led, T0, T0 + 24 * H, "host", T0 + 24 * H)
    assert rep.rows[0].key == "gpu1" and rep.rows[0].cost == pytest.approx(4.0)
    svc.close()


def test_gpu_share_on_a_removed_host_pays_its_share_of_the_energy(tmp_path, clock) -> None:
    from lepton_tui.service import Service

    svc = Service.open(tmp_path, user="root", clock=clock)
    led = svc.ledger
    add_host(led, "owned", gpus=1, gpu_mem_mb=80 * 1024)
    set_prices(led, None, power_kwh=0.5)
    add_power_samples(led, "owned", 0, T0, T0 + 2 * H, 300.0)
    job = submit(led, clock, gpu_mem_mb=40 * 1024)  # half of the GPU
    token = run_attempt(led, clock, job, "owned", T0, None, gpu_ids=(0,))
    clock.now = T0 + 2 * H
    svc.remove_host("owned", force=True)
    led.transition_attempt(token, "lost", job_state="failed", reason="host owned was removed")
    # 300 W x 2 h x 1/2 = 300 Wh at 0.5 per kWh
    assert settle_attempt(led, token) == pytest.approx(0.15)
    svc.close()


def test_idle_rate_now_by_hand(ledger, clock) -> None:
    from lepton_tui.economics.costs import idle_rate, priced_hosts, running_rate

    add_host(ledger, "gpu1", gpus=4, gpu_mem_mb=4 * 80 * 1024)  # 32 CPUs, 256 GB, 4 GPUs
    set_prices(ledger, None, cpu_hour=0.05, gpu_hour=2.0, gb_hour=0.01, power_kwh=0.5)
    job = submit(ledger, clock, cpus=4, mem_mb=16 * 1024, gpus=1)
    run_attempt(ledger, clock, job, "gpu1", T0, None, gpu_ids=(0,))
    halves = [submit(ledger, clock, cpus=0, mem_mb=0, gpu_mem_mb=40 * 1024) for _ in range(2)]
    for h in halves:  # two half-GPU jobs on GPU 2
        run_attempt(ledger, clock, h, "gpu1", T0, None, gpu_ids=(2,))
    clock.now = T0 + H
    add_power_samples(ledger, "gpu1", 0, T0 + H - 300, T0 + H, 300.0)  # held by the job
    add_power_samples(ledger, "gpu1", 1, T0 + H - 300, T0 + H, 100.0)  # idle, drawing 100 W
    add_power_samples(ledger, "gpu1", 2, T0 + H - 300, T0 + H, 200.0)  # shared by two halves
    add_power_samples(ledger, "gpu1", 3, T0, T0 + 600, 90.0)  # too old to count
    # whole host 32 x 0.05 + 4 x 2.0 + 256 x 0.01 = 12.16; held: the job 4 x 0.05 + 2.0 + 16 x
    # 0.01 = 2.36 and the halves 0.5 x 2.0 each; GPU 1's 100 W at 0.5 per kWh = 0.05
    assert idle_rate(ledger) == pytest.approx(12.16 - 2.36 - 2.0 + 0.05)
    # running: allocation 2.36 + 2 x 1.0, power 300 W + 200 W (the shared GPU paid once) at 0.5
    assert running_rate(ledger) == pytest.approx(4.36 + 0.15 + 0.10)
    assert priced_hosts(ledger) == 1
    with ledger.tx():
        ledger.execute("UPDATE hosts SET state = 'down' WHERE name = 'gpu1'")
    # a host that is down still costs its price, as cost reports charge it
    assert idle_rate(ledger) == pytest.approx(12.16 - 2.36 - 2.0 + 0.05)


def test_energy_of_many_running_attempts_in_a_fixed_number_of_statements(ledger, clock) -> None:
    from lepton_tui.economics.energy import measure_energy_many, measure_energy_wh

    for name in ("a", "b"):
        add_host(ledger, name, gpus=4, gpu_mem_mb=4 * 80 * 1024)
        for g in range(4):
            add_power_samples(ledger, name, g, T0, T0 + 2 * H, 100.0 + 50 * g, step=300.0)
    with ledger.tx():  # a compacted hour on top, as the dispatcher's downsampling leaves it
        ledger.execute(
            "INSERT INTO samples (host, gpu_index, at, resolution, power_w, n) "
            "VALUES ('a', 1, ?, 3600, 400.0, 30)",
            (T0 + 1800,),
        )
    attempts = []
    for k in range(12):
        host = "ab"[k % 2]
        whole = k % 3 != 0
        job = submit(ledger, clock, gpus=1 if whole else 0, gpu_mem_mb=0 if whole else 20 * 1024)
        token = run_attempt(ledger, clock, job, host, T0 + 60 * k, None, gpu_ids=(k % 4,))
        attempts.append(ledger.query_one("SELECT * FROM attempts WHERE token = ?", (token,)))
    now = T0 + 2 * H
    before = ledger.queries
    many = measure_energy_many(ledger, attempts, now)
    assert ledger.queries - before <= 3  # not one per attempt and GPU
    for a in attempts:
        assert many[a["id"]] == pytest.approx(measure_energy_wh(ledger, a, now))
    assert sum(many.values()) > 0
