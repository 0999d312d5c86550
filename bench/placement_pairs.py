"""Fragmentation placement against best fit on paired seeds (issue 21's aim "no loss on the
scheduling benchmarks of the policy issue: bounded slowdown within 1 %").

    python bench/placement_pairs.py [--seeds 30] [--first-seed 1000] [--families deeprm,lab,...]
        [--loads 0.7,0.9,1.1] [--policies sjf,backfill,...] [--procs 1] [--json]
    python bench/placement_pairs.py --profile trace:1.1:sjf [--seeds 30]
    python bench/placement_pairs.py --render ROWS.json   # the tables of a saved --json run

Each seed's workload is built once and run twice per heuristic, with `placement="fragmentation"`
(the default of every heuristic but FIFO since issue 21) and `placement="bestfit"` (what it
replaced), so the two runs differ only by the placement. Per row (family, load, policy): the mean
of the per-seed ratios avg bounded slowdown (fragmentation) / (best fit), its 95 % interval
(Student t over seeds; a percentile bootstrap beside it in the JSON), the seeds where
fragmentation was worse (and identical), and the same ratio for the p95 bounded slowdown, the
utilization (GPU while jobs arrive; CPU where a family has no GPUs) and the makespan. Beside the
mean ratio, the geometric mean (exp of the mean log ratio) and its interval: noise alone lifts a
mean of ratios above 1 (see `geometric`), the log ratio is symmetric. Pooled rows at the end: every
pair of a policy, of a family, and of all non-identical rows.

Verdict per row, on the t interval [lo, hi] of the mean ratio (a non-inferiority margin of 1 %):
"identical" (every seed's two runs equal), "better" (hi < 1), "within 1 %" (hi <= 1.01),
"worse" (lo > 1.01), else "not resolved" (the interval holds 1.01 and more: more seeds needed).

Families: those of the policy issue that have GPUs. hpc and SWF traces have no GPUs: the
placement code takes its fragmentation path only when some node has GPUs, so they cannot change
and are refused here. deeprm is one node: a job's node has no alternative, so its rows are
identical by construction (run to show it).

`--profile FAMILY:LOAD:POLICY` prints, for one row over the same seeds, which jobs wait longer:
jobs grouped by kind (where the workload names kinds) and GPU request, mean wait and bounded
slowdown under each placement, and each group's share of the change of the avg bounded slowdown.

Times are CPU seconds (`time.process_time`) of the worker processes, summed.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.bench import default_nodes, make_workload  # noqa: E402
from scheduler.heuristics import HEURISTICS  # noqa: E402
from scheduler.metrics import TAU_S, compute_metrics  # noqa: E402
from scheduler.registry import make_policy  # noqa: E402
from scheduler.simulator import SimResult, Simulator  # noqa: E402

TRACE = ROOT.parent / "shared" / "traces" / "alibaba2023_openb_pod_list_default.csv"
FAMILIES = ("deeprm", "lab", "lab-long", "trace")
"""The policy issue's families with GPUs (hpc and SWF have none: placement cannot change them)."""
NO_GPU = ("hpc", "swf")
CHANGED = tuple(name for name, cls in HEURISTICS.items() if cls.default_placement != "bestfit")
"""The heuristics whose default placement issue 21 switched to fragmentation (all but FIFO)."""
PLACEMENTS = ("fragmentation", "bestfit")
Values = Sequence[float] | np.ndarray
MARGIN = 0.01
LEVEL = 0.95


# -- statistics over seeds (pure) ---------------------------------------------------------------


