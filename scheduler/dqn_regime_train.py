"""Training `dqn-regime` (see `scheduler/dqn_regime_core.py`): rollout labels at the decisions
where the long-job limit matters.

    PYTHONPATH=$PWD python3 -m scheduler.dqn_regime train --workloads 20 --jobs 1000 \
        --out scheduler/weights/dqn_regime.npz

Each training workload (`dqn_order_train.training_workload`: the five families in turn, loads
0.6-1.2, seeds from 20,000; the held-out seeds are 0-2) runs once per iteration. The episode
follows the rule the last comparison chose (iteration 0) or the network (later iterations,
DAgger). At the first state after every `--every` steps where the picks of the three rules (the
base: SJF within 40 %; SJF within `ALT_SHARE`; the dense order) are not all the same, the rest of
the episode runs under each rule in a copy of the environment (`compare`, with
`dqn_rollout_core.rollout_values`); another rule than the base is chosen only if it beats the
base by more than `--margin` of the slowdown still to accrue (a conservative preference for the
base, whose gains on hpc and the traces a few deviations would undo). Every state where the rules
differ is labelled with the chosen rule's pick, every fourth other one with the common pick. The
network (started from `dqn_self.npz`, zero weights on the new inputs, so it starts as the base)
learns the label among the step's rows (cross-entropy, `dqn_rollout_train.fit`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scheduler.agent import to_numpy_layers
from scheduler.dqn_order_train import TRACE, command_line, training_workload
from scheduler.dqn_regime_core import (
    INPUTS,
    Regime,
    RegimeNet,
    alt_action,
    augment,
    base_chooser,
    dense_action,
    save_regime,
)
from scheduler.dqn_rollout_core import (
    BASE_WEIGHTS,
    Chooser,
    Labelled,
    at_least,
    no_aging,
    rollout_values,
)
from scheduler.dqn_rollout_core import (
    WEIGHTS as SELF_WEIGHTS,
)
from scheduler.dqn_rollout_train import fit, make_net
from scheduler.environment import SchedulingEnv
from scheduler.mlp import read_npz
from scheduler.model import Workload
from scheduler.policy import load_weights


def start_layers() -> list[tuple[np.ndarray, np.ndarray]]:
    """`dqn_self.npz`'s layers (which reproduce the base alone) with zero weights on the inputs
    it lacks: the network starts as the base."""
    layers, _ = read_npz(SELF_WEIGHTS)
    w0, b0 = layers[0]
    wide = np.zeros((len(INPUTS), w0.shape[1]), np.float32)
    wide[: w0.shape[0]] = w0
    return [(wide, b0), *layers[1:]]


def cluster_capacity(wl: Workload) -> tuple[float, bool]:
    gpus = float(sum(n.capacity.gpus for n in wl.nodes))
    return (gpus or float(sum(n.capacity.cpus for n in wl.nodes))), gpus > 0


def compare(
    env: SchedulingEnv, picks: list[int], rules: Sequence[Chooser], margin: float
) -> tuple[int, float]:
    """The rule to follow from here: each rule's pick now, then that rule to the end of the
    episode (rules with the same pick share a rollout); another rule than the base (0) only if
    it beats the base by more than `margin` of the slowdown still to accrue. Also returns the
    best rule's gain over the base (average bounded slowdown)."""
    values: dict[int, float] = {}
    for k, (pick, r) in enumerate(zip(picks, rules, strict=True)):
        if k and pick == picks[0]:
            continue  # the base's pick: the base's own rollout decides
        values[k] = float(rollout_values(env, [pick], r)[0])
    v0 = values[0]
    best = max(values, key=lambda k: values[k])
    gain = values[best] - v0
    return (best if gain > margin * abs(v0) else 0), gain


