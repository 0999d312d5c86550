"""`dqn-bf`: a learned queue order under EASY backfilling (issue 17, item 3).

The network does not place jobs. It scores every pending job; the highest score becomes the next
*reserved head* and the rest follow in score order, and EASY backfilling (`BackfillPolicy`) does
the placing: jobs start in that order while they fit, the first that does not gets a reservation,
and later ones start early only if they do not delay it. So the policy cannot starve a job or
leave the cluster idle while something fits, whatever the network says: its choice is only *which
job the reservation protects next*, the framing of the RL-for-backfilling papers (a kernel network
scoring each job of the queue window, as in Zhang et al.'s RLScheduler, SC 2020).

Features per job (`job_features`): its estimate, wait, expansion factor and size, its rank under
the orders of the heuristics (FIFO, SJF, WFP3, UNICEP, F1; log-scaled, 0 = first), whether it
fits now, and the round's context (queue length, free share, backlog), which is the same on every
row and lets the network prefer one order where queues are deep and another where they are not.

Weights: `scheduler/weights/dqn_bf.npz` (trained by `scheduler/dqn_order_train.py`); without them
the policy refuses to load (it never silently becomes a heuristic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scheduler.heuristics import LONG_AFTER_S, BackfillPolicy, LongCap, LongCapHolds
from scheduler.mlp import ReluMLP, read_npz, write_npz
from scheduler.model import ClusterView, JobRequest, Placement

ORDER_FEATURE_VERSION = 1
RANK_ORDERS: tuple[str, ...] = ("fifo", "sjf", "wfp3", "unicep", "f1")
"""the heuristics' orders whose ranks are features, in column order (columns 0-4)"""
NUM_ORDER_FEATURES = 16
WINDOW_PER_ORDER = 8
"""a recorded state's candidates: the first this many jobs of each rank order and of the
network's own order (at most 48 rows)"""
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "dqn_bf.npz"
TAU_S = 10.0


class OrderWeightsError(ValueError):
    """The weights file is missing, unreadable or for other features."""


