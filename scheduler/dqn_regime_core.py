"""`dqn-regime`: the DQN's network deciding alone, with what the workload is like as input
(issue 17, item 3).

The run-time policy, in numpy; the trainer is `scheduler/dqn_regime_train.py`, the command line
`scheduler/dqn_regime.py`:

    PYTHONPATH=$PWD python3 -m scheduler.dqn_regime train --out scheduler/weights/dqn_regime.npz
    PYTHONPATH=$PWD python3 -m scheduler.dqn_regime eval

Where `dqn-self` (its base: SJF within the long-job limit, the round's aging off) loses, the
measured causes differ by family (`docs/benchmarks.md`, "DQN that knows the regime"): on lab-long
the limit itself (long jobs hold at most 40 % of the cluster; 60-70 % wins there, while hpc and
the Alibaba trace want 40 %), on deeprm the order (SJF passes over the large jobs of a small
cluster). No one rule is right for every family, and a candidate row says nothing about the
workload beyond the queue of this instant. So:

* `Regime` keeps what the policy has seen of the workload so far (every job that was ever
  pending): the offered load by estimate, the share of long jobs, the mean size of long and of
  short jobs, the long jobs' mean estimate, whether the cluster has GPUs. Only estimates and
  requests: what a scheduler knows.
* Each candidate row (`scheduler/features.py`, version 4 columns, as the round computes them)
  gets two more columns, the rows two other rules would take, computed from the rows' own
  features: `alt_choice`, SJF under a long-job limit of `ALT_SHARE` (as the round computes
  `teacher_choice` for 40 %), and `dense_choice`, the least estimate per squared size; and the
  regime's columns.
* One MLP scores the rows; the best is taken: no teacher bonus, no override (`RegimePolicy`).
* Version 2 of the inputs (`INPUTS_V2`, `dqn_regime2.npz`; issue 17's fifth try) adds
  `wfp3_choice` and `f1_choice`: the row of the first job EASY in that order starts now, asked of
  the heuristics themselves at each decision time (`Followers`, `follow_pick`: the rows are tied
  to their jobs by identity, `row_jobs`). The weights' width says which version they are; version
  1 (`dqn_regime.npz`) runs as before, by its path.
* Version 3 (`dqn_regime3.npz`; issue 17's sixth try) reads version 2's inputs, trained on one
  rule per family of workloads (`--labels whole --group family`), and names version 2's network
  for clusters without GPUs (`cpu_only`), which decides there. It is what `dqn-regime` runs
  (`SHIPPED`), offered beside the heuristics and `dqn` (settings, the console, the autopilot).

The labels (the trainer) come from rollouts: at states where the rules' picks differ, the rest of
the episode under each rule; the best rule (the base unless another beats it by a margin) labels
the states until the next comparison.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scheduler.dqn_rollout_core import BASE_BONUS, Chooser, greedy, no_aging
from scheduler.features import (
    FEATURE_NAMES,
    FEATURE_NAMES_V4,
    TAU_S,
    TEACHER,
    Candidates,
    Round,
)
from scheduler.heuristics import LONG_AFTER_S
from scheduler.mlp import Layers, ReluMLP, read_npz, write_npz
from scheduler.model import ClusterView, JobId, JobRequest, Placement
from scheduler.policy import DQNPolicy, QNetwork

WEIGHTS = Path(__file__).resolve().parent / "weights" / "dqn_regime.npz"
KIND = "dqn-regime"
ALT_SHARE = 0.6
"""the other rule's long-job limit (share of the CPUs and of the GPUs long jobs may hold)"""
BASE_SHARE = 0.4
"""the base's limit (`RoundConfig.long_share`)"""
REGIME_NAMES = (
    "offered_load",  # estimated work seen per second over the cluster's capacity / 4, clipped
    "long_jobs",  # share of the jobs seen that are long (estimate over `LONG_AFTER_S`)
    "long_size",  # mean size of a long job (share of the cluster's GPUs, or CPUs) x 4, clipped
    "short_size",  # the same for short jobs
    "long_est",  # log1p(mean estimate of a long job / 1 h) / 6
    "has_gpus",  # the cluster has GPUs (sizes and load are then in GPUs)
)
INPUTS = (*FEATURE_NAMES_V4, "alt_choice", "dense_choice", *REGIME_NAMES)
"""what the network reads per candidate, in order (`dqn_regime.npz`)"""
SCORE_RULES = ("wfp3", "f1")
"""the EASY heuristics' orders whose picks `INPUTS_V2` adds (`score_pick`)"""
INPUTS_V2 = (
    *FEATURE_NAMES_V4,
    "alt_choice",
    "dense_choice",
    *(f"{r}_choice" for r in SCORE_RULES),
    *REGIME_NAMES,
)
"""the second version's inputs (`dqn_regime2.npz`): also the rows `wfp3` and `f1` take"""
KNOWN_INPUTS = (INPUTS, INPUTS_V2)
WEIGHTS_V2 = Path(__file__).resolve().parent / "weights" / "dqn_regime2.npz"
WEIGHTS_V3 = WEIGHTS_V2.with_name("dqn_regime3.npz")
SHIPPED = WEIGHTS_V3
"""what `dqn-regime` runs: version 3 (version 2's network on clusters without GPUs), at most
0.99x the best heuristic on every family at every load on seeds 53-72 (`docs/benchmarks.md`,
"DQN that knows the regime, sixth try"); versions 1 and 2 load by their paths"""
_V4 = np.array([FEATURE_NAMES.index(n) for n in FEATURE_NAMES_V4])
_COL = {n: FEATURE_NAMES.index(n) for n in FEATURE_NAMES}
_STARVE_LOG = math.log1p(86400.0 / TAU_S) / 8.0
"""`log_wait` of a job that has waited the round's `starve_after_s` (the limit never holds it)"""


