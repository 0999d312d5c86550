"""Fan-out: run one call per host in parallel and report every host, never stopping early."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from inventory.errors import HostError

T = TypeVar("T")


@dataclass(frozen=True)
class Ok(Generic[T]):
    """The call succeeded with `value`."""

    value: T
    ok = True


@dataclass(frozen=True)
class Failed:
    """The call failed; `reason` is one line, `error` the exception (None on timeout)."""

    reason: str
    error: BaseException | None = None
    ok = False


def fan_out(
    items: Mapping[str, Callable[[], T]],
    timeout: float,
    max_workers: int = 32,
    pool: FanOut | None = None,
) -> dict[str, Ok[T] | Failed]:
    """Call every item in a thread pool; each host gets Ok(value) or Failed(reason).

    A host still running after `timeout` seconds is reported Failed("timed out ..."); its
    thread is left to finish on its own (every transport call has its own timeout too).
    `pool`: a long-lived FanOut to run on; by default the one made current in this thread
    (`FanOut.current()`, the dispatcher's tick), else a pool made for this call and let go.
    """
    pool = pool or _current.get()
    if pool is not None:
        return pool.run(items, timeout)
    if not items:
        return {}
    executor = cf.ThreadPoolExecutor(
        max_workers=min(max_workers, len(items)), thread_name_prefix="fanout"
    )
    try:
        return _collect(executor, items, timeout)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


def _collect(
    executor: cf.ThreadPoolExecutor,
    items: Mapping[str, Callable[[], T]],
    timeout: float,
    on_done: Callable[[cf.Future[Any]], None] | None = None,
) -> dict[str, Ok[T] | Failed]:
    results: dict[str, Ok[T] | Failed] = {}
    futures = {executor.submit(fn): host for host, fn in items.items()}
    if on_done is not None:
        for fut in futures:
            fut.add_done_callback(on_done)
    done, not_done = cf.wait(futures, timeout=timeout)
    for fut in done:
        host = futures[fut]
        exc = fut.exception()
        if exc is None:
            results[host] = Ok(fut.result())
        elif isinstance(exc, HostError):
            results[host] = Failed(exc.reason, exc)
        else:
            results[host] = Failed(f"{type(exc).__name__}: {exc}", exc)
    for fut in not_done:
        fut.cancel()
        results[futures[fut]] = Failed(f"timed out after {timeout:g}s")
    return {host: results[host] for host in items}


class FanOut:
    """One thread pool for its owner's lifetime, sized to the fleet it is asked to reach.

    Threads are made as calls need them and then wait, asleep, for the next fan-out: no pool is
    built per tick and nothing wakes between ticks. The pool holds every host of a fan-out plus
    the calls still running from earlier ones (a hung host past its timeout) plus `spare`; a
    fan-out that needs more gets a bigger pool (the old one's threads end as their calls do),
    so a hung host never makes a healthy one wait for a thread.
    """

    def __init__(self, name: str = "fanout", spare: int = 4, max_workers: int = 256) -> None:
        self.name = name
        self.spare = spare
        self.max_workers = max_workers
        self.size = 0
        self.pools_made = 0
        self._busy = 0  # calls submitted and not yet finished
        self._executor: cf.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool_for(self, n: int) -> cf.ThreadPoolExecutor:
        with self._lock:
            want = min(self.max_workers, self._busy + n + self.spare)
            if self._executor is None or want > self.size:
                if self._executor is not None:
                    self._executor.shutdown(wait=False)
                self._executor = cf.ThreadPoolExecutor(
                    max_workers=want, thread_name_prefix=self.name
                )
                self.size = want
                self.pools_made += 1
            return self._executor

    def _done(self, _: cf.Future[Any]) -> None:
        with self._lock:
            self._busy -= 1

    def run(
        self, items: Mapping[str, Callable[[], T]], timeout: float
    ) -> dict[str, Ok[T] | Failed]:
        """`fan_out` on this pool: every host reported, Ok or Failed, within `timeout`."""
        if not items:
            return {}
        executor = self._pool_for(len(items))
        with self._lock:
            self._busy += len(items)
        return _collect(executor, items, timeout, self._done)

    @contextlib.contextmanager
    def current(self) -> Iterator[FanOut]:
        """Make this pool the one `fan_out` uses in this thread (and context) meanwhile. The
        pool's own threads do not inherit it: a fan-out from inside a call gets its own pool
        and never waits for a thread of the pool it runs on."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    def close(self) -> None:
        """Let the threads go (calls still running finish on their own)."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            self.size = 0


# the FanOut that `fan_out` uses where none is passed (see FanOut.current)
_current: contextvars.ContextVar[FanOut | None] = contextvars.ContextVar(
    "lepton_fanout", default=None
)
