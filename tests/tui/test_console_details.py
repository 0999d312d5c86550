"""Console details: money in the lab's currency, focus after the queue filter, the scheduler's
why-lines, the submit form's empty fields and wording, a console without write access to the
state directory, and the queue's GPU ids column."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from lepton_tui import views
from lepton_tui.screens.addhost import AddHostModal
from lepton_tui.screens.job import JobScreen
from lepton_tui.screens.overview import QueueFilter
from lepton_tui.screens.submit import SubmitJobModal
from lepton_tui.service import Service
from lepton_tui.widgets.bars import money
from lepton_tui.widgets.fleet import FleetTable
from lepton_tui.widgets.header import LabHeader
from lepton_tui.widgets.queue import QueueTable
from tests.tui.conftest import loaded, open_modal, text_of, wait_for
from tests.tui.data import FIXED_NOW, USER


def set_currency(home: Path, code: str) -> None:
    """What `lepton-tui price set --currency CODE` stores."""
    from lepton_tui.economics.prices import set_currency as store

    svc = Service.open(home, user=USER, clock=lambda: FIXED_NOW)
    store(svc.ledger, code, actor=USER)
    svc.close()


# -- 1. money in the lab's currency ------------------------------------------------------------


def test_money_uses_the_currency() -> None:
    assert money(2, "USD") == "$2.00"
    assert money(1234.5, "EUR") == "€1,234"
    assert money(-3.5, "GBP") == "-£3.50"
    assert money(2, "CHF") == "CHF 2.00"
    assert money(140, "SEK") == "SEK 140"


async def test_console_shows_the_lab_currency(make_tui, lab: Path) -> None:
    set_currency(lab, "eur")
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        # the header, the cost panel and the fleet's price column
        assert "€13.00/h" in text_of(app.screen.query_one(LabHeader))
        cost = text_of(app.screen.query_one("#cost", Static))
        assert "€13.00/h" in cost and "€28.39" in cost and "$" not in cost
        fleet = app.screen.query_one(FleetTable)
        assert fleet.get_row("gpu-a")[-1].plain == "€4.00"
        assert [c.label.plain for c in fleet.columns.values()][-1] == "€/h"
        # the hosts screen's details
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen.id == "hosts")
        await loaded(pilot)
        hosts = app.screen.query_one(FleetTable)
        hosts.move_cursor(row=hosts.get_row_index("gpu-a"))
        details = app.screen.query_one("#host-details", Static)
        await wait_for(pilot, lambda: "gpu-a" in text_of(details))
        assert "€4.00/h" in text_of(details) and "$" not in text_of(details)
        # the cost screen
        await pilot.press("4")
        await wait_for(pilot, lambda: app.screen.id == "cost-screen")
        await loaded(pilot)
        for pane in ("#cost-summary", "#cost-users", "#cost-projects"):
            text = text_of(app.screen.query_one(pane, Static))
            assert "€" in text and "$" not in text, (pane, text)
        chart = app.screen.query_one("#cost-chart")
        assert "€" in chart.border_title and "$" not in chart.border_title
        # the add-host form's price label
        await open_modal(pilot, "a", AddHostModal)
        assert "Price €/h" in str(app.screen.query_one("#row-price Label").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, AddHostModal))
        # a job's attempts (job 7 ran one hour on half of gpu-a at 4/h)
        app.open_job(7)
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        await loaded(pilot)
        attempts = text_of(app.screen.query_one("#job-attempts", Static))
        assert "€2.00" in attempts and "$" not in attempts


async def test_a_currency_without_symbol_is_written_as_its_code(make_tui, lab: Path) -> None:
    set_currency(lab, "CHF")
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert "CHF 13.00/h" in text_of(app.screen.query_one("#cost", Static))
        fleet = app.screen.query_one(FleetTable)
        assert fleet.get_row("gpu-b")[-1].plain == "CHF 8.00"
        assert [c.label.plain for c in fleet.columns.values()][-1] == "CHF/h"


# -- 2. focus and escape around the queue filter ------------------------------------------------


async def test_escape_in_the_filter_returns_to_the_queue(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(QueueTable)
        assert app.focused is table
        await pilot.press("slash")
        assert isinstance(app.focused, QueueFilter)
        await pilot.press("escape")
        assert app.focused is table  # not the fleet table (focus_next wrapped there)
        assert not app.screen.query_one(QueueFilter).display
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        assert app.screen.job_id == 1  # the highlighted job


async def test_escape_in_the_queue_clears_a_kept_filter(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(QueueTable)
        await pilot.press("slash", *"bob", "enter")  # enter keeps the filter, back in the queue
        await wait_for(pilot, lambda: set(table.rows) == {"2", "5"})
        assert app.focused is table
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == 6)
        assert app.screen.text == ""
        assert "filter" not in app.screen.query_one("#queue-panel").border_title
        assert app.focused is table
        # the queue screen: the first escape clears the filter, the next one goes back
        await pilot.press("3")
        await wait_for(pilot, lambda: app.screen.id == "queue")
        await loaded(pilot)
        q = app.screen.query_one(QueueTable)
        await pilot.press("slash", *"bob", "enter")
        await wait_for(pilot, lambda: set(q.rows) == {"2", "5"})
        await pilot.press("escape")
        await wait_for(pilot, lambda: q.row_count == 6)
        assert app.screen.id == "queue" and app.focused is q
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.id == "overview")


# -- 3. why a job waits, in one clean line -----------------------------------------------------


def test_why_line_says_the_job_once_and_no_none(lab: Path) -> None:
    svc = Service.open(lab, user=USER, clock=lambda: FIXED_NOW)
    try:
        with svc.ledger.tx():  # the dispatcher records reasons outside any policy with no name
            svc.ledger.insert("decisions", {"at": FIXED_NOW, "policy": None, "job_id": 5,
                                            "host": None, "placed": 0,
                                            "explanation": "unschedulable: 4 GPUs"})  # fmt: skip
        assert views.why_line(svc.ledger, 5) == "job 5: unschedulable: 4 GPUs"
        assert views.why_pending(svc.ledger, 5) == "unschedulable: 4 GPUs"
        assert views.why_line(svc.ledger, 999) == "job 999 does not exist"
        assert views.why_line(svc.ledger, 1) == "job 1 is running, not pending"
    finally:
        svc.close()


async def test_scheduler_why_has_no_none_and_no_repeat(make_tui, lab: Path) -> None:
    svc = Service.open(lab, user=USER, clock=lambda: FIXED_NOW)
    with svc.ledger.tx():
        svc.ledger.insert("decisions", {"at": FIXED_NOW, "policy": None, "job_id": 5,
                                        "host": None, "placed": 0,
                                        "explanation": "unschedulable: asks 4 GPUs"})  # fmt: skip
    svc.close()
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await pilot.press("5")
        await wait_for(pilot, lambda: app.screen.id == "scheduler")
        await loaded(pilot)
        why = app.screen.query_one("#why", Static)
        await pilot.press("w", "5", "enter")
        await wait_for(pilot, lambda: "job 5" in text_of(why))
        assert text_of(why).strip() == "job 5: unschedulable: asks 4 GPUs"
        app.screen.query_one("#why-job", Input).value = ""
        await pilot.press("9", "9", "9", "enter")
        await wait_for(pilot, lambda: "999" in text_of(why))
        assert text_of(why).strip() == "job 999 does not exist"


# -- 4. the submit form ------------------------------------------------------------------------


async def test_submit_form_empty_fields_mean_their_defaults(make_tui, home: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        modal = await open_modal(pilot, "s", SubmitJobModal)
        await pilot.press("ctrl+s")  # nothing typed: say what to do here, not on a command line
        await pilot.pause()
        error = str(modal.query_one("#err-command", Static).render())
        assert "command is empty" in error and "type" in error and "after --" not in error
        for fid in ("cpus", "mem", "gpus", "priority", "time", "project"):
            modal.query_one(f"#f-{fid}", Input).value = ""
        await pilot.pause()
        for fid in ("cpus", "mem", "gpus", "priority"):
            assert not modal.query_one(f"#err-{fid}", Static).display, fid
        modal.query_one("#f-command", Input).value = "python train.py"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SubmitJobModal))
    svc = Service.open(home, user=USER)
    jobs = svc.list_jobs()
    svc.close()
    assert [(j["cpus"], j["mem_mb"], j["gpus"], j["priority"], j["time_limit_s"], j["project"])
            for j in jobs] == [(1.0, 1024, 0, 0, None, "default")]  # fmt: skip


async def test_form_errors_show_brackets_as_typed(make_tui, home: Path) -> None:
    """An error quoting what was typed (`[/]` in CPUs, `[b]x` as project) is text, not markup:
    it used to crash the console with a MarkupError, or apply the markup."""
    app = make_tui()
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot)
        modal = await open_modal(pilot, "s", SubmitJobModal)
        modal.query_one("#f-cpus", Input).value = "[/]"
        modal.query_one("#f-project", Input).value = "[b]x"
        await pilot.pause()
        assert "[/]" in str(modal.query_one("#err-cpus", Static).render())
        assert "[b]x" in str(modal.query_one("#err-project", Static).render())
        await pilot.press("escape")
        await open_modal(pilot, "a", AddHostModal)
        app.screen.query_one("#f-name", Input).value = "[/x]"
        await pilot.pause()
        assert "[/x]" in str(app.screen.query_one("#err-name", Static).render())


# -- 5. a console that cannot take the dispatcher lock -----------------------------------------


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS])
async def test_no_write_access_says_the_console_only_shows(
    make_tui, lab: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    from lepton_tui.dispatch.lock import DispatcherLock

    lock = str(lab / "dispatcher.lock")

    def refused(self) -> bool:
        raise PermissionError(code, "Permission denied", lock)

    monkeypatch.setattr(DispatcherLock, "acquire", refused)
    app = make_tui(dispatch=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await wait_for(pilot, lambda: bool(app._notifications))
        message = next(iter(app._notifications)).message
        assert "\n" not in message and "Errno" not in message
        assert "only shows" in message and "dispatcher lock" in message
        assert lock in message and "lepton-tui serve" in message
        assert app.dispatch_note == message
        assert app.dispatcher_handle is None


# -- 6. the queue's GPU column ----------------------------------------------------------------


async def test_queue_gpu_column_is_named_for_ids(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(200, 50)) as pilot:
        await loaded(pilot)
        table = app.screen.query_one(QueueTable)
        labels = {str(k.value): c.label.plain for k, c in table.columns.items()}
        assert labels["gpus"] == "GPU ids"
        cells = dict(zip(labels, table.get_row("1"), strict=True))
        assert cells["gpus"] == "0,1"  # job 1 holds GPUs 0 and 1 of gpu-a
        assert cells["request"] == "8c 32G 2gpu"  # the count is in the request