class RegimeWeightsError(ValueError):
    """`dqn-regime`'s weights are missing or not usable."""


REGIME_JOBS = 2000
"""`Regime` reads the last this many jobs it has seen: every job of a training or benchmark
episode (1,000 jobs, 1,024 for an SWF window), and a live lab's recent weeks rather than its
whole history (the inputs follow the workload as it drifts; memory stays bounded)"""


class Regime:
    """What the policy has seen of the workload: the last `REGIME_JOBS` jobs that were pending
    (see the module)."""

    def __init__(self) -> None:
        self.seen: set = set()
        self.recent: deque[tuple[JobId, float, float, float, int]] = deque()
        """(id, submitted, size, estimate, long) of each job counted, oldest first"""
        self.first = math.inf
        self.work = 0.0
        self.n = [0, 0]  # short, long
        self.size = [0.0, 0.0]
        self.long_est = 0.0
        self.vector = np.zeros(len(REGIME_NAMES), np.float32)
        self.forgotten = 0  # jobs dropped since the sums were last added up afresh
        self.plans: dict = {}
        """what `Followers` start at this decision time (`INPUTS_V2`)"""

    def _count(self, sub: float, size: float, est: float, long: int, sign: float) -> None:
        self.work += sign * size * est
        self.n[long] += int(sign)
        self.size[long] += sign * size
        if long:
            self.long_est += sign * est

    def _forget_oldest(self, pending_ids: set) -> None:
        """Drop the oldest counted job (a job still pending stays in `seen`, so it is never
        counted twice)."""
        jid, sub, size, est, long = self.recent.popleft()
        self._count(sub, size, est, long, -1.0)
        if jid not in pending_ids:
            self.seen.discard(jid)
        if sub <= self.first:
            self.first = min((r[1] for r in self.recent), default=math.inf)

    def _recount(self) -> None:
        """The sums afresh from the jobs counted: each drop subtracts what was added long
        before, and over weeks of a live lab the rounding would add up."""
        self.work, self.n, self.size, self.long_est = 0.0, [0, 0], [0.0, 0.0], 0.0
        for _, sub, size, est, long in self.recent:
            self._count(sub, size, est, long, 1.0)
        self.forgotten = 0

    def observe(self, pending: Sequence[JobRequest], now: float, cap: float, gpus: bool) -> None:
        """Count the jobs of `pending` not seen before (`cap`: the cluster's GPUs, or CPUs when
        it has none; nothing is counted without any) and update `vector`."""
        if cap <= 0:
            return  # no capacity to size jobs against (every host down): count them later
        new = False
        for j in pending:
            if j.id in self.seen:
                continue
            self.seen.add(j.id)
            new = True
            size = (float(j.request.gpus) if gpus else float(j.request.cpus)) / cap
            est = float(j.est_runtime_s)
            long = int(est > LONG_AFTER_S)
            sub = float(j.submitted_at)
            self.first = min(self.first, sub)
            self._count(sub, size, est, long, 1.0)
            self.recent.append((j.id, sub, size, est, long))
        if len(self.recent) > REGIME_JOBS:
            pending_ids = {j.id for j in pending}
            while len(self.recent) > REGIME_JOBS:
                self._forget_oldest(pending_ids)
                self.forgotten += 1
            if self.forgotten >= REGIME_JOBS:
                self._recount()
            if len(self.seen) > 2 * REGIME_JOBS + len(pending_ids):
                # ids forgotten while pending, since ended: keep only the counted and the queued
                self.seen = {r[0] for r in self.recent} | pending_ids
        if not new and self.vector[-1] == float(gpus):
            return
        total = max(1, sum(self.n))
        span = max(now - self.first, 0.0) + 3600.0 if self.n[0] + self.n[1] else 1.0
        ns, nl = max(1, self.n[0]), max(1, self.n[1])
        self.vector = np.array(
            [
                min(1.0, self.work / span / 4.0),
                self.n[1] / total,
                min(1.0, 4.0 * self.size[1] / nl),
                min(1.0, 4.0 * self.size[0] / ns),
                math.log1p(self.long_est / nl / 3600.0) / 6.0,
                float(gpus),
            ],
            np.float32,
        )

    def observe_view(self, view: ClusterView, pending: Sequence[JobRequest], now: float) -> None:
        """`observe` with the capacity of the view's up nodes."""
        gpus = float(sum(n.capacity.gpus for n in view.nodes if n.is_up))
        cpus = float(sum(n.capacity.cpus for n in view.nodes if n.is_up))
        self.observe(pending, now, gpus or cpus, gpus > 0)


