"""An experimental DQN policy on fresh held-out seeds: workloads no design choice, training run
or validation ever saw (issue 17, item 3). The families table of `docs/benchmarks.md` uses seeds
0-2, which chose some of `dqn-regime`'s rules; this script's validation uses 900-904 (five seeds
a row, every heuristic), while `python -m scheduler.dqn_regime eval --validate` keeps the first
version's 900-902 (one seed a row, five contender heuristics); training uses seeds 20,000 on.
The trace's windows are `_wl`'s (about 2,000 jobs, overlapping the training tasks) unless
`--trace-held-out` (1,000 tasks each, from task 4,352 on, which no training window holds).

    PYTHONPATH=$PWD python3 bench/dqn_fresh_seeds.py --families deeprm,lab,lab-long \
        --first-seed 3 --seeds 5 > a.jsonl
    PYTHONPATH=$PWD python3 bench/dqn_fresh_seeds.py --families hpc,trace \
        --first-seed 3 --seeds 5 > b.jsonl
    PYTHONPATH=$PWD python3 bench/dqn_fresh_seeds.py --table a.jsonl b.jsonl

One JSON row per family and load (1,000 jobs; loads 0.7, 0.9, 1.1): the policy's, its base's
(`dqn-self`'s rule) and every heuristic's mean average and p95 bounded slowdown and utilization,
and the same per seed (`per_seed`); `--table` prints them as Markdown, over the best heuristic
of each row (best by mean, taken after the fact). `--weights NAME=PATH,...` measures these
`dqn-regime` weights instead of the shipped `dqn-regime` (the first is the table's network,
`--net NAME` picks another).

Many seeds a row, in disjoint sets (each a file, or two families' files each), pooled into one
row per family and load, with a bootstrap 90 % interval of the ratio to the best heuristic:

    PYTHONPATH=$PWD python3 bench/dqn_fresh_seeds.py --table a13.jsonl b13.jsonl a33.jsonl \
        b33.jsonl --pool --ci --net dqn-regime2

Per seed, for the rows that fail (issue 17's fifth try): every heuristic, the network, its base
and each rule its labels compare followed whole (`RulePolicy`), no training:

    PYTHONPATH=$PWD python3 bench/dqn_fresh_seeds.py --per-seed hpc:0.7,lab-long:0.7 \
        --first-seed 3 --seeds 5 > per_seed.jsonl
    PYTHONPATH=$PWD python3 bench/dqn_fresh_seeds.py --per-seed-table per_seed.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scheduler.bench import make_workload  # noqa: E402
from scheduler.dqn_order_eval import TRACE, _wl  # noqa: E402
from scheduler.dqn_order_train import TRACE_TRAIN_TASKS  # noqa: E402
from scheduler.dqn_regime_core import (  # noqa: E402
    RULES,
    SHIPPED,
    RegimePolicy,
    RegimeWeightsError,
    RulePolicy,
)
from scheduler.heuristics import HEURISTICS  # noqa: E402
from scheduler.metrics import compute_metrics  # noqa: E402
from scheduler.policy import DQNPolicy  # noqa: E402
from scheduler.simulator import Simulator  # noqa: E402

FAMILIES = ("deeprm", "lab", "lab-long", "hpc", "trace")
LOADS = (0.7, 0.9, 1.1)


def per_seed(make: Callable[[], Any], kind: str, wls: list) -> list[list[float]]:
    """[avg bounded slowdown, p95, utilization] of a fresh `make()` on each workload (CPU
    utilization for hpc, GPU while jobs arrive elsewhere)."""
    util = "cpu_util" if kind == "hpc" else "gpu_util_arrivals"
    out = []
    for wl in wls:
        m = compute_metrics(Simulator(wl).run(make()))
        out.append([m["avg_bounded_slowdown"], m["p95_bounded_slowdown"], m[util]])
    return out


def mean(cells: list[list[float]]) -> list[float]:
    return [float(v) for v in np.mean(np.array(cells), axis=0)]


RESERVED = frozenset(
    {
        "family",
        "load",
        "seeds",
        "nets",
        "heur",
        "best",
        "base",
        "per_seed",
        "cpu_s",
        "trace_held_out",
        "seed_sets",
    }
)
"""the row fields a network's name must not overwrite"""


