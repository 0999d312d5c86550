"""The fleet panel's read model: every host with its latest sample, its GPUs, a sparkline of the
last minutes and the capacity the queue cannot use; and `ViewMemo`, what a reader keeps between
refreshes (here and in `lepton_tui.views`' cost panel).

Plain, blocking SQLite work for thread workers, as everything `lepton_tui.views` gathers. Queries
are bounded: the latest sample per host and GPU and a bucketed sparkline.
"""

from __future__ import annotations

import json
import math
import threading
from collections import defaultdict
from dataclasses import dataclass, field, fields
from typing import Any

from lepton_tui.constraints import outside_of
from lepton_tui.ledger import Ledger

SPARK_WINDOW_S = 300.0
SPARK_BUCKETS = 20
SAMPLE_FRESH_S = 120.0
# Samples may be written this long after the instant they describe (a poll's round trip, a
# transaction queued behind others): a memo reads this much of the recent past again each time.
SAMPLE_LAG_S = 30.0

# -- fleet ---------------------------------------------------------------------------------------


@dataclass
class GpuCell:
    """The latest sample of one GPU."""

    index: int
    util: float | None = None
    mem_used_mb: float | None = None
    mem_total_mb: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None


@dataclass
class NodeCell:
    """One node of a Slurm partition as its host's last poll saw it (the expandable row)."""

    name: str
    state: str
    cpus: int = 0
    cpus_alloc: int = 0
    mem_mb: int = 0
    mem_alloc_mb: int = 0
    gpus: int = 0
    gpus_alloc: int = 0
    reason: str = ""


@dataclass
class FleetRow:
    """One host as the fleet panel shows it."""

    name: str
    state: str
    admin_state: str
    transport: str
    address: str | None
    cpus: float
    gpus_total: int
    price_per_hour: float
    cpu_percent: float | None = None
    mem_used_mb: float | None = None
    mem_total_mb: float | None = None
    load1: float | None = None
    gpus: list[GpuCell] = field(default_factory=list)
    spark: list[float] = field(default_factory=list)
    running: int = 0
    last_seen: float | None = None
    last_error: str | None = None
    gpu_model: str | None = None
    # GPU capacity free here that the queued requests cannot use (fragmentation), and its price
    # per hour; None when nothing is queued or the host has no GPUs or is not up
    stranded_gpus: float | None = None
    stranded_per_hour: float | None = None
    # CPUs free here while no queued request fits here at all (None: something fits, or nothing
    # is queued, or the host is not up)
    stranded_cpus: float | None = None
    # GPUs used by processes lepton did not start (`constraints.outside_of`), by index
    outside_gpus: tuple[int, ...] = ()
    # a Slurm host: its partition, and its nodes as the last poll saw them (one row that
    # expands into a row per node)
    partition: str | None = None
    nodes: list[NodeCell] = field(default_factory=list)
    # ... and how many jobs of other users wait in its own queue (None: not seen yet)
    others_pending: int | None = None

    @property
    def shown_state(self) -> str:
        """`up`, `down`, `unknown`, or `draining` when an admin drains an up host."""
        return "draining" if self.admin_state == "draining" else self.state

    @property
    def mean_temperature(self) -> float | None:
        temps = [g.temperature_c for g in self.gpus if g.temperature_c is not None]
        return max(temps) if temps else None

    @property
    def total_power(self) -> float | None:
        powers = [g.power_w for g in self.gpus if g.power_w is not None]
        return sum(powers) if powers else None


