"""Probe: one round trip per host returns CPU, memory, load, disk, GPUs and attempt states.

SSH hosts run the stdlib-only agent over `python3 -`; the login node (`transport == "local"`)
is probed in-process with psutil and NVML. No GPU, driver or nvidia-smi: an empty GPU list.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

from inventory import nvml
from inventory.fanout import Failed, Ok, fan_out
from inventory.hostspec import HostSpec, check_token
from inventory.remote import agent as local_agent
from inventory.remote_call import agent_call
from inventory.samples import GpuSample as GpuSample  # re-exported: probes return them
from inventory.samples import HostSample as HostSample
from inventory.supervisor import AttemptStatus
from inventory.transport import Transport


def probe(
    transport: Transport,
    spec: HostSpec,
    tokens: Sequence[str] | None = None,
    timeout: float = 30,
    processes: bool = True,
) -> HostSample:
    """Sample one host in ONE round trip (none for a local host).

    `tokens`: the attempts whose status to include; None includes every attempt directory.
    `processes`: list each GPU's compute processes too (a second `nvidia-smi` on the host; the
    dispatcher's polls do without).
    """
    token_list = None if tokens is None else [check_token(t) for t in tokens]
    if spec.transport == "local":
        return probe_local(spec, token_list, processes=processes)
    reply = agent_call(
        transport,
        spec,
        "probe",
        timeout=timeout,
        tokens=token_list,
        gpus_override=spec.gpus_override,
        processes=processes,
    )
    return HostSample.from_dict(reply)


_cpu_lock = threading.Lock()
_cpu_read_at: float | None = None  # when psutil last measured this process's CPU window
_cpu_last = 0.0
CPU_MIN_WINDOW_S = 0.05  # psutil's CPU times tick every 10 ms: a shorter window reads 0 %


def _local_cpu_percent() -> float:
    """This machine's busy percent since the last sample; the first one measures 0.1 s (psutil's
    first non-blocking call has nothing to compare with), and one taken too soon after the last
    repeats it rather than read a window too short to mean anything."""
    import psutil

    global _cpu_read_at, _cpu_last
    with _cpu_lock:
        now = time.monotonic()
        if _cpu_read_at is None:
            _cpu_last = float(psutil.cpu_percent(interval=0.1))
        elif now - _cpu_read_at >= CPU_MIN_WINDOW_S:
            _cpu_last = float(psutil.cpu_percent(interval=None))
        else:
            return _cpu_last
        _cpu_read_at = time.monotonic()
        return _cpu_last


def probe_local(
    spec: HostSpec, tokens: list[str] | None = None, processes: bool = True
) -> HostSample:
    """Sample this machine in-process with psutil and NVML, plus its attempt directories."""
    import psutil

    cpu = _local_cpu_percent()
    vm = psutil.virtual_memory()
    if spec.gpus_override is not None:
        gpus = [
            GpuSample.from_dict(g) for g in local_agent.fake_gpus(spec.name, spec.gpus_override)
        ]
        gpu_error = None
    else:
        gpus, gpu_error = nvml.sample_gpus(processes=processes)
    load1 = psutil.getloadavg()[0]
    return HostSample(
        host=spec.name,
        taken_at=time.time(),
        cpus=psutil.cpu_count() or 1,
        cpu_percent=cpu,
        load1=round(load1, 2),
        mem_total_mb=vm.total // (1 << 20),
        mem_used_mb=(vm.total - vm.available) // (1 << 20),
        disk_free_mb=local_agent.disk_free_mb(spec.root_dir),
        gpus=gpus,
        attempts={
            t: AttemptStatus.from_dict(s)
            for t, s in local_agent.statuses(spec.root_dir, tokens).items()
        },
        gpu_error=gpu_error,
        boot_id=local_agent.boot_id(),
    )


def probe_many(
    targets: Mapping[str, tuple[Transport, HostSpec, Sequence[str] | None]], timeout: float = 10
) -> dict[str, Ok[HostSample] | Failed]:
    """Probe many hosts in parallel, each bounded by `timeout`; one result per host."""
    calls = {
        host: (lambda t=t, s=s, k=k: probe(t, s, k, timeout=timeout))
        for host, (t, s, k) in targets.items()
    }
    return fan_out(calls, timeout=timeout + 1)
