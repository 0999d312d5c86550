"""The dispatcher's parts: the lock, `serve`, samples compaction, decisions, policy fallback."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lepton_tui.dispatch import loop as dispatcher_mod
from lepton_tui.dispatch.hostpool import GpuState, Poll
from lepton_tui.dispatch.loop import Dispatcher, DispatcherLock
from lepton_tui.dispatch.samples import compact_samples, record_samples
from lepton_tui.service import Service
from tests.clirun import lepton
from tests.dispatch.helpers import add_local_hosts, alive, all_ended, tick_until, wait_until


def test_one_lock_holder_per_ledger(tmp_path):
    a, b = DispatcherLock(tmp_path / "l"), DispatcherLock(tmp_path / "l")
    assert a.acquire() and a.held
    assert not b.acquire() and not b.held
    assert b.holder_pid() == __import__("os").getpid()
    a.release()
    assert b.acquire()
    b.release()


def test_console_thread_only_shows_when_another_process_dispatches(svc, home):
    holder = DispatcherLock(home / "dispatcher.lock")
    assert holder.acquire()
    d = Dispatcher(svc)
    handle = d.start_in_thread()
    assert not handle.dispatching
    handle.stop()
    holder.release()
    handle = d.start_in_thread()
    try:
        assert handle.dispatching
    finally:
        handle.stop()
    assert not handle.dispatching and not d.lock.held


def test_console_thread_takes_over_when_the_other_dispatcher_stops(svc, home):
    holder = DispatcherLock(home / "dispatcher.lock")
    assert holder.acquire()
    d = Dispatcher(svc)
    handle = d.start_in_thread(retry_s=0.05)
    try:
        time.sleep(0.2)
        assert not handle.dispatching
        holder.release()
        wait_until(lambda: handle.dispatching, timeout=10)
        assert not holder.acquire()
    finally:
        handle.stop()
    assert not handle.dispatching


def test_serve_once_and_refusals(svc, home, tmp_path):
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="true")
    out = lepton(home, "serve", "--once")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("polled 1 host(s) (0 failed), placed 1, launched 1")
    assert svc.get_job(job_id)["state"] in ("running", "succeeded")
    bad = lepton(home, "serve", "--tick", "0")
    assert bad.returncode == 2 and bad.stderr.startswith("lepton-tui: error: --tick 0 is out")
    holder = DispatcherLock(home / "dispatcher.lock")
    assert holder.acquire()
    try:
        busy = lepton(home, "serve", "--once")
    finally:
        holder.release()
    assert busy.returncode == 1
    assert busy.stderr.startswith("lepton-tui: error: another dispatcher")
    assert "Traceback" not in busy.stderr and len(busy.stderr.splitlines()) == 1


def test_queue_shows_the_reason(svc, home, tmp_path):
    add_local_hosts(svc, tmp_path, 1, cpus=2)
    job_id = svc.submit(command="true", gpus=1)
    assert lepton(home, "serve", "--once").returncode == 0
    reason = svc.get_job(job_id)["reason"]
    assert reason.startswith("unschedulable: fits no host (needs 1 GPU,")
    out = lepton(home, "queue")
    assert "unschedulable" in out.stdout


def test_samples_are_thinned_with_age(svc):
    ledger = svc.ledger
    now = 10 * 86400.0
    poll = Poll("h", now, cpus=4, cpu_percent=0.0, mem_total_mb=100, mem_used_mb=10,
                gpus=[GpuState(0, util_percent=0.0)])  # fmt: skip
    with ledger.tx():
        for k in range(240):  # two hours of raw samples every 30 s, cpu = k
            poll.cpu_percent = float(k)
            poll.gpus[0].util_percent = float(2 * k)
            record_samples(ledger, poll, now - 7200 + 30 * k)
        for k in range(4):  # four per-minute rows from 8 days ago
            ledger.insert("samples", {"host": "h", "gpu_index": -1, "at": now - 8 * 86400 + 60 * k,
                                      "resolution": 60, "cpu_percent": float(k), "n": 2})  # fmt: skip
    compact_samples(ledger, now)
    raw = ledger.query("SELECT * FROM samples WHERE resolution = 0 AND gpu_index = -1")
    assert len(raw) == 120 and min(r["at"] for r in raw) >= now - 3600
    minutes = ledger.query(
        "SELECT * FROM samples WHERE resolution = 60 AND gpu_index = -1 AND at > ? ORDER BY at",
        (now - 86400,),
    )
    assert len(minutes) == 60
    assert minutes[0]["at"] == now - 7200 and minutes[0]["n"] == 2
    assert minutes[0]["cpu_percent"] == 0.5 and minutes[-1]["cpu_percent"] == 118.5
    gpu = ledger.query("SELECT * FROM samples WHERE resolution = 60 AND gpu_index = 0 ORDER BY at")
    assert gpu[0]["util_percent"] == 1.0
    (hour,) = ledger.query("SELECT * FROM samples WHERE resolution = 3600")
    assert hour["n"] == 8 and hour["cpu_percent"] == 1.5
    compact_samples(ledger, now)  # idempotent
    assert (
        ledger.query_one("SELECT COUNT(*) AS n FROM samples")["n"] == 240 + 120 + 1
    )  # raw host+GPU, per-minute host+GPU, one hour


def test_decisions_are_recorded_and_bounded(svc, tmp_path, monkeypatch):
    monkeypatch.setattr(dispatcher_mod, "DECISIONS_KEEP", 5)
    add_local_hosts(svc, tmp_path, 1, cpus=1)
    ids = [svc.submit(command="sleep 0.3") for _ in range(4)]
    d = Dispatcher(svc)
    assert d.acquire()
    try:
        d.tick()
        rows = svc.ledger.query("SELECT * FROM decisions ORDER BY id")
        placed = [r for r in rows if r["placed"]]
        assert [r["job_id"] for r in placed] == ids[:1]
        waiting = {r["job_id"]: r["explanation"] for r in rows if not r["placed"]}
        assert set(waiting) == set(ids[1:])
        assert all(w == "waiting for CPUs or memory" for w in waiting.values())
        d._last_compact = -1e18  # force the housekeeping on the next tick
        tick_until(d, lambda: all_ended(svc), timeout=30, pause=0.2)
        d._housekeeping(svc.ledger.clock())
    finally:
        d.close()
    assert svc.ledger.query_one("SELECT COUNT(*) AS n FROM decisions")["n"] <= 6


def test_unknown_policy_falls_back_to_backfill(svc, tmp_path, caplog):
    add_local_hosts(svc, tmp_path, 1)
    svc.set_setting("policy", "no-such-policy")
    job_id = svc.submit(command="true")
    d = Dispatcher(svc)
    assert d.acquire()
    try:
        with caplog.at_level(logging.WARNING, logger="lepton_tui.dispatcher"):
            tick_until(d, lambda: all_ended(svc), timeout=30)
    finally:
        d.close()
    assert svc.get_job(job_id)["state"] == "succeeded"
    assert sum("no-such-policy" in r.getMessage() for r in caplog.records) == 1
    assert svc.ledger.attempts_for(job_id)[0]["policy"] == "backfill"


def test_attempts_on_a_removed_host_are_lost(svc, tmp_path):
    add_local_hosts(svc, tmp_path, 2)
    job_id = svc.submit(command="sleep 30", retries=1)
    d = Dispatcher(svc)
    assert d.acquire()
    try:
        tick_until(d, lambda: svc.get_job(job_id)["state"] == "running", timeout=20)
        host = svc.get_job(job_id)["host"]
        (attempt,) = svc.ledger.attempts_for(job_id)
        info = json.loads((Path(attempt["remote_dir"]) / "wrapper.json").read_text())
        svc.remove_host(host, force=True)
        tick_until(d, lambda: len(svc.ledger.attempts_for(job_id)) == 2, timeout=20)
        first, second = svc.ledger.attempts_for(job_id)
        assert first["state"] == "lost" and "removed" in first["reason"]
        assert first["fenced_at"] is not None and second["host"] != host
        # the copy on the removed host was stopped (it used to run on, untracked)
        wait_until(lambda: not alive(info["job_pid"]) and not alive(info["pid"]), timeout=10)
        fenced = svc.ledger.query("SELECT * FROM events WHERE kind = 'attempt.fenced'")
        assert [e["job_id"] for e in fenced] == [job_id] and "removed host" in fenced[0]["message"]
        assert svc.cancel([job_id])[0].ok
        tick_until(d, lambda: all_ended(svc), timeout=30, pause=0.2)
    finally:
        d.close()
    assert svc.get_job(job_id)["state"] == "cancelled"


def test_stop_keeps_the_lock_until_a_slow_tick_ends(svc, home, monkeypatch):
    """A tick that outlives `stop`'s wait still writes to the ledger: the lock is not handed to
    a second dispatcher until it ends (it was released at once)."""
    d = Dispatcher(svc)
    in_tick, release = threading.Event(), threading.Event()

    def slow_tick():  # noqa: ANN202
        in_tick.set()
        release.wait(10)

    monkeypatch.setattr(d, "tick", slow_tick)
    handle = d.start_in_thread()
    assert in_tick.wait(10)
    handle.stop(timeout=0.05)
    other = DispatcherLock(home / "dispatcher.lock")
    assert not other.acquire()  # the slow tick still holds it
    release.set()
    handle.thread.join(10)
    assert other.acquire()
    other.release()
    d.close()


def test_a_removed_host_out_of_reach_is_given_up_with_an_event(svc, tmp_path):
    """`hosts rm --force` of a host that cannot be reached: after the grace period the attempt
    is no longer waited on, and an event says the job may still run there."""
    svc.set_setting("host_grace_s", 1.0)
    svc.add_host("gone", address="127.0.0.1", port=1, capacity={"cpus": 4, "mem_mb": 8192})
    job_id = svc.submit(command="sleep 30")
    svc.ledger.start_attempt(job_id, "gone", "abcdef012345", [])
    svc.remove_host("gone", force=True)
    d = Dispatcher(svc)
    assert d.acquire()
    try:
        tick_until(d, lambda: bool(svc.ledger.attempts_for(job_id)[0]["fenced_at"]), timeout=20)
    finally:
        d.close()
    (event,) = svc.ledger.query("SELECT * FROM events WHERE kind = 'attempt.unfenced'")
    assert "may still run there" in event["message"] and "abcdef012345" in event["message"]
    # it never ran, so no retry is spent: queued again, placeable once the copy is given up
    job = svc.get_job(job_id)
    assert job["state"] == "queued" and "waiting until its last attempt" not in job["reason"]
    assert "removed" in svc.ledger.attempts_for(job_id)[0]["reason"]


def test_dqn_policy_dispatches_without_torch(svc, home, tmp_path):
    add_local_hosts(svc, tmp_path, 1)
    svc.set_setting("policy", "dqn")
    job_id = svc.submit(command="true")
    code = (
        "import sys\n"
        "from lepton_tui.dispatch.loop import Dispatcher\n"
        f"d = Dispatcher({str(home)!r})\n"
        "assert d.acquire()\n"
        "r = d.tick()\n"
        "name = getattr(d.policy(), 'name', None)\n"
        "d.close()\n"
        "print(r.placed, name, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "dqn", "False"]
    assert svc.ledger.attempts_for(job_id)[0]["policy"] == "dqn"


def test_housekeeping_reports_idle_gpus_to_their_owner(tmp_path) -> None:
    """An allocated GPU idle past the threshold gets one notice on its job, and nothing is killed."""
    from lepton_tui.dispatch.loop import report_waste

    now = [1_000_000.0]
    svc = Service.open(tmp_path, user="alice", clock=lambda: now[0])
    svc.add_host("g1", local=True)
    svc.ledger.execute(
        "UPDATE hosts SET gpus = 1, gpu_mem_mb = 80000, price_per_hour = 4 WHERE name = 'g1'"
    )
    job = svc.submit(command="sleep 1000", gpus=1)
    svc.ledger.start_attempt(job, "g1", "tok", [0])
    svc.ledger.transition_attempt("tok", "running", job_state="running", started_at=now[0])
    with svc.ledger.tx():
        for i in range(40):
            svc.ledger.insert(
                "samples",
                {
                    "host": "g1",
                    "gpu_index": 0,
                    "at": now[0] + i * 30,
                    "resolution": 0,
                    "util_percent": 0.0,
                    "power_w": 60.0,
                },
            )
    now[0] += 1200
    report_waste(svc.ledger, now[0])
    report_waste(svc.ledger, now[0])  # once per attempt and GPU, not every minute
    notices = svc.ledger.query(
        "SELECT message FROM events WHERE kind = 'waste.idle_gpu' AND job_id = ?", (job,)
    )
    assert len(notices) == 1
    assert svc.get_job(job)["state"] == "running"


def test_long_share_setting_limits_long_jobs_under_sjf(svc, tmp_path):
    from lepton_tui.errors import ValidationError
    from lepton_tui.settings import parse_setting

    for bad in ("1.5", "-0.1", "nan", "half"):
        with pytest.raises(ValidationError, match="long_share"):
            parse_setting("long_share", bad)
    assert parse_setting("long_share", "0.4") == 0.4
    add_local_hosts(svc, tmp_path, 1, cpus=4)
    svc.set_setting("policy", "sjf")
    svc.set_setting("long_share", 0.5)
    # two 2-hour jobs of 2 CPUs on 4 CPUs: the first takes half, the second waits for it
    ids = [svc.submit(command="sleep 30", cpus=2, time="2h") for _ in range(2)]
    d = Dispatcher(svc)
    pol = d.policy()
    assert pol.name == "sjf" and pol.long_share == 0.5
    assert d.acquire()
    try:
        d.tick()
        states = [svc.get_job(i)["state"] for i in ids]
        assert sorted(states) == ["queued", "starting"] or sorted(states) == ["queued", "running"]
        waiting = next(i for i, s in zip(ids, states, strict=True) if s == "queued")
        assert "kept for short jobs" in svc.get_job(waiting)["reason"]
        assert svc.cancel(ids)[0].ok
        tick_until(d, lambda: all_ended(svc), timeout=30, pause=0.2)
    finally:
        d.close()
    svc.set_setting("policy", "backfill")  # other policies ignore it
    assert Dispatcher(svc).policy().name == "backfill"


def test_a_bad_stored_setting_falls_back_to_its_default_not_another_policy(svc, caplog):
    svc.set_setting("policy", "sjf")
    svc.ledger.set_setting("long_share", 1.5)  # written around `settings set`'s checks
    d = Dispatcher(svc)
    with caplog.at_level(logging.WARNING, logger="lepton_tui.dispatcher"):
        pol = d.policy()
        d.policy()
    assert pol.name == "sjf" and pol.long_share is None
    assert sum("long_share" in r.getMessage() for r in caplog.records) == 1
