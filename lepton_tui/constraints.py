"""Placement constraints and outside GPU use, read from host rows and samples.

Constraints: a host's labels are the `key=value` strings of its `labels` list (`hosts label`),
plus `gpu=MODEL` from its probe. A job's constraints (`submit --gpu-type`, `--constraint`,
`--host`, `--exclude-host`) keep it to the hosts that meet them all; a job no host meets stays
queued with a reason naming the unmet constraint.

Outside use: the latest GPU sample of each host (nvidia-smi's memory used and utilization) minus
what lepton's own running attempts hold on each GPU is memory someone else uses there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from lepton_tui.ledger import Ledger

OUTSIDE_MIN_MB = 256  # less is the driver's own and the desktop's: not a process to avoid
OUTSIDE_UTIL_PERCENT = 10.0  # an unallocated GPU busier than this is used outside lepton
SAMPLE_FRESH_S = 300.0  # older samples say nothing about now


def job_constraints(job: Mapping[str, Any]) -> dict[str, Any]:
    """A job row's constraints (empty when it has none)."""
    raw = job.get("constraints")
    if isinstance(raw, dict):
        return raw
    return json.loads(raw) if raw else {}


def host_labels(host: Mapping[str, Any]) -> list[str]:
    """A host's labels: those set with `hosts label`, then `gpu=MODEL` from its probe."""
    labels = host.get("labels") or []
    if isinstance(labels, str):
        labels = json.loads(labels or "[]")
    out = [str(x) for x in labels]
    model = host.get("gpu_model")
    if model and not any(x.startswith("gpu=") for x in out):
        out.append("gpu=" + str(model).replace(" ", "-"))
    return out


def gpu_type_matches(wanted: str, model: str | None) -> bool:
    """`A100` matches a host whose GPU model names it ("NVIDIA A100-SXM4-80GB"), any case."""
    if not model:
        return False
    norm = model.lower().replace("-", " ").replace("_", " ")
    want = wanted.lower().replace("-", " ").replace("_", " ").strip()
    return want in norm


def unmet(host: Mapping[str, Any], c: Mapping[str, Any]) -> str | None:
    """The first of `c` that `host` does not meet, as the user wrote it; None when all are met."""
    name = host["name"]
    if c.get("hosts") and name not in c["hosts"]:
        return "host=" + ",".join(c["hosts"])
    if name in (c.get("exclude") or ()):
        return f"exclude-host={name}"
    if c.get("gpu_type") and not gpu_type_matches(c["gpu_type"], host.get("gpu_model")):
        return f"gpu-type={c['gpu_type']}"
    labels = set(host_labels(host))
    for label in c.get("labels") or ():
        if label not in labels:
            return f"constraint {label}"
    return None


def allowed_hosts(hosts: Sequence[Mapping[str, Any]], c: Mapping[str, Any]) -> set[str] | None:
    """The hosts meeting every constraint of `c` (None when it has none: any host)."""
    if not c:
        return None
    return {h["name"] for h in hosts if unmet(h, c) is None}


def unmet_reason(hosts: Sequence[Mapping[str, Any]], c: Mapping[str, Any]) -> str:
    """`unschedulable: no host meets ...` naming the constraint that no host meets."""
    if not hosts:
        return "unschedulable: no host meets its constraints (no hosts yet)"
    parts: list[tuple[str, dict[str, Any]]] = [
        ("hosts", {"hosts": c.get("hosts")}),
        ("gpu_type", {"gpu_type": c.get("gpu_type")}),
        *((f"label {x}", {"labels": [x]}) for x in c.get("labels") or ()),
    ]
    for key, part in parts:
        if not any(part.values()):
            continue
        misses = {unmet(h, part) for h in hosts}
        if None not in misses:
            what = sorted(m for m in misses if m)[0]
            if key == "hosts":
                what = "host " + ", ".join(c["hosts"]) + " (no such host)"
            return f"unschedulable: no host meets {what}"
    remaining = [h for h in hosts if h["name"] not in (c.get("exclude") or ())]
    if not remaining:
        return "unschedulable: no host meets its constraints (every host is excluded)"
    return "unschedulable: no host meets all of its constraints at once (" + _describe(c) + ")"


