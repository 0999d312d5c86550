"""HostSpec: how to reach one host, with every field checked against a whitelist."""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
# Hostnames, IPv4 and bare IPv6 literals; never a leading dash (it would read as an ssh option).
ADDRESS_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._:%-]{0,252}")
USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
# "~", "~/a/b" or an absolute path of plain characters; ".." components are refused separately.
ROOT_DIR_RE = re.compile(r"(~|~/[A-Za-z0-9._+/-]*|/[A-Za-z0-9._+/-]*)")
LOCAL_PATH_RE = re.compile(r"[^\x00-\x1f\x7f]{1,4096}")
TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
TRANSPORTS = ("ssh", "local")


class InvalidSpec(ValueError):
    """A host field failed validation; the message names the field."""


def check_name(name: str) -> str:
    """Return `name` if it is a valid host name, else raise InvalidSpec."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidSpec(
            f"invalid host name {name!r}: use letters, digits, '.', '_' and '-' (at most 63), "
            "starting with a letter or digit"
        )
    return name


def check_token(token: str) -> str:
    """Return `token` if it is a valid attempt token, else raise InvalidSpec."""
    if not isinstance(token, str) or not TOKEN_RE.fullmatch(token):
        raise InvalidSpec(f"invalid attempt token {token!r}: use [A-Za-z0-9_-], at most 64")
    return token


@dataclass(frozen=True)
class HostSpec:
    """One host: where it is, who to log in as, where its attempt directories live.

    `transport` is "ssh" or "local" (the login node itself, no SSH). `root_dir` holds
    `jobs/<job>-<token>/`; "~" is expanded on the host. `gpus_override` makes the probe report
    that many synthetic GPUs (flagged `fake`) so placement can be tested without a GPU.
    """

    name: str
    address: str | None
    port: int = 22
    user: str | None = None
    key_path: str | None = None
    transport: str = "ssh"
    root_dir: str = "~/.lepton"
    gpus_override: int | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.transport not in TRANSPORTS:
            raise InvalidSpec(f"invalid transport {self.transport!r}: use 'ssh' or 'local'")
        if self.transport == "ssh" and not self.address:
            raise InvalidSpec(f"host {self.name}: an ssh host needs an address")
        if self.address is not None and not ADDRESS_RE.fullmatch(self.address):
            raise InvalidSpec(f"invalid address {self.address!r}: a hostname or IP address")
        if (
            not isinstance(self.port, int)
            or isinstance(self.port, bool)
            or not 1 <= self.port <= 65535
        ):
            raise InvalidSpec(f"invalid port {self.port!r}: 1 to 65535")
        if self.user is not None and not USER_RE.fullmatch(self.user):
            raise InvalidSpec(f"invalid user {self.user!r}")
        if self.key_path is not None and not LOCAL_PATH_RE.fullmatch(self.key_path):
            raise InvalidSpec(f"invalid key path {self.key_path!r}")
        if not ROOT_DIR_RE.fullmatch(self.root_dir) or ".." in self.root_dir.split("/"):
            raise InvalidSpec(
                f"invalid root dir {self.root_dir!r}: '~', '~/path' or an absolute path of "
                "plain characters, without '..'"
            )
        if self.gpus_override is not None and not (0 <= self.gpus_override <= 64):
            raise InvalidSpec(f"invalid gpus_override {self.gpus_override!r}: 0 to 64")

    @property
    def target(self) -> str:
        """`user@address:port` for messages."""
        who = f"{self.user}@" if self.user else ""
        return f"{who}{self.address or 'localhost'}:{self.port}"
