"""Preflight: what onboarding checks on a new host, one line each, in one round trip."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from inventory.errors import RemoteError
from inventory.hostspec import HostSpec
from inventory.remote import agent as local_agent
from inventory.remote_call import agent_call
from inventory.samples import GpuSample
from inventory.transport import SSHTransport, Transport

MIN_PYTHON = (3, 8)


@dataclass(frozen=True)
class Check:
    """One preflight line: `ok` False on a required check means the host cannot take jobs."""

    name: str
    ok: bool
    detail: str
    required: bool = True

    def line(self) -> str:
        """`name  ok|FAIL|warn  detail`."""
        mark = "ok" if self.ok else ("FAIL" if self.required else "warn")
        return f"{self.name:<11} {mark:<4}  {self.detail}"


@dataclass(frozen=True)
class Preflight:
    """The checks and the capacity discovered on one host."""

    host: str
    checks: list[Check]
    cpus: int | None = None
    mem_total_mb: int | None = None
    disk_free_mb: int | None = None
    gpus: list[GpuSample] = field(default_factory=list)
    python: str | None = None
    kill_user_processes: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every required check passed."""
        return all(c.ok for c in self.checks if c.required)

    def lines(self) -> list[str]:
        """One line per check, for the CLI and the add-host modal."""
        return [c.line() for c in self.checks]

    def capacity(self) -> dict[str, Any]:
        """Discovered capacity as the ledger stores it: cpus, mem_mb, gpus, gpu_mem_mb (all GPUs
        together, as `scheduler.model.Resources` counts it), gpu_model, disk_free_mb."""
        return {
            "cpus": self.cpus,
            "mem_mb": self.mem_total_mb,
            "gpus": len(self.gpus),
            "gpu_mem_mb": int(sum(g.mem_total_mb or 0 for g in self.gpus)),
            "gpu_model": self.gpus[0].name if self.gpus else None,
            "disk_free_mb": self.disk_free_mb,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "host": self.host,
            "ok": self.ok,
            "checks": [asdict(c) for c in self.checks],
            "capacity": self.capacity(),
            "python": self.python,
            "kill_user_processes": self.kill_user_processes,
        }


def _gpu_line(gpus: list[GpuSample]) -> str:
    if not gpus:
        return "none"
    names: dict[str, int] = {}
    for g in gpus:
        names[g.name] = names.get(g.name, 0) + 1
    return ", ".join(f"{n} x {name}" for name, n in names.items())


def preflight(transport: Transport, spec: HostSpec, timeout: float = 30) -> Preflight:
    """Connect and check the host; a connection failure raises HostError (nothing to report)."""
    if isinstance(transport, SSHTransport):
        transport.connect()
        where = f"{transport.destination} ({transport.server_version or 'ssh'})"
    else:
        where = "this machine (local)"
    checks = [Check("connected", True, where)]
    try:
        raw = agent_call(transport, spec, "preflight", timeout=timeout)
    except RemoteError as exc:
        checks.append(Check("python3", False, exc.reason))
        return Preflight(spec.name, checks)
    version = tuple(raw["python"])
    vtext = ".".join(str(v) for v in version)
    ok_py = version >= MIN_PYTHON
    checks.append(
        Check(
            "python3",
            ok_py,
            f"{vtext} at {raw['python_path']}" + ("" if ok_py else " (need >= 3.8)"),
        )
    )
    if spec.gpus_override is not None:
        gpus = [
            GpuSample.from_dict(g) for g in local_agent.fake_gpus(spec.name, spec.gpus_override)
        ]
        checks.append(
            Check("nvidia-smi", True, f"skipped: {spec.gpus_override} fake GPUs (test host)", False)
        )
    else:
        gpus = [GpuSample.from_dict(g) for g in raw["gpus"]]
        if raw["nvidia_smi"] is None:
            checks.append(
                Check("nvidia-smi", False, "not found: CPU jobs only on this host", False)
            )
        elif raw["gpu_error"]:
            checks.append(
                Check("nvidia-smi", False, f"{raw['nvidia_smi']}: {raw['gpu_error']}", False)
            )
        else:
            checks.append(Check("nvidia-smi", True, raw["nvidia_smi"], False))
    checks.append(Check("gpus", True, _gpu_line(gpus), False))
    checks.append(Check("cpus", True, str(raw["cpus"])))
    checks.append(
        Check("memory", True, f"{raw['mem_total_mb']} MiB ({raw['mem_used_mb']} MiB in use)")
    )
    if raw["jobs_dir_writable"]:
        checks.append(Check("disk", True, f"{raw['disk_free_mb']} MiB free in {raw['jobs_dir']}"))
    else:
        checks.append(
            Check("disk", False, f"cannot write {raw['jobs_dir']}: {raw['jobs_dir_error']}")
        )
    kup, linger, src = raw["kill_user_processes"], raw["linger"], raw["kill_user_processes_source"]
    if kup and not linger:
        checks.append(
            Check(
                "logout",
                False,
                f"KillUserProcesses=yes ({src}): jobs die when {raw['user']}'s last session ends; "
                f"run `loginctl enable-linger {raw['user']}` on the host",
            )
        )
    elif kup:
        checks.append(
            Check("logout", True, f"KillUserProcesses=yes but linger is on for {raw['user']}")
        )
    else:
        if kup is None and src == "logind not running":
            detail = "no systemd-logind: jobs survive logout"
        elif kup is None:
            detail = "KillUserProcesses not set (Debian/Ubuntu default no): jobs survive logout"
        else:
            detail = f"KillUserProcesses=no ({src}): jobs survive logout"
        checks.append(Check("logout", True, detail))
    return Preflight(
        spec.name,
        checks,
        cpus=raw["cpus"],
        mem_total_mb=raw["mem_total_mb"],
        disk_free_mb=raw["disk_free_mb"],
        gpus=gpus,
        python=vtext,
        kill_user_processes=kup,
        raw=raw,
    )
