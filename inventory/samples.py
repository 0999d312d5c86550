"""What a probe of a host returns: `HostSample` and its `GpuSample`s (plain data).

Kept apart from `inventory.probe` so that `inventory.nvml` (which builds GPU samples for the
login node) and the probe do not import each other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from inventory.supervisor import AttemptStatus


@dataclass(frozen=True)
class GpuSample:
    """One GPU: identity, utilization and memory (None where the driver says N/A).

    `processes` holds (pid, used MiB or None) of its compute processes; `fake` marks synthetic
    GPUs from `HostSpec.gpus_override`.
    """

    index: int
    uuid: str
    name: str
    util_percent: float | None = None
    mem_used_mb: float | None = None
    mem_total_mb: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    processes: list[tuple[int, float | None]] = field(default_factory=list)
    fake: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GpuSample:
        """Build from the agent's dict."""
        return cls(
            index=int(d["index"]),
            uuid=str(d["uuid"]),
            name=str(d["name"]),
            util_percent=d.get("util_percent"),
            mem_used_mb=d.get("mem_used_mb"),
            mem_total_mb=d.get("mem_total_mb"),
            temperature_c=d.get("temperature_c"),
            power_w=d.get("power_w"),
            processes=[(int(p), m) for p, m in d.get("processes", [])],
            fake=bool(d.get("fake", False)),
        )


@dataclass(frozen=True)
class HostSample:
    """One probe of one host. `gpu_error` says why GPUs could not be read (None if fine)."""

    host: str
    taken_at: float
    cpus: int
    cpu_percent: float
    load1: float
    mem_total_mb: int
    mem_used_mb: int
    disk_free_mb: int | None
    gpus: list[GpuSample] = field(default_factory=list)
    attempts: dict[str, AttemptStatus] = field(default_factory=dict)
    gpu_error: str | None = None
    boot_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the shape `hosts probe --json` prints)."""
        return asdict(self)

    def to_json(self) -> str:
        """The sample as JSON text."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HostSample:
        """Build from `to_dict()` output or the agent's reply."""
        return cls(
            host=str(d["host"]),
            taken_at=float(d["taken_at"]),
            cpus=int(d["cpus"]),
            cpu_percent=float(d["cpu_percent"]),
            load1=float(d["load1"]),
            mem_total_mb=int(d["mem_total_mb"]),
            mem_used_mb=int(d["mem_used_mb"]),
            disk_free_mb=None if d.get("disk_free_mb") is None else int(d["disk_free_mb"]),
            gpus=[GpuSample.from_dict(g) for g in d.get("gpus", [])],
            attempts={t: AttemptStatus.from_dict(s) for t, s in (d.get("attempts") or {}).items()},
            gpu_error=d.get("gpu_error"),
            boot_id=d.get("boot_id"),
        )

    @classmethod
    def from_json(cls, text: str) -> HostSample:
        """Inverse of to_json."""
        return cls.from_dict(json.loads(text))
