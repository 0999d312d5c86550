"""Training the DQN scheduling policy (torch), in the readable style of cleanrl's `dqn.py`.

Double DQN over candidate actions (`scheduler.features`): the Q network scores one candidate row
at a time, so a state's actions are its rows. `train` runs four steps around one pure loss
(`double_dqn_loss`): `collect_demonstrations`, `imitate`, `q_learning` and `blend`. A target network follows the online one with `tau`;
Huber loss; gradient clipping; a linear epsilon schedule; one explicit seeding block.

Warm start (DQfD-style, Hester et al. 2018): the best heuristic for bounded slowdown (SJF by
default) drives the environment first; its transitions, labelled with its actions, fill a
permanent demonstration buffer; the network is pre-trained on them with the TD loss plus a
large-margin loss that ranks the teacher's action above every other by `margin`. Q-learning then
continues from the policy's own experience, still sampling a share of demonstrations with the
margin loss (the conservative blend). Periodic evaluation against the heuristics on held-out
workloads keeps the best checkpoint, the pre-trained one included, so fine-tuning can never ship a
policy worse on validation than the imitation it started from.

Torch is imported here only: the run-time policy (`scheduler.policy`) is numpy.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from scheduler.environment import SchedulingEnv, run_policy, summarize
from scheduler.features import NUM_FEATURES, Candidates, RoundConfig
from scheduler.heuristics import HEURISTICS, HeuristicPolicy
from scheduler.model import Workload
from scheduler.policy import DQNPolicy, QNetwork, save_weights
from scheduler.simulator import SimResult


@dataclass
class TrainConfig:
    """Everything a training run depends on (recorded in the weights' sidecar)."""

    seed: int = 1
    """seeds python, numpy and torch, and the workloads drawn"""
    total_steps: int = 50_000
    """environment steps in all (teacher demonstrations included)"""
    demo_fraction: float = 0.3
    """share of `total_steps` driven by the teacher heuristic"""
    teacher: str = "sjf"
    """heuristic imitated during the warm start ("sjf": SJF under the long-job limit below, the
    round's own `teacher_choice` row)"""
    long_share: float | None = 0.4
    """the teacher's long-job limit: jobs estimated over `long_after_s` hold at most this share
    of the CPUs and of the GPUs (None: plain SJF). 0.4 was chosen on validation workloads
    (`docs/benchmarks.md`, DQN policy)"""
    long_after_s: float = 3600.0
    """a job is long above this estimate (a running one: estimated time left)"""
    teacher_placement: str = "fragmentation"
    """the teacher's node for its job: "fragmentation" (as SJF places) or "bestfit" (feature
    version 4's teacher)"""
    pretrain_updates: int = 3_000
    """gradient steps on the demonstrations before the agent acts (scaled down for short runs)"""
    hidden: int = 64
    """width of the two hidden layers"""
    learning_rate: float = 2e-4
    """Adam learning rate"""
    buffer_size: int = 40_000
    """agent replay buffer (states)"""
    gamma: float = 0.99
    """discount per decision step"""
    tau: float = 0.005
    """target network soft-update rate"""
    batch_size: int = 64
    """transitions per gradient step"""
    demo_ratio: float = 0.5
    """share of each batch drawn from the demonstrations during Q-learning"""
    margin: float = 0.5
    """large-margin gap between the teacher's action and the others"""
    margin_weight: float = 1.0
    """weight of the margin loss"""
    start_e: float = 0.05
    """initial exploration rate of the agent phase"""
    end_e: float = 0.0
    """final exploration rate"""
    exploration_fraction: float = 0.5
    """share of the agent phase over which epsilon decays"""
    train_frequency: int = 2
    """environment steps per gradient step"""
    max_grad_norm: float = 10.0
    """gradient clipping"""
    eval_every: int = 10_000
    """environment steps between evaluations against the heuristics"""
    k: int = 32
    """window of jobs considered per round"""
    aging_s: float | None = 12 * 3600.0
    """one priority level per this many seconds waited, for the round's guard rails and the
    teacher (None: no aging); the validation baselines keep their own defaults"""
    max_episode_steps: int = 4_000
    """truncate an episode after this many steps"""
    blend_bonuses: tuple[float, ...] = (0.02, 0.1, 0.5, 1000.0)
    """bonuses on the teacher's pick tried on the validation workloads after training"""
    cost_weight: float = 0.0
    """weight of cost in the reward (the money of idle capacity at the nodes' prices, per the
    environment) and in choosing checkpoints (average bounded slowdown plus this times the idle
    cost per job); 0: slowdown only"""
    min_gain: float = 0.05
    """leave the teacher (ship a checkpoint or blend that strays from its pick) only when that
    beats following it, the largest bonus, by this share on validation: gains of 2.5-6 % there
    came back 4-21 % worse on held-out workloads"""


class Batch(NamedTuple):
    """A padded minibatch: states and next states as (B, L, F) with legal-action masks."""

    x: torch.Tensor
    mask: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    next_x: torch.Tensor
    next_mask: torch.Tensor
    demo_actions: torch.Tensor


def make_network(hidden: int = 64) -> nn.Sequential:
    """The Q network: features -> hidden -> hidden -> one score per candidate row."""
    return nn.Sequential(
        nn.Linear(NUM_FEATURES, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 1),
    )


def to_numpy_layers(net: nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
    """Linear layers as (W, b) with W laid out for `x @ W + b` (the numpy policy's form)."""
    return [
        (m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy())
        for m in net
        if isinstance(m, nn.Linear)
    ]


def numpy_network(net: nn.Sequential) -> QNetwork:
    """The same network for numpy inference."""
    return QNetwork(to_numpy_layers(net))


def linear_schedule(start_e: float, end_e: float, duration: int, t: int) -> float:
    """Epsilon at step t: linear from start_e to end_e over `duration` steps, then flat."""
    slope = (end_e - start_e) / max(duration, 1)
    return max(slope * t + start_e, end_e)


class ReplayBuffer:
    """States in order of play; transition i goes from state i to state i + 1 unless i ended its
    episode. Variable numbers of candidates per state are padded at sampling time."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.x: list[np.ndarray | None] = [None] * capacity
        self.mask: list[np.ndarray | None] = [None] * capacity
        self.action = np.zeros(capacity, dtype=np.int64)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.done = np.zeros(capacity, dtype=bool)
        self.valid = np.zeros(capacity, dtype=bool)
        self.demo = np.full(capacity, -1, dtype=np.int64)
        self.pos = 0
        self.full = False
        self._open = False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(
        self,
        x: np.ndarray,
        mask: np.ndarray,
        action: int,
        reward: float,
        done: bool,
        demo_action: int = -1,
    ) -> None:
        """Record a state, the action taken there and its outcome."""
        i = self.pos
        prev = (i - 1) % self.capacity
        if self._open and not self.done[prev]:
            self.valid[prev] = True  # state i is the next state of transition prev
        self.x[i], self.mask[i] = x, mask
        self.action[i], self.reward[i], self.done[i] = action, reward, done
        self.demo[i] = demo_action
        self.valid[i] = done  # a non-terminal transition waits for its next state
        self._open = not done
        self.pos = (i + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def start(self) -> None:
        """The next state added opens a new episode (the previous one was cut short)."""
        self._open = False

    def sample(self, n: int, rng: np.random.Generator) -> list[int]:
        """Indices of `n` usable transitions."""
        ok = np.flatnonzero(self.valid[: len(self)])
        return rng.choice(ok, size=n).tolist() if len(ok) else []

    def batch(self, idx: list[int], device: torch.device) -> Batch:
        """Pad the states of `idx` and their next states into tensors."""
        nxt = [(i + 1) % self.capacity for i in idx]
        x, m = _pad([self.x[i] for i in idx], [self.mask[i] for i in idx])
        nx, nm = _pad(
            [self.x[j] if not self.done[i] else self.x[i] for i, j in zip(idx, nxt, strict=True)],
            [
                self.mask[j] if not self.done[i] else self.mask[i]
                for i, j in zip(idx, nxt, strict=True)
            ],
        )
        t = torch.as_tensor
        return Batch(
            t(x, device=device),
            t(m, device=device),
            t(self.action[idx], device=device),
            t(self.reward[idx], device=device),
            t(self.done[idx].astype(np.float32), device=device),
            t(nx, device=device),
            t(nm, device=device),
            t(self.demo[idx], device=device),
        )


def _pad(xs: list, masks: list) -> tuple[np.ndarray, np.ndarray]:
    n = max(len(x) for x in xs)
    out = np.zeros((len(xs), n, NUM_FEATURES), dtype=np.float32)
    mk = np.zeros((len(xs), n), dtype=bool)
    for b, (x, m) in enumerate(zip(xs, masks, strict=True)):
        out[b, : len(x)] = x
        mk[b, : len(m)] = m
    return out, mk


# -- workloads --------------------------------------------------------------------------------


@dataclass
class WorkloadMix:
    """Draws training episodes: DeepRM, the lab mix and windows of the trace's training part, at
    loads between `load_low` and `load_high`, on a few nodes, with seeds disjoint from evaluation's
    (evaluation uses seeds below 1000; training draws from 10,000 up)."""

    kinds: tuple[str, ...] = ("deeprm", "lab", "trace")
    jobs: int = 200
    load_low: float = 0.6
    load_high: float = 1.3
    trace_tasks: list = field(default_factory=list)
    """the trace's training part (first `train_share` of its tasks by submission time)"""
    priced: bool = False
    """give nodes without prices the bench's (`with_prices`), for training that weighs cost"""
    fair_share: float = 0.0
    """share of episodes run under the lab's fair share (`info["fair_share"]`, see
    `SchedulingEnv`), so the `fair_share` column varies in training"""

    def __call__(self, seed: int) -> Workload:
        wl = self._draw(seed)
        # a draw of its own, so the workloads drawn do not depend on `fair_share`
        if self.fair_share and np.random.default_rng((seed, 1)).random() < self.fair_share:
            wl = replace(wl, info={**wl.info, "fair_share": 1})
        return with_prices(wl) if self.priced else wl

    def _draw(self, seed: int) -> Workload:
        from scheduler import workloads as w

        rng = np.random.default_rng(seed)
        kinds = [k for k in self.kinds if k != "trace" or self.trace_tasks]
        kind = kinds[int(rng.integers(len(kinds)))]
        load = float(rng.uniform(self.load_low, self.load_high))
        wseed = 10_000 + int(rng.integers(1_000_000))
        if kind == "deeprm":
            return w.deeprm(self.jobs, load=load, seed=wseed, num_nodes=int(rng.integers(1, 5)))
        if kind == "lab":
            return w.lab_mix(self.jobs, load, wseed, nodes=int(rng.integers(2, 9)))
        n = min(self.jobs, len(self.trace_tasks))
        for _ in range(8):  # some windows cannot reach a high load on many nodes: draw again
            start = int(rng.integers(0, max(1, len(self.trace_tasks) - n)))
            try:
                return w.trace_workload(
                    self.trace_tasks,
                    jobs=n,
                    start=start,
                    load=load,
                    seed=wseed,
                    nodes=int(rng.integers(2, 9)),
                )
            except w.TraceError:
                load = float(rng.uniform(self.load_low, load))
        return w.trace_workload(
            self.trace_tasks, jobs=n, start=start, load=None, seed=wseed, nodes=4
        )


def with_prices(wl: Workload) -> Workload:
    """`wl` with the bench's prices (`scheduler.bench.BENCH_PRICES`) on nodes that have none."""
    from scheduler.bench import BENCH_PRICES

    if all(n.price_per_hour > 0 for n in wl.nodes):
        return wl
    nodes = [n if n.price_per_hour > 0 else replace(n, prices=BENCH_PRICES) for n in wl.nodes]
    return replace(wl, nodes=nodes)


def ledger_mix(
    workloads: list[Workload], load_low: float = 0.6, load_high: float = 1.3
) -> Callable[[int], Workload]:
    """Episodes drawn from fixed workloads (e.g. the lab's own history): a random one each time."""

    def draw(seed: int) -> Workload:
        rng = np.random.default_rng(seed)
        return workloads[int(rng.integers(len(workloads)))]

    return draw


# -- evaluation -------------------------------------------------------------------------------


def objective(result: SimResult, cost_weight: float = 0.0) -> float:
    """Average bounded slowdown, plus `cost_weight` times the idle capacity's cost per job."""
    score = summarize(result).avg_bsld
    if cost_weight:
        from scheduler.metrics import compute_metrics

        idle = compute_metrics(result)["idle_cost"]
        score += cost_weight * idle / max(1, len(result.jobs))
    return score


def evaluate(
    net: QNetwork,
    workloads: list[Workload],
    config: RoundConfig,
    baselines: dict[str, list[float]] | None = None,
    teacher_bonus: float = 0.0,
    cost_weight: float = 0.0,
) -> dict:
    """The `objective` of the policy and the heuristics on `workloads` (average bounded slowdown
    when `cost_weight` is 0), and the policy's mean ratio to the best heuristic per workload
    (lower is better)."""
    if baselines is None:
        baselines = {
            name: [objective(run_policy(cls(), wl), cost_weight) for wl in workloads]
            for name, cls in HEURISTICS.items()
        }
    # a fresh policy per workload, as the heuristics': the shapes it learns (the fragmentation
    # columns) must not carry from one workload into the next (a lab mix's shapes took the
    # teacher's average bounded slowdown on the next trace workload from 1.82 to 5.24)
    dqn = [
        objective(run_policy(DQNPolicy.from_network(net, config, teacher_bonus), wl), cost_weight)
        for wl in workloads
    ]
    best = [min(v[i] for v in baselines.values()) for i in range(len(workloads))]
    ratio = float(np.mean([d / b for d, b in zip(dqn, best, strict=True)]))
    return {"dqn": dqn, "baselines": baselines, "ratio_to_best": ratio}


# -- training ---------------------------------------------------------------------------------


def double_dqn_loss(
    q_net: nn.Module,
    target: nn.Module,
    batch: Batch,
    config: TrainConfig,
    use_td: bool = True,
) -> torch.Tensor:
    """The loss of one batch (pure: no update): Double DQN's Huber TD loss (the online network
    picks the next action, the target network scores it) plus, on demonstration rows, the
    large-margin loss that ranks the teacher's action `margin` above every other."""
    q = _masked(q_net(batch.x).squeeze(-1), batch.mask)
    loss = torch.zeros((), device=q.device)
    if use_td:
        with torch.no_grad():
            q_next_online = _masked(q_net(batch.next_x).squeeze(-1), batch.next_mask)
            a_next = q_next_online.argmax(dim=1, keepdim=True)
            q_next = target(batch.next_x).squeeze(-1).gather(1, a_next).squeeze(1)
            td_target = batch.rewards + config.gamma * q_next * (1.0 - batch.dones)
        q_taken = q.gather(1, batch.actions[:, None]).squeeze(1)
        loss = nn.functional.smooth_l1_loss(q_taken, td_target)
    is_demo = batch.demo_actions >= 0
    if is_demo.any():
        a_e = batch.demo_actions.clamp(min=0)[:, None]
        gap = torch.full_like(q, config.margin).scatter(1, a_e, 0.0)
        q_e = q.gather(1, a_e).squeeze(1)
        margin_loss = ((q + gap).max(dim=1).values - q_e)[is_demo].mean()
        loss = loss + config.margin_weight * margin_loss
    return loss


@dataclass
class Learner:
    """The online and target networks and the optimizer: one gradient step per batch."""

    q_net: nn.Sequential
    target: nn.Sequential
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    device: torch.device

    @classmethod
    def create(cls, config: TrainConfig, device: torch.device) -> Learner:
        """Fresh networks (the target a copy of the online one) and Adam."""
        q_net = make_network(config.hidden).to(device)
        target = make_network(config.hidden).to(device)
        target.load_state_dict(q_net.state_dict())
        optimizer = torch.optim.Adam(q_net.parameters(), lr=config.learning_rate)
        return cls(q_net, target, optimizer, config, device)

    def update(self, batch: Batch) -> float:
        """One gradient step on `double_dqn_loss` (clipped), then the target follows by `tau`."""
        loss = double_dqn_loss(self.q_net, self.target, batch, self.config)
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.q_net.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():
            for p_t, p in zip(self.target.parameters(), self.q_net.parameters(), strict=True):
                p_t.mul_(1.0 - self.config.tau).add_(p, alpha=self.config.tau)
        return float(loss.detach())


@dataclass
class Run:
    """What the training steps share: the environment and its episodes, the seeded generator,
    the step count and losses, and the checkpoints kept on the validation workloads."""

    env: SchedulingEnv
    rng: np.random.Generator
    round_cfg: RoundConfig
    eval_workloads: list[Workload]
    out: Path
    meta: dict | None
    progress: Callable[[int, dict], None] | None
    started: float = field(default_factory=time.perf_counter)
    step: int = 0
    episodes: int = 0
    losses: list[float] = field(default_factory=list)
    baselines: dict[str, list[float]] | None = None
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"ratio_to_best": math.inf})
    cost_weight: float = 0.0

    def new_episode(self) -> tuple[Candidates, bool]:
        """Reset the environment on a freshly drawn workload; (observation, already over)."""
        self.episodes += 1
        obs, _ = self.env.reset(seed=int(self.rng.integers(1 << 31)))
        return obs, self.env.sim is not None and self.env.obs is None

    def report(self, info: dict) -> None:
        """Tell the caller's progress callback, if any."""
        if self.progress:
            self.progress(self.step, info)

    def checkpoint(self, q_net: nn.Sequential, phase: str) -> None:
        """Evaluate the network on the validation workloads; save it to `out` when best."""
        if not self.eval_workloads:
            return
        res = evaluate(
            numpy_network(q_net),
            self.eval_workloads,
            self.round_cfg,
            self.baselines,
            cost_weight=self.cost_weight,
        )
        self.baselines = res["baselines"]
        row = {
            "step": self.step,
            "phase": phase,
            "ratio_to_best": res["ratio_to_best"],
            "dqn": res["dqn"],
            "elapsed_s": time.perf_counter() - self.started,
        }
        self.history.append(row)
        if res["ratio_to_best"] < self.best["ratio_to_best"]:
            self.best = row
            save_weights(self.out, to_numpy_layers(q_net), self.round_cfg, self.meta)
        self.report({"eval": row})


