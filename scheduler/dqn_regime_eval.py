"""`dqn-regime` on the held-out workloads of `docs/benchmarks.md` (issue 17, item 3).

    PYTHONPATH=$PWD python3 -m scheduler.dqn_regime eval --weights scheduler/weights/dqn_regime.npz

Every family at loads 0.7, 0.9 and 1.1 on seeds 0-2 (1,000 jobs, the bench's defaults) and the
SWF trace's 10 native windows (`dqn_order_eval`'s workloads): the network deciding alone, its
average bounded slowdown over the best heuristic's and over its base's (`dqn-self`'s rule), with
p95 and utilization, and how often it left the base's pick.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scheduler.dqn_order_eval import CONTENDERS, DOCUMENTED_BEST, family_windows, measured
from scheduler.dqn_order_train import FAMILIES, TRACE, validation_set
from scheduler.dqn_regime_core import WEIGHTS, RegimePolicy, RegimeWeightsError
from scheduler.dqn_rollout_core import at_least
from scheduler.dqn_rollout_eval import BASE_DOCUMENTED
from scheduler.environment import run_policy, summarize
from scheduler.heuristics import HEURISTICS
from scheduler.policy import DQNPolicy


def table(weights: Path, seeds: int, kinds: Sequence[str]) -> None:
    print("| family | load | dqn-regime avg / p95 / util | base (dqn-self's rule) | "
          "best heuristic | / base | **/ best heuristic** |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for kind, load, wls in family_windows(kinds, seeds):
        t0 = time.process_time()
        best = DOCUMENTED_BEST[(kind, load)]
        base = BASE_DOCUMENTED[(kind, load)]
        avg, p95, u = measured(lambda: RegimePolicy(weights), kind, wls)
        print(
            f"| {kind} | {'native' if load is None else load} | {avg:.2f} / {p95:.1f} / "
            f"{u:.0%} | {base:.2f} | {best[0]:.2f} ({best[1]}) | {avg / base:.2f} | "
            f"**{avg / best[0]:.2f}** |",
            flush=True,
        )
        print(f"<!-- {kind} {load}: {time.process_time() - t0:.0f} CPU s -->", flush=True)


def validation_refs(jobs: int, cache: Path | None) -> dict:
    """The base's and the best contender heuristic's average bounded slowdown on each validation
    workload (seeds 900-902, `dqn_order_train.validation_set`), cached in `cache` if given."""
    if cache is not None and cache.exists():
        return dict(json.loads(cache.read_text()))
    wls = validation_set(jobs, TRACE)
    refs = {
        "base": [summarize(run_policy(DQNPolicy(aging_s=1e15), wl)).avg_bsld for wl in wls],
        "best": [
            min(summarize(run_policy(HEURISTICS[n](), wl)).avg_bsld for n in CONTENDERS)
            for wl in wls
        ],  # fmt: skip
    }
    if cache is not None:
        cache.write_text(json.dumps(refs))
    return refs


def validate(weights: Sequence[Path], jobs: int, cache: Path | None) -> None:
    """Each network's ratio to the best contender heuristic on the validation workloads (one
    seed per family and load: 0.7 / 0.9 / 1.1), never the held-out ones."""
    refs = validation_refs(jobs, cache)
    wls = validation_set(jobs, TRACE)
    for w in weights:
        got = [summarize(run_policy(RegimePolicy(w), wl)).avg_bsld for wl in wls]
        ratio = np.array(got) / np.array(refs["best"])
        fams = " | ".join(
            f"{f} {' / '.join(f'{r:.2f}' for r in ratio[3 * k : 3 * k + 3])}"
            for k, f in enumerate(FAMILIES)
        )
        print(f"{w}: mean {ratio.mean():.3f}, max {ratio.max():.2f} | {fams}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scheduler.dqn_regime eval")
    ap.add_argument("--weights", type=Path, default=WEIGHTS)
    ap.add_argument("--seeds", type=at_least(1), default=3)
    ap.add_argument("--families", default="deeprm,lab,lab-long,hpc,trace,swf")
    ap.add_argument("--validate", default="", help="comma-separated weights: their ratios on "
                    "the validation workloads (seeds 900-902) instead of the held-out table")  # fmt: skip
    ap.add_argument("--val-jobs", type=at_least(10), default=1000)
    ap.add_argument("--cache", type=Path, default=None, help="--validate: the references' cache")
    args = ap.parse_args(argv)
    paths = [Path(p) for p in args.validate.split(",") if p] or [args.weights]
    try:  # before any work: a missing or unusable file is one line, exit 2
        for p in paths:
            RegimePolicy(p)
    except RegimeWeightsError as exc:
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    if args.validate:
        validate(paths, args.val_jobs, args.cache)
        return
    table(args.weights, args.seeds, [k for k in args.families.split(",") if k])
