"""nvidia-smi CSV parsing with real output formats: several models, [N/A] fields, MIG rows."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from inventory.remote import agent

# nvidia-smi --query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total,temperature.gpu,
#   power.draw --format=csv,noheader,nounits, as printed by several drivers and models
DGX_A100 = """\
0, GPU-0b2c1c1e-5a0c-7e7d-3c2b-8f1e6a9c0d11, NVIDIA A100-SXM4-80GB, 97, 71234, 81920, 64, 351.27
1, GPU-5d6e7f80-91a2-b3c4-d5e6-f708192a3b4c, NVIDIA A100-SXM4-80GB, 0, 4, 81920, 31, 61.32
"""
H100 = "0, GPU-9f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8, NVIDIA H100 80GB HBM3, 12, 10240, 81559, 38, 118.90\n"
V100_AND_T4 = """\
0, GPU-11111111-2222-3333-4444-555555555555, Tesla V100-SXM2-32GB, 100, 30000, 32510, 64, 250.13
1, GPU-66666666-7777-8888-9999-000000000000, Tesla T4, 0, 0, 15360, 35, 9.87
"""
GEFORCE_NA = """\
0, GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, NVIDIA GeForce RTX 3090, 3, 354, 24576, 45, [N/A]
1, GPU-ffffffff-0000-1111-2222-333333333333, Quadro K620, [Not Supported], 1, 2000, 40, [Not Supported]
"""
# MIG enabled on GPU 0: utilization is not available for the parent GPU
MIG = """\
0, GPU-5e2b1c3d-aaaa-bbbb-cccc-0123456789ab, NVIDIA A100-SXM4-40GB, [N/A], 13, 40960, 29, 43.47
1, GPU-6f3c2d4e-aaaa-bbbb-cccc-0123456789ab, NVIDIA A100-SXM4-40GB, 0, 0, 40960, 27, 41.02
"""
# --query-compute-apps=gpu_uuid,pid,used_memory; under MIG the memory reads [N/A]
APPS = """\
GPU-5e2b1c3d-aaaa-bbbb-cccc-0123456789ab, 41822, [N/A]
GPU-5e2b1c3d-aaaa-bbbb-cccc-0123456789ab, 41910, [N/A]
GPU-6f3c2d4e-aaaa-bbbb-cccc-0123456789ab, 50133, 20480
"""


def test_a100_rows() -> None:
    gpus = agent.parse_gpu_csv(DGX_A100)
    assert [g["index"] for g in gpus] == [0, 1]
    g = gpus[0]
    assert g["name"] == "NVIDIA A100-SXM4-80GB"
    assert g["uuid"] == "GPU-0b2c1c1e-5a0c-7e7d-3c2b-8f1e6a9c0d11"
    assert (g["util_percent"], g["mem_used_mb"], g["mem_total_mb"]) == (97, 71234, 81920)
    assert (g["temperature_c"], g["power_w"]) == (64, 351.27)


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (H100, ["NVIDIA H100 80GB HBM3"]),
        (V100_AND_T4, ["Tesla V100-SXM2-32GB", "Tesla T4"]),
        (GEFORCE_NA, ["NVIDIA GeForce RTX 3090", "Quadro K620"]),
    ],
)
def test_models(text: str, names: list[str]) -> None:
    assert [g["name"] for g in agent.parse_gpu_csv(text)] == names


def test_not_available_fields_are_none() -> None:
    rtx, quadro = agent.parse_gpu_csv(GEFORCE_NA)
    assert rtx["power_w"] is None and rtx["util_percent"] == 3
    assert quadro["util_percent"] is None and quadro["power_w"] is None
    assert quadro["mem_total_mb"] == 2000


def test_mig_rows_and_processes() -> None:
    gpus = agent.attach_apps(agent.parse_gpu_csv(MIG), agent.parse_apps_csv(APPS))
    assert gpus[0]["util_percent"] is None and gpus[0]["mem_used_mb"] == 13
    assert gpus[0]["processes"] == [[41822, None], [41910, None]]
    assert gpus[1]["processes"] == [[50133, 20480]]


def test_noise_lines_are_ignored() -> None:
    assert agent.parse_gpu_csv("No devices were found\n") == []
    assert agent.parse_apps_csv("No running processes found\n") == []
    text = (
        "index, uuid, name, utilization.gpu [%], memory.used [MiB], memory.total [MiB], x, y\n"
        + H100
    )
    assert len(agent.parse_gpu_csv(text)) == 1


def _fake_smi(tmp_path: Path, body: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    smi = bindir / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + body)
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)
    return bindir


def test_query_gpus_with_a_fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gpus.csv").write_text(MIG)
    (tmp_path / "apps.csv").write_text(APPS)
    body = (
        f'case "$1" in --query-gpu=*) cat {tmp_path}/gpus.csv;; '
        f"--query-compute-apps=*) cat {tmp_path}/apps.csv;; esac\n"
    )
    bindir = _fake_smi(tmp_path, body)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    gpus, error = agent.query_gpus()
    assert error is None
    assert [g["index"] for g in gpus] == [0, 1]
    assert gpus[1]["processes"] == [[50133, 20480]]


def test_no_driver_is_an_empty_list_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = (
        "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        'Make sure that the latest NVIDIA driver is installed and running."\nexit 9\n'
    )
    bindir = _fake_smi(tmp_path, body)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    gpus, error = agent.query_gpus()
    assert gpus == [] and error is not None and "NVIDIA driver" in error


def test_no_nvidia_smi_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert agent.query_gpus() == ([], None)


def test_hung_nvidia_smi_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = _fake_smi(tmp_path, "exec sleep 30\n")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    gpus, error = agent.query_gpus(timeout=0.3)
    assert gpus == [] and "timed out" in (error or "")
