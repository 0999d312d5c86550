"""The simulator as a gymnasium-style environment for training the DQN policy.

One step is one action at a decision time: place one feasible candidate (job, node, GPUs) or
"wait" (hold the queue head's reserved node: from then on only pairs that do not delay the head
remain). The clock stands still while candidates remain; when none is left the simulator advances
to the next event time at which some pending job might fit.

Observation: the `Candidates` of the step (feature rows, the wait row last); every row is a legal
action, so the action mask (`info["action_mask"]`) is all ones over `len(obs)` rows: only feasible
actions are ever scored.

Reward per event interval `dt`: minus the sum over jobs in the system (pending or running) of
`dt / max(runtime, tau)`, so an episode's return is minus the jobs' total (bounded) slowdown
(DeepRM's reward, in continuous time). The environment knows true runtimes: this is a training
signal, never shown to the policy. Rewards are divided by `reward_scale` (default: the number of
jobs, so a return is minus the average slowdown). Optional cost term: minus `cost_weight` times the price of idle
GPU capacity (CPU capacity on GPU-less nodes) over the interval, in currency units.

Every round computes every feature, the fragmentation ones with the shapes learned from the
episode's jobs so far (`ShapeBook`). A workload with `info["fair_share"]` set runs under the
lab's fair share, as `SharedLabPolicy` applies it in the simulator: each user's and project's
decayed usage from the jobs placed, priorities raised by the factor, and the factor itself in the
`fair_share` column (1.0 on every other workload).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from scheduler.fairshare import FairShare, ShareConfig, SharedLabPolicy
from scheduler.features import (
    DEFAULT_CONFIG,
    TAU_S,
    TEACHER,
    WAIT,
    Candidates,
    Round,
    RoundConfig,
    ShapeBook,
)
from scheduler.model import JobId, JobRequest, Policy, Workload
from scheduler.simulator import SimResult, Simulator

WorkloadSource = Workload | Callable[[int], Workload]


class SchedulingEnv:
    """Step a `Simulator` one placement at a time (see the module docstring)."""

    def __init__(
        self,
        workload: WorkloadSource,
        *,
        config: RoundConfig = DEFAULT_CONFIG,
        cost_weight: float = 0.0,
        reward_scale: float | None = None,
        max_steps: int | None = None,
    ) -> None:
        if cost_weight < 0:
            raise ValueError("cost_weight must be >= 0")
        self.source = workload
        self.config = config
        self.cost_weight = float(cost_weight)
        self.reward_scale = reward_scale
        self.max_steps = max_steps
        self.sim: Simulator | None = None
        self.round: Round | None = None
        self.obs: Candidates | None = None
        self.steps = 0

    # -- gymnasium-style API ------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> tuple[Candidates, dict]:
        """Start an episode (a fresh workload from the factory when one was given)."""
        wl = self.source(seed or 0) if callable(self.source) else self.source
        self.workload = wl
        self.sim = Simulator(wl)
        self.round = None
        self.obs = None
        self.steps = 0
        self._inv_runtime = {j.id: 1.0 / max(j.runtime_s, TAU_S) for j in wl.jobs}
        self._idle_price = np.array([n.price_per_hour for n in wl.nodes], dtype=float)
        self._scale = self.reward_scale or float(max(1, len(wl.jobs)))
        self.shapes = ShapeBook()
        self.lab = SharedLabPolicy(None, ShareConfig()) if wl.info.get("fair_share") else None
        """the episode's fair-share book (None: fair share off)"""
        self._per_gpu = {n.id: n.gpu_mem_per_gpu_mb for n in wl.nodes}
        self._offered: dict[JobId, JobRequest] = {}
        self.episode_return = 0.0
        reward, done = self._to_decision()
        self.episode_return += reward
        return self._observation(), self._info(reward_before=reward, done=done)

    def step(self, action: int) -> tuple[Candidates, float, bool, bool, dict]:
        """Take candidate `action` of the current observation; returns (obs, reward, terminated,
        truncated, info)."""
        if self.sim is None or self.obs is None or self.round is None:
            raise RuntimeError("call reset() first")
        if not 0 <= action < len(self.obs):
            raise ValueError(f"action {action} is not one of the {len(self.obs)} candidates")
        if not self.obs.mask[action]:
            raise ValueError("waiting is not allowed now: the cluster is idle and work fits")
        self.steps += 1
        reward = 0.0
        p = self.round.place(self.obs, action)
        if p is not None:
            self.sim.apply([p])
            if self.lab is not None:
                job = self._offered[p.job_id]
                self.lab.started(job, self._per_gpu.get(p.node_id, 0), self.sim.now)
        self.obs = self.round.candidates()
        while len(self.obs) <= 1 and self.round.wants_next_window():
            # nothing left in this window: the next jobs of the queue, at the same time
            self.round = self.round.next_window()
            self.obs = self.round.candidates()
        if len(self.obs) <= 1:
            self.round = None
        done = False
        if self.round is None:
            reward, done = self._to_decision()
        self.episode_return += reward
        truncated = not done and self.max_steps is not None and self.steps >= self.max_steps
        return self._observation(), reward, done, truncated, self._info(done=done)

    # -- helpers ------------------------------------------------------------------------------------

    @property
    def wait_action(self) -> int:
        """Index of the wait row of the current observation."""
        assert self.obs is not None
        return len(self.obs) - 1

    def teacher_action(self, policy: Policy | None = None) -> int | None:
        """The candidate a teacher would take now. Without `policy`: the round's own teacher row
        (`teacher_choice`: SJF's pick under the long-job limit, or wait). With a heuristic: its
        first placement (the wait row when it places nothing); None when its choice is not among
        the candidates (outside the window)."""
        assert self.sim is not None and self.obs is not None and self.round is not None
        if policy is None:
            rows = np.flatnonzero(self.obs.x[:, TEACHER] > 0)
            return int(rows[0]) if len(rows) else None
        sim = self.sim
        placements = policy.decide(sim.view(), sim.pending(), sim.now)
        if not placements:
            return self.wait_action if self.obs.wait_allowed else None
        return self.round.find(self.obs, placements[0])

    def result(self, policy_name: str = "dqn") -> SimResult:
        """The simulator's record so far."""
        assert self.sim is not None
        return self.sim.result(policy_name)

    def _observation(self) -> Candidates:
        if self.obs is None:  # episode over: an observation with only the wait row
            from scheduler.features import NUM_FEATURES

            x = np.zeros((1, NUM_FEATURES), dtype=np.float32)
            x[0, -1] = 1.0
            return Candidates(np.array([WAIT]), np.array([WAIT]), x)
        return self.obs

    def _info(self, done: bool, reward_before: float = 0.0) -> dict:
        mask = self.obs.mask if self.obs is not None and not done else np.ones(1, dtype=bool)
        return {
            "action_mask": mask,
            "now": self.sim.now if self.sim else 0.0,
            "reward_before": reward_before,
        }

    def _rate(self) -> float:
        """Reward per second right now (before scaling)."""
        sim = self.sim
        assert sim is not None
        inv = self._inv_runtime
        r = sum(inv[j.id] for j in sim.pending()) + sum(inv[j] for j in sim.running_ids())
        rate = -r
        if self.cost_weight:
            view = sim.view()
            idle = 0.0
            for n, price in zip(view.nodes, self._idle_price, strict=True):
                if not n.is_up or price <= 0:
                    continue
                if n.capacity.gpus:
                    idle += price * n.free.gpus / n.capacity.gpus
                elif n.capacity.cpus:
                    idle += price * n.free.cpus / n.capacity.cpus
            rate -= self.cost_weight * idle / 3600.0
        return rate

    def _to_decision(self) -> tuple[float, bool]:
        """Advance to the next time with a real choice; (scaled reward on the way, episode over)."""
        sim = self.sim
        assert sim is not None
        reward = 0.0
        while True:
            t0 = sim.now
            rate = self._rate()
            if not sim.advance():
                self.round, self.obs = None, None
                return reward / self._scale, True
            reward += rate * (sim.now - t0)
            if sim.worth_deciding():
                view = sim.view()
                pending: Sequence[JobRequest] = sim.pending()
                fs: FairShare | None = None
                if self.lab is not None:
                    fs = self.lab.round_share(view, pending, sim.now)
                    pending = [fs.apply(j) for j in pending]
                    self._offered = {j.id: j for j in pending}
                rnd = Round(view, pending, sim.now, self.config, fair_share=fs, shapes=self.shapes)
                cands = rnd.candidates()
                if len(cands) > 1:
                    self.round, self.obs = rnd, cands
                    return reward / self._scale, False


