"""Two DQN weights side by side: the workload families, fair share per user, stranded GPUs, and
whether the network uses the fair-share and fragmentation columns.

    python bench/dqn_features.py [--section families|fairshare|strand|ablation|latency|all]
        [--old tests/scheduler/data/dqn_v4.npz] [--new scheduler/weights/dqn.npz] [--seeds 3]

* families: the DQN alone with each weights file on every workload family of
  `bench/scheduler.py --section families` (deeprm, lab, lab-long, hpc, trace at loads 0.7, 0.9,
  1.1; the same `run_bench` workloads), average bounded slowdown, mean ± std over seeds, and the
  new file's change per seed;
* fairshare: `bench --fair-share`'s rules (`SharedLabPolicy`, default shares) around each,
  the lab workload (1,000 jobs, 4 nodes, seeds 0 and 1): each user's mean wait, best, median
  and worst user (as `bench/sharing.py` prints for backfill);
* strand: the stranded GPU share after each round (`bench/fragmentation.py --section
  dqnstrand`'s measure: trace workload, load 0.9);
* latency: `bench/dqn.py`'s synthetic rounds (64 nodes, 200 pending), CPU ms, each file twice;
* ablation: the new weights beside the same weights with a column set to its "off" value
  (`fair_share` 1.0, `frag_growth`/`frag_node` 0), on the same rounds: the share of rounds whose
  placements differ, with the shipped teacher bonus and with the network alone (bonus 0).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scheduler.bench import make_workload, run_bench  # noqa: E402
from scheduler.fairshare import ShareConfig, SharedLabPolicy  # noqa: E402
from scheduler.features import FAIR_SHARE, FRAG_GROWTH, FRAG_NODE  # noqa: E402
from scheduler.policy import DQNPolicy, QNetwork  # noqa: E402
from scheduler.simulator import Simulator  # noqa: E402

TRACE = ROOT.parent / "shared" / "traces" / "alibaba2023_openb_pod_list_default.csv"
OLD = ROOT / "tests" / "scheduler" / "data" / "dqn_v4.npz"
NEW = ROOT / "scheduler" / "weights" / "dqn.npz"


def families(old: Path, new: Path, seeds: int) -> None:
    print(f"### DQN weights on every workload family ({seeds} seeds, avg bounded slowdown)\n")
    print("| family | load | old | new | new - old per seed |")
    print("|---|---|---|---|---|")
    for kind in ("deeprm", "lab", "lab-long", "hpc", "trace"):
        opts = {"trace": TRACE} if kind == "trace" else {}
        t0 = time.process_time()
        for load in (0.7, 0.9, 1.1):
            got = {}
            for label, path in (("old", old), ("new", new)):
                rows = run_bench(
                    kind, ["dqn"], seeds, policy_options={"dqn": {"weights": path}}, load=load,
                    **opts,
                )  # fmt: skip
                got[label] = np.array([r["avg_bounded_slowdown"] for r in rows])
            o, n = got["old"], got["new"]
            diff = " ".join(f"{d:+.2f}" for d in n - o)
            print(
                f"| {kind} | {load} | {o.mean():.2f} ± {o.std():.2f} | "
                f"{n.mean():.2f} ± {n.std():.2f} | {diff} |"
            )
        print(f"<!-- {kind}: {time.process_time() - t0:.0f} CPU s -->", flush=True)
    print()


def fairshare(old: Path, new: Path) -> None:
    print("### Fair share around the DQN: lab workload, 1,000 jobs, 4 nodes, mean wait per user\n")
    print("| seed | weights | finished | best | median | worst |")
    print("|---|---|---|---|---|---|")
    for seed in (0, 1):
        wl = make_workload("lab", seed, jobs=1000, nodes=4)
        users = {j.id: j.user for j in wl.jobs}
        for label, path in (("old", old), ("new", new)):
            result = Simulator(wl).run(SharedLabPolicy(DQNPolicy(path), ShareConfig()))
            waits: dict[str, list[float]] = {}
            for r in result.finished:
                waits.setdefault(users[r.id], []).append(r.start_s - r.submit_s)
            per_user = sorted(statistics.mean(w) for w in waits.values())
            print(
                f"| {seed} | {label} | {len(result.finished)} | {per_user[0]:.0f} s | "
                f"{statistics.median(per_user):.0f} s | {per_user[-1]:.0f} s |",
                flush=True,
            )
    print()


def strand(old: Path, new: Path, seeds: int) -> None:
    from scheduler.joint import JointPolicy
    from scheduler.metrics import compute_metrics

    print(f"### Stranded GPU share after each round, trace workload, load 0.9 ({seeds} seeds)\n")
    print("| weights | stranded GPU share | per seed | avg bounded slowdown |")
    print("|---|---|---|---|")
    res: dict[str, tuple[list[float], list[float]]] = {}
    for seed in range(seeds):
        wl = make_workload("trace", seed, trace=TRACE, load=0.9)
        yard = [j.to_request() for j in wl.jobs]
        for label, path in (("old", old), ("new", new)):
            jp = JointPolicy(DQNPolicy(path), False, yard)
            m = compute_metrics(Simulator(wl).run(jp))
            got = res.setdefault(label, ([], []))
            got[0].append(jp.stranded_share)
            got[1].append(float(m["avg_bounded_slowdown"]))
    for label, (st, bs) in res.items():
        v = np.array(st)
        per = " ".join(f"{x:.2f}" for x in v)
        print(f"| {label} | {v.mean():.2f} ± {v.std():.2f} % | {per} | {np.mean(bs):.2f} |")
    print()


class _Off(QNetwork):
    """The same network with some columns set to their "off" value before scoring."""

    def __init__(self, net: QNetwork, off: dict[int, float]) -> None:
        super().__init__(net.layers, net.features)
        self.off = off

    def scores(self, x: np.ndarray) -> np.ndarray:
        x = np.array(x, copy=True)
        for col, value in self.off.items():
            x[:-1, col] = value
        return super().scores(x)


class _Both:
    """Decides with `main`, asks `other` the same rounds, counts rounds that differ."""

    name = "dqn"
    sees_fair_share = True

    def __init__(self, main: DQNPolicy, other: DQNPolicy) -> None:
        self.main, self.other = main, other
        self.rounds = self.differ = 0

    def decide(self, view, pending, now, fair_share=None):
        got = self.main.decide(view, pending, now, fair_share=fair_share)
        alt = self.other.decide(view, pending, now, fair_share=fair_share)
        self.rounds += 1
        self.differ += got != alt
        return got

    def explain(self, job_id):
        return self.main.explain(job_id)


def ablation(new: Path) -> None:
    print("### Does the network use the new columns? (rounds whose placements change)\n")
    print("| workload | column set off | bonus | rounds | rounds that differ |")
    print("|---|---|---|---|---|")
    base = DQNPolicy(new)
    assert base.net is not None
    cases = [
        ("lab 1000 jobs, 4 nodes, fair share, seed 0", "lab", {"jobs": 1000, "nodes": 4}, True),
        ("trace 2000 tasks, load 0.9, seed 0", "trace", {"trace": TRACE, "load": 0.9}, False),
    ]
    for title, kind, opts, fair in cases:
        wl = make_workload(kind, 0, **opts)
        for cols, off in (
            ("fair_share", {FAIR_SHARE: 1.0}),
            ("frag_growth, frag_node", {FRAG_GROWTH: 0.0, FRAG_NODE: 0.0}),
        ):
            if cols == "fair_share" and not fair:
                continue
            for bonus in sorted({base.teacher_bonus, 0.0}, reverse=True):
                main = DQNPolicy.from_network(base.net, base.config, bonus)
                other = DQNPolicy.from_network(_Off(base.net, off), base.config, bonus)
                both = _Both(main, other)
                policy = SharedLabPolicy(both, ShareConfig()) if fair else both
                Simulator(wl).run(policy)
                print(
                    f"| {title} | {cols} | {bonus:g} | {both.rounds} | {both.differ} "
                    f"({both.differ / max(1, both.rounds):.1%}) |",
                    flush=True,
                )
    print()


def latency(old: Path, new: Path, rounds: int) -> None:
    """`bench/dqn.py`'s synthetic rounds (64 nodes, 200 pending) with each weights file."""
    import scheduler.policy as policy_module

    sys.path.insert(0, str(ROOT / "bench"))
    from dqn import decision_latency  # type: ignore[import-not-found]

    print(f"### One DQN round, 64 nodes x 200 pending ({rounds} rounds, thread CPU ms)\n")
    print("| cluster before the round | weights | placed per round | median | p95 |")
    print("|---|---|---|---|---|")
    for fill, what in ((30, "nearly full"), (6, "about half busy")):
        for label, path in (("old", old), ("new", new), ("old", old), ("new", new)):
            policy_module.DEFAULT_WEIGHTS = path  # what `decision_latency`'s DQNPolicy() loads
            r = decision_latency(fill=fill, rounds=rounds)
            print(
                f"| {what} | {label} | {r['placed_per_round']:.0f} | "
                f"{r['median_cpu_ms']:.1f} | {r['p95_cpu_ms']:.1f} |",
                flush=True,
            )
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--section",
        default="all",
        choices=["all", "families", "fairshare", "strand", "ablation", "latency"],
    )
    ap.add_argument("--old", type=Path, default=OLD)
    ap.add_argument("--new", type=Path, default=NEW)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.section in ("all", "families"):
        families(args.old, args.new, args.seeds)
    if args.section in ("all", "fairshare"):
        fairshare(args.old, args.new)
    if args.section in ("all", "strand"):
        strand(args.old, args.new, args.seeds)
    if args.section in ("all", "ablation"):
        ablation(args.new)
    if args.section in ("all", "latency"):
        latency(args.old, args.new, 100)
    print(f"<!-- {args.section} in {time.perf_counter() - t0:.0f} s wall -->")


if __name__ == "__main__":
    main()
