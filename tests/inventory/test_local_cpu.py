"""A --local host's CPU percent is measured over a real window, from the first sample on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lepton_tui.service import Service
from tests.clirun import lepton


def test_hosts_probe_of_a_local_host_reads_a_real_cpu_percent(
    svc: Service, home: Path, tmp_path: Path
) -> None:
    svc.add_host("me", local=True, root_dir=str(tmp_path / "root"))
    # one core kept busy: over any real window the machine is well above 0 %
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        res = lepton(home, "hosts", "probe", "me", "--json")
    finally:
        burner.kill()
        burner.wait()
    assert res.returncode == 0, res.stderr
    sample = json.loads(res.stdout)
    cpus = sample["cpus"]
    assert sample["cpu_percent"] >= 50.0 / cpus, sample["cpu_percent"]