def _describe(c: Mapping[str, Any]) -> str:
    parts = []
    if c.get("gpu_type"):
        parts.append(f"gpu-type={c['gpu_type']}")
    parts += list(c.get("labels") or ())
    if c.get("hosts"):
        parts.append("host=" + ",".join(c["hosts"]))
    if c.get("exclude"):
        parts.append("exclude-host=" + ",".join(c["exclude"]))
    return ", ".join(parts)


def describe(c: Mapping[str, Any]) -> str:
    """The constraints as the user wrote them, one line ("-" when none)."""
    return _describe(c) or "-"


def outside_use(
    ledger: Ledger,
    hosts: Sequence[Mapping[str, Any]],
    attempts: Sequence[Mapping[str, Any]],
    now: float,
) -> dict[str, tuple[tuple[int, ...], tuple[bool, ...]]]:
    """{host: (outside MB per GPU, busy outside per GPU)} from each host's latest GPU sample,
    for hosts where some GPU is used by processes lepton did not start."""
    rows = ledger.latest_gpu_samples(now - SAMPLE_FRESH_S)
    return outside_of(rows, hosts, attempts) if rows else {}


def outside_of(
    gpu_samples: Sequence[Mapping[str, Any]],
    hosts: Sequence[Mapping[str, Any]],
    attempts: Sequence[Mapping[str, Any]],
) -> dict[str, tuple[tuple[int, ...], tuple[bool, ...]]]:
    """`outside_use` from rows already read (each GPU's latest sample, the hosts, the live
    attempts): the fleet panel reads them anyway."""
    rows = gpu_samples
    caps = {h["name"]: h for h in hosts}
    held: dict[tuple[str, int], int] = {}
    for a in attempts:
        ids = a.get("gpu_ids")
        ids = json.loads(ids or "[]") if isinstance(ids, str) else list(ids or [])
        host = caps.get(a["host"])
        per = 0
        if host is not None and host.get("gpus"):
            per = int(host.get("gpu_mem_mb") or 0) // int(host["gpus"])
        for g in ids:
            mb = per if int(a.get("gpus") or 0) else int(a.get("gpu_mem_mb") or 0)
            key = (a["host"], int(g))
            held[key] = held.get(key, 0) + (mb or 1)
    out: dict[str, tuple[list[int], list[bool]]] = {}
    for r in rows:
        name, g = r["host"], int(r["gpu_index"])
        host = caps.get(name)
        if host is None or host.get("gpus_override") is not None:
            continue  # fake GPUs of a test host: nothing measured
        n = int(host.get("gpus") or 0)
        if not 0 <= g < n:
            continue
        mine = held.get((name, g), 0)
        used = float(r["gpu_mem_used_mb"] or 0)
        extra = int(max(0.0, used - mine))
        extra = extra if extra >= OUTSIDE_MIN_MB else 0
        busy = not mine and float(r["util_percent"] or 0) > OUTSIDE_UTIL_PERCENT
        if not extra and not busy:
            continue
        mbs, hot = out.setdefault(name, ([0] * n, [False] * n))
        mbs[g] = extra
        hot[g] = busy
    return {k: (tuple(v[0]), tuple(v[1])) for k, v in out.items()}


def outside_gpus(
    ledger: Ledger, hosts: Sequence[Mapping[str, Any]], now: float
) -> dict[str, list[dict[str, Any]]]:
    """{host: [{gpu, outside_mb, busy}]} for `hosts ls` and the fleet panel."""
    attempts = ledger.active_gpu_holds()
    out: dict[str, list[dict[str, Any]]] = {}
    for name, (mbs, hot) in outside_use(ledger, hosts, attempts, now).items():
        out[name] = [
            {"gpu": g, "outside_mb": mbs[g], "busy": hot[g]}
            for g in range(len(mbs))
            if mbs[g] or hot[g]
        ]
    return out