def collect_demonstrations(
    run: Run, teacher: HeuristicPolicy | None, demos: ReplayBuffer, n_steps: int
) -> None:
    """1. The teacher drives the environment for `n_steps`; its labelled transitions fill
    `demos` (its job may lie outside the window: the first pair is played, unlabelled)."""
    obs, over = run.new_episode()
    while run.step < n_steps:
        if over:
            demos.start()
            obs, over = run.new_episode()
            continue
        label = run.env.teacher_action(teacher)
        a = label if label is not None else 0
        obs_next, r, done, trunc, _ = run.env.step(a)
        demos.add(obs.x, obs.mask, a, r, done, demo_action=-1 if label is None else a)
        if trunc:
            demos.start()
        obs, over = obs_next, done or trunc
        run.step += 1
        if run.step % 200 == 0:
            run.report({"phase": "demo"})


def imitate(run: Run, learner: Learner, demos: ReplayBuffer, updates: int) -> float:
    """2. Pre-train on the demonstrations (TD plus margin loss); the share of labelled states
    where the network then picks the teacher's action. Checkpoints the result."""
    for u in range(updates):
        idx = demos.sample(learner.config.batch_size, run.rng)
        if not idx:
            break
        run.losses.append(learner.update(demos.batch(idx, learner.device)))
        if u % 200 == 0:
            run.report({"phase": "pretrain", "loss": float(np.mean(run.losses[-200:]))})
    accuracy = _accuracy(learner.q_net, demos, run.rng, learner.device)
    run.report({"phase": "pretrain", "imitation_accuracy": accuracy})
    run.checkpoint(learner.q_net, "imitation")
    return accuracy


