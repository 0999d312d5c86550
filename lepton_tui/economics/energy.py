"""Measured GPU energy of attempts, and what the reports at one instant share of it.

An attempt's energy is, per GPU it held, the mean sampled power over its time x its duration x the
share of that GPU it held (`gpu_share`). Running and unsettled attempts are measured for each
report (into the reading connection's TEMP table `econ_energy`); `energy_memo` lets the reports of
one instant measure them once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lepton_tui.economics.prices import charged_resources
from lepton_tui.ledger import Ledger


def host_capacity(ledger: Ledger, name: str) -> dict[str, Any]:
    """A host's capacity (cpus, mem_mb, gpus, gpu_mem_mb): from its row, or for a removed host
    from the event that recorded its removal; {} when neither is known."""
    return ledger.host_capacity_record(name)


def _memo(ledger: Ledger, now: float) -> dict[str, Any] | None:
    """What reports at `now` inside `energy_memo` share (None outside one)."""
    held = getattr(ledger, "_energy_memo", None)
    if held is not None and held[0] == now and held[2] is ledger.conn:
        return held[1]
    return None


def _unsettled_energy(
    ledger: Ledger, since: float, until: float, now: float, memo: dict[str, Any] | None = None
) -> None:
    """Measure, for the report, the energy of GPU attempts that have no stored energy yet.

    Inside `energy_memo` (several reports at one `now`) they are read and measured once, for
    every window: the TEMP table then holds them all, and each report's SQL keeps its own."""
    if memo is not None and memo.get("energy_loaded"):
        return
    if memo is not None and "energy" in memo:
        energy = memo["energy"]
    else:
        rows = ledger.unmeasured_gpu_attempts(None if memo is not None else (since, until))
        energy = measure_energy_many(ledger, rows, now) if rows else {}
    if memo is not None:
        memo["energy"], memo["energy_loaded"] = energy, True
    if energy:
        ledger.load_report_energy(energy)


@contextmanager
def energy_memo(ledger: Ledger, now: float) -> Iterator[None]:
    """While open, reports at `now` share the energy they measure for running attempts (the
    console's cost panel asks for several at one instant)."""
    ledger._energy_memo = (now, {}, ledger.conn)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        ledger._energy_memo = None  # type: ignore[attr-defined]


def gpu_share(attempt: dict[str, Any], cap: dict[str, Any]) -> float:
    """The share of each GPU an attempt holds: 1 for whole GPUs, else its GPU memory over one
    GPU's memory on a host of capacity `cap` (1 when that is unknown)."""
    if attempt.get("gpus"):
        return 1.0
    gpus, gmem = float(cap.get("gpus") or 0), float(cap.get("gpu_mem_mb") or 0)
    per = gmem / gpus if gpus and gmem else 0.0
    return min(1.0, float(attempt.get("gpu_mem_mb") or 0) / per) if per else 1.0


def measure_energy_many(
    ledger: Ledger, attempts: list[dict[str, Any]], now: float
) -> dict[int, float]:
    """`measure_energy_wh` of many attempts at once (a fixed number of statements): {id: Wh}."""
    out = {int(a["id"]): 0.0 for a in attempts}
    if not attempts:
        return out
    caps = ledger.host_gpu_capacities()
    means: dict[int, list[float]] = {}
    for r in ledger.mean_gpu_power([int(a["id"]) for a in attempts], now):
        if r["mean_w"] is not None:
            means.setdefault(int(r["id"]), []).append(float(r["mean_w"]))
    for a in attempts:
        start = a.get("started_at") or a.get("created_at")
        end = a.get("ended_at") or now
        if start is None or end <= start or int(a["id"]) not in means:
            continue
        cap = caps.get(a["host"]) or host_capacity(ledger, a["host"])
        share = gpu_share(charged_resources(a), cap)  # whole GPUs where Slurm allocated them
        out[int(a["id"])] = sum(w * (end - start) / 3600.0 * share for w in means[int(a["id"])])
    return out


def measure_energy_wh(ledger: Ledger, attempt: dict[str, Any], now: float | None = None) -> float:
    """Measured GPU energy of an attempt (a row of `attempts`): per GPU it held, mean sampled
    power x time x its share."""
    now = ledger.clock() if now is None else now
    return measure_energy_many(ledger, [attempt], now)[int(attempt["id"])]
