"""Interactive GPUs (`lepton-tui shell`): an allocation held by a job, and the user's own SSH to it.

The allocation is an ordinary job of kind `interactive` whose command only sleeps: the scheduler
places it like any other (fair share, limits and budgets apply), its wrapper ends it at its time
limit, and `cancel` frees it. Once it runs, the user's own `ssh` (their keys, agent and
`~/.ssh/config`; lepton's known_hosts added to theirs, or in lab mode, where that file is the
service's own, the host key the service recorded) opens a session on its host with
`CUDA_VISIBLE_DEVICES` set to its GPUs, ended by `timeout` when the time runs out. Pure: builds
the job's command and the ssh command line; `lepton_tui.cli.shell` runs them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import os
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from lepton_tui.errors import ValidationError

DEFAULT_TIME_S = 3600.0
END_GRACE_S = 10  # `timeout -k`: KILL the session this long after its TERM


def holder_command(time_limit_s: float) -> str:
    """The allocation's job: sleep past the limit (the wrapper's TERM at the limit ends it)."""
    return f"exec sleep {int(math.ceil(time_limit_s)) + 60}"


def remote_command(
    gpu_ids: Sequence[int], job_id: int, remaining_s: float, command: str | None = None
) -> str:
    """What the session runs on the host: the login shell (or `command`) with the allocation's
    GPUs, ended when the time runs out. Every value quoted; `$SHELL` is the host's."""
    env = {
        "CUDA_VISIBLE_DEVICES": ",".join(str(int(g)) for g in gpu_ids),
        "LEPTON_JOB_ID": str(int(job_id)),
        "LEPTON_INTERACTIVE": "1",
    }
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    seconds = max(1, int(remaining_s))
    timeout = f"timeout --foreground -k {END_GRACE_S} {seconds}"
    run = (
        f'"${{SHELL:-/bin/sh}}" -c {shlex.quote(command)}' if command else '"${SHELL:-/bin/sh}" -l'
    )
    return f"export {exports}; exec {timeout} {run}"


NO_SSH_HINT = "on a Slurm cluster use its own `srun --pty bash`; or add an SSH host"


def ssh_refusal(host: Mapping[str, Any]) -> str | None:
    """Why `shell` cannot open a session on `host` (None: it can). A Slurm partition places the
    job on a node of its own choosing, which an ssh to the host would not reach."""
    if host.get("slurm_json"):
        return (f"host {host.get('name')} is a Slurm partition: `shell` opens sessions on SSH "
                "hosts only")  # fmt: skip
    if host.get("transport") != "ssh" or not host.get("address"):
        return f"host {host.get('name')} is not reached over SSH; `shell` needs an SSH host"
    return None


def check_ssh_host(host: Mapping[str, Any]) -> None:
    """ValidationError, saying why, when `shell` cannot open a session on `host`."""
    why = ssh_refusal(host)
    if why:
        raise ValidationError(why, NO_SSH_HINT)


def ssh_argv(
    host: Mapping[str, Any],
    login: str | None,
    remote: str,
    *,
    tty: bool,
    known_hosts: str | None = None,
    ssh: str = "ssh",
) -> list[str]:
    """The user's own `ssh` to `host` running `remote`: `-t` on a terminal, the host's port,
    its key when this user may read it, lepton's known_hosts beside the user's own."""
    check_ssh_host(host)
    argv = [ssh]
    if tty:
        argv.append("-t")
    argv += ["-p", str(int(host.get("port") or 22))]
    key = host.get("key_path")
    if key and os.access(os.path.expanduser(str(key)), os.R_OK):
        argv += ["-i", str(key)]
    if known_hosts and os.access(known_hosts, os.R_OK) and " " not in known_hosts:
        argv += ["-o", f"UserKnownHostsFile=~/.ssh/known_hosts {known_hosts}"]
    address = str(host["address"])
    target = f"{login}@{address}" if login else address
    if target.startswith("-"):
        raise ValidationError(f"host address {address!r} is not allowed")
    return [*argv, target, remote]


def known_hosts_line(host: Mapping[str, Any], scanned: str) -> str | None:
    """The known_hosts line for `host` from `ssh-keyscan` output, only for a key whose SHA256
    fingerprint is the one lepton checked and recorded when the host was added (the scan itself
    proves nothing: the fingerprint does); None when the host shows no such key."""
    want = host.get("host_key_fingerprint")
    if not want or not host.get("address"):
        return None
    port = int(host.get("port") or 22)
    name = host["address"] if port == 22 else f"[{host['address']}]:{port}"
    for line in scanned.splitlines():
        parts = line.split()
        if len(parts) < 3 or line.startswith("#"):
            continue
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        if f"SHA256:{digest}" == want:
            return f"{name} {parts[1]} {parts[2]}"
    return None


def keyscan_argv(host: Mapping[str, Any], keyscan: str = "ssh-keyscan") -> list[str]:
    """`ssh-keyscan` for `host`'s address and port (an address starting with `-` is refused)."""
    address = str(host.get("address") or "")
    if not address or address.startswith("-"):
        raise ValidationError(f"host address {address!r} is not allowed")
    return [keyscan, "-T", "10", "-p", str(int(host.get("port") or 22)), address]


def remaining_s(job: Mapping[str, Any], now: float) -> float:
    """Seconds left of the allocation's time limit (from when it started running)."""
    limit = float(job.get("time_limit_s") or DEFAULT_TIME_S)
    started = job.get("started_at")
    return limit if started is None else max(0.0, float(started) + limit - now)
