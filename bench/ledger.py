"""Ledger benchmark: submit rate (1 and 8 processes), queue listing at 100,000 jobs, cost
aggregation over 1,000,000 sample rows.

    python bench/ledger.py            # prints a markdown table
"""

from __future__ import annotations

import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lepton_tui.ledger import open_ledger  # noqa: E402
from lepton_tui.service import Service  # noqa: E402
from lepton_tui.validate import validate_job  # noqa: E402


def _submit(home: str, tag: int, count: int) -> None:
    svc = Service.open(home, user=f"u{tag}")
    spec = validate_job(command=f"echo {tag}", gpus=1)
    for _ in range(count):
        svc.submit(spec)
    svc.close()


def submit_rate(processes: int, per_process: int) -> float:
    with tempfile.TemporaryDirectory() as home:
        open_ledger(Path(home) / "ledger.db").close()
        start = time.perf_counter()
        if processes == 1:
            _submit(home, 0, per_process)
        else:
            ctx = mp.get_context("fork")
            procs = [
                ctx.Process(target=_submit, args=(home, n, per_process)) for n in range(processes)
            ]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
        return processes * per_process / (time.perf_counter() - start)


def fill_jobs(home: Path, count: int) -> Service:
    svc = Service.open(home, user="bench")
    ledger = svc.ledger
    rng = random.Random(1)
    states = ["succeeded"] * 90 + ["failed"] * 5 + ["running"] * 2 + ["queued"] * 3
    with ledger.tx():
        for i in range(count):
            ledger.execute(
                "INSERT INTO jobs (user, project, command, cpus, mem_mb, gpus, gpu_mem_mb, priority,"
                " retries, attempts_used, state, submitted_at, env) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (f"user{i % 20}", f"proj{i % 7}", "python train.py", 4, 16384, rng.choice([0, 1, 2, 8]),
                 0, 0, 0, 1, rng.choice(states), 1.7e9 + i, "{}"),
            )  # fmt: skip
    return svc


def time_ms(fn, repeat: int = 20) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs)


def main() -> None:
    rows = []
    rows.append(
        (
            "submit, 1 process (jobs/s, each its own transaction, synchronous=FULL)",
            f"{submit_rate(1, 2000):,.0f}",
        )
    )
    rows.append(("submit, 8 processes at once (jobs/s, total)", f"{submit_rate(8, 500):,.0f}"))
    with tempfile.TemporaryDirectory() as home:
        svc = fill_jobs(Path(home), 100_000)
        rows.append(("queue listing (not ended jobs) with 100,000 jobs in the ledger (ms, median)",
                     f"{time_ms(lambda: svc.list_jobs()):.1f}"))  # fmt: skip
        rows.append(("queue listing for one user with 100,000 jobs (ms, median)",
                     f"{time_ms(lambda: svc.list_jobs(user='user3')):.1f}"))  # fmt: skip
        plan = svc.ledger.query(
            "EXPLAIN QUERY PLAN SELECT * FROM jobs WHERE state IN ('queued','running') ORDER BY id"
        )
        rows.append(("queue listing query plan", "; ".join(p["detail"] for p in plan)))
        ledger = svc.ledger
        rng = random.Random(2)
        with ledger.tx():
            ledger.conn.executemany(
                "INSERT INTO samples (host, gpu_index, at, resolution, util_percent, power_w, n) VALUES (?,?,?,?,?,?,1)",
                ((f"h{i % 32}", i % 8, 1.7e9 + i * 30, 0, rng.random() * 100, rng.random() * 700) for i in range(1_000_000)),
            )  # fmt: skip
        sql = (
            "SELECT host, COUNT(*) AS n, AVG(util_percent) AS util, SUM(power_w * 30) / 3.6e6 AS kwh "
            "FROM samples WHERE at >= ? AND at < ? GROUP BY host"
        )
        rows.append(("aggregation over 1,000,000 sample rows, by host (ms, median)",
                     f"{time_ms(lambda: ledger.query(sql, (0, 2e9)), repeat=5):.1f}"))  # fmt: skip
        # the console's "latest sample of each GPU": seek by time, group after (with statistics)
        from lepton_tui.economics.costs import latest_gpu_power

        ledger.conn.execute("ANALYZE")
        end = 1.7e9 + 1_000_000 * 30
        plain = (
            "SELECT host, gpu_index, power_w, MAX(at) AS at FROM samples WHERE at >= ? "
            "AND resolution = 0 AND gpu_index >= 0 AND power_w IS NOT NULL GROUP BY host, gpu_index"
        )
        rows.append(("latest power of each GPU, 1,000,000 samples, after ANALYZE (ms, median)",
                     f"{time_ms(lambda: latest_gpu_power(ledger, end), repeat=5):.1f}"))  # fmt: skip
        rows.append(("the same grouped by an index SQLite may walk whole (ms, median)",
                     f"{time_ms(lambda: ledger.query(plain, (end - 600,)), repeat=5):.1f}"))  # fmt: skip
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
