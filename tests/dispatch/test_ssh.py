"""The dispatcher against the real sshd test bed (three loopback hosts): load, crash, host loss."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lepton_tui.dispatch.hostpool import HostPool
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.logs import follow_log
from lepton_tui.service import Service
from tests.dispatch.helpers import (
    add_bed_hosts,
    alive,
    all_ended,
    launched_dirs,
    read_json,
    tick_until,
    wait_until,
)

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


def _dispatcher(svc: Service) -> Dispatcher:
    # A short reconnect backoff, so a host whose sshd returns is seen again within a second.
    d = Dispatcher(svc, pool=HostPool(svc.known_hosts, backoff_max=1.0), poll_timeout_s=10)
    assert d.acquire()
    return d


def _intervals_overlap(spans: list[tuple[float, float]]) -> bool:
    spans = sorted(spans)
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def test_sixty_mixed_jobs_respect_capacity_and_gpu_indices(svc, sshbed, tmp_path):
    hosts = sshbed(3)
    add_bed_hosts(svc, hosts, root=tmp_path, gpus={"h2": 2, "h3": 2}, cpus=6, mem_mb=8192)
    specs = {}
    for i in range(60):
        gpus = 1 if i % 5 == 0 else 0
        cpus = 2 if i % 3 == 0 else 1
        mem = "2G" if i % 4 == 0 else "512M"
        sleep, code = 0.2 + (i % 4) * 0.2, i % 3
        cmd = (
            'echo "start $(date +%s.%N) GPU=${CUDA_VISIBLE_DEVICES-unset}"; '
            f'sleep {sleep}; echo "end $(date +%s.%N)"; exit {code}'
        )
        job_id = svc.submit(command=cmd, gpus=gpus, cpus=cpus, mem=mem)
        specs[job_id] = (gpus, cpus, 2048 if mem == "2G" else 512, code)
    d = _dispatcher(svc)
    steady_trips = []
    try:
        deadline = time.monotonic() + 150
        while not all_ended(svc):
            assert time.monotonic() < deadline, svc.job_counts()
            before = (d.stats.launches, d.stats.cancels_sent, d.stats.fenced)
            result = d.tick()
            if (d.stats.launches, d.stats.cancels_sent, d.stats.fenced) == before:
                steady_trips.append((result.round_trips, result.polled))
            time.sleep(0.05)
    finally:
        d.close()
    # a tick that launches nothing costs exactly one round trip per host
    assert steady_trips and all(trips == polled == 3 for trips, polled in steady_trips)
    usage: dict[str, list[tuple[float, float, float, int]]] = {h.name: [] for h in hosts}
    pool = HostPool(svc.known_hosts)
    gpu_spans: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for job_id, (gpus, cpus, mem_mb, code) in specs.items():
        job = svc.get_job(job_id)
        assert job["exit_code"] == code
        assert job["state"] == ("succeeded" if code == 0 else "failed")
        (attempt,) = svc.ledger.attempts_for(job_id)
        if job_id % 10 == 0:  # a few through `logs` over SSH, the rest from the files themselves
            text = "".join(follow_log(svc, job_id, pool=pool))
        else:
            text = (Path(attempt["remote_dir"]) / "stdout").read_text()
        out = text.split()
        assert out[0] == "start" and out[3] == "end", out
        start, end, seen = float(out[1]), float(out[4]), out[2].removeprefix("GPU=")
        assert seen == ",".join(map(str, attempt["gpu_ids"]))
        assert len(attempt["gpu_ids"]) == gpus
        if gpus:
            assert attempt["host"] in ("h2", "h3")
        usage[attempt["host"]].append((start, end, cpus, mem_mb))
        for g in attempt["gpu_ids"]:
            gpu_spans.setdefault((attempt["host"], g), []).append((start, end))
    for host, spans in usage.items():
        for t, *_ in spans:  # what ran at each start instant, as the jobs themselves saw it
            now = [s for s in spans if s[0] <= t < s[1]]
            assert sum(s[2] for s in now) <= 6, (host, t)
            assert sum(s[3] for s in now) <= 8192, (host, t)
    for key, spans in gpu_spans.items():
        assert not _intervals_overlap(spans), key
    assert sum(len(v) for v in usage.values()) == 60
    pool.close()


def test_kill_9_mid_burst_then_restart_runs_every_job_once(svc, sshbed, tmp_path, home):
    hosts = sshbed(3)
    roots = add_bed_hosts(svc, hosts, root=tmp_path, cpus=4)
    marks = tmp_path / "marks.log"
    ids = [svc.submit(command=f"echo m{i} >> {marks}; sleep 0.5") for i in range(30)]
    env = {**os.environ, "LEPTON_HOME": str(home)}
    serve = [sys.executable, "-m", "lepton_tui", "serve", "--tick", "0.2"]
    db = sqlite3.connect(str(home / "ledger.db"), timeout=30)

    def attempts() -> int:
        return db.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]

    killed_at = []
    for threshold in (1, 13):  # inside the first burst, then inside the second
        proc = subprocess.Popen(serve, env=env, stderr=subprocess.PIPE)
        try:
            wait_until(lambda t=threshold: attempts() >= t, timeout=60, pause=0.002)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        killed_at.append(
            db.execute("SELECT state, COUNT(*) FROM attempts GROUP BY state").fetchall()
        )
    proc = subprocess.Popen(serve, env=env, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: all_ended(svc), timeout=120, pause=0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    db.close()
    assert proc.returncode == 0, err.decode()
    assert dict(killed_at[0]).get("starting"), killed_at  # killed between intent and launch
    lines = marks.read_text().split()
    assert sorted(lines) == sorted(f"m{i}" for i in range(30)), killed_at
    launched = [d.name for root in roots.values() for d in launched_dirs(root)]
    assert sorted(int(n.split("-")[0]) for n in launched) == sorted(ids)
    for job_id in ids:
        assert svc.get_job(job_id)["state"] == "succeeded"
        assert len(svc.ledger.attempts_for(job_id)) == 1


def test_host_lost_jobs_requeue_and_stale_copies_are_fenced(svc, sshbed, tmp_path):
    hosts = sshbed(3)
    roots = add_bed_hosts(svc, hosts, root=tmp_path, cpus=4)
    svc.set_setting("host_grace_s", 1.5)
    # A first run waits for the test's release file; a retry ends at once. Stale copies are
    # therefore still running when their host comes back, whatever the machine's load.
    release = tmp_path / "release"
    ids = []
    for i in range(4):
        mark = tmp_path / f"ran-{i}"
        cmd = (
            f"if [ -e {mark} ]; then echo retry; else touch {mark}; "
            f"until [ -e {release} ]; do sleep 0.05; done; echo first; fi"
        )
        ids.append(svc.submit(command=cmd, cpus=2, retries=1))
    d = _dispatcher(svc)
    try:
        tick_until(d, lambda: svc.job_counts() == {"running": 4}, timeout=30)
        on = {}
        for job_id in ids:
            (a,) = svc.ledger.attempts_for(job_id)
            on.setdefault(a["host"], []).append(a)
        victim = next(h for h in hosts if h.name in on)
        stale = on[victim.name]
        victim.stop()
        tick_until(
            d, lambda: all(len(svc.ledger.attempts_for(a["job_id"])) == 2 for a in stale),
            timeout=30,
        )  # fmt: skip
        host = svc.get_host(victim.name)
        assert host["state"] == "down"
        down = svc.ledger.query_one(
            "SELECT at FROM events WHERE kind = 'host.down' AND host = ?", (victim.name,)
        )
        # not before the grace period: counted from the host's last answer, by the ledger's clock
        assert down is not None and down["at"] - host["last_seen"] >= 1.5
        for a in stale:
            first, second = svc.ledger.attempts_for(a["job_id"])
            assert first["state"] == "lost" and "down" in first["reason"]
            assert second["host"] != victim.name
        pids = [read_json(Path(a["remote_dir"]) / "wrapper.json")["job_pid"] for a in stale]
        assert all(alive(p) for p in pids)  # the stale copies still run on the lost host
        victim.start()
        tick_until(d, lambda: svc.get_host(victim.name)["state"] == "up", timeout=30)
        fenced = svc.ledger.query("SELECT * FROM events WHERE kind = 'attempt.fenced'")
        assert sorted(e["job_id"] for e in fenced) == sorted(a["job_id"] for a in stale)
        assert all(e["host"] == victim.name for e in fenced)
        wait_until(lambda: not any(alive(p) for p in pids), timeout=5)
        release.touch()
        tick_until(d, lambda: all_ended(svc), timeout=60, pause=0.2)
    finally:
        d.close()
        sshbed(3)
    moved = {a["job_id"] for a in stale}
    for job_id in ids:
        attempts = svc.ledger.attempts_for(job_id)
        assert svc.get_job(job_id)["state"] == "succeeded"
        assert [a["state"] for a in attempts].count("succeeded") == 1
        out = (Path(attempts[-1]["remote_dir"]) / "stdout").read_text()
        assert out == ("retry\n" if job_id in moved else "first\n")
    for a in stale:
        d_ = Path(a["remote_dir"])
        assert (d_ / "fenced").exists() and not (d_ / "exit_code").exists()
    assert len(launched_dirs(roots[victim.name])) == len(stale) + sum(
        1 for j in ids for a in svc.ledger.attempts_for(j)
        if a["host"] == victim.name and a["state"] == "succeeded"
    )  # fmt: skip


def test_logs_follow_a_live_job_from_another_process(svc, sshbed, tmp_path, home):
    hosts = sshbed(3)
    add_bed_hosts(svc, hosts, root=tmp_path)
    svc.set_setting("tick_s", 0.2)
    job_id = svc.submit(command="for i in 1 2 3 4 5; do echo line$i; sleep 0.3; done")
    d = Dispatcher(svc)
    handle = d.start_in_thread()
    try:
        assert handle.dispatching
        other = Dispatcher(home)
        assert not other.start_in_thread().dispatching  # one dispatcher per ledger
        other.close()
        out = subprocess.run(
            [sys.executable, "-m", "lepton_tui", "logs", str(job_id), "-f"],
            env={**os.environ, "LEPTON_HOME": str(home)}, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
    finally:
        handle.stop()
        d.close()
    assert out.returncode == 0, out.stderr
    assert out.stdout == "".join(f"line{i}\n" for i in range(1, 6))
    assert svc.get_job(job_id)["state"] == "succeeded"


def test_cancel_during_starting_and_failed_dependency_over_ssh(svc, sshbed, tmp_path):
    hosts = sshbed(3)
    roots = add_bed_hosts(svc, hosts, root=tmp_path)
    doomed = svc.submit(command="echo should-not-run")
    bad = svc.submit(command="exit 7")
    after_bad = svc.submit(command="echo nope", after=[bad])
    running = svc.submit(command="echo started; sleep 30")

    def cancel_in_starting(starts: list) -> None:
        if any(s.job_id == doomed for s in starts):
            assert svc.get_job(doomed)["state"] == "starting"
            assert svc.cancel([doomed])[0].ok

    d = Dispatcher(svc, pool=HostPool(svc.known_hosts), before_launch=cancel_in_starting)
    assert d.acquire()
    try:
        tick_until(d, lambda: svc.get_job(running)["state"] == "running", timeout=30)
        assert svc.cancel([running])[0].ok
        tick_until(d, lambda: all_ended(svc), timeout=60, pause=0.2)
    finally:
        d.close()
    job = svc.get_job(doomed)
    assert job["state"] == "cancelled" and job["reason"] == "cancelled before it started"
    (attempt,) = svc.ledger.attempts_for(doomed)
    assert attempt["state"] == "cancelled"
    assert not any(
        p.name.endswith(attempt["token"]) for r in roots.values() for p in launched_dirs(r)
    )
    assert svc.get_job(bad)["exit_code"] == 7
    job = svc.get_job(after_bad)
    assert job["state"] == "cancelled" and job["reason"] == f"dependency {bad} failed"
    assert svc.ledger.attempts_for(after_bad) == []
    assert svc.get_job(running)["state"] == "cancelled"
    (attempt,) = svc.ledger.attempts_for(running)
    assert not alive(read_json(Path(attempt["remote_dir"]) / "wrapper.json")["job_pid"])
