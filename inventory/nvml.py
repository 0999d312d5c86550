"""NVML for the login node, through one guarded query: no driver or GPU means no GPU rows."""

from __future__ import annotations

import threading
from typing import Any

from inventory.samples import GpuSample

_lock = threading.Lock()
_state: dict[str, Any] = {"init": None}


def _nvml() -> Any | None:
    """pynvml, initialised once; None when the library, driver or device is absent."""
    with _lock:
        if _state["init"] is None:
            try:
                import pynvml

                pynvml.nvmlInit()
                _state["init"] = pynvml
            except Exception:  # noqa: BLE001 - no NVML library or no driver: no GPUs
                _state["init"] = False
        return _state["init"] or None


def _query(fn: Any, *args: Any) -> Any:
    """Call an NVML function; any NVML error (not supported, lost GPU) gives None."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - NVMLError and friends mean "not available"
        return None


def sample_gpus(processes: bool = True) -> tuple[list[GpuSample], str | None]:
    """Every GPU NVML sees, as GpuSample (with its compute processes if `processes`);
    ([], None) without NVML."""
    nv = _nvml()
    if nv is None:
        return [], None
    count = _query(nv.nvmlDeviceGetCount)
    if count is None:
        return [], "NVML could not count GPUs"
    gpus = []
    for i in range(count):
        h = _query(nv.nvmlDeviceGetHandleByIndex, i)
        if h is None:
            continue
        name = _query(nv.nvmlDeviceGetName, h) or "GPU"
        uuid = _query(nv.nvmlDeviceGetUUID, h) or f"GPU-{i}"
        util = _query(nv.nvmlDeviceGetUtilizationRates, h)
        mem = _query(nv.nvmlDeviceGetMemoryInfo, h)
        temp = _query(nv.nvmlDeviceGetTemperature, h, 0)  # NVML_TEMPERATURE_GPU
        power = _query(nv.nvmlDeviceGetPowerUsage, h)
        procs = (_query(nv.nvmlDeviceGetComputeRunningProcesses, h) or []) if processes else []
        gpus.append(
            GpuSample(
                index=i,
                uuid=uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                name=name.decode() if isinstance(name, bytes) else str(name),
                util_percent=None if util is None else float(util.gpu),
                mem_used_mb=None if mem is None else mem.used // (1 << 20),
                mem_total_mb=None if mem is None else mem.total // (1 << 20),
                temperature_c=temp,
                power_w=None if power is None else round(power / 1000.0, 2),
                processes=[
                    (
                        int(p.pid),
                        None
                        if not getattr(p, "usedGpuMemory", None)
                        else p.usedGpuMemory // (1 << 20),
                    )
                    for p in procs
                ],
            )
        )
    return gpus, None
