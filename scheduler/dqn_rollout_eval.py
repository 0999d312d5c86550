"""`dqn-self` on the held-out workloads of `docs/benchmarks.md` (issue 17, item 3).

    PYTHONPATH=$PWD python3 -m scheduler.dqn_rollout eval --weights scheduler/weights/dqn_self.npz

Every family at loads 0.7, 0.9 and 1.1 on seeds 0-2 (1,000 jobs, the bench's defaults) and the
SWF trace's 10 native windows (`dqn_order_eval`'s workloads): the network deciding alone, its
average bounded slowdown over the best heuristic's and over its base's (the shipped DQN with its
teacher, aging off), with p95 and utilization.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scheduler.bench import make_workload
from scheduler.dqn_order_eval import DOCUMENTED_BEST, family_windows, measured
from scheduler.dqn_rollout_core import (
    BASE_WEIGHTS,
    WEIGHTS,
    SelfDQNPolicy,
    SelfWeightsError,
    at_least,
    base_action,
    candidates_to_try,
    no_aging,
    rollout_label,
)
from scheduler.environment import SchedulingEnv, run_policy, summarize
from scheduler.heuristics import HEURISTICS
from scheduler.policy import DQNPolicy, load_weights

BASE_DOCUMENTED: dict[tuple[str, float | None], float] = {
    ("deeprm", 0.7): 6.27,
    ("deeprm", 0.9): 13.39,
    ("deeprm", 1.1): 24.74,
    ("lab", 0.7): 1.06,
    ("lab", 0.9): 1.09,
    ("lab", 1.1): 1.13,
    ("lab-long", 0.7): 2.64,
    ("lab-long", 0.9): 4.00,
    ("lab-long", 1.1): 4.43,
    ("hpc", 0.7): 126.19,
    ("hpc", 0.9): 294.06,
    ("hpc", 1.1): 92.28,
    ("trace", 0.7): 1.30,
    ("trace", 0.9): 2.10,
    ("trace", 1.1): 3.69,
    ("swf", None): 57.79,
}
"""the base policy (`DQNPolicy(aging_s=1e15)`, the shipped weights following their teacher) on
the same workloads, from `docs/benchmarks.md` ("DQN: why it loses"); `--rerun-base` measures
again"""


def table(weights: Path, seeds: int, kinds: Sequence[str], rerun_base: bool) -> None:
    policy_table("dqn-self", lambda: SelfDQNPolicy(weights), seeds, kinds, rerun_base)


def policy_table(
    name: str, make: Callable[[], Any], seeds: int, kinds: Sequence[str], rerun_base: bool = False
) -> None:
    """A policy (`make()`, fresh per workload) on the held-out workloads, over its base and the
    best heuristic: one Markdown row per family and load, its CPU seconds in a comment."""
    print(f"| family | load | {name} avg / p95 / util | base (teacher, aging off) | "
          f"best heuristic | {name} / base | **{name} / best heuristic** |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for kind, load, wls in family_windows(kinds, seeds):
        t0 = time.process_time()
        best = DOCUMENTED_BEST[(kind, load)]
        avg, p95, u = measured(make, kind, wls)
        if rerun_base:
            base = measured(lambda: DQNPolicy(aging_s=1e15), kind, wls)[0]
        else:
            base = BASE_DOCUMENTED[(kind, load)]
        print(
            f"| {kind} | {'native' if load is None else load} | {avg:.2f} / {p95:.1f} / "
            f"{u:.0%} | {base:.2f} | {best[0]:.2f} ({best[1]}) | {avg / base:.2f} | "
            f"**{avg / best[0]:.2f}** |",
            flush=True,
        )
        print(f"<!-- {kind} {load}: {time.process_time() - t0:.0f} CPU s -->", flush=True)


def lookahead_run(wl: object, every: int, top: int) -> float:
    """The rollout policy itself (what the labels would do if the network learned them exactly):
    the base policy, but every `every`-th step the best of the base's pick, the shipped
    network's `top` picks and waiting by rollouts of the base to the end (the simulator's true
    runtimes and future arrivals: a clairvoyant bound, not a policy one could run)."""
    shipped, _, _ = load_weights(BASE_WEIGHTS)
    base = base_action(shipped)
    env = SchedulingEnv(wl, config=no_aging())  # type: ignore[arg-type]
    obs, _ = env.reset()
    done, step = False, 0
    while not done:
        a = base(obs)
        if len(obs) > 1 and step % every == 0:
            tried = candidates_to_try(obs, a, shipped.scores(obs.x), top)
            if len(tried) > 1:
                a, _ = rollout_label(env, tried, base)
        obs, _, done, _, _ = env.step(a)
        step += 1
    return summarize(env.result()).avg_bsld


def lookahead(rows: Sequence[str], jobs: int, seeds: int, every: int, top: int) -> None:
    """The base, the rollout policy and the best heuristic on smaller held-out workloads."""
    print(f"| family | load | base (teacher, aging off) | rollout policy, every {every} steps | "
          "best heuristic on these workloads |")  # fmt: skip
    print("|---|---|---|---|---|")
    for row in rows:
        kind, load = row.split("@")
        wls = [make_workload(kind, s, jobs=jobs, load=float(load)) for s in range(seeds)]
        t0 = time.process_time()
        base = np.mean([summarize(run_policy(DQNPolicy(aging_s=1e15), wl)).avg_bsld
                        for wl in wls])  # fmt: skip
        roll = np.mean([lookahead_run(wl, every, top) for wl in wls])
        heur = {n: np.mean([summarize(run_policy(c(), wl)).avg_bsld for wl in wls])
                for n, c in HEURISTICS.items()}  # fmt: skip
        name = min(heur, key=lambda n: heur[n])
        print(f"| {kind} | {load} | {base:.2f} | {roll:.2f} | {heur[name]:.2f} ({name}) |",
              flush=True)  # fmt: skip
        print(f"<!-- {row}: {time.process_time() - t0:.0f} CPU s -->", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scheduler.dqn_rollout eval")
    ap.add_argument("--weights", type=Path, default=WEIGHTS)
    ap.add_argument("--seeds", type=at_least(1), default=3)
    ap.add_argument("--families", default="deeprm,lab,lab-long,hpc,trace,swf")
    ap.add_argument("--rerun-base", action="store_true")
    ap.add_argument("--lookahead", default="", help="rows like lab-long@0.7,deeprm@0.7: the "
                    "rollout policy itself on smaller workloads instead of the table")  # fmt: skip
    ap.add_argument("--jobs", type=at_least(1), default=300, help="jobs per workload (--lookahead)")
    ap.add_argument(
        "--every", type=at_least(1), default=10, help="--lookahead: look every this many steps"
    )
    ap.add_argument("--top", type=at_least(1), default=3)
    args = ap.parse_args(argv)
    if not args.lookahead:
        try:  # before any work: a missing or unusable file is one line, exit 2
            SelfDQNPolicy(args.weights)
        except SelfWeightsError as exc:
            ap.exit(2, f"{ap.prog}: error: {exc}\n")
    if args.lookahead:
        rows = [r for r in args.lookahead.split(",") if r]
        lookahead(rows, args.jobs, args.seeds, args.every, args.top)
        return
    kinds = [k for k in args.families.split(",") if k]
    table(args.weights, args.seeds, kinds, args.rerun_base)
