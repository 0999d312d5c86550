"""The persistent host agent: one interpreter per connection, restarted when it dies or changes.

Counted, never timed: agent starts (the host's pid and its own request counter), exec channels
opened, threads alive, the context switches of paramiko's idle reader thread.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pytest

from inventory import agent_session, remote, remote_call
from inventory.errors import CommandTimeout
from inventory.fanout import FanOut, Ok
from inventory.probe import probe
from inventory.transport import ChannelStream, SSHTransport
from tests.inventory.conftest import connect
from tests.sshbed import SSHBed, SSHHost

pytestmark = pytest.mark.ssh


def _stats(t: SSHTransport) -> dict:
    return agent_session.session_stats(t)


def _gone(pid: int, within_s: float = 10.0) -> bool:
    """True once `pid` has exited (or is a zombie waiting for its parent)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_polls_share_one_agent_process(t2: SSHTransport, h2: SSHHost) -> None:
    for _ in range(5):
        assert probe(t2, h2.spec(), tokens=[]).host == "h2"
    stats = _stats(t2)
    # one interpreter started on the host for five polls, which says it answered all five
    assert stats["starts"] == 1 and stats["requests"] == 5 and stats["served"] == 5
    assert stats["fallbacks"] == 0
    assert t2.execs == 1 and t2.round_trips == 5  # one exec channel, one round trip per poll
    agent = psutil.Process(stats["pid"])
    assert agent.cmdline()[:4] == ["python3", "-I", "-S", "-c"]


def test_agent_killed_on_the_host_is_started_again(t2: SSHTransport, h2: SSHHost) -> None:
    probe(t2, h2.spec(), tokens=[])
    first = _stats(t2)["pid"]
    assert t2.run(["kill", "-9", str(first)]).rc == 0  # over SSH, as an admin on the host would
    assert _gone(first)
    assert probe(t2, h2.spec(), tokens=[]).host == "h2"  # the next poll still answers
    stats = _stats(t2)
    assert stats["starts"] == 2 and stats["pid"] != first and stats["served"] == 1
    probe(t2, h2.spec(), tokens=[])
    assert _stats(t2)["starts"] == 2  # exactly one new process


