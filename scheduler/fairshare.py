"""Fair share and limits, pure: the same rules for the dispatcher (usage from the ledger) and the
simulator (usage tracked by `SharedLabPolicy` as it places jobs).

Fair share is Slurm's classic factor: a user's (and a project's) recent usage `U` (its share of
all recent usage, each amount decayed with a half-life) against its share `S` (its shares over
those of everyone active) gives `F = 2 ** (-U / S)`, 1.0 for one who used nothing, 0.5 for one
who used exactly its share, towards 0 for one who used far more. A job's factor is its user's
times its project's. The policies see it in the job's priority: `priority + weight * F`, so with
the default weight (1.0) it orders jobs of one priority level and never passes a higher level.

Limits cap what a user or project holds at once: GPUs (whole ones; a share of one GPU counts as
one), CPUs and running jobs. A job that would pass a limit waits with the limit's name. A limit
named `*` holds each user (or project) that has none of its own.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from scheduler.model import ClusterView, JobId, JobRequest, Placement, Resources

DEFAULT_HALF_LIFE_S = 7 * 86400.0
DEFAULT_WEIGHT = 1.0
LIMIT_KINDS = ("gpus", "cpus", "jobs")


def decayed_amount(rate: float, start: float, end: float, now: float, half_life_s: float) -> float:
    """`rate` per second held from `start` to `end`, each moment decayed by its age at `now`."""
    end = min(end, now)
    if end <= start or rate <= 0:
        return 0.0
    if half_life_s <= 0 or not math.isfinite(half_life_s):
        return rate * (end - start)
    k = math.log(2.0) / half_life_s
    return rate / k * (math.exp(-k * (now - end)) - math.exp(-k * (now - start)))


def factors(
    usage: Mapping[str, float], shares: Mapping[str, float], active: Iterable[str]
) -> dict[str, float]:
    """Slurm's classic factor `2 ** (-U/S)` of every name in `usage` or `active`: `U` its part of
    all usage, `S` its shares (1 when unset) over the shares of all those names."""
    names = set(usage) | set(active)
    if not names:
        return {}
    total_use = sum(max(0.0, usage.get(n, 0.0)) for n in names)
    total_shares = sum(max(0.0, shares.get(n, 1.0)) for n in names)
    out = {}
    for n in names:
        s = max(0.0, shares.get(n, 1.0)) / total_shares if total_shares > 0 else 0.0
        u = max(0.0, usage.get(n, 0.0)) / total_use if total_use > 0 else 0.0
        if u <= 0:
            out[n] = 1.0
        elif s <= 0:
            out[n] = 0.0
        else:
            out[n] = 2.0 ** (-u / s)
    return out


@dataclass(frozen=True, slots=True)
class ShareConfig:
    """The lab's fair-share settings: shares per user and project, half-life, weight."""

    user_shares: Mapping[str, float] = field(default_factory=dict)
    project_shares: Mapping[str, float] = field(default_factory=dict)
    half_life_s: float = DEFAULT_HALF_LIFE_S
    weight: float = DEFAULT_WEIGHT
    gpu_hour: float = 1.0
    """what a GPU-hour weighs in usage (the lab's GPU price; 1 when it has none)"""
    cpu_hour: float = 0.1
    """what a CPU-hour weighs in usage (the lab's CPU price; 0.1 when it has none)"""


def usage_rate(request: Resources, gpu_mem_per_gpu_mb: int, config: ShareConfig) -> float:
    """Usage a running request adds per second: GPU-hours and CPU-hours by their weights."""
    if request.gpus:
        gpus = float(request.gpus)
    elif request.gpu_mem_mb and gpu_mem_per_gpu_mb > 0:
        gpus = min(1.0, request.gpu_mem_mb / gpu_mem_per_gpu_mb)
    else:
        gpus = 0.0
    return (gpus * config.gpu_hour + request.cpus * config.cpu_hour) / 3600.0


@dataclass(frozen=True, slots=True)
class Standing:
    """One user's or project's usage, share and factor (for `share ls` and reasons)."""

    kind: str
    name: str
    usage: float
    shares: float
    factor: float


