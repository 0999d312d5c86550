"""Training `dqn-bf` (`scheduler/dqn_order.py`) with the DQN machinery of `scheduler/agent.py`.

    PYTHONPATH=$PWD python3 -m scheduler.dqn_order_train --workloads 60 --updates 3000 \
        --episodes 40 --out scheduler/weights/dqn_bf.npz

A state is a round with a choice: the candidate jobs (`dqn_order.window`) as rows; the action is
the job that becomes the head of the EASY pass. The reward of a round is minus the bounded
slowdown the queue accrues until the next round (each waiting job's wait over its estimate,
at least `TAU_S`), per job of the episode and over the best heuristic's average bounded slowdown
on that workload, so an episode's return is about minus its slowdown as a share of the best
heuristic's, and every family weighs the same.

1. Demonstrations (DQfD, as `agent.train`): on every training workload each rank order runs
   under EASY (FIFO, SJF, WFP3, UNICEP, F1); the best one's rounds, labelled with its head,
   fill the demonstration buffer, so the teacher differs per workload.
2. Imitation: `agent.double_dqn_loss` (TD plus the large-margin loss) on the demonstrations.
3. Q-learning: epsilon-greedy episodes of the network itself, batches mixing its own rounds and
   the demonstrations (`Learner.update`).
Validation (seeds 900-902, every family at loads 0.7, 0.9, 1.1) after each phase keeps the best
checkpoint by the mean ratio to the best heuristic. Training draws workload seeds from 20,000 up
and trace windows from the trace's first 60 %; `bench` evaluates on seeds 0 up.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from scheduler.agent import Batch, Learner, ReplayBuffer, TrainConfig, to_numpy_layers
from scheduler.bench import make_workload
from scheduler.dqn_order import (
    MLP,
    NUM_ORDER_FEATURES,
    RANK_ORDERS,
    TAU_S,
    OrderBackfillPolicy,
    save_order_weights,
)
from scheduler.environment import run_policy, summarize
from scheduler.heuristics import HEURISTICS
from scheduler.model import Workload
from scheduler.workloads import TraceError

FAMILIES = ("deeprm", "lab", "lab-long", "hpc", "trace")
TRACE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "traces"
    / "alibaba2023_openb_pod_list_default.csv"
)
TRACE_TRAIN_TASKS = 4352
"""the trace's first 60 % (tasks 0-4,352 by submission time): training windows start below"""


def make_net(hidden: int = 64) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(NUM_ORDER_FEATURES, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 1),
    )


def command_line(program: str, args: argparse.Namespace, skip: tuple[str, ...] = ()) -> str:
    """The command a weights file was trained with (its metadata), from the parsed options."""
    return f"python -m {program} " + " ".join(
        f"--{k.replace('_', '-')} {v}"
        for k, v in vars(args).items()
        if k not in skip and v is not None  # an option left at None was not given
    )


def training_workload(i: int, jobs: int, trace: Path) -> Workload:
    """Workload i of the training set: family i mod 5, load in 0.6-1.2, seed 20,000 + i."""
    rng = np.random.default_rng(20_000 + i)
    kind = FAMILIES[i % len(FAMILIES)]
    load = float(rng.uniform(0.6, 1.2))
    if kind == "trace":
        start = int(rng.integers(0, TRACE_TRAIN_TASKS - jobs))
        return trace_window(20_000 + i, jobs, load, trace, start)
    return make_workload(kind, 20_000 + i, jobs=jobs, load=load)


def trace_window(seed: int, jobs: int, load: float, trace: Path, start: int) -> Workload:
    """A window of the trace at `load` on 8 nodes, or fewer where the window cannot reach it."""
    for nodes in (8, 4, 2, 1):
        try:
            return make_workload("trace", seed, jobs=jobs, load=load, trace=trace, start=start,
                                 nodes=nodes)  # fmt: skip
        except TraceError:
            continue
    return make_workload("trace", seed, jobs=jobs, load=None, trace=trace, start=start)