def q_learning(
    run: Run, learner: Learner, replay: ReplayBuffer, demos: ReplayBuffer, n_steps: int
) -> None:
    """3. Epsilon-greedy play for `n_steps` into `replay`; every `train_frequency` steps one
    batch of the agent's own transitions and one of demonstrations (`demo_ratio` of a batch)."""
    config = learner.config
    demos.start()
    obs, over = run.new_episode()
    for t in range(n_steps):
        if over:
            replay.start()
            obs, over = run.new_episode()
        eps = linear_schedule(
            config.start_e, config.end_e, int(config.exploration_fraction * n_steps), t
        )
        legal = np.flatnonzero(obs.mask)
        if run.rng.random() < eps:
            a = int(run.rng.choice(legal))
        else:
            with torch.no_grad():
                q = learner.q_net(torch.as_tensor(obs.x)).squeeze(-1).numpy()
            q[~obs.mask] = -np.inf
            a = int(np.argmax(q))
        obs_next, r, done, trunc, _ = run.env.step(a)
        replay.add(obs.x, obs.mask, a, r, done)
        if trunc:
            replay.start()
        obs, over = obs_next, done or trunc
        run.step += 1
        if t % config.train_frequency == 0 and len(replay) > config.batch_size:
            n_demo = int(config.batch_size * config.demo_ratio) if len(demos) else 0
            idx = replay.sample(config.batch_size - n_demo, run.rng)
            if idx:
                run.losses.append(learner.update(replay.batch(idx, learner.device)))
            didx = demos.sample(n_demo, run.rng) if n_demo else []
            if didx:
                run.losses.append(learner.update(demos.batch(didx, learner.device)))
        if run.step % 200 == 0:
            loss = float(np.mean(run.losses[-200:])) if run.losses else 0.0
            run.report({"phase": "q-learning", "epsilon": eps, "loss": loss})
        if config.eval_every and (t + 1) % config.eval_every == 0:
            run.checkpoint(learner.q_net, "q-learning")


