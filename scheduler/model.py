"""Core scheduling types: resources, jobs, nodes, the cluster view, placements, the Policy protocol.

Everything here is plain values, constructible without the simulator, so the dispatcher can build a
`ClusterView` from its ledger and any `Policy` can be asked to `decide`.

GPU model. A node has `capacity.gpus` GPUs indexed 0..n-1, each with
`capacity.gpu_mem_mb // capacity.gpus` MB of memory. A request either takes whole GPUs
(`gpus >= 1`; its `gpu_mem_mb` is ignored, whole GPUs bring all their memory) or a share of one GPU
(`gpus == 0` and `gpu_mem_mb > 0`): it is placed on one GPU index with that much memory free, which
other shares may use too but no whole-GPU job may take until every share on it has ended. A GPU is in
`NodeView.free_gpu_ids` only when nothing at all runs on it.

GPU models. A node may say which GPU model it has (`gpu_model`, e.g. "A100"); a job may name the
models it accepts (`gpu_model`, `|`-separated, e.g. "A100|H100"; empty: any). A job that names
models runs only on nodes of one of them (`gpu_model_allows`).

Hosts. A job may also name the nodes it may run on (`JobRequest.hosts`, from its constraints:
labels, `--host`, `--exclude-host`; None: any). `job_allows` joins both tests.

Outside use. A GPU that processes lepton did not start use (memory or utilization) is seen with
only what is really free: `NodeView.with_outside_use` takes it out of `free_gpu_ids` and lowers its
free memory by what those processes hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

JobId = int | str

NODE_UP = "up"
NODE_DOWN = "down"
NODE_DRAINING = "draining"


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of CPUs, memory (MB), whole GPUs and GPU memory (MB)."""

    cpus: float
    mem_mb: int
    gpus: int
    gpu_mem_mb: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpus + other.cpus,
            self.mem_mb + other.mem_mb,
            self.gpus + other.gpus,
            self.gpu_mem_mb + other.gpu_mem_mb,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpus - other.cpus,
            self.mem_mb - other.mem_mb,
            self.gpus - other.gpus,
            self.gpu_mem_mb - other.gpu_mem_mb,
        )

    def __mul__(self, k: float) -> Resources:
        return Resources(
            self.cpus * k, int(self.mem_mb * k), int(self.gpus * k), int(self.gpu_mem_mb * k)
        )

    def fits(self, other: Resources) -> bool:
        """True when this amount fits within `other` in every dimension (a necessary check only
        for GPU shares: see `NodeView.can_fit` for the per-GPU test)."""
        return (
            self.cpus <= other.cpus + 1e-9
            and self.mem_mb <= other.mem_mb
            and self.gpus <= other.gpus
            and self.gpu_mem_mb <= other.gpu_mem_mb
        )

    @property
    def is_gpu_share(self) -> bool:
        """A request for part of one GPU (by memory), not whole GPUs."""
        return self.gpus == 0 and self.gpu_mem_mb > 0

    def describe(self) -> str:
        """Short text such as '8 CPU, 32 GB, 2 GPU'."""
        parts = [f"{self.cpus:g} CPU", f"{self.mem_mb / 1024:.3g} GB"]
        if self.gpus:
            parts.append(f"{self.gpus} GPU")
        elif self.gpu_mem_mb:
            parts.append(f"{self.gpu_mem_mb / 1024:.3g} GB of one GPU")
        return ", ".join(parts)


ZERO = Resources(0.0, 0, 0, 0)


def gpu_equivalents(request: Resources, gpu_mem_per_gpu_mb: int) -> float:
    """GPUs a request occupies: whole GPUs, or its memory share of one GPU."""
    if request.gpus:
        return float(request.gpus)
    if request.gpu_mem_mb and gpu_mem_per_gpu_mb > 0:
        return min(1.0, request.gpu_mem_mb / gpu_mem_per_gpu_mb)
    return 0.0


