"""GPU shares placed jointly in the real dispatcher (real sshd, fake `nvidia-smi` with two 80 GB
GPUs): a round of shares laid out together leaves room that one at a time strands."""

from __future__ import annotations

import pytest

from scheduler.joint import JointShares, applies
from scheduler.model import ClusterView, JobRequest, NodeView, Resources, RunningJob
from scheduler.registry import make_policy
from scheduler.stranded import stranded_gpus
from tests.dispatch.helpers import TERMINAL, add_bed_hosts, tick_until
from tests.share.fakegpu import fake_gpus, gpu

GB = 1024
PER_GPU = 81920  # the fake A100's memory
SHARES_GB = (30, 30, 50, 40)
"""Two GPUs of 80 GB, shares in queue order. One at a time, the first three go 30+30 on one GPU
and 50 on the other (each where it strands least then), leaving 20 and 30 GB: the 40 GB share
fits nowhere. Together, 30+50 and 30 leave 50 GB on one GPU: the 40 GB share starts too."""


def _requests() -> list[JobRequest]:
    return [
        JobRequest(k + 1, Resources(1, 128, 0, gb * GB), 3600, 0, float(k))
        for k, gb in enumerate(SHARES_GB)
    ]


def _node() -> NodeView:
    return NodeView.empty("gpu", Resources(4, 8192, 2, 2 * PER_GPU))


def _layout(placements, requests) -> tuple[NodeView, set]:
    node = _node()
    by_id = {r.id: r for r in requests}
    for p in placements:
        node = node.allocate(by_id[p.job_id].request, tuple(p.gpu_ids))
    return node, {p.job_id for p in placements}


def test_one_at_a_time_strands_what_the_joint_layout_uses():
    """The same round in the scheduler alone: sjf one at a time, then re-placed jointly."""
    reqs = _requests()
    view = ClusterView((_node(),), 0.0)
    policy = make_policy("sjf")
    alone = policy.decide(view, reqs, 0.0)
    assert applies(policy)
    joint = JointShares()
    together = joint.place(view, reqs, alone)
    node_a, started_a = _layout(alone, reqs)
    node_j, started_j = _layout(together, reqs)
    assert started_a == started_j == {1, 2, 3}  # the policy chooses who starts
    assert sorted(node_a.gpu_free_mem_mb) == [20 * GB, 30 * GB]
    assert sorted(node_j.gpu_free_mem_mb) == [0, 50 * GB]
    assert joint.rounds == 1 and joint.moved >= 1
    [a] = stranded_gpus(ClusterView((node_a,), 0.0), reqs)
    [j] = stranded_gpus(ClusterView((node_j,), 0.0), reqs)
    assert j.gpus < a.gpus
    assert a.gpus > 0.4 and j.gpus == 0.0


def test_policies_that_do_not_place_by_fragmentation_are_left_alone():
    reqs = _requests()
    view = ClusterView((_node(),), 0.0)
    fifo = make_policy("fifo")  # best fit by default
    assert not applies(fifo)
    assert not applies(make_policy("sjf", placement="bestfit"))
    alone = fifo.decide(view, reqs, 0.0)
    assert JointShares().place(view, reqs[:1], alone[:1]) == alone[:1]  # one share: nothing joint


def test_joint_layout_never_delays_a_waiting_job():
    """GPU 0 holds 40 GB for two hours, GPU 1 30 GB for a minute; a whole-GPU job waits for GPU 1.
    sjf puts the round's 20 and 10 GB shares on GPU 0; the 10 GB one strands less on GPU 1, but
    there it would hold GPU 1 for an hour: the joint layout is not taken."""
    allocs = [(Resources(0, 0, 0, 40 * GB), (0,)), (Resources(0, 0, 0, 30 * GB), (1,))]
    node = NodeView.from_allocations("gpu", Resources(8, 8192, 2, 2 * PER_GPU), allocs)
    running = (
        RunningJob(98, "gpu", allocs[0][0], (0,), 0.0, 7200.0),
        RunningJob(99, "gpu", allocs[1][0], (1,), 0.0, 60.0),
    )
    view = ClusterView((node,), 0.0, running)
    whole = JobRequest(10, Resources(1, 128, 1, 0), 3600, 0, -1.0)
    shares = [JobRequest(k + 1, Resources(1, 128, 0, gb * GB), 3600, 0, float(k))
              for k, gb in enumerate((20, 10))]  # fmt: skip
    pending = [whole, *shares]
    theirs = make_policy("sjf").decide(view, pending, 0.0)
    assert [(p.job_id, p.gpu_ids) for p in theirs] == [(1, (0,)), (2, (0,))]
    unguarded = JointShares()
    unguarded.guard = 0  # no waiting job looked at: the layout that strands least
    assert [p.gpu_ids for p in unguarded.place(view, pending, theirs)] == [(0,), (1,)]
    guarded = JointShares()
    assert guarded.place(view, pending, theirs) == theirs
    assert guarded.rounds == 0