def standings(
    user_usage: Mapping[str, float],
    project_usage: Mapping[str, float],
    config: ShareConfig,
    active_users: Iterable[str] = (),
    active_projects: Iterable[str] = (),
) -> list[Standing]:
    """Every user's and project's standing, users first, by name."""
    out = []
    for kind, usage, shares, active in (
        ("user", user_usage, config.user_shares, active_users),
        ("project", project_usage, config.project_shares, active_projects),
    ):
        f = factors(usage, shares, active)
        for name in sorted(f):
            out.append(Standing(kind, name, usage.get(name, 0.0), shares.get(name, 1.0), f[name]))
    return out


class FairShare:
    """Each job's fair-share factor from the standings, and its boosted priority."""

    def __init__(self, standings_: Sequence[Standing], weight: float = DEFAULT_WEIGHT) -> None:
        self.user = {s.name: s.factor for s in standings_ if s.kind == "user"}
        self.project = {s.name: s.factor for s in standings_ if s.kind == "project"}
        self.weight = float(weight)

    def factor(self, job: JobRequest) -> float:
        """The job's factor: its user's times its project's (1.0 for an unknown name)."""
        return self.user.get(job.user, 1.0) * self.project.get(job.project, 1.0)

    def apply(self, job: JobRequest) -> JobRequest:
        """The job with `weight * factor` added to its priority (itself when the weight is 0)."""
        if not self.weight:
            return job
        return replace(job, priority=job.priority + self.weight * self.factor(job))

    def held_back(self, job: JobRequest, others: Iterable[JobRequest]) -> str | None:
        """A reason when a job of another user with a higher factor stands before `job`."""
        mine = self.factor(job)
        best: JobRequest | None = None
        for o in others:
            if o.user != job.user and self.factor(o) > mine + 1e-9:
                if best is None or self.factor(o) > self.factor(best):
                    best = o
        if best is None or not self.weight:
            return None
        return self._held_text(job, mine, best.user, self.factor(best))

    @staticmethod
    def _held_text(job: JobRequest, mine: float, user: str, theirs: float) -> str:
        return (
            f"fair share: {job.user or 'this user'} has used more of the lab than its share "
            f"(factor {mine:.2f}); {user}'s jobs (factor {theirs:.2f}) go first"
        )


