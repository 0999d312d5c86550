"""`bench` with time limits: each job's limit a factor of its estimate, requeued at it or not;
the rows count jobs timed out and requeues; bad options get one line."""

from __future__ import annotations

import json

import pytest

from scheduler.bench import make_workload, run_bench
from tests.scheduler.test_cli_sched import assert_one_line_error, run


def test_bench_rows_count_timeouts_and_requeues() -> None:
    common = {"jobs": 200, "nodes": 2, "load": 1.0}
    plain, cut, requeued = (
        run_bench("lab", ["backfill"], 1, **common, **extra)[0]
        for extra in ({}, {"time_limit_factor": 0.8},
                      {"time_limit_factor": 0.8, "requeue_on_timeout": True})
    )  # fmt: skip
    assert plain["timed_out"] == plain["requeues"] == 0 and plain["finished"] == 200
    assert cut["timed_out"] > 0 and cut["requeues"] == 0
    assert cut["finished"] + cut["timed_out"] == 200 and cut["timed_out_gpu_hours"] > 0
    assert requeued["requeues"] > 0 and requeued["finished"] > cut["finished"]
    assert (cut["time_limit_factor"], cut["requeue_on_timeout"]) == (0.8, False)
    assert requeued["requeue_on_timeout"] is True


def test_time_limits_leave_the_workload_otherwise_alone() -> None:
    wl = make_workload("lab", 3, jobs=50, nodes=1)
    limited = make_workload("lab", 3, jobs=50, nodes=1, time_limit_factor=2.0)
    assert [(j.id, j.runtime_s, j.est_runtime_s) for j in wl.jobs] == [
        (j.id, j.runtime_s, j.est_runtime_s) for j in limited.jobs
    ]
    assert all(j.time_limit_s == 2.0 * j.est_runtime_s for j in limited.jobs)
    assert all(not j.time_limit_s for j in wl.jobs)


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--time-limit-factor", "-1"], "--time-limit-factor must be a positive number"),
        (["--time-limit-factor", "0"], "--time-limit-factor must be a positive number"),
        (["--requeue-on-timeout"], "--requeue-on-timeout needs time limits"),
        (["--time-limit-factor", "2", "--max-requeues", "3"], "--max-requeues goes with"),
        (["--time-limit-factor", "2", "--requeue-on-timeout", "--max-requeues", "-2"],
         "--max-requeues must be >= 0"),
    ],
)  # fmt: skip
def test_bad_time_limit_options_get_one_line(args: list[str], text: str) -> None:
    res = run("bench", "--workload", "lab", "--jobs", "20", "--policies", "fifo", *args)
    assert_one_line_error(res, 2, text)
    assert res.stdout == ""


def test_bench_command_reports_timeouts_in_json() -> None:
    res = run("bench", "--workload", "lab", "--jobs", "100", "--nodes", "1", "--policies", "fifo",
              "--time-limit-factor", "0.8", "--requeue-on-timeout", "--max-requeues", "2",
              "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    [row] = json.loads(res.stdout)
    assert row["requeues"] > 0 and row["requeue_on_timeout"] is True
    assert row["finished"] + row["timed_out"] == 100
