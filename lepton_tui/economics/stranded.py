"""Capacity stranded now: free on a host, but of no use to the jobs that wait in the queue.

GPUs: the fragmentation measure of `scheduler.stranded` for the shapes of the queued requests (the
expected GPU capacity those requests could not use on each up host as it stands). CPUs and memory:
all that is free on an up host where no queued request fits at all. Each is priced at the host's
prices in force now (a GPU at its GPU-hour price plus its share of a flat host price; CPUs at the
core-hour price, memory at the GB-hour price), as money per hour.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lepton_tui.cluster_view import build_view, job_request
from lepton_tui.economics.prices import get_currency, prices_at, whole_node_per_hour
from lepton_tui.ledger import Ledger
from scheduler.model import Prices
from scheduler.stranded import stranded_gpus


@dataclass(frozen=True)
class StrandedHost:
    """One up host's free capacity that no queued request can use, and what it costs an hour."""

    host: str
    gpus: float
    cpus: float
    mem_mb: int
    gpu_per_hour: float
    cpu_mem_per_hour: float

    @property
    def per_hour(self) -> float:
        return self.gpu_per_hour + self.cpu_mem_per_hour

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host, "gpus": self.gpus, "cpus": self.cpus, "mem_mb": self.mem_mb,
            "gpu_per_hour": round(self.gpu_per_hour, 6),
            "cpu_mem_per_hour": round(self.cpu_mem_per_hour, 6),
            "per_hour": round(self.per_hour, 6),
        }  # fmt: skip


def stranded_now(ledger: Ledger, now: float | None = None) -> dict[str, Any]:
    """Per up host, the capacity the queued requests cannot use now, and the totals.

    Keys: `currency`, `queued` (how many requests the measure is for), `hosts` (one
    `StrandedHost.as_dict` per host with something stranded), `gpus` (GPU-hours stranded per hour
    of wall time), `cpus`, `mem_mb`, `per_hour` (money per hour)."""
    now = ledger.clock() if now is None else now
    hosts = ledger.hosts()
    queued = ledger.queued_jobs_oldest_first(held_too=False)
    attempts = ledger.running_attempts(with_job=True)
    up = {h["name"] for h in hosts if h["state"] == "up" and h["admin_state"] == "active"}
    view = build_view(hosts, attempts, up, now)
    prices = {n.id: prices_at(ledger, n.id, now) for n in view.nodes}
    rows = {h["name"]: h for h in hosts}
    priced = tuple(
        dataclasses.replace(
            n,
            prices=Prices(
                whole_node_per_hour(p, rows.get(n.id, {})), p.cpu_hour, p.gpu_hour, p.gb_hour
            ),
        )  # fmt: skip
        for n, p in ((n, prices[n.id]) for n in view.nodes)
    )
    view = dataclasses.replace(view, nodes=priced)
    requests = [job_request(j) for j in queued]
    gpus = {s.host: s for s in stranded_gpus(view, requests)}
    out: list[StrandedHost] = []
    for node in view.nodes:
        if not node.is_up:
            continue
        fits_any = any(node.can_fit(r.request) for r in requests)
        cpus = 0.0 if fits_any or not requests else float(node.free.cpus)
        mem = 0 if fits_any or not requests else int(node.free.mem_mb)
        p = prices[node.id]
        g = gpus.get(node.id)
        gpu_per_hour = g.per_hour if g else 0.0
        cpu_mem = p.cpu_hour * cpus + p.gb_hour * mem / 1024.0
        if p.node_hour:  # a partition priced per node-hour: what is stranded, its dominant share
            cpu_mem += _node_hour_share(node, p, rows.get(node.id, {}), g, cpus, mem, gpu_per_hour)
        row = StrandedHost(node.id, g.gpus if g else 0.0, cpus, mem, gpu_per_hour, cpu_mem)
        if row.gpus or row.cpus or row.mem_mb:
            out.append(row)
    out.sort(key=lambda r: (-r.per_hour, r.host))
    return {
        "currency": get_currency(ledger),
        "queued": len(requests),
        "hosts": [r.as_dict() for r in out],
        "gpus": round(sum(r.gpus for r in out), 3),
        "cpus": sum(r.cpus for r in out),
        "mem_mb": sum(r.mem_mb for r in out),
        "per_hour": round(sum(r.per_hour for r in out), 6),
    }


def _node_hour_share(
    node: Any, p: Any, host: dict[str, Any], g: Any, cpus: float, mem: int, gpu_per_hour: float
) -> float:
    """The node-hour price's part of stranded CPUs and memory: the partition's price
    (`whole_node_per_hour`) x the dominant share of it stranded (GPUs, CPUs or memory), less
    what the stranded GPUs already count, so a partition is never counted twice."""
    cap = node.capacity
    shares = [0.0]
    if cap.cpus:
        shares.append(cpus / cap.cpus)
    if cap.mem_mb:
        shares.append(mem / cap.mem_mb)
    if cap.gpus and g is not None:
        shares.append(g.gpus / cap.gpus)
    whole = whole_node_per_hour(p, host) * min(1.0, max(shares))
    return max(0.0, whole - gpu_per_hour)
