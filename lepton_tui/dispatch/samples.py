"""Utilization samples: one row per host (gpu_index -1) and per GPU each poll, thinned with age.

Raw rows (resolution 0) are kept for an hour, then averaged into per-minute rows (resolution 60);
per-minute rows older than a week become hourly rows (resolution 3600). Only whole buckets are
compacted, so a bucket is never split between two resolutions.
"""

from __future__ import annotations

from typing import Any

from lepton_tui.dispatch.hostpool import Poll
from lepton_tui.ledger import Ledger

RAW_KEEP_S = 3600.0
MINUTE_KEEP_S = 7 * 86400.0
_VALUES = (
    "cpu_percent", "mem_used_mb", "mem_total_mb", "load1", "util_percent", "gpu_mem_used_mb",
    "gpu_mem_total_mb", "temperature_c", "power_w",
)  # fmt: skip


def record_samples(ledger: Ledger, poll: Poll, at: float) -> int:
    """Insert this poll's host row and GPU rows (call inside the host's transaction)."""
    rows: list[dict[str, Any]] = [
        {
            "host": poll.host, "gpu_index": -1, "at": at, "resolution": 0,
            "cpu_percent": poll.cpu_percent, "mem_used_mb": poll.mem_used_mb,
            "mem_total_mb": poll.mem_total_mb, "load1": poll.load1, "n": 1,
        }
    ]  # fmt: skip
    for g in poll.gpus:
        rows.append(
            {
                "host": poll.host, "gpu_index": g.index, "at": at, "resolution": 0,
                "util_percent": g.util_percent, "gpu_mem_used_mb": g.mem_used_mb,
                "gpu_mem_total_mb": g.mem_total_mb, "temperature_c": g.temperature_c,
                "power_w": g.power_w, "n": 1,
            }
        )  # fmt: skip
    return ledger.insert_samples(rows)


def _compact(ledger: Ledger, src: int, dst: int, cutoff: float) -> int:
    """Average rows of resolution `src` older than `cutoff` into buckets of `dst` seconds."""
    cutoff = (cutoff // dst) * dst  # whole buckets only
    with ledger.tx():
        return ledger.downsample(src, dst, cutoff, _VALUES)


def compact_samples(ledger: Ledger, now: float) -> int:
    """Thin old samples (raw -> per minute after an hour, per minute -> hourly after a week)."""
    removed = _compact(ledger, 0, 60, now - RAW_KEEP_S)
    removed += _compact(ledger, 60, 3600, now - MINUTE_KEEP_S)
    return removed