def rule_pick(x: np.ndarray, share: float) -> int | None:
    """The row SJF takes on these candidate rows under a long-job limit of `share`: the shortest
    estimate (then window order, least leftover, node) among jobs the limit lets start, as the
    round's `teacher_choice` for its own limit; the wait row when the limit holds every job back
    and waiting is allowed (`None` when not: the caller decides)."""
    m = len(x) - 1
    if m <= 0:
        return None
    rows = x[:m]
    c = _COL
    running_long = x[m, c["long_cpu_after"]] > 0 or x[m, c["long_gpu_after"]] > 0
    over = (rows[:, c["long_cpu_after"]] > share + 1e-6) | (
        rows[:, c["long_gpu_after"]] > share + 1e-6
    )
    capped = (
        (rows[:, c["is_long"]] > 0)
        & over
        & (rows[:, c["log_wait"]] < _STARVE_LOG - 1e-6)
        & running_long
    )
    if capped.all():
        return None
    order = np.lexsort(
        (rows[:, c["leftover"]], np.arange(m), rows[:, c["log_est"]], capped.astype(np.int8))
    )
    return int(order[0])


def alt_pick(x: np.ndarray) -> int | None:
    """The other rule's row: the round's own teacher row (40 %) wherever the two limits pick the
    same row, else SJF's pick under `ALT_SHARE` (`rule_pick`); None where neither names one."""
    teacher = np.flatnonzero(x[:, TEACHER] > 0)
    own = int(teacher[0]) if len(teacher) else None
    alt = rule_pick(x, ALT_SHARE)
    if alt == rule_pick(x, BASE_SHARE):
        return own
    return alt


def dense_pick(x: np.ndarray) -> int | None:
    """The third rule's row: the least estimate per squared size (`job_size`, the job's dominant
    share of the node), then the best fit; the limit does not apply. Large jobs that SJF keeps
    passing over go first on a small cluster packed by a few of them (deeprm: one node of ten
    units); None when no job can start."""
    m = len(x) - 1
    if m <= 0:
        return None
    rows = x[:m]
    est = np.exp(8.0 * rows[:, _COL["log_est"]].astype(np.float64))
    size = np.maximum(rows[:, _COL["job_size"]].astype(np.float64), 1e-3)
    return int(np.lexsort((-rows[:, _COL["is_best_fit"]], est / size**2))[0])


Plan = list[Placement]
"""what a heuristic starts now, in its order (`Followers.plans`)"""


def row_jobs(rnd: Round, cands: Candidates) -> list[JobId]:
    """The job of each of `cands`' rows but the wait row (`Candidates.jobs` indexes `rnd`'s
    window): what ties a candidate row to its job for `follow_pick`."""
    return [rnd.window[k].id for k in cands.jobs[:-1].tolist()]


