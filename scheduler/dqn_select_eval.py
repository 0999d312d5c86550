"""`dqn-select` on the held-out workloads of `docs/benchmarks.md` (issue 17, item 3).

    PYTHONPATH=$PWD python3 -m scheduler.dqn_select eval --weights scheduler/weights/dqn_select.npz
    PYTHONPATH=$PWD python3 -m scheduler.dqn_select eval --jobs 300 --families lab-long,deeprm

Without `--jobs`: every family at loads 0.7, 0.9 and 1.1 on seeds 0-2 (1,000 jobs, the bench's
defaults) and the SWF trace's 10 native windows (`dqn_order_eval`'s workloads), the network
alone over the documented best heuristic, with p95, utilization and how often each rule's round
was taken. With `--jobs N`: N-job versions of the same seeds (no SWF), every rule measured there.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scheduler.bench import make_workload
from scheduler.dqn_order_eval import DOCUMENTED_BEST, TRACE, family_windows
from scheduler.dqn_rollout_core import at_least
from scheduler.dqn_rollout_eval import BASE_DOCUMENTED
from scheduler.dqn_select_core import RULES, WEIGHTS, SelectPolicy, SelectWeightsError, make_rule
from scheduler.metrics import compute_metrics
from scheduler.simulator import Simulator

FAMILY_NAMES = ("deeprm", "lab", "lab-long", "hpc", "trace", "swf")


def run_select(weights: Path, kind: str, wls: list) -> tuple[float, float, float, np.ndarray]:
    """Mean avg and p95 bounded slowdown, utilization, and the share of decisions that took
    each rule's round (last: waiting) of `dqn-select` over `wls`."""
    avg, p95, util, picks, n = [], [], [], np.zeros(len(RULES) + 1), 0
    key = "cpu_util" if kind in ("hpc", "swf") else "gpu_util_arrivals"
    for wl in wls:
        pol = SelectPolicy(weights)
        m = compute_metrics(Simulator(wl).run(pol))
        avg.append(m["avg_bounded_slowdown"])
        p95.append(m["p95_bounded_slowdown"])
        util.append(m[key])
        picks += pol.picks
        n += pol.decisions
    return float(np.mean(avg)), float(np.mean(p95)), float(np.mean(util)), picks / max(n, 1)


def _shares(picks: np.ndarray) -> str:
    names = [*RULES, "wait"]
    top = np.argsort(-picks, kind="stable")[:4]
    return ", ".join(f"{names[i]} {picks[i]:.0%}" for i in top if picks[i] > 0)


def held_out(weights: Path, seeds: int, kinds: Sequence[str]) -> None:
    print("| family | load | dqn-select avg / p95 / util | best heuristic | base (teacher, aging "
          "off) | **dqn-select / best heuristic** | rounds taken from (share of decisions) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for kind, load, wls in family_windows(kinds, seeds):
        t0 = time.process_time()
        best = DOCUMENTED_BEST[(kind, load)]
        avg, p95, u, picks = run_select(weights, kind, wls)
        print(
            f"| {kind} | {'native' if load is None else load} | {avg:.2f} / {p95:.1f} / {u:.0%} "
            f"| {best[0]:.2f} ({best[1]}) | {BASE_DOCUMENTED[(kind, load)]:.2f} | "
            f"**{avg / best[0]:.2f}** | {_shares(picks)} |",
            flush=True,
        )
        print(f"<!-- {kind} {load}: {time.process_time() - t0:.0f} CPU s -->", flush=True)


def small(weights: Path, seeds: int, kinds: Sequence[str], jobs: int) -> None:
    """N-job versions of the held-out seeds: `dqn-select`, the base and the best heuristic."""
    print("| family | load | dqn-select | base | best heuristic | ratio | rounds taken from |")
    print("|---|---|---|---|---|---|---|")
    for kind in kinds:
        if kind == "swf":
            continue
        for load in (0.7, 0.9, 1.1):
            t0 = time.process_time()
            opts: dict[str, Any] = {"trace": TRACE} if kind == "trace" else {}
            wls = [make_workload(kind, s, jobs=jobs, load=load, **opts) for s in range(seeds)]
            avg, _, _, picks = run_select(weights, kind, wls)
            rules = {
                r: float(np.mean([compute_metrics(Simulator(wl).run(make_rule(r)))[
                    "avg_bounded_slowdown"] for wl in wls]))
                for r in RULES
            }  # fmt: skip
            name = min((r for r in RULES if r != "base"), key=lambda r: rules[r])
            print(f"| {kind} | {load} | {avg:.2f} | {rules['base']:.2f} | {rules[name]:.2f} "
                  f"({name}) | **{avg / rules[name]:.2f}** | {_shares(picks)} |", flush=True)  # fmt: skip
            print(f"<!-- {kind} {load}: {time.process_time() - t0:.0f} CPU s -->", flush=True)


def mixing(seeds: int, kinds: Sequence[str], rule: str, everies: Sequence[int]) -> None:
    """The base alone, and the base with every N-th decision where it and `rule` disagree taken
    from `rule` instead: what a few deviations of a rule picker cost."""
    b, w = RULES.index("base"), RULES.index(rule)
    print("| family | load | base | " + " | ".join(
        f"1 in {n} disagreements from {rule}" for n in everies) + " |")  # fmt: skip
    print("|---|---|---|" + "---|" * len(everies))
    for kind, load, wls in family_windows(kinds, seeds):
        cells = []
        for every in (0, *everies):
            vals = []
            for wl in wls:
                n = [0]

                def choose(c: Any, every: int = every, n: list = n) -> int:
                    pick, other = c.of_rule(b), c.of_rule(w)
                    if every and pick != other:
                        n[0] += 1
                        if n[0] % every == 0:
                            return int(other)
                    return int(pick)

                pol = SelectPolicy.with_chooser(choose)
                vals.append(compute_metrics(Simulator(wl).run(pol))["avg_bounded_slowdown"])
            cells.append(f"{np.mean(vals):.2f}")
        print(f"| {kind} | {'native' if load is None else load} | " + " | ".join(cells) + " |",
              flush=True)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scheduler.dqn_select eval")
    ap.add_argument("--weights", type=Path, default=WEIGHTS)
    ap.add_argument("--seeds", type=at_least(1), default=3)
    ap.add_argument("--families", default=",".join(FAMILY_NAMES))
    ap.add_argument("--jobs", type=at_least(0), default=0,
                    help="jobs per workload for smaller versions (0: the held-out table)")  # fmt: skip
    ap.add_argument("--mix", default="", help="a rule (e.g. wfp3): the base with 1 in 20 and "
                    "1 in 10 of its disagreements with that rule taken from it, instead of the "
                    "table")  # fmt: skip
    args = ap.parse_args(argv)
    if args.mix and (args.mix not in RULES or args.mix == "base"):
        ap.exit(2, f"{ap.prog}: error: --mix takes one of {', '.join(RULES[1:])}\n")
    kinds = [k for k in args.families.split(",") if k]
    unknown = [k for k in kinds if k not in FAMILY_NAMES]
    if unknown or not kinds:
        ap.exit(2, f"{ap.prog}: error: --families takes {', '.join(FAMILY_NAMES)} "
                f"(got {args.families!r})\n")  # fmt: skip
    if args.mix:
        mixing(args.seeds, kinds, args.mix, (20, 10))
        return
    try:  # before any work: a missing or unusable file is one line, exit 2
        SelectPolicy(args.weights)
    except SelectWeightsError as exc:
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    if args.jobs:
        small(args.weights, args.seeds, kinds, args.jobs)
    else:
        held_out(args.weights, args.seeds, kinds)
