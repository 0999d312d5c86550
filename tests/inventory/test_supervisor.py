"""Remote supervision against a real sshd: launch, status, logs, cancel, time limit, failures."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import psutil
import pytest

from inventory import supervisor as sv
from inventory.fanout import Failed, Ok
from inventory.hostspec import HostSpec
from inventory.transport import SSHTransport
from tests.inventory.conftest import connect
from tests.sshbed import SSHBed, SSHHost

pytestmark = pytest.mark.ssh


def token() -> str:
    return uuid.uuid4().hex[:16]


def wait_for(
    t: SSHTransport, spec: HostSpec, tok: str, states: set[str], limit: float = 15
) -> sv.AttemptStatus:
    """Poll until the attempt reaches one of `states` (the loop bound is generous, not asserted)."""
    deadline = time.monotonic() + limit
    while True:
        st = sv.status(t, spec, [tok])[tok]
        if st.state in states or time.monotonic() > deadline:
            return st
        time.sleep(0.05)


def read_all(
    t: SSHTransport, spec: HostSpec, tok: str, stream: str = "stdout", chunk_size: int = 1 << 20
) -> bytes:
    data, offset = b"", 0
    while True:
        chunk, offset = sv.read_log(t, spec, tok, stream, offset, max_bytes=chunk_size)  # type: ignore[arg-type]
        if not chunk:
            return data
        data += chunk


def test_launch_run_and_read_logs(t2: SSHTransport, h2: SSHHost) -> None:
    spec, tok = h2.spec(), token()
    before = t2.round_trips
    res = sv.launch(t2, spec, sv.LaunchSpec(7, tok, "echo out; echo err >&2; sleep 0.3; exit 3"))
    assert t2.round_trips == before + 1
    assert not res.already_launched and res.remote_dir.endswith(f"/jobs/7-{tok}")
    assert sv.status(t2, spec, [tok])[tok].state in ("running", "done")
    st = wait_for(t2, spec, tok, {"done"})
    assert (st.state, st.exit_code, st.reason) == ("done", 3, None)
    assert st.started_at is not None and st.ended_at is not None and st.ended_at >= st.started_at
    assert read_all(t2, spec, tok, chunk_size=2) == b"out\n"  # read in pieces by offset
    assert read_all(t2, spec, tok, "stderr") == b"err\n"
    data, offset = sv.read_log(t2, spec, tok, "stdout", 4)
    assert (data, offset) == (b"", 4)  # following a log never re-reads it


def test_exactly_once_per_token(t2: SSHTransport, h2: SSHHost, tmp_path: Path) -> None:
    spec, tok = h2.spec(), token()
    counter = tmp_path / "runs"
    launch = sv.LaunchSpec(8, tok, f"echo run >> {counter}")
    assert not sv.launch(t2, spec, launch).already_launched
    assert sv.launch(t2, spec, launch).already_launched
    assert wait_for(t2, spec, tok, {"done"}).exit_code == 0
    assert counter.read_text() == "run\n"


def test_command_runs_literally(t2: SSHTransport, h2: SSHHost) -> None:
    spec, tok = h2.spec(), token()
    command = (
        "echo '$(id)'\n"
        "echo '`whoami`' \"`echo backtick`\"\n"
        "echo 'x; rm -rf /nonexistent-lepton'\n"
        "printf '%s\\n' 'héllo ✓ 日本'\n"
        'printf "%s|" "$NASTY"; echo\n'
        "cat <<'EOF'\nline one\n  $(not expanded)\nEOF\n"
    )
    env = {"NASTY": "'$(id)' `id`; rm -rf / \n ✓"}
    sv.launch(t2, spec, sv.LaunchSpec(9, tok, command, env=env))
    assert wait_for(t2, spec, tok, {"done"}).exit_code == 0
    assert read_all(t2, spec, tok).decode() == (
        "$(id)\n`whoami` backtick\nx; rm -rf /nonexistent-lepton\nhéllo ✓ 日本\n"
        "'$(id)' `id`; rm -rf / \n ✓|\nline one\n  $(not expanded)\n"
    )


def test_environment_workdir_and_gpus(t2: SSHTransport, h2: SSHHost, tmp_path: Path) -> None:
    spec = h2.spec()
    cmd = 'echo "[$CUDA_VISIBLE_DEVICES] $LEPTON_JOB_ID $LEPTON_ATTEMPT $(pwd) $FOO"; read x || echo eof'
    gpu_tok, cpu_tok = token(), token()
    sv.launch(t2, spec, sv.LaunchSpec(10, gpu_tok, cmd, str(tmp_path), {"FOO": "bar"}, [1, 3]))
    sv.launch(t2, spec, sv.LaunchSpec(11, cpu_tok, cmd, str(tmp_path), {}, []))
    wait_for(t2, spec, gpu_tok, {"done"})
    wait_for(t2, spec, cpu_tok, {"done"})
    assert read_all(t2, spec, gpu_tok) == f"[1,3] 10 {gpu_tok} {tmp_path} bar\neof\n".encode()
    assert read_all(t2, spec, cpu_tok) == f"[] 11 {cpu_tok} {tmp_path} \neof\n".encode()


def test_missing_workdir_is_a_failed_run(t2: SSHTransport, h2: SSHHost) -> None:
    spec, tok = h2.spec(), token()
    sv.launch(t2, spec, sv.LaunchSpec(12, tok, "true", workdir="/nonexistent/lepton"))
    st = wait_for(t2, spec, tok, {"done"})
    assert st.exit_code == 127 and "cannot start" in (st.reason or "")


def test_time_limit(t2: SSHTransport, h2: SSHHost) -> None:
    spec, tok = h2.spec(), token()
    sv.launch(
        t2,
        spec,
        sv.LaunchSpec(13, tok, "trap '' TERM; sleep 30", time_limit_s=0.5, kill_grace_s=0.3),
    )
    st = wait_for(t2, spec, tok, {"done"})
    assert (st.exit_code, st.timed_out, st.reason) == (124, True, "time limit")


def _session_alive(pid: int) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == pid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (psutil.NoSuchProcess, ProcessLookupError, PermissionError):
            pass
    return out


def test_cancel_kills_the_whole_tree_within_grace(t2: SSHTransport, h2: SSHHost) -> None:
    spec, tok = h2.spec(), token()
    # a job that ignores TERM and has children and grandchildren
    cmd = "trap '' TERM; (sleep 300 & sleep 300; wait) & sh -c 'trap \"\" TERM; sleep 300' & wait"
    sv.launch(t2, spec, sv.LaunchSpec(14, tok, cmd))
    st = wait_for(t2, spec, tok, {"running"})
    assert st.pid is not None
    deadline = time.monotonic() + 5
    while len(_session_alive(st.pid)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_session_alive(st.pid)) >= 4
    assert sv.cancel(t2, spec, tok, grace_s=3.0)
    # it returned without waiting out the grace: what ignores TERM is still there, until the KILL
    assert _session_alive(st.pid)
    done = wait_for(t2, spec, tok, {"done"})
    assert done.cancelled and done.reason == "cancelled"
    assert _session_alive(st.pid) == []


def test_wrapper_killed_reads_lost_and_fencing_kills_the_job(t2: SSHTransport, h2: SSHHost) -> None:
    spec, tok = h2.spec(), token()
    res = sv.launch(t2, spec, sv.LaunchSpec(15, tok, "sleep 300"))
    st = wait_for(t2, spec, tok, {"running"})
    info = json.loads(Path(res.remote_dir, "wrapper.json").read_text())
    os.kill(info["pid"], signal.SIGKILL)
    lost = wait_for(t2, spec, tok, {"lost"})
    assert lost.state == "lost" and "wrapper gone" in (lost.reason or "")
    assert _session_alive(st.pid)  # the orphaned job itself still runs...
    assert sv.kill_stale(t2, spec, tok) >= 1
    deadline = time.monotonic() + 5
    while _session_alive(st.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _session_alive(st.pid) == []  # ...until fencing kills it


def test_reboot_and_pid_reuse_read_lost(t2: SSHTransport, h2: SSHHost) -> None:
    spec = h2.spec()
    for field, value, reason in (
        ("boot_id", "other-boot", "rebooted"),
        ("start_time", 1, "wrapper gone"),
    ):
        tok = token()
        res = sv.launch(t2, spec, sv.LaunchSpec(16, tok, "sleep 120"))
        wait_for(t2, spec, tok, {"running"})
        path = Path(res.remote_dir, "wrapper.json")
        original = path.read_text()
        info = json.loads(original)
        info[field] = value
        path.write_text(json.dumps(info))
        st = sv.status(t2, spec, [tok])[tok]
        assert st.state == "lost" and reason in (st.reason or "")
        path.write_text(original)  # the real record again, so the job can be cleaned up
        assert sv.kill_stale(t2, spec, tok) >= 1


def test_unknown_token_is_missing(t2: SSHTransport, h2: SSHHost) -> None:
    st = sv.status(t2, h2.spec(), ["nosuchtoken"])["nosuchtoken"]
    assert st.state == "missing"
    assert not sv.cancel(t2, h2.spec(), "nosuchtoken")
    assert sv.read_log(t2, h2.spec(), "nosuchtoken", "stdout", 0) == (b"", 0)


def test_job_survives_a_cut_connection(h2: SSHHost, tmp_path: Path) -> None:
    spec, tok = h2.spec(), token()
    go = tmp_path / "go"
    t = connect(h2)
    cmd = f"echo line 1; while [ ! -e {go} ]; do sleep 0.05; done; echo line 2; exit 5"
    sv.launch(t, spec, sv.LaunchSpec(17, tok, cmd))
    assert wait_for(t, spec, tok, {"running"}).state == "running"
    assert h2.kill_sessions() >= 1  # the connection drops while the job runs
    go.touch()
    # the same transport reconnects; the job ran on and recorded its end
    st = wait_for(t, spec, tok, {"done"})
    assert (st.state, st.exit_code) == ("done", 5)
    assert read_all(t, spec, tok) == b"line 1\nline 2\n"
    assert t.connects == 2
    t.close()


def test_reattach_after_console_restart(h2: SSHHost) -> None:
    spec, tok = h2.spec(), token()
    first = connect(h2)
    sv.launch(first, spec, sv.LaunchSpec(18, tok, "echo before; sleep 0.5; echo after"))
    first.close()  # the console exits
    second = connect(h2)  # a new console, a new connection, only the token remembered
    assert sv.status(second, spec, [tok])[tok].state in ("running", "done")
    assert wait_for(second, spec, tok, {"done"}).exit_code == 0
    assert read_all(second, spec, tok) == b"before\nafter\n"
    assert tok in sv.status(second, spec, None)  # listing every attempt dir finds it too
    second.close()


def test_launch_many_reports_every_host(sshbed: SSHBed) -> None:
    hosts = sshbed(3)
    down = hosts[2]
    transports = {h.name: connect(h, backoff_initial=0.05, backoff_max=0.1) for h in hosts}
    down.stop()
    try:
        toks = {h.name: token() for h in hosts}
        targets = {
            h.name: (transports[h.name], h.spec(), [sv.LaunchSpec(19, toks[h.name], "echo hi")])
            for h in hosts
        }
        results = sv.launch_many(targets, timeout=10)
    finally:
        down.start()
    assert set(results) == {h.name for h in hosts}
    for h in hosts[:2]:
        ok = results[h.name]
        assert isinstance(ok, Ok) and not ok.value[0].already_launched
    failed = results[down.name]
    assert isinstance(failed, Failed) and "refused" in failed.reason
    for t in transports.values():
        t.close()


def test_launch_batch_is_one_round_trip(t2: SSHTransport, h2: SSHHost) -> None:
    spec = h2.spec()
    launches = [sv.LaunchSpec(20 + i, token(), f"echo {i}") for i in range(5)]
    before = t2.round_trips
    results = sv.launch_batch(t2, spec, launches)
    assert t2.round_trips == before + 1 and len(results) == 5
    for i, launch in enumerate(launches):
        wait_for(t2, spec, launch.token, {"done"})
        assert read_all(t2, spec, launch.token) == f"{i}\n".encode()


def test_bad_launch_specs_are_refused() -> None:
    with pytest.raises(ValueError):
        sv.LaunchSpec(1, "bad token; rm", "true")
    with pytest.raises(ValueError):
        sv.LaunchSpec(1, "tok", "true", env={"A=B": "x"})
    with pytest.raises(ValueError):
        sv.LaunchSpec(1, "tok", "true", gpu_ids=[-1])


def test_liveness_is_zombie_and_reuse_safe() -> None:
    import subprocess

    from inventory.remote import agent

    boot = agent.boot_id()
    child = subprocess.Popen(["sleep", "30"])
    try:
        st = agent.proc_stat(child.pid)
        assert st is not None
        assert agent.alive(child.pid, st[2], boot)
        assert not agent.alive(child.pid, st[2] + 1, boot)  # same pid, another process
        assert not agent.alive(child.pid, st[2], "another-boot")
        child.kill()
        deadline = time.monotonic() + 5
        while agent.proc_stat(child.pid)[0] != "Z" and time.monotonic() < deadline:  # type: ignore[index]
            time.sleep(0.01)
        assert agent.proc_stat(child.pid)[0] == "Z"  # type: ignore[index]  # not reaped yet
        assert not agent.alive(child.pid, st[2], boot)
    finally:
        child.kill()
        child.wait()
