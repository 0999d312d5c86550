"""The blocking half of the add-host modal: fetch the host key, trust it, run the preflight.

Runs in thread workers only. Nothing is written to the ledger here; the modal stores the host
through `Service.add_host` once the preflight passed. A key accepted for a host that then fails
its preflight is forgotten again, so a failed attempt leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lepton_tui.errors import LeptonError


@dataclass
class KeyCheck:
    """What the connection test found: the server's key and whether it is already trusted."""

    key_type: str
    fingerprint: str
    key: Any
    trusted: bool = False
    vouched: bool = False


@dataclass
class Preflight:
    """The lines shown to the user, whether the host is usable, and what it has."""

    ok: bool
    lines: list[str] = field(default_factory=list)
    capacity: dict[str, Any] = field(default_factory=dict)


def host_spec(values: dict[str, Any]):
    """An inventory HostSpec from checked host fields."""
    from inventory.hostspec import HostSpec

    return HostSpec(
        name=values["name"],
        address=values["address"],
        port=int(values["port"]),
        user=values["user"],
        key_path=values["key_path"],
        transport=values["transport"],
        root_dir=values["root_dir"],
        gpus_override=values["gpus_override"],
    )


def check_key(known_hosts, address: str, port: int, timeout: float = 10) -> KeyCheck:
    """Connect far enough to see the host key (no login); say if it is already trusted."""
    from inventory import hostkeys
    from inventory.errors import HostError

    try:
        key_type, fp, key = hostkeys.fetch_host_key(address, port, timeout=timeout)
    except HostError as exc:
        raise LeptonError(f"cannot reach {address}:{port}: {exc.reason}") from None
    held = hostkeys.known_key(known_hosts, address, port, key_type)
    if held is not None and held.asbytes() != key.asbytes():
        raise LeptonError(
            f"the host key of {address}:{port} CHANGED since it was accepted ({fp}); "
            "refusing (if the server was reinstalled, remove the host and add it again)"
        )
    return KeyCheck(
        key_type, fp, key, trusted=held is not None,
        vouched=hostkeys.user_known_hosts_vouches(address, port, key),
    )  # fmt: skip


def preflight(values: dict[str, Any], known_hosts, key: KeyCheck | None) -> Preflight:
    """Trust the key (if given), log in, probe once; forget the key again if anything fails."""
    from inventory import hostkeys
    from inventory.errors import HostError
    from inventory.probe import probe
    from inventory.transport import make_transport

    spec = host_spec(values)
    lines: list[str] = []
    accepted_now = False
    if key is not None and not key.trusted:
        hostkeys.accept_host_key(known_hosts, spec.address, spec.port, key.key)
        accepted_now = True
        lines.append(f"✓ host key {key.key_type} {key.fingerprint} accepted")
    transport = None
    try:
        transport = make_transport(spec, known_hosts)
        if spec.transport == "ssh":
            res = transport.run(["uname", "-sr"], timeout=15)
            if res.rc != 0:
                raise LeptonError(f"`uname` failed on the host: {res.stderr.strip()[:200]}")
            lines.append(f"✓ logged in as {spec.user or 'you'}: {res.stdout.strip()[:60]}")
            res = transport.run(["python3", "-c", "import sys; print(sys.version.split()[0])"])
            if res.rc != 0:
                raise LeptonError("python3 is missing on the host (lepton needs it to probe)")
            lines.append(f"✓ python3 {res.stdout.strip()}")
        sample = probe(transport, spec, tokens=[], timeout=30)
        lines.append(
            f"✓ {sample.cpus} CPUs, {sample.mem_total_mb / 1024:.1f} GiB memory, "
            f"{sample.disk_free_mb or 0:,} MiB free disk"
        )
        if sample.gpus:
            names = sorted({g.name for g in sample.gpus})
            lines.append(f"✓ {len(sample.gpus)} GPU(s): {', '.join(names)}")
        else:
            reason = f" ({sample.gpu_error})" if sample.gpu_error else ""
            lines.append(f"· no GPU{reason}: CPU jobs only")
        capacity = {
            "cpus": float(sample.cpus),
            "mem_mb": int(sample.mem_total_mb),
            "gpus": len(sample.gpus),
            "gpu_mem_mb": int(sum(g.mem_total_mb or 0 for g in sample.gpus)),
            "gpu_model": sample.gpus[0].name if sample.gpus else None,
        }
        return Preflight(True, lines, capacity)
    except (HostError, LeptonError, OSError) as exc:
        reason = exc.reason if isinstance(exc, HostError) else str(exc)
        lines.append(f"✗ {reason}")
        if accepted_now:
            hostkeys.forget_host_key(known_hosts, spec.address, spec.port)
            lines.append("· the host key was not kept")
        return Preflight(False, lines)
    finally:
        if transport is not None:
            transport.close()
