"""The trained DQN scheduling policy at run time, in numpy (no torch on the login node).

`DQNPolicy` scores every feasible (job, node) candidate of a round plus "wait" with the Q network
(see `scheduler.features`) and takes the best: a placement, or waiting (hold the queue head's
node, or pass over the window of jobs and go on with the next), until no window has anything left.
Weights come from `scheduler/weights/dqn.npz` unless a path is given. Missing or unreadable weights:
one log line, and the policy falls back to EASY backfilling.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scheduler.features import (
    DEFAULT_CONFIG,
    FEATURE_NAMES,
    FEATURE_NAMES_V4,
    FEATURE_VERSION,
    NUM_FEATURES,
    TEACHER,
    Candidates,
    FairShareFactor,
    Round,
    RoundConfig,
    ShapeBook,
    feature_columns,
)
from scheduler.heuristics import (
    BackfillPolicy,
    RoundState,
    fmt_duration,
    fmt_hours,
    held_shares,
)
from scheduler.mlp import ReluMLP, read_npz, write_npz
from scheduler.model import ClusterView, JobId, JobRequest, Placement

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "dqn.npz"


class WeightsError(ValueError):
    """A weights file that cannot be used."""


FEATURE_VERSIONS = (4, FEATURE_VERSION)
"""feature versions whose weights load: 4 (the columns of `FEATURE_NAMES_V4`, listed nowhere in
the file) and the current one (each file lists its columns)"""


class QNetwork(ReluMLP):
    """A small MLP (ReLU hidden layers, one output) over candidate feature rows, in numpy.

    `features`: the columns it reads, by name, in its input order (default: all of
    `FEATURE_NAMES`); `scores` takes full candidate rows and picks those columns."""

    def __init__(
        self,
        layers: Sequence[tuple[np.ndarray, np.ndarray]],
        features: Sequence[str] = FEATURE_NAMES,
    ) -> None:
        if not layers:
            raise WeightsError("no layers")
        super().__init__(layers)
        self.features = tuple(features)
        try:
            cols = feature_columns(self.features)
        except ValueError as e:
            raise WeightsError(str(e)) from None
        n = len(self.features)
        if self.layers[0][0].shape[0] != n or self.layers[-1][0].shape[1] != 1:
            raise WeightsError(
                f"network shape {self.layers[0][0].shape[0]}->{self.layers[-1][0].shape[1]} "
                f"does not match {n} features -> 1 score"
            )
        for (w, b), (w2, _) in zip(self.layers, self.layers[1:], strict=False):
            if w.shape[1] != b.shape[0] or w.shape[1] != w2.shape[0]:
                raise WeightsError("layer shapes do not chain")
        self.columns: np.ndarray | None = (
            None if np.array_equal(cols, np.arange(NUM_FEATURES)) else cols
        )
        """the columns of a full candidate row it reads (None: all, in order)"""

    @property
    def uses_fragmentation(self) -> bool:
        """It reads `frag_growth` or `frag_node` (the round must compute them)."""
        return "frag_growth" in self.features or "frag_node" in self.features

    @property
    def uses_fair_share(self) -> bool:
        """It reads `fair_share`."""
        return "fair_share" in self.features

    def scores(self, x: np.ndarray) -> np.ndarray:
        """The score of each full candidate row of `x` (`NUM_FEATURES` columns) -> (n,)."""
        if self.columns is not None:
            x = np.asarray(x)[:, self.columns]
        return super().scores(x)


def save_weights(
    path: str | Path,
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    config: RoundConfig,
    meta: dict | None = None,
    features: Sequence[str] = FEATURE_NAMES,
) -> None:
    """Write layers (W as in x @ W + b), the names of the features they read in input order,
    and the round config to an .npz file."""
    info = {
        "feature_version": FEATURE_VERSION,
        "num_features": len(features),
        "features": list(features),
        "k": config.k,
        "aging_s": config.aging_s,
        "starve_after_s": config.starve_after_s,
        "long_after_s": config.long_after_s,
        "long_share": config.long_share,
        "teacher_placement": config.teacher_placement,
        **(meta or {}),
    }
    write_npz(path, layers, info)


def load_weights(path: str | Path) -> tuple[QNetwork, RoundConfig, dict]:
    """Read an .npz written by `save_weights`; raise WeightsError saying what is wrong."""
    path = Path(path)
    try:
        layers, meta = read_npz(path)
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise WeightsError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise WeightsError(f"{path}: its metadata is not a JSON object")
    version = meta.get("feature_version")
    if version not in FEATURE_VERSIONS:
        raise WeightsError(
            f"{path}: feature version {version} is not one of "
            f"{', '.join(map(str, FEATURE_VERSIONS))}"
        )
    names = meta.get("features")
    if names is None:
        if version != 4:
            raise WeightsError(f"{path}: feature version {version} lists no features")
        names = FEATURE_NAMES_V4
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise WeightsError(f"{path}: 'features' must be a list of feature names")
    config = _round_config(path, meta)
    try:
        net = QNetwork(layers, names)
    except WeightsError as e:
        raise WeightsError(f"{path}: {e}") from None
    return net, config, meta


TEACHER_PLACEMENTS = ("bestfit", "fragmentation")


def _round_config(path: Path, meta: dict) -> RoundConfig:
    """The round config of a weights file's metadata; WeightsError naming a value that is not
    usable (a number where one is needed, a known teacher placement)."""

    def maybe(key: str, default: float | None) -> float | None:
        v = meta.get(key, default)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v != v):
            raise WeightsError(f"{path}: {key!r} must be a number, not {str(v)[:40]!r}")
        return v

    def number(key: str, default: float) -> float:
        v = maybe(key, default)
        if v is None:
            raise WeightsError(f"{path}: {key!r} must be a number, not null")
        return v

    k = number("k", 32)
    if not (k >= 1 and k < 1e9 and k == int(k)):
        raise WeightsError(f"{path}: 'k' must be a whole number >= 1, not {k!r}")
    number("teacher_bonus", 0.0)  # read by DQNPolicy
    placement = meta.get("teacher_placement", "bestfit")
    if placement not in TEACHER_PLACEMENTS:
        raise WeightsError(
            f"{path}: teacher placement {str(placement)[:40]!r} is not one of "
            f"{', '.join(TEACHER_PLACEMENTS)}"
        )
    return RoundConfig(
        k=int(k),
        aging_s=maybe("aging_s", 3600.0),
        starve_after_s=maybe("starve_after_s", 86400.0),
        long_after_s=float(number("long_after_s", DEFAULT_CONFIG.long_after_s)),
        long_share=maybe("long_share", None),
        teacher_placement=placement,
    )


class DQNPolicy:
    """The learned policy: greedy on Q over feasible candidates, with the guard rails of
    `scheduler.features` (priorities, aging, starvation protection, no over-commit).

    `teacher_bonus` (from the weights' metadata, chosen on validation workloads at the end of
    training) is added to the score of the teacher's pick (SJF's within the long-job limit, or
    waiting): the policy leaves it only where the network scores another candidate higher by more
    than that. `cost_weight` > 0 subtracts, from each pair's score, that weight times the node's
    price share plus 1 for waking an idle node (the heuristics' cost term); 0 keeps the trained
    behaviour.
    """

    name = "dqn"
    sees_fair_share = True
    """`SharedLabPolicy` hands it the round's fair share (`decide(..., fair_share=...)`)"""

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        k: int | None = None,
        aging_s: float | None = None,
        starve_after_s: float | None = None,
        cost_weight: float = 0.0,
    ) -> None:
        if not cost_weight >= 0:
            raise ValueError("cost_weight must be >= 0")
        self.cost_weight = float(cost_weight)
        path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
        self.weights_path: Path | None = path
        self.net: QNetwork | None = None
        self.fallback: BackfillPolicy | None = None
        self.meta: dict = {}
        self.teacher_bonus = 0.0
        try:
            self.net, config, self.meta = load_weights(path)
            self.teacher_bonus = float(self.meta.get("teacher_bonus", 0.0))
        except WeightsError as e:
            log.warning("dqn policy: %s; falling back to EASY backfilling", e)
            self.fallback = BackfillPolicy(cost_weight=self.cost_weight)
            config = DEFAULT_CONFIG
        self.config = RoundConfig(
            k=config.k if k is None else int(k),
            aging_s=config.aging_s if aging_s is None else aging_s,
            starve_after_s=config.starve_after_s if starve_after_s is None else starve_after_s,
            long_after_s=config.long_after_s,
            long_share=config.long_share,
            teacher_placement=config.teacher_placement,
        )
        self._placed: dict[JobId, tuple] = {}
        self._waiting: dict[JobId, str] = {}
        self._notes: list[tuple] = []
        self.shapes = ShapeBook() if self.net is not None and self.net.uses_fragmentation else None

    @classmethod
    def from_network(
        cls, net: QNetwork, config: RoundConfig = DEFAULT_CONFIG, teacher_bonus: float = 0.0
    ) -> DQNPolicy:
        """A policy around an in-memory network (training and evaluation)."""
        self = cls.__new__(cls)
        self.teacher_bonus = float(teacher_bonus)
        self.weights_path = None
        self.net, self.fallback, self.meta, self.config = net, None, {}, config
        self.cost_weight = 0.0
        self._placed, self._waiting, self._notes = {}, {}, []
        self.shapes = ShapeBook() if net.uses_fragmentation else None
        return self

    @property
    def is_fallback(self) -> bool:
        """True when the weights could not be loaded and backfilling decides."""
        return self.fallback is not None

    def decide(
        self,
        view: ClusterView,
        pending: Sequence[JobRequest],
        now: float,
        fair_share: FairShareFactor | None = None,
    ) -> list[Placement]:
        """Take the best-scoring candidate of each window until no window has anything left.
        `fair_share`: the lab's fair share, for weights that read each job's factor (None: off,
        every factor 1.0)."""
        if self.fallback is not None:
            return self.fallback.decide(view, pending, now)
        self._placed = {}
        self._waiting = {}
        self._notes = []
        assert self.net is not None
        rnd = Round(
            view,
            pending,
            now,
            self.config,
            fair_share=fair_share if self.net.uses_fair_share else None,
            shapes=self.shapes,
        )
        out: list[Placement] = []
        last: tuple[Round, Candidates, np.ndarray] | None = None  # the last scored step (raw)
        held: float | None = None  # the network's wait score when waiting was chosen
        by_teacher = False  # and whether that wait was the teacher's pick
        while True:
            if rnd.ended and rnd.wants_next_window():
                # passed over: its candidates would be "wait" alone, so skip building them
                rnd.wait_holds = False
                self._note(rnd, last, held, by_teacher)
                held = None
                rnd = rnd.next_window()
                continue
            cands = rnd.candidates()
            if len(cands) <= 1 and rnd.wants_next_window():
                # nothing left in this window: look at the next jobs of the queue
                if rnd.ended:  # passed over: note why its jobs wait before moving on
                    self._note(rnd, last, held, by_teacher)
                    held = None
                rnd = rnd.next_window()
                continue
            if len(cands) <= 1:
                break
            raw = self._scores(rnd, cands)
            q = raw.copy()
            if self.teacher_bonus:
                # the conservative blend: leave the teacher's pick only for a clearly better score
                q += self.teacher_bonus * cands.x[:, TEACHER]
            if self.cost_weight:
                # like the heuristics: the node's price relative to the dearest, plus 1 to wake an
                # idle node (the network was trained without a cost term)
                q[:-1] -= self.cost_weight * (cands.x[:-1, 9] + cands.x[:-1, 8])
            if not cands.wait_allowed:
                q[-1] = -np.inf
            last = (rnd, cands, raw)
            best = int(np.argmax(q))
            p = rnd.place(cands, best)
            if p is None:
                held = float(raw[best])
                by_teacher = bool(self.teacher_bonus and cands.x[best, TEACHER])
                continue  # holding the head's node goes on; a passed window offers nothing more
            out.append(p)
            # the words are built when `explain` asks (a replay never does)
            teacher = bool(self.teacher_bonus and cands.x[best, TEACHER])
            self._placed[p.job_id] = (p, teacher, raw, best, float(q[best]))
        self._note(rnd, last, held, by_teacher)
        return out

    def _scores(self, rnd: Round, cands: Candidates) -> np.ndarray:
        """The network's score of each of this step's candidates (a subclass whose network reads
        more of the round than the rows, such as which job each row is, hands it over here)."""
        assert self.net is not None
        return self.net.scores(cands.x)

    def _placed_reason(self, job_id: JobId) -> str:
        """Why job `job_id` was placed in the last decision (see `decide`)."""
        p, teacher, raw, best, q_best = self._placed[job_id]
        gpus = f" (GPU {','.join(map(str, p.gpu_ids))})" if p.gpu_ids else ""
        if teacher:
            within = ", within the long-job limit" if self.config.long_share else ""
            node = (
                "the node it fragments least"
                if self.config.teacher_placement == "fragmentation" and self.shapes is not None
                else "best-fit node"
            )
            return (
                f"placed on {p.node_id}{gpus}: SJF's pick (shortest estimate that fits, "
                f"{node}{within}); network score {raw[best]:.2f}, its best "
                f"{raw[:-1].max():.2f} of {len(raw) - 1} placements"
            )
        return f"placed on {p.node_id}{gpus}: best score {q_best:.2f} of {len(raw)} candidates"

    def _note(
        self,
        rnd: Round,
        last: tuple[Round, Candidates, np.ndarray] | None,
        held: float | None,
        by_teacher: bool,
    ) -> None:
        """Keep what `explain` needs to say why window `rnd`'s jobs wait: the words are only
        built when asked (a replay asks for none of them). The node state is copied, as later
        windows of the round place on it."""
        # a shallow copy (as copy.copy, without its generic machinery: once per window)
        st = RoundState.__new__(RoundState)
        st.__dict__.update(rnd.state.__dict__)
        st.fc, st.fm, st.fg, st.fpm = st.fc.copy(), st.fm.copy(), st.fg.copy(), st.fpm.copy()
        self._notes.append((rnd, last if last is not None and last[0] is rnd else None, held,
                            by_teacher, st))  # fmt: skip

    def _write_notes(self) -> None:
        """Build the waiting reasons of the last decision's notes (see `_note`)."""
        for rnd, last, held, by_teacher, st in self._notes:
            self._note_waiting(rnd, st, _best_scores(last, rnd), held, by_teacher)
        self._notes = []

    def _note_waiting(
        self,
        rnd: Round,
        state: RoundState,
        seen: dict[JobId, tuple[float, str]],
        held: float | None,
        by_teacher: bool = False,
    ) -> None:
        """Why each job of window `rnd` still waits (`held`: the network's score for waiting,
        when waiting was chosen; `by_teacher`: it was the teacher's pick; `state`: the free
        resources when the window was left)."""
        head = rnd.head_id
        res = state.ids[rnd.res_node] if rnd.res_node >= 0 else None
        for j, job in enumerate(rnd.window):
            if not rnd.alive[j]:
                continue
            need = job.request.describe()
            fits = state.feasible(job.request)
            if job.id == head and res is not None:
                self._waiting[job.id] = (
                    f"waiting for {need}; first in line, {res} frees them in "
                    f"~{fmt_duration(rnd.t_res - rnd.now)}"
                )
            elif fits.any() and held is not None and job.id in seen and rnd.ended:
                s, node = seen[job.id]
                scores = f"network scores: its best {s:.2f}, waiting {held:.2f}"
                limit = rnd.config.long_share
                after = fmt_hours(rnd.config.long_after_s)
                has_gpus = rnd.cap_g_total > 0
                c, g = rnd.long_c / max(rnd.cap_c_total, 1e-9), 0.0
                if has_gpus:
                    g = rnd.long_g / rnd.cap_g_total
                if by_teacher and rnd.is_long[j] and limit is not None:
                    c += float(rnd.req[j, 0]) / max(rnd.cap_c_total, 1e-9)
                    if has_gpus:
                        g += float(rnd.req_geq[j]) / rnd.cap_g_total
                    self._waiting[job.id] = (
                        f"held back: fits on {node}, but with it long jobs (estimate over "
                        f"{after}) would hold {held_shares(c, g, has_gpus)}, over the limit of "
                        f"{limit:.0%} each; the rest is kept for short jobs ({scores})"
                    )
                else:
                    kind = f"long (estimate over {after})" if rnd.is_long[j] else "short"
                    self._waiting[job.id] = (
                        f"waiting: fits on {node}, but the policy chose to wait rather than "
                        f"start it now ({scores}); this job is {kind}; long jobs hold "
                        f"{held_shares(c, g, has_gpus)}"
                    )
            elif fits.any() and held is not None and job.id in seen:
                s, node = seen[job.id]
                self._waiting[job.id] = (
                    f"waiting: fits on {node} but would delay job {head} (network scores: its "
                    f"best {s:.2f}, holding {held:.2f})"
                )
            elif fits.any():
                node = state.ids[int(np.argmax(fits))]
                self._waiting[job.id] = (
                    f"waiting: fits on {node}, but jobs of higher (or aged) priority go first"
                )
            else:
                self._waiting[job.id] = f"waiting for {need}; no node has it free now"

    def explain(self, job_id: JobId) -> str:
        """Why the job was placed where it was, or why it is still waiting (last round)."""
        if self.fallback is not None:
            return "dqn weights unavailable, EASY backfilling: " + self.fallback.explain(job_id)
        if job_id in self._placed:
            return self._placed_reason(job_id)
        if self._notes:
            self._write_notes()
        if job_id in self._waiting:
            return self._waiting[job_id]
        return "waiting: not among the jobs considered in the last round (queue position too far)"


def _best_scores(
    last: tuple[Round, Candidates, np.ndarray] | None, rnd: Round
) -> dict[JobId, tuple[float, str]]:
    """Best score and node of each job in the last scored step of round `rnd`."""
    if last is None or last[0] is not rnd:
        return {}
    _, cands, q = last
    out: dict[JobId, tuple[float, str]] = {}
    for i in np.argsort(-q[:-1], kind="stable").tolist():
        job = rnd.window[int(cands.jobs[i])]
        if job.id not in out:
            out[job.id] = (float(q[i]), rnd.state.ids[int(cands.nodes[i])])
    return out