def blend(run: Run, config: TrainConfig) -> None:
    """4. The conservative blend: score the best checkpoint with each teacher bonus on the
    validation workloads and ship the bonus `choose_blend` picks (saved with the weights)."""
    from scheduler.policy import load_weights

    net, _, _ = load_weights(run.out)  # its features: every column of this version
    tried: list[tuple[float, float]] = []
    for bonus in config.blend_bonuses:
        res = evaluate(
            net, run.eval_workloads, run.round_cfg, run.baselines, bonus, config.cost_weight
        )
        row = {
            "step": run.step,
            "phase": "blend",
            "teacher_bonus": bonus,
            "ratio_to_best": res["ratio_to_best"],
            "dqn": res["dqn"],
        }
        run.history.append(row)
        run.report({"eval": row})
        tried.append((bonus, res["ratio_to_best"]))
    best = run.best
    chosen = choose_blend(best["ratio_to_best"], tried, config.min_gain)
    if chosen[1]:  # the blend's own scores, beside the checkpoint it was built on
        scores = next(h for h in run.history[::-1] if h.get("teacher_bonus") == chosen[1])
        best = {**best, "network_phase": best.get("phase"), "phase": "blend", "dqn": scores["dqn"]}
    run.best = {**best, "ratio_to_best": chosen[0], "teacher_bonus": chosen[1]}
    save_weights(
        run.out, net.layers, run.round_cfg, {**(run.meta or {}), "teacher_bonus": chosen[1]}
    )