# -- evaluation ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    """The numbers the evaluation table reports for one run."""

    avg_bsld: float
    p95_bsld: float
    avg_jct_s: float
    makespan_s: float
    gpu_util: float
    cost: float
    finished: int
    unfinished: int


def summarize(result: SimResult, tau_s: float = TAU_S) -> Summary:
    """Bounded slowdown (avg, p95), average JCT, makespan, GPU utilization and cost of a run."""
    fin = result.finished
    if not fin:
        return Summary(math.nan, math.nan, math.nan, 0.0, 0.0, 0.0, 0, len(result.unfinished))
    sub = np.array([r.submit_s for r in fin])
    end = np.array([r.end_s for r in fin])
    run = np.array([r.runtime_s for r in fin])
    bsld = np.maximum(1.0, (end - sub) / np.maximum(run, tau_s))
    span = max(float(end.max() - result.start_s), 1e-9)
    gpus_total = sum(n.capacity.gpus for n in result.nodes)
    gpu_s = 0.0
    cost = 0.0
    by_id = {n.id: n for n in result.nodes}
    from scheduler.model import allocation_price_per_hour, gpu_equivalents

    for a in result.attempts:
        node = by_id[a.node_id]
        dur = a.end_s - a.start_s
        gpu_s += gpu_equivalents(a.request, node.gpu_mem_per_gpu_mb) * dur
        cost += allocation_price_per_hour(a.request, node.capacity, node.prices) * dur / 3600.0
    return Summary(
        float(bsld.mean()),
        float(np.percentile(bsld, 95)),
        float((end - sub).mean()),
        span,
        gpu_s / (gpus_total * span) if gpus_total else 0.0,
        cost,
        len(fin),
        len(result.unfinished),
    )


def run_policy(policy: Policy, workload: Workload) -> SimResult:
    """Replay `workload` under `policy` with the plain simulator (inside the lab's fair share,
    `SharedLabPolicy`, for a workload with `info["fair_share"]` set)."""
    if workload.info.get("fair_share"):
        return Simulator(workload).run(SharedLabPolicy(policy, ShareConfig()))
    return Simulator(workload).run(policy)
