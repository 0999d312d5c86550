"""The console fits its terminal: the queue's columns adapt to the width (80x24 to 200x50)."""

from __future__ import annotations

from pathlib import Path

from lepton_tui.service import Service
from lepton_tui.widgets.fit import clip
from lepton_tui.widgets.queue import COLUMNS, DROP_ORDER, WHY_MIN, QueueTable, fit_queue_columns
from tests.tui.conftest import loaded, settled, wait_for
from tests.tui.data import FIXED_NOW, USER

# Longer than the old 60-character cut, short enough for a 200-column screen.
LONG_REASON = "unschedulable: fits no host (needs 4 GPUs, the most on an active host is 2)"


def set_reason(home: Path, job_id: int, reason: str) -> None:
    svc = Service.open(home, user=USER, clock=lambda: FIXED_NOW)
    svc.ledger.set_job_reason(job_id, reason)
    svc.close()


def why_cell(table: QueueTable, job_id: int) -> str:
    column = list(table.layout_widths).index("why")
    return table.get_row(str(job_id))[column].plain


def fills_without_scrolling(table: QueueTable) -> bool:
    """The columns use the table's whole width and not one cell more."""
    used = sum(c.get_render_width(table) for c in table.columns.values())
    return used == table.room() and table.max_scroll_x == 0


def test_fit_keeps_why_waiting_and_drops_the_least_useful_first() -> None:
    natural = {key: len(label) + 4 for key, label in COLUMNS}
    wide = fit_queue_columns(natural, 300)
    assert list(wide) == [key for key, _ in COLUMNS]
    assert wide["why"] == 300 - sum(w + 2 for k, w in wide.items() if k != "why") - 2
    narrow = fit_queue_columns(natural, 51)
    assert "id" in narrow and narrow["why"] >= WHY_MIN
    dropped = [key for key in DROP_ORDER if key not in narrow]
    assert dropped == list(DROP_ORDER[: len(dropped)])  # in order, the least useful first
    assert sum(w + 2 for w in narrow.values()) <= 51
    tiny = fit_queue_columns(natural, 10)
    assert list(tiny) == ["id", "why"]


def test_a_cut_cell_ends_with_an_ellipsis() -> None:
    assert clip("python train.py", 8).plain == "python …"
    assert clip("short", 8) == "short"


async def test_queue_at_80x24_shows_age_and_why_waiting(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await settled(pilot)
        table = app.screen.query_one(QueueTable)
        assert {"id", "age", "why"} <= set(table.layout_widths)
        assert fills_without_scrolling(table)
        assert why_cell(table, 5).startswith("waiting: 4 GPUs")


async def test_queue_at_200x50_shows_whole_reasons(make_tui, lab: Path) -> None:
    set_reason(lab, 5, LONG_REASON)
    app = make_tui()
    async with app.run_test(size=(200, 50)) as pilot:
        await loaded(pilot)
        await settled(pilot)
        table = app.screen.query_one(QueueTable)
        assert list(table.layout_widths) == [key for key, _ in COLUMNS]  # every column
        assert len(LONG_REASON) > 60
        assert why_cell(table, 5) == LONG_REASON
        assert fills_without_scrolling(table)


async def test_queue_columns_follow_a_resize(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(200, 50)) as pilot:
        await loaded(pilot)
        await settled(pilot)
        table = app.screen.query_one(QueueTable)
        table.move_cursor(row=table.get_row_index("5"))
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: "project" not in table.layout_widths)
        await settled(pilot)
        assert fills_without_scrolling(table)
        assert table.selected_job == 5  # the highlighted job stays highlighted
        await pilot.resize_terminal(200, 50)
        await wait_for(pilot, lambda: "project" in table.layout_widths)
        await settled(pilot)
        assert fills_without_scrolling(table)
        assert table.selected_job == 5


async def test_fleet_fits_80_columns_and_shows_everything_at_200(make_tui, lab: Path) -> None:
    from lepton_tui.widgets.fleet import COLUMNS as FLEET_COLUMNS
    from lepton_tui.widgets.fleet import FleetTable

    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await settled(pilot)
        fleet = app.screen.query_one(FleetTable)
        assert {"host", "state", "cpu", "mem", "gpus"} <= set(fleet.layout_widths)
        assert "spark" not in fleet.layout_widths  # the first to go
        used = sum(c.get_render_width(fleet) for c in fleet.columns.values())
        assert used <= fleet.room() and fleet.max_scroll_x == 0
        await pilot.resize_terminal(200, 50)
        await wait_for(pilot, lambda: "spark" in fleet.layout_widths)
        await settled(pilot)
        assert list(fleet.layout_widths) == [key for key, _ in FLEET_COLUMNS]
        assert fleet.max_scroll_x == 0


