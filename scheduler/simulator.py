"""An event-driven cluster simulator that drives any `Policy`.

Time jumps from event to event (arrivals, completions, node outages and returns); there is no
fixed time step. At each event time, after every event of that time is applied (completions first,
then outages and returns, then arrivals), the policy is asked to `decide`.

Two ways to use it:

* `Simulator(workload).run(policy) -> SimResult` replays a whole workload.
* Step it yourself (an RL environment does this)::

      sim = Simulator(workload)
      while sim.advance():                # apply the next event time; False when all is over
          if sim.worth_deciding():        # some pending job might fit some node
              sim.apply(my_policy.decide(sim.view(), sim.pending(), sim.now))
      result = sim.result()

  `apply` may be called several times at one decision point (one placement at a time, say);
  `view()` and `pending()` always reflect what has been applied. `next_decision()` advances
  straight to the next moment worth deciding.

Policies see `JobRequest`s: the request and the *estimated* runtime, never the true one. The run is
deterministic: the simulator has no randomness of its own (outages are given, or drawn by
`random_outages` from a seed).

Time limits. A job with `time_limit_s` has each attempt killed when it has run that long (an
attempt whose remaining work fits its limit completes, one that ends exactly at the limit
included). Without `requeue_on_timeout` the job then ends timed out (`SimResult.timed_out`,
never in `finished`). With it, the job is queued again (its attempt count goes on) until it has
been requeued `max_requeues` times, the next timeout ending it; a requeued attempt resumes from a
checkpoint taken at the signal before the limit, so what is left to run is the remaining work
minus the time the attempt ran, plus `restart_overhead_s` (reloading the checkpoint). This
assumes the job checkpoints at the signal (as `submit --requeue-on-timeout` asks of it); work of
an attempt lost to an outage is lost since that checkpoint. Running jobs with a limit are shown to
policies as ending at the earlier of their estimate (a requeued attempt's: the estimate less the
work its checkpoint holds, net of the restart overhead, unless that uses the estimate up) and their
limit. A job without a limit runs
exactly as before.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from scheduler.model import (
    NODE_DOWN,
    NODE_UP,
    ClusterView,
    Job,
    JobId,
    JobRequest,
    Node,
    NodeView,
    Placement,
    Policy,
    Resources,
    RunningJob,
    Workload,
    fits_empty,
)

# Event kinds, in the order they apply at one instant.
_COMPLETE, _TIMEOUT, _FAIL, _RETURN, _ARRIVE = 0, 1, 2, 3, 4
RESTART_OVERHEAD_S = 60.0
"""The default time a requeued job takes to resume from its checkpoint (see the module docstring)."""


class PendingJobs(list):
    """The pending jobs (a plain list of JobRequest) plus `rows` into `table`, an array whose
    columns are cpus, mem, whole GPUs, share memory, priority, submitted, estimate. Policies may
    use the arrays when present; any plain list of JobRequest works as well."""

    def __init__(self, jobs: list[JobRequest], rows: np.ndarray, table: np.ndarray) -> None:
        super().__init__(jobs)
        self.rows = rows
        self.table = table


class SimView(ClusterView):
    """A ClusterView that also carries the simulator's node table as it was when the view was
    made (`node_table`: free CPUs, free memory, free whole GPUs, most memory free on one GPU a
    share may use, 1 while up, 1 while idle; one row per node of `nodes`) and a dict in which a round may keep
    what never changes for a set of nodes (`node_constants`). Policies may use them when present;
    any plain ClusterView works as well."""

    __slots__ = ("node_table", "node_constants")

    node_table: np.ndarray
    node_constants: dict


_any = np.logical_or.reduce
"""`a.any()` for a 1-D boolean array, without numpy's Python-level wrapper"""


class InvalidPlacement(ValueError):
    """A policy returned a placement that does not fit, or names an unknown job or node."""