def validation_set(jobs: int, trace: Path) -> list[Workload]:
    out = []
    for kind in FAMILIES:
        for k, load in enumerate((0.7, 0.9, 1.1)):
            if kind == "trace":
                out.append(trace_window(900 + k, jobs, load, trace, 500 + 1200 * k))
            else:
                out.append(make_workload(kind, 900 + k, jobs=jobs, load=load))
    return out


def rewards(records: list, n_jobs: int, scale: float) -> list[float]:
    """Minus the bounded slowdown accrued between each round and the next (see the module)."""
    out = []
    for t, rec in enumerate(records):
        if t + 1 == len(records):
            out.append(0.0)
            continue
        now, nxt = rec[0], records[t + 1]
        t1, submit, est = nxt[0], nxt[3], nxt[4]
        waited = t1 - np.maximum(now, submit)
        acc = float(np.sum(np.maximum(waited, 0.0) / np.maximum(est, TAU_S)))
        out.append(-acc / n_jobs / scale)
    return out


def add_episode(buf: ReplayBuffer, records: list, rs: list[float], demo: bool) -> None:
    buf.start()
    for t, (rec, r) in enumerate(zip(records, rs, strict=True)):
        x, a = rec[1], rec[2]
        buf.add(x, np.ones(len(x), bool), a, r, t + 1 == len(records), a if demo else -1)


def make_batch(buf: ReplayBuffer, idx: list[int]) -> Batch:
    """`ReplayBuffer.batch` for this policy's feature width."""
    cap = buf.capacity
    nxt = [(i + 1) % cap for i in idx]

    def pad(xs: list, ms: list) -> tuple[np.ndarray, np.ndarray]:
        n = max(len(x) for x in xs)
        out = np.zeros((len(xs), n, NUM_ORDER_FEATURES), np.float32)
        mk = np.zeros((len(xs), n), bool)
        for b, (x, m) in enumerate(zip(xs, ms, strict=True)):
            out[b, : len(x)] = x
            mk[b, : len(m)] = m
        return out, mk

    x, m = pad([buf.x[i] for i in idx], [buf.mask[i] for i in idx])
    nn_ = [j if not buf.done[i] else i for i, j in zip(idx, nxt, strict=True)]
    nx, nm = pad([buf.x[j] for j in nn_], [buf.mask[j] for j in nn_])
    t = torch.as_tensor
    return Batch(
        t(x), t(m), t(buf.action[idx]), t(buf.reward[idx]),
        t(buf.done[idx].astype(np.float32)), t(nx), t(nm), t(buf.demo[idx]),
    )  # fmt: skip


def bsld(policy: object, wl: Workload) -> float:
    return summarize(run_policy(policy, wl)).avg_bsld  # type: ignore[arg-type]


def evaluate(net: nn.Sequential, val: list[Workload], best: list[float]) -> dict:
    mlp = MLP(to_numpy_layers(net))
    got = [bsld(OrderBackfillPolicy(network=mlp), wl) for wl in val]
    ratios = [g / b for g, b in zip(got, best, strict=True)]
    fam = {f: round(float(np.mean(ratios[3 * k : 3 * k + 3])), 3) for k, f in enumerate(FAMILIES)}
    return {"ratio": float(np.mean(ratios)), "max": float(np.max(ratios)), "families": fam}


