"""Other users' pending jobs in a Slurm partition's queue, pure: their claims shrink only what
the placement policy sees, never the partition's recorded capacity (which prices and replay
read) nor its GPUs' use (which the fleet and `cost --waste` read as use outside lepton)."""

from __future__ import annotations

import json
from typing import Any

from inventory.slurm import OthersPending, SlurmNode, SlurmTarget, partition_view
from inventory.slurm_host import SlurmPoll
from lepton_tui.cluster_view import build_view
from lepton_tui.dispatch.record import discovered_capacity
from lepton_tui.dispatch.slurm import partition_poll, with_claims


def busy_poll(others: OthersPending | None) -> Any:
    """Two 8-CPU, 2-GPU nodes; another user's running job holds 4 CPUs and 1 GPU."""
    nodes = [
        SlurmNode("n1", "mixed", 8, 4, 32000, 8000, 2, 1, ("gpu",)),
        SlurmNode("n2", "idle", 8, 0, 32000, 0, 2, 0, ("gpu",)),
    ]
    sp = SlurmPoll(partition_view(nodes, "gpu"), {}, {}, frozenset(), others)
    return partition_poll("cluster", 1000.0, sp, {}, {}, [], {})


def host_row(poll: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"name": "cluster", "slurm_json": SlurmTarget("gpu").to_json()}
    row.update(discovered_capacity(row, poll))
    return row


def test_claims_leave_the_recorded_capacity_and_gpus_alone_but_shrink_the_placement_view() -> None:
    # 3 jobs of others wait for Resources, asking more than is free: 20 CPUs, 60 GB, 4 GPUs
    poll = busy_poll(OthersPending(jobs=3, ahead=3, cpus=20, mem_mb=60000, gpus=4))
    row = host_row(poll)
    # the partition less what others RUN there (16 - 4 CPUs, 64000 - 8000 MB), not 0
    assert (row["cpus"], row["mem_mb"], row["gpus"]) == (12.0, 56000, 4)
    # only the allocated GPU is busy: no claimed GPU reads as used outside lepton
    assert [g.util_percent for g in poll.gpus] == [100.0, 0.0, 0.0, 0.0]
    assert json.loads(row["slurm_pending"])["ahead"] == 3
    view = with_claims(build_view([row], [], ["cluster"], 1000.0), [row])
    (node,) = view.nodes
    assert node.capacity.cpus == 12.0
    # the policy sees nothing free: the claims are larger than the room (floored at 0)
    assert (node.free.cpus, node.free.mem_mb, node.free.gpus) == (0.0, 0, 0)
    assert node.free_gpu_ids == ()


def test_smaller_claims_take_their_share_of_the_room() -> None:
    row = host_row(busy_poll(OthersPending(jobs=2, ahead=1, cpus=3, mem_mb=1000, gpus=1)))
    (node,) = with_claims(build_view([row], [], ["cluster"], 1000.0), [row]).nodes
    assert (node.free.cpus, node.free.mem_mb, node.free.gpus) == (9.0, 55000, 3)
    assert len(node.free_gpu_ids) == 3
    # none ahead (held, or waiting for a begin time): the view is the partition's
    row = host_row(busy_poll(OthersPending(jobs=2, ahead=0)))
    (node,) = with_claims(build_view([row], [], ["cluster"], 1000.0), [row]).nodes
    assert (node.free.cpus, node.free.mem_mb, node.free.gpus) == (12.0, 56000, 4)


def test_a_failed_listing_leaves_no_stale_claims() -> None:
    """The queue's squeue failed this tick (`others` None): the claims of the last listing are
    forgotten, and the policy sees the partition as sinfo shows it."""
    row = host_row(busy_poll(OthersPending(jobs=1, ahead=1, cpus=6, mem_mb=1000, gpus=1)))
    row.update(discovered_capacity(row, busy_poll(None)))
    assert row["slurm_pending"] is None
    (node,) = with_claims(build_view([row], [], ["cluster"], 1000.0), [row]).nodes
    assert (node.free.cpus, node.free.mem_mb, node.free.gpus) == (12.0, 56000, 4)
