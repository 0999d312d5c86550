"""Training `dqn-select` (see `scheduler/dqn_select_core.py`) by imitation of a per-workload
oracle selector, with DAgger.

    PYTHONPATH=$PWD python3 -m scheduler.dqn_select train --workloads 150 --jobs 300 \
        --iterations 3 --out scheduler/weights/dqn_select.npz

For each training workload (families in turn, loads 0.6-1.2, seeds from 20,000:
`dqn_order_train.training_workload`; disjoint from the held-out seeds 0-2 and the validation
seeds 900-902) every rule of `RULES` runs alone to the end once; the best on that workload is its
*oracle rule*. Iteration 0 follows the oracle rule and labels each decision with the candidate it
proposes; later iterations follow the network (DAgger) and label the states it visits the same
way. A candidate's value is the best episode score among the rules that propose it, and a label's
weight grows with how much the label's value beats the next candidate's (a decision where the
rules' episodes score alike teaches little). The network (inputs-hidden-hidden-1) learns
cross-entropy of the label among the decision's candidates on all labels so far. Validation runs
the network alone on seeds 900-902 (400 jobs, every family at 0.7/0.9/1.1) against the best rule
there; the iteration with the best score is written. One torch thread; deterministic for a seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from scheduler.agent import to_numpy_layers
from scheduler.dqn_order_train import (
    FAMILIES,
    TRACE,
    command_line,
    training_workload,
    validation_set,
)
from scheduler.dqn_rollout_core import at_least
from scheduler.dqn_select_core import (
    NUM_FEATURES,
    RULES,
    Candidates,
    SelectPolicy,
    Smoothed,
    make_rule,
    save_select,
)
from scheduler.environment import run_policy, summarize
from scheduler.mlp import ReluMLP
from scheduler.model import Workload


@dataclasses.dataclass
class Label:
    x: np.ndarray
    label: int
    weight: float


def rule_scores(wl: Workload) -> np.ndarray:
    """Every rule of `RULES` alone on `wl`: average bounded slowdown."""
    return np.array([summarize(run_policy(make_rule(r), wl)).avg_bsld for r in RULES])


def prefer_base(scores: np.ndarray, tol: float) -> np.ndarray:
    """`scores` with the base's counted best where it is within `tol` (a factor) of the best: on
    a near tie the label stays with one rule, so the network switches only where another rule
    is clearly better."""
    out = scores.copy()
    if out[0] <= tol * float(np.min(out)):
        out[0] = float(np.min(out)) * (1 - 1e-6)
    return out


def label_of(c: Candidates, scores: np.ndarray, sharp: float) -> Label | None:
    """The candidate of the best rule, weighted by its margin over the next candidate."""
    if len(c) < 2:
        return None
    worst = float(np.max(scores)) * 2.0  # waiting that no rule proposes
    v = np.array([min((scores[r] for r in rs), default=worst) for rs in c.rules])
    order = np.argsort(v, kind="stable")
    best, second = int(order[0]), float(v[order[1]])
    w = float(np.clip(sharp * np.log(max(second, 1e-9) / max(v[best], 1e-9)), 0.02, 1.0))
    return Label(c.x.copy(), best, w)


def episode(
    wl: Workload, scores: np.ndarray, net: ReluMLP | None, sharp: float, smooth: float
) -> tuple:
    """Run `wl` with the network (None: the oracle rule) choosing as at run time (`Smoothed`);
    the labels of its decisions and the episode's average bounded slowdown."""
    oracle = int(np.argmin(scores))
    labels: list[Label] = []
    act = Smoothed(net, smooth) if net is not None else None

    def choose(c: Candidates) -> int:
        lab = label_of(c, scores, sharp)
        if lab is not None:
            labels.append(lab)
        return c.of_rule(oracle) if act is None else act(c)

    pol = SelectPolicy.with_chooser(choose)
    return labels, summarize(run_policy(pol, wl)).avg_bsld


