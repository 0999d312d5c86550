"""How many times a host runs `nvidia-smi`: once per dispatcher poll, twice for `hosts probe`.

A real sshd host of the test bed with a fake `nvidia-smi` first on its PATH (through the login's
`~/.bashrc`, which bash reads for sshd's commands) that logs each run and answers with real
nvidia-smi output (an A100 pair with MIG on GPU 0, from `test_gpu_parse`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from inventory.probe import probe
from inventory.transport import SSHTransport
from lepton_tui.dispatch.hostpool import poll_host
from tests.inventory.conftest import connect
from tests.inventory.test_gpu_parse import APPS, MIG
from tests.sshbed import SSHHost

pytestmark = pytest.mark.ssh

SCRIPT = """#!/bin/sh
echo "$*" >> {log}
case "$1" in
  --query-gpu=*) cat {dir}/gpus.csv ;;
  --query-compute-apps=*) cat {dir}/apps.csv ;;
  *) echo "unexpected: $*" >&2; exit 2 ;;
esac
"""


@pytest.fixture
def smi_log(h2: SSHHost) -> Iterator[Path]:
    """A counting fake `nvidia-smi` on h2's PATH for the test; yields its log of runs."""
    bindir = h2.dir / "smi-count-bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "gpus.csv").write_text(MIG)
    (bindir / "apps.csv").write_text(APPS)
    log = bindir / "runs.log"
    log.write_text("")
    smi = bindir / "nvidia-smi"
    smi.write_text(SCRIPT.format(log=log, dir=bindir))
    smi.chmod(0o755)
    h2.home.mkdir(mode=0o700, exist_ok=True)
    bashrc = h2.home / ".bashrc"
    before = bashrc.read_text() if bashrc.exists() else None
    bashrc.write_text((before or "") + f'\nexport PATH="{bindir}:$PATH"\n')
    try:
        yield log
    finally:
        if before is None:
            bashrc.unlink()
        else:
            bashrc.write_text(before)


@pytest.fixture
def t_smi(h2: SSHHost, smi_log: Path) -> Iterator[SSHTransport]:
    """A connection made after the fake is in place (its agent's PATH has it)."""
    t = connect(h2)
    yield t
    t.close()


def _runs(log: Path) -> list[str]:
    return [line.split("=")[0] for line in log.read_text().splitlines()]


def test_a_dispatcher_poll_runs_nvidia_smi_once(
    t_smi: SSHTransport, h2: SSHHost, smi_log: Path
) -> None:
    for _ in range(5):
        poll = poll_host(t_smi, h2.spec(), [])
        assert [g.index for g in poll.gpus] == [0, 1]
        assert poll.gpus[0].util_percent is None and poll.gpus[1].mem_total_mb == 40960
    assert _runs(smi_log) == ["--query-gpu"] * 5


def test_hosts_probe_lists_processes_with_a_second_run(
    t_smi: SSHTransport, h2: SSHHost, smi_log: Path
) -> None:
    sample = probe(t_smi, h2.spec(), tokens=[])
    assert sample.gpus[0].processes == [(41822, None), (41910, None)]
    assert sample.gpus[1].processes == [(50133, 20480)]
    assert _runs(smi_log) == ["--query-gpu", "--query-compute-apps"]
    without = probe(t_smi, h2.spec(), tokens=[], processes=False)
    assert [g.processes for g in without.gpus] == [[], []]
    assert len(_runs(smi_log)) == 3