class Followers:
    """The EASY heuristics of `SCORE_RULES` (`heuristics.WFP3Policy`, `F1Policy`: their order,
    their reservation, no long-job limit, their own starvation guard), asked at each decision
    time which jobs they would start now (`plans`). They keep state between decisions: a run
    (or a rollout) asks its own."""

    def __init__(self) -> None:
        from scheduler.heuristics import HEURISTICS

        self.policies = {r: HEURISTICS[r]() for r in SCORE_RULES}

    def plans(self, view: ClusterView, pending: Sequence[JobRequest], now: float) -> dict:
        """Each rule's `Plan` at this decision time."""
        return {r: h.decide(view, pending, now) for r, h in self.policies.items()}


def follow_pick(x: np.ndarray, plan: Plan, jobs: Sequence[JobId]) -> int | None:
    """The row of the first job of `plan` still among these candidates (`jobs`: each row's job,
    `row_jobs`), on the round's best-fit node for it (the first such row on a tie; on a cluster
    of mixed node sizes it may not be the node the heuristic took); None when none is (the
    heuristic starts nothing more now)."""
    m = len(x) - 1
    if m <= 0 or not plan:
        return None
    if len(jobs) != m:
        raise ValueError(f"{len(jobs)} jobs for {m} candidate rows (the wait row has none)")
    rows: dict[JobId, list[int]] = {}
    for i, j in enumerate(jobs):
        rows.setdefault(j, []).append(i)
    for p in plan:
        hit = rows.get(p.job_id)
        if hit:
            return hit[int(np.argmax(x[hit, _COL["is_best_fit"]]))]
    return None


def dense_action(fallback: Chooser) -> Chooser:
    """A chooser on env observations: `dense_pick`, else `fallback`'s."""

    def choose(obs: Candidates) -> int:
        pick = dense_pick(obs.x)
        return fallback(obs) if pick is None else pick

    return choose


def alt_action(fallback: Chooser) -> Chooser:
    """A chooser on env observations: `alt_pick`, else wait where allowed, else `fallback`'s."""

    def choose(obs: Candidates) -> int:
        pick = alt_pick(obs.x)
        if pick is not None:
            return pick
        return len(obs) - 1 if obs.wait_allowed else fallback(obs)

    return choose


def base_chooser(net: QNetwork) -> Chooser:
    """The base policy (the shipped network plus its teacher bonus: SJF within 40 %)."""
    return greedy(net, BASE_BONUS)


def augment(
    x: np.ndarray,
    regime: np.ndarray,
    inputs: Sequence[str] = INPUTS,
    plans: dict | None = None,
    jobs: Sequence[JobId] | None = None,
) -> np.ndarray:
    """The network's input rows: the version-4 columns, `alt_choice`, `dense_choice`, (in
    `INPUTS_V2`) `wfp3_choice` and `f1_choice` (`follow_pick` of `plans`, `jobs` the rows' jobs),
    the regime's columns."""
    m = len(x)
    out = np.zeros((m, len(inputs)), np.float32)
    out[:, : len(_V4)] = x[:, _V4]
    picks = [alt_pick(x), dense_pick(x)]
    if len(inputs) == len(INPUTS_V2):
        picks += [_follow(x, (plans or {}).get(r, []), jobs) for r in SCORE_RULES]
    for k, pick in enumerate(picks):
        if pick is not None:
            out[pick, len(_V4) + k] = 1.0
    out[:, len(_V4) + len(picks) :] = regime
    return out


def _follow(x: np.ndarray, plan: Plan, jobs: Sequence[JobId] | None) -> int | None:
    """`follow_pick`, refusing a plan without the rows' jobs (its pick would silently be lost)."""
    if jobs is None:
        if plan:
            raise ValueError("a heuristic's plan needs the candidate rows' jobs (`row_jobs`)")
        return None
    return follow_pick(x, plan, jobs)


class RegimeNet(QNetwork):
    """The MLP over `INPUTS`; `scores` takes full candidate rows (and their jobs, `row_jobs`, for
    `INPUTS_V2`) and the current `regime`."""

    def __init__(self, layers: Layers, inputs: Sequence[str] | None = None) -> None:
        ReluMLP.__init__(self, layers)
        self.features = tuple(inputs) if inputs is not None else input_names(layers)
        self.columns = None
        self.regime = np.zeros(len(REGIME_NAMES), np.float32)
        self.plans: dict = {}

    def observe(self, regime: Regime) -> None:
        """Read the regime's vector and plans for the next `scores`."""
        self.regime, self.plans = regime.vector, regime.plans

    @property
    def uses_fragmentation(self) -> bool:
        return False

    @property
    def uses_fair_share(self) -> bool:
        return False

    def scores(self, x: np.ndarray, jobs: Sequence[JobId] | None = None) -> np.ndarray:
        """The score of each candidate row of `x` (`jobs`: each row's job but the wait row's)."""
        x = augment(np.asarray(x), self.regime, self.features, self.plans, jobs)
        return ReluMLP.scores(self, x)


