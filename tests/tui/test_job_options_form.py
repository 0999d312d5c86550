"""The console's side of notifications, requeue at the time limit and interactive jobs: the
submit form takes `submit`'s --notify-on, --requeue-on-timeout, --max-requeues and --signal, and
the queue marks `lepton-tui shell` jobs `[shell]` as `lepton-tui queue` does."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Checkbox, Input, Static

from lepton_tui.screens.submit import SubmitJobModal
from lepton_tui.service import Service
from lepton_tui.widgets.queue import QueueTable
from tests.tui.conftest import loaded, open_modal, wait_for
from tests.tui.data import USER


def _jobs(home: Path) -> list[dict]:
    svc = Service.open(home, user=USER)
    rows = [dict(r) for r in svc.ledger.query("SELECT * FROM jobs ORDER BY id")]
    svc.close()
    return rows


def _error(modal: SubmitJobModal, fid: str) -> str:
    label = modal.query_one(f"#err-{fid}", Static)
    return str(label.render()) if label.display else ""


async def test_submit_form_sets_notify_requeue_and_signal(make_tui, home: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 40)) as pilot:
        await loaded(pilot)
        modal = await open_modal(pilot, "s", SubmitJobModal)
        await pilot.press(*"python train.py --resume")
        modal.query_one("#f-time", Input).value = "2h"
        modal.query_one("#f-notify_on", Input).value = "fail, timeout"
        modal.query_one("#f-requeue_on_timeout", Checkbox).value = True
        modal.query_one("#f-max_requeues", Input).value = "3"
        modal.query_one("#f-signal", Input).value = "usr1@120"
        await pilot.pause()
        for fid in ("notify_on", "requeue_on_timeout", "max_requeues", "signal"):
            assert _error(modal, fid) == "", fid
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SubmitJobModal))
    [job] = _jobs(home)
    assert (job["notify_on"], job["requeue_on_timeout"], job["max_requeues"], job["signal"],
            job["kind"], job["time_limit_s"]) == ("fail,timeout", 1, 3, "USR1@120", "batch",
                                                  7200.0)  # fmt: skip


async def test_submit_form_refuses_bad_job_options(make_tui, home: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 40)) as pilot:
        await loaded(pilot)
        modal = await open_modal(pilot, "s", SubmitJobModal)
        await pilot.press(*"python train.py")
        modal.query_one("#f-signal", Input).value = "KILL@5"
        modal.query_one("#f-notify_on", Input).value = "start"
        modal.query_one("#f-max_requeues", Input).value = "2"
        await pilot.pause()
        assert "not SIGNAL@SECONDS" in _error(modal, "signal")
        assert "notify-on 'start' is not an event" in _error(modal, "notify_on")
        assert _error(modal, "max_requeues") == '"Max requeues" needs "Requeue"'
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SubmitJobModal)  # not submitted
        # a good signal, but no time limit to send it before
        modal.query_one("#f-signal", Input).value = "USR1@120"
        modal.query_one("#f-notify_on", Input).value = "end"
        modal.query_one("#f-max_requeues", Input).value = ""
        modal.query_one("#f-requeue_on_timeout", Checkbox).value = True
        await pilot.pause()
        assert 'give "Time limit" too' in _error(modal, "signal")
        assert "needs a time limit" in _error(modal, "requeue_on_timeout")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SubmitJobModal)
        # a time limit shorter than the signal's lead
        modal.query_one("#f-time", Input).value = "1m"
        await pilot.pause()
        assert 'not within "Time limit"' in _error(modal, "signal")
        assert _error(modal, "requeue_on_timeout") == ""
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SubmitJobModal)
    assert _jobs(home) == []  # nothing queued


async def test_notify_none_turns_off_the_users_default(make_tui, home: Path) -> None:
    svc = Service.open(home, user=USER)
    svc.set_notify_prefs(notify_on="end,fail")
    svc.close()
    app = make_tui()
    async with app.run_test(size=(80, 40)) as pilot:
        await loaded(pilot)
        for notify in ("", "none"):
            modal = await open_modal(pilot, "s", SubmitJobModal)
            await pilot.press(*"true")
            modal.query_one("#f-notify_on", Input).value = notify
            await pilot.pause()
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: not isinstance(app.screen, SubmitJobModal))
    assert [j["notify_on"] for j in _jobs(home)] == ["end,fail", None]


async def test_queue_marks_interactive_jobs(make_tui, lab: Path) -> None:
    svc = Service.open(lab, user=USER)
    shell = svc.submit(command="bash -l", kind="interactive", time="2h")
    batch = svc.submit(command="python batch.py")
    svc.close()
    app = make_tui()
    async with app.run_test(size=(160, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        await wait_for(pilot, lambda: app.screen.id == "queue")
        await loaded(pilot)
        table = app.screen.query_one(QueueTable)
        keys = {str(shell), str(batch)}
        await wait_for(pilot, lambda: keys <= {k.value for k in table.rows})
        assert str(table.get_row(str(shell))[-1]).startswith("[shell] ")
        assert "[shell]" not in str(table.get_row(str(batch))[-1])


def test_form_words_leave_the_users_own_quoted_value_alone() -> None:
    """The options a message names become the form's labels; a value the user typed, quoted in
    the message, stays as typed even when it looks like an option."""
    from lepton_tui.screens.submit import form_words

    assert form_words("mem '--time' is not a size; give --time too") == (
        "mem '--time' is not a size; give \"Time limit\" too"
    )
    assert (
        form_words('project "--gpus x\'" is not allowed') == 'project "--gpus x\'" is not allowed'
    )
