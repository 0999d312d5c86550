"""FGD experiment benchmark: prints the Markdown tables of docs/benchmarks.md ("Fragmentation").

    python bench/fragmentation.py [--section NAME|all] [--seeds 10]

NAME: table, variants, latency, replay, lookahead, scheduling or lastjob.

* table: every policy (the paper's six baselines and ours) on the default pod list at 130 %
  arrivals, seeds 42.., mean ± std and the per-seed difference of ours against FGD;
* variants: FGD against ours on pod lists and settings the placement was not tuned on: seeds
  52-61, other inflation levels, a random half of the pod list, a third of the GPU pods bound to
  one GPU model (`gpu_spec`), and twice the share of multi-GPU pods;
* latency: one placement decision at 1,213 nodes (CPU time of the whole step: fit mask, growth of
  every candidate, choice, bookkeeping), median over a full run;
* replay: arrivals and departures (scheduler/replay.py): the trace's pods with their times on a
  random quarter of the node list (seeds 42..), arrivals compressed to an offered load of 1.0 and
  1.3; stranded GPU capacity (fragmentation for the trace's typical shapes), unallocated capacity
  while a GPU pod waits and the mean wait, time-averaged; every placer one pod at a time in FIFO
  order, then the round's pods largest first ("size"), and ours with a look-ahead over the round;
* lookahead: the fill-up experiment (default list, 130 %) with arrivals in rounds of 16, ours
  looking ahead over the rest of each round, beside ours one pod at a time and FGD, seeds 42..;
* scheduling: the scheduling rows of the issue, through the CLI (`python -m lepton_tui bench
  --placement bestfit|fragmentation --json`): sjf, backfill and tetris on the lab mix and the
  Alibaba trace at loads 0.7, 0.9 and 1.1, seeds 0..N-1; avg bounded slowdown, makespan and GPU
  utilization (while jobs arrive) before (best fit) and after (fragmentation), with the per-seed
  change's spread (the 95 % interval of the mean change);
* product: the product's rounds (scheduler/joint.py): sjf and backfill on the trace workload in
  the simulator, arrivals batched into rounds of `--batch-s` seconds (a dispatcher tick sees
  every job submitted since the last), each round's GPU shares placed jointly or not; stranded
  GPU share after each round (time-weighted), avg bounded slowdown and GPU utilization, per seed;
* profile: where the replay's stranded capacity comes from, FGD beside ours, per seed at one
  load: time-averaged parts (`scheduler.replay.stranded_parts`: small rooms on shared GPUs, shapes
  that cannot run for lack of CPUs or memory, of GPUs, of the GPU model, CPU-only shapes) and
  the stranded share over ten slices of the arrival window;
* dqnstrand: how much of the DQN's placements strand, beside sjf (by fragmentation and by best
  fit) and fifo: the stranded GPU share after each round (time-weighted) on the trace workload;
* lastjob: on the trace at load 1.1, per seed and placement, the job that ends last (what sets
  the makespan) and the mean wait of the jobs of 4 GPUs or more and of all jobs.

Times are wall-clock seconds of this process on this machine (2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scheduler.packing import (  # noqa: E402
    PAPER,
    POLICIES,
    NodeList,
    PodList,
    load_nodes,
    load_pods,
    run_one,
)
from scheduler.replay import (  # noqa: E402
    LookAhead,
    fill_up_lookahead,
    load_trace,
    replay,
    sample_nodes,
)

TRACES = ROOT.parent / "shared" / "traces"
NODES = TRACES / "alibaba2023_openb_node_list_gpu_node.csv"
PODS = TRACES / "alibaba2023_openb_pod_list_default.csv"


def _runs(nodes: NodeList, pods: PodList, policy: str, seeds: range, ratio: float) -> list[float]:
    return [run_one(nodes, pods, policy, s, ratio)["unallocated_gpu_share"] for s in seeds]


def table(nodes: NodeList, pods: PodList, seeds: int) -> None:
    t0 = time.perf_counter()
    res = {p: _runs(nodes, pods, p, range(42, 42 + seeds), 1.3) for p in POLICIES}
    print(f"### Unallocated GPU share at 130 % arrivals ({seeds} seeds, 42-{41 + seeds})\n")
    print("| policy | unallocated GPU share (mean ± std) | paper | per seed |")
    print("|---|---|---|---|")
    for p, v in res.items():
        paper = f"{PAPER[p]:.2f} %" if p in PAPER else "-"
        per = " ".join(f"{x:.2f}" for x in v)
        print(f"| {p} | {np.mean(v):.2f} ± {np.std(v):.2f} % | {paper} | {per} |")
    diff = np.array(res["lepton"]) - np.array(res["fgd"])
    wins = int((diff < 0).sum())
    print(
        f"\nours - FGD per seed: mean {diff.mean():+.3f} points "
        f"({100 * diff.mean() / np.mean(res['fgd']):+.1f} %), ours lower on {wins} of {seeds} seeds"
    )
    print(f"<!-- {len(POLICIES) * seeds} runs in {time.perf_counter() - t0:.0f} s -->\n")


def _subsample(pods: PodList, frac: float, seed: int) -> PodList:
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(pods), size=int(frac * len(pods)), replace=False))
    return PodList(*(a[keep] for a in (pods.cpu, pods.mem, pods.gpus, pods.milli, pods.models)))


def _gpuspec(nodes: NodeList, pods: PodList, frac: float, seed: int) -> PodList:
    """Bind `frac` of the GPU pods to one GPU model each, drawn by the models' GPU capacity."""
    rng = np.random.default_rng(seed)
    cap = np.array([nodes.gpus[nodes.model == m].sum() for m in range(len(nodes.model_names))])
    gpu_pods = np.flatnonzero(pods.gpus > 0)
    chosen = rng.choice(gpu_pods, size=int(frac * len(gpu_pods)), replace=False)
    models = pods.models.copy()
    models[chosen] = 1 << rng.choice(len(cap), size=len(chosen), p=cap / cap.sum())
    return replace(pods, models=models)


