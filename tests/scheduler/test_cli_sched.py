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


SWF = Path(__file__).resolve().parent.parent / "data" / "lublin_256.swf"


def test_bench_swf_native_windows_as_the_papers_run_them() -> None:
    """The issue's command with fewer jobs: an SWF trace alone selects the trace workload, one
    256-CPU node without GPUs, native arrivals, successive windows per seed, the DQN included."""
    res = run(
        "bench", "--trace", str(SWF), "--node-shape", "256c,256G,0g", "--nodes", "1",
        "--load", "native", "--jobs", "96", "--seeds", "3",
        "--policies", "fifo,backfill,sjf,f1,dqn", "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert isinstance(rows, list) and len(rows) == 15
    assert {r["policy"] for r in rows} == {"fifo", "backfill", "sjf", "f1", "dqn"}
    assert all(r["avg_bounded_slowdown"] >= 1 and r["load"] == "native" for r in rows)
    assert all(r["jobs"] == 96 and r["nodes"] == 1 and r["unschedulable"] == 0 for r in rows)
    # three different windows: the same policy scores differently on each
    fifo = [r["avg_bounded_slowdown"] for r in rows if r["policy"] == "fifo"]
    assert len(set(fifo)) == 3


def test_bench_start_picks_the_window(tmp_path: Path) -> None:
    def bsld(*extra: str) -> list[float]:
        res = run(
            "bench", "--trace", str(SWF), "--load", "native", "--jobs", "50",
            "--policies", "backfill", "--json", *extra,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        return [r["avg_bounded_slowdown"] for r in json.loads(res.stdout)]

    two = bsld("--seeds", "2")
    assert bsld("--start", "50") == two[1:]  # window 2 is the one that starts at job 50
    assert_one_line_error(
        run(
            "bench",
            "--trace",
            str(SWF),
            "--load",
            "native",
            "--start",
            "10239",
            "--jobs",
            "10",
            "--seeds",
            "2",
            "--policies",
            "fifo",
        ),  # fmt: skip
        2,
        "window 2 of 10 jobs would start at job 10249",
    )


def test_bench_cpu_only_trace_is_not_refused() -> None:
    res = run(
        "bench", "--trace", str(SWF), "--node-shape", "256c,256G,0g", "--load", "0.9",
        "--jobs", "200", "--policies", "backfill,sjf-bf", "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "out of reach" not in res.stderr
    rows = json.loads(res.stdout)
    assert all(abs(r["offered_load"] - 0.9) < 1e-3 for r in rows)


def test_bench_defaults_show_every_policy_and_a_difference() -> None:
    res = run("bench", "--workload", "lab", "--jobs", "200", "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    from scheduler.registry import POLICY_NAMES

    assert [r["policy"] for r in rows] == list(POLICY_NAMES)  # dqn and ilp included
    assert len({round(r["avg_bounded_slowdown"], 2) for r in rows}) > 3
    assert max(r["avg_bounded_slowdown"] for r in rows) > 1.5


def _pods_lines() -> list[str]:
    return PODS.read_text().splitlines()


@pytest.mark.parametrize(
    ("name", "content", "text"),
    [
        ("latin1.csv", "\n".join(_pods_lines()[:20]).encode() + b"\ncaf\xe9\n", "not UTF-8 text"),
        (
            "huge.csv",
            ("\n".join(_pods_lines()[:20]) + "\n" + "x" * 131_073 + ",1\n").encode(),
            "a field is longer than 131,072 characters",
        ),
        (
            "cut.csv",
            ("\n".join(_pods_lines()[:20]) + "\n" + _pods_lines()[20][:30]).encode(),
            "cut.csv line 21: ",
        ),
        ("latin1.swf", b"; caf\xe9\n", "latin1.swf: not UTF-8 text"),
        ("cut.swf", SWF.read_bytes()[:2000], "(a truncated line?)"),
    ],
    ids=["latin1.csv", "huge.csv", "cut.csv", "latin1.swf", "cut.swf"],
)
def test_bench_trace_errors_are_one_line_like_plan(
    tmp_path: Path, name: str, content: bytes, text: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    res = run("bench", "--trace", str(path), "--jobs", "10", "--policies", "fifo")
    assert_one_line_error(res, 2, text)
    assert "internal error" not in res.stderr and len(res.stderr) < 300
    if name == "latin1.csv":  # the same words as plan's for a snapshot that is not UTF-8
        snap = tmp_path / "snap.json"
        snap.write_bytes(b'{"x": "caf\xe9"}')
        assert_one_line_error(run("plan", str(snap)), 2, "snap.json: not UTF-8 text")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--workload", "lab", "--node-shape", "256 cores"], "write it as CPUs, memory and GPUs"),
        (["--workload", "hpc", "--node-shape", "0c,1G,0g"], "at least one CPU"),
        (["--node-shape", "8c,1G,0g"], "does not apply to deeprm"),
        (["--load", "native"], "--load native needs a trace"),
        (["--start", "3"], "--start picks a window of a trace"),
        (["--workload", "lab", "--trace", "x.swf"], "go with the trace workload"),
        (["--policies", "x" * 100_000], "unknown policy 'xxxxxxxx"),
    ],
)
def test_bench_new_options_refuse_bad_input(args: list[str], text: str) -> None:
    res = run("bench", *args)
    assert_one_line_error(res, 2, text)
    assert len(res.stderr) < 300


def test_bench_error_quotes_a_long_number_short() -> None:
    res = run("bench", "--load", "9" * 50 + "x" * 100_000)
    assert_one_line_error(res, 2, "--load must be a number, got '9999")
    assert "(100,050 characters)" in res.stderr and len(res.stderr) < 200


def test_bench_table_on_a_cluster_without_gpus_shows_cpu_utilization() -> None:
    res = run("bench", "--trace", str(SWF), "--load", "native", "--jobs", "60",
              "--policies", "backfill")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "CPU util" in res.stdout and "GPU util" not in res.stdout
    assert "native" in res.stdout


def test_node_shape_reads_cpus_memory_gpus_and_gpu_memory() -> None:
    from lepton_tui.cli.sched_args import parse_node_shape
    from scheduler.model import Resources

    assert parse_node_shape("256c,256G,0g") == Resources(256.0, 256 * 1024, 0, 0)
    assert parse_node_shape("32c, 256G, 4g, 40Gpg") == Resources(32.0, 262144, 4, 4 * 40960)
    assert parse_node_shape("8g,64c,0.5G") == Resources(64.0, 512, 8, 8 * 81920)
    res = run("bench", "--workload", "lab", "--node-shape", "32c,256G,4g", "--jobs", "40",
              "--policies", "sjf-bf", "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["nodes"] == 1


def test_bench_says_when_the_trace_runs_out_and_repeat_cycles_it() -> None:
    args = ("bench", "--trace", str(PODS), "--nodes", "1", "--jobs", "700", "--policies", "fifo")
    res = run(*args, "--json")
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(res.stdout)
    assert row["jobs_asked"] == 700 and row["jobs"] + row["dropped"] < 700
    assert "ran out of tasks: --jobs 700 replayed" in res.stderr and "--repeat" in res.stderr
    res = run(*args, "--repeat", "--json")
    assert res.returncode == 0, res.stderr
    (row,) = json.loads(res.stdout)
    assert row["jobs"] + row["dropped"] == 700 and row["finished"] == row["jobs"]
    assert "ran out" not in res.stderr
    assert_one_line_error(
        run("bench", "--workload", "lab", "--jobs", "20", "--repeat"), 2, "--repeat cycles a trace"
    )