def input_names(layers: Layers) -> tuple[str, ...]:
    """The inputs a network of this width reads (`INPUTS` or `INPUTS_V2`); RegimeWeightsError
    for another width."""
    width = int(layers[0][0].shape[0]) if layers else -1
    for names in KNOWN_INPUTS:
        if width == len(names):
            return names
    raise RegimeWeightsError(
        f"network of {width} inputs: this version reads {len(INPUTS)} or {len(INPUTS_V2)} inputs"
    )


def check_layers(layers: Layers, where: str) -> None:
    """RegimeWeightsError unless `layers` map `INPUTS` (or `INPUTS_V2`) to one finite score."""
    if not layers:
        raise RegimeWeightsError(f"{where}: no layers")
    width = layers[0][0].shape[0]
    if width not in (len(n) for n in KNOWN_INPUTS) or layers[-1][0].shape[1] != 1:
        raise RegimeWeightsError(
            f"{where}: network shape {width}->{layers[-1][0].shape[1]} does not "
            f"match {len(INPUTS)} (or {len(INPUTS_V2)}) inputs -> 1 score"
        )
    for (w, b), (w2, _) in zip(layers, layers[1:], strict=False):
        if w.ndim != 2 or w.shape[1] != b.shape[0] or w.shape[1] != w2.shape[0]:
            raise RegimeWeightsError(f"{where}: layer shapes do not chain")
    if not all(np.isfinite(w).all() and np.isfinite(b).all() for w, b in layers):
        raise RegimeWeightsError(f"{where}: weights are not all finite")


def save_regime(path: str | Path, layers: Layers, meta: dict | None = None) -> None:
    """Write `dqn-regime` weights (refusing ones `load_regime` would refuse)."""
    check_layers(layers, str(path))
    info = {"kind": KIND, "inputs": list(input_names(layers)), "alt_share": ALT_SHARE,
            **(meta or {})}  # fmt: skip
    write_npz(path, layers, info)


def load_regime(path: str | Path) -> tuple[RegimeNet, dict]:
    """The network and metadata of a `save_regime` file; RegimeWeightsError saying what is
    wrong."""
    path = Path(path)
    hint = f"(train it: python -m scheduler.dqn_regime train --out {path})"
    try:
        layers, meta = read_npz(path)
    except FileNotFoundError:
        raise RegimeWeightsError(f"{path}: no such file {hint}") from None
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise RegimeWeightsError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise RegimeWeightsError(f"{path}: not {KIND} weights {hint}")
    check_layers(layers, str(path))
    if meta.get("inputs") != list(input_names(layers)) or meta.get("alt_share") != ALT_SHARE:
        raise RegimeWeightsError(f"{path}: written for other inputs than this version reads")
    return RegimeNet(layers), meta


def _cpu_network(path: Path, name: Any, net: RegimeNet) -> RegimeNet:
    """The network `path`'s weights name for clusters without GPUs (`cpu_only`): a file beside
    them, reading the same inputs."""
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise RegimeWeightsError(f"{path}: cpu_only {name!r} is not a file name beside it")
    try:
        cpu, _ = load_regime(path.parent / name)
    except RegimeWeightsError as e:
        raise RegimeWeightsError(
            f"{path}: the network it names for CPU-only clusters: {e}"
        ) from None
    if cpu.features != net.features:
        raise RegimeWeightsError(f"{path}: its cpu_only {name} reads other inputs")
    return cpu


