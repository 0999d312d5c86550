"""Interactive GPUs (`lepton-tui shell`): an allocation held by a job, and the user's own SSH to it.

The allocation is an ordinary job of kind `interactive` whose command only sleeps: the scheduler
places it like any other (fair share, limits and budgets apply), its wrapper ends it at its time
limit, and `cancel` frees it. Once it runs, the user's own `ssh` (their keys, agent and
`~/.ssh/config`; lepton's known_hosts added to theirs) opens a session on its host with
`CUDA_VISIBLE_DEVICES` set to its GPUs, ended by `timeout` when the time runs out. Pure: builds
the job's command and the ssh command line; `lepton_tui.cli.shell` runs them.
"""

from __future__ import annotations

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
    if host.get("transport") != "ssh" or not host.get("address"):
        raise ValidationError(
            f"host {host.get('name')} is not reached over SSH; `shell` needs an SSH host",
            "pick another host or run the job with `submit`",
        )
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


def remaining_s(job: Mapping[str, Any], now: float) -> float:
    """Seconds left of the allocation's time limit (from when it started running)."""
    limit = float(job.get("time_limit_s") or DEFAULT_TIME_S)
    started = job.get("started_at")
    return limit if started is None else max(0.0, float(started) + limit - now)