async def test_fleet_narrows_its_bars_before_leaving_columns_out(make_tui, lab: Path) -> None:
    from lepton_tui.widgets.fleet import COLUMNS as FLEET_COLUMNS
    from lepton_tui.widgets.fleet import FleetTable

    app = make_tui()
    async with app.run_test(size=(110, 30)) as pilot:
        await loaded(pilot)
        await settled(pilot)
        fleet = app.screen.query_one(FleetTable)
        assert list(fleet.layout_widths) == [key for key, _ in FLEET_COLUMNS]
        assert fleet.max_scroll_x == 0


async def test_queue_screen_fits_80_columns(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("3")
        await wait_for(pilot, lambda: app.screen.id == "queue")
        await loaded(pilot)
        await settled(pilot)
        table = app.screen.query_one(QueueTable)
        assert {"id", "state", "age", "why"} <= set(table.layout_widths)
        assert fills_without_scrolling(table)


# -- numbers are never cut ------------------------------------------------------------------------


def drawn(widget) -> str:
    """What `widget` shows on screen now (border included), as plain lines."""
    from textual.geometry import Region

    size = widget.region.size
    lines = widget.render_lines(Region(0, 0, size.width, size.height))
    return "\n".join(strip.text for strip in lines)


def test_fit_table_drops_the_share_before_cutting_an_amount() -> None:
    from rich.console import Console

    from lepton_tui.widgets.fit import FitTable

    table = FitTable(
        [("alice", "$1,234", "50%"), ("a-rather-long-project", "$15.93", "4%")],
        headers=("project", "spent", "share"),
        optional=(2,),
        gap=2,
    )
    for width in (40, 20, 16, 12):
        console = Console(width=width, color_system=None)
        with console.capture() as capture:
            console.print(table)
        text = capture.get()
        assert "$1,234" in text and "$15.93" in text, (width, text)
        assert max(len(line) for line in text.splitlines()) <= width
        assert ("share" in text) == (width >= 20)


async def test_cost_screen_at_60x20_shows_whole_amounts(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(60, 20)) as pilot:
        await loaded(pilot)
        await pilot.press("4")
        await wait_for(pilot, lambda: app.screen.id == "cost-screen")
        await loaded(pilot)
        await pilot.pause()
        summary = drawn(app.screen.query_one("#cost-summary"))
        for amount in ("$13.00/h", "$28.39", "$30.39", "$0.00/h", "$140"):
            assert amount in summary, summary
        assert "This month" in summary  # the labels fit too
        for panel, names in (("#cost-users", ("bob", "alice")), ("#cost-projects", ("nlp",))):
            text = drawn(app.screen.query_one(panel))
            assert "$15.93" in text and "$13.97" in text and "$0.49" in text, text
            assert all(name in text for name in names)
        assert "…" not in "".join(
            word for word in summary.split() if word.startswith("$")
        )  # no amount ends in an ellipsis
        header = drawn(app.screen.query_one("#lab-header"))
        assert "3 running, 3 queued" in header and "$13.00/h" in header, header


async def test_header_leaves_out_whole_parts_when_narrow(make_tui, lab: Path) -> None:
    app = make_tui()
    async with app.run_test(size=(200, 20)) as pilot:
        await loaded(pilot)
        header = app.screen.query_one("#lab-header")
        assert "policy auto" in drawn(header) and "vision-lab" in drawn(header)
        await pilot.resize_terminal(52, 20)
        await wait_for(pilot, lambda: header.size.width == 52)
        await pilot.pause()
        text = drawn(header)
        assert "3 running, 3 queued" in text and "$13.00/h" in text, text
        assert "…" not in text


async def test_scheduler_decisions_fit_and_a_row_still_explains_its_job(
    make_tui, lab: Path
) -> None:
    from textual.widgets import Static

    from lepton_tui.screens.scheduler import DecisionsTable
    from tests.tui.conftest import text_of

    explanation = "not placed: " + "the fleet is busy and this job waits its turn, " * 3
    svc = Service.open(lab, user=USER, clock=lambda: FIXED_NOW)
    with svc.ledger.tx():
        svc.ledger.insert("decisions", {"at": FIXED_NOW, "policy": "backfill", "job_id": 4,
                                        "host": None, "placed": 0, "explanation": explanation})  # fmt: skip
    svc.close()
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("5")
        await wait_for(pilot, lambda: app.screen.id == "scheduler")
        await loaded(pilot)
        await settled(pilot)
        table = app.screen.query_one(DecisionsTable)
        assert set(table.layout_widths) >= {"job", "why"}
        assert table.max_scroll_x == 0
        newest = table.get_row_at(0)
        assert newest[-1].plain.endswith("…")  # cut to the width, and said so
        await pilot.resize_terminal(200, 50)
        await wait_for(pilot, lambda: table.get_row_at(0)[-1] == explanation)  # whole
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("enter")
        why = app.screen.query_one("#why", Static)
        await wait_for(pilot, lambda: "job 4" in text_of(why))
