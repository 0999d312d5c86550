"""Shared pieces of the dispatcher tests: hosts from the test bed or this machine, waiting loops."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lepton_tui import paths
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.service import Service

TERMINAL = {"succeeded", "failed", "cancelled", "timeout"}


def add_bed_hosts(
    svc: Service,
    bed_hosts: Sequence[Any],
    *,
    root: Path,
    gpus: dict[str, int] | None = None,
    cpus: float = 4,
    mem_mb: int = 8192,
) -> dict[str, Path]:
    """Record test bed sshd hosts (small fixed capacity, a root dir per test), trust their keys."""
    shutil.copy(bed_hosts[0].known_hosts_path, svc.home / paths.KNOWN_HOSTS_FILE)
    roots = {}
    for h in bed_hosts:
        roots[h.name] = root / h.name
        svc.add_host(
            h.name, address=h.address, port=h.port, user=h.user, key_path=h.key_path,
            root_dir=str(roots[h.name]), gpus_override=(gpus or {}).get(h.name),
            capacity={"cpus": cpus, "mem_mb": mem_mb},
        )  # fmt: skip
    return roots


def add_local_hosts(
    svc: Service, base: Path, n: int, *, gpus: int | None = None, cpus: float = 4,
    mem_mb: int = 8192,
) -> list[str]:  # fmt: skip
    """`n` hosts that are this machine (local transport), each with its own root dir."""
    names = []
    for i in range(n):
        name = f"local{i}"
        svc.add_host(
            name, local=True, root_dir=str(base / name), gpus_override=gpus,
            capacity={"cpus": cpus, "mem_mb": mem_mb},
        )  # fmt: skip
        names.append(name)
    return names


def tick_until(
    d: Dispatcher, done: Callable[[], bool], timeout: float = 60.0, pause: float = 0.1
) -> int:
    """Tick until `done()`; the number of ticks (fails the test on timeout)."""
    deadline = time.monotonic() + timeout
    ticks = 0
    while time.monotonic() < deadline:
        d.tick()
        ticks += 1
        if done():
            return ticks
        time.sleep(pause)
    waits = {j["id"]: j["reason"] for j in d.ledger.queued_jobs()}
    raise AssertionError(f"not done after {timeout}s: {d.ledger.job_counts()}; waiting: {waits}")


def wait_until(done: Callable[[], bool], timeout: float = 60.0, pause: float = 0.1) -> None:
    """Wait (without ticking) until `done()`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(pause)
    raise AssertionError(f"condition not met after {timeout}s")


def all_ended(svc: Service) -> bool:
    """Every job is in a terminal state."""
    return set(svc.job_counts()) <= TERMINAL


def attempt_dirs(root: str | Path) -> list[Path]:
    """Every attempt directory under a host's root dir."""
    jobs = Path(root) / "jobs"
    return sorted(p for p in jobs.iterdir() if p.is_dir()) if jobs.is_dir() else []


def launched_dirs(root: str | Path) -> list[Path]:
    """Attempt directories whose wrapper actually started (or ended)."""
    return [
        d for d in attempt_dirs(root)
        if (d / "wrapper.json").exists() or (d / "exit_code").exists()
    ]  # fmt: skip


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie left for init to reap counts as dead)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
