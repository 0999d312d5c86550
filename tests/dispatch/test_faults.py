"""The attempt life cycle under faults the host cannot be blamed for, and the truth a host tells
when it answers again: a slow dispatcher, a launch whose answer was lost, a host presumed down
whose jobs in fact ended (local transport; the faults are injected at the dispatcher's seams)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inventory.errors import HostUnreachable
from lepton_tui.dispatch import launch as launch_step
from lepton_tui.dispatch import loop as dispatcher_mod
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.service import Service
from tests.dispatch.helpers import add_local_hosts, all_ended, tick_until


class Clock:
    """A dispatcher clock that a test moves forward (a tick that took minutes)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _unreachable(monkeypatch: pytest.MonkeyPatch, names: set[str]) -> None:
    """Polls of the hosts in `names` fail as a cut-off host's do (the set may change later)."""
    real = dispatcher_mod.poll_host

    def poll(transport: Any, spec: Any, tokens: Any) -> Any:
        if spec.name in names:
            raise HostUnreachable(spec.name, "connection refused (injected)")
        return real(transport, spec, tokens)

    monkeypatch.setattr(dispatcher_mod, "poll_host", poll)


def _state(svc: Service, job_id: int) -> str:
    return str(svc.get_job(job_id)["state"])


def _host_state(svc: Service, name: str) -> str:
    return str(svc.get_host(name)["state"])


def _dispatcher(svc: Service, clock: Callable[[], float] = time.time) -> Dispatcher:
    d = Dispatcher(svc, clock=clock)
    assert d.acquire()
    return d


def test_one_slow_tick_does_not_mark_a_healthy_host_down(svc, tmp_path, monkeypatch):
    """A tick that took longer than the grace (a loaded login node), then one missed poll: the
    host is not down and its job is not lost (it was: 'no answer for 60s', job failed)."""
    svc.set_setting("host_grace_s", 5.0)
    add_local_hosts(svc, tmp_path, 1)
    clock = Clock()
    d = _dispatcher(svc, clock)
    try:
        job_id = svc.submit(command="sleep 1")
        tick_until(d, lambda: _state(svc, job_id) == "running", timeout=20)
        clock.now += 60.0  # the dispatcher was busy for a minute
        cut: set[str] = {"local0"}
        _unreachable(monkeypatch, cut)
        d.tick()
        assert _host_state(svc, "local0") == "up" and _state(svc, job_id) == "running"
        cut.clear()
        tick_until(d, lambda: all_ended(svc), timeout=20, pause=0.2)
        assert _state(svc, job_id) == "succeeded"
        assert svc.get_host("local0")["failed_polls"] == 0  # an answer ends the streak
    finally:
        d.close()


def test_failed_polls_in_a_row_spanning_the_grace_mark_a_host_down(svc, tmp_path, monkeypatch):
    """Two failed polls are not enough inside the grace; past it, the host is down."""
    svc.set_setting("host_grace_s", 5.0)
    add_local_hosts(svc, tmp_path, 1)
    clock = Clock()
    d = _dispatcher(svc, clock)
    try:
        d.tick()
        _unreachable(monkeypatch, {"local0"})
        for _ in range(3):
            d.tick()
            clock.now += 1.0
        assert _host_state(svc, "local0") == "up"
        clock.now += 5.0
        d.tick()
        assert _host_state(svc, "local0") == "down"
        (event,) = svc.ledger.query("SELECT message FROM events WHERE kind = 'host.down'")
        assert "4 polls in a row failed" in event["message"]
    finally:
        d.close()


def _lose_launch_answers(monkeypatch: pytest.MonkeyPatch, fault: Callable[[], Any]) -> list[str]:
    """Launches really run on their host, then `fault()` says what became of the answer:
    return a value (the answer lost: a dropped connection) or raise (this process killed
    between the launch and its record). Returns the hosts whose launch ran."""
    from inventory import supervisor
    from inventory.fanout import Failed

    real = supervisor.launch_many
    hosts: list[str] = []

    def launch_many(targets: Any, timeout: float = 30) -> Any:
        results = real(targets, timeout)
        hosts.extend(results)
        fault()
        return {
            h: Failed("connection lost during a command", HostUnreachable(h, "connection lost"))
            for h in results
        }

    monkeypatch.setattr(supervisor, "launch_many", launch_many)
    return hosts