def parse_weights(spec: str) -> dict[str, Path]:
    """`NAME=PATH,...` -> {name: path}; the shipped `dqn-regime` when empty."""
    if not spec:
        return {"dqn-regime": SHIPPED}
    out = {}
    for item in spec.split(","):
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--weights {item!r}: NAME=PATH")
        if name in RESERVED or name in HEURISTICS or name.startswith("rule-") or name in out:
            raise ValueError(f"--weights {item!r}: the name {name!r} is taken (a row field, "
                             "a heuristic or another network); pick another")  # fmt: skip
        out[name] = Path(path)
    return out


def parse_per_seed(spec: str) -> list[tuple[str, float]]:
    """`FAMILY:LOAD,...` -> [(family, load)], a load as a number (`0.70` is 0.7)."""
    picked = []
    for item in spec.split(","):
        kind, _, load = item.partition(":")
        try:
            value = float(load)
        except ValueError:
            value = math.nan
        known = [x for x in LOADS if math.isclose(value, x)]
        if kind not in FAMILIES or not known:
            raise ValueError(f"--per-seed {item!r}: FAMILY:LOAD, a family of "
                             f"{', '.join(FAMILIES)}, load 0.7, 0.9 or 1.1")  # fmt: skip
        picked.append((kind, known[0]))
    return picked


TRACE_HELD_OUT_JOBS = 1000
TRACE_HELD_OUT_STRIDE = 475
"""`--trace-held-out`: seed k of a run (k = 0-4) is the 1,000 trace tasks from
`TRACE_TRAIN_TASKS + 475 k`: after every task a training window can hold (the last usable task
is 7,254), overlapping one another but never the training workloads"""


def workload(kind: str, seed: int, load: float, k: int, trace_held_out: bool) -> Any:
    """Seed `seed`'s workload (`k`: its place in the run); `_wl` unless `trace_held_out`."""
    if kind != "trace" or not trace_held_out:
        return _wl(kind, seed, load)
    start = TRACE_TRAIN_TASKS + k * TRACE_HELD_OUT_STRIDE
    return make_workload(
        "trace", seed, jobs=TRACE_HELD_OUT_JOBS, load=load, trace=TRACE, start=start
    )


def rows(
    families: list[str],
    seeds: range,
    weights: dict[str, Path],
    rules: bool,
    only_nets: bool,
    trace_held_out: bool = False,
) -> None:
    for kind in families:
        for load in LOADS:
            row_of(kind, load, seeds, weights, rules, only_nets, trace_held_out)


def row_of(
    kind: str,
    load: float,
    seeds: range,
    weights: dict[str, Path],
    rules: bool,
    only_nets: bool = False,
    trace_held_out: bool = False,
) -> None:
    """One JSON row; `only_nets`: the networks alone (`--table` merges it with a full row of
    the same workloads)."""
    t0 = time.process_time()
    wls = [workload(kind, s, load, k, trace_held_out) for k, s in enumerate(seeds)]
    got: dict[str, list[list[float]]] = {}
    for name, path in weights.items():
        got[name] = per_seed(lambda p=path: RegimePolicy(p), kind, wls)  # type: ignore[misc]
    heur: dict[str, list[list[float]]] = {}
    if not only_nets:
        got["base"] = per_seed(lambda: DQNPolicy(aging_s=1e15), kind, wls)
        heur = {n: per_seed(HEURISTICS[n], kind, wls) for n in HEURISTICS}
    if rules:
        for r in RULES[1:]:
            got[f"rule-{r}"] = per_seed(lambda r=r: RulePolicy(r), kind, wls)  # type: ignore[misc]
    means = {n: mean(v) for n, v in heur.items()}
    row = {
        "family": kind,
        "load": load,
        "seeds": [seeds.start, seeds.stop - 1],
        **({"trace_held_out": True} if trace_held_out and kind == "trace" else {}),
        "nets": list(weights),
        **{n: mean(v) for n, v in got.items()},
        "heur": means,
        "per_seed": {**got, **heur},
        "cpu_s": time.process_time() - t0,
    }
    if means:
        row["best"] = min(means, key=lambda n: means[n][0])
    print(json.dumps(row), flush=True)


