"""The job screen's log pane while a job has no attempt: waiting for one, or never to have one."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Log

from lepton_tui.screens.job import JobScreen
from lepton_tui.service import Service
from tests.tui.conftest import loaded, wait_for
from tests.tui.data import USER


async def test_log_pane_of_a_job_cancelled_before_it_started(make_tui, home: Path) -> None:
    """A queued job's pane promises a log; once it is cancelled unstarted it says there is none
    (the promise was left standing for a job that never runs)."""
    svc = Service.open(home, user=USER)
    try:
        job = svc.submit(command="echo never")
    finally:
        svc.close()
    app = make_tui(refresh_s=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        app.open_job(job, logs=True)
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        await loaded(pilot)
        log = app.screen.query_one("#job-log", Log)
        assert list(log.lines) == ["(the log appears here once the job starts)"]
        svc = Service.open(home, user=USER)
        try:
            svc.cancel([job])
        finally:
            svc.close()
        expected = ["(no log: the job ended (cancelled) before it started)"]
        await wait_for(pilot, lambda: list(log.lines) == expected)
