"""Replay keeps the time limits the history shows: a job killed at its limit times out in every
row, one requeued at its limit is requeued as often as it really was."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui.economics.replay import ACTUAL, ledger_workload, replay_ledger
from lepton_tui.ledger import Ledger
from tests.clirun import lepton
from tests.economics.helpers import T0, Clock, add_host, make_ledger, run_attempt

pytest.importorskip("scheduler.simulator")

WINDOW = (T0 - 1, T0 + 86400)
LIMIT = 600.0


def _job(ledger: Ledger, at: float, limit: float | None = LIMIT) -> int:
    spec = {"command": "true", "project": "p", "cpus": 1, "mem_mb": 1024, "gpus": 1,
            "gpu_mem_mb": 0, "time_limit_s": limit}  # fmt: skip
    with ledger.tx():
        return ledger.add_job(spec, "alice", at=at)


def _requeued_at_limit(ledger: Ledger, clock: Clock, job: int, start: float) -> None:
    """An attempt killed at its limit whose job goes back to the queue (as the dispatcher does
    for `--requeue-on-timeout`)."""
    token = run_attempt(ledger, clock, job, "h1", start, None, gpu_ids=(0,))
    clock.now = start + LIMIT
    ledger.transition_attempt(token, "timeout", job_state="queued",
                              job_fields={"requeues": 1})  # fmt: skip


def _history(tmp_path: Path) -> Ledger:
    """On one GPU: job a (requeued once at its limit, then 300 s to finish), job b (killed at its
    limit, no requeue), job c (a limit it never reached, 100 s)."""
    clock = Clock()
    ledger = make_ledger(tmp_path, clock)
    add_host(ledger, "h1", cpus=8, gpus=1, gpu_mem_mb=81920)
    a, b, c = _job(ledger, T0), _job(ledger, T0 + 1), _job(ledger, T0 + 2)
    with ledger.tx():
        ledger.conn.execute(
            "UPDATE jobs SET requeue_on_timeout = 1, max_requeues = 3 WHERE id = ?", (a,)
        )
    # in order of submission, as FIFO runs them: a 0..600 killed and requeued, a 600..900,
    # b 900..1500 killed, c 1500..1600
    _requeued_at_limit(ledger, clock, a, T0)
    run_attempt(ledger, clock, a, "h1", T0 + 600, T0 + 900, gpu_ids=(0,))
    run_attempt(ledger, clock, b, "h1", T0 + 900, T0 + 1500, gpu_ids=(0,), final="timeout")
    run_attempt(ledger, clock, c, "h1", T0 + 1500, T0 + 1600, gpu_ids=(0,))
    return ledger


def test_replay_reproduces_the_timeouts_and_requeues(tmp_path: Path) -> None:
    ledger = _history(tmp_path)
    workload, recorded, skipped = ledger_workload(ledger, *WINDOW)
    assert skipped == 0
    jobs = {j.id: j for j in workload.jobs}
    a, b, c = sorted(jobs)
    # a: its last attempt's 300 s plus the limit of the one killed; b: more than its limit
    assert (jobs[a].runtime_s, jobs[a].time_limit_s, jobs[a].requeue_on_timeout) == (
        300.0 + LIMIT, LIMIT, True,
    )  # fmt: skip
    assert jobs[a].max_requeues == 1
    assert jobs[b].runtime_s > LIMIT and not jobs[b].requeue_on_timeout
    assert jobs[c].runtime_s == 100.0 and jobs[c].time_limit_s == LIMIT
    assert [r.id for r in recorded.timed_out] == [b]
    rows = {r.policy: r for r in replay_ledger(ledger, *WINDOW, ["fifo", "sjf"]).rows}
    for name in (ACTUAL, "fifo", "sjf"):
        assert (rows[name].finished, rows[name].timed_out, rows[name].requeues) == (2, 1, 1), name
    assert rows["fifo"].makespan_s == pytest.approx(rows[ACTUAL].makespan_s)
    assert rows["fifo"].mean_wait_s == pytest.approx(rows[ACTUAL].mean_wait_s)
    ledger.close()


def test_a_limit_the_job_ran_past_is_not_enforced(tmp_path: Path) -> None:
    clock = Clock()
    ledger = make_ledger(tmp_path, clock)
    add_host(ledger, "h1", cpus=8, gpus=1, gpu_mem_mb=81920)
    job = _job(ledger, T0, limit=60.0)
    run_attempt(ledger, clock, job, "h1", T0, T0 + 100, gpu_ids=(0,))  # ended well, after 100 s
    rows = {r.policy: r for r in replay_ledger(ledger, *WINDOW, ["fifo"]).rows}
    assert (rows["fifo"].finished, rows["fifo"].timed_out) == (1, 0)
    ledger.close()


def test_replay_command_shows_the_timeouts(home: Path) -> None:
    ledger = _history(home)
    ledger.close()
    out = lepton(home, "replay", "--since", "2026-03-01", "--until", "2027-03-01", "--policies",
                 "fifo", columns=200)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "TIMED OUT / REQUEUED" in out.stdout
    assert [line.split()[-3:] for line in out.stdout.splitlines() if "fifo" in line or "actual"
            in line] == [["1", "/", "1"], ["1", "/", "1"]]  # fmt: skip


def test_a_requeued_job_whose_last_attempt_ran_past_its_limit_still_finishes(
    tmp_path: Path,
) -> None:
    # requeued once at its limit, then ended well after 610 s (just past the limit, as a job
    # ending near its limit is seen a poll later): it finished, in every row as in the ledger
    clock = Clock()
    ledger = make_ledger(tmp_path, clock)
    add_host(ledger, "h1", cpus=8, gpus=1, gpu_mem_mb=81920)
    job = _job(ledger, T0)
    with ledger.tx():
        ledger.conn.execute("UPDATE jobs SET requeue_on_timeout = 1 WHERE id = ?", (job,))
    _requeued_at_limit(ledger, clock, job, T0)
    run_attempt(ledger, clock, job, "h1", T0 + 600, T0 + 1210, gpu_ids=(0,))
    rows = {r.policy: r for r in replay_ledger(ledger, *WINDOW, ["fifo"]).rows}
    for name in (ACTUAL, "fifo"):
        assert (rows[name].finished, rows[name].timed_out, rows[name].requeues) == (1, 0, 1), name
    ledger.close()


def test_policies_see_a_replayed_requeued_attempt_end_by_its_limit(tmp_path: Path) -> None:
    # the ledger's estimate of a job with a limit is its limit, per attempt: the attempt after a
    # requeue is seen ending by its limit, as the first was (never as overdue at its start)
    from scheduler.registry import make_policy
    from scheduler.simulator import Simulator

    ledger = _history(tmp_path)
    workload, _, _ = ledger_workload(ledger, *WINDOW)
    a = min(j.id for j in workload.jobs)
    sim = Simulator(workload, restart_overhead_s=0.0)
    policy = make_policy("fifo")
    seen: dict[float, float] = {}
    while sim.next_decision():
        sim.step(policy)
        running = sim.view().running
        seen.update({r.started_at: r.est_end - r.started_at for r in running if r.job_id == a})
    assert list(seen.values()) == [LIMIT, LIMIT]
    ledger.close()
