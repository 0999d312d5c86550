"""`lepton-tui plan` and `lepton-tui bench` as a user runs them: a real process, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scheduler.test_workloads import PODS


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lepton_tui", *args], capture_output=True, text=True, timeout=120
    )


def assert_one_line_error(res: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert res.returncode == code, (res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lepton-tui: error: "), res.stderr
    assert text in lines[0]


def test_plan_example_prints_the_worked_example() -> None:
    res = run("plan", "--example")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "$38.00/h" in out
    assert "CPU 8/10" in out and "GPU 4/5" in out and "memory 20/20" in out
    for t in ("t1", "t2", "t3", "t4"):
        assert t in out


def test_plan_file_json(tmp_path: Path) -> None:
    snap = {
        "prices": {"gpu_hour": 2.0},
        "nodes": [{"id": "h1", "cpus": 8, "mem_gb": 64, "gpus": 2, "gpu_mem_gb": 160}],
        "jobs": [
            {"id": 1, "cpus": 4, "mem_gb": 8, "gpus": 2},
            {"id": 2, "cpus": 2, "mem_gb": 8, "gpu_mem_gb": 20},
            {"id": "big", "cpus": 64, "mem_gb": 1},
        ],
    }
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(snap))
    res = run("plan", str(path), "--json")
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    assert [p["job"] for p in plan["placements"]] == [1]
    assert plan["cost_per_hour"] == pytest.approx(4.0)
    assert [u["job"] for u in plan["unschedulable"]] == ["big"]
    assert "job big is unschedulable" in res.stderr
    assert {u["job"] for u in plan["unplaced"]} == {2}


@pytest.mark.parametrize(
    ("content", "code", "text"),
    [
        ('{"nodes": [{"id": "a", "cpus": -4, "mem_gb": 1}], "jobs": []}', 2, "nodes[0].cpus"),
        ("{not json", 2, "not valid JSON (line 1"),
    ],
)
def test_plan_bad_snapshot_is_one_line(tmp_path: Path, content: str, code: int, text: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert_one_line_error(run("plan", str(path)), code, text)


def test_plan_needs_a_file_or_the_example(tmp_path: Path) -> None:
    assert_one_line_error(run("plan"), 2, "--example")
    assert_one_line_error(run("plan", str(tmp_path / "missing.json")), 2, "not found")


def test_bench_json_rows_for_every_policy_and_seed() -> None:
    res = run(
        "bench",
        "--workload",
        "trace",
        "--trace",
        str(PODS),
        "--nodes",
        "1",
        "--jobs",
        "100",
        "--load",
        "0.9",
        "--policies",
        "fifo,sjf,tetris,backfill,ilp",
        "--seeds",
        "2",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert sorted((r["policy"], r["seed"]) for r in rows) == sorted(
        (p, s) for p in ("fifo", "sjf", "tetris", "backfill", "ilp") for s in (0, 1)
    )
    need = {
        "policy",
        "workload",
        "seed",
        "avg_slowdown",
        "avg_bounded_slowdown",
        "p95_bounded_slowdown",
        "avg_jct",
        "makespan",
        "gpu_util",
        "cost",
        "decision_ms_p50",
        "decision_ms_p99",
        "bound_slowdown",
        "bound_makespan",
    }
    assert all(need <= set(r) for r in rows)


def test_bench_table() -> None:
    res = run(
        "bench", "--workload", "deeprm", "--jobs", "60", "--policies", "fifo,sjf", "--seeds", "2"
    )
    assert res.returncode == 0, res.stderr
    assert "fifo" in res.stdout and "sjf" in res.stdout and "±" in res.stdout


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--policies", "fifo,lottery"], "unknown policy 'lottery'"),
        (["--workload", "trace"], "--trace"),
        (["--workload", "nope"], "--workload must be one of"),
        (["--seeds", "zero"], "--seeds must be a whole number"),
        (["--load", "-1"], "--load must be >= 0.001"),
        (["--workload", "trace", "--trace", "/nonexistent.csv"], "trace file not found"),
    ],
)
def test_bench_bad_input_is_one_line(args: list[str], text: str) -> None:
    assert_one_line_error(run("bench", *args), 2, text)


def test_bench_bad_trace_names_the_row(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    lines = PODS.read_text().splitlines()
    parts = lines[5].split(",")
    parts[1] = "x"  # cpu_milli of the row on line 6
    lines[5] = ",".join(parts)
    bad.write_text("\n".join(lines) + "\n")
    assert_one_line_error(
        run("bench", "--workload", "trace", "--trace", str(bad)), 2, "row 6: cpu_milli 'x'"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--example", "--cost-weight", "1e308"],
        ["bench", "--workload", "deeprm", "--policies", "fifo", "--nodes", "100000000"],
        ["bench", "--workload", "deeprm", "--policies", "fifo", "--load", "1e300"],
        ["bench", "--workload", "deeprm", "--policies", "fifo", "--seeds", "99999999"],
    ],
)
def test_numbers_out_of_range_are_one_line_errors(args: list[str]) -> None:
    """They used to reach the solver or the simulator: an internal error, or hours of work."""
    out = run(*args)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("lepton-tui: error: ") and len(out.stderr.splitlines()) == 1
    assert "internal error" not in out.stderr