def fit(net: nn.Sequential, data: list[Label], *, epochs: int, batch: int, lr: float,
        rng: np.random.Generator) -> float:  # fmt: skip
    """Cross-entropy of each label among its decision's candidates; the last epoch's mean loss."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_sum = 0.0
    for _ in range(epochs):
        order = rng.permutation(len(data))
        loss_sum, seen = 0.0, 0
        for s in range(0, len(order), batch):
            items = [data[int(i)] for i in order[s : s + batch]]
            n = max(len(it.x) for it in items)
            x = np.zeros((len(items), n, NUM_FEATURES), np.float32)
            m = np.zeros((len(items), n), bool)
            for b, it in enumerate(items):
                x[b, : len(it.x)] = it.x
                m[b, : len(it.x)] = True
            y = torch.as_tensor([it.label for it in items])
            w = torch.as_tensor([it.weight for it in items], dtype=torch.float32)
            q = net(torch.as_tensor(x)).squeeze(-1).masked_fill(~torch.as_tensor(m), -1e9)
            loss = (nn.functional.cross_entropy(q, y, reduction="none") * w).sum() / w.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(items)
            seen += len(items)
        loss_sum /= max(seen, 1)
    return loss_sum


def validate(
    net: ReluMLP, val: list[Workload], val_scores: list[np.ndarray], smooth: float
) -> dict:
    """The network alone over the best rule and over the best heuristic (every rule but the base)
    on each validation workload; `score` (lower is better) is the mean ratio to the best heuristic
    plus twice every excess over 1.05."""
    got = [summarize(run_policy(SelectPolicy.with_chooser(Smoothed(net, smooth)), wl)).avg_bsld
           for wl in val]  # fmt: skip
    heur = [float(np.min(s[1:])) for s in val_scores]
    ratios = np.array([g / h for g, h in zip(got, heur, strict=True)])
    fam = {
        f: [round(float(r), 3) for r in ratios[3 * k : 3 * k + 3]] for k, f in enumerate(FAMILIES)
    }
    score = float(np.mean(ratios) + 2 * np.sum(np.maximum(ratios - 1.05, 0)))
    return {"smooth": smooth, "score": round(score, 4), "mean": round(float(np.mean(ratios)), 4),
            "max": round(float(np.max(ratios)), 4), "families": fam}  # fmt: skip


def _read_cache(path: Path | None, key: tuple) -> tuple | None:
    if path is None or not path.exists():
        return None
    try:
        got = pickle.loads(path.read_bytes())
    except (pickle.UnpicklingError, EOFError, ValueError):
        return None
    return (got[1], got[2]) if got[0] == key else None


def main(argv: Sequence[str] | None = None) -> None:  # noqa: PLR0915
    ap = argparse.ArgumentParser(prog="python -m scheduler.dqn_select train")
    ap.add_argument("--workloads", type=at_least(1), default=150, help="training workloads")
    ap.add_argument("--jobs", type=at_least(2), default=300)
    ap.add_argument("--val-jobs", type=at_least(2), default=400)
    ap.add_argument("--iterations", type=at_least(1), default=3, help="DAgger iterations")
    ap.add_argument("--hidden", type=at_least(1), default=64)
    ap.add_argument("--sharp", type=at_least(0, float), default=10.0,
                    help="label weight per log ratio of the next candidate's score")  # fmt: skip
    ap.add_argument("--smooth", default="1.0,0.05",
                    help="running-score shares to validate (`Smoothed`; the first also acts)")  # fmt: skip
    ap.add_argument("--base-tol", type=at_least(1.0, float), default=1.05,
                    help="a workload's oracle is the base where it is within this factor of the best")  # fmt: skip
    ap.add_argument("--scores-cache", type=Path, default=None,
                    help="a pickle of the rules' scores on the training and validation workloads, "
                    "read if it matches, else written")  # fmt: skip
    ap.add_argument("--epochs", type=at_least(1), default=15)
    ap.add_argument("--batch", type=at_least(1), default=128)
    ap.add_argument("--lr", type=at_least(1e-9, float), default=1e-3)
    ap.add_argument("--no-validate", action="store_true", help="skip validation (tests)")
    ap.add_argument("--seed", type=at_least(0), default=1)
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--out", type=Path, default=Path("dqn_select.npz"))
    args = ap.parse_args(argv)
    if args.out.suffix != ".npz":
        ap.exit(2, f"{ap.prog}: error: --out must end in .npz (got {args.out})\n")
    try:
        smooths = [float(v) for v in args.smooth.split(",")]
    except ValueError:
        smooths = []
    if not smooths or not all(0.0 < v <= 1.0 for v in smooths):
        ap.exit(2, f"{ap.prog}: error: --smooth takes numbers in (0, 1] (got {args.smooth!r})\n")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.process_time()

    wls = [training_workload(i, args.jobs, args.trace) for i in range(args.workloads)]
    val = validation_set(args.val_jobs, args.trace) if not args.no_validate else []
    key = (list(RULES), args.workloads, args.jobs, args.val_jobs, len(val), str(args.trace))
    cached = _read_cache(args.scores_cache, key)
    if cached is None:
        raw = [rule_scores(wl) for wl in wls]
        val_scores = [rule_scores(wl) for wl in val]
        if args.scores_cache is not None:
            args.scores_cache.write_bytes(pickle.dumps((key, raw, val_scores)))
    else:
        raw, val_scores = cached
    scores = [prefer_base(s, args.base_tol) for s in raw]
    wins = np.bincount([int(np.argmin(s)) for s in scores], minlength=len(RULES))
    oracle_wins = {r: int(n) for r, n in zip(RULES, wins, strict=True)}
    print(f"oracle rules: {oracle_wins}, {time.process_time() - t0:.0f} CPU s", flush=True)

    net = nn.Sequential(
        nn.Linear(NUM_FEATURES, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.hidden),
        nn.ReLU(), nn.Linear(args.hidden, 1),
    )  # fmt: skip
    data: list[Label] = []
    history: list[dict] = []
    best: dict = {"score": float("inf")}
    cur: ReluMLP | None = None
    for it in range(args.iterations + 1):
        if it:
            loss = fit(net, data, epochs=args.epochs, batch=args.batch, lr=args.lr, rng=rng)
            cur = ReluMLP(to_numpy_layers(net))
            for sm in smooths if val else smooths[:1]:
                ev: dict = {"iteration": it, "labels": len(data), "loss": round(loss, 4)}
                ev.update(validate(cur, val, val_scores, sm) if val else {"smooth": sm})
                ev["cpu_s"] = round(time.process_time() - t0)
                history.append(ev)
                print(json.dumps(ev), flush=True)
                if not val or ev["score"] < best["score"]:
                    best = {**ev, "layers": to_numpy_layers(net)}
            if it == args.iterations:
                break
        # label the states the policy of this iteration visits (iteration 0: the oracle's)
        ratios = []
        for wl, s in zip(wls, scores, strict=True):
            labels, got = episode(wl, s, cur, args.sharp, smooths[0])
            data.extend(labels)
            ratios.append(got / float(np.min(s)))
        print(f"iteration {it}: {len(data)} labels, acting policy / oracle rule "
              f"{np.mean(ratios):.3f} (max {np.max(ratios):.2f}), "
              f"{time.process_time() - t0:.0f} CPU s", flush=True)  # fmt: skip

    meta = {
        "command": command_line("scheduler.dqn_select train", args, skip=("no_validate",)),
        "seed": args.seed,
        "data": f"{args.workloads} workloads ({', '.join(FAMILIES)} in turn, {args.jobs} jobs, "
        f"loads 0.6-1.2, seeds from 20,000); validation seeds 900-902, {args.val_jobs} jobs, "
        "loads 0.7/0.9/1.1",
        "oracle_wins": oracle_wins,
        "smooth": best["smooth"],
        "validation": {k: v for k, v in best.items() if k != "layers"},
        "history": history,
        "cpu_s": round(time.process_time() - t0),
    }
    save_select(args.out, best["layers"], meta)
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out}: iteration {best['iteration']}, {meta['cpu_s']} CPU s", flush=True)
