"""The cost, budget, price commands through click, on a real ledger under LEPTON_HOME."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lepton_tui.cli import cli
from lepton_tui.economics.prices import set_prices
from lepton_tui.service import Service
from tests.economics.helpers import Clock, run_attempt

H = 3600.0


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def lab(home: Path):
    """Two hosts with prices and three finished jobs, all in the last few hours."""
    now = time.time()
    clock = Clock(now - 6 * H)  # prices apply from when they are set: set them before the jobs
    svc = Service.open(home, clock=clock)
    led = svc.ledger
    svc.add_host(
        "h1",
        address="127.0.0.2",
        price_per_hour=None,
        capacity={"cpus": 16, "mem_mb": 65536, "gpus": 4, "gpu_mem_mb": 4 * 24576},
    )
    svc.add_host("h2", address="127.0.0.3", price_per_hour=3.2,
                 capacity={"cpus": 16, "mem_mb": 65536, "gpus": 0, "gpu_mem_mb": 0})  # fmt: skip
    set_prices(led, "h1", gpu_hour=1.5, cpu_hour=0.1)
    clock.now = now - 5 * H
    jobs = [
        ("alice", "vision", 4, 1, "h1", 0, 2),
        ("bob", "vision", 8, 0, "h2", 1, 2),
        ("alice", "nlp", 16, 0, "h2", 2, 3),
    ]
    for user, project, cpus, gpus, host, s, e in jobs:
        with led.tx():
            job = led.add_job({"command": "true", "project": project, "cpus": cpus,
                               "mem_mb": 1024, "gpus": gpus}, user, at=clock.now)  # fmt: skip
        t0 = now - 5 * H
        run_attempt(led, clock, job, host, t0 + s * H, t0 + e * H, gpu_ids=tuple(range(gpus)))
    svc.close()
    # alice: 2 h x (1.5 + 0.4) + 1 h x 3.2 = 7.0; bob: 1 h x 3.2 x 0.5 = 1.6
    return {"alice": 7.0, "bob": 1.6, "vision": 3.8 + 1.6, "nlp": 3.2}


def test_cost_by_user_and_project_match_the_hand_sum(lab) -> None:
    out = invoke("cost", "--since", "1d", "--by", "user", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert {r["key"]: r["cost"] for r in data["rows"]} == pytest.approx(
        {"alice": lab["alice"], "bob": lab["bob"]}
    )
    assert data["idle_cost"] > 0
    out = invoke("cost", "--since", "1d", "--by", "project", "--json")
    assert {r["key"]: r["cost"] for r in json.loads(out.output)["rows"]} == pytest.approx(
        {"vision": lab["vision"], "nlp": lab["nlp"]}
    )
    table = invoke("cost", "--since", "1d", "--by", "host")
    assert table.exit_code == 0
    assert "Idle cost" in table.output and "h2" in table.output


def test_cost_csv(lab) -> None:
    out = invoke("cost", "--since", "1d", "--by", "user", "--csv")
    rows = list(csv.DictReader(io.StringIO(out.output)))
    assert rows[0]["user"] == "alice"
    assert float(rows[0]["cost"]) == pytest.approx(lab["alice"])
    assert rows[-1]["user"] == "total"


def test_budget_holds_a_job_shown_in_queue(lab, home: Path) -> None:
    out = invoke("budget", "set", "--project", "vision", "--amount", "5", "--hard")
    assert out.exit_code == 0, out.output
    svc = Service.open(home)
    job = svc.submit(command="python train.py", project="vision")
    from lepton_tui.economics.budgets import apply_budget_holds

    held = apply_budget_holds(svc.ledger)
    svc.close()
    if not held:  # the month turned during the last five hours: nothing spent this month
        pytest.skip("month boundary")
    assert held[job].startswith("over budget")
    queue = invoke("queue")
    assert "over budget" in queue.output
    assert "monthly budget" in queue.output  # the warning line
    listing = json.loads(invoke("budget", "ls", "--json").output)
    assert listing[0]["level"] == "over" and listing[0]["hard"] is True
    assert invoke("budget", "rm", "--project", "vision").exit_code == 0
    svc = Service.open(home)
    assert apply_budget_holds(svc.ledger) == {}
    assert svc.get_job(job)["reason"] == "waiting for the scheduler"
    svc.close()


def test_price_ls_and_history(lab) -> None:
    assert invoke("price", "set", "--gpu-hour", "2", "--power-kwh", "0.3").exit_code == 0
    data = json.loads(invoke("price", "ls", "--json").output)
    by_host = {p["host"]: p for p in data["prices"]}
    assert by_host[None]["gpu_hour"] == 2.0
    assert by_host["h1"]["gpu_hour"] == 1.5 and by_host["h1"]["power_kwh"] == 0.3
    assert by_host["h2"]["per_hour"] == 3.2
    history = json.loads(invoke("price", "ls", "--history", "--json").output)["prices"]
    assert len(history) == 3
    assert invoke("price", "set", "--currency", "eur", "--cost-weight", "0.5").exit_code == 0
    data = json.loads(invoke("price", "ls", "--json").output)
    assert data["currency"] == "EUR" and data["cost_weight"] == 0.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["price", "set", "--host", "h1", "--gpu-hour", "-2"], "between 0"),
        (["price", "set", "--gpu-hour", "two"], "not a number"),
        (["price", "set", "--currency", "XYZ", "--gpu-hour", "9"], "unknown currency"),
        (["price", "set", "--cost-weight", "-1", "--gpu-hour", "9"], "cost weight"),
        (["price", "set", "--host", "nope", "--gpu-hour", "9"], "does not exist"),
        (["price", "set"], "nothing to set"),
        (["budget", "set", "--project", "ghost", "--amount", "10"], "unknown project"),
        (["budget", "set", "--project", "vision", "--amount", "-1"], "between 0"),
        (["budget", "set", "--project", "vision"], "exactly one of --amount"),
        (["cost", "--since", "2026-03-05", "--until", "2026-03-01"], "ends before it starts"),
        (["cost", "--since", "last tuesday"], "is not a date"),
        (["cost", "--by", "moon"], "is not one of"),
        (["cost", "--since", "999999d"], "more than 100 years"),
        (["cost", "--waste", "--csv"], "drop --csv"),
        (["cost", "--waste", "--since", "garbage"], "drop --since"),
        (["price", "set", "--host", "h2", "--per-hour", "1", "--cpu-hour", "2"], "not both"),
    ],
)
def test_bad_input_one_line_nothing_written(lab, home: Path, args, message) -> None:
    svc = Service.open(home)
    before = svc.ledger.query_one(
        "SELECT (SELECT COUNT(*) FROM prices) + (SELECT COUNT(*) FROM budgets) + "
        "(SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM settings) AS n"
    )["n"]
    svc.close()
    out = CliRunner().invoke(cli, args)
    assert out.exit_code in (1, 2)
    assert message in out.output
    assert "Traceback" not in out.output
    assert len(out.output.strip().splitlines()) == 1
    svc = Service.open(home)
    after = svc.ledger.query_one(
        "SELECT (SELECT COUNT(*) FROM prices) + (SELECT COUNT(*) FROM budgets) + "
        "(SELECT COUNT(*) FROM events) + (SELECT COUNT(*) FROM settings) AS n"
    )["n"]
    svc.close()
    assert after == before


def test_switching_price_kind_drops_the_other(lab) -> None:
    """A host moved from a flat price to per-resource prices is never charged both ways."""
    assert invoke("price", "set", "--host", "h2", "--gpu-hour", "2").exit_code == 0
    by_host = {p["host"]: p for p in json.loads(invoke("price", "ls", "--json").output)["prices"]}
    assert by_host["h2"]["gpu_hour"] == 2.0 and not by_host["h2"]["per_hour"]
    assert invoke("price", "set", "--host", "h2", "--per-hour", "4").exit_code == 0
    by_host = {p["host"]: p for p in json.loads(invoke("price", "ls", "--json").output)["prices"]}
    assert by_host["h2"]["per_hour"] == 4.0 and not by_host["h2"]["gpu_hour"]


def test_probe_timeout_must_be_positive(lab) -> None:
    out = CliRunner().invoke(cli, ["hosts", "probe", "h1", "--timeout", "-1"])
    assert out.exit_code == 2 and "--timeout" in out.output and "Traceback" not in out.output


def test_csv_cells_never_start_a_formula() -> None:
    from lepton_tui.cli.cost import csv_cell

    assert [csv_cell(v) for v in ("=HYPERLINK(1)", "+1", "-x", "@a", "alice", -1.5, 3)] == [
        "'=HYPERLINK(1)", "'+1", "'-x", "'@a", "alice", -1.5, 3,
    ]  # fmt: skip