def _lines(path: Any) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _wait_for_lines(path: Any, n: int) -> None:
    deadline = time.monotonic() + 20
    while _lines(path) < n and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_lost_launch_answer_is_not_never_started(svc, tmp_path, monkeypatch):
    """The launch ran but its answer was lost, then the host stayed unreachable past the grace:
    a job with no retries is failed, not requeued as 'not started' and run a second time
    elsewhere at once (both copies ran together)."""
    svc.set_setting("host_grace_s", 5.0)
    add_local_hosts(svc, tmp_path, 2)
    marker = tmp_path / "runs.log"
    job_id = svc.submit(command=f"echo run >> {marker}; sleep 3")
    clock = Clock()
    d = _dispatcher(svc, clock)
    try:
        with monkeypatch.context() as m:
            _lose_launch_answers(m, lambda: None)
            d.tick()
        (attempt,) = svc.ledger.attempts_for(job_id)
        assert attempt["state"] == "starting" and attempt["launch_sent_at"] is not None
        _unreachable(monkeypatch, {attempt["host"]})
        for _ in range(3):
            d.tick()
            clock.now += 3.0
        assert _host_state(svc, attempt["host"]) == "down"
        for _ in range(3):
            d.tick()
        job = svc.get_job(job_id)
        assert job["state"] == "failed" and "may have run" in job["reason"]
        assert len(svc.ledger.attempts_for(job_id)) == 1
        _wait_for_lines(marker, 1)
        assert _lines(marker) == 1
    finally:
        d.close()


class Killed(BaseException):
    """This process dying between a launch and its record (kill -9)."""


def test_a_dispatcher_killed_between_launch_and_record_recovers_the_intent(
    svc, tmp_path, monkeypatch
):
    """The dispatcher dies after the launch went out, before it recorded the answer; the next
    one cannot reach the host for the grace: the intent in the ledger says the launch may have
    run, so a job with no retries is not placed again elsewhere."""
    svc.set_setting("host_grace_s", 5.0)
    add_local_hosts(svc, tmp_path, 2)
    marker = tmp_path / "runs.log"
    job_id = svc.submit(command=f"echo run >> {marker}; sleep 3")
    clock = Clock()
    d = _dispatcher(svc, clock)

    def die() -> None:
        raise Killed

    with monkeypatch.context() as m:
        _lose_launch_answers(m, die)
        with pytest.raises(Killed):
            d.tick()
    d.close()
    (attempt,) = svc.ledger.attempts_for(job_id)
    assert attempt["state"] == "starting" and attempt["launch_sent_at"] is not None
    _unreachable(monkeypatch, {attempt["host"]})
    d = _dispatcher(svc, clock)  # the restart
    try:
        for _ in range(3):
            assert d.tick().placed == 0
            clock.now += 3.0
        for _ in range(3):
            d.tick()
        assert svc.get_job(job_id)["state"] == "failed"
        assert len(svc.ledger.attempts_for(job_id)) == 1
        _wait_for_lines(marker, 1)
        assert _lines(marker) == 1
    finally:
        d.close()


def test_a_launch_that_never_left_costs_no_retry(svc, tmp_path, monkeypatch):
    """A launch refused before it reached the host (no connection) proves nothing ran: when its
    host goes down, the job is requeued without spending a retry and runs elsewhere."""
    from inventory import supervisor
    from inventory.fanout import Failed
    from inventory.transport import mark_not_sent

    svc.set_setting("host_grace_s", 5.0)
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="true")
    clock = Clock()
    d = _dispatcher(svc, clock)
    try:
        with monkeypatch.context() as m:
            refused = mark_not_sent(HostUnreachable("local0", "connection refused"))
            m.setattr(
                supervisor, "launch_many",
                lambda targets, timeout=30: {h: Failed("refused", refused) for h in targets},
            )  # fmt: skip
            d.tick()
        assert svc.ledger.attempts_for(job_id)[0]["launch_sent_at"] is None
        cut = {"local0"}
        _unreachable(monkeypatch, cut)
        for _ in range(4):
            d.tick()
            clock.now += 3.0
        assert svc.get_job(job_id)["state"] == "queued"
        assert "no retry spent" in svc.ledger.attempts_for(job_id)[0]["reason"]
        cut.clear()
        tick_until(d, lambda: all_ended(svc), timeout=20, pause=0.2)
        assert svc.get_job(job_id)["state"] == "succeeded"
    finally:
        d.close()