def load_rows(paths: list[str]) -> list[dict]:
    """The rows of these files, rows of the same family, load and seeds merged (a later
    file's networks beside an earlier file's heuristics)."""
    merged: dict[tuple, dict] = {}
    for p in paths:
        for line in Path(p).read_text().splitlines():
            if not line:
                continue
            r = json.loads(line)
            key = (r["family"], r["load"], tuple(r["seeds"]))
            if key not in merged:
                merged[key] = r
                continue
            m = merged[key]
            for k, v in r.items():
                if k == "nets":
                    m["nets"] = list(dict.fromkeys(m["nets"] + v))
                elif k in ("heur", "per_seed"):
                    m[k] = {**m[k], **v}
                elif k == "cpu_s":
                    m[k] += v
                elif k != "best" or v:
                    m[k] = v
            if m["heur"]:
                m["best"] = min(m["heur"], key=lambda n: m["heur"][n][0])
    got = list(merged.values())
    got.sort(key=lambda r: (FAMILIES.index(r["family"]), r["load"], r["seeds"][0]))
    return got


def pool_rows(got: list[dict]) -> list[dict]:
    """Rows of the same family and load from disjoint seed sets pooled into one row: each
    policy measured on every set, seed by seed, its means taken again over all of them."""
    groups: dict[tuple, list[dict]] = {}
    for r in got:
        groups.setdefault((r["family"], r["load"]), []).append(r)
    out = []
    for (kind, load), rs in groups.items():
        rs.sort(key=lambda r: r["seeds"][0])
        for a, b in zip(rs, rs[1:], strict=False):
            if b["seeds"][0] <= a["seeds"][1]:
                raise ValueError(f"{kind} at {load}: seeds {a['seeds']} and {b['seeds']} overlap")
        names = set.intersection(*(set(r["per_seed"]) for r in rs))
        ps = {n: [c for r in rs for c in r["per_seed"][n]] for n in sorted(names)}
        heur = {n: mean(ps[n]) for n in rs[0]["heur"] if n in names}
        nets = [n for n in rs[0]["nets"] if n in names]
        row = {
            "family": kind,
            "load": load,
            "seeds": [rs[0]["seeds"][0], rs[-1]["seeds"][1]],
            "seed_sets": [r["seeds"] for r in rs],
            "nets": nets,
            **{n: mean(ps[n]) for n in [*nets, "base"] if n in ps},
            "heur": heur,
            "per_seed": ps,
            "cpu_s": sum(r["cpu_s"] for r in rs),
        }
        if heur:
            row["best"] = min(heur, key=lambda n: heur[n][0])
        out.append(row)
    return out


CI_DRAWS = 2000
"""`--ci`: bootstrap draws (seeds drawn with replacement, the same draw for every policy)"""


def ratio_ci(r: dict, name: str, rng: np.random.Generator) -> tuple[float, float]:
    """The 5th and 95th percentiles of the network's mean over the best heuristic's mean, the
    best taken again on each draw (the yardstick as defined: the best of them after the fact)."""
    ps = r["per_seed"]
    net = np.array([c[0] for c in ps[name]])
    heur = np.array([[c[0] for c in ps[h]] for h in r["heur"]])
    idx = rng.integers(0, len(net), size=(CI_DRAWS, len(net)))
    ratios = net[idx].mean(axis=1) / heur[:, idx].mean(axis=2).min(axis=0)
    lo, hi = np.percentile(ratios, [5, 95])
    return float(lo), float(hi)


