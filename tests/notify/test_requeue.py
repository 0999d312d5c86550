"""Requeue at the time limit, for real on the sshd test bed: a job that traps the warning signal
and SIGTERM is requeued with LEPTON_RESTART_COUNT, and resumes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from lepton_tui import notify
from lepton_tui.dispatch.hostpool import HostPool
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.service import Service
from tests.dispatch.helpers import add_bed_hosts, add_local_hosts, all_ended, tick_until

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


def _script(out: Path, finish_on: int | None) -> str:
    """Log start, USR1 and TERM with the restart count; finish at once on restart `finish_on`."""
    lines = [
        f'echo "start $LEPTON_RESTART_COUNT" >> {out}',
        f"trap 'echo \"usr1 $LEPTON_RESTART_COUNT\" >> {out}' USR1",
        f"trap 'echo \"term $LEPTON_RESTART_COUNT\" >> {out}; exit 0' TERM",
    ]
    if finish_on is not None:
        lines.append(f'if [ "$LEPTON_RESTART_COUNT" = {finish_on} ]; then exit 0; fi')
    lines.append("for i in $(seq 300); do sleep 0.1; done")
    return "\n".join(lines)


@pytest.fixture
def bed(svc: Service, sshbed, tmp_path: Path):
    add_bed_hosts(svc, sshbed(1), root=tmp_path / "roots", cpus=4)
    d = Dispatcher(svc, pool=HostPool(svc.known_hosts, backoff_max=1.0), poll_timeout_s=10)
    assert d.acquire()
    yield d
    d.close()


def test_timeout_requeues_with_the_restart_count_then_finishes(
    svc: Service, bed: Dispatcher, tmp_path: Path
) -> None:
    out = tmp_path / "seen"
    job_id = svc.submit(
        command=_script(out, finish_on=1), time="3s", requeue_on_timeout=True,
        signal="USR1@1", notify_on="end,timeout",
    )  # fmt: skip
    svc.set_setting("notify_command", f"cat > /dev/null; echo $LEPTON_NOTIFY_EVENT >> {out}.told")
    tick_until(bed, lambda: all_ended(svc), timeout=90, pause=0.2)
    notify.pump(svc.ledger, "me")
    assert out.read_text().split("\n")[:4] == ["start 0", "usr1 0", "term 0", "start 1"]
    job = svc.show_job(job_id)
    assert job["state"] == "succeeded" and job["requeues"] == 1 and job["exit_code"] == 0
    assert [a["state"] for a in job["attempts"]] == ["timeout", "succeeded"]
    assert "requeued at its time limit (1 of 10)" in " ".join(e["message"] for e in job["events"])
    # one notification: its end; the requeue itself is not an ending
    assert Path(f"{out}.told").read_text().split() == ["end"]


def test_no_requeues_left_ends_in_timeout(svc: Service, bed: Dispatcher, tmp_path: Path) -> None:
    out = tmp_path / "seen"
    job_id = svc.submit(
        command=_script(out, finish_on=None), time="2s", requeue_on_timeout=True,
        max_requeues=1,
    )  # fmt: skip
    plain = svc.submit(command=_script(tmp_path / "plain", finish_on=None), time="2s")
    tick_until(bed, lambda: all_ended(svc), timeout=90, pause=0.2)
    job = svc.show_job(job_id)
    assert job["state"] == "timeout" and job["requeues"] == 1
    assert [a["state"] for a in job["attempts"]] == ["timeout", "timeout"]
    assert [line.split()[0] for line in out.read_text().splitlines()] == [
        "start", "term", "start", "term",
    ]  # fmt: skip
    assert "start 1" in out.read_text()
    other = svc.show_job(plain)  # without --requeue-on-timeout: one attempt, no restart count
    assert other["state"] == "timeout" and len(other["attempts"]) == 1
    assert (tmp_path / "plain").read_text().splitlines()[0] == "start "


def test_requeues_at_the_limit_spend_no_retry_of_a_lost_attempt(
    svc: Service, tmp_path: Path
) -> None:
    """A job requeued at its time limit, then lost (its wrapper killed, an OOM killer): the
    timed-out attempts are requeues, not retries; its one retry still requeues it."""
    add_local_hosts(svc, tmp_path, 1)
    d = Dispatcher(svc, tick_s=0.2)
    assert d.acquire()
    try:
        script = (
            f'echo "start $LEPTON_RESTART_COUNT" >> {tmp_path}/seen\n'
            f"if [ -e {tmp_path}/go ]; then exit 0; fi\n"
            "for i in $(seq 300); do sleep 0.1; done"
        )
        job_id = svc.submit(command=script, time="2s", requeue_on_timeout=True, retries=1)
        tick_until(d, lambda: svc.get_job(job_id)["requeues"] == 1, timeout=60, pause=0.2)
        tick_until(d, lambda: svc.get_job(job_id)["state"] == "running", timeout=30)
        attempt = svc.ledger.attempts_for(job_id)[-1]
        info = json.loads((Path(attempt["remote_dir"]) / "wrapper.json").read_text())
        (tmp_path / "go").touch()  # the next attempt ends at once
        os.kill(info["pid"], signal.SIGKILL)  # the wrapper dies: the attempt is lost
        tick_until(d, lambda: all_ended(svc), timeout=90, pause=0.2)
    finally:
        d.close()
    job = svc.show_job(job_id)
    assert [a["state"] for a in job["attempts"]] == ["timeout", "lost", "succeeded"], job["reason"]
    assert job["state"] == "succeeded" and job["requeues"] == 1
    assert (tmp_path / "seen").read_text().split("\n")[:3] == ["start 0", "start 1", "start 1"]
