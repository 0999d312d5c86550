"""What the shared lab's rules cost the dispatcher per tick, and what they change in the simulator.

    python bench/sharing.py [--attempts 50000] [--pending 200] [--repeat 5]

Builds a ledger with ATTEMPTS ended attempts over the last 30 days (30 users, one host of 8
GPUs), PENDING queued jobs and a limit, then times `PlaceRules.prepare` (constraints, outside use,
limits, fair-share usage) cold (usage summed in SQL) and reused (no attempt changed), the
waiting reasons of the whole queue when nothing was placed (`PlaceRules.waiting`, fair share
named), and `share ls`'s standings. Then runs backfill on the lab workload with and without fair share and a
per-user limit (`bench --fair-share --user-gpus 2`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lepton_tui.cluster_view import job_request  # noqa: E402
from lepton_tui.place_rules import PlaceRules  # noqa: E402
from lepton_tui.service import Service  # noqa: E402
from lepton_tui.sharing import lab_standings  # noqa: E402


def build(home: Path, attempts: int, pending: int) -> Service:
    svc = Service.open(home)
    led = svc.ledger
    now = time.time()
    with led.tx():
        led.insert("hosts", {"name": "h", "transport": "ssh", "state": "up", "added_at": now,
                             "admin_state": "active", "gpus": 8, "gpu_mem_mb": 8 * 81920,
                             "cpus": 64, "mem_mb": 512000})  # fmt: skip
        step = 30 * 86400 / attempts
        for i in range(attempts):
            start = now - 30 * 86400 + i * step
            job = led.add_job({"command": "x", "cpus": 4, "gpus": 1}, f"user{i % 30}", at=start)
            led.execute(
                "INSERT INTO attempts (job_id, attempt_no, host, token, gpu_ids, cpus, gpus, "
                "gpu_mem_mb, state, created_at, started_at, ended_at) "
                "VALUES (?, 1, 'h', ?, '[0]', 4, 1, 0, 'succeeded', ?, ?, ?)",
                (job, f"t{i}", start, start, start + 3000),
            )
            led.execute("UPDATE jobs SET state = 'succeeded' WHERE id = ?", (job,))
        for i in range(pending):
            led.add_job({"command": "x", "cpus": 1, "gpus": 1}, f"user{i % 30}")
    svc.limit_set("user", "user1", gpus=2)
    return svc


def timed(fn, repeat: int) -> float:  # noqa: ANN001
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--attempts", type=int, default=50_000)
    ap.add_argument("--pending", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        svc = build(Path(tmp), args.attempts, args.pending)
        led = svc.ledger
        pending = led.query("SELECT * FROM jobs WHERE state = 'queued'")
        hosts = led.hosts()
        now = time.time()
        clock = iter(range(10**9))

        def cold() -> None:
            led.execute("UPDATE attempts SET attempt_no = attempt_no WHERE id = 1")
            led.insert("attempts", {"job_id": 1, "attempt_no": 9, "host": "h", "token":
                                    f"c{next(clock)}", "state": "lost", "created_at": now})  # fmt: skip
            PlaceRules.prepare(led, pending, hosts, now)

        print(f"attempts {args.attempts:,}, pending {args.pending}")
        print(f"prepare, usage summed (ms, median) {timed(cold, args.repeat):.1f}")
        print(f"prepare, usage reused (ms, median) "
              f"{timed(lambda: PlaceRules.prepare(led, pending, hosts, now + 1), args.repeat):.2f}")  # fmt: skip

        def reasons() -> None:
            rules = PlaceRules.prepare(led, pending, hosts, now + 1)
            for job in rules.pending:
                rules.request(job, job_request(job))
            for job in rules.pending:
                rules.waiting(job, "waiting for GPUs")

        print(f"prepare + every queued job's reason (ms, median) {timed(reasons, args.repeat):.1f}")
        print(f"share ls standings (ms, median) {timed(lambda: lab_standings(led, now), args.repeat):.1f}")  # fmt: skip
        svc.close()
    from scheduler.bench import make_workload
    from scheduler.fairshare import Limit, ShareConfig, SharedLabPolicy
    from scheduler.registry import make_policy
    from scheduler.simulator import Simulator

    print("lab workload, 1000 jobs, 4 nodes, backfill: wait per user (mean over the users)")
    for seed in (0, 1):
        wl = make_workload("lab", seed, jobs=1000, nodes=4)
        users = {j.id: j.user for j in wl.jobs}
        for name in ("backfill", "backfill+fs", "backfill+fs+gpus2"):
            policy = make_policy("backfill")
            if name != "backfill":
                limits = [Limit("user", "*", gpus=2)] if name.endswith("gpus2") else []
                policy = SharedLabPolicy(policy, ShareConfig(), limits)
            result = Simulator(wl).run(policy)
            waits: dict[str, list[float]] = {}
            for r in result.finished:
                waits.setdefault(users[r.id], []).append(r.start_s - r.submit_s)
            per_user = sorted(statistics.mean(w) for w in waits.values())
            print(f"seed {seed} {name:<18} finished {len(result.finished):4d}  "
                  f"user mean wait: best {per_user[0]:7.0f} s, median "
                  f"{statistics.median(per_user):7.0f} s, worst {per_user[-1]:7.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