def ratios(num: Values, den: Values) -> np.ndarray:
    """Per-seed num / den; a seed where both are 0 counts as 1 (no change)."""
    a = np.asarray(num, dtype=float)
    b = np.asarray(den, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired figures need the same seeds")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = a / b
    return np.where((a == 0) & (b == 0), 1.0, out)


def t_interval(x: Values, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): the Student t interval of the mean of `x` (one value: no width)."""
    from scipy.stats import t as student_t

    v = np.asarray(x, dtype=float)
    if len(v) == 0:
        raise ValueError("no values")
    m = float(v.mean())
    if len(v) < 2:
        return m, m, m
    half = float(student_t.ppf(0.5 + level / 2, len(v) - 1)) * float(v.std(ddof=1))
    half /= math.sqrt(len(v))
    return m, m - half, m + half


def bootstrap_interval(
    x: Values, level: float = LEVEL, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `x` (seeds resampled with replacement)."""
    v = np.asarray(x, dtype=float)
    if len(v) < 2:
        m = float(v.mean()) if len(v) else math.nan
        return m, m
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def seeds_for(x: Values, level: float = LEVEL, margin: float = MARGIN) -> int:
    """Seeds for a t interval of half-width `margin` at the spread of `x` (normal quantile)."""
    from scipy.stats import norm

    v = np.asarray(x, dtype=float)
    sd = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return max(2, math.ceil((float(norm.ppf(0.5 + level / 2)) * sd / margin) ** 2))


def geometric(frag: Values, best: Values, level: float = LEVEL) -> tuple[float, float, float]:
    """exp of the mean per-seed log ratio and of its t interval. The mean of ratios is biased
    upward by noise alone (about sd(log ratio)^2 / 2: +2 % at a 20 % per-seed spread, and
    best fit / frag is then "worse" too); the log ratio is symmetric, frag / best fit and its
    inverse give reciprocal answers."""
    m, lo, hi = t_interval(np.log(ratios(frag, best)), level)
    return math.exp(m), math.exp(lo), math.exp(hi)


def with_geometric(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its geometric mean ratio, interval and verdict (from its per-seed figures)."""
    per = row["per_seed"]
    g, lo, hi = geometric([s[1] for s in per], [s[2] for s in per])
    same = row["identical_seeds"] == len(per)
    return {**row, "bsld_geo": g, "bsld_geo_ci": [lo, hi], "verdict_geo": verdict(lo, hi, same)}


def pooled(rows: Sequence[dict[str, Any]], level: float = LEVEL) -> dict[str, Any]:
    """The mean ratio over every (family, load, seed) pair of `rows`, with its t interval: the
    rows' workloads are independent draws, so the pairs pool."""
    r = np.concatenate([ratios([s[1] for s in row["per_seed"]], [s[2] for s in row["per_seed"]])
                        for row in rows])  # fmt: skip
    m, lo, hi = t_interval(r, level)
    g, glo, ghi = t_interval(np.log(r), level)
    return {
        "ratio": m,
        "ci": [lo, hi],
        "geo": math.exp(g),
        "geo_ci": [math.exp(glo), math.exp(ghi)],
        "pairs": len(r),
        "worse": int((r > 1).sum()),
    }


def verdict(low: float, high: float, identical: bool, margin: float = MARGIN) -> str:
    """The row's answer to "within 1 %" from the interval of the mean ratio frag / best fit."""
    if identical:
        return "identical"
    if high < 1.0:
        return "better"
    if high <= 1.0 + margin:
        return "within 1 %"
    if low > 1.0 + margin:
        return "worse"
    return "not resolved"


def paired(frag: Values, best: Values, level: float = LEVEL) -> dict[str, Any]:
    """Paired comparison of one metric: mean ratio frag / best fit, its t and bootstrap
    intervals, the seeds where frag is higher (worse for a slowdown) and where it is equal."""
    r = ratios(frag, best)
    m, lo, hi = t_interval(r, level)
    blo, bhi = bootstrap_interval(r, level)
    a = np.asarray(frag, dtype=float)
    b = np.asarray(best, dtype=float)
    return {
        "ratio": m,
        "seeds_for_margin": seeds_for(r, level),
        "low": lo,
        "high": hi,
        "half": (hi - lo) / 2,
        "boot_low": blo,
        "boot_high": bhi,
        "sd": float(r.std(ddof=1)) if len(r) > 1 else 0.0,
        "higher": int((a > b).sum()),
        "equal": int((a == b).sum()),
        "n": len(r),
    }


# -- the runs -----------------------------------------------------------------------------------


def _workload(family: str, load: float, seed: int, jobs: int | None, trace: Path) -> Any:
    opts: dict[str, Any] = {"load": load}
    if jobs is not None:
        opts["jobs"] = jobs
        opts["nodes"] = default_nodes(family, jobs)
    if family == "trace":
        opts["trace"] = trace
    return make_workload(family, seed, **opts)


def _util_key(wl: Any) -> str:
    return "gpu_util_arrivals" if any(n.capacity.gpus > 0 for n in wl.nodes) else "cpu_util"


def run_unit(unit: tuple[str, float, int, tuple[str, ...], int | None, str]) -> list[dict]:
    """One seed of one (family, load): every policy with each placement on the same workload."""
    family, load, seed, policies, jobs, trace = unit
    wl = _workload(family, load, seed, jobs, Path(trace))
    util = _util_key(wl)
    out = []
    for policy in policies:
        rec: dict[str, Any] = {"family": family, "load": load, "policy": policy, "seed": seed}
        for pl in PLACEMENTS:
            t0 = time.process_time()
            m = compute_metrics(Simulator(wl).run(make_policy(policy, placement=pl)))
            rec[pl] = {
                "avg_bounded_slowdown": m["avg_bounded_slowdown"],
                "p95_bounded_slowdown": m["p95_bounded_slowdown"],
                "util": m[util],
                "makespan": m["makespan"],
                "cpu_s": time.process_time() - t0,
            }
        rec["util_metric"] = util
        out.append(rec)
    return out


def summarize(records: Iterable[dict]) -> list[dict[str, Any]]:
    """One row per (family, load, policy) from the per-seed records, in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["family"], r["load"], r["policy"]), []).append(r)
    rows = []
    for (family, load, policy), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["seed"])

        def col(pl: str, key: str, rs: list[dict] = rs) -> list[float]:
            return [r[pl][key] for r in rs]

        bsld = paired(col("fragmentation", "avg_bounded_slowdown"), col("bestfit", "avg_bounded_slowdown"))  # fmt: skip
        p95 = paired(col("fragmentation", "p95_bounded_slowdown"), col("bestfit", "p95_bounded_slowdown"))  # fmt: skip
        util = paired(col("fragmentation", "util"), col("bestfit", "util"))
        span = paired(col("fragmentation", "makespan"), col("bestfit", "makespan"))
        rows.append(
            {
                "family": family,
                "load": load,
                "policy": policy,
                "seeds": [r["seed"] for r in rs],
                "bsld_fragmentation": float(np.mean(col("fragmentation", "avg_bounded_slowdown"))),
                "bsld_bestfit": float(np.mean(col("bestfit", "avg_bounded_slowdown"))),
                "bsld_ratio": bsld["ratio"],
                "bsld_ci": [bsld["low"], bsld["high"]],
                "bsld_ci_half": bsld["half"],
                "bsld_boot_ci": [bsld["boot_low"], bsld["boot_high"]],
                "bsld_ratio_sd": bsld["sd"],
                "seeds_for_1pct": bsld["seeds_for_margin"],
                "worse_seeds": bsld["higher"],
                "identical_seeds": bsld["equal"],
                "p95_ratio": p95["ratio"],
                "p95_ci": [p95["low"], p95["high"]],
                "util_metric": rs[0]["util_metric"],
                "util_ratio": util["ratio"],
                "util_ci": [util["low"], util["high"]],
                "makespan_ratio": span["ratio"],
                "makespan_ci": [span["low"], span["high"]],
                "verdict": verdict(bsld["low"], bsld["high"], bsld["equal"] == bsld["n"]),
                "cpu_s": float(sum(r[pl]["cpu_s"] for r in rs for pl in PLACEMENTS)),
                "per_seed": [
                    [
                        r["seed"],
                        r["fragmentation"]["avg_bounded_slowdown"],
                        r["bestfit"]["avg_bounded_slowdown"],
                    ]
                    for r in rs
                ],  # fmt: skip
            }
        )
    return rows


def run_pairs(
    families: Sequence[str],
    loads: Sequence[float],
    policies: Sequence[str],
    seeds: Sequence[int],
    *,
    jobs: int | None = None,
    procs: int = 1,
    trace: Path = TRACE,
) -> list[dict[str, Any]]:
    """Every (family, load, policy) row over `seeds`, both placements per seed."""
    units = [
        (f, float(ld), s, tuple(policies), jobs, str(trace))
        for f in families
        for ld in loads
        for s in seeds
    ]
    if procs > 1:
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            parts = pool.map(run_unit, units, chunksize=1)
    else:
        parts = [run_unit(u) for u in units]
    return [with_geometric(r) for r in summarize(r for part in parts for r in part)]


# -- where a row's change comes from ------------------------------------------------------------


def _group(job: Any) -> str:
    r = job.request
    gpus = f"{r.gpus} GPU" if r.gpus else ("GPU share" if r.gpu_mem_mb else "no GPU")
    return f"{job.kind or '-'} / {gpus}"


def _bsld(job: Any) -> float:
    return max(1.0, (job.end_s - job.submit_s) / max(job.runtime_s, TAU_S))


def profile(
    family: str, load: float, policy: str, seeds: Sequence[int], jobs: int | None, trace: Path
) -> list[dict[str, Any]]:
    """Per job group: jobs per seed, mean wait (h) and bounded slowdown under each placement,
    and the group's part of the change of the avg bounded slowdown (summed over groups: the
    mean change per seed)."""
    acc: dict[str, dict[str, float]] = {}
    for seed in seeds:
        wl = _workload(family, load, seed, jobs, trace)
        res: dict[str, SimResult] = {
            pl: Simulator(wl).run(make_policy(policy, placement=pl)) for pl in PLACEMENTS
        }
        n = len(res["bestfit"].finished)
        for pl in PLACEMENTS:
            for j in res[pl].finished:
                g = acc.setdefault(_group(j), {})
                g[f"n_{pl}"] = g.get(f"n_{pl}", 0.0) + 1
                g[f"wait_{pl}"] = g.get(f"wait_{pl}", 0.0) + (j.start_s - j.submit_s)
                g[f"bsld_{pl}"] = g.get(f"bsld_{pl}", 0.0) + _bsld(j)
                sign = 1.0 if pl == "fragmentation" else -1.0
                g["part"] = g.get("part", 0.0) + sign * _bsld(j) / max(1, n)
    out = []
    k = len(seeds)
    for name, g in sorted(acc.items(), key=lambda kv: -abs(kv[1].get("part", 0.0))):
        nb, nf = g.get("n_bestfit", 0.0), g.get("n_fragmentation", 0.0)
        out.append(
            {
                "group": name,
                "jobs_per_seed": nb / k,
                "wait_h_bestfit": g.get("wait_bestfit", 0.0) / max(1.0, nb) / 3600,
                "wait_h_fragmentation": g.get("wait_fragmentation", 0.0) / max(1.0, nf) / 3600,
                "bsld_bestfit": g.get("bsld_bestfit", 0.0) / max(1.0, nb),
                "bsld_fragmentation": g.get("bsld_fragmentation", 0.0) / max(1.0, nf),
                "part_of_change": g.get("part", 0.0) / k,
            }
        )
    return out


# -- the command --------------------------------------------------------------------------------


def _ci(lo_hi: Sequence[float]) -> str:
    return f"{lo_hi[0]:.4f} – {lo_hi[1]:.4f}"


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| family | load | policy | avg bsld best fit → frag | mean ratio frag / best fit (95 % CI) "
        "| geometric mean ratio (CI) | frag worse on | seeds for ± 1 % | p95 ratio (CI) "
        "| util ratio (CI) | verdict (mean / geometric) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        n = len(r["seeds"])
        same = f", equal on {r['identical_seeds']}" if r["identical_seeds"] else ""
        lines.append(
            f"| {r['family']} | {r['load']} | {r['policy']} | {r['bsld_bestfit']:.3f} → "
            f"{r['bsld_fragmentation']:.3f} | {r['bsld_ratio']:.4f} ({_ci(r['bsld_ci'])}) | "
            f"{r['bsld_geo']:.4f} ({_ci(r['bsld_geo_ci'])}) | {r['worse_seeds']} of {n}{same} | "
            f"{r['seeds_for_1pct']} | {r['p95_ratio']:.3f} ({_ci(r['p95_ci'])}) | "
            f"{r['util_ratio']:.4f} ({_ci(r['util_ci'])}) | {r['verdict']} / {r['verdict_geo']} |"
        )
    return "\n".join(lines)


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=30, help="seeds per row (default 30)")
    p.add_argument("--first-seed", type=int, default=1000, help="first seed (default 1000)")
    p.add_argument("--families", default=",".join(FAMILIES), help="comma-separated families")
    p.add_argument("--loads", default="0.7,0.9,1.1", help="comma-separated offered loads")
    p.add_argument("--policies", default=",".join(CHANGED), help="comma-separated heuristics")
    p.add_argument("--jobs", type=int, default=None, help="jobs per workload (default: family's)")
    p.add_argument("--procs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--trace", type=Path, default=TRACE, help="pod list for the trace family")
    p.add_argument("--profile", default=None, help="FAMILY:LOAD:POLICY: which jobs wait longer")
    p.add_argument("--json", action="store_true", help="print one JSON array of rows")
    p.add_argument("--render", type=Path, default=None, help="print the tables of a --json file")
    return p.parse_args(argv)


def _check(args: argparse.Namespace) -> tuple[list[str], list[float], list[str]]:
    """The families, loads and policies asked for; ValueError saying what is wrong."""
    families = _csv(args.families)
    for f in families:
        if f in NO_GPU:
            raise ValueError(
                f"family {f!r} has no GPUs, so the placement cannot change it; "
                f"choose from {', '.join(FAMILIES)}"
            )
        if f not in FAMILIES:
            raise ValueError(f"unknown family {f!r}; choose from {', '.join(FAMILIES)}")
    try:
        loads = [float(x) for x in _csv(args.loads)]
    except ValueError:
        raise ValueError(
            f"--loads must be numbers separated by commas, not {args.loads!r}"
        ) from None
    if not loads or any(not (x > 0 and math.isfinite(x)) for x in loads):
        raise ValueError("--loads must be positive numbers, e.g. 0.7,0.9,1.1")
    policies = _csv(args.policies)
    for pol in policies:
        if pol not in CHANGED:
            raise ValueError(
                f"policy {pol!r} does not place by fragmentation by default; "
                f"choose from {', '.join(CHANGED)}"
            )
    if not families or not policies:
        raise ValueError("at least one family and one policy are needed")
    if args.seeds < 1:
        raise ValueError("--seeds must be at least 1")
    if args.procs < 1:
        raise ValueError("--procs must be at least 1")
    if args.jobs is not None and args.jobs < 1:
        raise ValueError("--jobs must be at least 1")
    if "trace" in families and not args.trace.is_file():
        raise ValueError(f"trace file {args.trace} not found; pass --trace POD_CSV")
    return families, loads, policies


def _profile_row(text: str, families: Sequence[str]) -> tuple[str, float, str]:
    parts = text.split(":")
    try:
        fam, load, pol = parts[0], float(parts[1]), parts[2]
    except (IndexError, ValueError):
        fam, load, pol = "", math.nan, ""
    if len(parts) != 3 or fam not in families or pol not in CHANGED or not load > 0:
        raise ValueError(f"--profile takes FAMILY:LOAD:POLICY, e.g. trace:1.1:sjf, not {text!r}")
    return fam, load, pol


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        families, loads, policies = _check(args)
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        if args.profile:
            fam, load, pol = _profile_row(args.profile, families)
            groups = profile(fam, load, pol, seeds, args.jobs, args.trace)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.profile:
        if args.json:
            print(json.dumps(groups, indent=1))
            return 0
        print("| jobs (kind / GPUs) | per seed | wait h best fit → frag | bsld best fit → frag "
              "| part of the avg bsld change |")  # fmt: skip
        print("|---|---|---|---|---|")
        for g in groups:
            print(
                f"| {g['group']} | {g['jobs_per_seed']:.1f} | {g['wait_h_bestfit']:.2f} → "
                f"{g['wait_h_fragmentation']:.2f} | {g['bsld_bestfit']:.2f} → "
                f"{g['bsld_fragmentation']:.2f} | {g['part_of_change']:+.4f} |"
            )
        return 0
    t0 = time.perf_counter()
    if args.render:
        try:
            rows = json.loads(args.render.read_text())
        except (OSError, ValueError) as exc:
            print(f"error: cannot read rows from {args.render}: {exc}", file=sys.stderr)
            return 2
        rows = [with_geometric(r) for r in rows]
        policies = list(dict.fromkeys(r["policy"] for r in rows))
        seeds = sorted({s for r in rows for s in r["seeds"]})
    else:
        rows = run_pairs(
            families, loads, policies, seeds, jobs=args.jobs, procs=args.procs, trace=args.trace
        )
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(markdown(rows))
    print("\n| pooled over | pairs | mean ratio (95 % CI) | geometric mean ratio (95 % CI) "
          "| frag worse on |\n|---|---|---|---|---|")  # fmt: skip
    fams = list(dict.fromkeys(r["family"] for r in rows))
    for pol in [*policies, *(f"family {f}" for f in fams), "all"]:
        sel = [
            r
            for r in rows
            if pol in ("all", r["policy"], f"family {r['family']}") and r["verdict"] != "identical"
        ]
        if sel:
            pool = pooled(sel)
            print(f"| {pol} | {pool['pairs']} | {pool['ratio']:.4f} ({_ci(pool['ci'])}) | "
                  f"{pool['geo']:.4f} ({_ci(pool['geo_ci'])}) | {pool['worse']} |")  # fmt: skip
    cpu = sum(r["cpu_s"] for r in rows)
    print(f"\n{len(rows)} rows, seeds {seeds[0]}-{seeds[-1]}, {cpu:.0f} CPU s in the runs, "
          f"{time.perf_counter() - t0:.0f} s wall")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
