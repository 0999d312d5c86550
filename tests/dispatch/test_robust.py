"""The dispatcher when the host misbehaves: a directory that hides for a while, one that is gone
for good, a cancel that races the wrapper, launches that fail on a host that answers, and the
round trips that cancels and fencing cost (local transport: the hosts are this machine)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from inventory.remote import wrapper
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.service import Service
from tests.dispatch.helpers import add_local_hosts, alive, all_ended, read_json, tick_until


def _serve_once(svc: Service):  # noqa: ANN202
    """One tick of a fresh dispatcher, as `lepton-tui serve --once` from a timer runs it."""

    def once() -> None:
        d = Dispatcher(svc)
        assert d.acquire()
        try:
            d.tick()
        finally:
            d.close()

    return once


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


def _run_wrapper(d: Path) -> int:
    """The wrapper's main on attempt directory `d`, in this process; the signal handlers it
    installs are put back after."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        return wrapper.main(str(d))
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)


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
    assert wrapper.main(str(d)) == 0
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
    assert _run_wrapper(d) == 0
    end = json.loads((d / "end.json").read_text())
    assert end["cancelled"] is True and end["signal"] == signal.SIGTERM


def test_launches_failing_on_a_host_drain_it_and_requeue_the_job(svc, dispatcher, tmp_path):
    """The host answers polls but every launch fails (here its root is under a regular file, as
    with a full disk or a read-only home): the job is requeued, not failed, without spending
    its retries, and the host is drained with the reason; the job then runs elsewhere."""
    (tmp_path / "file").write_text("not a directory\n")
    svc.add_host("broken", local=True, root_dir=str(tmp_path / "file" / "root"),
                 capacity={"cpus": 4, "mem_mb": 8192})  # fmt: skip
    job_id = svc.submit(command="sleep 30", retries=1)
    tick_until(dispatcher, lambda: svc.get_host("broken")["admin_state"] == "draining", timeout=30)
    assert svc.get_job(job_id)["state"] == "queued"
    (attempt,) = svc.ledger.attempts_for(job_id)
    assert attempt["state"] == "lost" and "launch failed on broken" in (attempt["reason"] or "")
    assert attempt["launch_failures"] == 3  # counted in the ledger, across restarts
    drained = svc.ledger.query("SELECT * FROM events WHERE kind = 'host.drain'")
    assert drained[-1]["actor"] == "dispatcher" and "hosts resume broken" in drained[-1]["message"]
    add_local_hosts(svc, tmp_path, 1)
    tick_until(dispatcher, lambda: _running(svc, job_id), timeout=30)
    assert [a["host"] for a in svc.ledger.attempts_for(job_id)][-1] == "local0"
    # the failed launch spent no retry: its one retry is still there for a real loss
    info = read_json(Path(svc.ledger.attempts_for(job_id)[-1]["remote_dir"]) / "wrapper.json")
    os.kill(info["pid"], signal.SIGKILL)
    tick_until(dispatcher, lambda: len(svc.ledger.attempts_for(job_id)) == 3, timeout=30)
    assert "no retry spent" in svc.ledger.attempts_for(job_id)[0]["reason"]
    assert "retry 1 of 1" in svc.ledger.attempts_for(job_id)[1]["reason"]
    svc.cancel([job_id])
    tick_until(dispatcher, lambda: all_ended(svc), timeout=30, pause=0.2)


def test_a_job_is_not_placed_again_while_its_old_copy_may_run(
    svc, dispatcher, tmp_path, monkeypatch
):
    """Its lost attempt on a host that answers is not fenced yet (the host could not, this
    tick): the job waits, with the reason, instead of running a second copy elsewhere."""
    add_local_hosts(svc, tmp_path, 2)
    job_id = svc.submit(command="sleep 60", retries=1)
    tick_until(dispatcher, lambda: _running(svc, job_id), timeout=20)
    (first,) = svc.ledger.attempts_for(job_id)
    info = read_json(Path(first["remote_dir"]) / "wrapper.json")
    real_kill = dispatcher._kill_stale
    monkeypatch.setattr(dispatcher, "_kill_stale", lambda host, atts: {})  # handled nothing
    os.kill(info["pid"], signal.SIGKILL)  # the wrapper dies; the job itself runs on
    tick_until(dispatcher, lambda: svc.get_job(job_id)["state"] == "queued", timeout=20)
    for _ in range(3):
        dispatcher.tick()
    job = svc.get_job(job_id)
    assert job["state"] == "queued" and len(svc.ledger.attempts_for(job_id)) == 1
    assert f"waiting until its last attempt on {first['host']} is stopped" in job["reason"]
    assert alive(info["job_pid"])
    monkeypatch.setattr(dispatcher, "_kill_stale", real_kill)
    tick_until(dispatcher, lambda: _running(svc, job_id), timeout=20)
    assert not alive(info["job_pid"]) and svc.ledger.attempts_for(job_id)[0]["fenced_at"]
    svc.cancel([job_id])
    tick_until(dispatcher, lambda: all_ended(svc), timeout=30, pause=0.2)


