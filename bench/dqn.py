"""Evaluate the shipped DQN policy against every heuristic, and time a scheduling round.

    python bench/dqn.py --trace ../shared/traces/alibaba2023_openb_pod_list_default.csv

Workloads the policy never trained on: evaluation seeds 0-4 (training draws workload seeds from
10,000 up), loads 0.7 / 0.9 / 1.1, and for the trace its held-out last 40 % of tasks (training saw
only the first 60 %). Prints a markdown table (mean +- std over seeds), writes every row as JSON,
and records the table in the weights' sidecar (`scheduler/weights/dqn.json`, key "evaluation").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scheduler.bench import bench_run, make_workload, summarize  # noqa: E402
from scheduler.workloads import load_trace  # noqa: E402

POLICIES = ("fifo", "sjf", "tetris", "backfill", "ilp", "sjf-limit", "dqn")
LIMIT_SHARE = 0.4
"""sjf-limit: SJF with the DQN teacher's long-job limit (`SJFPolicy(long_share=0.4)`), shown
beside the issue's heuristics so the DQN is also compared with the rule it imitated"""
TRAIN_SHARE = 0.6
COLUMNS = (
    ("avg_bounded_slowdown", "avg bsld", "{:.2f}"),
    ("p95_bounded_slowdown", "p95 bsld", "{:.1f}"),
    ("avg_jct", "avg JCT (h)", "{:.2f}"),
    ("makespan", "makespan (h)", "{:.1f}"),
    ("gpu_util", "GPU util", "{:.3f}"),
    ("cost", "cost", "{:.0f}"),
)


def _one(args: tuple) -> list[dict]:
    from scheduler.ilp import send_solver_output_to_stderr

    send_solver_output_to_stderr()  # one process per worker: HiGHS's stray line stays out
    kind, load, seed, jobs, trace, held_start, held_len, policies = args
    opts: dict = {"jobs": jobs, "load": load}
    if kind == "trace":
        span = max(1, held_len - jobs)
        opts.update(trace=trace, start=held_start + (seed * 457) % span)
    wl = make_workload(kind, seed, **opts)
    rows = []
    for p in policies:
        if p == "sjf-limit":
            row = bench_run(wl, "sjf", seed, {"long_share": LIMIT_SHARE})
            row["policy"] = p
        else:
            row = bench_run(wl, p, seed)
        row["load"] = load
        rows.append(row)
    return rows


def decision_latency(nodes: int = 64, pending: int = 200, rounds: int = 200, fill: int = 6) -> dict:
    """Median and p99 wall time, median and p95 CPU time of one DQN round on `nodes` nodes, each
    already running up to `fill` random jobs (6: about half busy, so a round places ~135 jobs;
    30: nearly full, ~54: the issue's "64 nodes x 200 pending, placing ~50")."""
    from scheduler.model import ClusterView, JobRequest, NodeView, Resources
    from scheduler.policy import DQNPolicy

    rng = np.random.default_rng(0)
    cap = Resources(64.0, 524288, 8, 8 * 81920)
    pol = DQNPolicy()
    times: list[float] = []
    cpu: list[float] = []
    placed = 0
    for _ in range(rounds):
        views = []
        for i in range(nodes):
            v = NodeView.empty(f"gpu-{i:02d}", cap, 20.0)
            for _ in range(int(rng.integers(0, fill + 1))):
                r = Resources(
                    float(rng.integers(2, 16)),
                    int(rng.integers(8, 64)) * 1024,
                    int(rng.integers(0, 3)),
                )
                g = v.pick_gpus(r)
                if g is not None:
                    v = v.allocate(r, g)
            views.append(v)
        jobs = [
            JobRequest(
                k,
                Resources(
                    float(rng.integers(1, 32)),
                    int(rng.integers(4, 256)) * 1024,
                    int(rng.choice([0, 1, 2, 4, 8])),
                ),
                float(rng.lognormal(7, 1.2)),
                float(rng.integers(-1, 2)),
                float(rng.uniform(0, 3600)),
            )
            for k in range(pending)
        ]
        view = ClusterView(tuple(views), 3600.0)
        t0, c0 = time.perf_counter(), time.thread_time()
        out = pol.decide(view, jobs, 3600.0)
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        placed += len(out)
        assert isinstance(out, list)
    ms = np.array(times) * 1e3
    return {
        "fill": fill,
        "placed_per_round": placed / rounds,
        "nodes": nodes,
        "pending": pending,
        "rounds": rounds,
        "median_ms": float(np.median(ms)),
        "p99_ms": float(np.percentile(ms, 99)),
        "median_cpu_ms": float(np.median(cpu) * 1e3),
        "p95_cpu_ms": float(np.percentile(cpu, 95) * 1e3),
    }


