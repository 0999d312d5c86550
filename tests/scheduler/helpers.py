"""Small builders for hand-made scheduling cases."""

from __future__ import annotations

from scheduler.model import (
    ClusterView,
    JobRequest,
    NodeView,
    Placement,
    Resources,
    RunningJob,
)

GB = 1024


def res(cpus: float = 1, mem_gb: float = 1, gpus: int = 0, gpu_mem_gb: float = 0) -> Resources:
    """Resources in friendly units."""
    return Resources(float(cpus), int(mem_gb * GB), gpus, int(gpu_mem_gb * GB))


def node(
    name: str,
    cpus: float = 32,
    mem_gb: float = 256,
    gpus: int = 8,
    gpu_mem_gb: float = 80,
    price: float = 0.0,
    running: tuple = (),
) -> NodeView:
    """A node with `running` = ((request, gpu_ids), ...) already on it."""
    cap = Resources(float(cpus), int(mem_gb * GB), gpus, int(gpus * gpu_mem_gb * GB))
    return NodeView.from_allocations(name, cap, running, price)


def job(id, cpus=1, mem_gb=1, gpus=0, gpu_mem_gb=0, est=100.0, priority=0.0, at=0.0) -> JobRequest:  # noqa: ANN001
    """A pending job."""
    return JobRequest(id, res(cpus, mem_gb, gpus, gpu_mem_gb), est, priority, at)


def view(*nodes: NodeView, now: float = 0.0, running: tuple[RunningJob, ...] = ()) -> ClusterView:
    """A cluster view."""
    return ClusterView(tuple(nodes), now, running)


def check_fits(v: ClusterView, pending: list[JobRequest], placements: list[Placement]) -> None:
    """Assert the placements fit together (allocate raises otherwise) and name pending jobs once."""
    by_id = {j.id: j for j in pending}
    nodes = {n.id: n for n in v.nodes}
    seen = set()
    for p in placements:
        assert p.job_id in by_id and p.job_id not in seen
        seen.add(p.job_id)
        nodes[p.node_id] = nodes[p.node_id].allocate(by_id[p.job_id].request, p.gpu_ids)