def test_a_refused_connection_proves_the_command_never_left(tmp_path):
    """No connection (nothing listens): the error says the command never reached the host, so
    a launch refused this way is known not to have run; a fail-fast retry says so too."""
    from inventory.errors import HostError
    from inventory.hostspec import HostSpec
    from inventory.transport import SSHTransport, never_sent

    spec = HostSpec("gone", "127.0.0.1", port=1, user="nobody")
    transport = SSHTransport(spec, tmp_path / "known_hosts", ssh_config=None)
    for _ in range(2):  # the connect, then the fail-fast answer during the backoff
        with pytest.raises(HostError) as info:
            transport.run(["true"], timeout=5)
        assert never_sent(info.value)
    assert not never_sent(HostUnreachable("h", "connection lost during a command"))


def _presumed_lost(svc: Service, d: Dispatcher, clock: Clock, cut: set[str], host: str) -> None:
    """Cut `host` off until the dispatcher declares it down (its attempts lost)."""
    cut.add(host)
    for _ in range(3):
        d.tick()
        clock.now += 3.0
    assert _host_state(svc, host) == "down"


def test_a_host_that_returns_amends_a_job_failed_on_a_presumed_loss(svc, tmp_path, monkeypatch):
    """The host was cut off past the grace while the job (no retries) ran to exit 0: the job was
    failed, 'host is down'; when the host answers again the ledger records the truth (it kept
    'failed'): succeeded, exit code 0, with an event saying so."""
    svc.set_setting("host_grace_s", 5.0)
    add_local_hosts(svc, tmp_path, 1)
    release = tmp_path / "release"
    job_id = svc.submit(command=f"until [ -e {release} ]; do sleep 0.05; done; echo done")
    clock = Clock()
    d = _dispatcher(svc, clock)
    try:
        tick_until(d, lambda: _state(svc, job_id) == "running", timeout=20)
        cut: set[str] = set()
        _unreachable(monkeypatch, cut)
        _presumed_lost(svc, d, clock, cut, "local0")
        job = svc.get_job(job_id)
        assert job["state"] == "failed" and "no retries left" in job["reason"]
        release.touch()
        (attempt,) = svc.ledger.attempts_for(job_id)
        wait_for = Path(attempt["remote_dir"]) / "exit_code"
        deadline = time.monotonic() + 20
        while not wait_for.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        cut.clear()
        d.tick()
        job = svc.get_job(job_id)
        assert job["state"] == "succeeded" and job["exit_code"] == 0
        (attempt,) = svc.ledger.attempts_for(job_id)
        assert attempt["state"] == "succeeded" and attempt["exit_code"] == 0
        (event,) = svc.ledger.query("SELECT * FROM events WHERE kind = 'job.amended'")
        assert "failed -> succeeded" in event["message"] and "exit code 0" in event["message"]
    finally:
        d.close()


def test_a_copy_still_running_when_its_host_returns_is_taken_back(svc, tmp_path, monkeypatch):
    """Still running when its host answers again, the job failed on a presumed loss is running
    again (taken back, not killed), and ends with its real exit code; it ran once."""
    svc.set_setting("host_grace_s", 5.0)
    add_local_hosts(svc, tmp_path, 1)
    release, marker = tmp_path / "release", tmp_path / "runs.log"
    job_id = svc.submit(
        command=f"echo run >> {marker}; until [ -e {release} ]; do sleep 0.05; done; exit 3"
    )
    clock = Clock()
    d = _dispatcher(svc, clock)
    try:
        tick_until(d, lambda: _state(svc, job_id) == "running", timeout=20)
        cut: set[str] = set()
        _unreachable(monkeypatch, cut)
        _presumed_lost(svc, d, clock, cut, "local0")
        assert _state(svc, job_id) == "failed"
        cut.clear()
        d.tick()
        assert _state(svc, job_id) == "running"
        assert svc.ledger.attempts_for(job_id)[0]["fenced_at"] is None
        release.touch()
        tick_until(d, lambda: all_ended(svc), timeout=20, pause=0.2)
        job = svc.get_job(job_id)
        assert job["state"] == "failed" and job["exit_code"] == 3
        assert len(svc.ledger.attempts_for(job_id)) == 1 and _lines(marker) == 1
    finally:
        d.close()


