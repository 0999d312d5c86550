"""Every offered policy, the learned ones too, places a job only where its host constraints and
GPU models allow (README, "Placement honours them in every policy")."""

from __future__ import annotations

import pytest

from scheduler.model import ClusterView, JobRequest, NodeView, Resources
from scheduler.registry import POLICY_NAMES, make_policy

GPU = Resources(1, 1024, 1)


def _view() -> ClusterView:
    return ClusterView(
        (NodeView.empty("a", Resources(8, 16384, 4, 4096), gpu_model="A100"),
         NodeView.empty("b", Resources(8, 16384, 4, 4096), gpu_model="H100"),
         NodeView.empty("c", Resources(8, 16384, 4, 4096), gpu_model="H100")),
    )  # fmt: skip


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_a_job_restricted_to_one_host_starts_there(name):
    """Host a comes first and would be every policy's pick; the job may only use b."""
    job = JobRequest(1, GPU, 60, hosts=frozenset({"b"}))
    placed = make_policy(name).decide(_view(), [job], 0.0)
    assert [(p.job_id, p.node_id) for p in placed] == [(1, "b")]
    nowhere = JobRequest(2, GPU, 60, hosts=frozenset())
    assert make_policy(name).decide(_view(), [nowhere], 0.0) == []


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_a_queue_of_constrained_jobs_keeps_to_its_hosts_and_models(name):
    """Twenty jobs, a third of them on A100 only, a third kept off host c, as placements fill
    the nodes one by one (the fit matrix is updated by column after each)."""
    jobs = []
    for i in range(20):
        if i % 3 == 0:
            jobs.append(JobRequest(i, GPU, 60 + i, submitted_at=float(i), gpu_model="A100"))
        elif i % 3 == 1:
            jobs.append(JobRequest(i, GPU, 60 + i, submitted_at=float(i),
                                   hosts=frozenset({"a", "b"})))  # fmt: skip
        else:
            jobs.append(JobRequest(i, GPU, 60 + i, submitted_at=float(i)))
    placed = make_policy(name).decide(_view(), jobs, 100.0)
    assert placed, name
    by_id = {j.id: j for j in jobs}
    for p in placed:
        job = by_id[p.job_id]
        if job.gpu_model:
            assert p.node_id == "a", (name, p)
        if job.hosts is not None:
            assert p.node_id in job.hosts, (name, p)
    per_node: dict[str, int] = {}
    for p in placed:
        per_node[p.node_id] = per_node.get(p.node_id, 0) + len(p.gpu_ids)
    assert all(n <= 4 for n in per_node.values())
