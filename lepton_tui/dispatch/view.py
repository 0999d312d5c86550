"""What the dispatcher shows the policy: the pending jobs sorted, the reasons of those that wait.

The cluster view itself (capacity minus what active attempts hold) is `lepton_tui/cluster_view.py`,
a pure module below the dispatcher so the economics can build the same view without importing the
dispatcher; its names are re-exported here for the dispatcher's steps. Queued jobs are sorted into
pending (dependencies met, not held) and the rest, each with the reason it waits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lepton_tui.cluster_view import (
    ACTIVE_ATTEMPT_STATES,
    DEFAULT_EST_RUNTIME_S,
    build_view,
    host_capacity,
    job_request,
    job_resources,
    node_state,
    unschedulable_reason,
)
from lepton_tui.schema import FAILED_JOB_STATES
from scheduler.model import ClusterView, JobRequest, Placement, Resources, fits_empty

__all__ = [
    "ACTIVE_ATTEMPT_STATES",
    "DEFAULT_EST_RUNTIME_S",
    "REASON_GPUS",
    "REASON_NO_HOST",
    "REASON_POLICY",
    "REASON_RECONCILING",
    "REASON_RESOURCES",
    "FirstFitPolicy",
    "Sorting",
    "build_view",
    "host_capacity",
    "job_request",
    "job_resources",
    "node_state",
    "sort_queued",
    "unschedulable_reason",
    "waiting_reason",
]

REASON_GPUS = "waiting for GPUs"
REASON_RESOURCES = "waiting for CPUs or memory"
REASON_POLICY = "fits, but the policy did not start it"
REASON_RECONCILING = "dispatcher is reconciling attempts with hosts"
REASON_NO_HOST = "no host is up"


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
        if state in FAILED_JOB_STATES:
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