def test_a_dispatcher_that_restarts_every_tick_still_counts_the_grace(svc, tmp_path):
    """`serve --once` from a timer: a fresh dispatcher each tick. The time a directory has been
    out of sight is in the ledger, so the attempt is still lost after the grace."""
    svc.set_setting("host_grace_s", 1.0)
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="sleep 60")

    once = _serve_once(svc)
    deadline = time.monotonic() + 20
    while not _running(svc, job_id) and time.monotonic() < deadline:
        once()
    (tmp_path / "local0" / "jobs").rename(tmp_path / "gone")
    while svc.get_job(job_id)["state"] == "running" and time.monotonic() < deadline + 20:
        once()
        time.sleep(0.2)
    assert svc.ledger.attempts_for(job_id)[0]["state"] == "lost"


def test_a_cancel_while_the_directory_hides_is_sent_again(svc, dispatcher, tmp_path):
    """The host did not find the attempt when the cancel went out (its directory hidden): the
    cancel is sent again once it is back, and the job is cancelled, not run to its end."""
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="sleep 60")
    tick_until(dispatcher, lambda: _running(svc, job_id), timeout=20)
    jobs = tmp_path / "local0" / "jobs"
    jobs.rename(tmp_path / "hidden")
    try:
        svc.cancel([job_id])
        dispatcher.tick()
        dispatcher.tick()
    finally:
        (tmp_path / "hidden").rename(jobs)
    tick_until(dispatcher, lambda: all_ended(svc), timeout=30, pause=0.2)
    assert svc.get_job(job_id)["state"] == "cancelled"


