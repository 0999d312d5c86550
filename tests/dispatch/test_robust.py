"""The dispatcher when the host misbehaves: a directory that hides for a while, one that is gone
for good, a cancel that races the wrapper, launches that fail on a host that answers, and the
round trips that cancels and fencing cost (local transport: the hosts are this machine)."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest

from inventory.remote import wrapper
from lepton_tui.service import Service
from tests.dispatch.helpers import add_local_hosts, alive, all_ended, read_json, tick_until


def _running(svc: Service, job_id: int) -> bool:
    return svc.get_job(job_id)["state"] == "running"


def test_a_directory_that_hides_for_a_while_loses_nothing(svc, dispatcher, tmp_path):
    """A network filesystem that hides the jobs directory for a few polls: the running job is
    neither lost nor started again (it was: lost on the first poll, and run twice)."""
    add_local_hosts(svc, tmp_path, 1)
    marker = tmp_path / "runs.log"
    job_id = svc.submit(command=f"echo run >> {marker}; sleep 2", retries=1)
    tick_until(dispatcher, lambda: _running(svc, job_id), timeout=20)
    jobs = tmp_path / "local0" / "jobs"
    jobs.rename(tmp_path / "hidden")
    try:
        for _ in range(4):
            dispatcher.tick()
            assert _running(svc, job_id)
    finally:
        (tmp_path / "hidden").rename(jobs)
    tick_until(dispatcher, lambda: all_ended(svc), timeout=20, pause=0.2)
    assert svc.get_job(job_id)["state"] == "succeeded"
    assert len(svc.ledger.attempts_for(job_id)) == 1
    assert marker.read_text() == "run\n"


def test_a_directory_gone_for_good_is_lost_and_its_processes_fenced(svc, dispatcher, tmp_path):
    """Past the grace period the attempt is lost and requeued, and fencing finds its wrapper and
    job by token (no directory to read their pids from) and kills them before the retry."""
    svc.set_setting("host_grace_s", 1.0)
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="sleep 60", retries=1)
    tick_until(dispatcher, lambda: _running(svc, job_id), timeout=20)
    (attempt,) = svc.ledger.attempts_for(job_id)
    info = read_json(Path(attempt["remote_dir"]) / "wrapper.json")
    (tmp_path / "local0" / "jobs").rename(tmp_path / "gone")
    tick_until(dispatcher, lambda: len(svc.ledger.attempts_for(job_id)) == 2, timeout=20)
    first = svc.ledger.attempts_for(job_id)[0]
    assert first["state"] == "lost" and first["fenced_at"] is not None
    assert "directory has been gone" in (first["reason"] or "")
    deadline = time.monotonic() + 5
    while (alive(info["pid"]) or alive(info["job_pid"])) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(info["pid"]) and not alive(info["job_pid"])
    svc.cancel([job_id])
    tick_until(dispatcher, lambda: all_ended(svc), timeout=30, pause=0.2)


def _attempt_dir(tmp_path: Path, command: str) -> Path:
    d = tmp_path / "jobs" / "7-abcdef012345"
    d.mkdir(parents=True)
    (d / "command").write_text(command)
    spec = {"job_id": 7, "token": "abcdef012345", "kill_grace_s": 2, "workdir": str(tmp_path)}
    (d / "launch.json").write_text(json.dumps(spec))
    return d


@pytest.mark.parametrize(("flag", "code"), [("cancel_requested", 143), ("fenced", 137)])
def test_a_wrapper_asked_to_stop_before_it_starts_runs_nothing(tmp_path, flag, code):
    """A cancel (or a fence) that reaches the host before the wrapper recorded itself had no
    pid to signal; the wrapper must see it and not run the job (it ran to its end)."""
    d = _attempt_dir(tmp_path, f"touch {tmp_path / 'ran'}; sleep 30")
    (d / flag).write_text("1\n")
    started = time.monotonic()
    assert wrapper.main(str(d)) == 0
    assert time.monotonic() - started < 20  # did not wait for the job (a loose bound)
    assert not (tmp_path / "ran").exists()
    end = json.loads((d / "end.json").read_text())
    assert int((d / "exit_code").read_text()) == code
    assert end["cancelled"] is (flag == "cancel_requested")
    assert end["reason"].endswith("before it started")


def test_a_cancel_between_start_and_record_still_stops_the_job(tmp_path, monkeypatch):
    """The cancel lands after the job started but before wrapper.json exists (so the agent
    signalled nothing): the wrapper checks again once recorded, and TERMs the job."""
    d = _attempt_dir(tmp_path, "sleep 30")
    real_write = wrapper.write_atomic

    def write(path: str, data: bytes) -> None:
        if path.endswith("wrapper.json"):  # the agent's cancel arrives right now
            (d / "cancel_requested").write_text("1\n")
        real_write(path, data)

    monkeypatch.setattr(wrapper, "write_atomic", write)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        assert wrapper.main(str(d)) == 0
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    end = json.loads((d / "end.json").read_text())
    assert end["cancelled"] is True and end["signal"] == signal.SIGTERM
    assert end["ended_at"] - end["started_at"] < 20  # the job did not run its 30 s


def test_launches_failing_on_a_host_drain_it_and_requeue_the_job(svc, dispatcher, tmp_path):
    """The host answers polls but every launch fails (here its root is under a regular file, as
    with a full disk or a read-only home): the job is requeued, not failed, without spending
    its retries, and the host is drained with the reason; the job then runs elsewhere."""
    (tmp_path / "file").write_text("not a directory\n")
    svc.add_host("broken", local=True, root_dir=str(tmp_path / "file" / "root"),
                 capacity={"cpus": 4, "mem_mb": 8192})  # fmt: skip
    job_id = svc.submit(command="echo hi")
    tick_until(dispatcher, lambda: svc.get_host("broken")["admin_state"] == "draining", timeout=30)
    assert svc.get_job(job_id)["state"] == "queued"
    (attempt,) = svc.ledger.attempts_for(job_id)
    assert attempt["state"] == "lost" and "launch failed on broken" in (attempt["reason"] or "")
    drained = svc.ledger.query("SELECT * FROM events WHERE kind = 'host.drain'")
    assert drained[-1]["actor"] == "dispatcher" and "hosts resume broken" in drained[-1]["message"]
    add_local_hosts(svc, tmp_path, 1)
    tick_until(dispatcher, lambda: all_ended(svc), timeout=30, pause=0.2)
    assert svc.get_job(job_id)["state"] == "succeeded"
    assert [a["host"] for a in svc.ledger.attempts_for(job_id)][-1] == "local0"


def test_cancels_and_fencing_cost_one_round_trip_per_host(svc, dispatcher, tmp_path):
    """Five cancels on one host go out in one exec, not five."""
    add_local_hosts(svc, tmp_path, 1)
    ids = [svc.submit(command="sleep 60", cpus=0.5) for _ in range(5)]
    tick_until(dispatcher, lambda: all(_running(svc, i) for i in ids), timeout=30)
    quiet = dispatcher.tick().round_trips  # a poll
    svc.cancel(ids)
    assert dispatcher.tick().round_trips == quiet + 1  # the poll and one cancel call
    tick_until(dispatcher, lambda: all_ended(svc), timeout=30, pause=0.2)
    assert {svc.get_job(i)["state"] for i in ids} == {"cancelled"}


if sys.platform != "linux":  # /proc is how the agent finds processes
    pytestmark = pytest.mark.skip("Linux only")


def test_a_job_does_not_inherit_lepton_s_environment(svc, dispatcher, tmp_path, monkeypatch):
    """On a `--local` host the wrapper starts from the dispatcher's environment: its ledger
    (LEPTON_HOME) and ssh agent are not handed to the job; the job's own variables are."""
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "ledger-home"))
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
    monkeypatch.setenv("KEEP_ME", "yes")
    add_local_hosts(svc, tmp_path, 1)
    out = tmp_path / "env.txt"
    job_id = svc.submit(command=f"env > {out}", env={"MINE": "1"})
    tick_until(dispatcher, lambda: all_ended(svc), timeout=20, pause=0.2)
    assert svc.get_job(job_id)["state"] == "succeeded"
    seen = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert "LEPTON_HOME" not in seen and "SSH_AUTH_SOCK" not in seen
    assert seen["KEEP_ME"] == "yes" and seen["MINE"] == "1"
    assert seen["LEPTON_JOB_ID"] == str(job_id)
