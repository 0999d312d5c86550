"""Time limits in the simulator: a job killed at its limit ends timed out, or is requeued (it
resumes from its checkpoint) until its requeues run out."""

from __future__ import annotations

import pytest

from scheduler.metrics import compute_metrics
from scheduler.model import Job, Node, Resources, Workload
from scheduler.registry import make_policy
from scheduler.simulator import NodeOutage, SimResult, Simulator

NODE = Node("n1", Resources(8.0, 65536, 1, 81920))
ONE_GPU = Resources(4.0, 16384, 1, 0)


def one_job(
    limit: float, *, requeue: bool = False, max_requeues: int = 10, runtime: float = 100.0
) -> Workload:
    job = Job("j", ONE_GPU, 0.0, runtime, runtime, time_limit_s=limit,
              requeue_on_timeout=requeue, max_requeues=max_requeues)  # fmt: skip
    return Workload("one", [job], [NODE])


def simulate(wl: Workload, **options: float) -> SimResult:
    return Simulator(wl, **options).run(make_policy("fifo"))


def test_a_job_past_its_limit_ends_timed_out_at_the_limit() -> None:
    result = simulate(one_job(60.0))
    assert result.finished == [] and result.unfinished == []
    [record] = result.timed_out
    assert (record.id, record.start_s, record.end_s, record.attempts) == ("j", 0.0, 60.0, 1)
    [attempt] = result.attempts
    assert attempt.timed_out and not attempt.completed and attempt.end_s == 60.0
    m = compute_metrics(result)
    assert (m["timed_out"], m["requeues"], m["finished"], m["lost_attempts"]) == (1, 0, 0, 0)
    assert m["timed_out_gpu_hours"] == pytest.approx(60.0 / 3600)
    assert m["timed_out_cpu_hours"] == pytest.approx(4 * 60.0 / 3600)
    assert m["makespan"] == 60.0


def test_a_job_within_its_limit_completes_even_at_the_limit() -> None:
    result = simulate(one_job(100.0))
    assert [(r.id, r.end_s) for r in result.finished] == [("j", 100.0)]
    assert compute_metrics(result)["timed_out"] == 0


@pytest.mark.parametrize(
    ("overhead", "limit", "end"),
    [
        (10.0, 60.0, 60.0 + (100.0 - 60.0 + 10.0)),  # resumes at 60 with 50 s left
        (None, 90.0, 90.0 + (100.0 - 90.0 + 60.0)),  # the default overhead, 60 s
    ],
)
def test_a_requeued_job_resumes_from_its_checkpoint(
    overhead: float | None, limit: float, end: float
) -> None:
    options = {} if overhead is None else {"restart_overhead_s": overhead}
    result = simulate(one_job(limit, requeue=True), **options)
    [record] = result.finished
    assert record.end_s == pytest.approx(end) and record.start_s == limit
    assert record.attempts == 2 and result.timed_out == []
    m = compute_metrics(result)
    assert (m["timed_out"], m["requeues"], m["finished"]) == (0, 1, 1)
    assert [(a.start_s, a.end_s, a.timed_out) for a in result.attempts] == [
        (0.0, limit, True), (limit, pytest.approx(end), False),
    ]  # fmt: skip


def test_max_requeues_is_respected() -> None:
    result = simulate(one_job(60.0, requeue=True, max_requeues=3, runtime=1000.0),
                      restart_overhead_s=0.0)  # fmt: skip
    [record] = result.timed_out
    assert record.attempts == 4 and record.end_s == 240.0 and result.finished == []
    assert [a.end_s for a in result.attempts] == [60.0, 120.0, 180.0, 240.0]
    m = compute_metrics(result)
    assert (m["timed_out"], m["requeues"]) == (1, 3)
    assert m["timed_out_gpu_hours"] == pytest.approx(240.0 / 3600)


def test_no_requeues_allowed_ends_it_at_the_first_limit() -> None:
    result = simulate(one_job(60.0, requeue=True, max_requeues=0))
    assert [r.end_s for r in result.timed_out] == [60.0]


def test_an_attempt_lost_to_an_outage_resumes_from_the_last_checkpoint() -> None:
    # killed at 60 with 40 s left; the second attempt (60..) is lost at 80: 40 s again from 90
    wl = one_job(60.0, requeue=True)
    result = Simulator(wl, [NodeOutage("n1", 80.0, 10.0)], restart_overhead_s=0.0).run(
        make_policy("fifo")
    )
    [record] = result.finished
    assert record.end_s == 130.0 and record.attempts == 3
    m = compute_metrics(result)
    assert (m["requeues"], m["lost_attempts"], m["timed_out"]) == (1, 1, 0)


def test_policies_see_a_running_job_end_by_its_limit() -> None:
    wl = one_job(60.0)
    sim = Simulator(wl)
    sim.next_decision()
    sim.step(make_policy("fifo"))
    [running] = sim.view().running
    assert running.est_end == 60.0  # its estimate is 100 s, its limit 60 s


def test_policies_see_a_requeued_attempt_end_when_its_work_left_does() -> None:
    # exact estimates (100 s), killed at 60 and requeued: the second attempt has 40 s + 10 s
    # of reloading left, so it ends at 60 + 50, not at its limit (60 + 60)
    job = Job("j", ONE_GPU, 0.0, 100.0, 100.0, time_limit_s=60.0, requeue_on_timeout=True)
    wl = Workload("one", [job], [NODE], estimate_exact=True)
    sim = Simulator(wl, restart_overhead_s=10.0)
    policy = make_policy("fifo")
    ends = []
    while sim.next_decision():
        sim.step(policy)
        ends += [r.est_end for r in sim.view().running]
    assert ends == [60.0, 110.0]
    [record] = sim.result().finished
    assert record.end_s == 110.0