def _multigpu(pods: PodList, factor: float, seed: int) -> PodList:
    """Repeat the multi-GPU pods so their share of the list grows by `factor`."""
    rng = np.random.default_rng(seed)
    multi = np.flatnonzero(pods.gpus > 1)
    extra = rng.choice(multi, size=int((factor - 1) * len(multi)), replace=True)
    idx = np.concatenate([np.arange(len(pods)), extra])
    return PodList(*(a[idx] for a in (pods.cpu, pods.mem, pods.gpus, pods.milli, pods.models)))


def variants(nodes: NodeList, pods: PodList, seeds: int) -> None:
    t0 = time.perf_counter()
    cases = [
        ("default list, seeds 52..", pods, 1.3, range(52, 52 + seeds)),
        ("default list, 110 % arrivals", pods, 1.1, range(42, 42 + seeds)),
        ("default list, 150 % arrivals", pods, 1.5, range(42, 42 + seeds)),
        ("random half of the list", _subsample(pods, 0.5, 7), 1.3, range(42, 42 + seeds)),
        ("a third of GPU pods bound to a model", _gpuspec(nodes, pods, 1 / 3, 7), 1.3,
         range(42, 42 + seeds)),
        ("twice the multi-GPU pods", _multigpu(pods, 2.0, 7), 1.3, range(42, 42 + seeds)),
    ]  # fmt: skip
    print(f"### FGD and ours on variants ({seeds} seeds each)\n")
    print("| variant | FGD | ours | ours - FGD | ours lower on |")
    print("|---|---|---|---|---|")
    for name, plist, ratio, rng in cases:
        fgd = np.array(_runs(nodes, plist, "fgd", rng, ratio))
        ours = np.array(_runs(nodes, plist, "lepton", rng, ratio))
        d = ours - fgd
        print(
            f"| {name} | {fgd.mean():.2f} ± {fgd.std():.2f} % | {ours.mean():.2f} ± "
            f"{ours.std():.2f} % | {d.mean():+.2f} ({100 * d.mean() / fgd.mean():+.1f} %) "
            f"| {int((d < 0).sum())} of {len(d)} |"
        )
    print(f"<!-- variants in {time.perf_counter() - t0:.0f} s -->\n")


def latency(nodes: NodeList, pods: PodList) -> None:
    print("### One placement decision at 1,213 nodes (seed 42, 10,782 pods)\n")
    print("| policy | median ms | run s |")
    print("|---|---|---|")
    for p in POLICIES:
        row = run_one(nodes, pods, p, 42, 1.3)
        print(f"| {p} | {row['decision_ms_p50']:.3f} | {row['seconds']:.1f} |")
    print()


