"""`service install --system --import PATH`: a personal ledger taken into the lab's."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from lepton_tui.cli import cli
from lepton_tui.economics.prices import set_prices
from lepton_tui.economics.report import cost_report, settle_ended
from lepton_tui.ledger import Ledger, open_ledger
from lepton_tui.service import Service
from tests.economics.helpers import T0, Clock, H, add_host, run_attempt, submit

LAB = "var/lib/lepton-tui/ledger.db"


def _install(root: Path, *extra: str):
    return CliRunner().invoke(cli, ["service", "install", "--system", "--root", str(root), *extra])


@pytest.fixture
def personal(tmp_path: Path) -> Path:
    """alice's personal state directory: two hosts, prices, a budget, three jobs (one --after
    another, one lost then retried), settled costs."""
    home = tmp_path / "alice-home"
    clock = Clock(T0)
    svc = Service.open(home, user="alice", clock=clock)
    led = svc.ledger
    add_host(led, "gpu1", gpus=2, gpu_mem_mb=2 * 24 * 1024)
    add_host(led, "cpu1", gpus=0, gpu_mem_mb=0)
    set_prices(led, None, gpu_hour=2.0, cpu_hour=0.1, actor="alice")
    svc.set_budget("project", "vision", 50, new_project=True)
    first = submit(led, clock, gpus=1)
    run_attempt(led, clock, first, "gpu1", T0 + H, T0 + 3 * H, gpu_ids=(0,))
    second = submit(led, clock, project="nlp", cpus=4, at=T0 + 2 * H)
    run_attempt(led, clock, second, "cpu1", T0 + 4 * H, T0 + 5 * H, final="lost")
    run_attempt(led, clock, second, "cpu1", T0 + 5 * H, T0 + 6 * H)
    svc.submit(command="echo after", after=[first])
    clock.now = T0 + 7 * H
    settle_ended(led)
    svc.close()
    return home


def _digest(home: Path) -> str:
    return hashlib.sha256((home / "ledger.db").read_bytes()).hexdigest()


def test_import_keeps_ids_history_and_costs(personal: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    before = _digest(personal)
    # the lab ledger exists already (the service ran once): its own setting and event stay
    lab = open_ledger(root / LAB)
    lab.set_setting("admin_group", "lab-admins", actor="root")
    lab.close()
    res = _install(root, "--import", str(personal))
    assert res.exit_code == 0, res.output
    assert "3 jobs" in res.output and "numbered after the lab's" in res.output
    assert (root / "etc/systemd/system/lepton-tui.service").is_file()
    assert _digest(personal) == before  # the personal ledger is only read
    # the imported endings are history: the lab's notifications start after them
    theirs = Ledger(root / LAB, clock=lambda: T0)
    [cursor] = theirs.query("SELECT event_id FROM notify_cursor")
    assert cursor["event_id"] >= theirs.query("SELECT MAX(id) AS m FROM events "
                                              "WHERE kind != 'ledger.imported'")[0]["m"]  # fmt: skip
    theirs.close()

    now = T0 + 7 * H
    mine = Ledger(personal / "ledger.db", clock=lambda: now)
    theirs = Ledger(root / LAB, clock=lambda: now)
    job_cols = "id, user, project, command, state, attempts_used, submitted_at, ended_at"
    assert theirs.query(f"SELECT {job_cols} FROM jobs") == mine.query(
        f"SELECT {job_cols} FROM jobs"
    )
    att_cols = "job_id, attempt_no, host, token, state, started_at, ended_at, cost, energy_wh"
    assert theirs.query(f"SELECT {att_cols} FROM attempts ORDER BY id") == mine.query(
        f"SELECT {att_cols} FROM attempts ORDER BY id"
    )
    assert theirs.query("SELECT * FROM job_deps") == mine.query("SELECT * FROM job_deps")
    for by in ("user", "project", "host"):
        assert (
            cost_report(theirs, T0, now, by).as_dict() == cost_report(mine, T0, now, by).as_dict()
        )
    kinds = [r["kind"] for r in theirs.query("SELECT kind FROM events ORDER BY id")]
    assert kinds[0] == "setting" and kinds[-1] == "ledger.imported"  # the lab's first, kept
    assert theirs.query("SELECT actor FROM events ORDER BY id DESC LIMIT 1")[0]["actor"] == "root"
    assert theirs.query("SELECT COUNT(*) AS n FROM events WHERE job_id = 1")[0]["n"] == len(
        mine.query("SELECT id FROM events WHERE job_id = 1")
    )
    assert theirs.get_setting("owner") is None  # alice does not become the lab's owner
    assert theirs.get_setting("admin_group") == "lab-admins"
    assert [b["name"] for b in theirs.query("SELECT name FROM budgets")] == ["vision"]
    state = root / "var/lib/lepton-tui"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "ledger.db").stat().st_mode) == 0o600


def test_import_refuses_clashing_job_ids_and_writes_nothing(personal: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    lab = open_ledger(root / LAB)
    with lab.tx():
        lab.add_job({"command": "true", "project": "default"}, "bob")
    events = lab.query("SELECT COUNT(*) AS n FROM events")[0]["n"]
    lab.close()
    res = _install(root, "--import", str(personal))
    assert res.exit_code == 2
    assert "cannot import" in res.output and "1 job id(s) that the lab ledger already has (1)" in (
        res.output
    )
    lab = open_ledger(root / LAB)
    assert [j["user"] for j in lab.query("SELECT user FROM jobs")] == ["bob"]
    assert lab.query("SELECT COUNT(*) AS n FROM events")[0]["n"] == events
    assert not (root / "etc").exists()  # no unit, no client config


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--system", "--import", "/nonexistent/ledger"], "is not a lepton ledger"),
        (["--user", "--import", "/tmp"], "it goes with --system"),
    ],
)
def test_import_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    res = CliRunner().invoke(cli, ["service", "install", "--root", str(root), *args])
    assert res.exit_code == 2 and message in res.output, res.output
    assert not list(root.iterdir())


def test_import_of_a_file_that_is_no_ledger_leaves_no_lab_ledger(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    junk = tmp_path / "notes.db"
    junk.write_text("not sqlite at all " * 100)
    res = _install(root, "--import", str(junk))
    assert res.exit_code == 2 and "cannot read" in res.output, res.output
    assert not list(root.iterdir())


def test_import_never_takes_the_notify_command(personal: Path, tmp_path: Path) -> None:
    """The lab's notify command runs as the service account, which holds the lab key: in lab mode
    only root sets it, so a personal ledger's (whoever wrote it) is left behind, and said so."""
    led = open_ledger(personal / "ledger.db")
    led.set_setting("notify_command", "cp ~/lab_key /tmp/stolen", actor="alice")
    led.set_setting("currency", "EUR", actor="alice")
    led.close()
    root = tmp_path / "root"
    res = _install(root, "--import", str(personal))
    assert res.exit_code == 0, res.output
    assert "not taken: the notify_command setting" in res.output
    lab = Ledger(root / LAB, clock=lambda: T0)
    assert lab.get_setting("notify_command") is None
    assert lab.get_setting("currency") == "EUR"  # the other settings come along
    lab.close()
