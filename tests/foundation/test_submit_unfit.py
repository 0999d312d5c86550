"""A request that fits no host is queued, with one warning line and a queue reason saying why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lepton_tui.service import Service
from tests.clirun import lepton


def _warnings(stderr: str) -> list[str]:
    """stderr less the note that no dispatcher runs (these tests start none)."""
    return [ln for ln in stderr.splitlines() if "no dispatcher is running" not in ln]


def _small_fleet(svc: Service, tmp_path: Path) -> None:
    for name in ("cpu-a", "cpu-b"):  # 2 CPUs, 4 GB, no GPUs each
        svc.add_host(name, address=f"{name}.lab", root_dir=str(tmp_path / name),
                     capacity={"cpus": 2, "mem_mb": 4096, "gpus": 0})  # fmt: skip


@pytest.mark.parametrize(
    ("option", "missing"),
    [(["--gpus", "1"], "needs 1 GPU,"), (["--cpus", "64"], "needs 64 CPUs")],
)
def test_a_request_no_host_fits_is_queued_with_a_warning(
    svc: Service, home: Path, tmp_path: Path, option: list[str], missing: str
) -> None:
    _small_fleet(svc, tmp_path)
    res = lepton(home, "submit", *option, "--", "true")
    assert res.returncode == 0, res.stderr
    job_id = int(res.stdout)  # the id alone on stdout
    (line,) = _warnings(res.stderr)
    assert line.startswith(f"lepton-tui: warning: job {job_id} ") and missing in line
    (job,) = json.loads(lepton(home, "queue", "--json").stdout)
    assert job["state"] == "queued"
    assert job["reason"].startswith("unschedulable: fits no host") and missing in job["reason"]
    assert job["reason"] in line


def test_no_warning_when_a_host_fits_or_there_are_no_hosts(
    svc: Service, home: Path, tmp_path: Path
) -> None:
    res = lepton(home, "submit", "--gpus", "1", "--", "true")  # no hosts yet: nothing to say
    assert (res.returncode, _warnings(res.stderr)) == (0, [])
    _small_fleet(svc, tmp_path)
    res = lepton(home, "submit", "--cpus", "2", "--mem", "4G", "--", "true")
    assert (res.returncode, _warnings(res.stderr)) == (0, [])
