"""`dqn-self`: the DQN's network deciding alone, improved by rollouts of its base (issue 17).

The run-time policy and the rollouts, in numpy; the command line is `scheduler/dqn_rollout.py`:

    PYTHONPATH=$PWD python3 -m scheduler.dqn_rollout train --out scheduler/weights/dqn_self.npz
    PYTHONPATH=$PWD python3 -m scheduler.dqn_rollout eval --weights scheduler/weights/dqn_self.npz

The shipped `dqn` follows its teacher (a bonus of 1000 on SJF's pick within the long-job limit);
alone, its network is 1.3-6.1x worse (`docs/benchmarks.md`). Here the network is trained by
approximate policy iteration with rollouts (Bertsekas' rollout algorithm, with DAgger's states):

* The *base policy* is the shipped DQN round with its teacher (`base_action`: the shipped
  network plus the bonus, the round's 12 h aging off), which is what `DQNPolicy(aging_s=1e15)`
  does.
* At states the current network visits (`SchedulingEnv`, the round one placement at a time),
  a few candidates (the base's pick, the network's top picks, waiting) are each taken in a copy
  of the environment, then the base policy runs on (`rollout_values`): to the end of the episode
  by default, so the values are exact for the base and the best candidate is at least as good
  as the base's pick. The best is the label (the base's pick on a tie).
* The network (same rows as `scheduler/features.py`, version 4) learns to rank the label first
  (cross-entropy over the step's candidates), and the next iteration labels its own states.

At run time (`SelfDQNPolicy`, name `dqn-self`) there is no teacher bonus and no override: the
network's best-scoring candidate is taken (`DQNPolicy`'s round and guard rails, aging off).
No torch here: the trainer is `scheduler/dqn_rollout_train.py`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from scheduler.environment import SchedulingEnv
from scheduler.features import DEFAULT_CONFIG, TEACHER, Candidates, RoundConfig
from scheduler.model import Workload
from scheduler.policy import DQNPolicy, QNetwork, WeightsError, load_weights

WEIGHTS = Path(__file__).resolve().parent / "weights" / "dqn_self.npz"
BASE_WEIGHTS = Path(__file__).resolve().parent / "weights" / "dqn.npz"
NO_AGING_S = 1e15
"""the round's aging, off: one priority level per this many seconds waited"""
BASE_BONUS = 1000.0
"""the shipped policy's teacher bonus: the base follows SJF's pick within the long-job limit"""
TIE = 1e-9
"""a candidate must beat the base's pick by more than this (average bounded slowdown) to be the
label"""

Chooser = Callable[[Candidates], int]
Env = TypeVar("Env", bound=SchedulingEnv)


class SelfWeightsError(ValueError):
    """`dqn-self`'s weights are missing or not usable."""


def no_aging(config: RoundConfig = DEFAULT_CONFIG) -> RoundConfig:
    """`config` with the round's priority levels by age switched off."""
    return dataclasses.replace(config, aging_s=NO_AGING_S)


def greedy(net: QNetwork, bonus: float = 0.0) -> Chooser:
    """The step's best candidate by `net`'s score (plus `bonus` on the teacher's pick); waiting
    only where it is allowed. `DQNPolicy.decide` takes the same one."""

    def choose(obs: Candidates) -> int:
        q = net.scores(obs.x)
        if bonus:
            q = q + bonus * obs.x[:, TEACHER]
        if not obs.wait_allowed:
            q[-1] = -np.inf
        return int(np.argmax(q))

    return choose


def base_action(base: QNetwork) -> Chooser:
    """The base policy: the shipped DQN with its teacher bonus."""
    return greedy(base, BASE_BONUS)


def copy_env(env: Env) -> Env:
    """A copy of `env` to try an action in; the workload and its jobs (never changed) are shared."""
    wl = env.workload
    memo: dict[int, Any] = {id(wl): wl, id(wl.jobs): wl.jobs, id(wl.nodes): wl.nodes}
    for j in wl.jobs:
        memo[id(j)] = j
    out = copy.deepcopy(env, memo)
    sim = out.sim
    if sim is not None:
        # each node's row is a view into the simulator's node table; deepcopy makes it an array
        # of its own, so link them again (`_NodeState.row`)
        for i, st in enumerate(sim._state):
            st.row = sim._node_table[i]
    return out


def play_out(
    env: Env, action: int, then: Callable[[Candidates, Env], int], horizon: int = 0
) -> float:
    """The return of taking `action` now in a copy of `env` (`copy_env`), then `then`'s choices:
    to the end of the episode (`horizon` 0) or for `horizon` more steps. Returns are minus the
    bounded slowdown the jobs accrue (per job of the workload), so higher is better; what
    accrued before now is left out. `then` also reads the copy it steps (its queue, its round,
    whatever a subclass of the environment carries along)."""
    e = copy_env(env)
    obs, total, done, _, _ = e.step(int(action))
    k = 0
    while not done and (horizon <= 0 or k < horizon):
        obs, r, done, _, _ = e.step(then(obs, e))
        total += r
        k += 1
    return float(total)


def rollout_values(
    env: SchedulingEnv, actions: Sequence[int], base: Chooser, horizon: int = 0
) -> np.ndarray:
    """The return of taking each of `actions` now, then the base policy (`play_out`): to the end
    of the episode (`horizon` 0) or for `horizon` more steps; higher is better."""

    def then(obs: Candidates, _env: SchedulingEnv) -> int:
        return base(obs)

    return np.array([play_out(env, a, then, horizon) for a in actions], dtype=float)