def replay_table(
    nodes: NodeList, seeds: int, loads: list[float], fraction: float, only: list[str] | None = None
) -> None:
    t0 = time.perf_counter()
    trace = load_trace(PODS, nodes)
    runs = [(p, "fifo") for p in POLICIES] + [(p, "size") for p in ("bestfit", "fgd", "lepton")]
    runs += [(LookAhead.name, "fifo"), (LookAhead.name, "size")]
    if only:  # "placer:order" names, e.g. fgd:fifo
        runs = [r for r in runs if f"{r[0]}:{r[1]}" in only]
    keys = ("stranded_gpu_share", "idle_while_waiting_share", "wait_s_mean")
    for load in loads:
        res: dict[tuple[str, str], dict[str, list[float]]] = {}
        for seed in range(42, 42 + seeds):
            sample = sample_nodes(nodes, fraction, seed)
            for p, order in runs:
                row = replay(sample, trace, p, load=load, order=order, seed=seed)
                got = res.setdefault((p, order), {k: [] for k in keys})
                for k in keys:
                    got[k].append(float(row[k]))
        print(
            f"### Replay at offered load {load} ({len(trace):,} pods, {seeds} node samples of "
            f"{fraction:.0%}, seeds 42-{41 + seeds})\n"
        )
        print("| placer | round order | stranded GPU share | idle while a GPU pod waits "
              "| mean wait s | stranded per seed |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for (p, order), v in res.items():
            st, idle, wait = (np.array(v[k]) for k in keys)
            per = " ".join(f"{x:.2f}" for x in st)
            print(
                f"| {p} | {order} | {st.mean():.2f} ± {st.std():.2f} % | {idle.mean():.2f} ± "
                f"{idle.std():.2f} % | {wait.mean():.0f} | {per} |"
            )
        pairs = [
            (("lepton", "fifo"), ("fgd", "fifo")),
            ((LookAhead.name, "fifo"), ("lepton", "fifo")),
            (("lepton", "size"), ("lepton", "fifo")),
            ((LookAhead.name, "size"), ("lepton", "fifo")),
            (("fgd", "size"), ("fgd", "fifo")),
            (("bestfit", "size"), ("bestfit", "fifo")),
        ]
        print()
        for a, b in pairs:
            if a not in res or b not in res:
                continue
            d = np.array(res[a]["stranded_gpu_share"]) - np.array(res[b]["stranded_gpu_share"])
            w = np.array(res[a]["wait_s_mean"]) - np.array(res[b]["wait_s_mean"])
            print(
                f"- {a[0]} {a[1]} - {b[0]} {b[1]}: stranded {d.mean():+.3f} points, lower on "
                f"{int((d < 0).sum())} of {len(d)}; mean wait {w.mean():+.0f} s"
            )
        print()
    print(f"<!-- replay in {time.perf_counter() - t0:.0f} s -->\n")


def lookahead(nodes: NodeList, pods: PodList, seeds: int, round_size: int = 16) -> None:
    t0 = time.perf_counter()
    rng = range(42, 42 + seeds)
    fgd = np.array(_runs(nodes, pods, "fgd", rng, 1.3))
    one = np.array(_runs(nodes, pods, "lepton", rng, 1.3))
    rows = [fill_up_lookahead(nodes, pods, s, 1.3, round_size) for s in rng]
    ahead = np.array([r["unallocated_gpu_share"] for r in rows])
    ms = np.array([1000 * r["seconds"] / r["pods"] for r in rows])
    print(f"### Look-ahead over rounds of {round_size} arrivals, 130 % ({seeds} seeds, 42..)\n")
    print("| placement | unallocated GPU share | per seed |")
    print("|---|---|---|")
    for name, v in (("fgd", fgd), ("lepton, one at a time", one), ("lepton-lookahead", ahead)):
        per = " ".join(f"{x:.2f}" for x in v)
        print(f"| {name} | {v.mean():.2f} ± {v.std():.2f} % | {per} |")
    d1, d2 = ahead - one, ahead - fgd
    print(
        f"\nlook-ahead - one at a time: {d1.mean():+.3f} points, lower on {int((d1 < 0).sum())} "
        f"of {seeds}; look-ahead - FGD: {d2.mean():+.3f} points, lower on {int((d2 < 0).sum())} "
        f"of {seeds}; mean time per pod {ms.mean():.1f} ms"
    )
    print(f"<!-- lookahead in {time.perf_counter() - t0:.0f} s -->\n")


def _cli_rows(workload: str, placement: str, seeds: int) -> list[dict]:
    args = [sys.executable, "-m", "lepton_tui", "bench", "--workload", workload]
    if workload == "trace":
        args += ["--trace", str(PODS)]
    args += ["--policies", "sjf,backfill,tetris", "--load", "0.7,0.9,1.1", "--seeds", str(seeds)]
    args += ["--placement", placement, "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True).stdout
    return list(json.loads(out))


def scheduling(seeds: int) -> None:
    t0 = time.perf_counter()
    metrics = (
        ("avg_bounded_slowdown", "avg bounded slowdown", ".2f"),
        ("makespan", "makespan h", ".1f"),
        ("gpu_util_arrivals", "GPU util", ".3f"),
    )
    print(f"### Scheduling rows: best fit (before) and fragmentation (after), {seeds} seeds\n")
    print("| workload | load | policy | metric | before | after | change | 95 % interval "
          "| after lower on |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for workload in ("lab", "trace"):
        got = {pl: _cli_rows(workload, pl, seeds) for pl in ("bestfit", "fragmentation")}
        keys = sorted({(r["load"], r["policy"]) for r in got["bestfit"]})
        for load, policy in keys:
            sel = {
                pl: sorted(
                    (r for r in rows if (r["load"], r["policy"]) == (load, policy)),
                    key=lambda r: r["seed"],
                )
                for pl, rows in got.items()
            }
            for key, label, spec in metrics:
                scale = 3600.0 if key == "makespan" else 1.0
                b = np.array([r[key] for r in sel["bestfit"]]) / scale
                a = np.array([r[key] for r in sel["fragmentation"]]) / scale
                d = a - b
                half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
                rel = 100 * d.mean() / b.mean() if b.mean() else 0.0
                ci = 100 * half / b.mean() if b.mean() else 0.0
                print(
                    f"| {workload} | {load} | {policy} | {label} | {b.mean():{spec}} | "
                    f"{a.mean():{spec}} | {rel:+.1f} % | ± {ci:.1f} % | "
                    f"{int((d < 0).sum())} of {len(d)} |"
                )
    print(f"\n<!-- scheduling in {time.perf_counter() - t0:.0f} s -->\n")


def lastjob(seeds: int, policy: str) -> None:
    from scheduler.bench import make_workload
    from scheduler.registry import make_policy
    from scheduler.simulator import Simulator

    print(f"### {policy} on the trace at load 1.1: the last job and the waits, per seed\n")
    print("| seed | placement | makespan h | last job: GPUs, wait h, run h | wait h, 4+ GPUs "
          "| wait h, all |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for seed in range(seeds):
        wl = make_workload("trace", seed, load=1.1, trace=PODS)
        for pl in ("bestfit", "fragmentation"):
            r = Simulator(wl).run(make_policy(policy, placement=pl))
            last = max(r.finished, key=lambda j: j.end_s)
            big = [j.start_s - j.submit_s for j in r.finished if j.request.gpus >= 4]
            every = [j.start_s - j.submit_s for j in r.finished]
            print(
                f"| {seed} | {pl} | {last.end_s / 3600:.1f} | {last.request.gpus}, "
                f"{(last.start_s - last.submit_s) / 3600:.1f}, {last.runtime_s / 3600:.1f} | "
                f"{np.mean(big) / 3600 if big else 0:.1f} | {np.mean(every) / 3600:.2f} |"
            )
    print()


def product(
    seeds: int, loads: list[float], batches: list[float], first: int = 0, pols: str = "sjf,backfill"
) -> None:
    """The joint placement of GPU shares in the product's rounds, off and on."""
    from scheduler.bench import make_workload
    from scheduler.joint import JointPolicy
    from scheduler.metrics import compute_metrics
    from scheduler.registry import make_policy
    from scheduler.simulator import Simulator

    t0 = time.perf_counter()
    print("| batch s | load | policy | stranded off → on (points) | lower on | avg bounded slowdown "
          "off → on | GPU util off → on | rounds joint | stranded per seed (off/on) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for batch in batches:
        for load in loads:
            wls = []
            for seed in range(first, first + seeds):
                wl = make_workload("trace", seed, trace=PODS, load=load)
                if batch > 0:
                    wl.jobs = [
                        replace(j, submit_s=float(np.ceil(j.submit_s / batch) * batch))
                        for j in wl.jobs
                    ]
                wls.append(wl)
            for pol in pols.split(","):
                got: dict[bool, dict[str, list[float]]] = {}
                for on in (False, True):
                    v = got.setdefault(on, {"st": [], "bsld": [], "util": [], "rounds": []})
                    for wl in wls:
                        yard = [j.to_request() for j in wl.jobs]
                        jp = JointPolicy(make_policy(pol), on, yard)
                        m = compute_metrics(Simulator(wl).run(jp))
                        v["st"].append(jp.stranded_share)
                        v["bsld"].append(float(m["avg_bounded_slowdown"]))
                        v["util"].append(float(m["gpu_util"]))
                        v["rounds"].append(jp.joint.rounds)
                off, on_ = (np.array(got[False]["st"]), np.array(got[True]["st"]))
                d = on_ - off
                per = " ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(off, on_, strict=True))
                print(
                    f"| {batch:g} | {load} | {pol} | {off.mean():.2f} → {on_.mean():.2f} % "
                    f"({d.mean():+.2f} ± {d.std():.2f}) | {int((d < 0).sum())} of {len(d)} | "
                    f"{np.mean(got[False]['bsld']):.2f} → {np.mean(got[True]['bsld']):.2f} | "
                    f"{np.mean(got[False]['util']):.3f} → {np.mean(got[True]['util']):.3f} | "
                    f"{int(np.sum(got[True]['rounds']))} | {per} |"
                )
                b = np.array(got[True]["bsld"]) / np.array(got[False]["bsld"]) - 1
                print(
                    f"<!-- {pol} {load} {batch}: slowdown change per seed "
                    + " ".join(f"{x:+.1%}" for x in b)
                    + f"; mean {b.mean():+.1%} ± {1.96 * b.std() / np.sqrt(len(b)):.1%} -->"
                )
    print(f"<!-- product in {time.perf_counter() - t0:.0f} s -->\n")


def profile(nodes: NodeList, seeds: int, load: float, fraction: float, policies: list[str]) -> None:
    """Stranded capacity of the replay split by cause and over time, per placer and seed."""
    from scheduler.replay import PARTS, stranded_parts

    t0 = time.perf_counter()
    trace = load_trace(PODS, nodes)
    print(f"### Stranded capacity by cause, replay at load {load} (seeds 42-{41 + seeds})\n")
    print("| placer | seed | stranded % | " + " | ".join(PARTS) + " | over time (10 slices) |")
    print("|---|---|---|" + "---|" * len(PARTS) + "---|")
    for seed in range(42, 42 + seeds):
        sample = sample_nodes(nodes, fraction, seed)
        cap = float(sample.gpus.sum()) * 1000
        for p in policies:
            samples: list[tuple[float, dict[str, float]]] = []

            def seen(t: float, cluster, measure, samples=samples) -> None:  # noqa: ANN001
                samples.append((t, stranded_parts(cluster, measure)))

            row = replay(sample, trace, p, load=load, seed=seed, observe=seen)
            ts = np.array([t for t, _ in samples])
            end = float(trace.arrive[-1]) / float(row["speed"])  # the arrival window's end
            # time-weighted over the arrival window: each state holds until the next round
            span = np.clip(np.diff(np.append(ts, end)), 0.0, None)
            window = ts < end
            parts = {
                k: float((np.array([d[k] for _, d in samples]) * span)[window].sum())
                / max(float(span[window].sum()), 1e-9)
                / cap
                * 100
                for k in PARTS
            }
            tot = np.array([sum(d.values()) for _, d in samples]) / cap * 100
            edges = np.linspace(ts[0], end, 11)
            slices = [
                float(np.average(tot[m], weights=span[m] + 1e-12)) if m.any() else float("nan")
                for m in ((ts >= a) & (ts < b) for a, b in zip(edges[:-1], edges[1:], strict=True))
            ]
            print(
                f"| {p} | {seed} | {row['stranded_gpu_share']:.2f} | "
                + " | ".join(f"{parts[k]:.2f}" for k in PARTS)
                + " | "
                + " ".join(f"{x:.1f}" for x in slices)
                + " |"
            )
    print(f"<!-- profile in {time.perf_counter() - t0:.0f} s -->\n")


def dqnstrand(seeds: int, load: float) -> None:
    """Stranded GPU share after each round: the DQN beside the heuristics (trace workload)."""
    from scheduler.bench import make_workload
    from scheduler.joint import JointPolicy
    from scheduler.metrics import compute_metrics
    from scheduler.registry import make_policy
    from scheduler.simulator import Simulator

    t0 = time.perf_counter()
    runs = [("dqn", {}), ("sjf", {}), ("sjf", {"placement": "bestfit"}), ("fifo", {})]
    res: dict[str, tuple[list[float], list[float]]] = {}
    for seed in range(seeds):
        wl = make_workload("trace", seed, trace=PODS, load=load)
        yard = [j.to_request() for j in wl.jobs]
        for name, opts in runs:
            label = name + (f" ({opts['placement']})" if opts else "")
            jp = JointPolicy(make_policy(name, **opts), False, yard)
            m = compute_metrics(Simulator(wl).run(jp))
            got = res.setdefault(label, ([], []))
            got[0].append(jp.stranded_share)
            got[1].append(float(m["avg_bounded_slowdown"]))
    print(f"### Stranded GPU share after each round, trace workload, load {load} ({seeds} seeds)\n")
    print("| policy | stranded GPU share | per seed | avg bounded slowdown |")
    print("|---|---|---|---|")
    for label, (st, bs) in res.items():
        v = np.array(st)
        per = " ".join(f"{x:.2f}" for x in v)
        print(f"| {label} | {v.mean():.2f} ± {v.std():.2f} % | {per} | {np.mean(bs):.2f} |")
    print(f"<!-- dqnstrand in {time.perf_counter() - t0:.0f} s -->\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--section",
        default="all",
        choices=[
            "table",
            "variants",
            "latency",
            "replay",
            "lookahead",
            "scheduling",
            "lastjob",
            "product",
            "profile",
            "dqnstrand",
            "all",
        ],
    )
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--variant-seeds", type=int, default=5)
    ap.add_argument("--replay-seeds", type=int, default=5)
    ap.add_argument("--scheduling-seeds", type=int, default=10)
    ap.add_argument("--loads", default="1.0,1.3", help="replay: offered loads, comma list")
    ap.add_argument("--fraction", type=float, default=0.25, help="replay: share of the nodes")
    ap.add_argument("--replay-runs", default="", help="replay: placer:order list (default all)")
    ap.add_argument("--profile-load", type=float, default=1.3)
    ap.add_argument("--profile-policies", default="fgd,lepton", help="profile: placers")
    ap.add_argument("--product-seeds", type=int, default=5)
    ap.add_argument("--product-first-seed", type=int, default=0)
    ap.add_argument("--product-loads", default="0.9,1.1", help="product: loads, comma list")
    ap.add_argument("--batch-s", default="2,60", help="product: arrival batches (s), comma list")
    args = ap.parse_args()
    nodes = load_nodes(NODES)
    pods = load_pods(PODS, nodes)
    if args.section in ("table", "all"):
        table(nodes, pods, args.seeds)
    if args.section in ("variants", "all"):
        variants(nodes, pods, args.variant_seeds)
    if args.section in ("latency", "all"):
        latency(nodes, pods)
    if args.section in ("replay", "all"):
        loads = [float(x) for x in args.loads.split(",") if x.strip()]
        only = [r for r in args.replay_runs.split(",") if r.strip()]
        replay_table(nodes, args.replay_seeds, loads, args.fraction, only)
    if args.section in ("lookahead", "all"):
        lookahead(nodes, pods, args.seeds)
    if args.section in ("scheduling", "all"):
        scheduling(args.scheduling_seeds)
    if args.section in ("lastjob", "all"):
        lastjob(args.scheduling_seeds, "sjf")
    if args.section in ("profile", "all"):
        pols = [p for p in args.profile_policies.split(",") if p.strip()]
        profile(nodes, args.replay_seeds, args.profile_load, args.fraction, pols)
    if args.section in ("dqnstrand", "all"):
        dqnstrand(args.product_seeds, 0.9)
    if args.section in ("product", "all"):
        product(
            args.product_seeds,
            [float(x) for x in args.product_loads.split(",") if x.strip()],
            [float(x) for x in args.batch_s.split(",") if x.strip()],
            args.product_first_seed,
        )


if __name__ == "__main__":
    main()
