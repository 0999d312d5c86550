"""Adding and probing a Slurm host: `onboard_slurm` (`hosts add NAME --slurm`, its preflight
one line per check) and `probe` (`hosts probe`: the partition's nodes, in one round trip)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from inventory.slurm import SlurmTarget
from inventory.slurm_host import SlurmHost
from lepton_tui.dispatch.slurm import target_of
from lepton_tui.errors import LeptonError, ValidationError


def probe(host: Mapping[str, Any], known_hosts: Any, timeout: float = 30) -> dict[str, Any]:
    """`hosts probe` of a Slurm host: the partition's nodes now (one round trip)."""
    from inventory.errors import HostError
    from inventory.transport import make_transport
    from lepton_tui.dispatch.hostpool import spec_from_row

    spec = spec_from_row(host)
    options = {"connect_timeout": min(timeout, 10.0)} if spec.transport == "ssh" else {}
    transport = make_transport(spec, known_hosts, **options)
    try:
        view = SlurmHost(host["name"], transport, target_of(host), spec.root_dir).inventory()
    except (HostError, ValueError) as exc:
        raise LeptonError(f"cannot probe {host['name']}: {exc}") from None
    finally:
        transport.close()
    return {
        "host": host["name"], "partition": view.name, "cpus": view.cpus,
        "cpus_alloc": view.cpus_alloc, "mem_mb": view.mem_mb, "mem_alloc_mb": view.mem_alloc_mb,
        "gpus": view.gpus, "gpus_alloc": view.gpus_alloc,
        "nodes": [
            {"name": n.name, "state": n.state, "cpus": n.cpus, "cpus_alloc": n.cpus_alloc,
             "mem_mb": n.mem_mb, "mem_alloc_mb": n.mem_alloc_mb, "gpus": n.gpus,
             "gpus_alloc": n.gpus_alloc, "reason": n.reason}
            for n in view.nodes
        ],
    }  # fmt: skip


def probe_lines(sample: Mapping[str, Any]) -> list[str]:
    """A Slurm probe as short human lines: the pool, then one line per node."""
    lines = [
        f"{'host':<9} {sample['host']} (Slurm partition {sample['partition']})",
        f"{'cpu':<9} {sample['cpus_alloc']} of {sample['cpus']} CPUs allocated",
        f"{'memory':<9} {sample['mem_alloc_mb']} of {sample['mem_mb']} MiB allocated",
        f"{'gpus':<9} {sample['gpus_alloc']} of {sample['gpus']} allocated",
    ]
    for n in sample["nodes"]:
        why = f" ({n['reason']})" if n["reason"] and n["reason"] != "none" else ""
        lines.append(
            f"{'node':<9} {n['name']} {n['state']}{why}: {n['cpus_alloc']}/{n['cpus']} CPUs, "
            f"{n['mem_alloc_mb']}/{n['mem_mb']} MiB, {n['gpus_alloc']}/{n['gpus']} GPUs"
        )
    return lines


# -- adding a Slurm host ---------------------------------------------------------------------------


@dataclass
class SlurmOnboarded:
    """A stored Slurm host and its preflight lines."""

    host: dict[str, Any]
    lines: list[tuple[bool, str]]

    @property
    def ok(self) -> bool:
        """True when every preflight check passed."""
        return all(ok for ok, _ in self.lines)


def onboard_slurm(
    svc: Any,
    name: str,
    *,
    partition: str | None,
    account: str | None = None,
    qos: str | None = None,
    slurm_conf: str | None = None,
    address: str | None = None,
    port: Any = 22,
    user: str | None = None,
    key_path: str | None = None,
    root_dir: str | None = None,
    price_per_hour: Any = None,
    accept_new_host_key: bool = False,
    fingerprint: str | None = None,
    echo: Callable[[str], None] = lambda line: None,
    timeout: float = 15.0,
) -> SlurmOnboarded:
    """Check a Slurm partition (on this node, or on a submit node over SSH) and store it as a
    host. Raises ValidationError for bad settings, LeptonError when a check fails."""
    from inventory.transport import default_ssh_config, make_transport, resolve
    from lepton_tui.dispatch.hostpool import spec_from_row
    from lepton_tui.onboarding import decide_host_key

    local = address is None
    values = svc.check_new_host(
        name, address=address, port=port, user=user, key_path=key_path, local=local,
        price_per_hour=price_per_hour, root_dir=root_dir, same_machine_ok=True,
    )  # fmt: skip
    try:  # the settings are checked before anything connects ("_" stands for the default)
        target = SlurmTarget(partition or "_", account, qos, slurm_conf)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    spec = spec_from_row(values)
    decision = None
    if spec.transport == "ssh":
        resolved = resolve(spec, default_ssh_config())
        decision = decide_host_key(
            svc.known_hosts, resolved.hostname, resolved.port,
            proxy_command=resolved.proxy_command, accept_new=accept_new_host_key,
            fingerprint=fingerprint, echo=echo, timeout=timeout,
        )  # fmt: skip
    options = {"connect_timeout": timeout} if spec.transport == "ssh" else {}
    transport = make_transport(spec, svc.known_hosts, **options)
    try:
        sh = SlurmHost(name, transport, target, spec.root_dir)
        if partition is None:  # the cluster's default partition (sinfo marks it with "*")
            target = SlurmTarget(_default_partition(sh), account, qos, slurm_conf)
            sh = SlurmHost(name, transport, target, spec.root_dir)
            echo(f"ok   partition: {target.partition} (the cluster's default)")
        lines = sh.preflight()
        view = sh.last_partition
        # kept, so a dispatcher (or `serve --once`) need not ask which status command to use
        target = dataclasses.replace(target, accounting=sh.use_sacct)
    finally:
        transport.close()
    for ok, line in lines:
        echo(("ok   " if ok else "FAIL ") + line)
    if not all(ok for ok, _ in lines):
        failed = "; ".join(line for ok, line in lines if not ok)
        raise LeptonError(f"host {name} not added: {failed}", "fix it and add the host again")
    with svc.ledger.tx():
        row = svc.add_host(
            name, address=address, port=values["port"], user=user, key_path=key_path,
            local=local, price_per_hour=price_per_hour, root_dir=root_dir,
            same_machine_ok=True,
            host_key=(decision.key_type, decision.fingerprint) if decision else None,
        )  # fmt: skip
        capacity = {
            "cpus": float(view.cpus) if view else 0.0,
            "mem_mb": int(view.mem_mb) if view else 0,
            "gpus": int(view.gpus) if view else 0,
        }
        svc.ledger.set_slurm_target(row["id"], capacity, target.to_json())
        svc.ledger.event(
            "host.slurm",
            f"host {name} is Slurm partition {target.partition}"
            + (f" (account {target.account})" if target.account else "")
            + (f": {view.summary}" if view else ""),
            host=name, actor=svc.user, data=json.loads(target.to_json()),
        )  # fmt: skip
    return SlurmOnboarded(svc.get_host(name), lines)


def _default_partition(sh: SlurmHost) -> str:
    from inventory.errors import HostError

    try:
        r = sh.run(["sinfo", "--noheader", "--format=%P"])[0]
    except HostError as exc:
        raise LeptonError(f"host {sh.name} not added: {exc.reason}") from None
    for word in r["out"].split():
        if word.endswith("*"):
            return word.rstrip("*")
    raise ValidationError(
        "this cluster has no default partition", "name one with --partition (`sinfo -s`)"
    )