class AheadIndex:
    """`FairShare.held_back(job, [o for o in jobs if o.priority > job.priority])` for every job of
    a queue, without scanning the queue once per job.

    The jobs fall into groups of one user and one factor (a few per user: one per project).
    Each group keeps its priorities in descending order and, for every prefix, its earliest job
    in the queue's order, so one job's answer is a binary search per group: O(groups * log n)
    rather than O(n), which on a 10,000-job queue was most of a lab dispatcher's tick. The
    answer is the same as the scan's, ties included (the earliest job of the highest factor).
    """

    def __init__(self, fair: FairShare, jobs: Sequence[JobRequest]) -> None:
        self.fair = fair
        rows: dict[tuple[str, float], list[tuple[float, int]]] = {}
        for i, o in enumerate(jobs):
            rows.setdefault((o.user, fair.factor(o)), []).append((o.priority, i))
        # per group: user, factor, -priority ascending, earliest queue index of each prefix
        self.groups: list[tuple[str, float, list[float], list[int]]] = []
        for (user, f), members in rows.items():
            members.sort(key=lambda r: -r[0])
            earliest: list[int] = []
            for _, i in members:
                earliest.append(i if not earliest else min(earliest[-1], i))
            self.groups.append((user, f, [-p for p, _ in members], earliest))

    def held_back(self, job: JobRequest) -> str | None:
        """The scan's reason for `job` (None when no other user's job with a higher factor and a
        higher priority stands before it)."""
        if not self.fair.weight:
            return None
        mine = self.fair.factor(job)
        best: tuple[float, int, str] | None = None  # factor, queue index, user
        for user, f, neg_priority, earliest in self.groups:
            if user == job.user or f <= mine + 1e-9:
                continue
            ahead = bisect_left(neg_priority, -job.priority)  # how many have a higher priority
            if not ahead:
                continue
            i = earliest[ahead - 1]
            if best is None or f > best[0] or (f == best[0] and i < best[1]):
                best = (f, i, user)
        if best is None:
            return None
        return self.fair._held_text(job, mine, best[2], best[0])


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `gpus` GPUs, `cpus` CPUs and `jobs` running jobs at once (None: no cap)."""

    kind: str  # "user" or "project"
    name: str
    gpus: int | None = None
    cpus: float | None = None
    jobs: int | None = None


def held_gpus(request: Resources) -> int:
    """GPUs a request holds for a limit: whole ones, or 1 for a share of one GPU."""
    return request.gpus if request.gpus else (1 if request.gpu_mem_mb else 0)


@dataclass
class Held:
    """What a user or project holds now: GPUs, CPUs, running jobs."""

    gpus: int = 0
    cpus: float = 0.0
    jobs: int = 0

    def add(self, request: Resources) -> None:
        self.gpus += held_gpus(request)
        self.cpus += request.cpus
        self.jobs += 1


class Limits:
    """The limits in force, and what each user, project and array holds during one round."""

    def __init__(self, limits: Iterable[Limit] = ()) -> None:
        self.by_key = {(lim.kind, lim.name): lim for lim in limits}
        self.held: dict[tuple[str, str], Held] = {}
        self.array_running: dict[Any, int] = {}

    def count(self, user: str, project: str, request: Resources) -> None:
        """Record a running (or just placed) job of `user` and `project`."""
        for key in (("user", user), ("project", project)):
            self.held.setdefault(key, Held()).add(request)

    def count_array(self, array_id: Any) -> None:
        """Record a running (or just placed) element of an array."""
        self.array_running[array_id] = self.array_running.get(array_id, 0) + 1

    def blocks(
        self, user: str, project: str, request: Resources, array: tuple[Any, int] | None = None
    ) -> str | None:
        """Why a job may not start now (the limit and what is held), or None."""
        if array is not None:
            array_id, most = array
            running = self.array_running.get(array_id, 0)
            if most and running >= most:
                return f"held by array limit: array {array_id} runs at most {most} at once"
        for kind, name in (("user", user), ("project", project)):
            lim = self.by_key.get((kind, name)) or self.by_key.get((kind, "*"))
            if lim is None:
                continue
            h = self.held.get((kind, name), Held())
            g = held_gpus(request)
            if lim.gpus is not None and g and h.gpus + g > lim.gpus:
                return (
                    f"held by limit: {kind} {name} may hold {lim.gpus} GPUs at once "
                    f"({h.gpus} held, this job needs {g})"
                )
            if lim.cpus is not None and h.cpus + request.cpus > lim.cpus + 1e-9:
                return (
                    f"held by limit: {kind} {name} may hold {lim.cpus:g} CPUs at once "
                    f"({h.cpus:g} held, this job needs {request.cpus:g})"
                )
            if lim.jobs is not None and h.jobs + 1 > lim.jobs:
                return (
                    f"held by limit: {kind} {name} may run {lim.jobs} jobs at once "
                    f"({h.jobs} running)"
                )
        return None


class SharedLabPolicy:
    """A policy with the lab's fair share and limits around it, for the simulator (replay,
    bench): it keeps each user's and project's decayed usage from the jobs it sees run, boosts
    priorities by fair share, leaves out jobs a limit holds and drops placements that would pass
    a limit within the round."""

    def __init__(
        self, inner: Any, config: ShareConfig | None = None, limits: Iterable[Limit] = ()
    ) -> None:
        self.inner = inner
        self.config = config or ShareConfig()
        self.limits = list(limits)
        self.name = str(getattr(inner, "name", type(inner).__name__))
        self._owner: dict[JobId, tuple[str, str]] = {}
        self._since: dict[JobId, tuple[float, float]] = {}  # running: (counted up to, rate)
        self.user_usage: dict[str, float] = {}
        self.project_usage: dict[str, float] = {}
        self._at = 0.0
        self._why: dict[JobId, str] = {}

    def _decay_to(self, now: float) -> None:
        if now <= self._at:
            return
        k = 0.5 ** ((now - self._at) / self.config.half_life_s) if self.config.half_life_s else 1
        for book in (self.user_usage, self.project_usage):
            for n in book:
                book[n] *= k
        self._at = now

    def _account(self, view: ClusterView, now: float) -> None:
        per_gpu = {n.id: n.gpu_mem_per_gpu_mb for n in view.nodes}
        running = {r.job_id: r for r in view.running}
        self._decay_to(now)  # what was counted before, valued now; new amounts are valued now
        for job_id in list(self._since):  # ended since the last round: counted up to now
            if job_id not in running:
                self._add(job_id, now)
                del self._since[job_id]
        for job_id, r in running.items():
            if job_id in self._since:
                self._add(job_id, now)
            elif job_id in self._owner:  # placed by another round's policy: from its start
                rate = usage_rate(r.request, per_gpu.get(r.node_id, 0), self.config)
                self._since[job_id] = (min(r.started_at, now), rate)
                self._add(job_id, now)

    def _add(self, job_id: JobId, now: float) -> None:
        since, rate = self._since[job_id]
        amount = decayed_amount(rate, since, now, now, self.config.half_life_s)
        self._since[job_id] = (now, rate)
        user, project = self._owner[job_id]
        self.user_usage[user] = self.user_usage.get(user, 0.0) + amount
        self.project_usage[project] = self.project_usage.get(project, 0.0) + amount

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        """Fair-share priorities and limits around the inner policy's decision (a policy with
        `sees_fair_share` also gets the factors themselves, as `decide(..., fair_share=fs)`)."""
        fs = self.round_share(view, pending, now)
        round_limits = Limits(self.limits)
        for r in view.running:
            owner = self._owner.get(r.job_id)
            if owner is not None:
                round_limits.count(owner[0], owner[1], r.request)
        self._why = {}
        offered = []
        for j in pending:
            why = round_limits.blocks(j.user, j.project, j.request) if self.limits else None
            if why is None:
                offered.append(fs.apply(j))
            else:
                self._why[j.id] = why
        if getattr(self.inner, "sees_fair_share", False):
            decided = list(self.inner.decide(view, offered, now, fair_share=fs))
        else:
            decided = list(self.inner.decide(view, offered, now))
        by_id = {j.id: j for j in offered}
        per_gpu = {n.id: n.gpu_mem_per_gpu_mb for n in view.nodes}
        out = []
        for p in decided:
            found = by_id.get(p.job_id)
            if found is None:
                continue
            j = found
            why = round_limits.blocks(j.user, j.project, j.request) if self.limits else None
            if why is not None:
                self._why[j.id] = why
                continue
            round_limits.count(j.user, j.project, j.request)
            self.started(j, per_gpu.get(p.node_id, 0), now)
            out.append(p)
        return out

    def round_share(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> FairShare:
        """Usage accounted up to `now`; the fair share of a round with these pending jobs."""
        for j in pending:
            self._owner.setdefault(j.id, (j.user, j.project))
        self._account(view, now)
        return FairShare(
            standings(
                self.user_usage, self.project_usage, self.config,
                {j.user for j in pending}, {j.project for j in pending},
            ),
            self.config.weight,
        )  # fmt: skip

    def started(self, job: JobRequest, gpu_mem_per_gpu_mb: int, now: float) -> None:
        """Count `job`'s usage from `now` on (placed this round on a node with GPUs of that
        memory), even if it ends before the next round sees it running."""
        self._owner.setdefault(job.id, (job.user, job.project))
        self._since[job.id] = (now, usage_rate(job.request, gpu_mem_per_gpu_mb, self.config))

    def explain(self, job_id: JobId) -> str:
        """The limit that held the job, else the inner policy's reason."""
        return self._why.get(job_id) or str(self.inner.explain(job_id) or "")
