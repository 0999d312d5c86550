"""Fan-out: run one call per host in parallel and report every host, never stopping early."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

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
    items: Mapping[str, Callable[[], T]], timeout: float, max_workers: int = 32
) -> dict[str, Ok[T] | Failed]:
    """Call every item in a thread pool; each host gets Ok(value) or Failed(reason).

    A host still running after `timeout` seconds is reported Failed("timed out ..."); its
    thread is left to finish on its own (every transport call has its own timeout too).
    """
    results: dict[str, Ok[T] | Failed] = {}
    if not items:
        return results
    pool = cf.ThreadPoolExecutor(
        max_workers=min(max_workers, len(items)), thread_name_prefix="fanout"
    )
    try:
        futures = {pool.submit(fn): host for host, fn in items.items()}
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
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return {host: results[host] for host in items}