def test_an_unreadable_attempt_is_not_concluded_lost(tmp_path):
    """Files that cannot be read (here wrapper.json is a directory: EISDIR, as EACCES or ESTALE
    would be) make that attempt "unreadable", not "lost", and the others still report."""
    from inventory.remote import agent

    root = tmp_path / "root"
    bad, good = root / "jobs" / "1-aaaaaaaaaaaa", root / "jobs" / "2-bbbbbbbbbbbb"
    (bad / "wrapper.json").mkdir(parents=True)
    good.mkdir(parents=True)
    (good / "exit_code").write_text("0\n")
    st = agent.statuses(str(root), ["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    assert (
        st["aaaaaaaaaaaa"]["state"] == "unreadable"
        and "IsADirectory" in st["aaaaaaaaaaaa"]["reason"]
    )
    assert st["bbbbbbbbbbbb"]["state"] == "done"


def test_one_attempt_the_host_cannot_write_does_not_stop_the_others(tmp_path):
    """Batched cancels and fences: an attempt whose files cannot be written gets an error of its
    own, the others are handled; fencing kills even where it cannot leave its mark."""
    from inventory.remote import agent

    root = tmp_path / "root"
    bad = root / "jobs" / "1-aaaaaaaaaaaa"
    (bad / "cancel_requested").mkdir(parents=True)  # writing it fails
    (bad / "fenced").mkdir()
    ok = root / "jobs" / "2-bbbbbbbbbbbb"
    ok.mkdir()
    (ok / "wrapper.py").write_text("")
    res = agent.op_cancel({"root": str(root), "tokens": ["aaaaaaaaaaaa", "bbbbbbbbbbbb"],
                           "grace_s": 1})["results"]  # fmt: skip
    assert "error" in res["aaaaaaaaaaaa"] and res["bbbbbbbbbbbb"]["found"] is True
    fenced = agent.op_kill_stale({"root": str(root), "tokens": ["aaaaaaaaaaaa"]})["results"]
    assert fenced["aaaaaaaaaaaa"] == {"found": True, "killed": 0}


def test_cancels_and_fencing_cost_one_round_trip_per_host(svc, dispatcher, tmp_path):
    """Five cancels on one host go out in one exec, not five; so do five fences."""
    add_local_hosts(svc, tmp_path, 1)
    ids = [svc.submit(command="sleep 60", cpus=0.5) for _ in range(5)]
    tick_until(dispatcher, lambda: all(_running(svc, i) for i in ids), timeout=30)
    quiet = dispatcher.tick().round_trips  # a poll
    svc.cancel(ids)
    assert dispatcher.tick().round_trips == quiet + 1  # the poll and one cancel call
    tick_until(dispatcher, lambda: all_ended(svc), timeout=30, pause=0.2)
    assert {svc.get_job(i)["state"] for i in ids} == {"cancelled"}
    # five attempts lost at once (their wrappers killed): one fencing call for all of them
    ids = [svc.submit(command="sleep 60", cpus=0.5, retries=1) for _ in range(5)]
    tick_until(dispatcher, lambda: all(_running(svc, i) for i in ids), timeout=30)
    for i in ids:
        info = read_json(Path(svc.ledger.attempts_for(i)[0]["remote_dir"]) / "wrapper.json")
        os.kill(info["pid"], signal.SIGKILL)
    time.sleep(0.2)
    fenced_before = dispatcher.stats.fenced
    trips = dispatcher.tick().round_trips
    assert dispatcher.stats.fenced == fenced_before + 5
    assert trips == quiet + 2  # the poll, one fencing call, one launch of the five again
    svc.cancel(ids)
    tick_until(dispatcher, lambda: all_ended(svc), timeout=30, pause=0.2)


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


def test_losses_before_a_job_ran_are_free_only_up_to_a_limit(svc, dispatcher, tmp_path):
    """Attempts lost before the ledger saw them run (launches whose answer never came, hosts
    down while starting) spend no retry, but only FREE_LOSSES of them: a job with no retries
    is not started again and again (it was, on every host in turn)."""
    from inventory.supervisor import AttemptStatus
    from lepton_tui.dispatch import outcome, record

    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="true")
    states = []
    for k in range(outcome.FREE_LOSSES + 1):
        token = f"{k:012x}"
        svc.ledger.start_attempt(job_id, "local0", token, [])
        a = svc.ledger.attempt_row(token)
        with svc.ledger.tx():
            record.apply_status(
                dispatcher.ctx, a, AttemptStatus(token, "lost", reason="host went away")
            )
        states.append(svc.get_job(job_id)["state"])
    assert states == ["queued"] * outcome.FREE_LOSSES + ["failed"]
    # an attempt the host says did start spends a retry at once, whatever the ledger saw
    other = svc.submit(command="true")
    svc.ledger.start_attempt(other, "local0", "feedfeedfeed", [])
    a = svc.ledger.attempt_row("feedfeedfeed")
    started = AttemptStatus("feedfeedfeed", "lost", started_at=time.time(), reason="killed")
    with svc.ledger.tx():
        record.apply_status(dispatcher.ctx, a, started)
    assert svc.get_job(other)["state"] == "failed"
    assert svc.ledger.get_attempt("feedfeedfeed")["started_at"] == started.started_at


def test_fencing_scans_when_the_jobs_directory_cannot_be_listed(tmp_path, monkeypatch):
    """A jobs directory that cannot be listed (EIO, ESTALE) must not stop fencing: the job's
    processes are found by token and killed (the call used to fail, and the job was held)."""
    import errno
    import subprocess

    from inventory.remote import agent

    token = "cccccccccccc"
    # its own session, as the wrapper starts a job (the scan kills the job's whole session)
    proc = subprocess.Popen(
        ["sleep", "60"], env={"LEPTON_ATTEMPT": token, "PATH": "/usr/bin:/bin"},
        start_new_session=True,
    )  # fmt: skip
    try:
        root = tmp_path / "root"
        (root / "jobs").mkdir(parents=True)
        real = agent.os.listdir

        def failing(path):  # noqa: ANN001, ANN202
            if str(path).endswith("jobs"):
                raise OSError(errno.EIO, "Input/output error", str(path))
            return real(path)

        monkeypatch.setattr(agent.os, "listdir", failing)
        res = agent.op_kill_stale({"root": str(root), "tokens": [token]})["results"][token]
        assert res == {"found": False, "killed": 1}
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_config_files_may_be_unreadable_attempt_files_may_not(tmp_path):
    """The agent reads a host's configuration leniently (an unreadable logind drop-in is not a
    failed preflight) and an attempt's own files strictly (unreadable is not absent)."""
    from inventory.remote import agent

    (tmp_path / "conf").mkdir()  # reading a directory fails with EISDIR, like EACCES would
    assert agent.read_text(str(tmp_path / "conf")) is None
    with pytest.raises(OSError):
        agent.read_text(str(tmp_path / "conf"), strict=True)
    assert agent.read_text(str(tmp_path / "absent"), strict=True) is None