def test_a_launch_that_never_ran_is_requeued_when_its_host_says_so(svc, tmp_path, monkeypatch):
    """The launch's answer was lost but the launch never ran: presumed started while the host
    was cut off (the job failed), it is requeued once the host says the attempt is not there,
    and then runs."""
    from inventory import supervisor
    from inventory.fanout import Failed

    svc.set_setting("host_grace_s", 5.0)
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="true")
    clock = Clock()
    d = _dispatcher(svc, clock)
    try:
        with monkeypatch.context() as m:
            lost = HostUnreachable("local0", "connection lost during a command")
            m.setattr(
                supervisor, "launch_many",
                lambda targets, timeout=30: {h: Failed("lost", lost) for h in targets},
            )  # fmt: skip
            d.tick()
        cut: set[str] = set()
        _unreachable(monkeypatch, cut)
        _presumed_lost(svc, d, clock, cut, "local0")
        assert _state(svc, job_id) == "failed"
        cut.clear()
        d.tick()
        assert _state(svc, job_id) in ("queued", "starting", "running", "succeeded")
        tick_until(d, lambda: all_ended(svc), timeout=20, pause=0.2)
        assert _state(svc, job_id) == "succeeded"
        first, second = svc.ledger.attempts_for(job_id)
        assert first["state"] == "lost" and first["launch_sent_at"] is None
        amended = svc.ledger.query("SELECT message FROM events WHERE kind = 'job.amended'")
        assert "never started" in amended[0]["message"]
    finally:
        d.close()


def _unrecorded_attempt(root: Path, created_ago: float, start_timeout_s: float | None) -> str:
    """An attempt directory whose wrapper never recorded itself (killed before it could)."""
    from inventory.remote import agent

    token = "abcabcabcabc"
    d = root / "jobs" / f"1-{token}"
    d.mkdir(parents=True)
    spec: dict[str, Any] = {"created_at": time.time() - created_ago, "boot_id": agent.boot_id()}
    if start_timeout_s is not None:
        spec["start_timeout_s"] = start_timeout_s
    (d / "launch.json").write_text(json.dumps(spec))
    return token


@pytest.mark.parametrize(("ago", "timeout", "state"), [(40, 30, "lost"), (20, 30, "starting"),
                                                      (130, None, "lost")])  # fmt: skip
def test_the_wrapper_start_timeout_is_the_launch_s(tmp_path, ago, timeout, state):
    """A wrapper that never recorded itself reads lost after the timeout its launch carries
    (it was 120 s whatever the grace); a launch without one keeps the old 120 s."""
    from inventory.remote import agent

    token = _unrecorded_attempt(tmp_path, ago, timeout)
    assert agent.statuses(str(tmp_path), [token])[token]["state"] == state


def test_the_dispatcher_launches_with_the_grace_as_start_timeout(svc, tmp_path):
    """The launch carries the host grace as its wrapper-start timeout (10 s at least)."""
    svc.set_setting("host_grace_s", 30.0)
    add_local_hosts(svc, tmp_path, 1)
    job_id = svc.submit(command="true")
    d = _dispatcher(svc)
    try:
        tick_until(d, lambda: all_ended(svc), timeout=20, pause=0.2)
    finally:
        d.close()
    (attempt,) = svc.ledger.attempts_for(job_id)
    launch = json.loads((Path(attempt["remote_dir"]) / "launch.json").read_text())
    assert launch["start_timeout_s"] == 30.0
    assert launch_step.start_timeout_s(1.0) == launch_step.MIN_START_TIMEOUT_S


def test_a_connection_reset_in_the_handshake_logs_no_traceback(tmp_path, caplog):
    """sshd going away while a connection opens (reset before its banner): the caller gets one
    HostError line, and paramiko's thread logs no traceback into `serve`'s log (it did)."""
    import logging
    import socket
    import struct
    import threading

    from inventory.errors import HostError
    from inventory.hostspec import HostSpec
    from inventory.transport import SSHTransport

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def reset() -> None:
        conn, _ = server.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.2)
        conn.close()  # RST, not FIN

    thread = threading.Thread(target=reset, daemon=True)
    thread.start()
    spec = HostSpec("resets", "127.0.0.1", port=server.getsockname()[1], user="nobody")
    transport = SSHTransport(spec, tmp_path / "known_hosts", ssh_config=None)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HostError):
        transport.run(["true"], timeout=5)
    thread.join(5)
    server.close()
    time.sleep(0.2)  # paramiko's thread logs after the caller has its error
    assert not [r for r in caplog.records if "Traceback" in r.getMessage()]
