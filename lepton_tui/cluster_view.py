"""The cluster as the policy sees it, from ledger rows: pure, below the dispatcher and the economics.

Capacity comes from each host row (`gpus_override` = fake GPUs for tests); what active attempts
hold is taken away, GPUs by index. The dispatcher (`dispatch/view.py`, `dispatch/place.py`), the
stranded-GPU report (`economics/stranded.py`), the lab's placement rules and the service's job
changes all build on it, so it imports none of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lepton_tui.request_text import long_request, plural, size_words
from scheduler.model import (
    NODE_DOWN,
    NODE_DRAINING,
    NODE_UP,
    ClusterView,
    JobRequest,
    NodeView,
    Resources,
    RunningJob,
)

log = logging.getLogger("lepton_tui.dispatcher")

DEFAULT_EST_RUNTIME_S = 3600.0
ACTIVE_ATTEMPT_STATES = ("starting", "running")


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


def host_price_per_hour(host: Mapping[str, Any]) -> float:
    """The whole host's hourly price as the policy and the fleet's stranded column see it: its
    flat price, plus for a Slurm partition priced per node-hour that price x its nodes as the
    last poll saw them (a job holding one node's share pays about a node-hour an hour;
    `economics.prices.whole_node_per_hour` says the same for replay and `cost --waste`). An
    estimate: the charge is a whole node-hour an hour for a job smaller than a node (lepton asks
    `--nodes=1`), where this prices it at its share of one (README, "Growing onto Slurm")."""
    flat = float(host.get("price_per_hour") or 0.0)
    node_hour = float(host.get("price_node_hour") or 0.0)
    if not node_hour:
        return flat
    try:
        nodes = len(json.loads(host.get("slurm_nodes") or "[]"))
    except (TypeError, ValueError):
        nodes = 0
    return flat + node_hour * max(1, nodes)


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
        node = NodeView.empty(host["name"], cap, host_price_per_hour(host), state)
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
