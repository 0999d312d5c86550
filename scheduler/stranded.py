"""GPU capacity stranded by fragmentation, per host: what a panel or a waste report shows.

For each up node, the fragmentation (scheduler/fragmentation.py) for the typical shapes of recent
requests: the expected GPU capacity those requests could not use there as it stands, in GPUs,
and what that capacity costs per hour at the node's price of one GPU.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scheduler.fragmentation import (
    MILLI,
    FreeNodes,
    Mix,
    ModelBits,
    RoundFragmentation,
    request_shape,
)
from scheduler.model import (
    ClusterView,
    JobRequest,
    NodeView,
    Resources,
    allocation_price_per_hour,
)


@dataclass(frozen=True, slots=True)
class Stranded:
    """One host's GPU capacity that the typical requests cannot use, and its hourly price."""

    host: str
    gpus: float
    per_hour: float


def _free_gpu_memory(node: NodeView) -> list[int]:
    """Free memory per GPU. A node that reports no GPU memory (a Slurm partition: Slurm hands out
    whole GPUs and says nothing of their memory) has each free GPU whole, in units of 1 MB."""
    if node.gpu_mem_per_gpu_mb > 0:
        return list(node.gpu_free_mem_mb)
    free = set(node.free_gpu_ids)
    return [1 if g in free else 0 for g in range(node.capacity.gpus)]


def stranded_gpus(view: ClusterView, recent: Sequence[JobRequest]) -> list[Stranded]:
    """Per up node with GPUs: the GPU capacity stranded for the shapes of `recent` requests."""
    nodes = [n for n in view.nodes if n.is_up and n.capacity.gpus]
    if not nodes or not recent:
        return [Stranded(n.id, 0.0, 0.0) for n in nodes]
    bits = ModelBits()
    shapes = Counter(
        request_shape(
            j.request.cpus,
            j.request.mem_mb,
            j.request.gpus,
            j.request.gpu_mem_mb,
            bits.mask(j.gpu_model),
        )
        for j in recent
    )
    state = FreeNodes(
        np.array([n.free.cpus for n in nodes], dtype=float),
        np.array([n.free.mem_mb for n in nodes], dtype=float),
        [_free_gpu_memory(n) for n in nodes],
        np.array([max(n.gpu_mem_per_gpu_mb, 1) for n in nodes], dtype=float),
        [n.gpu_model for n in nodes],
    )
    frag = RoundFragmentation(state, Mix.from_counts(shapes, coverage=1.0, limit=64), bits)
    out = []
    for i, n in enumerate(nodes):
        prices = n.prices if n.prices is not None else n.price_per_hour
        one_gpu = allocation_price_per_hour(Resources(0.0, 0, 1), n.capacity, prices)
        gpus = float(frag.cache.frag[i]) / MILLI
        out.append(Stranded(n.id, round(gpus, 3), round(gpus * one_gpu, 4)))
    return out
