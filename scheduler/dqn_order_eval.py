"""Why the shipped DQN stays behind the best heuristic, and how `dqn-bf` compares (issue 17).

    PYTHONPATH=$PWD python3 -m scheduler.dqn_order_eval --section diagnose
    PYTHONPATH=$PWD python3 -m scheduler.dqn_order_eval --section families --weights W.npz

`diagnose` runs the shipped network in variants that each remove one suspected cause, on the
held-out seeds 0-2 at load 0.9 (1,000 jobs, the bench's defaults): as shipped (the teacher's
pick wins at a bonus of 1000), the network alone (bonus 0), without the round's 12 h priority
levels (aging off), with a window of 128 jobs instead of 32, and the best of the heuristics
that win somewhere at load 0.9 (`CONTENDERS`).
`families` is the table of `docs/benchmarks.md` for `dqn-bf` (every family at 0.7, 0.9, 1.1 on
seeds 0-2, and the SWF trace's 10 native windows; the same workloads as `bench`): its average
bounded slowdown over the best heuristic's on each (`--variant dqn-no-aging`: the shipped DQN
with its round's priority levels off instead).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scheduler.bench import make_workload
from scheduler.environment import run_policy, summarize
from scheduler.heuristics import HEURISTICS
from scheduler.metrics import compute_metrics
from scheduler.policy import DQNPolicy
from scheduler.simulator import Simulator
from scheduler.workloads import HPC_NODE

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT.parent / "shared" / "traces" / "alibaba2023_openb_pod_list_default.csv"
SWF = ROOT / "tests" / "data" / "lublin_256.swf"
FAMILIES = ("deeprm", "lab", "lab-long", "hpc", "trace")


def _wl(kind: str, seed: int, load: float | None) -> Any:
    if kind == "swf":
        return make_workload("trace", seed, jobs=1024, load=None, trace=SWF, nodes=1,
                             node_shape=HPC_NODE)  # fmt: skip
    opts: dict[str, Any] = {"trace": TRACE} if kind == "trace" else {}
    return make_workload(kind, seed, load=load, **opts)


def _bsld(pol: Any, wl: Any) -> float:
    return summarize(run_policy(pol, wl)).avg_bsld


CONTENDERS = ("sjf", "sjf-bf", "wfp3", "unicep", "f1")
"""the heuristics that are best somewhere at load 0.9 (`docs/benchmarks.md`, workload families)"""


def diagnose(seeds: int) -> None:
    variants = {
        "shipped (teacher bonus 1000)": lambda: DQNPolicy(),
        "network alone (bonus 0)": lambda: _alone(DQNPolicy()),
        "aging off": lambda: DQNPolicy(aging_s=1e15),
        "window 128": lambda: DQNPolicy(k=128),
    }
    print("| family | " + " | ".join(variants) + " | best heuristic |")
    print("|---|" + "---|" * (len(variants) + 1))
    for kind in ("lab-long", "hpc", "deeprm"):
        wls = [_wl(kind, s, 0.9) for s in range(seeds)]
        best = {n: np.mean([_bsld(HEURISTICS[n](), wl) for wl in wls]) for n in CONTENDERS}
        name = min(best, key=lambda n: best[n])
        cells = [f"{np.mean([_bsld(make(), wl) for wl in wls]):.2f}" for make in variants.values()]
        print(f"| {kind} 0.9 | " + " | ".join(cells) + f" | {best[name]:.2f} ({name}) |",
              flush=True)  # fmt: skip


def _alone(p: DQNPolicy) -> DQNPolicy:
    p.teacher_bonus = 0.0
    return p


DOCUMENTED_BEST: dict[tuple[str, float | None], tuple[float, str]] = {
    ("deeprm", 0.7): (5.65, "sjf-bf"),
    ("deeprm", 0.9): (15.04, "sjf-bf"),
    ("deeprm", 1.1): (43.07, "unicep"),
    ("lab", 0.7): (1.04, "sjf"),
    ("lab", 0.9): (1.13, "sjf-bf"),
    ("lab", 1.1): (1.23, "sjf-bf"),
    ("lab-long", 0.7): (2.04, "f1"),
    ("lab-long", 0.9): (4.61, "unicep"),
    ("lab-long", 1.1): (10.26, "wfp3"),
    ("hpc", 0.7): (277.16, "wfp3"),
    ("hpc", 0.9): (507.57, "sjf-bf"),
    ("hpc", 1.1): (436.63, "unicep"),
    ("trace", 0.7): (2.74, "sjf-bf"),
    ("trace", 0.9): (5.73, "sjf-bf"),
    ("trace", 1.1): (10.68, "wfp3"),
    ("swf", None): (121.58, "wfp3"),
}
"""the best heuristic's mean average bounded slowdown per family and load on the same seeds, as
measured for `docs/benchmarks.md` ("Workload families and heuristics",
`python bench/scheduler.py --section families --seeds 3`); `--rerun-heuristics` measures again"""


def family_windows(kinds: Sequence[str], seeds: int) -> Iterator[tuple[str, float | None, list]]:
    """The families table's rows: (family, load, its workloads), loads 0.7/0.9/1.1 (the SWF
    trace: native arrivals, 10 windows)."""
    for kind in kinds:
        loads: list[float | None] = [None] if kind == "swf" else [0.7, 0.9, 1.1]
        n = 10 if kind == "swf" else seeds
        for load in loads:
            yield kind, load, [_wl(kind, s, load) for s in range(n)]


def measured(make: Callable[[], Any], kind: str, wls: list) -> tuple[float, float, float]:
    """Mean avg and p95 bounded slowdown and utilization (CPU for hpc/SWF, else GPU while jobs
    arrive) of a fresh `make()` policy on each workload."""
    ms = [compute_metrics(Simulator(wl).run(make())) for wl in wls]
    util = "cpu_util" if kind in ("hpc", "swf") else "gpu_util_arrivals"
    return (
        float(np.mean([m["avg_bounded_slowdown"] for m in ms])),
        float(np.mean([m["p95_bounded_slowdown"] for m in ms])),
        float(np.mean([m[util] for m in ms])),
    )


def families(weights: Path, seeds: int, rerun: bool, kinds: list[str], variant: str) -> None:
    from scheduler.dqn_order import OrderBackfillPolicy

    if variant == "orders":
        return orders(seeds, kinds)

    def make() -> Any:
        if variant == "dqn-bf":
            return OrderBackfillPolicy(weights=weights)
        if variant == "dqn-bf-limit":  # with SJF's long-job limit (40 % for jobs over 1 h)
            return OrderBackfillPolicy(weights=weights, long_share=0.4)
        return DQNPolicy(aging_s=1e15)  # the shipped DQN without its round's priority levels

    print(f"| family | load | {variant} avg / p95 / util | best heuristic | ratio |")
    print("|---|---|---|---|---|")
    for kind, load, wls in family_windows(kinds, seeds):
        t0 = time.process_time()
        if rerun:
            res = {name: np.mean([_bsld(cls(), wl) for wl in wls])
                   for name, cls in HEURISTICS.items()}  # fmt: skip
            name = min(res, key=lambda k: res[k])
            best = (float(res[name]), name)
        else:
            best = DOCUMENTED_BEST[(kind, load)]
        avg, p95, u = measured(make, kind, wls)
        print(
            f"| {kind} | {'native' if load is None else load} | {avg:.2f} / {p95:.1f} / "
            f"{u:.0%} | {best[0]:.2f} ({best[1]}) | **{avg / best[0]:.2f}** |",
            flush=True,
        )
        print(f"<!-- {kind} {load}: {time.process_time() - t0:.0f} CPU s -->", flush=True)


def orders(seeds: int, kinds: list[str]) -> None:
    """dqn-bf's teachers: EASY backfilling in each rank order (FIFO, SJF, WFP3, UNICEP, F1)
    without aging (`OrderBackfillPolicy(column=c)`), on the same workloads: the best of them."""
    from scheduler.dqn_order import RANK_ORDERS, OrderBackfillPolicy

    print("| family | load | " + " | ".join(f"{o} (EASY, no aging)" for o in RANK_ORDERS) + " |")
    print("|---|---|" + "---|" * len(RANK_ORDERS))
    for kind in kinds:
        loads: list[float | None] = [None] if kind == "swf" else [0.7, 0.9, 1.1]
        n = 10 if kind == "swf" else seeds
        for load in loads:
            wls = [_wl(kind, s, load) for s in range(n)]
            avg = [
                float(np.mean([_bsld(OrderBackfillPolicy(column=c), wl) for wl in wls]))
                for c in range(len(RANK_ORDERS))
            ]
            cells = [f"**{a:.2f}**" if a == min(avg) else f"{a:.2f}" for a in avg]
            print(f"| {kind} | {'native' if load is None else load} | " + " | ".join(cells) + " |",
                  flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--section", choices=("diagnose", "families"), required=True)
    ap.add_argument("--weights", type=Path, default=ROOT / "scheduler" / "weights" / "dqn_bf.npz")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rerun-heuristics", action="store_true")
    ap.add_argument("--families", default="deeprm,lab,lab-long,hpc,trace,swf")
    ap.add_argument(
        "--variant", choices=("dqn-bf", "dqn-bf-limit", "dqn-no-aging", "orders"), default="dqn-bf"
    )
    args = ap.parse_args()
    if args.section == "diagnose":
        diagnose(args.seeds)
    else:
        kinds = [k for k in args.families.split(",") if k]
        families(args.weights, args.seeds, args.rerun_heuristics, kinds, args.variant)


if __name__ == "__main__":
    main()
