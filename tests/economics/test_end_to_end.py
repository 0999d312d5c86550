"""Through the loopback sshd hosts: jobs run, `cost` matches the hand sum, a budget holds a job,
`replay` prints its table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lepton_tui.cli import cli
from lepton_tui.economics import set_prices
from lepton_tui.service import Service

pytestmark = [pytest.mark.slow]

dispatcher_mod = pytest.importorskip("lepton_tui.dispatch.loop")
helpers = pytest.importorskip("tests.dispatch.helpers")


def invoke(*args: str):
    out = CliRunner().invoke(cli, list(args))
    assert out.exit_code == 0, out.output
    return out.output


@pytest.fixture(params=["local", pytest.param("ssh", marks=pytest.mark.ssh)])
def two_hosts(request, home: Path, tmp_path: Path):
    """Two hosts of 4 CPUs and 8 GB: this machine twice, or two loopback sshd hosts."""
    admin = Service.open(home)
    if request.param == "local":
        names = helpers.add_local_hosts(admin, tmp_path, 2, cpus=4, mem_mb=8192)
    else:
        hosts = request.getfixturevalue("sshbed")(2)
        helpers.add_bed_hosts(admin, hosts, root=tmp_path, cpus=4, mem_mb=8192)
        names = [h.name for h in hosts]
    yield admin, names
    admin.close()


def test_cost_budget_and_replay_after_real_jobs(two_hosts) -> None:
    from lepton_tui.dispatch.hostpool import HostPool

    admin, (a, b) = two_hosts
    home = admin.home
    # big prices so a second of work is worth cents: a flat host and a per-resource host
    set_prices(admin.ledger, a, per_hour=3600.0)
    set_prices(admin.ledger, b, cpu_hour=900.0, gb_hour=36.0)
    users = {"alice": "vision", "bob": "nlp"}
    for user, project in users.items():
        svc = Service.open(home, user=user)
        for i in range(3):
            svc.submit(command=f"sleep 0.{3 + i}", project=project, cpus=1 + i % 2, mem="1G")
        svc.close()
    d = dispatcher_mod.Dispatcher(admin, pool=HostPool(admin.known_hosts), poll_timeout_s=10)
    assert d.acquire()
    try:
        helpers.tick_until(d, lambda: helpers.all_ended(admin), timeout=90)
    finally:
        d.close()
    # the hand sum: price x allocation x time of every attempt
    hand: dict[str, float] = {}
    rows = admin.ledger.query("SELECT a.*, j.user FROM attempts a JOIN jobs j ON j.id = a.job_id")
    assert len(rows) == 6 and all(r["state"] == "succeeded" for r in rows)
    for r in rows:
        hours = (r["ended_at"] - r["started_at"]) / 3600.0
        if r["host"] == a:  # flat price by dominant share of 4 CPUs, 8 GB
            rate = 3600.0 * max(r["cpus"] / 4, r["mem_mb"] / 8192)
        else:
            rate = 900.0 * r["cpus"] + 36.0 * r["mem_mb"] / 1024
        hand[r["user"]] = hand.get(r["user"], 0.0) + rate * hours
        assert r["cost"] == pytest.approx(rate * hours)  # settled by the dispatcher
    by_user = json.loads(invoke("cost", "--since", "1h", "--by", "user", "--json"))
    assert {r["key"]: r["cost"] for r in by_user["rows"]} == pytest.approx(hand, abs=1e-5)
    by_project = json.loads(invoke("cost", "--since", "1h", "--by", "project", "--json"))
    assert {r["key"]: r["cost"] for r in by_project["rows"]} == pytest.approx(
        {users[u]: c for u, c in hand.items()}, abs=1e-5
    )
    assert by_user["idle_cost"] > 0
    assert "Idle cost" in invoke("cost", "--since", "1h", "--by", "host")

    # a hard budget below what vision spent holds its next job, with the reason
    invoke("budget", "set", "--project", "vision", "--amount", f"{hand['alice'] / 2:.4f}", "--hard")
    alice = Service.open(home, user="alice")
    held = alice.submit(command="true", project="vision")
    alice.close()
    d = dispatcher_mod.Dispatcher(admin, pool=HostPool(admin.known_hosts), poll_timeout_s=10)
    assert d.acquire()
    try:
        for _ in range(5):
            d.tick()
    finally:
        d.close()
    job = admin.get_job(held)
    assert job["state"] == "queued" and job["reason"].startswith("over budget")
    queue = invoke("queue")
    assert "over budget" in queue and "monthly budget" in queue

    table = invoke("replay", "--since", "1h", "--policies", "fifo,backfill")
    for word in ("actual", "fifo", "backfill", "MEAN WAIT", "COST"):
        assert word in table
