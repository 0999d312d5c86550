"""`lepton-tui logs` as a user runs it: stdout as the job wrote it, and a hint when stderr has more."""

from __future__ import annotations

from pathlib import Path

from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.service import Service
from tests.clirun import lepton
from tests.dispatch.helpers import add_local_hosts, all_ended, tick_until


def _run_jobs(svc: Service, tmp_path: Path, commands: list[str]) -> list[int]:
    add_local_hosts(svc, tmp_path, 1)
    ids = [svc.submit(command=c) for c in commands]
    d = Dispatcher(svc)
    assert d.acquire()
    try:
        tick_until(d, lambda: all_ended(svc), timeout=30)
    finally:
        d.close()
    return ids


def test_logs_hints_at_a_non_empty_stderr(svc: Service, home: Path, tmp_path: Path) -> None:
    noisy, quiet = _run_jobs(
        svc, tmp_path, ["echo result; echo 'Traceback: boom' >&2; exit 1", "echo fine"]
    )
    res = lepton(home, "logs", str(noisy))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "result\n"  # the job's bytes only, for pipes
    assert res.stderr == f"stderr has 16 bytes: logs {noisy} --stderr\n"
    res = lepton(home, "logs", str(noisy), "--attempt", "1")
    assert res.stderr == f"stderr has 16 bytes: logs {noisy} --stderr --attempt 1\n"
    res = lepton(home, "logs", str(noisy), "--stderr")
    assert (res.stdout, res.stderr) == ("Traceback: boom\n", "")
    res = lepton(home, "logs", str(quiet))
    assert (res.returncode, res.stdout, res.stderr) == (0, "fine\n", "")


def test_logs_of_a_job_that_ended_before_it_started(svc: Service, home: Path) -> None:
    """A job cancelled while queued never had a log: no hint to wait for one with -f, and -f
    says the same at once rather than waiting."""
    job = svc.submit(command="echo never")
    svc.cancel([job])
    waiting = svc.submit(command="echo later")
    for args in ((), ("-f",)):
        res = lepton(home, "logs", str(job), *args)
        assert res.returncode == 1 and res.stdout == ""
        assert res.stderr == (
            f"lepton-tui: error: job {job} has no log: it ended (cancelled) before it started\n"
        )
    res = lepton(home, "logs", str(waiting))
    assert "it has not started (queued) (follow it with -f to wait for it)" in res.stderr
