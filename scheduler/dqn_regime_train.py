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
`dqn_rollout_core.play_out`); another rule than the base is chosen only if it beats the
base by more than `--margin` of the slowdown still to accrue (a conservative preference for the
base, whose gains on hpc and the traces a few deviations would undo). Every state where the rules
differ is labelled with the chosen rule's pick, every fourth other one with the common pick. The
network (started from `dqn_self.npz`, zero weights on the new inputs, so it starts as the base)
learns the label among the step's rows (cross-entropy, `dqn_rollout_train.fit`).

`--version 2` (`dqn_regime2.npz`, issue 17's fifth try): the network also reads the rows EASY in
`wfp3` and in `f1` order would take first (`INPUTS_V2`), and the comparisons roll out those two
rules as well (five in all), so a lightly loaded workload where one of them wins is labelled
with its picks. It starts from `--start` (default `dqn_regime.npz`) with zero weights on the two
new inputs, so it starts as the first version. The two heuristics keep state between decisions,
so they ride on the episode's environment (`FollowedEnv`): each rollout's copy asks its own copy
of them, and what a rollout asks never changes what the episode's heuristics plan next.

`--labels whole` (version 2; issue 17's sixth try): no rollouts from states along the episode.
Per training workload, the starting network (`--start`, default `dqn_regime2.npz`) and each rule
followed whole run in the simulator (`whole_scores`); the best of them labels every state of the
workload where they do not all agree (`collect_whole`), the starting network's own choice unless
a rule beats it by more than `--margin` of its slowdown. One label per workload, so one rule a
workload, never a mix of rules (which undoes the base's gains: "DQN that picks among the
rules"); the network starts from the starting network and learns the workloads where a rule
beats it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scheduler.agent import to_numpy_layers
from scheduler.dqn_order_train import TRACE, command_line, training_workload
from scheduler.dqn_regime_core import (
    INPUTS,
    INPUTS_V2,
    RULES,
    SCORE_RULES,
    WEIGHTS,
    WEIGHTS_V2,
    Followers,
    Plan,
    Regime,
    RegimeNet,
    RegimePolicy,
    RulePolicy,
    augment,
    base_chooser,
    input_names,
    load_regime,
    row_jobs,
    rule_row,
    save_regime,
)
from scheduler.dqn_rollout_core import (
    BASE_WEIGHTS,
    Chooser,
    Labelled,
    at_least,
    no_aging,
    play_out,
)
from scheduler.dqn_rollout_core import (
    WEIGHTS as SELF_WEIGHTS,
)
from scheduler.dqn_rollout_train import fit, make_net
from scheduler.environment import SchedulingEnv
from scheduler.features import Candidates
from scheduler.metrics import compute_metrics
from scheduler.mlp import read_npz
from scheduler.model import JobId, Workload
from scheduler.policy import load_weights
from scheduler.simulator import Simulator


def start_layers(
    inputs: tuple[str, ...] = INPUTS, start: Path | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first network: `start`'s layers (default `dqn_self.npz` for `INPUTS`, which
    reproduces the base alone; `dqn_regime.npz` for `INPUTS_V2`) with zero weights on the inputs
    it lacks, so it starts as that network."""
    path = start or (SELF_WEIGHTS if inputs == INPUTS else WEIGHTS)
    layers, _ = read_npz(path)
    w0, b0 = layers[0]
    had = input_names(layers) if w0.shape[0] in (len(INPUTS), len(INPUTS_V2)) else None
    if had is None:  # dqn_self.npz: the version-4 columns, the first of `inputs`
        had = inputs[: w0.shape[0]]
    missing = [n for n in had if n not in inputs]
    if missing:
        raise ValueError(f"{path}: reads {', '.join(missing)}, which {len(inputs)} inputs lack")
    wide = np.zeros((len(inputs), w0.shape[1]), np.float32)
    for k, name in enumerate(had):
        wide[inputs.index(name)] = w0[k]
    return [(wide, b0), *layers[1:]]


class FollowedEnv(SchedulingEnv):
    """The training episode (`SchedulingEnv`, aging off) with, for version 2, the heuristics
    `Followers` ask. They keep state between decisions, so they are the episode's own: a copy of
    the environment (`copy_env`, a rollout) carries a copy of them, and what they are asked there
    never reaches the episode's."""

    def __init__(self, wl: Workload, follow: bool) -> None:
        super().__init__(wl, config=no_aging())
        self.follow = follow
        self.followers: Followers | None = None
        self._plans: tuple[float, dict[str, Plan]] | None = None

    def reset(self, seed: int | None = None) -> tuple[Candidates, dict]:
        self.followers = Followers() if self.follow else None
        self._plans = None
        return super().reset(seed)

    def plans(self) -> dict[str, Plan]:
        """What the followers start at this decision time (none without them), asked once per
        time: a copy made at that time keeps the plan made before its first step."""
        sim = self.sim
        if self.followers is None or sim is None:
            return {}
        if self._plans is None or self._plans[0] != sim.now:
            self._plans = (sim.now, self.followers.plans(sim.view(), sim.pending(), sim.now))
        return self._plans[1]

    def row_jobs(self) -> list[JobId]:
        """The job of each candidate row of the current observation but the wait row."""
        assert self.round is not None and self.obs is not None
        return row_jobs(self.round, self.obs)


EnvRule = Callable[[Candidates, FollowedEnv], int]
"""a rule on an environment's observation (the heuristics it follows ride on the env)"""


def env_rules(base: Chooser, names: Sequence[str]) -> list[EnvRule]:
    """Choosers for `RULES` by name: each rule's row (`rule_row`), the base's where it names
    none."""

    def make(name: str) -> EnvRule:
        def choose(obs: Candidates, env: FollowedEnv) -> int:
            if name == "base":
                return base(obs)
            if name in SCORE_RULES:
                pick = rule_row(obs.x, name, env.plans(), env.row_jobs(), obs.wait_allowed)
            else:
                pick = rule_row(obs.x, name, {}, None, obs.wait_allowed)
            return base(obs) if pick is None else pick

        return choose

    return [make(n) for n in names]


def cluster_capacity(wl: Workload) -> tuple[float, bool]:
    gpus = float(sum(n.capacity.gpus for n in wl.nodes))
    return (gpus or float(sum(n.capacity.cpus for n in wl.nodes))), gpus > 0


def compare(
    env: FollowedEnv, picks: list[int], rules: Sequence[EnvRule], margin: float
) -> tuple[int, float]:
    """The rule to follow from here: each rule's pick now, then that rule to the end of the
    episode (rules with the same pick share a rollout); another rule than the base (0) only if
    it beats the base by more than `margin` of the slowdown still to accrue. Also returns the
    best rule's gain over the base (average bounded slowdown)."""
    values: dict[int, float] = {}
    for k, (pick, r) in enumerate(zip(picks, rules, strict=True)):
        if k and pick == picks[0]:
            continue  # the base's pick: the base's own rollout decides
        values[k] = play_out(env, pick, r)
    v0 = values[0]
    best = max(values, key=lambda k: values[k])
    gain = values[best] - v0
    return (best if gain > margin * abs(v0) else 0), gain


def observe_state(env: FollowedEnv, regime: Regime, cap: float, gpus: bool) -> list[JobId]:
    """At a state with a choice: the regime brought up to date (the jobs pending, what the
    followed heuristics start now); returns the rows' jobs."""
    assert env.sim is not None
    regime.observe(env.sim.pending(), env.sim.now, cap, gpus)
    regime.plans = env.plans()
    return env.row_jobs()


def net_pick(net: RegimeNet, regime: Regime, obs: Candidates, jobs: list[JobId]) -> int:
    """The row `net` takes at this state (waiting only where it may)."""
    net.observe(regime)
    q = net.scores(obs.x, jobs)
    if not obs.wait_allowed:
        q[-1] = -np.inf
    return int(np.argmax(q))


def collect(
    wl: Workload,
    net: RegimeNet | None,
    base: Chooser,
    *,
    every: int,
    margin: float,
    inputs: tuple[str, ...] = INPUTS,
) -> tuple[list[Labelled], dict]:
    """One episode's labels (see the module) and what the comparisons found."""
    rules = env_rules(base, names_of(inputs))
    env = FollowedEnv(wl, follow=inputs == INPUTS_V2)
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
        jobs = observe_state(env, regime, cap, gpus)
        picks = [r(obs, env) for r in rules]
        differ = len(set(picks)) > 1
        if differ and step >= next_check:
            rule, gain = compare(env, picks, rules, margin)
            found["gains"].append(round(gain, 4))
            found["compared"] += 1
            found["chosen"][rule] += 1
            next_check = step + every
        label = picks[rule]
        if differ or step % 4 == 0:
            x = augment(obs.x, regime.vector, inputs, regime.plans, jobs)
            out.append(Labelled(x, obs.mask.copy(), label, 1.0, label != picks[0]))
        obs, _, done, _, _ = env.step(label if net is None else net_pick(net, regime, obs, jobs))
        step += 1
    found["bsld"] = -env.episode_return
    return out, found


KEEP = "keep"
"""`--labels whole`: the starting network's own choice, kept where no rule beats it"""


def whole_scores(wl: Workload, start: Path) -> dict[str, float]:
    """Average bounded slowdown on `wl` of the starting network (`KEEP`) and of each of `RULES`
    followed whole (`RulePolicy`), in the simulator as `bench` runs them."""
    policies: dict[str, RegimePolicy] = {KEEP: RegimePolicy(start)}
    policies.update({r: RulePolicy(r) for r in RULES})
    return {k: compute_metrics(Simulator(wl).run(p))["avg_bounded_slowdown"]
            for k, p in policies.items()}  # fmt: skip


def whole_choice(scores: dict[str, float], margin: float) -> str:
    """The rule that does best on the whole workload, if it beats the starting network by more
    than `margin` of its slowdown; else `KEEP`."""
    best = min(scores, key=lambda k: scores[k])
    return best if scores[best] < (1.0 - margin) * scores[KEEP] else KEEP


def family_choice(
    scores: dict[int, dict[str, float]], families: dict[int, str], margin: float
) -> dict[int, str]:
    """`--group family`: one label for every workload of a family, the rule whose slowdown over
    the starting network's has the least geometric mean over the family's workloads (if under
    1 - `margin`; else `KEEP`). Per workload the winner is noisy where no rule wins by much
    (hpc: five different winners in ten workloads), and a network taught that noise mixes rules
    in a regime it cannot tell apart; per family, it is taught what the regime wants."""
    out: dict[int, str] = {}
    for fam in sorted(set(families.values())):
        ids = [i for i in scores if families[i] == fam]
        gm = {r: math.exp(float(np.mean([math.log(scores[i][r] / scores[i][KEEP]) for i in ids])))
              for r in scores[ids[0]]}  # fmt: skip
        best = min(gm, key=lambda r: gm[r])
        out.update(dict.fromkeys(ids, best if gm[best] < 1.0 - margin else KEEP))
    return out


def read_scores(path: Path) -> dict[int, dict[str, float]]:
    """`--scores`: the whole-run scores an earlier `--labels whole` run recorded (its `.json`),
    by workload, so a second run need not simulate them again. ValueError unless every one
    scores `KEEP` and each of `RULES` with a positive number."""
    meta = json.loads(path.read_text())
    out = {int(h["workload"]): h["scores"] for h in meta["history"] if "scores" in h}
    for i, sc in out.items():
        if set(sc) != {KEEP, *RULES} or not all(
            isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in sc.values()
        ):
            raise ValueError(f"workload {i}: scores are not {KEEP} and {', '.join(RULES)}")
    if not out:
        raise ValueError("no workload's scores in it")
    return out


def collect_whole(
    wl: Workload, label: str, keep: RegimeNet, net: RegimeNet | None, base: Chooser
) -> tuple[list[Labelled], float]:
    """One episode's labels for `--labels whole`: every state where the starting network and
    the rules do not all agree (every fourth other one) is labelled with the pick of `label`
    (a rule of `RULES`, or `KEEP`: the starting network's). The episode follows the label
    (iteration 0) or `net` (later iterations, DAgger); also returns the episode's slowdown
    (the environment's return, per job)."""
    env = FollowedEnv(wl, follow=True)
    rules = dict(zip(RULES, env_rules(base, RULES), strict=True))
    cap, gpus = cluster_capacity(wl)
    regime = Regime()
    obs, _ = env.reset()
    out: list[Labelled] = []
    step, done = 0, False
    while not done:
        if len(obs) <= 1:
            obs, _, done, _, _ = env.step(0)
            continue
        jobs = observe_state(env, regime, cap, gpus)
        picks = {KEEP: net_pick(keep, regime, obs, jobs), **{r: rules[r](obs, env) for r in RULES}}
        target = picks[label]
        if len(set(picks.values())) > 1 or step % 4 == 0:
            x = augment(obs.x, regime.vector, INPUTS_V2, regime.plans, jobs)
            out.append(Labelled(x, obs.mask.copy(), target, 1.0, target != picks[KEEP]))
        obs, _, done, _, _ = env.step(target if net is None else net_pick(net, regime, obs, jobs))
        step += 1
    return out, -env.episode_return


def fit_anchored(
    net: torch.nn.Sequential,
    data: list[Labelled],
    start: list,
    keep: list[bool],
    weight: float,
    *,
    epochs: int,
    lr: float,
    rng: np.random.Generator,
    batch: int = 64,
) -> float:
    """`fit`'s cross-entropy of the labels, plus, on the states of workloads labelled `KEEP`
    (`keep`), `weight` times the mean squared difference of the network's scores from the
    starting network's (`start`), each centred on its legal rows: there the network is to stay
    the starting network, near-ties included, not only pick its row. (Cross-entropy alone kept
    the picks of the training states but let unseen hpc states drift: 1.5x at load 0.9.)"""
    ref = make_net(start)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    total = 0.0
    for _ in range(epochs):
        order = rng.permutation(len(data))
        total, seen = 0.0, 0
        for s in range(0, len(order), batch):
            idx = [int(i) for i in order[s : s + batch]]
            n = max(len(data[i].x) for i in idx)
            x = np.zeros((len(idx), n, data[idx[0]].x.shape[1]), np.float32)
            m = np.zeros((len(idx), n), bool)
            for b, i in enumerate(idx):
                x[b, : len(data[i].x)] = data[i].x
                m[b, : len(data[i].mask)] = data[i].mask
            xt, mt = torch.as_tensor(x), torch.as_tensor(m)
            y = torch.as_tensor([data[i].label for i in idx])
            k = torch.as_tensor([keep[i] for i in idx], dtype=torch.float32)
            q = net(xt).squeeze(-1)
            ce = torch.nn.functional.cross_entropy(q.masked_fill(~mt, -1e9), y)
            with torch.no_grad():
                a = ref(xt).squeeze(-1)
            cnt = mt.sum(1).clamp(min=1)

            def centred(
                v: torch.Tensor, mt: torch.Tensor = mt, cnt: torch.Tensor = cnt
            ) -> torch.Tensor:
                v = v.masked_fill(~mt, 0.0)
                return (v - (v.sum(1) / cnt)[:, None]).masked_fill(~mt, 0.0)

            sq = ((centred(q) - centred(a)) ** 2).sum(1) / cnt
            loss = ce + weight * (sq * k).sum() / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        total /= max(seen, 1)
    return total


def fit_and_save(
    args: argparse.Namespace,
    layers: list,
    data: list[Labelled],
    rng: np.random.Generator,
    t0: float,
    meta: dict,
    anchor: tuple[list, list[bool], float] | None = None,
) -> tuple[list, dict]:
    """One iteration's end: the network trained on every label so far (`fit`, or `fit_anchored`
    with `anchor`), then written with `meta` (and the command, the CPU time) after every
    iteration, so a stopped run keeps its last network."""
    torch_net = make_net(layers)
    if anchor is None:
        loss = fit(torch_net, data, np.arange(len(layers[0][0])), epochs=args.epochs, batch=64,
                   lr=args.lr, rng=rng)  # fmt: skip
    else:
        loss = fit_anchored(torch_net, data, *anchor, epochs=args.epochs, lr=args.lr, rng=rng)
    layers = to_numpy_layers(torch_net)
    it = meta["iterations_done"] - 1
    print(json.dumps({"iteration": it, "loss": round(loss, 4), "labels": len(data),
                      "cpu_s": round(time.process_time() - t0)}), flush=True)  # fmt: skip
    meta = {"command": command_line("scheduler.dqn_regime train", args), "seed": args.seed,
            **meta, "aging_s": no_aging().aging_s, "cpu_s": round(time.process_time() - t0)}  # fmt: skip
    save_regime(args.out.with_name(f"{args.out.stem}.it{it}.npz"), layers, meta)
    save_regime(args.out, layers, meta)
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    return layers, meta


def train_whole(args: argparse.Namespace) -> dict:
    """`--labels whole`: per training workload, which of the starting network and the rules
    followed whole does best (`whole_scores`, `whole_choice`); the network learns that one's
    picks, starting from the starting network (see the module)."""
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    shipped, _, _ = load_weights(BASE_WEIGHTS)
    base = base_chooser(shipped)
    start = args.start or WEIGHTS_V2
    layers = start_layers(INPUTS_V2, start)
    keep = RegimeNet(layers, INPUTS_V2)
    data: list[Labelled] = []
    history: list[dict] = []
    kept: list[bool] = []
    start_net = [(w.copy(), b.copy()) for w, b in layers]
    t0 = time.process_time()
    ids = range(args.first, args.first + args.workloads)
    known = read_scores(args.scores) if args.scores else {}
    scores: dict[int, dict[str, float]] = {}
    families: dict[int, str] = {}
    for i in ids:
        wl = training_workload(i, args.jobs, TRACE)
        families[i] = wl.name
        scores[i] = known.get(i) or {
            k: round(v, 3) for k, v in whole_scores(wl, start).items()
        }  # fmt: skip
        print(json.dumps({"workload": i, "family": wl.name, "scores": scores[i]}), flush=True)
    if args.group == "family":
        chosen = family_choice(scores, families, args.margin)
    else:
        chosen = {i: whole_choice(scores[i], args.margin) for i in ids}
    for it in range(args.iterations):
        net = None if it == 0 else RegimeNet(layers, INPUTS_V2)
        for i in ids:
            wl = training_workload(i, args.jobs, TRACE)
            row: dict[str, Any] = {"iteration": it, "workload": i, "family": wl.name}
            if it == 0:
                row["scores"] = scores[i]
            got, bsld = collect_whole(wl, chosen[i], keep, net, base)
            data += got
            kept += [chosen[i] == KEEP] * len(got)
            row.update(chosen=chosen[i], labels=len(got), bsld=round(bsld, 3))
            history.append(row)
            print(json.dumps(row), flush=True)
        layers, meta = fit_and_save(args, layers, data, rng, t0, {
            "labels": "whole", "group": args.group, "start": str(start), "jobs": args.jobs,
            "rules": [KEEP, *RULES], "iterations_done": it + 1, "history": history,
            "anchor": args.anchor,
        }, (start_net, kept, args.anchor) if args.anchor > 0 else None)  # fmt: skip
    return meta


def names_of(inputs: tuple[str, ...]) -> tuple[str, ...]:
    """The rules the labels compare for these inputs."""
    return RULES if inputs == INPUTS_V2 else RULES[:3]


def train(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    shipped, _, _ = load_weights(BASE_WEIGHTS)
    base = base_chooser(shipped)
    inputs = INPUTS_V2 if args.version == 2 else INPUTS
    layers = start_layers(inputs, args.start)
    data: list[Labelled] = []
    history = []
    t0 = time.process_time()
    for it in range(args.iterations):
        net = None if it == 0 else RegimeNet(layers, inputs)
        for i in range(args.workloads):
            wl = training_workload(args.first + i, args.jobs, TRACE)
            got, found = collect(wl, net, base, every=args.every, margin=args.margin,
                                 inputs=inputs)  # fmt: skip
            data += got
            row = {"iteration": it, "workload": args.first + i, "family": wl.name,
                   "labels": len(got), "compared": found["compared"],
                   "chosen": found["chosen"], "gains": found["gains"], "bsld": round(found["bsld"], 3)}  # fmt: skip
            history.append(row)
            print(json.dumps(row), flush=True)
        layers, meta = fit_and_save(args, layers, data, rng, t0, {
            "rules": list(names_of(inputs)), "iterations_done": it + 1, "history": history,
        })  # fmt: skip
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
    ap.add_argument("--version", type=int, choices=(1, 2), default=1, help="1: the rules base, "
                    "60 %%, dense (dqn_regime.npz); 2: also wfp3 and f1 (dqn_regime2.npz)")  # fmt: skip
    ap.add_argument("--start", type=Path, default=None, help="the weights to start from "
                    "(default: dqn_self.npz for version 1, dqn_regime.npz for 2, "
                    "dqn_regime2.npz with --labels whole)")  # fmt: skip
    ap.add_argument("--labels", choices=("rollout", "whole"), default="rollout",
                    help="rollout: compare the rules from states along the episode; whole: "
                    "per workload, the best of the starting network and the rules followed "
                    "whole (version 2 only; starts from dqn_regime2.npz)")  # fmt: skip
    ap.add_argument("--group", choices=("workload", "family"), default="workload",
                    help="--labels whole: the best rule of each workload, or of each family "
                    "(least geometric mean over its workloads)")  # fmt: skip
    ap.add_argument("--scores", type=Path, default=None, help="--labels whole: reuse the "
                    "whole-run scores of an earlier run's .json")  # fmt: skip
    ap.add_argument("--anchor", type=at_least(0.0, float), default=0.0, help="--labels whole: "
                    "on workloads that keep the starting network, also this weight times the "
                    "squared distance of the scores from its scores")  # fmt: skip
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.labels == "whole" and args.version != 2:
        ap.error("--labels whole needs --version 2")
    if args.labels != "whole" and (args.group != "workload" or args.scores or args.anchor):
        ap.error("--group, --scores and --anchor go with --labels whole")
    if args.scores is not None:
        try:
            read_scores(args.scores)
            earlier = json.loads(args.scores.read_text()).get("jobs", args.jobs)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            ap.error(f"--scores {args.scores}: not a --labels whole run's .json ({exc})")
        if earlier != args.jobs:
            ap.error(f"--scores {args.scores}: scored {earlier}-job workloads, not --jobs "
                     f"{args.jobs}")  # fmt: skip
    if args.out.suffix != ".npz":
        ap.error(f"--out {args.out} must end in .npz")
    if args.labels == "whole":
        args.start = args.start or WEIGHTS_V2
    try:  # before any work: a missing or unusable --start is one line, exit 2
        start_layers(INPUTS_V2 if args.version == 2 else INPUTS, args.start)
        if args.labels == "whole":
            load_regime(args.start)  # run whole (`whole_scores`): dqn-regime weights only
    except (OSError, ValueError, KeyError) as exc:
        ap.error(f"--start {args.start}: {exc}")
    (train_whole if args.labels == "whole" else train)(args)