def train(
    config: TrainConfig,
    source: Callable[[int], Workload],
    eval_workloads: list[Workload],
    out: str | Path,
    progress: Callable[[int, dict], None] | None = None,
    meta: dict | None = None,
) -> dict:
    """Train (demonstrations, imitation, Q-learning, blend), evaluate every `eval_every` steps,
    and save the best checkpoint to `out`."""
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    started = time.perf_counter()
    round_cfg = RoundConfig(
        k=config.k,
        aging_s=config.aging_s,
        long_after_s=config.long_after_s,
        long_share=config.long_share,
        teacher_placement=config.teacher_placement,
    )
    learner = Learner.create(config, torch.device("cpu"))
    # SJF is the round's own teacher row (its pick under the long-job limit, inside the window
    # and guard rails); another heuristic is asked for its first placement
    teacher = (
        None if config.teacher == "sjf" else HEURISTICS[config.teacher](aging_s=config.aging_s)
    )
    demos = ReplayBuffer(max(1, int(config.total_steps * config.demo_fraction) + 1))
    replay = ReplayBuffer(config.buffer_size)
    env = SchedulingEnv(
        source,
        config=round_cfg,
        reward_scale=1.0,
        max_steps=config.max_episode_steps,
        cost_weight=config.cost_weight,
    )
    run = Run(env, rng, round_cfg, eval_workloads, Path(out), meta, progress, started)
    run.cost_weight = config.cost_weight
    demo_steps = int(config.total_steps * config.demo_fraction)
    collect_demonstrations(run, teacher, demos, demo_steps)
    updates = int(config.pretrain_updates * min(1.0, config.total_steps / 50_000))
    accuracy = imitate(run, learner, demos, updates)
    q_learning(run, learner, replay, demos, config.total_steps - demo_steps)
    if not eval_workloads or (run.history and run.history[-1]["step"] != run.step):
        run.checkpoint(learner.q_net, "final")
    if not eval_workloads:
        save_weights(out, to_numpy_layers(learner.q_net), round_cfg, meta)
        run.best = {"step": run.step, "phase": "final"}
    elif config.blend_bonuses and run.baselines is not None:
        blend(run, config)
    return {
        "config": asdict(config),
        "history": run.history,
        "best": run.best,
        "episodes": run.episodes,
        "imitation_accuracy": accuracy,
        "elapsed_s": time.perf_counter() - started,
        "network": learner.q_net,
    }