def table(paths: list[str], net: str | None, pool: bool = False, ci: bool = False) -> None:
    got = load_rows(paths)
    if pool:
        got = pool_rows(got)
    name = net or (got[0].get("nets") or ["dqn-regime"])[0]
    got = [r for r in got if name in r and r["heur"]]  # rows measured for both
    if not got:
        raise KeyError(f"no row measures both {name!r} and the heuristics")
    rng = np.random.default_rng(0)
    print(f"| family | load | seeds | {name} avg / p95 / util | best heuristic avg / p95 / util | "
          "base | / base | base / best | **/ best heuristic** | worst seed / its best |"
          + (" 90 % interval |" if ci else ""))  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|" + ("---|" if ci else ""))
    above = below = 0
    for r in got:
        g, b, base = r[name], r["heur"][r["best"]], r["base"][0]
        worst = ""
        if "per_seed" in r:
            ps = r["per_seed"]
            seed_best = [min(ps[h][k][0] for h in r["heur"]) for k in range(len(ps[name]))]
            worst = f"{max(c[0] / s for c, s in zip(ps[name], seed_best, strict=True)):.2f}"
        interval = ""
        if ci:
            lo, hi = ratio_ci(r, name, rng)
            above, below = above + (lo > 1.05), below + (hi <= 1.05)
            interval = f" {lo:.2f}-{hi:.2f} |"
        seeds = f"{r['seeds'][0]}-{r['seeds'][1]}"
        print(
            f"| {r['family']} | {r['load']} | {seeds} | {g[0]:.2f} / {g[1]:.1f} / {g[2]:.0%} | "
            f"{b[0]:.2f} / {b[1]:.1f} / {b[2]:.0%} ({r['best']}) | {base:.2f} | "
            f"{g[0] / base:.2f} | {base / b[0]:.2f} | **{g[0] / b[0]:.2f}** | {worst} |" + interval
        )
    ratios = np.array([r[name][0] / r["heur"][r["best"]][0] for r in got])
    score = ratios.mean() + 2 * np.maximum(ratios - 1.05, 0).sum()
    print(f"\n({name}: mean ratio {ratios.mean():.3f}, max {ratios.max():.2f}, score "
          f"{score:.3f} (the mean plus twice every excess over 1.05); rows over 1.05: "
          f"{int((ratios > 1.05).sum())}; {sum(r['cpu_s'] for r in got):.0f} CPU s in all.)")  # fmt: skip
    if ci:
        print(f"(90 % intervals: {above} rows wholly above 1.05, {below} wholly at or below it, "
              f"{len(got) - above - below} straddle it; {CI_DRAWS} draws of the seeds.)")  # fmt: skip


def seed_table(paths: list[str]) -> None:
    """Per seed: every policy measured, the best heuristic of that seed, the mean's best."""
    for r in load_rows(paths):
        ps = r["per_seed"]
        first = r["seeds"][0]
        show = [*r["nets"], "base", *(f"rule-{x}" for x in RULES[1:]), "wfp3", "f1", "sjf-bf"]
        show = [n for n in show if n in ps]
        print(f"\n{r['family']} at {r['load']} (avg bounded slowdown; the seed's best heuristic "
              "last; utilization in brackets for the network, the base and the best):\n")  # fmt: skip
        print("| seed | " + " | ".join(show) + " | seed's best heuristic |")
        print("|---|" + "---|" * (len(show) + 1))
        n = len(ps["base"])
        for k in range(n):
            best = min(r["heur"], key=lambda h: ps[h][k][0])
            cells = [f"{ps[x][k][0]:.2f}" for x in show]
            for i, x in enumerate(show):
                if x in (r["nets"][0], "base"):
                    cells[i] += f" ({ps[x][k][2]:.0%})"
            print(f"| {first + k} | " + " | ".join(cells)
                  + f" | {ps[best][k][0]:.2f} ({best}, {ps[best][k][2]:.0%}) |")  # fmt: skip
        means = [f"{mean(ps[x])[0]:.2f}" for x in show]
        b = r["best"]
        print("| mean | " + " | ".join(means) + f" | {r['heur'][b][0]:.2f} ({b}, best mean) |")
        print("\n" + oracle_line(r))


def oracle_line(r: dict) -> str:
    """Each policy's mean, and the mean of a choice made after the fact per seed (of the ten
    heuristics; of every policy measured), over the best heuristic by mean: what no selector
    among these policies can beat."""
    ps = r["per_seed"]
    ref = r["heur"][r["best"]][0]
    seeds = range(len(ps["base"]))

    def per_seed_best(names: list[str]) -> float:
        return float(np.mean([min(ps[x][k][0] for x in names) for k in seeds])) / ref

    own = sorted((mean(ps[x])[0] / ref, x) for x in ps if x not in r["heur"])
    return ("over the best heuristic by mean: " + ", ".join(f"{x} {v:.3f}" for v, x in own)
            + f"; per-seed best heuristic {per_seed_best(list(r['heur'])):.3f}; "
            f"per-seed best of every policy {per_seed_best(list(ps)):.3f}")  # fmt: skip


