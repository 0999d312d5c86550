"""Who is calling: a Unix user as the kernel says, never as the caller says.

In lab mode the daemon learns each client's uid and gid from `SO_PEERCRED` on the connection
(filled in by the kernel at `connect()`); the user name and groups come from the system's
passwd and group databases. Nothing a client sends can change them.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from dataclasses import dataclass

from lepton_tui.errors import PermissionDenied

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Identity:
    """A caller: uid, primary gid, user name and every group (names) it belongs to."""

    uid: int
    gid: int
    user: str
    groups: frozenset[str]
    pid: int | None = None

    def in_group(self, name: str) -> bool:
        return name in self.groups


def user_name(uid: int) -> str:
    """The passwd name of `uid`; `uid-N` when it has none (refused if an account bears that name,
    so a uid without an entry can never pass for another user)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        pass
    name = f"uid-{uid}"
    try:
        pwd.getpwnam(name)
    except KeyError:
        return name
    raise PermissionDenied(
        f"uid {uid} has no passwd entry, and its stand-in name {name!r} is another account's",
        f"give uid {uid} a passwd entry",
    )


def group_names(user: str, gid: int) -> frozenset[str]:
    """Every group of `user` (its primary `gid` and its supplementary groups), by name."""
    gids = {gid}
    try:
        gids.update(os.getgrouplist(user, gid))
    except (KeyError, OSError):
        pass  # no passwd entry: the primary group only
    names = set()
    for g in gids:
        try:
            names.add(grp.getgrgid(g).gr_name)
        except KeyError:
            names.add(f"gid-{g}")
    return frozenset(names)


def identity_of(uid: int, gid: int, pid: int | None = None) -> Identity:
    """The identity of a uid and primary gid, resolved through passwd and group."""
    name = user_name(uid)
    return Identity(uid=uid, gid=gid, user=name, groups=group_names(name, gid), pid=pid)


def peer_identity(sock: socket.socket) -> Identity:
    """The identity of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return identity_of(uid, gid, pid)


def own_identity() -> Identity:
    """This process's identity (its real uid and gid)."""
    return identity_of(os.getuid(), os.getgid(), os.getpid())
