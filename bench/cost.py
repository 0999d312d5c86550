"""Economics benchmark: cost reports over a year of a 32-host lab, and cost beside slowdown.

    python bench/cost.py                 # both parts
    python bench/cost.py --part report   # only the report timings
    python bench/cost.py --part weight   # only cost-aware scheduling (needs scheduler/)
    python bench/cost.py --part first --ledger /tmp/year.db   # the first report, time and RSS

Part 1 builds a ledger with one year of a 32-host lab (8 GPUs each): 200,000 attempts (about 5 %
lost and retried), quarterly price changes per host plus lab defaults with an electricity price,
and 1,000,000 sample rows, then times `cost_report` by user, project, host, job and day over the
year and over the last month (median of several runs, warm cache). Part 2 runs the scheduler's
simulator on the lab mix, on nodes of three price tiers, for several `cost_weight` settings, and
prints cost beside slowdown.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lepton_tui.economics.costs import cost_summary  # noqa: E402
from lepton_tui.economics.report import cost_report, settle_ended  # noqa: E402
from lepton_tui.ledger import Ledger  # noqa: E402

YEAR = 365 * 86400.0
T_START = 1767225600.0  # 2026-01-01 00:00 UTC
HOSTS = 32
GPUS = 8


def build(path: Path, attempts: int = 200_000, samples: int = 1_000_000, seed: int = 0) -> Ledger:
    """A ledger with a year of history (written straight into the tables, in bulk)."""
    rng = random.Random(seed)
    end = T_START + YEAR
    led = Ledger(path, clock=lambda: end)
    conn = led.conn
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    hosts = [f"gpu{i:02d}" for i in range(HOSTS)]
    for i, h in enumerate(hosts):
        conn.execute(
            "INSERT INTO hosts (name, transport, address, state, admin_state, cpus, mem_mb, gpus, "
            "gpu_mem_mb, added_at) VALUES (?, 'ssh', ?, 'up', 'active', 64, 524288, ?, ?, ?)",
            (h, f"10.0.0.{i + 1}", GPUS, GPUS * 81920, T_START),
        )
    conn.execute(
        "INSERT INTO prices (host, effective_from, price_cpu_hour, price_gpu_hour, price_gb_hour, "
        "power_price_kwh) VALUES (NULL, ?, 0.02, 1.2, 0.004, 0.25)",
        (T_START,),
    )
    for i, h in enumerate(hosts):
        if i % 2:  # half the hosts are rented at a flat price that changes every quarter
            for q in range(4):
                conn.execute(
                    "INSERT INTO prices (host, effective_from, price_per_hour) VALUES (?, ?, ?)",
                    (h, T_START + q * YEAR / 4, 12.0 + q + i % 5),
                )
    users = [f"user{i}" for i in range(30)]
    projects = [f"proj{i}" for i in range(10)]
    jobs, atts = [], []
    job_id = 0
    n = 0
    while n < attempts:
        job_id += 1
        submit = T_START + rng.random() * (YEAR - 3 * 86400)
        gpus = rng.choice([0, 1, 1, 2, 4, 8])
        cpus = max(1, gpus * 8) if gpus else rng.choice([1, 4, 16])
        mem = cpus * 4096
        dur = min(3 * 86400, rng.lognormvariate(8.0, 1.3))
        lost = rng.random() < 0.05
        jobs.append((job_id, rng.choice(users), rng.choice(projects), "true", cpus, mem, gpus,
                     "succeeded", submit, submit))  # fmt: skip
        start = submit + rng.random() * 600
        for k in range(2 if lost else 1):
            host = rng.choice(hosts)
            stop = start + (dur * rng.random() if k == 0 and lost else dur)
            state = "lost" if k == 0 and lost else "succeeded"
            gpu_ids = json.dumps(sorted(rng.sample(range(GPUS), gpus)))
            energy = gpus * 280.0 * (stop - start) / 3600.0 if gpus else 0.0
            atts.append((job_id, k + 1, host, f"t{job_id}-{k}", gpu_ids, cpus, mem, gpus, state,
                         start, start, stop, energy))  # fmt: skip
            start = stop + 30
            n += 1
    # a few still running at the end of the year (energy measured live)
    for j in range(200):
        job_id += 1
        start = end - rng.random() * 7200
        jobs.append((job_id, rng.choice(users), rng.choice(projects), "true", 8, 32768, 1,
                     "running", start, start))  # fmt: skip
        atts.append((job_id, 1, rng.choice(hosts), f"r{j}", json.dumps([j % GPUS]), 8, 32768, 1,
                     "running", start, start, None, None))  # fmt: skip
    conn.executemany(
        "INSERT INTO jobs (id, user, project, command, cpus, mem_mb, gpus, state, submitted_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        jobs,
    )
    conn.executemany(
        "INSERT INTO attempts (job_id, attempt_no, host, token, gpu_ids, cpus, mem_mb, gpus, "
        "state, created_at, started_at, ended_at, energy_wh) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        atts,
    )
    # samples: a year per hour for every host and GPU (32 x 9 x 8760 = 2.5 M would be the
    # full set; we keep 1 M: hourly rows for the host rows and GPUs 0-2, newest raw rows)
    rows = []
    per_series = samples // (HOSTS * 4)
    for h in hosts:
        for g in (-1, 0, 1, 2):
            for s in range(per_series):
                at = end - (per_series - s) * 3600.0
                rows.append((h, g, at, 3600, rng.random() * 100, 150 + rng.random() * 200, 1800))
    conn.executemany(
        "INSERT INTO samples (host, gpu_index, at, resolution, util_percent, power_w, n) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA synchronous = FULL")
    t0 = time.perf_counter()
    settled = settle_ended(led, end)  # what the dispatcher's settle_attempt does as attempts end
    print(f"settled {settled:,} ended attempts in bulk in {time.perf_counter() - t0:.1f} s")
    conn.execute("ANALYZE")
    return led


def timed(fn, repeat: int = 7) -> float:
    """Median wall time of `fn()` in ms."""
    fn()  # warm
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def part_report(path: Path | None) -> None:
    tmp = None
    if path is None:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "ledger.db"
    t0 = time.perf_counter()
    led = build(path) if not path.exists() else Ledger(path, clock=lambda: T_START + YEAR)
    built = time.perf_counter() - t0
    counts = led.query_one(
        "SELECT (SELECT COUNT(*) FROM attempts) AS a, (SELECT COUNT(*) FROM samples) AS s, "
        "(SELECT COUNT(*) FROM jobs) AS j"
    )
    end = T_START + YEAR
    print(f"ledger: {counts['a']:,} attempts, {counts['j']:,} jobs, {counts['s']:,} sample rows "
          f"(built in {built:.1f} s)")  # fmt: skip
    t0 = time.perf_counter()
    cost_report(led, T_START, end, "user", now=end)
    print(
        f"first report (builds the daily roll-up of {365} days): {time.perf_counter() - t0:.1f} s"
    )
    print("| report | ms (median of 7) |")
    print("|---|---|")
    for by in ("user", "project", "host", "day", "total"):
        ms = timed(lambda by=by: cost_report(led, T_START, end, by, now=end))
        print(f"| year by {by} | {ms:.1f} |")
    ms = timed(lambda: cost_report(led, T_START, end, "user", now=end, rollup=False), repeat=3)
    print(f"| year by user, without the roll-up (every attempt) | {ms:.1f} |")
    ms = timed(lambda: cost_report(led, T_START, end, "job", now=end), repeat=3)
    print(f"| year by job (lists every job) | {ms:.1f} |")
    for by in ("user", "project"):
        ms = timed(lambda by=by: cost_report(led, end - 30 * 86400, end, by, now=end))
        print(f"| last 30 days by {by} | {ms:.1f} |")
    ms = timed(lambda: cost_summary(led, end), repeat=3)
    print(f"| console cost_summary (today, week, month, by user/project, idle) | {ms:.1f} |")
    led.close()
    if tmp is not None:
        tmp.cleanup()


def child_first(path: Path) -> None:
    """In a fresh process: the year's first report by user on a ledger whose roll-up is empty
    (built by it), its wall time and the process's peak RSS (and the RSS before it)."""
    import resource

    led = Ledger(path, clock=lambda: T_START + YEAR)
    with led.tx():  # the roll-up is a cache: emptied, the next report builds it again
        for table in ("econ_rollup", "econ_rollup_idle", "econ_rollup_days"):
            led.execute(f"DELETE FROM {table}")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, c0 = time.perf_counter(), time.process_time()
    rep = cost_report(led, T_START, T_START + YEAR, "user", now=T_START + YEAR)
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"s": took, "cpu_s": cpu, "peak_mb": peak, "before_mb": before,
                      "total": rep.total.cost, "rows": len(rep.rows)}))  # fmt: skip


