"""What the dispatcher shows the policy: the cluster view and the pending jobs, from the ledger.

Capacity comes from each host row (`gpus_override` = fake GPUs for tests); what active attempts
hold is taken away, GPUs by index. Queued jobs are sorted into pending (dependencies met, not held)
and the rest, each with the reason it waits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lepton_tui.request_text import long_request, plural, size_words
from scheduler.model import (
    NODE_DOWN,
    NODE_DRAINING,
    NODE_UP,
    ClusterView,
    JobRequest,
    NodeView,
    Placement,
    Resources,
    RunningJob,
    fits_empty,
)

log = logging.getLogger("lepton_tui.dispatcher")

DEFAULT_EST_RUNTIME_S = 3600.0
ACTIVE_ATTEMPT_STATES = ("starting", "running")

REASON_GPUS = "waiting for GPUs"
REASON_RESOURCES = "waiting for CPUs or memory"
REASON_POLICY = "fits, but the policy did not start it"
REASON_RECONCILING = "dispatcher is reconciling attempts with hosts"
REASON_NO_HOST = "no host is up"


def host_capacity(host: Mapping[str, Any]) -> Resources:
    """A host's capacity from its row; `gpus_override` (fake GPUs) wins over the probed count."""
    gpus = host.get("gpus_override")
    if gpus is None:
        gpus = host.get("gpus") or 0
    gpu_mem = int(host.get("gpu_mem_mb") or 0) if gpus else 0
    return Resources(float(host.get("cpus") or 0), int(host.get("mem_mb") or 0), int(gpus), gpu_mem)


def job_resources(job: Mapping[str, Any]) -> Resources:
    """What a job or attempt row asks for."""
    return Resources(
        float(job.get("cpus") or 0),
        int(job.get("mem_mb") or 0),
        int(job.get("gpus") or 0),
        int(job.get("gpu_mem_mb") or 0),
    )


def job_request(job: Mapping[str, Any]) -> JobRequest:
    """A queued job as the policy sees it (the time limit stands in for the runtime estimate)."""
    return JobRequest(
        id=int(job["id"]),
        request=job_resources(job),
        est_runtime_s=float(job.get("time_limit_s") or DEFAULT_EST_RUNTIME_S),
        priority=float(job.get("priority") or 0),
        submitted_at=float(job.get("submitted_at") or 0),
        user=job.get("user") or "",
        project=job.get("project") or "",
    )


def node_state(host: Mapping[str, Any], placeable: bool) -> str:
    """The policy's node state: up only when polled now, active and fenced."""
    if host.get("admin_state") == "draining":
        return NODE_DRAINING
    return NODE_UP if placeable else NODE_DOWN


def build_view(
    hosts: Sequence[Mapping[str, Any]],
    attempts: Sequence[Mapping[str, Any]],
    placeable: Iterable[str],
    now: float,
) -> ClusterView:
    """The cluster view: each host's capacity minus its active attempts (GPUs by index)."""
    ok = set(placeable)
    by_host: dict[str, list[Mapping[str, Any]]] = {}
    for a in attempts:
        by_host.setdefault(a["host"], []).append(a)
    nodes = []
    running = []
    for host in hosts:
        cap = host_capacity(host)
        state = node_state(host, host["name"] in ok)
        node = NodeView.empty(host["name"], cap, host.get("price_per_hour") or 0.0, state)
        for a in by_host.get(host["name"], ()):
            gpu_ids = tuple(_gpu_ids(a))
            req = job_resources(a)
            try:
                node = node.allocate(req, gpu_ids)
            except ValueError as exc:
                # The ledger says more runs here than the host now has (capacity shrank, or a
                # GPU vanished): place nothing more on it until that work ends.
                log.warning("host %s: %s; placing nothing there for now", host["name"], exc)
                node = NodeView(node.id, cap, Resources(0, 0, 0, 0), (), tuple(0 for _ in range(cap.gpus)),
                                node.price_per_hour, NODE_DOWN if state == NODE_UP else state)  # fmt: skip
            started = float(a.get("started_at") or a.get("created_at") or now)
            limit = a.get("time_limit_s")
            running.append(
                RunningJob(
                    a["job_id"],
                    host["name"],
                    req,
                    gpu_ids,
                    started,
                    started + float(limit or DEFAULT_EST_RUNTIME_S),
                )  # fmt: skip
            )
        nodes.append(node)
    return ClusterView(tuple(nodes), now, tuple(running))


def _gpu_ids(attempt: Mapping[str, Any]) -> list[int]:
    ids = attempt.get("gpu_ids")
    if isinstance(ids, str):
        ids = json.loads(ids or "[]")
    return [int(i) for i in ids or []]


@dataclass
class Sorting:
    """Queued jobs sorted: pending for the policy, the waiting ones with reasons, the doomed."""

    pending: list[dict[str, Any]] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)
    dependency_failed: dict[int, str] = field(default_factory=dict)


