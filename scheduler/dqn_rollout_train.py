"""Training `dqn-self` by rollout policy improvement (see `scheduler/dqn_rollout_core.py`).

    PYTHONPATH=$PWD python3 -m scheduler.dqn_rollout train --workloads 20 --jobs 300 \
        --iterations 3 --out scheduler/weights/dqn_self.npz

Iteration 0 visits the base policy's states, later ones the current network's (DAgger); every
`--every`-th step of an episode is labelled by rollouts of the base policy (to the episode's end
unless `--horizon` steps). The network starts from the shipped `dqn.npz` (which imitates the
base) and after each iteration is trained on every label so far: cross-entropy of the label among
the step's legal candidates. Validation (seeds 900-902, 400 jobs, every family at loads 0.7, 0.9,
1.1, `dqn_order_train.validation_set`) runs the network alone after each iteration; the
checkpoint with the best mean ratio to the base policy's average bounded slowdown is written.
Deterministic for a seed (one torch thread; workloads and sampled steps from the seed).
"""

from __future__ import annotations

import argparse
import json
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
from scheduler.dqn_rollout_core import (
    BASE_WEIGHTS,
    Labelled,
    SelfDQNPolicy,
    at_least,
    base_action,
    collect,
    greedy,
    no_aging,
)
from scheduler.environment import run_policy, summarize
from scheduler.features import feature_columns
from scheduler.model import Workload
from scheduler.policy import DQNPolicy, QNetwork, load_weights, save_weights


def make_net(layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> nn.Sequential:
    """A torch MLP with the shape and values of numpy `layers` (W as in x @ W + b)."""
    mods: list[nn.Module] = []
    for k, (w, b) in enumerate(layers):
        lin = nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(np.asarray(w, np.float32).T))
            lin.bias.copy_(torch.as_tensor(np.asarray(b, np.float32)))
        mods.append(lin)
        if k < len(layers) - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def fresh_layers(hidden: int, seed: int, inputs: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random layers inputs-hidden-hidden-1 (when not starting from the shipped ones)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, 1),
    )  # fmt: skip
    return to_numpy_layers(net)


