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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scheduler.dqn_order_eval import CONTENDERS, DOCUMENTED_BEST, family_windows, measured
from scheduler.dqn_order_train import FAMILIES, TRACE, validation_set
from scheduler.dqn_regime_core import (
    INPUTS,
    WEIGHTS,
    Regime,
    RegimeNet,
    RegimePolicy,
    RegimeWeightsError,
)
from scheduler.dqn_rollout_core import at_least
from scheduler.dqn_rollout_eval import policy_table
from scheduler.environment import run_policy, summarize
from scheduler.heuristics import HEURISTICS
from scheduler.policy import DQNPolicy


def table(weights: Path, seeds: int, kinds: Sequence[str]) -> None:
    policy_table("dqn-regime", lambda: RegimePolicy(weights), seeds, kinds)


def rule_shares(weights: Path, seeds: int, kinds: Sequence[str]) -> None:
    """On the held-out workloads: at the decisions where the 60 % rule's pick differs from the
    base's, how often the network took each; the same for the dense rule."""
    from scheduler.dqn_regime_core import alt_action, base_chooser, dense_action
    from scheduler.dqn_regime_train import cluster_capacity
    from scheduler.dqn_rollout_core import BASE_WEIGHTS, no_aging
    from scheduler.environment import SchedulingEnv
    from scheduler.policy import load_weights

    shipped, _, _ = load_weights(BASE_WEIGHTS)
    base = base_chooser(shipped)
    rules = (base, alt_action(base), dense_action(base))
    pol = RegimePolicy(weights)
    print("| family | load | decisions | 40 % and 60 % differ | of those, took 60 % / 40 % | "
          "base and dense differ | of those, took dense / base |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for kind, load, wls in family_windows(kinds, seeds):
        c = np.zeros(7)  # decisions; 60 % differs, took it, took the base; the same for dense
        for wl in wls:
            env = SchedulingEnv(wl, config=no_aging())
            cap, gpus = cluster_capacity(wl)
            net, regime = pol.net, Regime()
            assert isinstance(net, RegimeNet)
            obs, _ = env.reset()
            done = False
            while not done:
                act = 0
                if len(obs) > 1:
                    assert env.sim is not None
                    regime.observe(env.sim.pending(), env.sim.now, cap, gpus)
                    net.observe(regime)
                    q = net.scores(obs.x)
                    if not obs.wait_allowed:
                        q[-1] = -np.inf
                    act = int(np.argmax(q))
                    b, a, d = (r(obs) for r in rules)
                    c[0] += 1
                    if a != b:
                        c[1:4] += (1, act == a, act == b)
                    if d != b:
                        c[4:7] += (1, act == d, act == b)
                obs, _, done, _, _ = env.step(act)
        print(f"| {kind} | {'native' if load is None else load} | {c[0]:.0f} | {c[1]:.0f} | "
              f"{c[2] / max(c[1], 1):.0%} / {c[3] / max(c[1], 1):.0%} | {c[4]:.0f} | "
              f"{c[5] / max(c[4], 1):.0%} / {c[6] / max(c[4], 1):.0%} |", flush=True)  # fmt: skip


def limits(shares: Sequence[float], seeds: int, kinds: Sequence[str]) -> None:
    """The base (the shipped DQN following its teacher, aging off) with only its long-job limit
    changed, on the held-out workloads (no training)."""
    import dataclasses
    import functools

    def make(share: float) -> DQNPolicy:
        pol = DQNPolicy(aging_s=1e15)
        pol.config = dataclasses.replace(pol.config, long_share=share)
        return pol

    print("| family | load | " + " | ".join(f"{s:g}" for s in shares) + " | best heuristic |")
    print("|---|---|" + "---|" * (len(shares) + 1))
    for kind, load, wls in family_windows(kinds, seeds):
        cells = [f"{measured(functools.partial(make, s), kind, wls)[0]:.2f}" for s in shares]
        best = DOCUMENTED_BEST[(kind, load)]
        print(f"| {kind} | {'native' if load is None else load} | " + " | ".join(cells)
              + f" | {best[0]:.2f} ({best[1]}) |", flush=True)  # fmt: skip


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
    seed per family and load: 0.7 / 0.9 / 1.1), never the held-out ones; the base's first. The
    score, lower is better, is the mean ratio plus twice every excess over 1.05 (as
    `dqn-select`'s trainer chose its iteration)."""
    refs = validation_refs(jobs, cache)
    wls = validation_set(jobs, TRACE)
    runs: list[tuple[str, list[float]]] = [("base (dqn-self's rule)", refs["base"])]
    for w in weights:
        runs.append((str(w), [summarize(run_policy(RegimePolicy(w), wl)).avg_bsld for wl in wls]))
    for name, got in runs:
        ratio = np.array(got) / np.array(refs["best"])
        fams = " | ".join(
            f"{f} {' / '.join(f'{r:.2f}' for r in ratio[3 * k : 3 * k + 3])}"
            for k, f in enumerate(FAMILIES)
        )
        score = ratio.mean() + 2 * np.maximum(ratio - 1.05, 0).sum()
        print(f"{name}: mean {ratio.mean():.3f}, max {ratio.max():.2f}, score {score:.3f} | "
              f"{fams}", flush=True)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scheduler.dqn_regime eval")
    ap.add_argument("--weights", type=Path, default=WEIGHTS)
    ap.add_argument("--seeds", type=at_least(1), default=3)
    ap.add_argument("--families", default="deeprm,lab,lab-long,hpc,trace,swf")
    ap.add_argument("--validate", default="", help="comma-separated weights: their ratios on "
                    "the validation workloads (seeds 900-902) instead of the held-out table")  # fmt: skip
    ap.add_argument("--val-jobs", type=at_least(10), default=1000)
    ap.add_argument("--cache", type=Path, default=None, help="--validate: the references' cache")
    ap.add_argument("--rules", action="store_true", help="which rule's pick the network took "
                    "where the rules differ, instead of the table")  # fmt: skip
    ap.add_argument("--limits", default="", help="comma-separated long-job limits: the base "
                    "with each instead of the table (no weights needed)")  # fmt: skip
    args = ap.parse_args(argv)
    if args.limits:
        try:
            shares = [float(x) for x in args.limits.split(",") if x]
        except ValueError:
            ap.error(f"--limits {args.limits!r}: numbers between 0 and 1, comma-separated")
        if not shares or not all(0 < x <= 1 for x in shares):
            ap.error(f"--limits {args.limits!r}: numbers between 0 and 1, comma-separated")
        limits(shares, args.seeds, [k for k in args.families.split(",") if k])
        return
    paths = [Path(p) for p in args.validate.split(",") if p] or [args.weights]
    try:  # before any work: a missing or unusable file is one line, exit 2
        for p in paths:
            RegimePolicy(p)
    except RegimeWeightsError as exc:
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    if args.validate:
        validate(paths, args.val_jobs, args.cache)
        return
    if args.rules:
        net = RegimePolicy(args.weights).net
        if isinstance(net, RegimeNet) and net.features != INPUTS:
            # the heuristics' picks (version 2's inputs) are not computed here: refuse rather
            # than measure a network that never sees them
            ap.exit(2, f"{ap.prog}: error: --rules measures version-1 weights ({WEIGHTS.name}); "
                       f"{args.weights} has other inputs\n")  # fmt: skip
        rule_shares(args.weights, args.seeds, [k for k in args.families.split(",") if k])
        return
    table(args.weights, args.seeds, [k for k in args.families.split(",") if k])