def test_new_agent_source_restarts_the_agent(
    t2: SSHTransport, h2: SSHHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe(t2, h2.spec(), tokens=[])
    old_pid, old_version = _stats(t2)["pid"], agent_session.agent_version()
    changed = tmp_path / "agent.py"
    changed.write_text(remote.AGENT_PATH.read_text() + "\n# a newer agent\n")
    monkeypatch.setattr(remote, "AGENT_PATH", changed)
    remote_call.agent_source.cache_clear()
    try:
        assert agent_session.agent_version() != old_version
        probe(t2, h2.spec(), tokens=[])
        stats = _stats(t2)
        assert stats["starts"] == 2 and stats["pid"] != old_pid
        assert _gone(old_pid)  # the old agent's channel was closed: it exited
        probe(t2, h2.spec(), tokens=[])
        assert _stats(t2)["starts"] == 2
    finally:
        monkeypatch.undo()
        remote_call.agent_source.cache_clear()


def test_agent_lives_only_as_long_as_its_connection(t2: SSHTransport, h2: SSHHost) -> None:
    probe(t2, h2.spec(), tokens=[])
    pid = _stats(t2)["pid"]
    t2.close()
    assert _gone(pid)
    probe(t2, h2.spec(), tokens=[])  # a new connection, a new agent
    assert _stats(t2)["starts"] == 2 and t2.connects == 2


def test_connections_of_one_host_keep_their_own_agents(h2: SSHHost) -> None:
    """Two connections to one host (as two login users would have) never share an agent."""
    a, b = connect(h2), connect(h2)
    try:
        probe(a, h2.spec(), tokens=[])
        probe(b, h2.spec(), tokens=[])
        assert _stats(a)["pid"] != _stats(b)["pid"]
        assert _stats(a)["starts"] == _stats(b)["starts"] == 1
    finally:
        a.close()
        b.close()


class _NoPersistentAgent(SSHTransport):
    """A host where the persistent agent cannot start (its exec ends at once, as a forced
    command or a python3 without `-c` would); one-shot execs still work there."""

    def open_stream(self, argv: list[str], timeout: float = 30) -> ChannelStream:
        return super().open_stream(["sh", "-c", "exit 127"], timeout)


def test_one_shot_calls_when_the_agent_cannot_stay(h2: SSHHost) -> None:
    t = _NoPersistentAgent(h2.spec(), Path(h2.known_hosts_path), ssh_config=None)
    try:
        for _ in range(3):
            assert probe(t, h2.spec(), tokens=[]).host == "h2"
        stats = _stats(t)
        assert stats["starts"] == 0 and stats["failed_starts"] == 1  # not tried again each poll
        assert stats["fallbacks"] == 3 and t.round_trips == 3
    finally:
        t.close()


def test_a_busy_agent_sends_a_second_caller_one_shot(t2: SSHTransport, h2: SSHHost) -> None:
    probe(t2, h2.spec(), tokens=[])
    session = agent_session.session_for(t2)
    assert session is not None
    with session._lock:  # a request in flight on the persistent channel
        assert probe(t2, h2.spec(), tokens=[]).host == "h2"
    stats = _stats(t2)
    assert stats["fallbacks"] == 1 and stats["requests"] == 1 and stats["starts"] == 1


def test_timed_out_agent_is_replaced(sshbed: SSHBed) -> None:
    host = sshbed(3)[2]
    t = connect(host)
    try:
        probe(t, host.spec(), tokens=[])
        first = _stats(t)["pid"]
        host.freeze()
        try:
            with pytest.raises(CommandTimeout):
                probe(t, host.spec(), tokens=[], timeout=1)
        finally:
            host.thaw()
        assert probe(t, host.spec(), tokens=[]).host == host.name
        stats = _stats(t)
        assert stats["pid"] != first and stats["served"] == 1  # not the late reply of the old
    finally:
        t.close()


def _reader_switches(t: SSHTransport) -> int:
    """Voluntary context switches of the connection's paramiko reader thread so far."""
    assert t._client is not None
    thread = t._client.get_transport()
    assert thread is not None and thread.native_id is not None
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    line = next(ln for ln in status.splitlines() if ln.startswith("voluntary_ctxt_switches"))
    return int(line.split()[1])


def test_idle_connection_thread_does_not_wake(t2: SSHTransport, h2: SSHHost) -> None:
    probe(t2, h2.spec(), tokens=[])
    before = _reader_switches(t2)
    time.sleep(1.0)  # idle: paramiko's default would wake its reader ten times in this second
    assert _reader_switches(t2) - before <= 2


def test_threads_alive_between_polls_stay_constant(sshbed: SSHBed) -> None:
    hosts = sshbed(3)
    transports = {h.name: connect(h) for h in hosts}
    pool = FanOut()
    try:
        counts = []
        for _ in range(5):
            calls = {
                h.name: (lambda h=h: probe(transports[h.name], h.spec(), tokens=[])) for h in hosts
            }
            assert all(isinstance(r, Ok) for r in pool.run(calls, timeout=30).values())
            counts.append(threading.active_count())
        assert len(set(counts)) == 1, counts
        assert all(_stats(t)["starts"] == 1 for t in transports.values())
    finally:
        pool.close()
        for t in transports.values():
            t.close()


def test_persistent_agent_can_be_turned_off(h2: SSHHost) -> None:
    t = connect(h2, persistent_agent=False)
    try:
        for _ in range(3):
            probe(t, h2.spec(), tokens=[])
        assert t.execs == 3 and _stats(t)["starts"] == 0  # a fresh python3 per call, as before
    finally:
        t.close()


def test_dropped_connection_brings_a_new_agent(sshbed: SSHBed) -> None:
    host = sshbed(3)[1]
    t = connect(host)
    try:
        probe(t, host.spec(), tokens=[])
        first = _stats(t)["pid"]
        assert host.kill_sessions() >= 1  # every connection to the host cut, its agent with it
        assert _gone(first)
        assert probe(t, host.spec(), tokens=[]).host == host.name
        stats = _stats(t)
        assert stats["starts"] == 2 and stats["fallbacks"] == 0 and t.connects == 2
    finally:
        t.close()