def sort_queued(
    queued: Sequence[dict[str, Any]],
    deps: Sequence[Mapping[str, Any]],
    holds: Mapping[int, str],
    hosts: Sequence[Mapping[str, Any]],
) -> Sorting:
    """Split queued jobs by dependencies (after-ok), budget holds and whether any host fits them."""
    out = Sorting()
    waiting: dict[int, list[int]] = {}
    for d in deps:
        job_id, dep, state = int(d["job_id"]), int(d["depends_on"]), d["state"]
        if state in ("failed", "cancelled", "timeout"):
            out.dependency_failed.setdefault(job_id, f"dependency {dep} {_verb(state)}")
        elif state != "succeeded":
            waiting.setdefault(job_id, []).append(dep)
    usable = [h for h in hosts if h.get("admin_state") != "draining"]
    unprobed = [h for h in usable if not h.get("cpus")]
    fits: dict[Resources, bool] = {}  # many jobs ask for the same resources
    for job in queued:
        job_id = int(job["id"])
        if job_id in out.dependency_failed:
            continue
        if job_id in waiting:
            ids = ", ".join(str(i) for i in sorted(waiting[job_id]))
            out.reasons[job_id] = f"waiting for dependency {ids}"
            continue
        if job_id in holds:
            out.reasons[job_id] = holds[job_id]
            continue
        req = job_resources(job)
        if req not in fits:
            fits[req] = bool(unprobed) or any(fits_empty(req, host_capacity(h)) for h in usable)
        if not fits[req]:
            out.reasons[job_id] = unschedulable_reason(req, hosts)
            continue
        out.pending.append(job)
    return out


def _verb(state: str) -> str:
    return {"failed": "failed", "cancelled": "failed (cancelled)", "timeout": "failed (timeout)"}[
        state
    ]


def unschedulable_reason(req: Resources, hosts: Sequence[Mapping[str, Any]]) -> str:
    """`unschedulable: fits no host (...)` naming what is missing."""
    usable = [h for h in hosts if h.get("admin_state") != "draining"]
    if not hosts:
        return "unschedulable: fits no host (no hosts; add one with `lepton-tui hosts add`)"
    if not usable:
        return "unschedulable: fits no host (every host is draining)"
    caps = [host_capacity(h) for h in usable]
    if req.gpus and max(c.gpus for c in caps) < req.gpus:
        most = max(c.gpus for c in caps)
        why = f"needs {plural(req.gpus, 'GPU')}, the most on an active host is {most}"
        if any(host_capacity(h).gpus >= req.gpus for h in hosts):
            why += "; the hosts with enough are draining"
    elif req.gpu_mem_mb and not req.gpus:
        why = f"needs {size_words(req.gpu_mem_mb)} on one GPU, no active host has such a GPU"
    elif max(c.cpus for c in caps) < req.cpus:
        why = f"needs {plural(req.cpus, 'CPU')}, the most on an active host is {max(c.cpus for c in caps):g}"
    elif max(c.mem_mb for c in caps) < req.mem_mb:
        most_mb = max(c.mem_mb for c in caps)
        why = f"needs {size_words(req.mem_mb)} of memory, the most on an active host is {size_words(most_mb)}"
    else:
        what = long_request(req.cpus, req.mem_mb, req.gpus, req.gpu_mem_mb)
        why = f"needs {what}, no active host has all of it at once"
    return f"unschedulable: fits no host ({why})"


def waiting_reason(req: Resources, view: ClusterView, policy_text: str | None) -> str:
    """Why a feasible pending job was not placed this round."""
    up = [n for n in view.nodes if n.is_up]
    if not up:
        return REASON_NO_HOST
    if any(n.can_fit(req) for n in up):
        return REASON_POLICY + (f": {policy_text}" if policy_text else "")
    if req.gpus or req.gpu_mem_mb:
        if any(
            req.cpus <= n.free.cpus + 1e-9 and req.mem_mb <= n.free.mem_mb
            for n in up
            if n.capacity.gpus
        ):
            return REASON_GPUS
    return REASON_RESOURCES if not (req.gpus or req.gpu_mem_mb) else REASON_GPUS


class FirstFitPolicy:
    """Priority then submission order, first host that fits: used when scheduler/ has no registry."""

    name = "first-fit"

    def __init__(self) -> None:
        self._why: dict[Any, str] = {}

    def decide(
        self, view: ClusterView, pending: Sequence[JobRequest], now: float
    ) -> list[Placement]:
        """Place each job, in priority order, on the first node it fits."""
        nodes = {n.id: n for n in view.nodes if n.is_up}
        out = []
        self._why = {}
        for job in sorted(pending, key=lambda j: (-j.priority, j.submitted_at, str(j.id))):
            for node_id, node in nodes.items():
                gpu_ids = node.pick_gpus(job.request)
                if gpu_ids is not None:
                    nodes[node_id] = node.allocate(job.request, gpu_ids)
                    out.append(Placement(job.id, node_id, gpu_ids))
                    self._why[job.id] = f"first host that fits: {node_id}"
                    break
            else:
                self._why[job.id] = "no host has room now"
        return out

    def explain(self, job_id: Any) -> str:
        """The last decision's reason for this job."""
        return self._why.get(job_id, "")