def test_the_scan_kills_the_job_s_session_but_no_one_else_s(tmp_path):
    """A process that carries the token inside a session led by something else (a shell that
    does not) is killed alone; the session's other processes are not the attempt's."""
    import subprocess

    from inventory.remote import agent

    token = "dddddddddddd"
    shell = subprocess.Popen(
        ["bash", "-c", f"LEPTON_ATTEMPT={token} sleep 60 & sleep 60 & wait"],
        env={"PATH": "/usr/bin:/bin"}, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        pids: list[int] = []
        while len(pids) < 1 and time.monotonic() < deadline:
            pids = agent.token_pids([token])[token]
            time.sleep(0.05)
        (child,) = pids  # only the marked sleep: not the shell, not the other sleep
        res = agent.op_kill_stale({"root": str(tmp_path), "tokens": [token]})["results"][token]
        assert res == {"found": False, "killed": 1}
        assert shell.poll() is None  # the shell (and its other child) live on
    finally:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()


def test_a_host_removed_while_unreconciled_does_not_stop_placement(svc, tmp_path):
    """A restart finds attempts on a host it cannot reach; an admin removes that host with
    --force. It is never polled again, so placement must stop waiting for it (it waited until
    the next restart, with every job 'reconciling')."""
    svc.add_host("gone", address="127.0.0.1", port=1, capacity={"cpus": 4, "mem_mb": 8192})
    old = svc.submit(command="sleep 30")
    svc.ledger.start_attempt(old, "gone", "abcabcabcabc", [])
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="true")
    d = Dispatcher(svc)
    assert d.acquire()
    try:
        d.tick()
        assert svc.get_job(job_id)["state"] == "queued"  # waits for 'gone' to be reconciled
        svc.remove_host("gone", force=True)
        tick_until(d, lambda: svc.get_job(job_id)["state"] == "succeeded", timeout=30, pause=0.2)
    finally:
        d.close()


def test_a_wrapper_keeps_trying_to_record_the_end(tmp_path, monkeypatch):
    """The job ends while its directory is out of reach: the wrapper retries its end records
    instead of dying without them (the attempt then read as lost, and the job ran again)."""
    d = _attempt_dir(tmp_path, "true")
    real_write = wrapper.write_atomic
    failures = []

    def flaky(path: str, data: bytes) -> None:
        if path.endswith("end.json") and len(failures) < 2:
            failures.append(path)
            raise FileNotFoundError(2, "No such file or directory", path)
        real_write(path, data)

    monkeypatch.setattr(wrapper, "write_atomic", flaky)
    assert _run_wrapper(d) == 0
    assert len(failures) == 2 and (d / "exit_code").read_text() == "0\n"


def test_failing_fences_say_so_once_per_streak(svc, tmp_path, monkeypatch):
    """A host whose old attempts cannot be stopped takes no new jobs: an event says why, once
    per streak, whether one dispatcher runs or `serve --once` starts a fresh one each time; a
    later streak is reported again."""
    once = _serve_once(svc)
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="sleep 60", retries=2)

    def broken(self, host, atts):  # noqa: ANN001, ANN202
        raise RuntimeError("agent crashed")

    def failing_streak(attempt_no: int) -> None:
        deadline = time.monotonic() + 20
        while len(svc.ledger.attempts_for(job_id)) < attempt_no or not _running(svc, job_id):
            assert time.monotonic() < deadline
            once()
        info = read_json(Path(svc.ledger.attempts_for(job_id)[-1]["remote_dir"]) / "wrapper.json")
        with monkeypatch.context() as m:
            m.setattr(Dispatcher, "_kill_stale", broken)
            os.kill(info["pid"], signal.SIGKILL)
            for _ in range(4):
                once()
                time.sleep(0.1)
        os.kill(info["job_pid"], signal.SIGKILL)

    failing_streak(1)
    events = svc.ledger.query("SELECT * FROM events WHERE kind = 'host.fence_failed'")
    assert len(events) == 1 and "agent crashed" in events[0]["message"]
    failing_streak(2)  # fenced in between (the job ran again), then a new streak
    assert len(svc.ledger.query("SELECT * FROM events WHERE kind = 'host.fence_failed'")) == 2
    svc.cancel([job_id])
    deadline = time.monotonic() + 30
    while not all_ended(svc) and time.monotonic() < deadline:
        once()
        time.sleep(0.2)
    assert all_ended(svc)