def candidates_to_try(obs: Candidates, base_pick: int, net_scores: np.ndarray, top: int) -> list:
    """The base's pick, the network's `top` best placements and waiting (where allowed),
    without repeats, the base's pick first."""
    order = [int(i) for i in np.argsort(-net_scores[:-1], kind="stable")[:top]]
    tried = [base_pick, *order]
    if obs.wait_allowed:
        tried.append(len(obs) - 1)
    return list(dict.fromkeys(tried))


def rollout_label(
    env: SchedulingEnv,
    tried: Sequence[int],
    base: Chooser,
    horizon: int = 0,
    min_gain: float = 0.0,
) -> tuple[int, np.ndarray]:
    """The best of `tried` and every tried candidate's value. The first, the base's pick, stays
    the label unless another beats it by more than `TIE` plus `min_gain` times the size of its
    value (a share of the bounded slowdown still to accrue): small gains are mostly chance
    effects of one episode's later arrivals that the features cannot foresee."""
    v = rollout_values(env, tried, base, horizon)
    best = int(np.argmax(v))
    if v[best] <= v[0] + TIE + min_gain * abs(v[0]):
        best = 0
    return int(tried[best]), v


@dataclasses.dataclass
class Labelled:
    """One labelled step: the candidate rows, which may be chosen, the label, and its weight."""

    x: np.ndarray
    mask: np.ndarray
    label: int
    weight: float
    improved: bool


def collect(
    wl: Workload,
    act: Chooser,
    base: Chooser,
    net_scores: Callable[[np.ndarray], np.ndarray],
    *,
    every: int,
    offset: int,
    top: int,
    horizon: int = 0,
    min_gain: float = 0.0,
    rollout_weight: float = 1.0,
    base_every: int = 0,
    config: RoundConfig | None = None,
) -> tuple[list[Labelled], float]:
    """Run `act` on `wl` (the states DAgger labels). Every `every`-th step (from `offset`) is
    labelled by rollouts (`rollout_weight` where that beats the base's pick, 1 where it is the
    base's pick); every `base_every`-th other step (0: none) by the base's pick, weight 1, which
    keeps the network close to its base where no rollout looked. Returns the labels and the
    episode's average bounded slowdown."""
    env = SchedulingEnv(wl, config=config or no_aging())
    obs, _ = env.reset()
    out: list[Labelled] = []
    done, step = False, 0
    while not done:
        if len(obs) > 1:
            b = base(obs)
            if step % every == offset % every:
                tried = candidates_to_try(obs, b, net_scores(obs.x), top)
                if len(tried) > 1:
                    label, _ = rollout_label(env, tried, base, horizon, min_gain)
                    w = rollout_weight if label != b else 1.0
                    out.append(Labelled(obs.x, obs.mask.copy(), label, w, label != b))
            elif base_every and step % base_every == 0:
                out.append(Labelled(obs.x, obs.mask.copy(), b, 1.0, False))
        obs, _, done, _, _ = env.step(act(obs))
        step += 1
    return out, -env.episode_return


class SelfDQNPolicy(DQNPolicy):
    """The rollout-trained network deciding alone: `DQNPolicy`'s round with no teacher bonus,
    whatever the weights' metadata says, and the round's aging as the weights were trained
    (off). Refuses to load without its weights (it never silently becomes another policy)."""

    name = "dqn-self"

    def __init__(self, weights: str | Path | None = None, **options: Any) -> None:
        path = Path(weights) if weights is not None else WEIGHTS
        try:
            load_weights(path)
        except WeightsError as exc:
            raise SelfWeightsError(
                f"{exc} (train it: python -m scheduler.dqn_rollout train --out {path})"
            ) from None
        super().__init__(path, **options)
        self.teacher_bonus = 0.0

    @classmethod
    def from_network(
        cls, net: QNetwork, config: RoundConfig | None = None, teacher_bonus: float = 0.0
    ) -> DQNPolicy:
        """An in-memory network deciding alone (`teacher_bonus` must be 0)."""
        if teacher_bonus:
            raise ValueError("dqn-self decides alone: no teacher bonus")
        pol = DQNPolicy.from_network(net, config or no_aging(), 0.0)
        pol.__class__ = cls
        return pol


def at_least(minimum: float, kind: type = int) -> Callable[[str], float]:
    """An argparse type: a number of `kind` no smaller than `minimum`, or a one-line error."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind.__name__}") from None
        if not value >= minimum or value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text} must be a finite number >= {minimum}")
        return value

    return parse


def train_or_eval(
    doc: str,
    train: Callable[[Sequence[str]], None],
    evaluate: Callable[[Sequence[str]], None],
    argv: Sequence[str] | None = None,
) -> None:
    """A trainer's command line: `train ...` or `eval ...`, each with its own options (so
    `eval -h` shows the evaluation's options, not this parser's)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0], add_help=False)
    ap.add_argument("what", choices=("train", "eval"), help="then that command's options (-h)")
    ap.add_argument("-h", "--help", action="help", help="show this message and exit")
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("train", "eval"):
        (train if args[0] == "train" else evaluate)(args[1:])
        return
    ap.parse_args(args)  # -h prints the usage; anything else is a one-line error (exit 2)