def choose_blend(
    network_ratio: float, tried: list[tuple[float, float]], min_gain: float
) -> tuple[float, float]:
    """(validation ratio, teacher bonus) to ship: the lowest ratio among the network alone (bonus
    0) and each (bonus, ratio) tried, unless it is not `min_gain` better than following the
    teacher (the largest bonus tried), which then wins."""
    chosen = (network_ratio, 0.0)
    for bonus, ratio in tried:
        if ratio < chosen[0]:
            chosen = (ratio, bonus)
    if not tried:
        return chosen
    follow_bonus, follow_ratio = max(tried)
    if chosen[1] != follow_bonus and chosen[0] > follow_ratio * (1.0 - min_gain):
        return (follow_ratio, follow_bonus)
    return chosen


def _accuracy(
    net: nn.Sequential,
    demos: ReplayBuffer,
    rng: np.random.Generator,
    device: torch.device,
    n: int = 2000,
) -> float:
    """Share of labelled demonstrations where the network's greedy action is the teacher's."""
    idx = [i for i in demos.sample(n, rng) if demos.demo[i] >= 0]
    if not idx:
        return math.nan
    hits = 0
    with torch.no_grad():
        for k in range(0, len(idx), 256):
            b = demos.batch(idx[k : k + 256], device)
            q = _masked(net(b.x).squeeze(-1), b.mask)
            hits += int((q.argmax(dim=1) == b.demo_actions).sum())
    return hits / len(idx)


def _masked(q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return q.masked_fill(~mask, -1e9)
