"""`hosts probe`: sample one host now, with the service's own keys and known hosts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lepton_tui.errors import LeptonError
from lepton_tui.ledger import Ledger


def probe_host(ledger: Ledger, known_hosts: Path, name: str, timeout: float) -> dict[str, Any]:
    """{"kind": "ssh", "sample": HostSample.to_dict()} or, for a Slurm partition,
    {"kind": "slurm", "sample": ..., "lines": its nodes as lines}."""
    from inventory.errors import HostError
    from inventory.probe import probe
    from inventory.transport import make_transport
    from lepton_tui.dispatch.hostpool import spec_from_row, ssh_options

    row = ledger.get_host(name)
    if row.get("slurm_json"):  # a Slurm partition: its nodes, from sinfo
        from lepton_tui.dispatch import slurm_admin as dispatch_slurm

        sample = dispatch_slurm.probe(row, known_hosts, timeout)
        return {"kind": "slurm", "sample": sample, "lines": dispatch_slurm.probe_lines(sample)}
    spec = spec_from_row(row)
    tokens = ledger.active_tokens(row["name"])
    options = (
        ssh_options(row, {"connect_timeout": min(timeout, 10.0)}) if spec.transport == "ssh" else {}
    )
    transport = make_transport(spec, known_hosts, **options)
    try:
        got = probe(transport, spec, tokens=tokens, timeout=timeout)
    except HostError as exc:
        raise LeptonError(f"cannot probe {row['name']}: {exc.reason}") from None
    finally:
        transport.close()
    return {"kind": "ssh", "sample": got.to_dict()}
