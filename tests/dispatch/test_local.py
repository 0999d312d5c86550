"""The dispatcher on hosts that are this machine (local transport): the whole loop, no SSH."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from inventory import supervisor
from inventory.hostspec import HostSpec
from inventory.supervisor import LaunchSpec
from inventory.transport import LocalTransport
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.dispatch.view import REASON_RECONCILING
from lepton_tui.logs import follow_log
from lepton_tui.service import Service
from tests.dispatch.helpers import (
    add_local_hosts,
    alive,
    all_ended,
    attempt_dirs,
    launched_dirs,
    read_json,
    tick_until,
)


def _events(svc: Service, kind: str) -> list[dict]:
    return svc.ledger.query("SELECT * FROM events WHERE kind = ? ORDER BY id", (kind,))


def test_jobs_run_to_their_exit_codes_with_logs(svc, dispatcher, tmp_path):
    add_local_hosts(svc, tmp_path, 2, gpus=2)
    ids = [
        svc.submit(command=f"echo out-{i} GPU=$CUDA_VISIBLE_DEVICES; echo err-{i} >&2; exit {i % 3}",
                   gpus=i % 2)
        for i in range(6)
    ]  # fmt: skip
    tick_until(dispatcher, lambda: all_ended(svc), timeout=30)
    for i, job_id in enumerate(ids):
        job = svc.get_job(job_id)
        assert job["exit_code"] == i % 3
        assert job["state"] == ("succeeded" if i % 3 == 0 else "failed")
        out = "".join(follow_log(svc, job_id))
        assert out.startswith(f"out-{i} GPU=")
        gpus = out.strip().split("GPU=")[1]
        assert (gpus != "") == bool(i % 2)
        assert "".join(follow_log(svc, job_id, stream="stderr")) == f"err-{i}\n"
        (attempt,) = svc.ledger.attempts_for(job_id)
        assert attempt["state"] == job["state"] and attempt["remote_dir"]
        # Both ends come from the host's clock, so even a job this quick never ends before it starts.
        assert attempt["started_at"] is not None and attempt["ended_at"] >= attempt["started_at"]
    assert dispatcher.stats.launches == 6


def test_time_limit_is_enforced_on_the_host(svc, dispatcher, tmp_path):
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="sleep 30", time="1s")
    tick_until(dispatcher, lambda: all_ended(svc), timeout=30, pause=0.2)
    job = svc.get_job(job_id)
    assert job["state"] == "timeout", job


def test_cancel_queued_and_running(svc, dispatcher, tmp_path):
    add_local_hosts(svc, tmp_path, 1, cpus=1)
    running = svc.submit(command="echo started; sleep 60")
    queued = svc.submit(command="sleep 60")
    tick_until(dispatcher, lambda: svc.get_job(running)["state"] == "running", timeout=20)
    assert svc.get_job(queued)["state"] == "queued"
    (r_q,) = svc.cancel([queued])
    assert r_q.ok and svc.get_job(queued)["state"] == "cancelled"
    (r_r,) = svc.cancel([running])
    assert r_r.ok and svc.get_job(running)["state"] == "cancelling"
    tick_until(dispatcher, lambda: all_ended(svc), timeout=30, pause=0.2)
    assert svc.get_job(running)["state"] == "cancelled"
    (attempt,) = svc.ledger.attempts_for(running)
    info = read_json(Path(attempt["remote_dir"]) / "wrapper.json")
    assert not alive(info["job_pid"])
    assert svc.ledger.attempts_for(queued) == []


def test_cancel_during_starting_never_launches(svc, tmp_path):
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="echo should-not-run")
    seen = []

    def cancel_now(starts):
        seen.extend(s.job_id for s in starts)
        assert svc.get_job(job_id)["state"] == "starting"
        assert svc.cancel([job_id])[0].ok

    d = Dispatcher(svc, before_launch=cancel_now)
    assert d.acquire()
    try:
        d.tick()
    finally:
        d.close()
    assert seen == [job_id]
    job = svc.get_job(job_id)
    assert job["state"] == "cancelled"
    (attempt,) = svc.ledger.attempts_for(job_id)
    assert attempt["state"] == "cancelled"
    assert attempt_dirs(tmp_path / "local0") == []


def test_dependency_after_ok(svc, dispatcher, tmp_path):
    add_local_hosts(svc, tmp_path, 1)
    bad = svc.submit(command="exit 3")
    good = svc.submit(command="true")
    after_bad = svc.submit(command="echo nope", after=[bad])
    after_good = svc.submit(command="echo yes", after=[good])
    dispatcher.tick()
    assert svc.get_job(after_bad)["reason"] == f"waiting for dependency {bad}"
    tick_until(dispatcher, lambda: all_ended(svc), timeout=30)
    job = svc.get_job(after_bad)
    assert job["state"] == "cancelled" and job["reason"] == f"dependency {bad} failed"
    assert svc.ledger.attempts_for(after_bad) == []
    assert svc.get_job(after_good)["state"] == "succeeded"
    assert "".join(follow_log(svc, after_good)) == "yes\n"


def test_reasons_unschedulable_and_draining_the_last_gpu_host(svc, dispatcher, tmp_path):
    add_local_hosts(svc, tmp_path, 1, cpus=2)
    svc.add_host("gpu0", local=True, root_dir=str(tmp_path / "gpu0"), gpus_override=1,
                 capacity={"cpus": 2, "mem_mb": 4096})  # fmt: skip
    huge = svc.submit(command="true", cpus=64)
    gpu_long = svc.submit(command="sleep 3", gpus=1)
    dispatcher.tick()
    assert svc.get_job(huge)["reason"].startswith("unschedulable: fits no host (needs 64 CPUs")
    assert svc.get_job(gpu_long)["state"] == "running"
    gpu_next = svc.submit(command="true", gpus=1)
    dispatcher.tick()
    assert svc.get_job(gpu_next)["reason"] == "waiting for GPUs"
    svc.set_draining("gpu0", True)
    dispatcher.tick()
    reason = svc.get_job(gpu_next)["reason"]
    assert reason.startswith("unschedulable: fits no host (needs 1 GPU,"), reason
    assert "draining" in reason
    # drain lets the running job finish and places nothing new there
    tick_until(dispatcher, lambda: svc.get_job(gpu_long)["state"] == "succeeded", timeout=20)
    dispatcher.tick()
    assert svc.get_job(gpu_next)["state"] == "queued"
    decisions = svc.ledger.query("SELECT * FROM decisions WHERE job_id = ?", (gpu_next,))
    assert any("unschedulable" in d["explanation"] for d in decisions)
    svc.set_draining("gpu0", False)
    tick_until(dispatcher, lambda: svc.get_job(gpu_next)["state"] == "succeeded", timeout=20)


def test_recovery_relaunches_an_unlaunched_intent_once(svc, tmp_path):
    """A dispatcher that died between writing `starting` and launching: the next one launches it,
    with the same token, once; one that died after launching finds it running and leaves it."""
    (name,) = add_local_hosts(svc, tmp_path, 1)
    never = svc.submit(command="echo once >> " + str(tmp_path / "never.log"))
    already = svc.submit(command="echo once >> " + str(tmp_path / "already.log") + "; sleep 1")
    svc.ledger.start_attempt(never, name, "tok-never", [])
    svc.ledger.start_attempt(already, name, "tok-already", [])
    spec = HostSpec(name, None, transport="local", root_dir=str(tmp_path / name))
    result = supervisor.launch(
        LocalTransport(name), spec,
        LaunchSpec(already, "tok-already", svc.get_job(already)["command"]),
    )  # fmt: skip
    assert not result.already_launched
    d = Dispatcher(svc)
    assert d.acquire()
    try:
        tick_until(d, lambda: all_ended(svc), timeout=30)
        assert d.stats.relaunches == 1
    finally:
        d.close()
    assert (tmp_path / "never.log").read_text() == "once\n"
    assert (tmp_path / "already.log").read_text() == "once\n"
    assert len(launched_dirs(tmp_path / name)) == 2
    for job_id in (never, already):
        assert svc.get_job(job_id)["state"] == "succeeded"
        assert len(svc.ledger.attempts_for(job_id)) == 1


def test_placement_waits_for_reconciliation(svc, tmp_path):
    """A running attempt on a host that does not answer blocks placement until the host is
    declared down after the grace period; then the job is requeued and runs elsewhere."""
    add_local_hosts(svc, tmp_path, 1)
    svc.add_host("gone", address="127.0.0.1", port=1, root_dir="~/.lepton-gone")
    svc.set_setting("host_grace_s", 1.0)
    moved = svc.submit(command="echo moved", retries=1)
    fresh = svc.submit(command="echo fresh")
    svc.ledger.start_attempt(moved, "gone", "tok-gone", [])
    svc.ledger.transition_attempt("tok-gone", "running", job_state="running")
    d = Dispatcher(svc)
    assert d.acquire()
    try:
        result = d.tick()
        assert not result.reconciled and result.placed == 0
        assert svc.get_job(fresh)["reason"] == REASON_RECONCILING
        tick_until(d, lambda: all_ended(svc), timeout=30, pause=0.2)
    finally:
        d.close()
    assert svc.get_host("gone")["state"] == "down"
    first, second = svc.ledger.attempts_for(moved)
    assert first["state"] == "lost" and first["fenced_at"] is None
    assert second["host"] == "local0" and second["state"] == "succeeded"
    assert svc.get_job(fresh)["state"] == "succeeded"


def test_lost_attempt_is_retried_and_fenced(svc, dispatcher, tmp_path):
    """The wrapper killed on the host (OOM killer): the attempt is lost, its job retried, and
    the job process it left behind is killed (fenced)."""
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(
        command="echo run >> " + str(tmp_path / "runs.log") + "; sleep 2", retries=1
    )
    tick_until(dispatcher, lambda: svc.get_job(job_id)["state"] == "running", timeout=20)
    (attempt,) = svc.ledger.attempts_for(job_id)
    info = read_json(Path(attempt["remote_dir"]) / "wrapper.json")
    os.kill(info["pid"], signal.SIGKILL)
    tick_until(dispatcher, lambda: len(svc.ledger.attempts_for(job_id)) == 2, timeout=20)
    first = svc.ledger.attempts_for(job_id)[0]
    assert first["state"] == "lost" and first["fenced_at"] is not None
    time.sleep(0.2)
    assert not alive(info["job_pid"])
    fenced = svc.ledger.query("SELECT * FROM events WHERE kind = 'attempt.fenced'")
    assert len(fenced) == 1 and fenced[0]["job_id"] == job_id
    tick_until(dispatcher, lambda: all_ended(svc), timeout=20, pause=0.2)
    assert svc.get_job(job_id)["state"] == "succeeded"
    assert svc.get_job(job_id)["attempts_used"] == 2


def test_lost_without_retries_fails_with_the_reason(svc, dispatcher, tmp_path):
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="sleep 5")
    tick_until(dispatcher, lambda: svc.get_job(job_id)["state"] == "running", timeout=20)
    (attempt,) = svc.ledger.attempts_for(job_id)
    info = read_json(Path(attempt["remote_dir"]) / "wrapper.json")
    os.kill(info["pid"], signal.SIGKILL)
    tick_until(dispatcher, lambda: all_ended(svc), timeout=20)
    job = svc.get_job(job_id)
    assert job["state"] == "failed"
    assert "lost" in job["reason"] and "no retries left" in job["reason"]