def replay_latency(
    trace: str | None, nodes: int = 64, jobs: int = 4000, load: float = 1.2, min_pending: int = 200
) -> dict:
    """Wall time of the DQN's rounds in a replay on `nodes` nodes kept overloaded (the trace if
    given, else the lab mix): median and p99 over the rounds with at least `min_pending` jobs
    queued, and how many jobs such a round started."""
    from scheduler.policy import DQNPolicy
    from scheduler.simulator import Simulator

    if trace:
        wl = make_workload("trace", 0, trace=trace, jobs=jobs, nodes=nodes, load=load)
    else:
        wl = make_workload("lab", 0, jobs=jobs, nodes=nodes, load=load)
    pol = DQNPolicy()
    decide = pol.decide
    times: list[float] = []
    queued: list[int] = []
    started: list[int] = []

    def timed(view, pending, now):  # noqa: ANN001, ANN202
        t0 = time.perf_counter()
        out = decide(view, pending, now)
        times.append(time.perf_counter() - t0)
        queued.append(len(pending))
        started.append(len(out))
        return out

    pol.decide = timed  # type: ignore[method-assign]
    Simulator(wl).run(pol)
    ms = np.array(times) * 1e3
    busy = np.array(queued) >= min_pending
    placed = np.array(started)[busy]
    return {
        "workload": wl.name,
        "nodes": nodes,
        "rounds": len(ms),
        "rounds_with_min_pending": int(busy.sum()),
        "min_pending": min_pending,
        "max_pending": int(max(queued, default=0)),
        "median_ms": float(np.median(ms[busy])) if busy.any() else math.nan,
        "p99_ms": float(np.percentile(ms[busy], 99)) if busy.any() else math.nan,
        "started_mean": float(placed.mean()) if busy.any() else math.nan,
        "started_max": int(placed.max()) if busy.any() else 0,
        "median_ms_rounds_that_start_a_job": float(np.median(ms[busy][placed > 0]))
        if (placed > 0).any()
        else math.nan,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace")
    ap.add_argument("--latency-only", action="store_true", help="only time a round")
    ap.add_argument("--workloads", default="deeprm,lab,trace")
    ap.add_argument("--loads", default="0.7,0.9,1.1")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", default="deeprm=500,lab=500,trace=1000")
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None, help="write every row as JSON here")
    ap.add_argument("--no-sidecar", action="store_true")
    a = ap.parse_args()
    if a.latency_only:
        print(json.dumps(replay_latency(a.trace)))
        print(json.dumps(decision_latency()))
        print(json.dumps(decision_latency(fill=30)))
        return
    if not a.trace:
        ap.error("--trace is required")
    tasks = load_trace(a.trace)
    held_start = int(len(tasks) * TRAIN_SHARE)
    held_len = len(tasks) - held_start
    jobs = dict((k, int(v)) for k, v in (p.split("=") for p in a.jobs.split(",")))
    policies = tuple(a.policies.split(","))
    work = [
        (kind, float(load), seed, jobs[kind], a.trace, held_start, held_len, policies)
        for kind in a.workloads.split(",")
        for load in a.loads.split(",")
        for seed in range(a.seeds)
    ]
    t0 = time.perf_counter()
    rows: list[dict] = []
    with ProcessPoolExecutor(a.workers) as pool:
        for r in pool.map(_one, work):
            rows.extend(r)
    elapsed = time.perf_counter() - t0
    summary = summarize(rows)
    latency = decision_latency()
    latency_busy = decision_latency(fill=30)
    latency_replay = replay_latency(a.trace)
    table = render(summary, rows)
    verdict = compare(summary)
    print(table)
    print()
    print("\n".join(verdict))
    print(
        f"\nround latency, 64 nodes x 200 pending: median {latency['median_ms']:.2f} ms, "
        f"p99 {latency['p99_ms']:.2f} ms, CPU {latency['median_cpu_ms']:.2f} ms, "
        f"{latency['placed_per_round']:.0f} placed per round; nearly full cluster: median "
        f"{latency_busy['median_ms']:.2f} ms, CPU {latency_busy['median_cpu_ms']:.2f} ms, "
        f"{latency_busy['placed_per_round']:.0f} placed per round; evaluation took {elapsed:.0f} s"
    )
    print(
        f"rounds of a replay on 64 nodes with >= 200 queued: median {latency_replay['median_ms']:.2f}"
        f" ms, p99 {latency_replay['p99_ms']:.2f} ms"
    )
    command = "python bench/dqn.py " + " ".join(sys.argv[1:])
    if a.out:
        Path(a.out).write_text(
            json.dumps(
                {
                    "command": command,
                    "rows": rows,
                    "summary": summary,
                    "latency": latency,
                    "latency_busy": latency_busy,
                    "latency_replay": latency_replay,
                },
                indent=1,
                default=str,
            )
        )
    if not a.no_sidecar:
        side = ROOT / "scheduler" / "weights" / "dqn.json"
        data = json.loads(side.read_text()) if side.exists() else {}
        data["evaluation"] = {
            "command": command,
            "table": table,
            "verdict": verdict,
            "latency": latency,
            "latency_busy": latency_busy,
            "latency_replay": latency_replay,
        }
        side.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def render(summary: list[dict], rows: list[dict]) -> str:
    """Markdown: one line per (workload, load, policy), mean +- std over seeds."""
    head = "| workload | load | policy | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (3 + len(COLUMNS))]
    for s in summary:
        cells = []
        for key, _, fmt in COLUMNS:
            scale = 1 / 3600 if key in ("avg_jct", "makespan") else 1.0
            m, sd = s[key] * scale, s[key + "_std"] * scale
            cells.append(f"{fmt.format(m)} ± {fmt.format(sd)}" if not math.isnan(m) else "n/a")
        name = f"**{s['policy']}**" if s["policy"] == "dqn" else s["policy"]
        lines.append(f"| {s['workload']} | {s['load']} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(summary: list[dict]) -> list[str]:
    """DQN's average bounded slowdown against the best heuristic, per workload and load."""
    out = []
    groups: dict[tuple, dict[str, float]] = {}
    for s in summary:
        groups.setdefault((s["workload"], s["load"]), {})[s["policy"]] = s["avg_bounded_slowdown"]
    for (wl, load), by in groups.items():
        if "dqn" not in by:
            continue
        others = {p: v for p, v in by.items() if p not in ("dqn", "sjf-limit")}
        if not others:
            continue
        best = min(others, key=others.get)
        delta = (by["dqn"] / others[best] - 1.0) * 100
        word = "better" if delta < 0 else "worse"
        line = (
            f"- {wl} at load {load}: dqn {by['dqn']:.2f} vs best heuristic {best} "
            f"{others[best]:.2f}: {abs(delta):.1f} % {word}"
        )
        if "sjf-limit" in by:
            d2 = (by["dqn"] / by["sjf-limit"] - 1.0) * 100
            line += (
                f"; vs sjf-limit (its teacher) {by['sjf-limit']:.2f}: "
                f"{abs(d2):.1f} % {'better' if d2 < 0 else 'worse'}"
            )
        out.append(line)
    return out


if __name__ == "__main__":
    main()
