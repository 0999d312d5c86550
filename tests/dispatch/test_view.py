"""The cluster view and queue sorting the policy sees, and the guard against a bad policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.dispatch.view import build_view, sort_queued, unschedulable_reason
from lepton_tui.service import Service
from scheduler.model import NODE_DOWN, NODE_DRAINING, NODE_UP, Placement, Resources
from tests.dispatch.helpers import add_local_hosts


def _host(name: str, cpus: float = 8, mem: int = 16384, gpus: int = 0, **kw) -> dict:
    return {"name": name, "cpus": cpus, "mem_mb": mem, "gpus": gpus, "gpu_mem_mb": 0,
            "gpus_override": None, "admin_state": "active", "price_per_hour": 1.0, **kw}  # fmt: skip


def _attempt(host: str, job_id: int, cpus: float, gpu_ids: list[int], gpus: int = 0) -> dict:
    return {"host": host, "job_id": job_id, "cpus": cpus, "mem_mb": 1024, "gpus": gpus,
            "gpu_mem_mb": 0, "gpu_ids": str(gpu_ids).replace(" ", ""), "started_at": 0.0,
            "time_limit_s": 60}  # fmt: skip


def test_view_subtracts_active_attempts_and_their_gpu_indices():
    hosts = [_host("a", gpus_override=4), _host("b", admin_state="draining"), _host("c")]
    attempts = [_attempt("a", 1, 2, [1, 3], gpus=2), _attempt("a", 2, 1, [])]
    view = build_view(hosts, attempts, placeable={"a", "b"}, now=100.0)
    a, b, c = view.nodes
    assert a.capacity == Resources(8, 16384, 4, 0)
    assert a.free.cpus == 5 and a.free.mem_mb == 16384 - 2048
    assert a.free_gpu_ids == (0, 2) and a.state == NODE_UP
    assert b.state == NODE_DRAINING and c.state == NODE_DOWN  # c was not polled this tick
    assert {r.job_id for r in view.running} == {1, 2}
    assert a.pick_gpus(Resources(1, 1, 2)) == (0, 2)


def test_overcommitted_host_takes_nothing_more():
    hosts = [_host("a", cpus=2)]
    attempts = [_attempt("a", 1, 2, []), _attempt("a", 2, 2, [])]  # capacity shrank under them
    (a,) = build_view(hosts, attempts, placeable={"a"}, now=0.0).nodes
    assert not a.is_up and not a.can_fit(Resources(0.1, 1, 0))


def test_sort_queued_dependencies_holds_and_unschedulable():
    hosts = [_host("a", gpus_override=1), _host("g", gpus_override=4, admin_state="draining")]
    jobs = [{"id": i, "cpus": 1, "mem_mb": 100, "gpus": 0, "gpu_mem_mb": 0} for i in range(1, 6)]
    jobs[3]["gpus"] = 2  # job 4 needs 2 GPUs: only the draining host has them
    deps = [
        {"job_id": 1, "depends_on": 10, "state": "failed"},
        {"job_id": 2, "depends_on": 11, "state": "running"},
        {"job_id": 2, "depends_on": 12, "state": "succeeded"},
    ]
    out = sort_queued(jobs, deps, {3: "over budget: project x"}, hosts)
    assert out.dependency_failed == {1: "dependency 10 failed"}
    assert out.reasons[2] == "waiting for dependency 11"
    assert out.reasons[3] == "over budget: project x"
    assert out.reasons[4] == (
        "unschedulable: fits no host (needs 2 GPUs, the most on an active host is 1; "
        "the hosts with enough are draining)"
    )
    assert [j["id"] for j in out.pending] == [5]


def test_unschedulable_reasons_name_what_is_missing():
    hosts = [_host("a", cpus=4, mem=1000)]
    assert "needs 8 CPUs" in unschedulable_reason(Resources(8, 10, 0), hosts)
    assert "needs 4.88 GiB of memory, the most on an active host is 1000 MiB" in (
        unschedulable_reason(Resources(1, 5000, 0), hosts)
    )  # units on both sides (issue 14 review: "needs 10485760 MB memory, ... is 24105")
    assert "no hosts" in unschedulable_reason(Resources(1, 1, 0), [])


class _GreedyBadPolicy:
    """A policy with a bug: it puts every job on the same GPU of the first host."""

    name = "bad"

    def decide(self, view, pending, now):
        return [Placement(j.id, view.nodes[0].id, (0,)) for j in pending]

    def explain(self, job_id):
        return "bad"


def test_a_bad_policy_never_overcommits(home: Path, tmp_path):
    svc = Service.open(home)
    add_local_hosts(svc, tmp_path, 1, gpus=2, cpus=8)
    ids = [svc.submit(command="sleep 5", gpus=1) for _ in range(3)]
    svc.set_setting("policy", "fifo")  # pinned: `auto` would load the autopilot's choice
    d = Dispatcher(svc)
    d._policy = _GreedyBadPolicy()
    d._policy_key = (d.setting("policy"), d.setting("cost_weight"), d.setting("long_share"))
    assert d.acquire()
    try:
        d.tick()
        running = [svc.ledger.attempts_for(i) for i in ids]
        placed = [a[0] for a in running if a]
        assert len(placed) == 1 and placed[0]["gpu_ids"] == [0]
        for job_id in ids:
            svc.cancel([job_id])
        d.tick()
    finally:
        d.close()
        svc.close()


@pytest.mark.parametrize("override,probed,expected", [(None, 3, 3), (2, 0, 2), (0, 8, 0)])
def test_gpus_override_wins_over_the_probe(override, probed, expected):
    (node,) = build_view([_host("a", gpus=probed, gpus_override=override)], [], {"a"}, 0.0).nodes
    assert node.capacity.gpus == expected
