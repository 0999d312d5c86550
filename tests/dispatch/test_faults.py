"""The attempt life cycle under faults the host cannot be blamed for, and the truth a host tells
when it answers again: a slow dispatcher, a launch whose answer was lost, a host presumed down
whose jobs in fact ended (local transport; the faults are injected at the dispatcher's seams)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from inventory.errors import HostUnreachable
from lepton_tui import dispatcher as dispatcher_mod
from lepton_tui.dispatcher import Dispatcher
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