def main() -> None:  # noqa: PLR0915
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", type=int, default=60)
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--val-jobs", type=int, default=400)
    ap.add_argument("--updates", type=int, default=3000)
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--picks", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epsilon", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--out", type=Path, default=Path("dqn_bf.npz"))
    ap.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="folder for the validation baselines (the heuristics' runs), reused",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.process_time()

    # 1. demonstrations: the best rank order per workload
    demos, agent_buf = ReplayBuffer(200_000), ReplayBuffer(100_000)
    train_wls, scale = [], []
    teachers: dict[str, int] = {}
    for i in range(args.workloads):
        wl = training_workload(i, args.jobs, args.trace)
        runs = []
        for c in range(len(RANK_ORDERS)):
            rec: list = []
            pol = OrderBackfillPolicy(column=c, recorder=rec, picks=args.picks)
            runs.append((bsld(pol, wl), c, rec))
        b, c, rec = min(runs, key=lambda r: r[0])
        teachers[RANK_ORDERS[c]] = teachers.get(RANK_ORDERS[c], 0) + 1
        add_episode(demos, rec, rewards(rec, len(wl.jobs), b), demo=True)
        train_wls.append(wl)
        scale.append(b)
    print(f"demonstrations: {len(demos)} rounds, teachers {teachers}, "
          f"{time.process_time() - t0:.0f} CPU s", flush=True)  # fmt: skip

    val = validation_set(args.val_jobs, args.trace)
    cache = args.cache / f"dqn_bf_val_{args.val_jobs}.json" if args.cache else None
    if cache is not None and cache.exists():
        best_h = json.loads(cache.read_text())
    else:
        best_h = [min(bsld(cls(), wl) for cls in HEURISTICS.values()) for wl in val]
        if cache is not None:
            cache.write_text(json.dumps(best_h))
    print(f"validation baselines: {time.process_time() - t0:.0f} CPU s", flush=True)

    config = TrainConfig(seed=args.seed, learning_rate=2e-4, margin=0.5, gamma=0.99)
    q_net, target = make_net(args.hidden), make_net(args.hidden)
    target.load_state_dict(q_net.state_dict())
    learner = Learner(q_net, target, torch.optim.Adam(q_net.parameters(), lr=2e-4), config,
                      torch.device("cpu"))  # fmt: skip
    history = []
    best: dict = {"ratio": float("inf")}

    def checkpoint(phase: str, step: int) -> None:
        nonlocal best
        ev = evaluate(q_net, val, best_h)
        ev.update(phase=phase, step=step, cpu_s=round(time.process_time() - t0))
        history.append(ev)
        print(json.dumps(ev), flush=True)
        if ev["ratio"] < best["ratio"]:
            best = {**ev, "layers": to_numpy_layers(q_net)}

    # 2. imitation
    for u in range(args.updates):
        learner.update(make_batch(demos, demos.sample(config.batch_size, rng)))
        if (u + 1) % max(1, args.updates // 4) == 0:
            checkpoint("imitation", u + 1)

    # 3. Q-learning from the network's own play, demonstrations mixed in
    for e in range(args.episodes):
        k = int(rng.integers(len(train_wls)))
        rec = []
        pol = OrderBackfillPolicy(network=MLP(to_numpy_layers(q_net)), epsilon=args.epsilon,
                                  seed=int(rng.integers(1 << 30)), recorder=rec)  # fmt: skip
        run_policy(pol, train_wls[k])
        add_episode(agent_buf, rec, rewards(rec, len(train_wls[k].jobs), scale[k]), demo=False)
        for _ in range(max(1, len(rec) // 4)):
            half = config.batch_size // 2
            idx_a = agent_buf.sample(half, rng)
            if idx_a:
                learner.update(make_batch(agent_buf, idx_a))
            learner.update(make_batch(demos, demos.sample(half, rng)))
        if (e + 1) % args.eval_every == 0:
            checkpoint("q-learning", e + 1)

    meta = {
        "command": command_line("scheduler.dqn_order_train", args),
        "teachers": teachers,
        "validation": {k: v for k, v in best.items() if k != "layers"},
        "history": history,
        "cpu_s": round(time.process_time() - t0),
    }
    save_order_weights(args.out, best["layers"], meta)
    print(f"wrote {args.out}: best {best['phase']} step {best['step']} ratio {best['ratio']:.3f}")


if __name__ == "__main__":
    main()
