"""Slowdown against cost: the DQN trained at several cost weights beside the heuristics run at
several cost weights (issue 17, item 5). Same workloads (seeds) for every row.

    # the weights (one short run per cost weight, ~40 s each on one core):
    for w in 0 1 10 100; do
      PYTHONPATH=$PWD python3 -m lepton_tui train --workload deeprm --workload lab --steps 4000 \
          --seed 1 --cost-weight $w --jobs 200 --out /tmp/policy_fr/dqn_w$w.npz
    done
    PYTHONPATH=$PWD python3 bench/dqn_frontier.py --weights-dir /tmp/policy_fr --dqn-weights 0,1,10,100

The DQN appears twice per weight: as trained (its sidecar's teacher bonus; 1000 means it follows
its teacher, SJF with the long-job limit) and as the network alone (bonus 0).
Prints one Markdown table per workload: average bounded slowdown, idle cost (the money of
capacity that was up but unallocated, at the bench's prices) and total cost, mean over seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scheduler.bench import make_workload, run_bench, summarize  # noqa: E402
from scheduler.metrics import compute_metrics  # noqa: E402
from scheduler.policy import DQNPolicy  # noqa: E402
from scheduler.simulator import Simulator  # noqa: E402

HEURISTICS = ("sjf", "sjf-bf", "backfill", "tetris", "wfp3")


def frontier(kind: str, load: float, seeds: int, jobs: int, weights_dir: Path,
             dqn_weights: list[str], cost_weights: list[float]) -> list[dict[str, Any]]:  # fmt: skip
    """One row per (policy, cost weight): mean metrics over `seeds`."""
    out = []
    for w in dqn_weights:
        path = weights_dir / f"dqn_w{w}.npz"
        rows = run_bench(kind, ["dqn"], seeds, load=load, jobs=jobs,
                         policy_options={"dqn": {"weights": str(path)}})  # fmt: skip
        s = summarize(rows)[0]
        bonus = DQNPolicy(path).teacher_bonus
        out.append({**s, "policy": f"dqn as trained (bonus {bonus:g})", "trained_cost_weight": w})
        alone = []
        for seed in range(seeds):
            pol = DQNPolicy(path)
            pol.teacher_bonus = 0.0  # the network alone, without its teacher
            m = compute_metrics(Simulator(make_workload(kind, seed, load=load, jobs=jobs)).run(pol))
            alone.append({"workload": kind, "load": load, "policy": "dqn network alone", **m})
        out.append({"trained_cost_weight": w, **summarize(alone)[0]})
    for cw in cost_weights:
        opts = {p: {"cost_weight": cw} for p in HEURISTICS} if cw else None
        rows = run_bench(kind, list(HEURISTICS), seeds, load=load, jobs=jobs, policy_options=opts)
        for s in summarize(rows):
            out.append({"cost_weight": cw, **s})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights-dir", type=Path, required=True)
    ap.add_argument("--dqn-weights", default="0,1,10,100")
    ap.add_argument("--cost-weights", default="0,1,10,100")
    ap.add_argument("--workloads", default="deeprm,lab")
    ap.add_argument("--load", type=float, default=0.9)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=500)
    args = ap.parse_args()
    dqn_w = [w for w in args.dqn_weights.split(",") if w]
    cws = [float(w) for w in args.cost_weights.split(",") if w]
    for kind in args.workloads.split(","):
        rows = frontier(kind, args.load, args.seeds, args.jobs, args.weights_dir, dqn_w, cws)
        print(f"#### {kind}, load {args.load}, {args.jobs} jobs, seeds 0-{args.seeds - 1}\n")
        print("| policy | cost weight | avg bsld | p95 bsld | idle cost | cost | makespan (h) |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            w = (
                f"trained at {r['trained_cost_weight']}"
                if "trained_cost_weight" in r
                else f"{r['cost_weight']:g}"
            )
            print(
                f"| {r['policy']} | {w} | {r['avg_bounded_slowdown']:.2f} | "
                f"{r['p95_bounded_slowdown']:.1f} | {r['idle_cost']:.0f} | {r['cost']:.0f} | "
                f"{r['makespan'] / 3600:.1f} |"
            )
        print(flush=True)


if __name__ == "__main__":
    main()
