"""Planning snapshots: a cluster and its pending jobs as plain JSON-like data.

Format (memory in GB or MB, GPU memory in GB or MB; prices per hour)::

    {"prices": {"cpu_hour": 1, "gpu_hour": 5, "gb_hour": 0.5, "node_hour": 0},
     "nodes": [{"id": "pool", "cpus": 10, "mem_gb": 20, "gpus": 5, "gpu_mem_gb": 0,
                "price_per_hour": 3.0, "state": "up"}],
     "jobs": [{"id": "t1", "cpus": 2, "mem_gb": 4, "gpus": 1, "priority": 0,
               "est_runtime_s": 3600, "submitted_at": 0}]}

A node's own `prices` (same keys) or `price_per_hour` overrides the top-level prices.
"""

from __future__ import annotations

import math
from typing import Any

from scheduler.model import ClusterView, JobRequest, NodeView, Prices, Resources


class SnapshotError(ValueError):
    """A snapshot that cannot be planned: the message names the field."""


def _num(
    obj: dict, key: str, where: str, default: float | None = None, *, integer: bool = False
) -> float:
    if key not in obj:
        if default is None:
            raise SnapshotError(f"{where}.{key}: missing")
        return default
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SnapshotError(f"{where}.{key}: {v!r} is not a number")
    if v < 0:
        raise SnapshotError(f"{where}.{key}: must be >= 0, got {v!r}")
    if integer and v != int(v):
        raise SnapshotError(f"{where}.{key}: must be a whole number, got {v!r}")
    return float(v)


def _mem(obj: dict, base: str, where: str, *, required: bool = False) -> int:
    if f"{base}_mb" in obj:
        return int(_num(obj, f"{base}_mb", where))
    default = None if required else 0.0
    return int(round(_num(obj, f"{base}_gb", where, default) * 1024))


def _prices(obj: Any, where: str) -> Prices:
    if not isinstance(obj, dict):
        raise SnapshotError(f"{where}: must be an object")
    unknown = set(obj) - {"node_hour", "cpu_hour", "gpu_hour", "gb_hour"}
    if unknown:
        raise SnapshotError(f"{where}: unknown price(s) {', '.join(sorted(unknown))}")
    return Prices(
        *(_num(obj, k, where, 0.0) for k in ("node_hour", "cpu_hour", "gpu_hour", "gb_hour"))
    )


def parse_snapshot(data: Any) -> tuple[ClusterView, list[JobRequest]]:
    """Turn a snapshot into a cluster view (empty nodes) and the pending jobs."""
    if not isinstance(data, dict):
        raise SnapshotError("snapshot: must be a JSON object with nodes and jobs")
    default_prices = _prices(data.get("prices", {}), "prices")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise SnapshotError("nodes: must be a non-empty list")
    nodes: list[NodeView] = []
    seen: set[str] = set()
    for k, n in enumerate(raw_nodes):
        where = f"nodes[{k}]"
        if not isinstance(n, dict):
            raise SnapshotError(f"{where}: must be an object")
        nid = str(n.get("id") or n.get("name") or f"node-{k}")
        if nid in seen:
            raise SnapshotError(f"{where}.id: duplicate node {nid!r}")
        seen.add(nid)
        cap = Resources(
            _num(n, "cpus", where),
            _mem(n, "mem", where, required=True),
            int(_num(n, "gpus", where, 0.0, integer=True)),
            _mem(n, "gpu_mem", where),
        )
        prices: Prices | float = default_prices
        if "prices" in n:
            prices = _prices(n["prices"], f"{where}.prices")
        elif "price_per_hour" in n:
            prices = _num(n, "price_per_hour", where)
        state = str(n.get("state", "up"))
        if state not in ("up", "down", "draining"):
            raise SnapshotError(f"{where}.state: must be up, down or draining, got {state!r}")
        nodes.append(NodeView.empty(nid, cap, prices, state))
    raw_jobs = data.get("jobs")
    if not isinstance(raw_jobs, list):
        raise SnapshotError("jobs: must be a list")
    jobs: list[JobRequest] = []
    ids: set = set()
    for k, j in enumerate(raw_jobs):
        where = f"jobs[{k}]"
        if not isinstance(j, dict):
            raise SnapshotError(f"{where}: must be an object")
        jid = j.get("id", k)
        if not isinstance(jid, (int, str)) or isinstance(jid, bool):
            raise SnapshotError(f"{where}.id: must be a string or an integer")
        if jid in ids:
            raise SnapshotError(f"{where}.id: duplicate job {jid!r}")
        ids.add(jid)
        req = Resources(
            _num(j, "cpus", where, 0.0),
            _mem(j, "mem", where),
            int(_num(j, "gpus", where, 0.0, integer=True)),
            _mem(j, "gpu_mem", where),
        )
        prio = j.get("priority", 0)
        if isinstance(prio, bool) or not isinstance(prio, (int, float)) or not math.isfinite(prio):
            raise SnapshotError(f"{where}.priority: {prio!r} is not a number")
        jobs.append(
            JobRequest(
                jid,
                req,
                _num(j, "est_runtime_s", where, 3600.0),
                float(prio),
                _num(j, "submitted_at", where, 0.0),
                str(j.get("user", "")),
                str(j.get("project", "")),
            )
        )
    now = _num(data, "now", "snapshot", 0.0)
    return ClusterView(tuple(nodes), now), jobs


# The worked example of the economics model: one pool, four tasks (CPU, GPU, GB).
EXAMPLE_SNAPSHOT: dict[str, Any] = {
    "prices": {"cpu_hour": 1.0, "gpu_hour": 5.0, "gb_hour": 0.5},
    "nodes": [{"id": "pool", "cpus": 10, "gpus": 5, "mem_gb": 20}],
    "jobs": [
        {"id": "t1", "cpus": 2, "gpus": 1, "mem_gb": 4},
        {"id": "t2", "cpus": 3, "gpus": 0, "mem_gb": 8},
        {"id": "t3", "cpus": 1, "gpus": 2, "mem_gb": 6},
        {"id": "t4", "cpus": 2, "gpus": 1, "mem_gb": 2},
    ],
}
