"""A fixed lab for console tests and snapshots: hosts, samples, jobs, attempts, decisions."""

from __future__ import annotations

import json
import time
from pathlib import Path

from lepton_tui.ledger import Ledger
from lepton_tui.service import Service

# Wednesday 2026-03-11 14:00:00 UTC: far from midnight and from Monday, so "today" and "this
# week" are unambiguous in UTC.
FIXED_NOW = 1773237600.0
USER = "alice"


def fixed_clock() -> float:
    return FIXED_NOW


def sample_rows(host: str, gpus: int, now: float, minutes: int = 5, step: float = 10.0):
    """Host and GPU samples over the last `minutes`, deterministic (no randomness)."""
    rows = []
    n = int(minutes * 60 / step)
    for i in range(n):
        at = now - (n - 1 - i) * step
        wave = (i % 10) / 10
        rows.append(
            (host, -1, at, 0, 20 + 50 * wave, 30000.0, 65536.0, 3.5, None, None, None, None, None)
        )
        for g in range(gpus):
            util = (30 + 60 * wave + 7 * g) % 100
            rows.append((host, g, at, 0, None, None, None, None, util, 40000.0 * (g + 1) / gpus,
                         81920.0, 40 + util / 3, 80 + util * 3))  # fmt: skip
    return rows


def insert_samples(ledger: Ledger, rows) -> None:
    ledger.conn.executemany(
        "INSERT INTO samples (host, gpu_index, at, resolution, cpu_percent, mem_used_mb, "
        "mem_total_mb, load1, util_percent, gpu_mem_used_mb, gpu_mem_total_mb, temperature_c, "
        "power_w) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def add_host_row(ledger: Ledger, name: str, *, gpus: int, cpus: float, price: float | None,
                 state: str = "up", admin_state: str = "active", now: float = FIXED_NOW) -> None:  # fmt: skip
    ledger.insert("hosts", {
        "name": name, "address": f"{name}.lab", "port": 22, "user": "lab", "transport": "ssh",
        "state": state, "admin_state": admin_state, "cpus": cpus, "mem_mb": 65536, "gpus": gpus,
        "gpu_mem_mb": 81920 * gpus, "gpu_model": "A100" if gpus else None,
        "price_per_hour": price, "added_at": now - 2 * 86400, "added_by": USER,
        "last_seen": now - 5, "labels": "[]", "host_key_type": "ssh-ed25519",
        "host_key_fingerprint": f"SHA256:fixed-{name}",
    })  # fmt: skip
    if price is not None:  # as Service.add_host records it: the price history economics reads
        ledger.insert("prices", {"host": name, "effective_from": now - 2 * 86400,
                                 "price_per_hour": price, "set_by": USER})  # fmt: skip


