"""The work of listing, adding, removing and labelling hosts, once `service.py` has said the
caller may.

Nothing here decides who may do what: each `Service` method checks the caller first
(`require_admin`) and then calls these. Host fields are validated here for the CLI, the
console's add-host form and lab mode alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lepton_tui.errors import LeptonError, ValidationError
from lepton_tui.ledger import Ledger
from lepton_tui.validate import check_name, parse_number

_ADDRESS_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.\-:]{0,251}[A-Za-z0-9])?$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$", re.IGNORECASE)
_LABEL_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def check_host_fields(
    name: str,
    *,
    address: str | None,
    port: Any = 22,
    user: str | None = None,
    key_path: str | None = None,
    local: bool = False,
    price_per_hour: Any = None,
    root_dir: str | None = None,
    gpus_override: Any = None,
) -> dict[str, Any]:
    """Validate a host's fields (shared by the CLI and the add-host form): its row's values."""
    check_name(name, "host name")
    if local:
        if address:
            raise ValidationError("a --local host takes no --address", field="address")
    else:
        if not address:
            raise ValidationError(
                "an SSH host needs --address",
                "or use --local for this machine",
                field="address",
            )
        if not _ADDRESS_RE.match(address):
            raise ValidationError(
                f"address {address!r} is not a host name or IP address", field="address"
            )
    port_n = int(parse_number(port, "port", minimum=1, maximum=65535, integer=True))
    if user is not None and user != "" and not _USER_RE.match(user):
        raise ValidationError(f"user {user!r} is not a valid login name", field="user")
    if key_path:
        if "\x00" in key_path or "\n" in key_path:
            raise ValidationError("key path contains a control character", field="key")
        key_file = Path(key_path).expanduser()
        if not key_file.is_file():
            raise ValidationError(
                f"key file {key_path} does not exist",
                "give the path of a private key",
                field="key",
            )
        key_path = str(key_file.resolve())
    price = None
    if price_per_hour not in (None, ""):
        price = float(parse_number(price_per_hour, "price per hour", minimum=0, maximum=1e6))
    gpus = None
    if gpus_override not in (None, ""):
        gpus = int(parse_number(gpus_override, "gpus", minimum=0, maximum=64, integer=True))
    if root_dir and (not re.fullmatch(r"[~/][A-Za-z0-9._/~-]*", root_dir) or ".." in root_dir):
        raise ValidationError(
            f"root dir {root_dir!r} must be a plain absolute or ~ path", field="root_dir"
        )
    return {
        "name": name,
        "address": None if local else address,
        "port": port_n,
        "user": user or None,
        "key_path": key_path or None,
        "transport": "local" if local else "ssh",
        "root_dir": root_dir or "~/.lepton",
        "gpus_override": gpus,
        "price_per_hour": price,
    }


def hosts_with_outside_gpus(ledger: Ledger) -> list[dict[str, Any]]:
    """Every host; `outside_gpus` lists its GPUs used by processes lepton did not start."""
    from lepton_tui.constraints import outside_gpus

    rows = ledger.hosts()
    outside = outside_gpus(ledger, rows, ledger.clock()) if rows else {}
    for h in rows:
        h["outside_gpus"] = outside.get(h["name"], [])
    return rows


def check_host_free(ledger: Ledger, values: dict[str, Any], same_machine_ok: bool) -> None:
    """Refuse a host whose name is taken or (unless `same_machine_ok`) whose machine another
    host already reaches."""
    name = values["name"]
    if ledger.host_exists(name):
        raise ValidationError(
            f"host {name!r} already exists",
            "pick another name or `hosts rm` it first",
            field="name",
        )
    if same_machine_ok:
        return
    twin = ledger.host_reaching(values["transport"], values["address"], values["port"])
    if twin:
        where = (
            "this machine"
            if values["transport"] == "local"
            else f"{values['address']}:{values['port']}"
        )
        raise ValidationError(
            f"host {twin!r} already reaches {where}; adding it again would count "
            "its CPUs, memory and GPUs twice",
            f"use {twin!r}, or `hosts rm {twin}` first",
            field="address",
        )


def record_host(
    ledger: Ledger,
    actor: str,
    values: dict[str, Any],
    *,
    capacity: dict[str, Any] | None = None,
    host_key: tuple[str | None, str] | None = None,
    labels: Sequence[str] = (),
) -> dict[str, Any]:
    """Store a checked host (`check_host_fields` values), its price and the event: the host."""
    name = values["name"]
    row: dict[str, Any] = {
        **values,
        "labels": json.dumps(list(labels)),
        "state": "unknown",
        "admin_state": "active",
        "added_at": ledger.clock(),
        "added_by": actor,
    }
    if capacity:
        row.update(
            {
                k: capacity[k]
                for k in ("cpus", "mem_mb", "gpus", "gpu_mem_mb", "gpu_model")
                if k in capacity
            }
        )
        row["capacity_json"] = json.dumps(capacity, sort_keys=True)
    if host_key:
        row["host_key_type"], row["host_key_fingerprint"] = host_key
    with ledger.tx():
        ledger.insert("hosts", row)
        from lepton_tui.economics.prices import forget_node_hour, set_prices

        forget_node_hour(ledger, name, actor)  # a removed Slurm host's, kept by its name
        if values["price_per_hour"] is not None:  # as `price set --host` records it
            set_prices(ledger, name, per_hour=values["price_per_hour"], actor=actor)
        where = (
            "this machine (local)"
            if values["transport"] == "local"
            else f"{values['user'] or ''}@{values['address']}:{values['port']}".lstrip("@")
        )
        ledger.event("host.added", f"host {name} added: {where}", host=name, actor=actor)
    return ledger.get_host(name)


def remove_host(ledger: Ledger, actor: str, name: str, force: bool) -> None:
    """Remove a host; refused while jobs run there unless `force` (they are then lost)."""
    host = ledger.get_host(name)
    with ledger.tx():
        busy = ledger.host_busy(name)
        if busy and not force:
            raise LeptonError(
                f"host {name} still runs {busy} job(s)",
                "drain it and wait, or pass --force to remove it anyway",
            )
        ledger.delete_host(name)
        # the capacity stays on record: attempts still to be settled there are priced by it
        capacity: dict[str, Any] = {
            k: host.get(k) for k in ("cpus", "mem_mb", "gpus", "gpu_mem_mb")
        }
        # and how to reach it: the dispatcher stops what a forced removal left running there
        from lepton_tui.dispatch.hostpool import SPEC_FIELDS

        capacity["connection"] = {k: host.get(k) for k in SPEC_FIELDS}
        ledger.event("host.removed", f"host {name} removed", host=name, actor=actor, data=capacity)


def set_draining(ledger: Ledger, actor: str, name: str, draining: bool) -> dict[str, Any]:
    """Drain (finish running jobs, place nothing new) or resume a host: the host."""
    host = ledger.get_host(name)
    target = "draining" if draining else "active"
    if host["admin_state"] == target:
        return host
    with ledger.tx():
        ledger.update("hosts", host["id"], {"admin_state": target})
        verb = "draining" if draining else "resumed"
        ledger.event(
            f"host.{'drain' if draining else 'resume'}",
            f"host {name} {verb}",
            host=name,
            actor=actor,
        )
    return ledger.get_host(name)


def relabel_host(
    ledger: Ledger, actor: str, name: str, add: Sequence[str], remove: Sequence[str]
) -> dict[str, Any]:
    """Add `key=value` labels (a new value replaces the key's old one) and remove labels by
    `key` or `key=value`: the host."""
    from lepton_tui.validate import parse_label

    adds = [parse_label(x, "label") for x in add]
    drops = [str(x).strip() for x in remove]
    for d in drops:
        if not d or "=" not in d and not _LABEL_KEY_RE.fullmatch(d):
            raise ValidationError(f"label {d!r} is not a key or key=value", field="label")
    with ledger.tx():
        host = ledger.get_host(name)
        labels = [x for x in host["labels"] if isinstance(x, str)]
        keep_other = [x for x in host["labels"] if not isinstance(x, str)]
        for d in drops:
            labels = [x for x in labels if x != d and x.split("=", 1)[0] != d]
        for a in adds:
            key = a.split("=", 1)[0]
            labels = [x for x in labels if x.split("=", 1)[0] != key] + [a]
        ledger.set_host_labels(name, keep_other + labels)
        ledger.event("host.labels", f"host {name} labels: {', '.join(labels) or '-'}",
                     host=name, actor=actor, data={"labels": labels})  # fmt: skip
    return ledger.get_host(name)