def drift(paths: list[str]) -> None:
    """How much the best heuristic of a row moves between seed sets: for each row, the heuristic
    best on one set (the first file's seeds, or seeds 0-2 as documented for the first set named
    `documented`) scored on the next set, over the best heuristic there (a per-row oracle choice
    of heuristic, made on other seeds)."""
    from scheduler.dqn_order_eval import DOCUMENTED_BEST

    sets: list[dict] = []
    for p in paths:
        if p == "documented":
            sets.append({(k, ld): {n: [v]} for (k, ld), (v, n) in DOCUMENTED_BEST.items()})
            continue
        sets.append({(r["family"], r["load"]): r["heur"] for r in load_rows([p])})
    names = [("0-2" if p == "documented" else p) for p in paths]
    print("| family | load | " + " | ".join(
        f"best on {a} scored on {b}" for a, b in zip(names, names[1:], strict=False)) + " |")  # fmt: skip
    print("|---|---|" + "---|" * (len(paths) - 1))
    worst = [0.0] * (len(paths) - 1)
    for key in sorted(sets[-1], key=lambda k: (FAMILIES.index(k[0]), k[1])):
        cells = []
        for i, (a, b) in enumerate(zip(sets, sets[1:], strict=False)):
            if key not in a or key not in b:
                cells.append("")
                continue
            pick = min(a[key], key=lambda n: a[key][n][0])
            best = min(b[key], key=lambda n: b[key][n][0])
            ratio = b[key][pick][0] / b[key][best][0]
            worst[i] = max(worst[i], ratio)
            cells.append(f"{pick}: {ratio:.2f}" + ("" if pick == best else f" ({best})"))
        print(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    print("| worst | | " + " | ".join(f"{w:.2f}" for w in worst) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--first-seed", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--weights", default="", help="NAME=PATH,... dqn-regime weights to measure")
    ap.add_argument("--rules", action="store_true", help="also each rule followed whole")
    ap.add_argument("--only-nets", action="store_true", help="the networks alone (no base, "
                    "no heuristics): --table merges them with a full run's rows")  # fmt: skip
    ap.add_argument("--trace-held-out", action="store_true", help="the trace's windows from "
                    "the tasks no training window holds (1,000 jobs each), not `_wl`'s")  # fmt: skip
    ap.add_argument("--per-seed", default="", help="FAMILY:LOAD,...: these rows with the rules")
    ap.add_argument("--table", nargs="*", help="print the Markdown table of these JSON-row files")
    ap.add_argument("--net", default=None, help="--table: the network's column (default: first)")
    ap.add_argument("--pool", action="store_true", help="--table: pool rows of the same family "
                    "and load from disjoint seed sets into one row")  # fmt: skip
    ap.add_argument("--ci", action="store_true", help="--table: a bootstrap 90 %% interval of "
                    "the ratio to the best heuristic, over the seeds")  # fmt: skip
    ap.add_argument("--per-seed-table", nargs="*", help="print these rows seed by seed")
    ap.add_argument("--drift", nargs="*", help="files of successive seed sets ('documented': "
                    "seeds 0-2): each row's best heuristic on one, scored on the next")  # fmt: skip
    args = ap.parse_args()
    for path in (args.table or []) + (args.per_seed_table or []) + (args.drift or []):
        if path != "documented" and not Path(path).is_file():
            ap.error(f"{path}: no such file (a JSON-row file this script wrote)")
    try:
        if args.table:
            return table(args.table, args.net, args.pool, args.ci)
        if args.per_seed_table:
            return seed_table(args.per_seed_table)
        if args.drift:
            return drift(args.drift)
    except (KeyError, ValueError) as exc:
        ap.error(f"these files do not hold the rows this table needs ({exc}); --net must name "
                 "a network they measured, --per-seed-table needs rows from --per-seed")  # fmt: skip
    try:
        weights = parse_weights(args.weights)
        for path in weights.values():
            RegimePolicy(path)  # unreadable or not dqn-regime weights: say so before measuring
    except (ValueError, RegimeWeightsError) as exc:
        ap.error(str(exc))
    if args.seeds < 1 or args.first_seed < 0:
        ap.error("--seeds >= 1, --first-seed >= 0")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.per_seed:
        try:
            picked = parse_per_seed(args.per_seed)
        except ValueError as exc:
            ap.error(str(exc))
        for kind, load in picked:
            row_of(kind, load, seeds, weights, True)
        return
    kinds = args.families.split(",")
    unknown = sorted(set(kinds) - set(FAMILIES))
    if unknown:
        ap.error(f"--families from {', '.join(FAMILIES)}")
    if args.trace_held_out and args.seeds > 5:
        ap.error("--trace-held-out has room for 5 windows: --seeds 5 or fewer")
    rows(kinds, seeds, weights, args.rules, args.only_nets, args.trace_held_out)


if __name__ == "__main__":
    main()