@dataclass(frozen=True, slots=True)
class NodeOutage:
    """Node `node_id` fails at `start_s` and comes back `duration_s` later (jobs on it are lost
    and requeued)."""

    node_id: str
    start_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class Attempt:
    """One run of a job on a node: it completed, was lost to an outage, or was killed at its
    time limit (`timed_out`; not completed either)."""

    job_id: JobId
    node_id: str
    gpu_ids: tuple[int, ...]
    request: Resources
    start_s: float
    end_s: float
    completed: bool
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job's life: submitted, started (last attempt), ended (or, in `SimResult.timed_out`,
    killed at its time limit); runtime is the true runtime."""

    id: JobId
    request: Resources
    submit_s: float
    start_s: float
    end_s: float
    runtime_s: float
    node_id: str
    gpu_ids: tuple[int, ...]
    attempts: int
    priority: float = 0.0
    kind: str = ""


@dataclass(slots=True)
class SimResult:
    """Everything a run recorded; `scheduler.metrics.compute_metrics` turns it into numbers."""

    workload: str
    policy: str
    nodes: list[Node]
    finished: list[JobRecord]
    attempts: list[Attempt]
    outages: list[NodeOutage]
    unschedulable: list[tuple[JobId, str]]
    unfinished: list[JobId]
    start_s: float
    end_s: float
    decision_s: list[float] = field(default_factory=list)
    decision_times: list[float] = field(default_factory=list)
    estimate_exact: bool = False
    jobs: list[Job] = field(default_factory=list)
    timed_out: list[JobRecord] = field(default_factory=list)
    """jobs that ended killed at their time limit (not in `finished` nor `unfinished`)"""


def random_outages(
    nodes: Sequence[Node], horizon_s: float, mtbf_s: float, mttr_s: float, seed: int = 0
) -> list[NodeOutage]:
    """Outages drawn per node with exponential times between failures and to repair."""
    rng = np.random.default_rng(seed)
    out: list[NodeOutage] = []
    for node in nodes:
        t = float(rng.exponential(mtbf_s))
        while t < horizon_s:
            d = float(rng.exponential(mttr_s))
            out.append(NodeOutage(node.id, t, d))
            t += d + float(rng.exponential(mtbf_s))
    return out


class _NodeState:
    """Mutable allocation state of one node."""

    __slots__ = (
        "node",
        "free_cpus",
        "free_mem",
        "gpu_mem",
        "gpu_users",
        "gpu_whole",
        "state",
        "view",
        "per_gpu",
        "price",
        "n_free_gpus",
        "max_share",
        "row",
    )

    def __init__(self, node: Node, row: np.ndarray) -> None:
        cap = node.capacity
        self.node = node
        self.per_gpu = node.gpu_mem_per_gpu_mb
        self.free_cpus = float(cap.cpus)
        self.free_mem = int(cap.mem_mb)
        self.gpu_mem = [self.per_gpu] * cap.gpus
        self.gpu_users = [0] * cap.gpus
        self.gpu_whole = [False] * cap.gpus
        self.state = NODE_UP
        self.price = node.price_per_hour
        self.view: NodeView | None = None
        self.n_free_gpus = cap.gpus
        self.max_share = self.per_gpu if cap.gpus else 0
        self.row = row
        """this node's row of the simulator's node table: free CPUs, free memory, free whole
        GPUs, most memory free on one GPU a share may use; 1 while up; 1 while idle (nothing
        allocated)"""
        self._publish()

    def _publish(self) -> None:
        row = self.row
        row[0] = self.free_cpus
        row[1] = self.free_mem
        row[2] = self.n_free_gpus
        row[3] = self.max_share
        row[4] = self.state == NODE_UP
        cap = self.node.capacity
        # nothing allocated: the node view's `free == capacity`, field by field
        row[5] = (
            self.free_cpus == cap.cpus
            and self.free_mem == cap.mem_mb
            and self.n_free_gpus == cap.gpus
            and sum(self.gpu_mem) == cap.gpu_mem_mb
        )

    def _summarise(self) -> None:
        self.n_free_gpus = sum(1 for u in self.gpu_users if u == 0)
        self.max_share = max(
            (m for g, m in enumerate(self.gpu_mem) if not self.gpu_whole[g]), default=0
        )

    def make_view(self) -> NodeView:
        if self.view is None:
            cap = self.node.capacity
            free_ids = tuple(g for g, u in enumerate(self.gpu_users) if u == 0)
            mems = tuple(self.gpu_mem)
            self.view = NodeView(
                self.node.id,
                cap,
                Resources(self.free_cpus, self.free_mem, len(free_ids), sum(mems)),
                free_ids,
                mems,
                self.price,
                self.state,
                self.node.prices,
            )
        return self.view

    def fits(self, req: Resources, gpu_ids: tuple[int, ...]) -> str | None:
        """None when `req` fits on `gpu_ids` now, else the reason."""
        if self.state != NODE_UP:
            return f"node {self.node.id} is {self.state}"
        if req.cpus > self.free_cpus + 1e-9:
            return f"{req.cpus} CPUs > {self.free_cpus} free on {self.node.id}"
        if req.mem_mb > self.free_mem:
            return f"{req.mem_mb} MB > {self.free_mem} MB free on {self.node.id}"
        n = len(self.gpu_users)
        if req.gpus:
            if len(gpu_ids) != req.gpus or len(set(gpu_ids)) != req.gpus:
                return f"{req.gpus} GPUs need {req.gpus} distinct ids, got {gpu_ids}"
            for g in gpu_ids:
                if not 0 <= g < n or self.gpu_users[g]:
                    return f"GPU {g} of {self.node.id} is not free"
        elif req.gpu_mem_mb:
            if len(gpu_ids) != 1:
                return f"a GPU share needs one GPU id, got {gpu_ids}"
            g = gpu_ids[0]
            if not 0 <= g < n or self.gpu_whole[g] or self.gpu_mem[g] < req.gpu_mem_mb:
                return f"GPU {g} of {self.node.id} lacks {req.gpu_mem_mb} MB"
        elif gpu_ids:
            return f"a CPU-only job got GPU ids {gpu_ids}"
        return None

    def take(self, req: Resources, gpu_ids: tuple[int, ...]) -> None:
        self.free_cpus -= req.cpus
        self.free_mem -= req.mem_mb
        if req.gpus:
            for g in gpu_ids:
                self.gpu_users[g] = 1
                self.gpu_whole[g] = True
                self.gpu_mem[g] = 0
        elif req.gpu_mem_mb:
            g = gpu_ids[0]
            self.gpu_users[g] += 1
            self.gpu_mem[g] -= req.gpu_mem_mb
        self.view = None
        if req.gpus or req.gpu_mem_mb:
            self._summarise()
        self._publish()

    def give(self, req: Resources, gpu_ids: tuple[int, ...]) -> None:
        self.free_cpus = min(self.free_cpus + req.cpus, float(self.node.capacity.cpus))
        self.free_mem += req.mem_mb
        if req.gpus:
            for g in gpu_ids:
                self.gpu_users[g] = 0
                self.gpu_whole[g] = False
                self.gpu_mem[g] = self.per_gpu
        elif req.gpu_mem_mb:
            g = gpu_ids[0]
            self.gpu_users[g] -= 1
            self.gpu_mem[g] += req.gpu_mem_mb
        self.view = None
        if req.gpus or req.gpu_mem_mb:
            self._summarise()
        self._publish()

    def set_state(self, state: str) -> None:
        """Mark the node up or down."""
        self.state = state
        self.view = None
        self._publish()


class Simulator:
    """Replays a workload's jobs on its nodes under a policy (see the module docstring).

    Public state for stepping: `now`, `view()`, `pending()`, `pending_count`, `running_ids()`,
    `advance()`, `worth_deciding()`, `apply()`, `done`, `result()`.
    """

    def __init__(
        self,
        workload: Workload,
        outages: Sequence[NodeOutage] = (),
        *,
        skip_hopeless_rounds: bool = True,
        restart_overhead_s: float = RESTART_OVERHEAD_S,
    ) -> None:
        if not (restart_overhead_s >= 0 and math.isfinite(restart_overhead_s)):
            raise ValueError("restart_overhead_s must be a non-negative number")
        self.restart_overhead_s = float(restart_overhead_s)
        self.workload = workload
        self.nodes = list(workload.nodes)
        if len({n.id for n in self.nodes}) != len(self.nodes):
            raise ValueError("node ids must be unique")
        self.outages = sorted(outages, key=lambda o: (o.start_s, o.node_id))
        self.skip_hopeless_rounds = skip_hopeless_rounds
        self._index = {n.id: i for i, n in enumerate(self.nodes)}
        for o in self.outages:
            if o.node_id not in self._index:
                raise ValueError(f"outage names unknown node {o.node_id!r}")
        self.reset()

    # -- set-up -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to time zero with every job still to arrive."""
        jobs = self.workload.jobs
        self._jobs: dict[JobId, Job] = {}
        self._requests: dict[JobId, JobRequest] = {}
        # one row per node, kept current as jobs start and end (see `_NodeState.row`)
        self._node_table = np.zeros((len(self.nodes), 6))
        self._node_constants: dict = {}
        self._fits_a_node: dict[Resources, bool] = {}
        """per request seen: whether it fits some node when empty (few shapes, many jobs)"""
        self._state = [_NodeState(n, self._node_table[i]) for i, n in enumerate(self.nodes)]
        self._down_depth = [0] * len(self.nodes)
        self._events: list[tuple[float, int, int, object]] = []
        self._seq = 0
        self.now = min((j.submit_s for j in jobs), default=0.0)
        self._start_s = self.now
        self._pending: dict[JobId, JobRequest] = {}
        # job id -> (node index, gpu ids, start, attempt token)
        self._running: dict[JobId, tuple[int, tuple[int, ...], float, int]] = {}
        self._running_views: dict[JobId, RunningJob] = {}
        self._finished: list[JobRecord] = []
        self._attempts: list[Attempt] = []
        self._attempt_count: dict[JobId, int] = {}
        self._left: dict[JobId, float] = {}
        """work left to a job with a time limit that was requeued at it (see `_timeout`)"""
        self._requeues: dict[JobId, int] = {}
        self._timed_out: list[JobRecord] = []
        self._unschedulable: list[tuple[JobId, str]] = []
        self.decision_s: list[float] = []
        self.decision_times: list[float] = []
        self._view: ClusterView | None = None
        self._view_dirty = True
        # per-job request columns for the quick "might anything fit?" test
        self._row: dict[JobId, int] = {}
        # columns: cpus, mem, whole GPUs, share memory, priority, submitted, estimate
        self._req_cols = np.zeros((len(jobs), 7))
        self._pending_mask = np.zeros(len(jobs), dtype=bool)
        self._objs = np.empty(len(jobs), dtype=object)
        self._queue_rows = np.zeros(0, dtype=np.intp)  # rows in queue order, maybe stale
        self._node_changes = 0
        """counts every change to the nodes (see `worth_deciding`)"""
        self._fit_known: tuple[int, np.ndarray | None, bool] | None = None
        """(node changes, largest free amounts of an up node, whether some pending job fits
        them) at the last `worth_deciding`"""
        self._joined: list[int] = []
        """rows of the jobs queued since the last `worth_deciding`"""
        for i, job in enumerate(jobs):
            if job.id in self._jobs:
                raise ValueError(f"duplicate job id {job.id!r}")
            if job.runtime_s <= 0:
                raise ValueError(f"job {job.id!r}: runtime must be positive")
            if job.time_limit_s and not job.time_limit_s > 0:
                raise ValueError(f"job {job.id!r}: a time limit must be positive")
            self._jobs[job.id] = job
            self._requests[job.id] = job.to_request()
            self._row[job.id] = i
            r = job.request
            self._req_cols[i] = (
                r.cpus, r.mem_mb, r.gpus, r.gpu_mem_mb if r.gpus == 0 else 0,
                job.priority, job.submit_s, job.est_runtime_s,
            )  # fmt: skip
            self._objs[i] = self._requests[job.id]
            self._push(job.submit_s, _ARRIVE, job.id)
        for o in self.outages:
            self._push(o.start_s, _FAIL, o)
        # time starts at the first event (an outage may come before the first arrival)
        self.now = min(self.now, self._events[0][0]) if self._events else self.now
        self._last_event_time = self.now

    def _push(self, t: float, kind: int, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, kind, self._seq, payload))

    # -- observation --------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True when no event is left to happen."""
        return not self._events

    @property
    def pending_count(self) -> int:
        """Number of jobs waiting."""
        return len(self._pending)

    def pending(self) -> PendingJobs:
        """Waiting jobs, in the order they (re)entered the queue (a list that also carries their
        numbers as arrays, which the heuristics use to skip rebuilding them)."""
        rows = self._live_rows()
        return PendingJobs(self._objs[rows].tolist(), rows, self._req_cols)

    def _live_rows(self) -> np.ndarray:
        q = self._queue_rows
        rows = q[self._pending_mask[q]]
        if len(q) > 2 * len(rows) + 64:
            self._queue_rows = rows
        return rows

    def running_ids(self) -> list[JobId]:
        """Ids of running jobs."""
        return list(self._running)

    def job(self, job_id: JobId) -> Job:
        """The full job (with its true runtime): for the simulator's users, not for policies."""
        return self._jobs[job_id]

    def view(self) -> ClusterView:
        """The cluster as policies see it now (nodes, running jobs with estimated ends)."""
        if self._view_dirty or self._view is None or self._view.now != self.now:
            view = SimView(
                tuple([s.make_view() for s in self._state]),
                self.now,
                tuple(self._running_views.values()),
            )
            # a frozen dataclass: set the extra slots past its __setattr__
            object.__setattr__(view, "node_table", self._node_table.copy())
            object.__setattr__(view, "node_constants", self._node_constants)
            self._view = view
            self._view_dirty = False
        return self._view

    def worth_deciding(self) -> bool:
        """False only when no pending job can possibly fit any up node now (so asking a policy is
        pointless); always True when `skip_hopeless_rounds` is off and something is pending."""
        if not self._pending:
            return False
        if not self.skip_hopeless_rounds:
            return True
        # the answer only changes when the nodes change (a start, an end, an outage: every job
        # that leaves the queue starts, on a node) or a job joins the queue: then only the new
        # jobs need a look while the nodes are as they were
        if self._fit_known is not None and self._fit_known[0] == self._node_changes:
            _, most, answer = self._fit_known
            if answer or not self._joined:
                self._joined = []
                return answer
            rows = np.array(self._joined, dtype=np.intp)
            rows = rows[self._pending_mask[rows]]
        else:
            nodes = self._node_table
            up = nodes[:, 4] > 0
            if not _any(up):
                self._fit_known = (self._node_changes, None, False)
                self._joined = []
                return False
            most = np.maximum.reduce(nodes[up], axis=0)
            rows = self._live_rows()
        self._joined = []
        if most is None:  # no node is up
            return False
        sub = self._req_cols[rows]
        ok = (
            (sub[:, 0] <= most[0] + 1e-9)
            & (sub[:, 1] <= most[1])
            & (sub[:, 2] <= most[2])
            & (sub[:, 3] <= most[3])
        )
        answer = bool(_any(ok))
        self._fit_known = (self._node_changes, most, answer)
        return answer

    # -- time ---------------------------------------------------------------------------------

    def advance(self) -> bool:
        """Apply every event of the next event time; False when no event is left."""
        if not self._events:
            return False
        t = self._events[0][0]
        if t < self.now - 1e-9:  # pragma: no cover - guarded by the heap
            raise RuntimeError("time went back")
        self.now = max(self.now, t)
        while self._events and self._events[0][0] <= t:
            _, kind, _, payload = heapq.heappop(self._events)
            if kind == _COMPLETE:
                self._complete(payload)  # type: ignore[arg-type]
            elif kind == _TIMEOUT:
                self._timeout(payload)  # type: ignore[arg-type]
            elif kind == _FAIL:
                self._fail(payload)  # type: ignore[arg-type]
            elif kind == _RETURN:
                self._return(payload)  # type: ignore[arg-type]
            else:
                self._arrive(payload)  # type: ignore[arg-type]
        self._last_event_time = t
        self._view_dirty = True
        return True

    def next_decision(self) -> bool:
        """Advance to the next moment a policy could place something (some pending job might fit
        some up node); False when the run is over."""
        while self.advance():
            if self.worth_deciding():
                return True
        return False

    def _arrive(self, job_id: JobId) -> None:
        job = self._jobs[job_id]
        fits = self._fits_a_node.get(job.request)
        if fits is None:
            fits = any(fits_empty(job.request, n.capacity) for n in self.nodes)
            self._fits_a_node[job.request] = fits
        if not fits:
            self._unschedulable.append(
                (job_id, f"needs {job.request.describe()}, more than any node has")
            )
            return
        self._enqueue(job_id)

    def _enqueue(self, job_id: JobId) -> None:
        self._pending[job_id] = self._requests[job_id]
        row = self._row[job_id]
        if self._pending_mask[row]:  # pragma: no cover - a job is queued once
            return
        # a requeued job may still have a stale entry: drop those first so that it cannot come
        # back to life (a first arrival has none, and `_live_rows` skips stale entries anyway)
        q = self._live_rows() if job_id in self._attempt_count else self._queue_rows
        self._queue_rows = np.append(q, row).astype(np.intp)
        self._pending_mask[row] = True
        self._joined.append(row)

    def _end_attempt(
        self, payload: tuple[JobId, int], completed: bool
    ) -> tuple[Job, str, tuple[int, ...], float] | None:
        """Release the attempt `payload` names and record it (`completed`: it ran to its end;
        else its time limit killed it): the job, node, GPUs and start; None when the attempt was
        already lost to an outage."""
        job_id, token = payload
        run = self._running.get(job_id)
        if run is None or run[3] != token:
            return None
        node_i, gpu_ids, start, _ = run
        job = self._jobs[job_id]
        st = self._state[node_i]
        st.give(job.request, gpu_ids)
        self._node_changes += 1
        del self._running[job_id]
        del self._running_views[job_id]
        self._attempts.append(
            Attempt(
                job_id, st.node.id, gpu_ids, job.request, start, self.now, completed, not completed
            )
        )
        return job, st.node.id, gpu_ids, start

    def _record(self, job: Job, node: str, gpu_ids: tuple[int, ...], start: float) -> JobRecord:
        return JobRecord(
            job.id,
            job.request,
            job.submit_s,
            start,
            self.now,
            job.runtime_s,
            node,
            gpu_ids,
            self._attempt_count[job.id],
            job.priority,
            job.kind,
        )

    def _complete(self, payload: tuple[JobId, int]) -> None:
        ended = self._end_attempt(payload, True)
        if ended is not None:
            self._finished.append(self._record(*ended))

    def _timeout(self, payload: tuple[JobId, int]) -> None:
        """An attempt reached its job's time limit: kill it; requeue the job while its requeues
        last (what is left: the work left minus the limit, plus the restart overhead), else it
        ends timed out."""
        ended = self._end_attempt(payload, False)
        if ended is None:
            return
        job = ended[0]
        done = self._requeues.get(job.id, 0)
        if job.requeue_on_timeout and done < job.max_requeues:
            self._requeues[job.id] = done + 1
            left = self._left.get(job.id, job.runtime_s)
            self._left[job.id] = left - job.time_limit_s + self.restart_overhead_s
            self._enqueue(job.id)
            return
        self._timed_out.append(self._record(*ended))

    def _fail(self, outage: NodeOutage) -> None:
        i = self._index[outage.node_id]
        st = self._state[i]
        self._node_changes += 1
        # overlapping outages merge: the node is back when the last one ends
        self._push(self.now + outage.duration_s, _RETURN, i)
        self._down_depth[i] += 1
        if st.state == NODE_DOWN:
            return
        for job_id, (node_i, gpu_ids, start, _) in list(self._running.items()):
            if node_i != i:
                continue
            job = self._jobs[job_id]
            st.give(job.request, gpu_ids)
            del self._running[job_id]
            del self._running_views[job_id]
            self._attempts.append(
                Attempt(job_id, st.node.id, gpu_ids, job.request, start, self.now, False)
            )
            self._enqueue(job_id)
        st.set_state(NODE_DOWN)

    def _return(self, i: int) -> None:
        self._node_changes += 1
        self._down_depth[i] -= 1
        if self._down_depth[i] > 0:
            return
        self._state[i].set_state(NODE_UP)

    # -- decisions ----------------------------------------------------------------------------

    def apply(self, placements: Sequence[Placement]) -> None:
        """Start the placed jobs now; raise InvalidPlacement (nothing of that placement applied)
        when one names an unknown or non-pending job or node, or does not fit."""
        for p in placements:
            req = self._pending.get(p.job_id)
            if req is None:
                raise InvalidPlacement(f"job {p.job_id!r} is not pending")
            i = self._index.get(p.node_id)
            if i is None:
                raise InvalidPlacement(f"unknown node {p.node_id!r}")
            st = self._state[i]
            gpu_ids = tuple(p.gpu_ids)
            why = st.fits(req.request, gpu_ids)
            if why is not None:
                raise InvalidPlacement(f"job {p.job_id!r}: {why}")
            st.take(req.request, gpu_ids)
            self._node_changes += 1
            del self._pending[p.job_id]
            self._pending_mask[self._row[p.job_id]] = False
            self._seq += 1
            token = self._seq
            self._running[p.job_id] = (i, gpu_ids, self.now, token)
            job = self._jobs[p.job_id]
            limit = job.time_limit_s
            est = req.est_runtime_s
            left = self._left.get(p.job_id)
            if left is not None and est > job.runtime_s - left:
                # requeued: its estimate less the work its checkpoints hold (plus reloading);
                # an estimate used up by them says nothing, and the attempt's own stands
                est -= job.runtime_s - left
            if limit:
                est = min(est, limit)
            self._running_views[p.job_id] = RunningJob(
                p.job_id, st.node.id, req.request, gpu_ids, self.now, self.now + est
            )
            self._attempt_count[p.job_id] = self._attempt_count.get(p.job_id, 0) + 1
            if not limit:
                self._push(self.now + job.runtime_s, _COMPLETE, (p.job_id, token))
            else:
                left = self._left.get(p.job_id, job.runtime_s)
                if left <= limit:
                    self._push(self.now + left, _COMPLETE, (p.job_id, token))
                else:
                    self._push(self.now + limit, _TIMEOUT, (p.job_id, token))
            self._view_dirty = True

    def step(self, policy: Policy) -> list[Placement]:
        """Ask `policy` once at the current time (if worth it) and apply its placements."""
        if not self.worth_deciding():
            return []
        view = self.view()
        pending = self.pending()
        t0 = time.perf_counter()
        placements = policy.decide(view, pending, self.now)
        self.decision_s.append(time.perf_counter() - t0)
        self.decision_times.append(self.now)
        self.apply(placements)
        return placements

    def run(self, policy: Policy, until_s: float | None = None) -> SimResult:
        """Replay the whole workload (or up to `until_s`) under `policy`."""
        while self._events and (until_s is None or self._events[0][0] <= until_s):
            self.advance()
            self.step(policy)
        return self.result(getattr(policy, "name", type(policy).__name__))

    def result(self, policy_name: str = "") -> SimResult:
        """What has been recorded so far."""
        finished_ids = {r.id for r in self._finished}
        finished_ids.update(r.id for r in self._timed_out)
        unsched = {j for j, _ in self._unschedulable}
        unfinished = [j for j in self._jobs if j not in finished_ids and j not in unsched]
        end = max((r.end_s for r in self._finished), default=self._start_s)
        if self._timed_out:
            end = max(end, max(r.end_s for r in self._timed_out))
        return SimResult(
            workload=self.workload.name,
            policy=policy_name,
            nodes=self.nodes,
            finished=list(self._finished),
            attempts=list(self._attempts),
            outages=list(self.outages),
            unschedulable=list(self._unschedulable),
            unfinished=unfinished,
            start_s=self._start_s,
            end_s=end,
            decision_s=list(self.decision_s),
            decision_times=list(self.decision_times),
            estimate_exact=self.workload.estimate_exact,
            jobs=list(self.workload.jobs),
            timed_out=list(self._timed_out),
        )


def simulate(workload: Workload, policy: Policy, outages: Sequence[NodeOutage] = ()) -> SimResult:
    """Run `policy` on `workload` from start to end."""
    return Simulator(workload, outages).run(policy)