class RegimePolicy(DQNPolicy):
    """The network deciding alone on `DQNPolicy`'s round (aging off, the guard as it is), with
    the regime of what it has seen so far as input. Refuses to load without its weights."""

    name = KIND
    gpu_net: RegimeNet
    cpu_net: RegimeNet | None
    """the network for clusters without GPUs, where the weights name one (`cpu_only`)"""

    def __init__(self, weights: str | Path | None = None, *, cost_weight: float = 0.0) -> None:
        if not cost_weight >= 0:
            raise ValueError("cost_weight must be >= 0")
        path = Path(SHIPPED if weights is None else weights)
        net, meta = load_regime(path)
        self._init(net, meta, float(cost_weight))
        self.weights_path = path
        if meta.get("cpu_only"):  # another network for clusters without GPUs (`decide`)
            self.cpu_net = _cpu_network(path, meta["cpu_only"], net)

    def _init(self, net: RegimeNet, meta: dict, cost_weight: float) -> None:
        self.teacher_bonus = 0.0
        self.weights_path = None
        self.net, self.fallback, self.meta = net, None, meta
        self.gpu_net, self.cpu_net = net, None
        v2 = net.features == INPUTS_V2
        self.config = no_aging()
        self.cost_weight = cost_weight
        self._placed, self._waiting, self._notes = {}, {}, []
        self.shapes = None
        self.regime = Regime()
        self.followers = Followers() if v2 else None

    @classmethod
    def from_layers(cls, layers: Layers) -> RegimePolicy:
        """An in-memory network (training and evaluation)."""
        check_layers(layers, "network")
        self = cls.__new__(cls)
        self._init(RegimeNet(layers), {}, 0.0)
        return self

    def decide(
        self,
        view: ClusterView,
        pending: Sequence[JobRequest],
        now: float,
        fair_share: Any = None,
    ) -> list[Placement]:
        """`DQNPolicy.decide` with the regime brought up to date first (and, for weights that
        name a `cpu_only` network, that one on a cluster without GPUs)."""
        self.regime.observe_view(view, pending, now)
        if self.cpu_net is not None:  # the hardware, down hosts too: not a host's outage
            gpus = any(n.capacity.gpus for n in view.nodes)
            self.net = self.gpu_net if gpus else self.cpu_net
        if self.followers is not None:
            self.regime.plans = self.followers.plans(view, pending, now)
        assert isinstance(self.net, RegimeNet)
        self.net.observe(self.regime)
        return super().decide(view, pending, now, fair_share)

    def _scores(self, rnd: Round, cands: Candidates) -> np.ndarray:
        """The network's scores, told which job each row is (`follow_pick`)."""
        assert isinstance(self.net, RegimeNet)
        return self.net.scores(cands.x, row_jobs(rnd, cands))


RULES = ("base", "alt", "dense", *SCORE_RULES)
"""the rules the labels compare (`dqn_regime_train`): the base (SJF within 40 %), SJF within
`ALT_SHARE`, the dense order, and (`INPUTS_V2`) EASY in `wfp3` and in `f1` order (`Followers`)"""


def rule_row(
    x: np.ndarray, rule: str, plans: dict, jobs: Sequence[JobId] | None, wait_ok: bool
) -> int | None:
    """The row `rule` (one of `RULES`) takes on these candidate rows (`jobs`: their jobs,
    `row_jobs`, which the rules of `SCORE_RULES` need); None: the round's teacher row (as
    `base_chooser` takes it), for "base" itself and where a rule names none and waiting is not
    allowed. A rule that starts nothing more now (the heuristic's plan is done, or no job of it
    is a candidate) waits where it may, as `alt_action` does."""
    if rule == "base":
        return None
    if rule == "dense":
        return dense_pick(x)
    pick = alt_pick(x) if rule == "alt" else _follow(x, plans.get(rule, []), jobs)
    return pick if pick is not None else (len(x) - 1 if wait_ok else None)


class _RuleNet(RegimeNet):
    """Scores that make `DQNPolicy`'s round take `rule`'s row (the teacher's where it names
    none): how a whole rule is run in the simulator (`RulePolicy`)."""

    def __init__(self, rule: str, version: int = 1) -> None:
        inputs = INPUTS_V2 if version == 2 else INPUTS
        w = np.zeros((len(inputs), 1), np.float32)
        super().__init__([(w, np.zeros(1, np.float32))], inputs)
        self.rule = rule

    def scores(self, x: np.ndarray, jobs: Sequence[JobId] | None = None) -> np.ndarray:
        x = np.asarray(x)
        q = 0.5 * x[:, TEACHER].astype(np.float32)
        pick = rule_row(x, self.rule, self.plans, jobs, True)
        if pick is not None:
            q[pick] = 1.0
        return q


class RulePolicy(RegimePolicy):
    """One of `RULES` followed whole in `dqn-regime`'s round (aging off, the guard as it is, the
    round's own long-job limit): what the labels' rollouts compare, run in the simulator
    (diagnosis, `bench/dqn_fresh_seeds.py`). Not a policy to offer: no network decides."""

    def __init__(self, rule: str) -> None:
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
        version = 2 if rule in SCORE_RULES else 1
        self._init(_RuleNet(rule, version), {"rule": rule}, 0.0)
        self.name = f"rule-{rule}"
