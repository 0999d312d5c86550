"""Helpers for the inventory tests: transports to the loopback sshd hosts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from inventory.remote import agent
from inventory.transport import SSHTransport
from tests.sshbed import SSHBed, SSHHost


def connect(host: SSHHost, known_hosts: Path | str | None = None, **kwargs: object) -> SSHTransport:
    """An SSHTransport to a test bed host that ignores the user's ~/.ssh/config."""
    kwargs.setdefault("ssh_config", None)
    kwargs.setdefault("connect_timeout", 5)
    return SSHTransport(host.spec(), Path(known_hosts or host.known_hosts_path), **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def h2(sshbed: SSHBed) -> SSHHost:
    """The first test bed host, running."""
    return sshbed(1)[0]


@pytest.fixture
def t2(h2: SSHHost) -> Iterator[SSHTransport]:
    """A transport to h2, closed afterwards."""
    t = connect(h2)
    yield t
    t.close()


@pytest.fixture(autouse=True)
def _no_stray_jobs(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, kill any attempt still running on the test bed (a failed test's job).

    The test bed hosts are this machine, so the agent's own functions do it in-process.
    """
    yield
    if "sshbed" not in request.fixturenames:
        return
    bed: SSHBed = request.getfixturevalue("sshbed")
    for host in bed.hosts:
        for token, st in agent.statuses(host.root_dir, None).items():
            if st["state"] in ("running", "starting"):
                agent.op_kill_stale({"root": host.root_dir, "tokens": [token]})