@dataclass(frozen=True, slots=True)
class Prices:
    """Prices of a node: a flat hourly price and/or per-resource prices (summed)."""

    node_hour: float = 0.0
    cpu_hour: float = 0.0
    gpu_hour: float = 0.0
    gb_hour: float = 0.0

    def validate(self, where: str = "prices") -> None:
        """Raise ValueError naming the field when a price is negative or not finite."""
        for name in ("node_hour", "cpu_hour", "gpu_hour", "gb_hour"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{where}.{name} must be a non-negative number, got {v!r}")


def node_price_per_hour(capacity: Resources, prices: Prices | float | None) -> float:
    """Hourly price of a whole node: a flat price, or per-resource prices times its capacity."""
    if prices is None:
        return 0.0
    if isinstance(prices, (int, float)):
        return float(prices)
    return (
        prices.node_hour
        + prices.cpu_hour * capacity.cpus
        + prices.gpu_hour * capacity.gpus
        + prices.gb_hour * capacity.mem_mb / 1024.0
    )


def allocation_price_per_hour(
    request: Resources, capacity: Resources, prices: Prices | float | None
) -> float:
    """Hourly cost of holding `request` on a node of `capacity`.

    Per-resource prices are charged per unit held (a GPU share as its fraction of one GPU); a flat
    node price is charged by the request's dominant share of the node.
    """
    if prices is None:
        return 0.0
    per_gpu = capacity.gpu_mem_mb // capacity.gpus if capacity.gpus else 0
    gpus = gpu_equivalents(request, per_gpu)
    if isinstance(prices, (int, float)):
        flat, per_res = float(prices), 0.0
    else:
        flat = prices.node_hour
        per_res = (
            prices.cpu_hour * request.cpus
            + prices.gpu_hour * gpus
            + prices.gb_hour * request.mem_mb / 1024.0
        )
    if flat:
        shares = [0.0]
        if capacity.cpus:
            shares.append(request.cpus / capacity.cpus)
        if capacity.mem_mb:
            shares.append(request.mem_mb / capacity.mem_mb)
        if capacity.gpus:
            shares.append(gpus / capacity.gpus)
        per_res += flat * min(1.0, max(shares))
    return per_res


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What a policy sees of a job: its request and an *estimated* runtime, never the true one."""

    id: JobId
    request: Resources
    est_runtime_s: float
    priority: float = 0.0
    submitted_at: float = 0.0
    user: str = ""
    project: str = ""
    gpu_model: str = ""
    hosts: frozenset[str] | None = None
    """the nodes this job may run on (its constraints); None: any node"""


@dataclass(frozen=True, slots=True)
class Job:
    """A job of a workload, with its true runtime (known to the simulator only)."""

    id: JobId
    request: Resources
    submit_s: float
    runtime_s: float
    est_runtime_s: float
    priority: float = 0.0
    user: str = ""
    project: str = ""
    kind: str = ""
    gpu_model: str = ""
    # Left out of the repr (and so of the workload digests): a job without a limit reads as
    # before. See `scheduler.simulator` for how a limit and a requeue are simulated.
    time_limit_s: float = field(default=0.0, repr=False)
    """killed when an attempt has run this long (0: no limit)"""
    requeue_on_timeout: bool = field(default=False, repr=False)
    """at its limit it is requeued (it checkpoints at the signal) instead of ending timed out"""
    max_requeues: int = field(default=10, repr=False)
    """requeues at the time limit allowed; the next timeout ends it timed out"""

    def to_request(self) -> JobRequest:
        """The policy-visible part of this job."""
        return JobRequest(
            self.id,
            self.request,
            self.est_runtime_s,
            self.priority,
            self.submit_s,
            self.user,
            self.project,
            self.gpu_model,
        )


@dataclass(frozen=True, slots=True)
class Node:
    """A node of a simulated cluster: its id (host name), capacity and prices."""

    id: str
    capacity: Resources
    prices: Prices | float | None = None
    gpu_model: str = ""

    @property
    def price_per_hour(self) -> float:
        """The hourly price of the whole node."""
        return node_price_per_hour(self.capacity, self.prices)

    @property
    def gpu_mem_per_gpu_mb(self) -> int:
        """Memory of each of its GPUs."""
        return self.capacity.gpu_mem_mb // self.capacity.gpus if self.capacity.gpus else 0


@dataclass(frozen=True, slots=True)
class NodeView:
    """A node as a policy sees it now.

    `free` is what is unallocated: `free.gpus == len(free_gpu_ids)` and
    `free.gpu_mem_mb == sum(gpu_free_mem_mb)`. `gpu_free_mem_mb[i]` is the free memory of GPU i
    (one entry per GPU, `capacity.gpus` entries). Build one from plain values, or with
    `NodeView.empty` / `NodeView.from_allocations`.
    """

    id: str
    capacity: Resources
    free: Resources
    free_gpu_ids: tuple[int, ...] = ()
    gpu_free_mem_mb: tuple[int, ...] = ()
    price_per_hour: float = 0.0
    state: str = NODE_UP
    prices: Prices | float | None = None
    gpu_model: str = ""

    def __post_init__(self) -> None:
        # a view built from plain values may leave out per-GPU memory: a free GPU has all of
        # its memory, a busy one none
        if len(self.gpu_free_mem_mb) != self.capacity.gpus:
            per = self.gpu_mem_per_gpu_mb
            free = set(self.free_gpu_ids)
            object.__setattr__(
                self,
                "gpu_free_mem_mb",
                tuple(per if g in free else 0 for g in range(self.capacity.gpus)),
            )

    @property
    def gpu_mem_per_gpu_mb(self) -> int:
        """Memory of each GPU of this node."""
        return self.capacity.gpu_mem_mb // self.capacity.gpus if self.capacity.gpus else 0

    @property
    def is_up(self) -> bool:
        """True when new work may be placed here."""
        return self.state == NODE_UP

    @classmethod
    def empty(
        cls,
        id: str,
        capacity: Resources,
        prices: Prices | float | None = None,
        state: str = NODE_UP,
        gpu_model: str = "",
    ) -> NodeView:
        """A node with nothing running."""
        per = capacity.gpu_mem_mb // capacity.gpus if capacity.gpus else 0
        return cls(
            id,
            capacity,
            capacity,
            tuple(range(capacity.gpus)),
            tuple([per] * capacity.gpus),
            node_price_per_hour(capacity, prices),
            state,
            prices,
            gpu_model,
        )

    @classmethod
    def from_allocations(
        cls,
        id: str,
        capacity: Resources,
        allocations: Iterable[tuple[Resources, Sequence[int]]],
        prices: Prices | float | None = None,
        state: str = NODE_UP,
        gpu_model: str = "",
    ) -> NodeView:
        """A node with the given (request, gpu_ids) pairs running on it (e.g. from the ledger)."""
        view = cls.empty(id, capacity, prices, state, gpu_model)
        for request, gpu_ids in allocations:
            view = view.allocate(request, tuple(gpu_ids))
        return view

    def can_fit(self, request: Resources) -> bool:
        """True when `request` can be placed here now (whole GPUs by index, shares per GPU)."""
        free = self.free
        if request.cpus > free.cpus + 1e-9 or request.mem_mb > free.mem_mb:
            return False
        if request.gpus:
            return request.gpus <= len(self.free_gpu_ids)
        if request.gpu_mem_mb:
            return any(m >= request.gpu_mem_mb for m in self.gpu_free_mem_mb)
        return True

    def pick_gpus(self, request: Resources) -> tuple[int, ...] | None:
        """The GPU ids a request would take here (None when it does not fit).

        Whole GPUs: the lowest free ids. A share: the GPU with the least free memory that still
        holds it (best fit), so shares pack onto already-shared GPUs and keep whole ones free.
        """
        if not self.can_fit(request):
            return None
        if request.gpus:
            return tuple(self.free_gpu_ids[: request.gpus])
        if request.gpu_mem_mb:
            best, best_free = -1, None
            for i, m in enumerate(self.gpu_free_mem_mb):
                if m >= request.gpu_mem_mb and (best_free is None or m < best_free):
                    best, best_free = i, m
            return (best,)
        return ()

    def allocate(self, request: Resources, gpu_ids: tuple[int, ...]) -> NodeView:
        """This node after placing `request` on `gpu_ids` (raises ValueError if it does not fit)."""
        free_ids = list(self.free_gpu_ids)
        mems = list(self.gpu_free_mem_mb)
        per = self.gpu_mem_per_gpu_mb
        if request.gpus:
            if len(gpu_ids) != request.gpus or len(set(gpu_ids)) != len(gpu_ids):
                raise ValueError(
                    f"{request.gpus} whole GPUs need as many distinct ids, got {gpu_ids}"
                )
            for g in gpu_ids:
                if g not in free_ids:
                    raise ValueError(f"GPU {g} of {self.id} is not free")
                free_ids.remove(g)
                mems[g] = 0
            gmem = per * request.gpus
        elif request.gpu_mem_mb:
            if len(gpu_ids) != 1:
                raise ValueError("a GPU share needs exactly one GPU id")
            g = gpu_ids[0]
            if not 0 <= g < len(mems) or mems[g] < request.gpu_mem_mb:
                raise ValueError(f"GPU {g} of {self.id} lacks {request.gpu_mem_mb} MB")
            mems[g] -= request.gpu_mem_mb
            if g in free_ids:
                free_ids.remove(g)
            gmem = request.gpu_mem_mb
        else:
            gmem = 0
        free = Resources(
            self.free.cpus - request.cpus,
            self.free.mem_mb - request.mem_mb,
            len(free_ids),
            self.free.gpu_mem_mb - gmem,
        )
        if free.cpus < -1e-9 or free.mem_mb < 0:
            raise ValueError(f"{request.describe()} overcommits {self.id}")
        return replace(self, free=free, free_gpu_ids=tuple(free_ids), gpu_free_mem_mb=tuple(mems))

    def with_outside_use(self, outside_mb: Sequence[int], busy: Sequence[bool]) -> NodeView:
        """This node with GPUs used by processes lepton did not start: GPU i loses
        `outside_mb[i]` of its free memory, and leaves `free_gpu_ids` (no whole-GPU job may
        take it) when that is more than zero or `busy[i]` (its utilization is someone else's)."""
        mems = list(self.gpu_free_mem_mb)
        free_ids = list(self.free_gpu_ids)
        taken = 0
        for g in range(len(mems)):
            out = int(outside_mb[g]) if g < len(outside_mb) else 0
            hot = bool(busy[g]) if g < len(busy) else False
            if out <= 0 and not hot:
                continue
            new = max(0, mems[g] - max(0, out))
            taken += mems[g] - new
            mems[g] = new
            if g in free_ids:
                free_ids.remove(g)
        if taken == 0 and len(free_ids) == len(self.free_gpu_ids):
            return self
        free = replace(self.free, gpus=len(free_ids), gpu_mem_mb=self.free.gpu_mem_mb - taken)
        return replace(self, free=free, free_gpu_ids=tuple(free_ids), gpu_free_mem_mb=tuple(mems))


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job running now, as a policy sees it (for reservations: when will it end?)."""

    job_id: JobId
    node_id: str
    request: Resources
    gpu_ids: tuple[int, ...]
    started_at: float
    est_end: float


@dataclass(frozen=True, slots=True)
class ClusterView:
    """All nodes at time `now`, and optionally the running jobs with their estimated ends."""

    nodes: tuple[NodeView, ...]
    now: float = 0.0
    running: tuple[RunningJob, ...] = field(default=())

    def node(self, node_id: str) -> NodeView:
        """The node with this id (KeyError if absent)."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)


@dataclass(frozen=True, slots=True)
class Placement:
    """Start job `job_id` on `node_id`, on GPUs `gpu_ids` (empty for CPU-only jobs)."""

    job_id: JobId
    node_id: str
    gpu_ids: tuple[int, ...] = ()


@runtime_checkable
class Policy(Protocol):
    """A scheduling policy.

    `decide` is called at each decision point with the cluster as it is now and the jobs waiting
    (in submission order). It returns placements that must all fit together: never two whole-GPU
    jobs on one GPU, never more than a node's free CPUs, memory or per-GPU memory. Jobs it does not
    place stay pending. `explain` gives a short human reason for a job's last decision.
    """

    name: str

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]: ...

    def explain(self, job_id: JobId) -> str: ...


def gpu_model_allows(accepted: str, model: str) -> bool:
    """True when a job accepting `accepted` ("A100|H100"; empty: any) may run on a node whose GPUs
    are `model` (a node that names no model serves only jobs that name none)."""
    names = [m.strip() for m in accepted.split("|") if m.strip()]
    return not names or model in names


def job_allows(job: JobRequest, node_id: str, model: str) -> bool:
    """True when `job` may run on node `node_id` whose GPUs are `model` (its GPU models and its
    host constraints)."""
    if job.hosts is not None and node_id not in job.hosts:
        return False
    return not job.gpu_model or gpu_model_allows(job.gpu_model, model)


def fits_empty(request: Resources, capacity: Resources) -> bool:
    """True when `request` fits an empty node of `capacity` (whole GPUs or one GPU's memory)."""
    if request.cpus > capacity.cpus + 1e-9 or request.mem_mb > capacity.mem_mb:
        return False
    if request.gpus:
        return request.gpus <= capacity.gpus
    if request.gpu_mem_mb:
        return capacity.gpus > 0 and request.gpu_mem_mb <= capacity.gpu_mem_mb // capacity.gpus
    return True


@dataclass(slots=True)
class Workload:
    """Jobs (with true runtimes) and the nodes to run them on, plus what was left out and why.

    `dropped` lists (job id, reason) for tasks of the source that fit no node: they are reported,
    never silently lost. `estimate_exact` says policies may treat `est_runtime_s` as the truth.
    """

    name: str
    jobs: list[Job]
    nodes: list[Node]
    dropped: list[tuple[JobId, str]] = field(default_factory=list)
    estimate_exact: bool = False
    info: dict[str, float | int | str] = field(default_factory=dict)
