"""An experimental DQN policy on fresh held-out seeds: workloads no design choice, training run
or validation ever saw (issue 17, item 3). The families table of `docs/benchmarks.md` uses seeds
0-2, which chose some of `dqn-regime`'s rules; validation uses 900-902, training 20,000 on.

    PYTHONPATH=$PWD python3 bench/dqn_fresh_seeds.py --families deeprm,lab,lab-long \
        --first-seed 3 --seeds 5 > a.jsonl
    PYTHONPATH=$PWD python3 bench/dqn_fresh_seeds.py --families hpc,trace \
        --first-seed 3 --seeds 5 > b.jsonl
    PYTHONPATH=$PWD python3 bench/dqn_fresh_seeds.py --table a.jsonl b.jsonl

One JSON row per family and load (1,000 jobs; loads 0.7, 0.9, 1.1): the policy's, its base's
(`dqn-self`'s rule) and every heuristic's mean average and p95 bounded slowdown and utilization;
`--table` prints them as Markdown, over the best heuristic of each row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scheduler.dqn_order_eval import _wl, measured  # noqa: E402
from scheduler.dqn_regime_core import WEIGHTS, RegimePolicy  # noqa: E402
from scheduler.heuristics import HEURISTICS  # noqa: E402
from scheduler.policy import DQNPolicy  # noqa: E402

FAMILIES = ("deeprm", "lab", "lab-long", "hpc", "trace")


def rows(families: list[str], seeds: range) -> None:
    for kind in families:
        for load in (0.7, 0.9, 1.1):
            t0 = time.process_time()
            wls = [_wl(kind, s, load) for s in seeds]
            heur = {n: measured(HEURISTICS[n], kind, wls) for n in HEURISTICS}
            row = {
                "family": kind,
                "load": load,
                "seeds": [seeds.start, seeds.stop - 1],
                "dqn-regime": measured(lambda: RegimePolicy(WEIGHTS), kind, wls),
                "base": measured(lambda: DQNPolicy(aging_s=1e15), kind, wls),
                "best": min(heur, key=lambda n: heur[n][0]),
                "heur": heur,
                "cpu_s": time.process_time() - t0,
            }
            print(json.dumps(row), flush=True)


def table(paths: list[str]) -> None:
    got = [json.loads(line) for p in paths for line in Path(p).read_text().splitlines() if line]
    got.sort(key=lambda r: (FAMILIES.index(r["family"]), r["load"]))
    print("| family | load | dqn-regime avg / p95 / util | best heuristic avg / p95 / util | "
          "base | / base | base / best | **/ best heuristic** |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in got:
        g, b, base = r["dqn-regime"], r["heur"][r["best"]], r["base"][0]
        print(
            f"| {r['family']} | {r['load']} | {g[0]:.2f} / {g[1]:.1f} / {g[2]:.0%} | "
            f"{b[0]:.2f} / {b[1]:.1f} / {b[2]:.0%} ({r['best']}) | {base:.2f} | "
            f"{g[0] / base:.2f} | {base / b[0]:.2f} | **{g[0] / b[0]:.2f}** |"
        )
    print(f"\n({sum(r['cpu_s'] for r in got):.0f} CPU s in all.)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--first-seed", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--table", nargs="*", help="print the Markdown table of these JSON-row files")
    args = ap.parse_args()
    if args.table:
        return table(args.table)
    kinds = args.families.split(",")
    unknown = sorted(set(kinds) - set(FAMILIES))
    if unknown or args.seeds < 1 or args.first_seed < 0:
        ap.error(f"--families from {', '.join(FAMILIES)}; --seeds >= 1, --first-seed >= 0")
    rows(kinds, range(args.first_seed, args.first_seed + args.seeds))


if __name__ == "__main__":
    main()
