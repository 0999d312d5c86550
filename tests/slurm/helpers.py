"""Helpers for the Slurm tests: a SlurmHost on the bed, over subprocess or over SSH."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inventory.slurm import SlurmTarget
from inventory.slurm_host import SlurmHost
from inventory.transport import LocalTransport, SSHTransport
from tests.slurmbed import PARTITION, SlurmBed


def target(bed: SlurmBed, **kw: Any) -> SlurmTarget:
    return SlurmTarget(PARTITION, slurm_conf=str(bed.conf), **kw)


def local_host(bed: SlurmBed, root: Path, **kw: Any) -> SlurmHost:
    """The bed as a Slurm host whose commands run on this machine (the login node)."""
    return SlurmHost("cluster", LocalTransport("cluster"), target(bed, **kw), str(root))


def ssh_host(bed: SlurmBed, ssh: Any, root: Path, **kw: Any) -> SlurmHost:
    """The bed as a Slurm host reached over a real sshd (the submit node is 127.0.0.2)."""
    transport = SSHTransport(ssh.spec(), Path(ssh.known_hosts_path), ssh_config=None)
    return SlurmHost("cluster", transport, target(bed, **kw), str(root))


def wait_for(cond: Callable[[], Any], timeout: float = 60, every: float = 0.2) -> Any:
    """Poll `cond` until it is truthy (returns it) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {cond}")
        time.sleep(every)
