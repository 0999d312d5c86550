"""fan_out: every host gets a result, failures carry their reason, slow hosts are bounded."""

from __future__ import annotations

import threading

from inventory.errors import HostUnreachable
from inventory.fanout import Failed, FanOut, Ok, fan_out


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


def _names() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_one_pool_serves_every_fan_out() -> None:
    pool = FanOut("kept", spare=2)
    try:
        for _ in range(5):
            with pool.current():  # as the dispatcher's tick does
                assert fan_out({f"h{i}": (lambda i=i: i) for i in range(6)}, timeout=5) == {
                    f"h{i}": Ok(i) for i in range(6)
                }
        assert pool.pools_made == 1 and pool.size == 6 + 2  # sized to the fleet, made once
        kept = {n for n in _names() if n.startswith("kept")}
        assert 1 <= len(kept) <= 8
        fan_out({"x": lambda: 1}, timeout=5)  # outside `current`: a pool of its own
        assert pool.pools_made == 1
    finally:
        pool.close()


def test_a_hung_call_does_not_starve_the_next_fan_out() -> None:
    pool = FanOut("hung", spare=0)
    release = threading.Event()
    try:
        first = pool.run({"hung": lambda: release.wait(10), "ok": lambda: 1}, timeout=0.2)
        assert isinstance(first["hung"], Failed) and first["ok"] == Ok(1)
        # the hung call still holds a thread: the pool grows rather than make a host wait
        again = pool.run({"hung2": lambda: 2, "ok": lambda: 1}, timeout=5)
        assert again == {"hung2": Ok(2), "ok": Ok(1)} and pool.size >= 3
    finally:
        release.set()
        pool.close()


def test_a_fan_out_inside_a_call_gets_its_own_pool() -> None:
    pool = FanOut("outer", spare=0)
    try:
        with pool.current():
            inner = lambda: fan_out({"a": lambda: 1, "b": lambda: 2}, timeout=5)  # noqa: E731
            results = fan_out({"x": inner}, timeout=5)
        assert results == {"x": Ok({"a": Ok(1), "b": Ok(2)})}
        assert pool.pools_made == 1 and pool.size == 1  # not waiting on its own pool
    finally:
        pool.close()