def part_first(path: Path | None, runs: int = 3) -> None:
    """The first year-long report (it builds the daily roll-up), each run in a fresh process."""
    import subprocess

    tmp = None
    if path is None:
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / "ledger.db"
    if not path.exists():
        build(path).close()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        "| run | first report, builds the roll-up: wall s | CPU s | peak RSS (MB) | RSS before it (MB) |"
    )
    print("|---|---|---|---|---|")
    for i in range(runs):
        out = subprocess.run(
            [sys.executable, __file__, "--child-first", str(path)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        r = json.loads(out.strip().splitlines()[-1])
        print(f"| {i + 1} | {r['s']:.2f} | {r['cpu_s']:.2f} | {r['peak_mb']:.0f} | {r['before_mb']:.0f} |"
              f" total {r['total']:,.2f} over {r['rows']} users")  # fmt: skip
    if tmp is not None:
        tmp.cleanup()


def part_weight(jobs: int, seeds: int, load: float = 0.9) -> None:
    from dataclasses import replace

    from scheduler.metrics import compute_metrics
    from scheduler.model import Prices
    from scheduler.registry import make_policy
    from scheduler.simulator import Simulator
    from scheduler.workloads import lab_mix

    # three price tiers: owned (electricity only, cheap), old cloud, new cloud
    tiers = [Prices(gpu_hour=0.3), Prices(gpu_hour=1.2, cpu_hour=0.02), Prices(node_hour=20.0)]
    print(f"lab mix, {jobs} jobs, 8 nodes in 3 price tiers, load {load:g}, {seeds} seeds (mean)")
    print(
        "| policy | cost_weight | mean slowdown | mean bounded slowdown | mean wait (s) | cost | idle cost |"
    )
    print("|---|---|---|---|---|---|---|")
    for policy in ("backfill", "tetris", "ilp"):
        for weight in (0.0, 0.5, 2.0):
            acc: dict[str, list[float]] = {}
            for seed in range(seeds):
                wl = lab_mix(jobs, load, seed, nodes=8)
                wl.nodes = [replace(n, prices=tiers[i % 3]) for i, n in enumerate(wl.nodes)]
                try:
                    pol = make_policy(policy, cost_weight=weight)
                except ValueError as exc:
                    print(f"| {policy} | {weight:g} | not available: {exc} | | | | |")
                    break
                m = compute_metrics(Simulator(wl).run(pol))
                for k in ("avg_slowdown", "avg_bounded_slowdown", "avg_wait", "cost", "idle_cost"):
                    acc.setdefault(k, []).append(m[k])
            else:
                mean = {k: statistics.fmean(v) for k, v in acc.items()}
                print(f"| {policy} | {weight:g} | {mean['avg_slowdown']:.2f} | "
                      f"{mean['avg_bounded_slowdown']:.2f} | {mean['avg_wait']:.0f} | "
                      f"{mean['cost']:,.0f} | {mean['idle_cost']:,.0f} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    if len(sys.argv) == 3 and sys.argv[1] == "--child-first":
        child_first(Path(sys.argv[2]))
        return
    ap.add_argument("--part", choices=("report", "first", "weight", "all"), default="all")
    ap.add_argument("--ledger", type=Path, default=None, help="Reuse (or build) this ledger file.")
    ap.add_argument("--jobs", type=int, default=300, help="Jobs per run for --part weight.")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--load", type=float, default=0.9)
    args = ap.parse_args()
    if args.part in ("report", "all"):
        part_report(args.ledger)
    if args.part == "first":
        part_first(args.ledger)
    if args.part in ("weight", "all"):
        part_weight(args.jobs, args.seeds, args.load)


if __name__ == "__main__":
    main()
