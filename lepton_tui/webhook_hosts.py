"""Where the lab service may POST a webhook: the admins' allow-list (no SSRF through lepton).

In lab mode the dispatcher sends webhooks from the service account on the login node, inside the
lab's network: a URL a user types must not make it reach the login node's own ports, a cloud
metadata address or an internal server. So a webhook URL is accepted only when an admin allowed
its host, when it is set (`Service.set_setting`, `Service.set_notify_prefs`: the decision is
theirs) and again when it is sent (the allow-list may have changed, and a name may resolve
elsewhere since):

- `notify_webhook_hosts`: the hosts (`hooks.slack.com`, `*.example.org` for any subdomain,
  `host:8443` for one port only) a webhook may go to. https only, unless the entry is written
  `http://host`. Each address the name resolves to must be a public one.
- `notify_webhook_internal_hosts`: hosts (exact names or addresses, no wildcards) the admin allows
  on loopback, private or link-local addresses, e.g. the lab's own Mattermost.

The send connects to the very address that was checked (no second lookup to rebind) and never
follows a redirect.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lepton_tui.errors import ValidationError

HOSTS_SETTING = "notify_webhook_hosts"
INTERNAL_SETTING = "notify_webhook_internal_hosts"
_NAME_RE = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_NONE_WORDS = frozenset({"", "none", "off", "-"})

Resolver = Callable[[str, int], Sequence[str]]


@dataclass(frozen=True)
class Rule:
    """One allow-list entry: a host (or `*.domain`), a port (None: any), plain http allowed."""

    host: str
    port: int | None
    http: bool
    internal: bool

    def __str__(self) -> str:
        text = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"http://{text}" if self.http else text

    def setting_name(self) -> str:
        return INTERNAL_SETTING if self.internal else HOSTS_SETTING

    def matches(self, host: str) -> bool:
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and host != self.host[2:]
        return host == self.host


@dataclass(frozen=True)
class Target:
    """A checked webhook URL: where to connect (the address that was checked) and what to ask."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    address: str


def _host_text(host: str) -> str:
    """A host as a Rule keeps it: lower case, no trailing dot, an IPv6 address without []."""
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def _parse_entry(entry: str, internal: bool) -> Rule:
    setting = INTERNAL_SETTING if internal else HOSTS_SETTING
    text = entry.strip().lower()
    http = text.startswith("http://")
    bare = text.removeprefix("http://").removeprefix("https://").rstrip("/")
    try:
        parts = urlsplit("//" + bare)
        host, port = _host_text(parts.hostname or ""), parts.port
        extra = parts.path or parts.query or parts.fragment or "@" in bare
    except ValueError:
        host, port, extra = "", None, True
    name_ok = bool(_NAME_RE.match(host)) or _is_address(host)
    if not host or not name_ok or extra:
        raise ValidationError(
            f"{setting}: {entry.strip()!r} is not a host",
            "write hosts like hooks.slack.com, *.example.org, chat.lab:8443 or http://chat.lab",
        )
    if internal and host.startswith("*."):
        raise ValidationError(
            f"{setting}: {entry.strip()!r} is a wildcard",
            "name each internal host exactly (it may reach the lab's own network)",
        )
    return Rule(host, port, http, internal)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_rules(value: Any, internal: bool = False) -> list[Rule]:
    """The entries of an allow-list setting (comma- or space-separated); ValidationError."""
    text = "" if value is None else str(value)
    if text.strip().lower() in _NONE_WORDS:
        return []
    return [_parse_entry(e, internal) for e in re.split(r"[,\s]+", text) if e.strip()]


def check_hosts(value: str) -> str:
    """`settings set notify_webhook_hosts`: the entries, normalized; "" (none) for no webhooks."""
    return ",".join(str(r) for r in parse_rules(value))


def check_internal_hosts(value: str) -> str:
    """`settings set notify_webhook_internal_hosts`: exact hosts only; "" (none)."""
    return ",".join(str(r) for r in parse_rules(value, internal=True))