class ViewMemo:
    """What one reader of one ledger keeps between refreshes, so a refresh reads only what can
    have changed: sparkline buckets that are complete, each series' latest sample, and the cost
    panel's money totals for `COST_TOTALS_S`. One per console (personal mode) or per watch
    stream (lab mode); thread-safe (its reads take turns)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fresh_from: float | None = None  # samples from here on are read again
        self.last_now: float | None = None
        self.buckets: dict[tuple[str, int], tuple[float | None, float | None]] = {}
        self.latest: dict[tuple[str, int], dict[str, Any]] = {}
        self.cost_at: float | None = None
        self.cost: dict[str, Any] | None = None
        self.stranded_key: Any = None
        self.stranded: dict[str, tuple[float | None, float | None, float | None]] = {}

    def reset(self) -> None:
        self.fresh_from = self.last_now = self.cost_at = None
        self.buckets, self.latest, self.cost = {}, {}, None


def _samples(
    ledger: Ledger, now: float, memo: ViewMemo
) -> tuple[list[dict[str, Any]], dict[tuple[str, int], tuple[float | None, float | None]], int]:
    """Each series' latest fresh sample, the sparkline buckets by (host, bucket number), and the
    first bucket shown. Buckets are aligned to the epoch (bucket b spans [b w, (b + 1) w)), so a
    complete one never changes and the memo keeps it; only the last `SAMPLE_LAG_S` is re-read."""
    width = SPARK_WINDOW_S / SPARK_BUCKETS
    last_b = math.ceil(now / width) - 1  # the bucket holding the instant just before now
    first_b = last_b - SPARK_BUCKETS + 1
    if memo.fresh_from is None or memo.last_now is None or now < memo.last_now:
        memo.reset()
        latest_from, spark_from = now - SAMPLE_FRESH_S, first_b * width
    else:
        latest_from = spark_from = min(memo.fresh_from, now)
    for s in ledger.latest_samples(max(latest_from, now - SAMPLE_FRESH_S), now):
        key = (s["host"], int(s["gpu_index"]))
        old = memo.latest.get(key)
        if old is None or s["at"] >= old["at"]:
            memo.latest[key] = s
    for key in [k for k, s in memo.latest.items() if s["at"] < now - SAMPLE_FRESH_S]:
        del memo.latest[key]
    spark_from = max(spark_from, first_b * width)
    for key in [k for k in memo.buckets if k[1] < first_b or k[1] * width >= spark_from]:
        del memo.buckets[key]  # gone from the window, or about to be read again
    for r in ledger.spark_buckets(width, spark_from, (last_b + 1) * width):
        memo.buckets[(r["host"], int(r["b"]))] = (r["g"], r["c"])
    memo.last_now = now
    # read again next time: the buckets a late sample could still land in
    memo.fresh_from = math.floor((now - SAMPLE_LAG_S) / width) * width
    latest = sorted(memo.latest.values(), key=lambda s: (s["host"], s["gpu_index"]))
    return latest, memo.buckets, first_b


def fleet(ledger: Ledger, now: float, memo: ViewMemo | None = None) -> list[FleetRow]:
    """Every host with its latest sample, its GPUs and a sparkline of the last minutes.

    With a `memo` (kept by the caller between refreshes) only the recent samples are read."""
    if memo is None:
        memo = ViewMemo()
    with memo.lock:
        return _fleet(ledger, now, memo)


def _fleet(ledger: Ledger, now: float, memo: ViewMemo) -> list[FleetRow]:
    rows: dict[str, FleetRow] = {}
    hosts = ledger.fleet_hosts()
    for h in hosts:
        rows[h["name"]] = FleetRow(
            name=h["name"],
            state=h["state"] or "unknown",
            admin_state=h["admin_state"] or "active",
            transport=h["transport"] or "ssh",
            address=h["address"],
            cpus=float(h["cpus"] or 0),
            gpus_total=int(h["gpus"] or h["gpus_override"] or 0),
            price_per_hour=float(h["price_per_hour"] or 0.0),
            last_seen=h["last_seen"],
            last_error=h["last_error"],
            gpu_model=h["gpu_model"],
            **slurm_fields(h),
        )
    if not rows:
        return []
    latest, buckets_by_host, first_b = _samples(ledger, now, memo)
    for s in latest:
        row = rows.get(s["host"])
        if row is None:
            continue
        if s["gpu_index"] < 0:
            row.cpu_percent = s["cpu_percent"]
            row.mem_used_mb = s["mem_used_mb"]
            row.mem_total_mb = s["mem_total_mb"]
            row.load1 = s["load1"]
        elif all(g.index != s["gpu_index"] for g in row.gpus):
            row.gpus.append(
                GpuCell(
                    s["gpu_index"], s["util_percent"], s["gpu_mem_used_mb"],
                    s["gpu_mem_total_mb"], s["temperature_c"], s["power_w"],
                )
            )  # fmt: skip
    for row in rows.values():
        if not row.gpus and row.gpus_total:
            row.gpus = [GpuCell(i) for i in range(row.gpus_total)]
    # Sparkline: GPU utilisation (CPU for GPU-less hosts), averaged per bucket.
    spark: dict[str, dict[int, tuple[float | None, float | None]]] = defaultdict(dict)
    for (host, b), pair in buckets_by_host.items():
        spark[host][b - first_b] = pair
    for name, buckets in spark.items():
        row = rows.get(name)
        if row is None:
            continue
        use_gpu = any(v[0] is not None for v in buckets.values())
        series = []
        for b in range(SPARK_BUCKETS):
            mean = buckets.get(b, (None, None))[0 if use_gpu else 1]
            series.append(float(mean) if mean is not None else 0.0)
        row.spark = series
    live = ledger.live_attempt_gpus()  # what runs where, and the GPUs it holds (outside use)
    for a in live:
        if a["host"] in rows:
            rows[a["host"]].running += 1
    gpu_latest = [s for s in latest if s["gpu_index"] >= 0]
    for name, (mbs, hot) in outside_of(gpu_latest, hosts, live).items():
        rows[name].outside_gpus = tuple(g for g in range(len(mbs)) if mbs[g] or hot[g])
    for name, (gpus, per_hour, cpus) in stranded(ledger, now, memo).items():
        if name in rows:
            row = rows[name]
            row.stranded_gpus, row.stranded_per_hour, row.stranded_cpus = gpus, per_hour, cpus
    return list(rows.values())


def slurm_fields(host: dict[str, Any]) -> dict[str, Any]:
    """A Slurm host's partition, nodes and other users' pending jobs, from its `slurm_json`,
    `slurm_nodes` and `slurm_pending` (none for any other host; a value the ledger cannot read
    shows no nodes rather than no fleet)."""
    if not host.get("slurm_json"):
        return {}
    try:
        partition = json.loads(host["slurm_json"]).get("partition")
        records = json.loads(host.get("slurm_nodes") or "[]")
        nodes = [NodeCell(**{k: r[k] for k in NODE_KEYS if k in r}) for r in records]
        queue = json.loads(host.get("slurm_pending") or "null")
        pending = int(queue["jobs"]) if isinstance(queue, dict) and "jobs" in queue else None
    except (ValueError, TypeError, AttributeError, KeyError):
        return {"partition": None}
    return {"partition": str(partition) if partition else None, "nodes": nodes,
            "others_pending": pending}  # fmt: skip


NODE_KEYS = tuple(f.name for f in fields(NodeCell))


STRANDED_SAMPLE = 1000  # the queued requests' shapes are weighed as if this many were queued


def stranded(
    ledger: Ledger, now: float, memo: ViewMemo | None = None
) -> dict[str, tuple[float | None, float | None, float | None]]:
    """Per up host: (GPUs, their price per hour, CPUs) free there that the queued requests cannot
    use. GPUs (hosts with GPUs): `scheduler.stranded`, fragmentation for the queue's shapes; CPUs:
    all the free CPUs of a host where no queued request fits at all. Empty when nothing is
    queued. With a `memo`, computed again only when its inputs changed."""
    key = repr(ledger.stranded_inputs())
    if memo is not None and memo.stranded_key == key:
        return memo.stranded
    shapes = ledger.queued_shapes()
    if not shapes:
        if memo is not None:
            memo.stranded_key, memo.stranded = key, {}
        return {}
    from lepton_tui.dispatch.view import build_view
    from scheduler.model import JobRequest, Resources
    from scheduler.stranded import stranded_gpus

    hosts = ledger.host_rows()
    placeable = [h["name"] for h in hosts if h["state"] == "up" and h["admin_state"] != "draining"]
    attempts = ledger.active_attempt_holdings()
    view = build_view(hosts, attempts, placeable, now)
    total = sum(int(s["n"]) for s in shapes)
    requests: list[JobRequest] = []
    for s in shapes:  # each shape by its share of the queue, in a bounded number of requests
        ask = Resources(
            float(s["cpus"] or 0), int(s["mem_mb"] or 0), int(s["gpus"] or 0),
            int(s["gpu_mem_mb"] or 0),
        )  # fmt: skip
        count = max(1, round(int(s["n"]) * STRANDED_SAMPLE / total))
        requests += [JobRequest(len(requests) + i, ask, 3600.0) for i in range(count)]
    gpus = {s.host: (s.gpus, s.per_hour) for s in stranded_gpus(view, requests)}
    asks = {r.request for r in requests}
    out: dict[str, tuple[float | None, float | None, float | None]] = {}
    for node in view.nodes:
        if not node.is_up:
            continue
        fits = any(node.can_fit(ask) for ask in asks)
        cpus = None if fits or node.free.cpus <= 0 else float(node.free.cpus)
        g, per_hour = gpus.get(node.id, (None, None))
        out[node.id] = (g, per_hour, cpus)
    if memo is not None:
        memo.stranded_key, memo.stranded = key, out
    return out
