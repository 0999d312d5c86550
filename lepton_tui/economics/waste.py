"""Idle and waste detection: GPUs allocated but idle, and GPUs busy with work lepton did not start.

Both read the `samples` the dispatcher records. An allocated GPU is idle when every sample of the
last `idle_gpu_after_s` seconds (setting, default 600) shows utilization under
`idle_gpu_threshold` % (setting, default 5) and its attempt has run at least that long. A GPU is
used by others when, over the same window, it shows utilization over the threshold or more than
256 MB of memory in use while no running attempt of lepton holds it. Findings carry the owner job
(for idle ones) and the money the GPU burns per hour. `notify_waste` tells the job's owner with
an event on the job, once per attempt and GPU; nothing is ever killed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lepton_tui.economics.costs import charged_from
from lepton_tui.economics.prices import allocation_rate, format_money, get_currency, prices_at
from lepton_tui.ledger import Ledger

FOREIGN_MEM_MB = 256.0
DEFAULT_THRESHOLD = 5.0
DEFAULT_AFTER_S = 600.0


@dataclass(frozen=True)
class WasteFinding:
    """One wasted GPU."""

    kind: str  # "idle_gpu" (allocated, idle) or "foreign_gpu" (busy, not lepton's)
    host: str
    gpu: int
    util_percent: float
    rate_per_hour: float
    message: str
    job_id: int | None = None
    user: str | None = None
    token: str | None = None
    processes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "processes": list(self.processes)}


def _processes(probes: Mapping[str, Any] | None, host: str, gpu: int) -> tuple[str, ...]:
    """Descriptions of a GPU's processes from a probe's HostSample, when one is given."""
    sample = (probes or {}).get(host)
    for g in getattr(sample, "gpus", None) or ():
        if getattr(g, "index", None) == gpu:
            return tuple(str(p) for p in (getattr(g, "processes", None) or ()))
    return ()


def find_waste(
    ledger: Ledger,
    now: float | None = None,
    *,
    threshold: float | None = None,
    after_s: float | None = None,
    probes: Mapping[str, Any] | None = None,
) -> list[WasteFinding]:
    """Idle allocated GPUs and GPUs busy outside lepton, most expensive first.

    `probes` ({host: HostSample} from the last poll) adds the GPU's process list to findings.
    """
    now = ledger.clock() if now is None else now
    threshold = float(ledger.get_setting("idle_gpu_threshold", DEFAULT_THRESHOLD)
                      if threshold is None else threshold)  # fmt: skip
    after_s = float(ledger.get_setting("idle_gpu_after_s", DEFAULT_AFTER_S)
                    if after_s is None else after_s)  # fmt: skip
    since = now - after_s
    currency = get_currency(ledger)
    hosts = {h["name"]: h for h in ledger.hosts()}
    running = ledger.running_attempts(with_job=True)
    held: set[tuple[str, int]] = set()
    out: list[WasteFinding] = []
    for att in running:
        gpu_ids = json.loads(att["gpu_ids"] or "[]")
        held.update((att["host"], int(g)) for g in gpu_ids)
        start = charged_from(att)  # a Slurm job waiting in Slurm's queue holds nothing yet
        if not gpu_ids or start is None or start > since:
            continue
        host = hosts.get(att["host"], {})
        rate = allocation_rate(prices_at(ledger, att["host"], now), att, host)
        for g in gpu_ids:
            st = ledger.gpu_window_stats(att["host"], int(g), since, now)
            if not st["n"] or st["max_util"] is None or st["max_util"] >= threshold:
                continue
            per_gpu = rate / len(gpu_ids)
            out.append(
                WasteFinding(
                    "idle_gpu",
                    att["host"],
                    int(g),
                    float(st["avg_util"] or 0.0),
                    per_gpu,
                    f"job {att['job_id']} ({att['user']}) holds GPU {g} of {att['host']} but "
                    f"used under {threshold:g} % of it for {after_s / 60:.0f} min: "
                    f"{format_money(per_gpu, currency)}/h",
                    att["job_id"],
                    att["user"],
                    att["token"],
                    _processes(probes, att["host"], int(g)),
                )  # fmt: skip
            )
    for name, host in hosts.items():
        prices = prices_at(ledger, name, now)
        gpus = int(host["gpus"] or 0)
        per_gpu = prices.gpu_hour + (prices.per_hour / gpus if gpus else 0.0)
        for g in range(gpus):
            if (name, g) in held:
                continue
            st = ledger.gpu_window_stats(name, g, since, now)
            busy = (st["max_util"] or 0.0) > threshold or (st["max_mem"] or 0.0) > FOREIGN_MEM_MB
            if not st["n"] or not busy:
                continue
            out.append(
                WasteFinding(
                    "foreign_gpu",
                    name,
                    g,
                    float(st["avg_util"] or 0.0),
                    per_gpu,
                    f"GPU {g} of {name} is busy with processes lepton did not start "
                    f"({st['avg_util'] or 0:.0f} % used): {format_money(per_gpu, currency)}/h",
                    processes=_processes(probes, name, g),
                )  # fmt: skip
            )
    return sorted(out, key=lambda f: (-f.rate_per_hour, f.host, f.gpu))


def notify_waste(ledger: Ledger, findings: list[WasteFinding]) -> int:
    """Tell each idle GPU's job owner with an event on the job (once per attempt and GPU).

    Foreign use is recorded once per host, GPU and hour. Never kills anything. Returns how many
    notices were written.
    """
    written = 0
    now = ledger.clock()
    with ledger.tx():
        for f in findings:
            if f.kind == "idle_gpu":
                data = {"gpu": f.gpu, "token": f.token}
                if ledger.waste_noticed("waste.idle_gpu", data, job_id=f.job_id):
                    continue
                ledger.event("waste.idle_gpu", f.message, job_id=f.job_id, host=f.host,
                             actor="lepton", data={"gpu": f.gpu, "token": f.token}, at=now)  # fmt: skip
            else:
                seen = ledger.waste_noticed(
                    "waste.foreign_gpu", {"gpu": f.gpu}, host=f.host, since=now - 3600
                )
                if seen:
                    continue
                ledger.event("waste.foreign_gpu", f.message, host=f.host, actor="lepton",
                             data={"gpu": f.gpu}, at=now)  # fmt: skip
            written += 1
    return written
