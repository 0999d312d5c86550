"""The blocking half of the add-host modal, on top of `lepton_tui.onboarding` (thread workers only).

Step one shows the server's host key without trusting anything; step two runs the real
onboarding (`onboarding.onboard`) with the fingerprint the user accepted, so a key that changed
in between is refused, the preflight lines come back for the modal, and a failed attempt stores
nothing (onboarding forgets a key it accepted for a host that then fails).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lepton_tui.errors import LeptonError


@dataclass
class KeyCheck:
    """What the connection test found: the server's key and whether it is already trusted."""

    key_type: str
    fingerprint: str
    trusted: bool = False
    vouched: bool = False


@dataclass
class Outcome:
    """The lines to show, and the host's name when it was stored."""

    ok: bool
    lines: list[str] = field(default_factory=list)
    name: str | None = None


def check_key(known_hosts: Path, address: str, port: int, timeout: float = 10) -> KeyCheck:
    """Connect far enough to see the host key (no login, nothing trusted or stored)."""
    from inventory import hostkeys
    from inventory.errors import HostError

    try:
        key_type, fp, key = hostkeys.fetch_host_key(address, port, timeout)
    except HostError as exc:
        raise LeptonError(f"cannot reach {address}:{port}: {exc.reason}") from None
    held = hostkeys.known_key(known_hosts, address, port, key_type)
    if held is not None and held.asbytes() != key.asbytes():
        raise LeptonError(
            f"HOST KEY CHANGED for {address}:{port}: lepton trusts {hostkeys.fingerprint(held)}, "
            f"the host now shows {fp}; if it was reinstalled, check the new key on its console"
        )
    return KeyCheck(
        key_type, fp, trusted=held is not None,
        vouched=hostkeys.user_known_hosts_vouches(address, port, key),
    )  # fmt: skip


# Onboarding says why a key is trusted in the CLI's words (`accepted (--fingerprint)`); the form
# says what its user did instead.
KEY_WORDS = {
    "--fingerprint": "accepted in this form",
    "--accept-new-host-key": "accepted as new",
    "~/.ssh/known_hosts": "accepted: it matches your ~/.ssh/known_hosts",
}


def form_line(line: str) -> str:
    """One onboarding line as the form shows it (the CLI's option names replaced)."""
    match = re.fullmatch(r"(\s*)accepted \((.+)\)", line)
    if match and match.group(2) in KEY_WORDS:
        return match.group(1) + KEY_WORDS[match.group(2)]
    return line


def add_host(svc: Any, raw: dict[str, Any], fingerprint: str | None) -> Outcome:
    """Onboard the host (trust `fingerprint`, preflight, store); never raises."""
    from lepton_tui.onboarding import onboard

    lines: list[str] = []
    raw = dict(raw)
    name = raw.pop("name")
    try:
        done = onboard(
            svc, name, fingerprint=fingerprint, echo=lambda line: lines.append(form_line(line)),
            **raw,
        )  # fmt: skip
    except LeptonError as exc:
        return Outcome(False, [*lines, f"✗ {exc}"])
    except Exception as exc:  # noqa: BLE001 - shown in the modal, never a traceback
        return Outcome(False, [*lines, f"✗ {type(exc).__name__}: {exc}"])
    return Outcome(True, lines, done.host["name"])


def probe_now(svc: Any, host: dict[str, Any]) -> Outcome:
    """Run the preflight against a stored host now (its lines; nothing is written)."""
    from inventory.errors import HostError
    from inventory.preflight import preflight
    from inventory.transport import make_transport
    from lepton_tui.dispatch.hostpool import spec_from_row

    try:
        spec = spec_from_row(host)
        transport = make_transport(spec, svc.known_hosts)
        try:
            pf = preflight(transport, spec)
        finally:
            transport.close()
    except HostError as exc:
        return Outcome(False, [f"✗ {exc.reason}"])
    except LeptonError as exc:
        return Outcome(False, [f"✗ {exc}"])
    return Outcome(pf.ok, pf.lines(), host["name"])
