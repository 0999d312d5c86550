"""Preflight against a real sshd: one line per check, capacity discovered."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from inventory.errors import HostKeyUnknown
from inventory.hostspec import HostSpec
from inventory.preflight import preflight
from inventory.transport import LocalTransport, SSHTransport
from tests.inventory.conftest import connect
from tests.sshbed import SSHHost

pytestmark = pytest.mark.ssh


def test_preflight_lines(t2: SSHTransport, h2: SSHHost) -> None:
    pf = preflight(t2, h2.spec())
    assert pf.ok
    names = [c.name for c in pf.checks]
    assert names == [
        "connected",
        "python3",
        "nvidia-smi",
        "gpus",
        "cpus",
        "memory",
        "disk",
        "logout",
    ]
    lines = pf.lines()
    assert "OpenSSH" in lines[0] and h2.address in lines[0]
    assert lines[1].split()[1] == "ok"
    assert pf.cpus == os.cpu_count() and pf.mem_total_mb and pf.disk_free_mb
    assert "logout" in lines[-1] and "jobs survive logout" in lines[-1]
    cap = pf.capacity()
    assert cap["cpus"] == os.cpu_count() and cap["gpus"] == len(pf.gpus)
    assert Path(h2.root_dir, "jobs").is_dir()


def test_preflight_fake_gpus(t2: SSHTransport, h2: SSHHost) -> None:
    pf = preflight(t2, h2.spec(gpus_override=2))
    assert pf.capacity()["gpus"] == 2 and "fake" in pf.lines()[2]


def test_preflight_without_python3(h2: SSHHost, tmp_path: Path) -> None:
    class NoPython(LocalTransport):
        def run(self, argv, stdin=None, timeout=30):  # type: ignore[no-untyped-def]
            return super().run(["python3-missing-for-test", *argv[1:]], stdin, timeout)

    pf = preflight(NoPython(), HostSpec("nopy", None, transport="local", root_dir=str(tmp_path)))
    assert not pf.ok and "python3 is not installed" in pf.lines()[1]


def test_preflight_unknown_key_raises(h2: SSHHost, tmp_path: Path) -> None:
    t = connect(h2, h2.write_known_hosts(tmp_path / "kh", trusted=False))
    with pytest.raises(HostKeyUnknown):
        preflight(t, h2.spec())
