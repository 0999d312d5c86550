"""Building blocks for economics tests: a ledger on a hand-held clock, hosts, attempts, samples."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lepton_tui.ledger import Ledger

UTC = timezone.utc
# 2026-03-10 00:00 UTC: a Tuesday, mid-month.
T0 = datetime(2026, 3, 10, tzinfo=UTC).timestamp()
H = 3600.0


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: float = T0

    def __call__(self) -> float:
        return self.now


def make_ledger(tmp_path: Path, clock: Clock) -> Ledger:
    return Ledger(tmp_path / "ledger.db", clock=clock)


def add_host(
    ledger: Ledger,
    name: str,
    *,
    cpus: float = 32,
    mem_mb: int = 256 * 1024,
    gpus: int = 8,
    gpu_mem_mb: int = 8 * 80 * 1024,
    added_at: float = T0,
) -> None:
    with ledger.tx():
        ledger.insert(
            "hosts",
            {"name": name, "transport": "ssh", "address": "127.0.0.1", "state": "up",
             "admin_state": "active", "cpus": cpus, "mem_mb": mem_mb, "gpus": gpus,
             "gpu_mem_mb": gpu_mem_mb, "added_at": added_at},
        )  # fmt: skip


def submit(
    ledger: Ledger,
    clock: Clock,
    *,
    user: str = "alice",
    project: str = "vision",
    cpus: float = 1,
    mem_mb: int = 1024,
    gpus: int = 0,
    gpu_mem_mb: int = 0,
    retries: int = 0,
    at: float | None = None,
) -> int:
    spec = {"command": "true", "project": project, "cpus": cpus, "mem_mb": mem_mb,
            "gpus": gpus, "gpu_mem_mb": gpu_mem_mb, "retries": retries}  # fmt: skip
    with ledger.tx():
        return ledger.add_job(spec, user, at=clock.now if at is None else at)


def run_attempt(
    ledger: Ledger,
    clock: Clock,
    job_id: int,
    host: str,
    start: float,
    end: float | None,
    *,
    gpu_ids: tuple[int, ...] = (),
    final: str = "succeeded",
    token: str | None = None,
) -> str:
    """Start an attempt at `start` and end it at `end` in `final` (None: leave it running)."""
    n = len(ledger.attempts_for(job_id))
    token = token or f"j{job_id}a{n + 1}"
    clock.now = start
    ledger.start_attempt(job_id, host, token, gpu_ids)
    ledger.transition_attempt(token, "running", job_state="running", started_at=start)
    if end is not None:
        clock.now = end
        job_state = {"lost": "queued", "succeeded": "succeeded"}.get(final, final)
        fields: dict[str, Any] = {"exit_code": 0} if final == "succeeded" else {}
        ledger.transition_attempt(token, final, job_state=job_state, **fields)
    return token


def add_power_samples(
    ledger: Ledger, host: str, gpu: int, start: float, end: float, watts: float,
    step: float = 60.0, util: float = 90.0,
) -> None:  # fmt: skip
    rows = []
    t = start
    while t <= end:
        rows.append((host, gpu, t, 0, util, watts, 1))
        t += step
    with ledger.tx():
        ledger.conn.executemany(
            "INSERT INTO samples (host, gpu_index, at, resolution, util_percent, power_w, n) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def set_lab_prices(ledger: Ledger, at: float, **prices: float) -> None:
    with ledger.tx():
        ledger.insert("prices", {"host": None, "effective_from": at, **prices})


def gpu_ids_of(ledger: Ledger, token: str) -> list[int]:
    row = ledger.query_one("SELECT gpu_ids FROM attempts WHERE token = ?", (token,))
    return json.loads(row["gpu_ids"])


def record_history(ledger: Ledger, clock: Clock, policy: str, jobs: int = 80, seed: int = 3,
                   load: float = 0.95, start: float = T0, **options: Any) -> Any:  # fmt: skip
    """Run the lab mix under `policy` (made with `options`) in the simulator from `start` and write
    what happened into the ledger as the dispatcher would have: hosts, jobs (time limit = the
    estimate), attempts with their start and end. Returns the simulator's result."""
    from scheduler.registry import make_policy
    from scheduler.simulator import Simulator
    from scheduler.workloads import lab_mix

    wl = lab_mix(jobs, load, seed, nodes=3)
    result = Simulator(wl).run(make_policy(policy, **options))
    with ledger.tx():
        for n in wl.nodes:
            c = n.capacity
            ledger.insert("hosts", {"name": n.id, "transport": "ssh", "address": "10.0.0.1",
                                    "state": "up", "admin_state": "active", "cpus": c.cpus,
                                    "mem_mb": c.mem_mb, "gpus": c.gpus,
                                    "gpu_mem_mb": c.gpu_mem_mb, "added_at": start})  # fmt: skip
    ids = {}
    for job in sorted(wl.jobs, key=lambda j: (j.submit_s, str(j.id))):
        r = job.request
        spec = {"command": "true", "project": job.project or "default", "cpus": r.cpus,
                "mem_mb": r.mem_mb, "gpus": r.gpus, "gpu_mem_mb": r.gpu_mem_mb,
                "time_limit_s": job.est_runtime_s, "priority": int(job.priority)}  # fmt: skip
        with ledger.tx():
            ids[job.id] = ledger.add_job(spec, job.user or "alice", at=start + job.submit_s)
    for att in sorted(result.attempts, key=lambda a: a.start_s):
        run_attempt(ledger, clock, ids[att.job_id], att.node_id, start + att.start_s,
                    start + att.end_s, gpu_ids=att.gpu_ids)  # fmt: skip
    return result
