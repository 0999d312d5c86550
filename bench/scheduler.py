"""Scheduler core benchmark: prints the Markdown tables of docs/benchmarks.md ("Scheduler core").

    python bench/scheduler.py [--section compare|latency|replay|ilp|aging|long|excess|lab|families|all] [--seeds 5] [--trace CSV]

* compare: FIFO, SJF, Tetris and EASY backfilling on deeprm, lab and the Alibaba trace at loads
  0.7, 0.9 and 1.1, mean and standard deviation over seeds;
* latency: one decision round on 64 nodes with 200 pending jobs (states taken from an overloaded
  lab replay), per policy, cold (a fresh policy each round, as when the dispatcher restarts);
  the ILP with its time limit and optimality gap;
* replay: a 10,000-job lab replay on 16 nodes per heuristic, CPU seconds;
* ilp: the ILP as a policy beside backfilling on lab and trace at load 0.9;
* aging: SJF by hours per priority level on validation workloads (how its 12 h was chosen).
* long: SJF with a long-job limit (`long_share`, `long_after_s`) on the same validation
  workloads (how the DQN teacher's 40 % of the CPUs and GPUs for jobs over 1 h was chosen).
* excess: where SJF's excess bounded slowdown (bsld - 1) comes from on the trace, by job kind,
  with and without that limit (why the limit was tried).
* lab: on the lab mix at loads 0.9 and 1.1, SJF against the DQN aim (10 % below it), and the
  best long-job limit over a grid, with the workload's estimates and with true runtimes.
* families: every heuristic and the DQN on every workload family (deeprm, lab, lab-long, hpc,
  the Alibaba trace) at loads 0.7, 0.9 and 1.1, and on an SWF trace with native arrivals in
  successive windows (`--swf`, default tests/data/lublin_256.swf, 10 windows of 1,024 jobs).

Times are CPU seconds of this process (`time.process_time`), which a busy machine disturbs less
than wall-clock time; the decision times of `compare` are wall-clock (from the simulator).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.bench import run_bench, summarize  # noqa: E402
from scheduler.ilp import plan_round, send_solver_output_to_stderr  # noqa: E402
from scheduler.registry import POLICY_NAMES, make_policy  # noqa: E402
from scheduler.simulator import Simulator  # noqa: E402
from scheduler.workloads import HPC_NODE, lab_mix  # noqa: E402

HEURISTICS = ["fifo", "sjf", "tetris", "backfill"]
TRACE = ROOT.parent / "shared" / "traces" / "alibaba2023_openb_pod_list_default.csv"


def fmt(mean: float, std: float, spec: str) -> str:
    return f"{mean:{spec}} ± {std:{spec}}"


def compare(seeds: int, trace: Path) -> None:
    print(f"### Policies on three workloads ({seeds} seeds, mean ± std)\n")
    print(
        "| workload | load | policy | avg bounded slowdown | p95 bounded slowdown | avg JCT (h) "
        "| makespan / bound | GPU util (arrivals) | decision ms p50 / p99 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in ("deeprm", "lab", "trace"):
        opts: dict[str, Any] = {"trace": trace} if kind == "trace" else {}
        for load in (0.7, 0.9, 1.1):
            t0 = time.process_time()
            rows = run_bench(kind, HEURISTICS, seeds, load=load, **opts)
            for s in summarize(rows):
                ratio = [1 + r["gap_makespan"] for r in rows if r["policy"] == s["policy"]]
                print(
                    f"| {kind} | {load} | {s['policy']} "
                    f"| {fmt(s['avg_bounded_slowdown'], s['avg_bounded_slowdown_std'], '.2f')} "
                    f"| {fmt(s['p95_bounded_slowdown'], s['p95_bounded_slowdown_std'], '.1f')} "
                    f"| {fmt(s['avg_jct'] / 3600, s['avg_jct_std'] / 3600, '.2f')} "
                    f"| {fmt(float(np.mean(ratio)), float(np.std(ratio)), '.2f')} "
                    f"| {fmt(s['gpu_util_arrivals'], s['gpu_util_arrivals_std'], '.2f')} "
                    f"| {s['decision_ms_p50']:.2f} / {s['decision_ms_p99']:.2f} |"
                )
            print(
                f"<!-- {kind} {load}: {len(rows)} runs in {time.process_time() - t0:.1f} CPU s -->"
            )
    print()


def latency_states(driver: str, load: float, n_states: int = 30, pending: int = 200) -> list:
    """States of 64 lab nodes with at least 200 jobs waiting, taken before the driver policy
    decides. Driven by backfilling at load 2.0 the cluster is full ("busy": a typical round);
    driven by FIFO at load 1.3 its blocked head leaves room for many jobs ("room": a hard round)."""
    wl = lab_mix(6000, load=load, seed=11, nodes=64)
    sim = Simulator(wl)
    pol = make_policy(driver)
    states: list[tuple[Any, Any, float]] = []
    k = 0
    while sim.advance() and len(states) < n_states:
        if sim.pending_count >= pending:
            k += 1
            if k % 40 == 0:
                jobs = list(sim.pending())[:pending]
                states.append((sim.view(), jobs, sim.now))
        if sim.worth_deciding():
            sim.apply(pol.decide(sim.view(), sim.pending(), sim.now))
    return states


def latency() -> None:
    sets = {"busy": latency_states("backfill", 2.0), "room": latency_states("fifo", 1.3)}
    print("### One decision round: 64 nodes, 200 pending jobs\n")
    for label, states in sets.items():
        free = np.mean(
            [sum(len(n.free_gpu_ids) for n in v.nodes) / sum(n.capacity.gpus for n in v.nodes)
             for v, _, _ in states]
        )  # fmt: skip
        print(f"- {label}: {len(states)} states, {free:.0%} of GPUs free on average")
    print()
    print("| states | policy | ms p50 | ms p99 | ms max | jobs placed per round (mean) |")
    print("|---|---|---|---|---|---|")
    for label, states in sets.items():
        for name in [p for p in POLICY_NAMES if p not in ("ilp", "dqn")]:
            times, placed = [], []
            for v, jobs, now in states:
                pol = make_policy(name)  # cold: no cached rows from earlier rounds
                t0 = time.process_time()
                out = pol.decide(v, jobs, now)
                times.append((time.process_time() - t0) * 1e3)
                placed.append(len(out))
            print(
                f"| {label} | {name} | {np.percentile(times, 50):.2f} "
                f"| {np.percentile(times, 99):.2f} | {max(times):.2f} | {np.mean(placed):.1f} |"
            )
    print()
    print(
        "| states | ILP round (1 s budget) | s p50 | s p99 | s max | variables (mean) "
        "| optimal | gap p50 / max | jobs placed (mean) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, states in sets.items():
        times, gaps, nvars, placed, optimal = [], [], [], [], 0
        for v, jobs, now in states:
            t0 = time.process_time()
            res = plan_round(v, jobs, now, time_limit_s=1.0)
            times.append(time.process_time() - t0)
            gaps.append(res.gap)
            nvars.append(res.variables)
            placed.append(len(res.placements))
            optimal += res.status == "optimal"
        print(
            f"| {label} | ilp | {np.percentile(times, 50):.3f} | {np.percentile(times, 99):.3f} "
            f"| {max(times):.3f} | {np.mean(nvars):.0f} | {optimal}/{len(states)} "
            f"| {np.median(gaps):.1%} / {max(gaps):.1%} | {np.mean(placed):.1f} |"
        )
    print()


def replay() -> None:
    print("### 10,000-job lab replay on 16 nodes (CPU seconds, one core)\n")
    print("| load | policy | CPU s | rounds | finished |")
    print("|---|---|---|---|---|")
    for load in (0.9, 1.1):
        wl = lab_mix(10000, load=load, seed=0, nodes=16)
        for name in HEURISTICS:
            t0 = time.process_time()
            res = Simulator(wl).run(make_policy(name))
            cpu = time.process_time() - t0
            print(f"| {load} | {name} | {cpu:.2f} | {len(res.decision_s)} | {len(res.finished)} |")
    print()


def ilp_policy(seeds: int, trace: Path) -> None:
    print(f"### The ILP as a policy (load 0.9, {seeds} seeds, mean ± std)\n")
    print(
        "| workload | policy | avg bounded slowdown | avg JCT (h) | GPU util (arrivals) "
        "| decision ms p50 / p99 | largest gap | CPU s per run |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("lab", "trace"):
        opts: dict[str, Any] = {"trace": trace} if kind == "trace" else {}
        for name in ("backfill", "ilp"):
            t0 = time.process_time()
            rows = run_bench(kind, [name], seeds, load=0.9, **opts)
            cpu = (time.process_time() - t0) / len(rows)
            s = summarize(rows)[0]
            gap = max((r.get("ilp_gap_max", 0.0) for r in rows), default=0.0)
            print(
                f"| {kind} | {name} "
                f"| {fmt(s['avg_bounded_slowdown'], s['avg_bounded_slowdown_std'], '.2f')} "
                f"| {fmt(s['avg_jct'] / 3600, s['avg_jct_std'] / 3600, '.2f')} "
                f"| {fmt(s['gpu_util_arrivals'], s['gpu_util_arrivals_std'], '.2f')} "
                f"| {s['decision_ms_p50']:.2f} / {s['decision_ms_p99']:.2f} "
                f"| {gap:.2%} | {cpu:.1f} |"
            )
    print()


def aging(trace: Path) -> None:
    """SJF's average / p95 bounded slowdown by aging (hours per priority level) on validation
    workloads (seeds 900-905; trace windows from the trace's first 60 %): how SJF_AGING_S was
    chosen."""
    from scheduler.bench import make_workload
    from scheduler.heuristics import SJFPolicy
    from scheduler.metrics import compute_metrics
    from scheduler.workloads import load_trace

    train_tasks = int(len(load_trace(trace)) * 0.6)
    ages = {"1 h": 3600.0, "3 h": 3 * 3600.0, "6 h": 6 * 3600.0, "12 h": 12 * 3600.0, "none": None}
    print("### SJF by aging (validation seeds 900-905, avg / p95 bounded slowdown)\n")
    print("| workload | load | " + " | ".join(ages) + " |")
    print("|---|---|" + "---|" * len(ages))
    for kind in ("deeprm", "lab", "trace"):
        for load in (0.7, 0.9, 1.1):
            res: dict[str, list[tuple[float, float]]] = {k: [] for k in ages}
            for seed in range(900, 906):
                opts: dict[str, Any] = {"jobs": 1000 if kind == "trace" else 500, "load": load}
                if kind == "trace":
                    opts.update(trace=trace, start=(seed * 389) % max(1, train_tasks - 1000))
                wl = make_workload(kind, seed, **opts)
                for k, a in ages.items():
                    m = compute_metrics(Simulator(wl).run(SJFPolicy(aging_s=a)))
                    res[k].append((m["avg_bounded_slowdown"], m["p95_bounded_slowdown"]))
            cells = [
                f"{np.mean([x[0] for x in v]):.2f} / {np.mean([x[1] for x in v]):.1f}"
                for v in res.values()
            ]
            print(f"| {kind} | {load} | " + " | ".join(cells) + " |", flush=True)


def long_limit(trace: Path) -> None:
    """SJF's average bounded slowdown with a long-job limit, relative to plain SJF, on the aging
    section's validation workloads: how the DQN teacher's limit was chosen."""
    from scheduler.bench import make_workload
    from scheduler.heuristics import SJFPolicy
    from scheduler.metrics import compute_metrics
    from scheduler.workloads import load_trace

    train_tasks = int(len(load_trace(trace)) * 0.6)
    limits = [(after, share) for after in (3600.0, 7200.0) for share in (0.3, 0.4, 0.5)]
    names = [f"{a / 3600:.0f} h, {sh:.0%}" for a, sh in limits]
    print("### SJF with a long-job limit (validation seeds 900-905; avg bounded slowdown of plain")
    print("SJF, then the change with jobs over 1 or 2 h holding at most 30 / 40 / 50 %)\n")
    print("| workload | load | sjf | " + " | ".join(names) + " |")
    print("|---|---|---|" + "---|" * len(limits))
    for kind in ("deeprm", "lab", "trace"):
        for load in (0.7, 0.9, 1.1):
            base: list[float] = []
            res: list[list[float]] = [[] for _ in limits]
            for seed in range(900, 906):
                opts: dict[str, Any] = {"jobs": 1000 if kind == "trace" else 500, "load": load}
                if kind == "trace":
                    opts.update(trace=trace, start=(seed * 389) % max(1, train_tasks - 1000))
                wl = make_workload(kind, seed, **opts)
                base.append(compute_metrics(Simulator(wl).run(SJFPolicy()))["avg_bounded_slowdown"])
                for k, (after, share) in enumerate(limits):
                    pol = SJFPolicy(long_share=share, long_after_s=after)
                    res[k].append(compute_metrics(Simulator(wl).run(pol))["avg_bounded_slowdown"])
            b = float(np.mean(base))
            cells = [f"{(float(np.mean(v)) / b - 1) * 100:+.1f} %" for v in res]
            print(f"| {kind} | {load} | {b:.2f} | " + " | ".join(cells) + " |", flush=True)


def excess(trace: Path) -> None:
    """SJF's excess bounded slowdown per job on the aging section's trace windows, split by job
    kind (GPUs asked, true runtime), with and without the long-job limit."""
    from scheduler.bench import make_workload
    from scheduler.heuristics import SJFPolicy
    from scheduler.metrics import TAU_S
    from scheduler.workloads import load_trace

    train_tasks = int(len(load_trace(trace)) * 0.6)
    kinds = ["CPU-only < 10 min", "CPU-only >= 10 min", "GPU < 10 min", "GPU >= 10 min"]
    print("### Where SJF's excess bounded slowdown comes from (trace, validation seeds 900-905)\n")
    print("| load | policy | excess per job | " + " | ".join(kinds) + " |")
    print("|---|---|---|" + "---|" * len(kinds))
    for load in (0.9, 1.1):
        for name, share in (("sjf", None), ("sjf-limit", 0.4)):
            split = dict.fromkeys(kinds, 0.0)
            total, n = 0.0, 0
            for seed in range(900, 906):
                start = (seed * 389) % max(1, train_tasks - 1000)
                wl = make_workload("trace", seed, jobs=1000, load=load, trace=trace, start=start)
                res = Simulator(wl).run(SJFPolicy(long_share=share))
                for j in res.finished:
                    ex = max(1.0, (j.end_s - j.submit_s) / max(j.runtime_s, TAU_S)) - 1.0
                    gpu = j.request.gpus > 0 or j.request.gpu_mem_mb > 0
                    key = ("GPU" if gpu else "CPU-only") + (
                        " < 10 min" if j.runtime_s < 600 else " >= 10 min"
                    )
                    split[key] += ex
                    total += ex
                    n += 1
            cells = [f"{v / n:.2f}" for v in split.values()]
            print(f"| {load} | {name} | {total / n:.2f} | " + " | ".join(cells) + " |", flush=True)


def lab_headroom() -> None:
    """How far SJF-based rules get on the lab mix against the DQN aim (10 % below SJF's average
    bounded slowdown at loads 0.9 and 1.1): the long-job limit over a grid, with the workload's
    noisy estimates and with the true runtimes (a clairvoyant user), on validation seeds 900-905."""
    from scheduler.bench import make_workload
    from scheduler.heuristics import SJFPolicy
    from scheduler.metrics import compute_metrics

    limits = [(a, sh) for a in (1800.0, 3600.0, 7200.0) for sh in (0.2, 0.3, 0.4, 0.5, 0.6)]
    print(
        "### Lab mix: what SJF-based rules reach (validation seeds 900-905, avg bounded slowdown)\n"
    )
    print(
        "| load | estimates | sjf | aim (sjf - 10 %) | best limit | its slowdown | sjf-limit (1 h, 40 %) |"
    )
    print("|---|---|---|---|---|---|---|")
    for load in (0.9, 1.1):
        for label, sigma in (("noisy (sigma 0.5)", None), ("true runtimes", 0.0)):
            wls = [
                make_workload("lab", s, jobs=500, load=load, estimate_sigma=sigma)
                for s in range(900, 906)
            ]

            def avg(**kw: Any) -> float:
                runs = [Simulator(wl).run(SJFPolicy(**kw)) for wl in wls]  # noqa: B023
                return float(np.mean([compute_metrics(r)["avg_bounded_slowdown"] for r in runs]))

            base = avg()
            scores = {lim: avg(long_share=lim[1], long_after_s=lim[0]) for lim in limits}
            best = min(scores, key=lambda k: scores[k])
            name = f"{best[0] / 3600:g} h, {best[1]:.0%}"
            print(
                f"| {load} | {label} | {base:.3f} | {0.9 * base:.3f} | {name} | "
                f"{scores[best]:.3f} | {scores[(3600.0, 0.4)]:.3f} |",
                flush=True,
            )


FAMILY_POLICIES = [p for p in POLICY_NAMES if p != "ilp"]
SWF = ROOT / "tests" / "data" / "lublin_256.swf"


def _family_table(title: str, rows: list[dict[str, Any]], loads: list[Any], unit: str) -> None:
    """One Markdown table: a row per policy, per load the average bounded slowdown (mean ± std
    over seeds), its p95 and the utilization; the best heuristic in bold, dqn's ratio to it."""
    summary = {(s["load"], s["policy"]): s for s in summarize(rows)}
    util = "gpu_util_arrivals" if unit == "GPU" else "cpu_util"
    print(f"#### {title}\n")
    head = " | ".join(f"{ld} avg / p95 / {unit} util" for ld in loads)
    print(f"| policy | {head} |")
    print("|---|" + "---|" * len(loads))
    best = {
        ld: min(
            (p for p in FAMILY_POLICIES if p != "dqn" and (ld, p) in summary),
            key=lambda p: summary[(ld, p)]["avg_bounded_slowdown"],  # noqa: B023
        )
        for ld in loads
    }
    for p in FAMILY_POLICIES:
        cells = []
        for ld in loads:
            s = summary[(ld, p)]
            avg = fmt(s["avg_bounded_slowdown"], s["avg_bounded_slowdown_std"], ".2f")
            if p == best[ld]:
                avg = f"**{avg}**"
            cells.append(f"{avg} / {s['p95_bounded_slowdown']:.1f} / {s[util]:.0%}")
        print(f"| {p} | " + " | ".join(cells) + " |")
    ratios = []
    for ld in loads:
        b = summary[(ld, best[ld])]["avg_bounded_slowdown"]
        ratios.append(f"{summary[(ld, 'dqn')]['avg_bounded_slowdown'] / b:.2f} ({best[ld]})")
    print("| dqn / best heuristic | " + " | ".join(ratios) + " |\n", flush=True)


def families(seeds: int, trace: Path, swf: Path) -> None:
    """Every heuristic and the DQN on every family (see the module docstring)."""
    print(f"### Every policy on every workload family ({seeds} seeds, mean ± std)\n")
    loads = [0.7, 0.9, 1.1]
    for kind in ("deeprm", "lab", "lab-long", "hpc", "trace"):
        opts: dict[str, Any] = {"trace": trace} if kind == "trace" else {}
        t0 = time.process_time()
        rows = []
        for load in loads:
            rows += run_bench(kind, FAMILY_POLICIES, seeds, load=load, **opts)
        _family_table(kind, rows, loads, "CPU" if kind == "hpc" else "GPU")
        print(f"<!-- {kind}: {len(rows)} runs in {time.process_time() - t0:.0f} CPU s -->\n")
    t0 = time.process_time()
    rows = run_bench(
        "trace", FAMILY_POLICIES, 10, load=None, jobs=1024, trace=swf, nodes=1,
        node_shape=HPC_NODE,
    )  # fmt: skip
    _family_table(
        f"{swf.name}: native arrivals, 10 successive windows of 1,024 jobs, one 256-CPU node, "
        "requested times as estimates",
        rows,
        ["native"],
        "CPU",
    )
    print(f"<!-- {swf.name}: {len(rows)} runs in {time.process_time() - t0:.0f} CPU s -->\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--section",
        default="all",
        choices=[
            "all", "compare", "latency", "replay", "ilp", "aging", "long", "excess", "lab",
            "families",
        ],
    )  # fmt: skip
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--swf", type=Path, default=SWF)
    args = ap.parse_args()
    if args.section in ("all", "latency"):
        latency()
    if args.section in ("all", "replay"):
        replay()
    if args.section in ("all", "compare"):
        compare(args.seeds, args.trace)
    if args.section in ("all", "aging"):
        aging(args.trace)
    if args.section in ("all", "long"):
        long_limit(args.trace)
    if args.section in ("all", "excess"):
        excess(args.trace)
    if args.section in ("all", "lab"):
        lab_headroom()
    if args.section in ("all", "ilp"):
        send_solver_output_to_stderr()
        ilp_policy(args.seeds, args.trace)
    if args.section in ("all", "families"):
        families(args.seeds, args.trace, args.swf)


if __name__ == "__main__":
    main()
