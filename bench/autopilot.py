"""Autopilot benchmark: how long one round takes on a realistic week of a lab's history.

    python bench/autopilot.py                       # 1,000, 3,000 and 10,000 jobs on 16 hosts
    python bench/autopilot.py --jobs 5000 --hosts 32 --json

Writes a week of the lab mix (scheduler.workloads.lab_mix at GPU load 0.9, recorded under EASY
backfilling in the simulator) into a fresh ledger the way the dispatcher leaves it (hosts, jobs
with time limits, one ended attempt per job, a sample per host every minute so no dispatcher gap
is seen), then runs `lepton_tui.autopilot.run_round` on it: every policy but the ILP replayed,
the winner recorded. It prints the round's wall and CPU time and each policy's share (one replay
per policy, timed alone, CPU seconds). One CPU core; the child process a real round runs in adds
about 0.5 s of start-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lepton_tui import autopilot  # noqa: E402
from lepton_tui.economics.replay import replay_ledger  # noqa: E402
from lepton_tui.ledger import Ledger  # noqa: E402

T_START = 1767225600.0  # 2026-01-01 00:00 UTC


def build(path: Path, jobs: int, hosts: int, seed: int = 7) -> float:
    """A recorded history of `jobs` jobs on `hosts` hosts; returns the moment the round runs."""
    from scheduler.registry import make_policy
    from scheduler.simulator import Simulator
    from scheduler.workloads import lab_mix

    wl = lab_mix(jobs, 0.9, seed, nodes=hosts)
    run = Simulator(wl).run(make_policy("backfill"))
    ledger = Ledger(path)
    with ledger.tx():
        for n in wl.nodes:
            c = n.capacity
            ledger.insert("hosts", {"name": n.id, "transport": "ssh", "address": "10.0.0.1",
                                    "state": "up", "admin_state": "active", "cpus": c.cpus,
                                    "mem_mb": c.mem_mb, "gpus": c.gpus,
                                    "gpu_mem_mb": c.gpu_mem_mb, "added_at": T_START})  # fmt: skip
        ids = {}
        for job in sorted(wl.jobs, key=lambda j: (j.submit_s, str(j.id))):
            r = job.request
            spec = {"command": "python train.py", "project": job.project or "default",
                    "cpus": r.cpus, "mem_mb": r.mem_mb, "gpus": r.gpus,
                    "gpu_mem_mb": r.gpu_mem_mb, "time_limit_s": job.est_runtime_s,
                    "priority": int(job.priority)}  # fmt: skip
            ids[job.id] = ledger.add_job(spec, job.user or "alice", at=T_START + job.submit_s)
        for k, a in enumerate(run.attempts):
            start, end = T_START + a.start_s, T_START + a.end_s
            ledger.insert("attempts", {"job_id": ids[a.job_id], "host": a.node_id,
                                       "token": f"t{k}", "gpu_ids": json.dumps(list(a.gpu_ids)),
                                       "state": "succeeded", "created_at": start,
                                       "started_at": start, "ended_at": end, "exit_code": 0,
                                       "policy": "backfill"})  # fmt: skip
            ledger.execute("UPDATE jobs SET state = 'succeeded' WHERE id = ?", (ids[a.job_id],))
        end = T_START + max(a.end_s for a in run.attempts)
        t = T_START
        while t <= end:
            for n in wl.nodes:
                ledger.insert("samples", {"host": n.id, "gpu_index": -1, "at": t,
                                          "resolution": 0, "cpu_percent": 50.0})  # fmt: skip
            t += 60.0
    ledger.close()
    return end + 60.0


def measure(jobs: int, hosts: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        now = build(path, jobs, hosts)
        ledger = Ledger(path)
        ledger.set_setting("autopilot_window_s", 90 * 86400.0)  # the whole history
        begun, cpu = time.perf_counter(), time.process_time()
        decision = autopilot.run_round(ledger, now)
        round_s, round_cpu_s = time.perf_counter() - begun, time.process_time() - cpu
        per_policy = {}
        for name in autopilot.candidates():
            t0 = time.process_time()
            replay_ledger(ledger, now - 90 * 86400, now, [name])
            per_policy[name] = round(time.process_time() - t0, 2)
        span_d = (now - T_START) / 86400
        ledger.close()
    return {"jobs": jobs, "hosts": hosts, "history_days": round(span_d, 1),
            "round_s": round(round_s, 2), "round_cpu_s": round(round_cpu_s, 2),
            "chose": decision.policy,
            "replay_s": per_policy}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, action="append", help="jobs in the history")
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = args.jobs or [1000, 3000, 10000]
    if args.json:
        print(json.dumps([measure(n, args.hosts) for n in sizes], indent=2))
        return
    print(f"{'jobs':>6} {'hosts':>5} {'days':>5} {'wall s':>7} {'CPU s':>6}  chose     "
          "per policy (CPU s)", flush=True)  # fmt: skip
    for n in sizes:  # each row as soon as it is measured
        r = measure(n, args.hosts)
        each = ", ".join(f"{k} {v}" for k, v in r["replay_s"].items())  # type: ignore[union-attr]
        print(f"{r['jobs']:>6} {r['hosts']:>5} {r['history_days']:>5} {r['round_s']:>7} "
              f"{r['round_cpu_s']:>6}  {r['chose']:<9} {each}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
