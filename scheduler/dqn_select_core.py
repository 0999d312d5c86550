"""`dqn-select`: a network that picks, at each decision, among the rounds several rules propose.

The action space of "learn which dispatching rule to apply at each decision" (the approach of
deep-RL job-shop schedulers, e.g. Luo 2020, "Dynamic scheduling for flexible job shop with new
job insertions by deep reinforcement learning", Applied Soft Computing 91): at every decision
point each rule of `RULES` decides the round on its own (the shipped DQN following its teacher
with aging off, the base of `dqn-self`; EASY in shortest-first, F1, first-come, UNICEP and WFP3
order; Tetris; SJF), identical rounds are merged into one candidate, waiting (start nothing, offered while a job
runs) is one more, and the network scores each candidate from `features`: which rules propose it
(multi-hot), what it starts (how many jobs, how much of the cluster, how long and how old they
are) and the regime (queue length, free capacity, long jobs queued and running, backlog, the
load offered so far). The best-scoring candidate's placements are the round; there is no teacher
bonus and no override.

Numpy only at run time (`scheduler.mlp`); the trainer is `scheduler/dqn_select_train.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scheduler.heuristics import HEURISTICS
from scheduler.mlp import ReluMLP, read_npz, write_npz
from scheduler.model import ClusterView, JobId, JobRequest, Placement, Policy

WEIGHTS = Path(__file__).resolve().parent / "weights" / "dqn_select.npz"
RULES: tuple[str, ...] = ("base", "sjf-bf", "f1", "backfill", "tetris", "unicep", "wfp3", "sjf")
"""the rules whose rounds are the candidates; "base" is `DQNPolicy(aging_s=1e15)` (the shipped
DQN with its teacher bonus: SJF within the long-job limit, the round's aging off)"""
LONG_S = 3600.0
"""a job with a longer estimate is long (the long-job limit's threshold)"""
NUM_CONTEXT = 12
NUM_CANDIDATE = 9
NUM_FEATURES = len(RULES) + 1 + NUM_CANDIDATE + NUM_CONTEXT
FEATURE_VERSION = 1
SMOOTH = 0.05
"""the share of each decision's scores in a rule's running score (see `Smoothed`)"""
Chooser = Callable[["Candidates"], int]


class SelectWeightsError(ValueError):
    """`dqn-select`'s weights are missing or not usable."""


def make_rule(name: str) -> Policy:
    """A fresh policy for rule `name` of `RULES`."""
    if name == "base":
        from scheduler.policy import DQNPolicy

        return DQNPolicy(aging_s=1e15)
    return HEURISTICS[name]()


class Candidates:
    """One decision's candidates: the distinct rounds, their rows, and which rules propose each."""

    def __init__(
        self, rounds: list[list[Placement]], rules: list[list[int]], x: np.ndarray
    ) -> None:
        self.rounds = rounds
        self.rules = rules
        """the indices (into `RULES`) of the rules that propose each round (waiting: maybe none)"""
        self.x = x

    def __len__(self) -> int:
        return len(self.rounds)

    def of_rule(self, r: int) -> int:
        """The candidate rule `r` proposes."""
        for i, rs in enumerate(self.rules):
            if r in rs:
                return i
        raise KeyError(r)


class Smoothed:
    """The network's choice, smoothed over decisions: each rule (and waiting) keeps a running
    score, `smooth` times its candidate's score this decision plus the rest of the last, and the
    candidate of the best running score is taken. A per-decision argmax flips between rules
    whose rounds mixed can be worse than either (validation: 4.6x the best heuristic on hpc);
    with 1.0 it is the per-decision argmax."""

    def __init__(self, net: ReluMLP, smooth: float = SMOOTH) -> None:
        self.net = net
        self.smooth = float(smooth)
        self.ema: np.ndarray | None = None

    def __call__(self, c: Candidates) -> int:
        q = self.net.scores(c.x)
        per = np.empty(len(RULES) + 1)
        for i, rs in enumerate(c.rules):
            per[rs] = q[i]
        waits = np.flatnonzero(c.x[:, len(RULES)])
        # waiting is offered only while a job runs (`candidates`): otherwise it keeps its score
        per[-1] = q[waits[0]] if len(waits) else np.nan
        if self.ema is None:
            self.ema = np.where(np.isnan(per), -1e9, per)
        else:
            mixed = (1 - self.smooth) * self.ema + self.smooth * per
            self.ema = np.where(np.isnan(per), self.ema, mixed)
        ema = self.ema if len(waits) else self.ema[:-1]
        best = int(np.argmax(ema))
        return int(waits[0]) if best == len(RULES) else c.of_rule(best)


class _Load:
    """The work offered since the first job was seen, per second, as a share of the cluster."""

    def __init__(self) -> None:
        self.seen: set[JobId] = set()
        self.first: float | None = None
        self.work = 0.0

    def update(self, pending: Sequence[JobRequest], now: float, size: Callable) -> float:
        if self.first is None:
            self.first = now
        for j in pending:
            if j.id not in self.seen:
                self.seen.add(j.id)
                self.work += j.est_runtime_s * size(j)
        span = max(now - self.first, 1.0)
        return min(self.work / span, 5.0)


def _cluster(view: ClusterView) -> tuple[float, float, float, float, int]:
    up = [n for n in view.nodes if getattr(n, "is_up", True)]
    cap_c = float(sum(n.capacity.cpus for n in up)) or 1.0
    cap_g = float(sum(n.capacity.gpus for n in up))
    free_c = float(sum(n.free.cpus for n in up))
    free_g = float(sum(n.free.gpus for n in up))
    return cap_c, cap_g, free_c, free_g, len(up)


def context_row(
    view: ClusterView, pending: Sequence[JobRequest], now: float, load: _Load
) -> tuple[np.ndarray, Callable[[JobRequest], float]]:
    """The regime's columns (same for every candidate) and a job's size as a share of the cluster."""
    cap_c, cap_g, free_c, free_g, n_up = _cluster(view)

    def size(j: JobRequest) -> float:
        c = j.request.cpus / cap_c
        g = j.request.gpus / cap_g if cap_g else 0.0
        return max(c, g)

    est = np.array([j.est_runtime_s for j in pending], float) if pending else np.zeros(1)
    wait = np.array([max(now - j.submitted_at, 0.0) for j in pending]) if pending else np.zeros(1)
    sizes = np.array([size(j) for j in pending]) if pending else np.zeros(1)
    run_long = 0.0
    for r in view.running:
        if r.est_end - now > LONG_S:
            c = r.request.cpus / cap_c
            g = r.request.gpus / cap_g if cap_g else 0.0
            run_long += max(c, g)
    offered = load.update(pending, now, size)
    ctx = np.array(
        [
            math.log1p(len(pending)) / 5,
            free_c / cap_c,
            free_g / cap_g if cap_g else 0.0,
            1.0 if cap_g else 0.0,
            math.log1p(n_up) / 3,
            float(np.mean(est > LONG_S)) if pending else 0.0,
            float(np.mean(np.log1p(est / 60))) / 5,
            math.log1p(float(wait.max()) / 3600) / 3,
            math.log1p(float(wait.mean()) / 3600) / 3,
            min(run_long, 2.0),
            math.log1p(float(np.sum(est * sizes)) / 3600) / 3,
            offered,
        ],
        np.float32,
    )
    return ctx, size


def candidate_row(
    placed: Sequence[Placement],
    by_id: dict[JobId, JobRequest],
    n_pending: int,
    now: float,
    size: Callable[[JobRequest], float],
    oldest: JobId | None,
    shortest: JobId | None,
) -> np.ndarray:
    """What a round starts: how many jobs, how much of the cluster, how long and old they are."""
    jobs = [by_id[p.job_id] for p in placed if p.job_id in by_id]
    if not jobs:
        return np.zeros(NUM_CANDIDATE, np.float32)
    est = np.array([j.est_runtime_s for j in jobs])
    wait = np.array([max(now - j.submitted_at, 0.0) for j in jobs])
    ids = {j.id for j in jobs}
    return np.array(
        [
            math.log1p(len(jobs)) / 3,
            len(jobs) / max(n_pending, 1),
            min(sum(size(j) for j in jobs), 2.0),
            float(np.mean(np.log1p(est / 60))) / 5,
            float(np.max(np.log1p(est / 60))) / 5,
            float(np.mean(np.log1p(wait / 3600))) / 3,
            float(np.mean(est > LONG_S)),
            1.0 if oldest in ids else 0.0,
            1.0 if shortest in ids else 0.0,
        ],
        np.float32,
    )


def _key(placed: Sequence[Placement]) -> tuple:
    return tuple(sorted((str(p.job_id), p.node_id, tuple(p.gpu_ids)) for p in placed))


class SelectPolicy:
    """Each rule of `RULES` decides the round; `choose` picks one of the distinct rounds (or
    waiting). Built from weights (`dqn-select`), or by the trainer with any chooser."""

    name = "dqn-select"

    def __init__(self, weights: str | Path | None = None, *, cost_weight: float = 0.0) -> None:
        if cost_weight:
            # the registry turns this into "bad options for policy 'dqn-select': ..."
            raise TypeError("it has no cost term; run it without a cost weight")
        path = Path(weights) if weights is not None else WEIGHTS
        self.net: ReluMLP | None
        self.net, self.meta = load_select(path)
        self.choose: Chooser = Smoothed(self.net, float(self.meta["smooth"]))
        self._setup()

    @classmethod
    def with_chooser(cls, choose: Chooser) -> SelectPolicy:
        """A policy whose pick is `choose(candidates)` (the trainer's oracle or network)."""
        self = cls.__new__(cls)
        self.net, self.meta, self.choose = None, {}, choose
        self._setup()
        return self

    def _setup(self) -> None:
        self.rules = [make_rule(n) for n in RULES]
        self._load = _Load()
        self._last: Policy | None = None
        self.picks = np.zeros(len(RULES) + 1, np.int64)
        """how often each rule's round was taken (a shared round counts for each; last: waiting)"""
        self.decisions = 0

    def candidates(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> Candidates:
        ctx, size = context_row(view, pending, now, self._load)
        rounds: list[list[Placement]] = []
        rules: list[list[int]] = []
        seen: dict[tuple, int] = {}
        for r, pol in enumerate(self.rules):
            placed = list(pol.decide(view, pending, now))
            k = _key(placed)
            if k not in seen:
                seen[k] = len(rounds)
                rounds.append(placed)
                rules.append([])
            rules[seen[k]].append(r)
        # waiting (start nothing): offered while a job runs, whose end brings the next decision
        wait_i = seen.get(())
        if wait_i is None and view.running:
            wait_i = len(rounds)
            rounds.append([])
            rules.append([])
        by_id = {j.id: j for j in pending}
        oldest = min(pending, key=lambda j: j.submitted_at).id if pending else None
        shortest = min(pending, key=lambda j: j.est_runtime_s).id if pending else None
        x = np.zeros((len(rounds), NUM_FEATURES), np.float32)
        n_r = len(RULES)
        for i, (placed, rs) in enumerate(zip(rounds, rules, strict=True)):
            x[i, rs] = 1.0
            x[i, n_r] = 1.0 if i == wait_i else 0.0
            x[i, n_r + 1 : n_r + 1 + NUM_CANDIDATE] = candidate_row(
                placed, by_id, len(pending), now, size, oldest, shortest
            )
            x[i, n_r + 1 + NUM_CANDIDATE :] = ctx
        return Candidates(rounds, rules, x)

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        if not pending:
            self._last = None
            return []
        cands = self.candidates(view, pending, now)
        if len(cands) == 1:
            best = 0
        else:
            best = self.choose(cands)
        self.decisions += 1
        for r in cands.rules[best]:
            self.picks[r] += 1
        if not cands.rules[best]:
            self.picks[-1] += 1
        self._last = self.rules[cands.rules[best][0]] if cands.rules[best] else None
        return list(cands.rounds[best])

    def explain(self, job_id: JobId) -> str:
        if self._last is None:
            return "waiting: the network chose to start nothing this round"
        return self._last.explain(job_id)


def load_select(path: Path) -> tuple[ReluMLP, dict]:
    """The network and metadata of `dqn-select`'s weights, or SelectWeightsError (one line)."""
    try:
        layers, meta = read_npz(path)
    except FileNotFoundError:
        raise SelectWeightsError(f"no weights at {path}") from None
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise SelectWeightsError(f"{path} is not a dqn-select weights file ({exc})") from None
    if not layers or layers[0][0].shape[0] != NUM_FEATURES or layers[-1][0].shape[1] != 1:
        raise SelectWeightsError(
            f"{path} does not fit dqn-select's {NUM_FEATURES} features (retrain it)"
        )
    if meta.get("rules") != list(RULES):
        raise SelectWeightsError(f"{path} was trained on other rules ({meta.get('rules')})")
    smooth = meta.setdefault("smooth", SMOOTH)
    if not isinstance(smooth, (int, float)) or not 0.0 < smooth <= 1.0:
        raise SelectWeightsError(f"{path}: 'smooth' must be in (0, 1] (got {smooth!r})")
    return ReluMLP(layers), meta


def save_select(path: str | Path, layers: Sequence[tuple[Any, Any]], meta: dict) -> None:
    write_npz(path, layers, {**meta, "rules": list(RULES), "features": FEATURE_VERSION})