class MLP(ReluMLP):
    """ReLU MLP in numpy, one output per row."""

    def __init__(self, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        super().__init__(layers)
        if not self.layers or self.layers[0][0].shape[0] != NUM_ORDER_FEATURES:
            raise OrderWeightsError(f"network must take {NUM_ORDER_FEATURES} features per job")
        if self.layers[-1][0].shape[1] != 1:
            raise OrderWeightsError("network must give one score per job")


def save_order_weights(
    path: str | Path, layers: Sequence[tuple[np.ndarray, np.ndarray]], meta: dict
) -> None:
    """Write the layers (W as in x @ W + b) and `meta` (JSON) to an .npz file."""
    info = {"feature_version": ORDER_FEATURE_VERSION, "num_features": NUM_ORDER_FEATURES, **meta}
    write_npz(path, layers, info)


def load_order_weights(path: str | Path) -> tuple[MLP, dict]:
    """Read a file written by `save_order_weights`; OrderWeightsError saying what is wrong."""
    path = Path(path)
    try:
        layers, meta = read_npz(path)
    except FileNotFoundError:
        raise OrderWeightsError(
            f"{path}: no such file (train it: python -m scheduler.dqn_order_train)"
        ) from None
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise OrderWeightsError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    if meta.get("feature_version") != ORDER_FEATURE_VERSION:
        raise OrderWeightsError(
            f"{path}: feature version {meta.get('feature_version')} != {ORDER_FEATURE_VERSION}"
        )
    return MLP(layers), meta


def order_scores(tab: np.ndarray, now: float) -> np.ndarray:
    """(jobs x 5) scores of the rank orders (lower goes first), from the jobs' table rows
    (cpus, mem, whole GPUs, share memory, priority, submitted, estimate); the same formulas as
    the heuristics (`ScoreBackfillPolicy`)."""
    r = np.maximum(tab[:, 6], 1.0)
    n = np.maximum(tab[:, 0], 1.0)
    w = np.maximum(now - tab[:, 5], 0.0)
    return np.stack(
        [
            tab[:, 5],
            tab[:, 6],
            -((w / r) ** 3) * n,
            -w / (np.maximum(np.log2(n), 1.0) * r),
            np.log10(r) * n + 870.0 * np.log10(np.maximum(tab[:, 5], 1.0)),
        ],
        axis=1,
    )


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Rank of each row per column (0 = first; ties by row, i.e. queue order)."""
    out = np.empty(scores.shape, dtype=np.float64)
    idx = np.arange(len(scores))
    for c in range(scores.shape[1]):
        order = np.lexsort((idx, scores[:, c]))
        out[order, c] = idx
    return out


def job_features(tab: np.ndarray, now: float, ctx: np.ndarray) -> np.ndarray:
    """(jobs x NUM_ORDER_FEATURES) features of the pending jobs. `ctx`: cluster CPUs, GPUs, free
    CPUs, free GPUs, most free CPUs and GPUs on one node."""
    n_jobs = len(tab)
    cap_c, cap_g, free_c, free_g, max_c, max_g = (float(v) for v in ctx)
    x = np.zeros((n_jobs, NUM_ORDER_FEATURES), dtype=np.float32)
    if not n_jobs:
        return x
    ranks = _ranks(order_scores(tab, now))
    x[:, 0:5] = np.log2(1.0 + ranks) / 9.0
    r = np.maximum(tab[:, 6], 1.0)
    w = np.maximum(now - tab[:, 5], 0.0)
    x[:, 5] = np.log10(r) / 5.0
    x[:, 6] = np.log10(1.0 + w) / 6.0
    x[:, 7] = np.log10(1.0 + w / np.maximum(r, TAU_S)) / 3.0
    x[:, 8] = tab[:, 0] / cap_c if cap_c else 0.0
    x[:, 9] = tab[:, 2] / cap_g if cap_g else 0.0
    x[:, 10] = (tab[:, 0] <= max_c + 1e-9) & (tab[:, 2] <= max_g)
    x[:, 11] = math.log10(1.0 + n_jobs) / 3.0
    x[:, 12] = free_c / cap_c if cap_c else 0.0
    x[:, 13] = free_g / cap_g if cap_g else 0.0
    x[:, 14] = 1.0 if cap_g else 0.0
    work = float(np.sum(tab[:, 0] * r)) / max(cap_c, 1.0) / 3600.0
    x[:, 15] = math.log10(1.0 + work) / 3.0
    return x


def window(x: np.ndarray, net_scores: np.ndarray) -> np.ndarray:
    """Row indices of a recorded state's candidates: the first `WINDOW_PER_ORDER` of each rank
    order (rank features 0-4) and of the network's order."""
    k = WINDOW_PER_ORDER
    picks = [np.flatnonzero(x[:, c] < math.log2(1.0 + k) / 9.0 - 1e-6) for c in range(5)]
    picks.append(np.argsort(-net_scores, kind="stable")[:k])
    return np.unique(np.concatenate(picks))


class OrderBackfillPolicy(LongCapHolds, BackfillPolicy):
    """EASY backfilling in the order of a learned score (see the module docstring).

    `network` (or `weights`, a file) scores the jobs. For training, `column` in 0-4 follows a
    heuristic's rank order instead (a teacher), `epsilon` makes a random candidate the head, and
    `long_share` (off by default) adds SJF's long-job limit: jobs over 1 h start only while long
    jobs hold at most that share of the CPUs and GPUs (then the policy is no longer work-conserving).
    `recorder` (a list) receives one record per round with a choice to make (`picks` records:
    the head, then the next picks of the order, each over the candidates left)."""

    name = "dqn-bf"

    def __init__(
        self,
        *,
        weights: str | Path | None = None,
        network: MLP | None = None,
        column: int | None = None,
        epsilon: float = 0.0,
        seed: int = 0,
        recorder: list | None = None,
        picks: int = 1,
        long_share: float | None = None,
        aging_s: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(aging_s=aging_s, **options)
        if column is None and network is None:
            network, _ = load_order_weights(weights or DEFAULT_WEIGHTS)
        self.network = network
        self.column = column
        self.epsilon = float(epsilon)
        self.rng = np.random.default_rng(seed)
        self.recorder = recorder
        self.picks = int(picks)
        if long_share is not None and not 0.0 < long_share <= 1.0:
            raise ValueError("long_share must be in (0, 1], e.g. 0.4 (or None for no limit)")
        self.long_share = long_share
        self._cap: LongCap | None = None
        self._ctx = np.zeros(6)

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        """EASY in the learned order."""
        up = [n for n in view.nodes if n.is_up]
        self._ctx = np.array(
            [
                sum(n.capacity.cpus for n in up),
                sum(n.capacity.gpus for n in up),
                sum(n.free.cpus for n in up),
                sum(n.free.gpus for n in up),
                max((n.free.cpus for n in up), default=0.0),
                max((n.free.gpus for n in up), default=0),
            ],
            dtype=float,
        )
        self._cap = None
        if self.long_share is not None:
            self._cap = LongCap(view, now, LONG_AFTER_S, self.long_share)
        return self._easy(view, pending, now)

    def sort_columns(self, tab: np.ndarray, prio: np.ndarray, now: float) -> tuple[np.ndarray, ...]:
        x = job_features(tab, now, self._ctx)
        if self.column is not None:
            s = -x[:, self.column].astype(np.float64)
        else:
            assert self.network is not None
            s = self.network.scores(x).astype(np.float64)
        if self.recorder is not None and len(tab) > 1:
            cand = window(x, s)
            a = int(np.argmax(s[cand]))
            if self.epsilon and self.rng.random() < self.epsilon:
                a = int(self.rng.integers(len(cand)))
                s = s.copy()
                s[cand[a]] = np.inf
            self.recorder.append((now, x[cand], a, tab[:, 5].copy(), tab[:, 6].copy()))
            # a teacher's order beyond its head: the next picks, each over what is left
            left = np.delete(cand, a)
            for _ in range(self.picks - 1):
                if len(left) < 2:
                    break
                a2 = int(np.argmax(s[left]))
                self.recorder.append((now, x[left], a2, tab[:, 5].copy(), tab[:, 6].copy()))
                left = np.delete(left, a2)
        return (tab[:, 5], -s, -prio)

    def why_placed(self, job: JobRequest) -> str:
        return "first in the learned order"
