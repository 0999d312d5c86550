"""A short seeded chaos run (bench/chaos.py): a job stream through the three loopback sshd
hosts while the dispatcher is killed and stopped, sshd goes away for less and more than the
grace, sessions are cut, wrappers and jobs are killed, jobs are cancelled and launch answers
are lost; then every invariant holds (the long run's figures are in docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from bench.chaos import PARENT_FAULTS, ChaosConfig, run
from tests.sshbed import find_sshd

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


def test_a_short_chaos_run_keeps_every_invariant(tmp_path):
    if find_sshd() is None:
        pytest.skip("sshd is missing: install Debian's openssh-server")
    cfg = ChaosConfig(seed=7, duration_s=35.0, jobs=40, grace_s=3.0, lose_p=0.2, drain_s=90.0)
    report = run(cfg, tmp_path / "chaos", say=lambda line: None)
    assert report.violations == []
    assert report.jobs == 40 and set(report.states) <= {"succeeded", "failed", "cancelled"}
    # every kind of fault struck at least once (a shuffled round of them), answers were lost
    assert all(report.faults.get(kind, 0) >= 1 for kind in PARENT_FAULTS), report.faults
    assert report.faults["lost_answer"] >= 1