def rules_of(settings: Mapping[str, Any]) -> list[Rule]:
    """The allow-list in force (internal entries first: they win for their host)."""
    return parse_rules(settings.get(INTERNAL_SETTING), True) + parse_rules(
        settings.get(HOSTS_SETTING)
    )


def is_public(address: str) -> bool:
    """Whether an address is a public (global) one: not loopback, private, link-local,
    shared, reserved, multicast or unspecified, also when written as IPv4-mapped IPv6."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the system resolver, as the send would use)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(url: str, settings: Mapping[str, Any], resolver: Resolver = resolve) -> Target:
    """The checked target of a webhook `url`, or ValidationError saying why the lab service
    may not POST there and what an admin types to allow it. `socket.gaierror` when the name
    does not resolve (the caller says so: refused when set, tried again when sent)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValidationError(f"webhook {url!r} has no valid host or port") from None
    scheme, host = parts.scheme.lower(), _host_text(parts.hostname or "")
    if scheme not in ("http", "https") or not host:
        raise ValidationError(f"webhook {url!r} is not an http(s) URL",
                              "give the incoming-webhook URL Slack or Mattermost shows")  # fmt: skip
    port = port or (443 if scheme == "https" else 80)
    rules = [r for r in rules_of(settings) if r.matches(host) and r.port in (None, port)]
    if not rules:
        now = str(settings.get(HOSTS_SETTING) or "")
        hosts = f"{now},{host}" if now else host
        hint = f'an admin allows it with `lepton-tui settings set {HOSTS_SETTING} "{hosts}"`'
        raise ValidationError(f"webhook host {host} is not on the lab's allow-list", hint)
    if scheme == "http" and not any(r.http for r in rules):
        raise ValidationError(
            f"webhook {host} uses plain http", f"use https, or an admin allows http with "
            f"`lepton-tui settings set {rules[0].setting_name()} http://{host}`",
        )  # fmt: skip
    addresses = list(resolver(host, port))
    if not addresses:
        raise socket.gaierror(f"{host} has no address")
    if not any(r.internal for r in rules):
        inside = [a for a in addresses if not is_public(a)]
        if inside:
            raise ValidationError(
                f"webhook host {host} resolves to {inside[0]}, an internal address",
                f"an admin who means it allows it with `lepton-tui settings set "
                f"{INTERNAL_SETTING} {'http://' if scheme == 'http' else ''}{host}`",
            )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url.strip(), scheme, host, port, path, addresses[0])


def allow(url: Any, settings: Mapping[str, Any], resolver: Resolver = resolve) -> None:
    """At the time a webhook is set: refuse (ValidationError) a URL the lab service may not POST
    to; None, "" and `none` (no webhook) are always fine."""
    text = "" if url is None else str(url).strip()
    if text.lower() in _NONE_WORDS:
        return
    try:
        check_url(text, settings, resolver)
    except (socket.gaierror, UnicodeError) as exc:
        host = urlsplit(text).hostname
        raise ValidationError(
            f"webhook host {host} does not resolve here ({exc})", "check the URL's host name"
        ) from None


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever the name resolves to now."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(_PinnedHTTP):
    """As `_PinnedHTTP`, then TLS with the certificate checked against the URL's host name."""

    def connect(self) -> None:
        super().connect()
        context = ssl.create_default_context()
        self.sock = context.wrap_socket(self.sock, server_hostname=self.host)


def post(target: Target, data: bytes, timeout: float) -> int:
    """POST JSON `data` to a checked target; the HTTP status (a redirect is not followed)."""
    cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    conn = cls(target, timeout)
    try:
        conn.request("POST", target.path, body=data,
                     headers={"Content-Type": "application/json", "User-Agent": "lepton-tui"})  # fmt: skip
        resp = conn.getresponse()
        resp.read(65536)
        return int(resp.status)
    finally:
        conn.close()
