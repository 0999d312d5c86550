"""Host keys: fetch a server's key, show its SHA256 fingerprint, and trust it explicitly."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from pathlib import Path

import paramiko

from inventory.errors import HostUnreachable


def fingerprint(key: paramiko.PKey) -> str:
    """The OpenSSH-style `SHA256:...` fingerprint of a public key (as `ssh-keygen -l` prints)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(address: str, port: int) -> str:
    """The name a known_hosts file uses: `addr` on port 22, `[addr]:port` otherwise."""
    return address if port == 22 else f"[{address}]:{port}"


def fetch_host_key(
    address: str, port: int = 22, timeout: float = 10, proxy_command: str | None = None
) -> tuple[str, str, paramiko.PKey]:
    """Connect far enough to see the server's host key; return (key type, fingerprint, key).

    No authentication is attempted and nothing is trusted or stored. `proxy_command` (from
    ~/.ssh/config) is used instead of a direct TCP connection when given.
    """
    sock: socket.socket | paramiko.ProxyCommand
    try:
        if proxy_command:
            sock = paramiko.ProxyCommand(proxy_command)
        else:
            sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        raise HostUnreachable(
            f"{address}:{port}", f"cannot connect: {exc.strerror or exc}; is sshd running there?"
        ) from exc
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise HostUnreachable(
            f"{address}:{port}",
            f"no SSH handshake: {exc or type(exc).__name__}; is it an SSH server?",
        ) from exc
    finally:
        transport.close()
        sock.close()
    return key.get_name(), fingerprint(key), key


def _load(path: Path) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    if path.exists():
        keys.load(str(path))
    return keys


def known_key(
    known_hosts: Path, address: str, port: int, key_type: str | None = None
) -> paramiko.PKey | None:
    """The key `known_hosts` holds for this address and port (of `key_type`, or any type)."""
    entry = _load(known_hosts).lookup(known_hosts_name(address, port))
    if not entry:
        return None
    if key_type is not None:
        return entry.get(key_type)
    return next(iter(entry.values()), None)


def accept_host_key(known_hosts: Path, address: str, port: int, key: paramiko.PKey) -> None:
    """Trust `key` for address:port in lepton's own known_hosts (created 0600 if missing).

    An existing key of the same type for that name is replaced: call this only after the user
    explicitly accepted the new key.
    """
    known_hosts = Path(known_hosts)
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    keys = _load(known_hosts)
    name = known_hosts_name(address, port)
    keys.add(name, key.get_name(), key)
    tmp = known_hosts.with_name(known_hosts.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    keys.save(str(tmp))
    os.replace(tmp, known_hosts)


def forget_host_key(known_hosts: Path, address: str, port: int) -> bool:
    """Remove every key for address:port from lepton's known_hosts; True if one was there."""
    known_hosts = Path(known_hosts)
    keys = _load(known_hosts)
    name = known_hosts_name(address, port)
    if name not in keys:
        return False
    del keys[name]
    keys.save(str(known_hosts))
    return True


def user_known_hosts_vouches(
    address: str, port: int, key: paramiko.PKey, path: Path | None = None
) -> bool:
    """True if the user's own known_hosts (default ~/.ssh/known_hosts) holds exactly this key."""
    path = Path(path) if path is not None else Path.home() / ".ssh" / "known_hosts"
    try:
        held = known_key(path, address, port, key.get_name())
    except (OSError, paramiko.SSHException, ValueError):
        return False
    return held is not None and held.asbytes() == key.asbytes()
