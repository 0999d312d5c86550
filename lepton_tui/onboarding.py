"""Onboarding a host: trust its key explicitly, run the preflight, store it with its capacity.

Used by `lepton-tui hosts add`. Every step reports one line through `echo`, so a form can show
the same lines. A key accepted during an attempt that then fails is forgotten again, and nothing
is written to the ledger unless every required check passed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_tui.errors import LeptonError, ValidationError

CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class KeyDecision:
    """The host key the server showed and why lepton trusts it (or `None` for a local host)."""

    key_type: str
    fingerprint: str
    how: str  # "already trusted", "--fingerprint", "--accept-new-host-key", "~/.ssh/known_hosts"
    accepted_now: bool


@dataclass(frozen=True)
class Onboarded:
    """What `onboard` stored: the ledger row, the preflight, and the key decision."""

    host: dict[str, Any]
    preflight: Any  # inventory.preflight.Preflight
    key: KeyDecision | None


def normalize_fingerprint(text: str) -> str:
    """`SHA256:abc` from `SHA256:abc`, `sha256:abc=` or `abc`."""
    text = text.strip()
    if text.lower().startswith("sha256:"):
        text = text[7:]
    text = text.rstrip("=")
    if not re.fullmatch(r"[A-Za-z0-9+/]{43}", text):
        raise ValidationError(
            f"fingerprint {text!r} is not a SHA256 fingerprint",
            "copy it as `ssh-keygen -lf` prints it: SHA256: and 43 characters",
            field="fingerprint",
        )
    return "SHA256:" + text


def decide_host_key(
    known_hosts: Path,
    address: str,
    port: int,
    *,
    proxy_command: str | None = None,
    accept_new: bool = False,
    fingerprint: str | None = None,
    user_known_hosts: Path | None = None,
    echo: Callable[[str], None] = lambda line: None,
    timeout: float = CONNECT_TIMEOUT_S,
) -> KeyDecision:
    """Fetch the host key, show it, and trust it only on an explicit reason; raise otherwise.

    A key differing from the one lepton already trusts is replaced only with a matching
    `--fingerprint`; `--accept-new-host-key` accepts unknown keys, never changed ones.
    """
    from inventory import hostkeys
    from inventory.errors import HostError

    wanted = (
        normalize_fingerprint(fingerprint) if fingerprint else None
    )  # bad input: before connecting
    try:
        key_type, fp, key = hostkeys.fetch_host_key(address, port, timeout, proxy_command)
    except HostError as exc:
        raise LeptonError(f"cannot reach {address}:{port}: {exc.reason}") from None
    echo(f"{'host key':<11} {key_type} {fp}")
    if wanted is not None and wanted != fp:
        raise LeptonError(
            f"host key mismatch: you expected {wanted}, {address}:{port} shows {fp}",
            "do not add this host until you know why (wrong address? a machine in the middle?)",
        )
    held = hostkeys.known_key(known_hosts, address, port, key_type)
    if held is not None and held.asbytes() == key.asbytes():
        echo(f"{'':<11} already trusted by lepton")
        return KeyDecision(key_type, fp, "already trusted", False)
    if held is not None:
        if wanted is None:
            raise LeptonError(
                f"HOST KEY CHANGED for {address}:{port}: lepton trusts "
                f"{hostkeys.fingerprint(held)}, the host now shows {fp}",
                "if the host was reinstalled, check the new key on its console (ssh-keygen -lf "
                "/etc/ssh/ssh_host_*_key.pub) and pass --fingerprint with it; otherwise stop here",
            )
        how = "--fingerprint"
    elif wanted is not None:
        how = "--fingerprint"
    elif accept_new:
        how = "--accept-new-host-key"
    elif hostkeys.user_known_hosts_vouches(address, port, key, user_known_hosts):
        how = "~/.ssh/known_hosts"
    else:
        raise LeptonError(
            f"the host key of {address}:{port} ({key_type} {fp}) is not trusted yet",
            "compare it with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the host, then pass "
            f"--fingerprint {fp} (or --accept-new-host-key)",
        )
    hostkeys.accept_host_key(known_hosts, address, port, key)
    echo(f"{'':<11} accepted ({how})")
    return KeyDecision(key_type, fp, how, True)


def onboard(
    svc: Any,
    name: str,
    *,
    address: str | None = None,
    port: Any = 22,
    user: str | None = None,
    key_path: str | None = None,
    local: bool = False,
    price_per_hour: Any = None,
    root_dir: str | None = None,
    gpus_override: Any = None,
    accept_new_host_key: bool = False,
    fingerprint: str | None = None,
    user_known_hosts: Path | None = None,
    echo: Callable[[str], None] = lambda line: None,
    timeout: float = CONNECT_TIMEOUT_S,
) -> Onboarded:
    """Connect to a new host, check it, and store it with its discovered capacity.

    Raises ValidationError (bad fields, name taken) before connecting, LeptonError for an
    untrusted or changed key, an unreachable host, refused login or a failed required check.
    """
    from inventory.errors import HostError
    from inventory.preflight import preflight
    from inventory.transport import default_ssh_config, make_transport, resolve
    from lepton_tui.dispatch.hostpool import spec_from_row

    values = svc.check_new_host(
        name, address=address, port=port, user=user, key_path=key_path, local=local,
        price_per_hour=price_per_hour, root_dir=root_dir, gpus_override=gpus_override,
    )  # fmt: skip
    spec = spec_from_row(values)
    known_hosts = svc.known_hosts
    decision: KeyDecision | None = None
    resolved = None
    if spec.transport == "ssh":
        resolved = resolve(spec, default_ssh_config())
        decision = decide_host_key(
            known_hosts, resolved.hostname, resolved.port, proxy_command=resolved.proxy_command,
            accept_new=accept_new_host_key, fingerprint=fingerprint,
            user_known_hosts=user_known_hosts, echo=echo, timeout=timeout,
        )  # fmt: skip

    def forget_key() -> None:
        if decision is not None and decision.accepted_now and resolved is not None:
            from inventory import hostkeys

            hostkeys.forget_host_key(known_hosts, resolved.hostname, resolved.port)

    options = {"connect_timeout": timeout} if spec.transport == "ssh" else {}
    transport = make_transport(spec, known_hosts, **options)
    try:
        pf = preflight(transport, spec, timeout=max(timeout, 30))
    except HostError as exc:
        forget_key()
        raise LeptonError(f"host {name} not added: {exc.reason}") from None
    except BaseException:
        forget_key()
        raise
    finally:
        transport.close()
    for line in pf.lines():
        echo(line)
    if not pf.ok:
        forget_key()
        failed = "; ".join(c.name for c in pf.checks if c.required and not c.ok)
        raise LeptonError(
            f"host {name} not added: failed {failed}", "fix the host and add it again"
        )
    capacity = pf.capacity()
    try:
        with svc.ledger.tx():
            row = svc.add_host(
                name, address=address, port=values["port"], user=user, key_path=key_path,
                local=local, price_per_hour=price_per_hour, root_dir=root_dir,
                gpus_override=gpus_override, same_machine_ok=False,
                host_key=(decision.key_type, decision.fingerprint) if decision else None,
            )  # fmt: skip
            store_capacity(svc, row, capacity)
    except BaseException:
        forget_key()
        raise
    return Onboarded(svc.get_host(name), pf, decision)


def store_capacity(svc: Any, host: dict[str, Any], capacity: dict[str, Any]) -> None:
    """Record discovered capacity in the host's columns, with an event.

    Not through `add_host(capacity=...)`: that also writes `capacity_json`, which the dispatcher
    reads as capacity an admin fixed by hand and would then never update from probes.
    """
    values = {k: capacity[k] for k in ("cpus", "mem_mb", "gpus", "gpu_mem_mb", "gpu_model")}
    values["last_seen"] = svc.ledger.clock()
    with svc.ledger.tx():
        svc.ledger.update("hosts", host["id"], values)
        gpus = f", {values['gpus']} x {values['gpu_model']}" if values["gpus"] else ", no GPU"
        svc.ledger.event(
            "host.capacity",
            f"host {host['name']}: {values['cpus']:g} CPUs, {values['mem_mb']} MiB{gpus}",
            host=host["name"],
            actor=svc.user,
            data=capacity,
        )