def test_an_unlistable_jobs_directory_is_no_conclusion(tmp_path, monkeypatch):
    """Listing the jobs directory fails (EIO, ESTALE): every asked attempt reads "unreadable"
    and the poll succeeds (it failed, the host went down after the grace, and its jobs ran
    again elsewhere while the first copies still ran)."""
    import errno

    from inventory.remote import agent

    (tmp_path / "jobs").mkdir()

    def failing(path):  # noqa: ANN001, ANN202
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(agent.os, "listdir", failing)
    st = agent.statuses(str(tmp_path), ["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    assert {v["state"] for v in st.values()} == {"unreadable"}


def test_a_launch_that_fails_partway_leaves_nothing(tmp_path, monkeypatch):
    """A full disk partway through writing an attempt: the half-made directory is removed and
    the launch fails (counted, retried), instead of reading "wrapper never started"."""
    import builtins
    import errno

    from inventory.remote import agent

    real_open = builtins.open

    def full(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if str(path).endswith("wrapper.py"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full)
    item = {"job_id": 3, "token": "eeeeeeeeeeee", "command": "true"}
    with pytest.raises(OSError, match="No space"):
        agent.launch_one(str(tmp_path), item, "")
    assert list((tmp_path / "jobs").iterdir()) == []


def test_a_cancel_goes_out_once_even_from_serve_once(svc, tmp_path, monkeypatch):
    """`serve --once` from a timer: a fresh dispatcher each run. The cancel's sending is kept in
    the ledger, so a job that takes its time to stop is not sent TERM again every run."""
    from inventory import supervisor

    svc.set_setting("cancel_grace_s", 30.0)
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="trap '' TERM; sleep 60")

    once = _serve_once(svc)
    deadline = time.monotonic() + 20
    while not _running(svc, job_id) and time.monotonic() < deadline:
        once()
    sent = []
    real = supervisor.cancel_batch

    def counting(transport, spec, tokens, grace_s=10, timeout=30):  # noqa: ANN001, ANN202
        sent.append(list(tokens))
        return real(transport, spec, tokens, grace_s, timeout)

    monkeypatch.setattr(supervisor, "cancel_batch", counting)
    svc.cancel([job_id])
    for _ in range(3):
        once()
    assert len(sent) == 1 and svc.get_job(job_id)["state"] == "cancelling"
    info = read_json(Path(svc.ledger.attempts_for(job_id)[0]["remote_dir"]) / "wrapper.json")
    os.killpg(info["job_pid"], signal.SIGKILL)
    while svc.get_job(job_id)["state"] != "cancelled" and time.monotonic() < deadline + 20:
        once()
        time.sleep(0.1)
    assert svc.get_job(job_id)["state"] == "cancelled"


def test_a_stuck_job_leader_is_found_through_its_wrapper(tmp_path, monkeypatch):
    """A job in uninterruptible sleep (state D, typical of a hung network filesystem) is not
    read (that can hang); it is found as the child of its wrapper, found by command line."""
    import subprocess

    from inventory.remote import agent

    token = "ffffffffffff"
    d = tmp_path / "jobs" / f"5-{token}"
    d.mkdir(parents=True)
    (d / "wrapper.py").write_text(
        "import subprocess, sys, time\n"
        "p = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    fake = subprocess.Popen([sys.executable, str(d / "wrapper.py")], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    job = int(fake.stdout.readline())
    try:
        real = agent.proc_stat
        monkeypatch.setattr(
            agent, "proc_stat", lambda pid: ("D",) + real(pid)[1:] if pid == job else real(pid)
        )
        assert sorted(agent.token_pids([token])[token]) == sorted([fake.pid, job])
    finally:
        for pid in (job, fake.pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        fake.wait()


def test_a_full_disk_at_the_end_is_not_waited_out(tmp_path, monkeypatch):
    """Only a directory out of reach is worth waiting for; a full disk is not: the wrapper gives
    up at once (it kept the attempt 'running', uncancellable, for as long as it waited)."""
    import errno

    d = _attempt_dir(tmp_path, "true")
    real_write = wrapper.write_atomic

    def full(path: str, data: bytes) -> None:
        if path.endswith("end.json"):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        real_write(path, data)

    monkeypatch.setattr(wrapper, "write_atomic", full)

    def no_back_off(seconds: float) -> None:
        raise AssertionError(f"backed off {seconds} s for a full disk")

    monkeypatch.setattr(wrapper.time, "sleep", no_back_off)
    with pytest.raises(OSError, match="No space"):
        _run_wrapper(d)
