"""`lepton-tui train --from-ledger`: the lab's own finished jobs become a training workload."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lepton_tui.cli import cli
from lepton_tui.cli.train import ledger_workload
from lepton_tui.service import Service


def _history(home, jobs: int) -> None:
    svc = Service.open(str(home))
    try:
        svc.add_host(
            "gpu-a",
            local=True,
            capacity={"cpus": 16, "mem_mb": 65536, "gpus": 2, "gpu_mem_mb": 2 * 40960},
        )
        led = svc.ledger
        for k in range(jobs):
            job_id = svc.submit(command="true", cpus=2, mem="4G", gpus=k % 2, time="1h")
            token = f"t{k}"
            led.start_attempt(job_id, "gpu-a", token, [0] if k % 2 else [])
            led.transition_attempt(token, "running", job_state="running", started_at=100.0 + k)
            led.transition_attempt(
                token,
                "succeeded",
                job_state="succeeded",
                exit_code=0,
                ended_at=100.0 + k + 30.0 * (k + 1),
            )
    finally:
        svc.close()


def test_ledger_history_becomes_a_workload(home):
    _history(home, 12)
    wl = ledger_workload(str(home))
    assert len(wl.jobs) == 12 and [n.id for n in wl.nodes] == ["gpu-a"]
    runtimes = sorted(j.runtime_s for j in wl.jobs)
    assert runtimes == pytest.approx([30.0 * (k + 1) for k in range(12)])
    assert {j.request.gpus for j in wl.jobs} == {0, 1}
    assert all(j.est_runtime_s == 3600.0 for j in wl.jobs)  # the time limit is the estimate


def test_a_job_without_time_limit_is_estimated_as_the_dispatcher_did(home):
    from lepton_tui.dispatch.view import DEFAULT_EST_RUNTIME_S

    _history(home, 12)
    svc = Service.open(home)
    try:
        job_id = svc.submit(command="true", cpus=1, mem="1G")  # no --time
        led = svc.ledger
        led.start_attempt(job_id, "gpu-a", "free", [])
        led.transition_attempt("free", "running", job_state="running", started_at=500.0)
        led.transition_attempt(
            "free", "succeeded", job_state="succeeded", exit_code=0, ended_at=545.0
        )
    finally:
        svc.close()
    job = next(j for j in ledger_workload(str(home)).jobs if j.id == job_id)
    # the real runtime is what happened; the estimate is what the scheduler could know
    assert job.runtime_s == pytest.approx(45.0)
    assert job.est_runtime_s == DEFAULT_EST_RUNTIME_S


def test_from_ledger_needs_enough_history(home, tmp_path):
    _history(home, 3)
    res = CliRunner().invoke(
        cli, ["train", "--from-ledger", "--steps", "100", "--out", str(tmp_path / "w.npz")]
    )
    assert res.exit_code == 1 and "only 3 finished jobs" in res.output
    assert not (tmp_path / "w.npz").exists()


def test_train_from_ledger_writes_weights(home, tmp_path):
    import json

    pytest.importorskip("torch")
    _history(home, 12)
    out = tmp_path / "w.npz"
    res = CliRunner().invoke(cli, ["train", "--from-ledger", "--steps", "300", "--out", str(out)])
    assert res.exit_code == 0, res.output
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["data"] == {"ledger": True, "jobs": 12, "nodes": 1}