def collect(
    wl: Workload,
    net: RegimeNet | None,
    base: Chooser,
    *,
    every: int,
    margin: float,
) -> tuple[list[Labelled], dict]:
    """One episode's labels (see the module) and what the comparisons found."""
    rules = (base, alt_action(base), dense_action(base))
    env = SchedulingEnv(wl, config=no_aging())
    cap, gpus = cluster_capacity(wl)
    regime = Regime()
    obs, _ = env.reset()
    out: list[Labelled] = []
    rule, step, next_check, done = 0, 0, 0, False
    found: dict[str, Any] = {"compared": 0, "chosen": [0] * len(rules), "gains": []}
    while not done:
        if len(obs) <= 1:
            obs, _, done, _, _ = env.step(0)
            continue
        assert env.sim is not None
        regime.observe(env.sim.pending(), env.sim.now, cap, gpus)
        picks = [r(obs) for r in rules]
        differ = len(set(picks)) > 1
        if differ and step >= next_check:
            rule, gain = compare(env, picks, rules, margin)
            found["gains"].append(round(gain, 4))
            found["compared"] += 1
            found["chosen"][rule] += 1
            next_check = step + every
        label = picks[rule]
        if differ or step % 4 == 0:
            x = augment(obs.x, regime.vector)
            out.append(Labelled(x, obs.mask.copy(), label, 1.0, label != picks[0]))
        act = label
        if net is not None:
            net.regime = regime.vector
            q = net.scores(obs.x)
            if not obs.wait_allowed:
                q[-1] = -np.inf
            act = int(np.argmax(q))
        obs, _, done, _, _ = env.step(act)
        step += 1
    found["bsld"] = -env.episode_return
    return out, found


def train(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    shipped, _, _ = load_weights(BASE_WEIGHTS)
    base = base_chooser(shipped)
    layers = start_layers()
    data: list[Labelled] = []
    history = []
    t0 = time.process_time()
    for it in range(args.iterations):
        net = None if it == 0 else RegimeNet(layers)
        for i in range(args.workloads):
            wl = training_workload(args.first + i, args.jobs, TRACE)
            got, found = collect(wl, net, base, every=args.every, margin=args.margin)
            data += got
            row = {"iteration": it, "workload": args.first + i, "family": wl.name,
                   "labels": len(got), "compared": found["compared"],
                   "chosen": found["chosen"], "gains": found["gains"], "bsld": round(found["bsld"], 3)}  # fmt: skip
            history.append(row)
            print(json.dumps(row), flush=True)
        torch_net = make_net(layers)
        loss = fit(torch_net, data, np.arange(len(INPUTS)), epochs=args.epochs, batch=64,
                   lr=args.lr, rng=rng)  # fmt: skip
        layers = to_numpy_layers(torch_net)
        print(json.dumps({"iteration": it, "loss": round(loss, 4), "labels": len(data),
                          "cpu_s": round(time.process_time() - t0)}), flush=True)  # fmt: skip
        meta = {
            "command": command_line("scheduler.dqn_regime train", args),
            "seed": args.seed,
            "iterations_done": it + 1,
            "aging_s": no_aging().aging_s,
            "history": history,
            "cpu_s": round(time.process_time() - t0),
        }
        # after every iteration (a stopped run keeps its last network)
        save_regime(args.out.with_name(f"{args.out.stem}.it{it}.npz"), layers, meta)
        save_regime(args.out, layers, meta)
        args.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scheduler.dqn_regime train")
    ap.add_argument("--workloads", type=at_least(1), default=20)
    ap.add_argument("--first", type=at_least(0), default=0, help="first training workload")
    ap.add_argument("--jobs", type=at_least(10), default=1000)
    ap.add_argument("--iterations", type=at_least(1), default=1)
    ap.add_argument("--every", type=at_least(1), default=300, help="steps between comparisons")
    ap.add_argument("--margin", type=at_least(0.0, float), default=0.02)
    ap.add_argument("--epochs", type=at_least(1), default=6)
    ap.add_argument("--lr", type=at_least(1e-6, float), default=1e-3)
    ap.add_argument("--seed", type=at_least(0), default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.out.suffix != ".npz":
        ap.error(f"--out {args.out} must end in .npz")
    train(args)