def fit(
    net: nn.Sequential,
    data: list[Labelled],
    cols: np.ndarray,
    *,
    epochs: int,
    batch: int,
    lr: float,
    rng: np.random.Generator,
) -> float:
    """Train `net` to score each step's label first among its legal rows (`cols`: the columns of
    the candidate rows it reads); the last epoch's mean loss."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_sum = 0.0
    for _ in range(epochs):
        order = rng.permutation(len(data))
        loss_sum, seen = 0.0, 0
        for s in range(0, len(order), batch):
            items = [data[int(i)] for i in order[s : s + batch]]
            n = max(len(it.x) for it in items)
            x = np.zeros((len(items), n, len(cols)), np.float32)
            m = np.zeros((len(items), n), bool)
            for b, it in enumerate(items):
                x[b, : len(it.x)] = it.x[:, cols]
                m[b, : len(it.mask)] = it.mask
            y = torch.as_tensor([it.label for it in items])
            w = torch.as_tensor([it.weight for it in items], dtype=torch.float32)
            q = net(torch.as_tensor(x)).squeeze(-1)
            q = q.masked_fill(~torch.as_tensor(m), -1e9)
            loss = (nn.functional.cross_entropy(q, y, reduction="none") * w).sum() / w.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(items)
            seen += len(items)
        loss_sum /= max(seen, 1)
    return loss_sum


def bsld_alone(net: QNetwork, wl: Workload) -> float:
    """The network deciding alone (`dqn-self` at run time) on `wl`."""
    return summarize(run_policy(SelfDQNPolicy.from_network(net, no_aging()), wl)).avg_bsld


def validate(net: QNetwork, val: list[Workload], base: list[float]) -> dict:
    got = [bsld_alone(net, wl) for wl in val]
    ratios = [g / b for g, b in zip(got, base, strict=True)]
    fam = {f: round(float(np.mean(ratios[3 * k : 3 * k + 3])), 3) for k, f in enumerate(FAMILIES)}
    return {"ratio": float(np.mean(ratios)), "max": float(np.max(ratios)), "families": fam}


def main(argv: Sequence[str] | None = None) -> None:  # noqa: PLR0915
    ap = argparse.ArgumentParser(prog="python -m scheduler.dqn_rollout train")
    ap.add_argument(
        "--workloads", type=at_least(1), default=20, help="training workloads per iteration"
    )
    ap.add_argument("--jobs", type=at_least(1), default=300)
    ap.add_argument("--val-jobs", type=at_least(1), default=400)
    ap.add_argument("--iterations", type=at_least(1), default=3)
    ap.add_argument("--every", type=at_least(1), default=30, help="label every this many steps")
    ap.add_argument("--top", type=at_least(1), default=3, help="the network's best picks tried")
    ap.add_argument("--horizon", type=at_least(0), default=0, help="rollout steps (0: to the end)")
    ap.add_argument("--min-gain", type=at_least(0, float), default=0.01,
                    help="a rollout label must beat the base's pick by this share")  # fmt: skip
    ap.add_argument("--rollout-weight", type=at_least(0, float), default=4.0,
                    help="weight of a label that beats the base's pick")  # fmt: skip
    ap.add_argument("--base-every", type=at_least(1), default=3,
                    help="label every this many other steps by the base's pick (0: none)")  # fmt: skip
    ap.add_argument("--epochs", type=at_least(1), default=10)
    ap.add_argument("--batch", type=at_least(1), default=64)
    ap.add_argument("--lr", type=at_least(1e-9, float), default=1e-3)
    ap.add_argument("--fresh", type=at_least(0), default=0, help="hidden width of a fresh network "
                    "(0: start from the shipped dqn.npz)")  # fmt: skip
    ap.add_argument("--no-validate", action="store_true", help="skip validation (tests)")
    ap.add_argument("--seed", type=at_least(0), default=1)
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--out", type=Path, default=Path("dqn_self.npz"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.process_time()
    config = no_aging()

    shipped, _, _ = load_weights(BASE_WEIGHTS)
    # the network reads the shipped one's columns (feature version 4), whatever the round builds
    features = shipped.features
    cols = feature_columns(features)
    base = base_action(shipped)
    layers = (
        shipped.layers if not args.fresh else fresh_layers(args.fresh, args.seed, len(features))
    )
    net = make_net(layers)

    val = validation_set(args.val_jobs, args.trace) if not args.no_validate else []
    base_val = [summarize(run_policy(DQNPolicy.from_network(shipped, config, 1000.0), wl)).avg_bsld
                for wl in val]  # fmt: skip
    print(f"validation: base {np.round(base_val, 3).tolist()}, "
          f"{time.process_time() - t0:.0f} CPU s", flush=True)  # fmt: skip

    history: list[dict] = []
    best: dict = {"ratio": float("inf")}
    data: list[Labelled] = []
    for it in range(args.iterations + 1):
        if it:
            # train on every label so far
            loss = fit(net, data, cols, epochs=args.epochs, batch=args.batch, lr=args.lr, rng=rng)
        cur = QNetwork(to_numpy_layers(net), features)
        ev: dict = {"iteration": it, "labels": len(data)}
        if it:
            ev["loss"] = round(loss, 4)
        if val:
            ev.update(validate(cur, val, base_val))
        ev["cpu_s"] = round(time.process_time() - t0)
        history.append(ev)
        print(json.dumps(ev), flush=True)
        if it and (not val or ev["ratio"] < best["ratio"]):
            best = {**ev, "layers": to_numpy_layers(net)}
        if it == args.iterations:
            break
        # label the states the policy of this iteration visits (iteration 0: the base's)
        act = base if it == 0 else greedy(cur)
        improved, n_new, gains = 0, 0, []
        for i in range(args.workloads):
            wl = training_workload(it * args.workloads + i, args.jobs, args.trace)
            labels, b = collect(wl, act, base, cur.scores, every=args.every,
                                offset=int(rng.integers(args.every)), top=args.top,
                                horizon=args.horizon, min_gain=args.min_gain,
                                rollout_weight=args.rollout_weight, base_every=args.base_every,
                                config=config)  # fmt: skip
            data.extend(labels)
            n_new += len(labels)
            improved += sum(lab.improved for lab in labels)
            gains.append(b)
        ev_act = float(np.mean(gains))
        print(f"iteration {it}: {n_new} labels, {improved} not the base's pick, acting policy "
              f"avg bsld {ev_act:.3f}, "
              f"{time.process_time() - t0:.0f} CPU s", flush=True)  # fmt: skip

    meta = {
        "command": command_line("scheduler.dqn_rollout train", args, skip=("no_validate",)),
        "seed": args.seed,
        "data": f"{args.workloads} workloads per iteration ({', '.join(FAMILIES)} in turn, "
        f"{args.jobs} jobs, loads 0.6-1.2, seeds from 20,000); validation seeds 900-902, "
        f"{args.val_jobs} jobs, loads 0.7/0.9/1.1",
        "teacher_bonus": 0.0,
        "base": "shipped dqn.npz with its teacher bonus (1000), aging off",
        "validation": {k: v for k, v in best.items() if k != "layers"},
        "history": history,
        "cpu_s": round(time.process_time() - t0),
    }
    save_weights(args.out, best["layers"], config, meta, features=features)
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out}: iteration {best['iteration']}, ratio to base "
          f"{best.get('ratio', float('nan')):.3f}, {meta['cpu_s']} CPU s", flush=True)  # fmt: skip
