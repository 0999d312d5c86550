"""fan_out: every host gets a result, failures carry their reason, slow hosts are bounded."""

from __future__ import annotations

import threading

from inventory.errors import HostUnreachable
from inventory.fanout import Failed, Ok, fan_out


def test_every_host_reported() -> None:
    release = threading.Event()

    def slow() -> str:
        release.wait(5)
        return "late"

    def broken() -> str:
        raise HostUnreachable("b", "connection refused; is sshd running?")

    def weird() -> str:
        raise ValueError("bad")

    results = fan_out({"a": lambda: 1, "b": broken, "c": weird, "d": slow}, timeout=0.3)
    release.set()
    assert list(results) == ["a", "b", "c", "d"]
    assert results["a"] == Ok(1)
    assert (
        isinstance(results["b"], Failed)
        and results["b"].reason == "connection refused; is sshd running?"
    )
    assert isinstance(results["c"], Failed) and results["c"].reason == "ValueError: bad"
    assert isinstance(results["d"], Failed) and "timed out" in results["d"].reason


def test_runs_in_parallel() -> None:
    barrier = threading.Barrier(5, timeout=5)
    results = fan_out({str(i): barrier.wait for i in range(5)}, timeout=5)
    assert all(isinstance(r, Ok) for r in results.values())


def test_empty() -> None:
    assert fan_out({}, timeout=1) == {}