def fill(home: Path, now: float = FIXED_NOW) -> Service:
    """Three hosts (2 GPUs, 4 GPUs draining, CPU only), 7 jobs, attempts, decisions."""
    svc = Service.open(home, user=USER, clock=lambda: now)
    led = svc.ledger
    with led.tx():
        led.execute("INSERT OR REPLACE INTO settings VALUES ('lab_name', '\"vision-lab\"')")
        add_host_row(led, "gpu-a", gpus=2, cpus=32, price=4.0)
        add_host_row(led, "gpu-b", gpus=4, cpus=64, price=8.0, admin_state="draining")
        add_host_row(led, "cpu-c", gpus=0, cpus=16, price=None, state="down")
        insert_samples(led, sample_rows("gpu-a", 2, now))
        insert_samples(led, sample_rows("gpu-b", 4, now))
    jobs = [
        # (user, project, command, cpus, mem, gpus, prio, submitted ago, state, host, gpu ids)
        (
            "alice",
            "vision",
            "python train.py --epochs 90",
            8,
            32768,
            2,
            5,
            3 * 3600,
            "running",
            "gpu-a",
            [0, 1],
        ),
        ("bob", "nlp", "python finetune.py", 16, 65536, 1, 0, 2 * 3600, "running", "gpu-b", [2]),
        ("carol", "rl", "python rollout.py --envs 64", 4, 8192, 0, 0, 1800, "running", "gpu-b", []),
        ("alice", "vision", "python eval.py", 4, 16384, 1, 0, 900, "queued", None, None),
        ("bob", "nlp", "python big.py", 32, 131072, 4, 0, 600, "queued", None, None),
        ("dave", "infra", "nvidia-smi || echo no gpu", 1, 1024, 0, 0, 120, "queued", None, None),
        (
            "alice",
            "vision",
            "python old.py",
            2,
            4096,
            1,
            0,
            86400 + 7200,
            "succeeded",
            "gpu-a",
            [0],
        ),
    ]
    for i, (user, project, cmd, cpus, mem, gpus, prio, ago, state, host, ids) in enumerate(jobs):
        at = now - ago
        with led.tx():
            job_id = led.add_job({"command": cmd, "project": project, "cpus": cpus, "mem_mb": mem,
                                  "gpus": gpus, "priority": prio}, user, at=at)  # fmt: skip
        if state == "queued":
            led.set_job_reason(job_id, "waiting: 4 GPUs fit no host now (gpu-b drains)"
                               if gpus == 4 else "waiting for the scheduler")  # fmt: skip
            continue
        token = f"tok{i}"
        led.start_attempt(job_id, host, token, ids, policy="backfill")
        start = at + 30
        if state == "running":
            led.transition_attempt(token, "running", job_state="running", started_at=start)
        else:
            led.transition_attempt(token, "running", job_state="running", started_at=start)
            led.transition_attempt(token, "succeeded", job_state="succeeded", exit_code=0,
                                   ended_at=start + 3600,
                                   job_fields={"exit_code": 0, "ended_at": start + 3600})  # fmt: skip
        with led.tx():
            led.insert("decisions", {"at": start, "policy": "backfill", "job_id": job_id,
                                     "host": host, "placed": 1,
                                     "explanation": f"placed on {host}: fits, first in queue"})  # fmt: skip
    with led.tx():
        led.insert("decisions", {"at": now - 60, "policy": "backfill", "job_id": 5, "host": None,
                                 "placed": 0, "explanation": "4 GPUs fit no host now"})  # fmt: skip
    return svc


def many_jobs(ledger: Ledger, n: int, now: float = FIXED_NOW) -> None:
    """`n` queued jobs in one transaction (for the 10,000-job tests and the benchmark)."""
    rows = [
        (f"user{i % 20}", f"proj{i % 7}", f"python sweep.py --trial {i}", 1.0 + i % 8,
         1024 * (1 + i % 16), i % 3, i % 5, "queued", "waiting for the scheduler",
         now - i, now - i, json.dumps({}))
        for i in range(n)
    ]  # fmt: skip
    with ledger.tx():
        ledger.conn.executemany(
            "INSERT INTO jobs (user, project, command, cpus, mem_mb, gpus, priority, state, reason, "
            "submitted_at, updated_at, env) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def big_fleet(ledger: Ledger, hosts: int = 64, gpus: int = 8, now: float = FIXED_NOW) -> None:
    """`hosts` hosts of `gpus` GPUs each, with five minutes of samples."""
    with ledger.tx():
        for h in range(hosts):
            add_host_row(ledger, f"node{h:02d}", gpus=gpus, cpus=64, price=2.0 * gpus, now=now)
            insert_samples(ledger, sample_rows(f"node{h:02d}", gpus, now, minutes=5, step=10.0))


def busy_gpus(ledger: Ledger, now: float = FIXED_NOW) -> int:
    """One running 1-GPU job on every GPU of every host, an hour old, and a lab electricity price
    (0.2 per kWh, in force since the day before) beside the hosts' hourly prices: a busy lab for
    the cost panel. Returns how many attempts run."""
    with ledger.tx():
        ledger.insert(
            "prices", {"host": None, "effective_from": now - 86400, "power_price_kwh": 0.2}
        )
    k = 0
    for h in ledger.query("SELECT name, gpus FROM hosts ORDER BY name"):
        for g in range(int(h["gpus"] or 0)):
            with ledger.tx():
                job = ledger.add_job({"command": "python train.py", "project": "vision", "cpus": 1,
                                      "mem_mb": 1024, "gpus": 1, "priority": 0}, f"user{k % 20}",
                                     at=now - 7200)  # fmt: skip
            ledger.start_attempt(job, h["name"], f"busy{k}", [g], policy="dqn")
            ledger.transition_attempt(f"busy{k}", "running", job_state="running",
                                      started_at=now - 3600)  # fmt: skip
            k += 1
    return k


if (
    __name__ == "__main__"
):  # pragma: no cover - build a lab to look at: python -m tests.tui.data DIR
    import sys

    fill(Path(sys.argv[1]), time.time())