def _dispatch_round(svc, dispatcher, host, tmp_path, share_placement: str | None):
    """Submit the round's shares to the real dispatcher; tick until the first three run and twice
    more; (job ids, GB used per GPU, GB stranded for the round's shapes, the 40 GB job's state)."""
    add_bed_hosts(svc, [host], root=tmp_path, cpus=4, mem_mb=8192)
    svc.set_setting("policy", "sjf")
    if share_placement is not None:
        svc.set_setting("share_placement", share_placement)
    dispatcher.tick()  # the probe finds both GPUs
    assert svc.get_host(host.name)["gpus"] == 2
    ids = [
        svc.submit(command="sleep 120", cpus=1, gpu_mem=f"{gb}G", mem="128M") for gb in SHARES_GB
    ]
    tick_until(dispatcher, lambda: all(svc.get_job(i)["state"] == "running" for i in ids[:3]))
    dispatcher.tick()
    dispatcher.tick()
    used = [0, 0]
    allocs = []
    for i, gb in zip(ids, SHARES_GB, strict=True):
        attempts = svc.ledger.attempts_for(i)
        if attempts:
            [g] = attempts[0]["gpu_ids"]
            used[g] += gb
            allocs.append((Resources(1, 128, 0, gb * GB), (g,)))
    node = NodeView.from_allocations(host.name, Resources(4, 8192, 2, 2 * PER_GPU), allocs)
    [stranded] = stranded_gpus(ClusterView((node,), 0.0), _requests())
    return ids, used, stranded.gpus, svc.get_job(ids[3])["state"]


def _stop(svc, dispatcher, ids):
    svc.cancel(ids)
    tick_until(dispatcher, lambda: all(svc.get_job(i)["state"] in TERMINAL for i in ids))


def test_the_dispatcher_places_shares_one_at_a_time_by_default(svc, sshbed, tmp_path, dispatcher):
    host = sshbed(1)[0]
    with fake_gpus(host, [gpu(), gpu()]):
        ids, used, stranded, last = _dispatch_round(svc, dispatcher, host, tmp_path, None)
        assert sorted(used) == [50, 60]  # 30+30 and 50: 20 and 30 GB left
        assert last == "queued"  # the 40 GB share fits nowhere
        assert stranded > 0.4
        _stop(svc, dispatcher, ids)


def test_the_dispatcher_places_a_round_of_shares_jointly(svc, sshbed, tmp_path, dispatcher):
    host = sshbed(1)[0]
    with fake_gpus(host, [gpu(), gpu()]):
        ids, used, stranded, last = _dispatch_round(svc, dispatcher, host, tmp_path, "joint")
        # 30+50 and 30 leave 50 GB: the 40 GB share starts at the next tick (30+40)
        assert last == "running"
        assert sorted(used) == [70, 80]
        assert stranded < 0.2  # 10 GB left, too small for any of the round's shapes
        decided = svc.ledger.query("SELECT job_id, at FROM decisions WHERE host IS NOT NULL")
        at = {d["job_id"]: d["at"] for d in decided}
        assert at[ids[0]] == at[ids[1]] == at[ids[2]]  # the first three: one round, together
        _stop(svc, dispatcher, ids)


def test_share_placement_setting_takes_single_or_joint(tmp_path):
    from lepton_tui.errors import ValidationError
    from lepton_tui.settings import parse_setting
    from tests.clirun import lepton

    assert parse_setting("share_placement", " JOINT ") == "joint"
    assert parse_setting("share_placement", "single") == "single"
    with pytest.raises(ValidationError, match="share_placement"):
        parse_setting("share_placement", "together")
    bad = lepton(tmp_path, "settings", "set", "share_placement", "together")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "single or joint" in bad.stdout + bad.stderr
    good = lepton(tmp_path, "settings", "set", "share_placement", "joint")
    assert good.returncode == 0, good.stderr
