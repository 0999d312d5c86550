"""What a refresh costs the event loop: a view of the same shape lays nothing out, and only the
cells that changed are redrawn (issue 18: a key press during a refresh waited on the screen's
layout). Counted on the real app, with a real ledger: the screen's layouts (`Screen._on_layout`,
the `Layout` message a widget posts when its size may have changed, and `_refresh_layout`, the
compositor's reflow) and the tables' `update_cell` calls."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console
from rich.padding import Padding
from rich.text import Text
from textual.renderables.styled import Styled
from textual.screen import Screen
from textual.widgets import DataTable

from lepton_tui.service import Service
from lepton_tui.widgets.cost import CostSummary
from lepton_tui.widgets.fleet import FleetTable
from lepton_tui.widgets.header import LabHeader
from tests.tui.conftest import loaded, settled, text_of, wait_for
from tests.tui.data import FIXED_NOW, USER


class Layouts:
    """Which widgets asked the screen for a layout, and how many reflows the screen did."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.asked: Counter[str] = Counter()
        self.reflows = 0
        on_layout, refresh_layout = Screen._on_layout, Screen._refresh_layout

        async def counted_on_layout(screen, message) -> None:
            self.asked[f"{type(message.widget).__name__}#{message.widget.id}"] += 1
            await on_layout(screen, message)

        def counted_refresh_layout(screen, *args, **kwargs) -> None:
            self.reflows += 1
            refresh_layout(screen, *args, **kwargs)

        monkeypatch.setattr(Screen, "_on_layout", counted_on_layout)
        monkeypatch.setattr(Screen, "_refresh_layout", counted_refresh_layout)

    def clear(self) -> None:
        self.asked.clear()
        self.reflows = 0


class Cells:
    """The `update_cell` calls of every table: (table id, row key, column key)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str | None, str, str]] = []
        update_cell = DataTable.update_cell

        def counted(table, row_key, column_key, value, **kwargs) -> None:
            row, column = (getattr(k, "value", k) for k in (row_key, column_key))
            self.calls.append((table.id, row, column))
            update_cell(table, row_key, column_key, value, **kwargs)

        monkeypatch.setattr(DataTable, "update_cell", counted)


class Rendered:
    """The table cells rendered anew (DataTable renders each as `Styled(Padding(cell))`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cells: list[str] = []
        render_lines = Console.render_lines

        def counted(console, renderable, *args, **kwargs):
            if isinstance(renderable, Styled) and isinstance(renderable.renderable, Padding):
                cell = renderable.renderable.renderable
                self.cells.append(cell.plain if isinstance(cell, Text) else str(cell))
            return render_lines(console, renderable, *args, **kwargs)

        monkeypatch.setattr(Console, "render_lines", counted)


async def refreshed(pilot) -> None:
    """Read again now and wait until the data is shown and drawn."""
    screen = pilot.app.screen
    before = screen.loads
    screen.reload()
    await loaded(pilot, before + 1)
    await settled(pilot)


async def test_the_same_data_again_lays_nothing_out(
    lab: Path, make_tui, monkeypatch: pytest.MonkeyPatch
) -> None:
    layouts, cells = Layouts(monkeypatch), Cells(monkeypatch)
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await settled(pilot)
        await refreshed(pilot)  # anything the first data left to settle, settles here
        layouts.clear()
        cells.calls.clear()
        for _ in range(3):
            await refreshed(pilot)
        assert app.screen.loads >= 5
        assert not layouts.asked, layouts.asked  # the header and cost panel asked, every time
        assert layouts.reflows == 0
        assert cells.calls == []


async def test_new_amounts_repaint_without_a_layout(
    lab: Path, make_tui, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A minute later the amounts of money and the ages move, but nothing changes size."""
    layouts, cells, rendered = Layouts(monkeypatch), Cells(monkeypatch), Rendered(monkeypatch)
    now = [FIXED_NOW]
    app = make_tui(clock=lambda: now[0])
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await settled(pilot)
        cost = text_of(app.screen.query_one(CostSummary))
        layouts.clear()
        rendered.cells.clear()
        now[0] += 60
        await refreshed(pilot)
        assert text_of(app.screen.query_one(CostSummary)) != cost  # new amounts are shown
        assert ("queue-table", "1", "age") in cells.calls  # and new ages
        # only the cells that changed are rendered again (DataTable would render every cell)
        table = app.screen.query_one("#queue-table", DataTable)
        new = [(key, str(table.get_cell(key, "age"))) for _, key, column in cells.calls]
        assert {column for _, _, column in cells.calls} == {"age"}
        assert sorted(rendered.cells) == sorted(age for _, age in new)
        assert not layouts.asked, layouts.asked
        assert layouts.reflows == 0


async def test_a_drained_host_redraws_its_state_cell_only(
    lab: Path, make_tui, monkeypatch: pytest.MonkeyPatch
) -> None:
    layouts, cells, rendered = Layouts(monkeypatch), Cells(monkeypatch), Rendered(monkeypatch)
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await settled(pilot)
        layouts.clear()
        rendered.cells.clear()
        other = Service.open(lab, user=USER, clock=lambda: FIXED_NOW)  # another process's change
        try:
            other.set_draining("gpu-a", True)
        finally:
            other.close()
        await refreshed(pilot)
        table = app.screen.query_one(FleetTable)
        assert "draining" in str(table.get_cell("gpu-a", "state"))
        assert cells.calls == [("fleet-table", "gpu-a", "state")]
        # not the table's other cells (and gpu-b's "draining" may be reused for it: the same look)
        assert rendered.cells in ([], ["draining"])
        line = table.render_line(1 + table.get_row_index("gpu-a"))
        assert "draining" in line.text
        assert not layouts.asked, layouts.asked
        assert layouts.reflows == 0


async def test_a_header_that_keeps_its_height_is_repainted_not_laid_out(
    lab: Path, make_tui, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new alert in the header line is drawn without a layout; the same one again, not at all."""
    layouts = Layouts(monkeypatch)
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await settled(pilot)
        head = app.screen.query_one(LabHeader)
        layouts.clear()
        head.set_alert("lab service unreachable")
        await pilot.pause()
        assert "lab service unreachable" in text_of(head)
        assert not layouts.asked and layouts.reflows == 0
        content = head.content
        head.set_alert("lab service unreachable")
        assert head.content is content


async def test_a_wider_column_that_still_fits_is_repainted_not_laid_out(
    lab: Path, make_tui, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New column widths in the room there is change no size and no scrollbar: no layout. A new
    row in the fleet (whose height follows its rows) still lays the screen out."""
    layouts = Layouts(monkeypatch)
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await settled(pilot)
        table = app.screen.query_one(FleetTable)
        cells = list(table._cells)
        host, row = cells[0]
        wider = Text(row[0].plain + "-x" * 4, style=row[0].style)
        before = dict(table.layout_widths)
        layouts.clear()
        table.show_fitted([(host, (wider, *row[1:])), *cells[1:]])
        await settled(pilot)
        assert table.layout_widths["host"] > before["host"]
        assert table.virtual_size.width <= table.scrollable_content_region.width
        assert not layouts.asked and layouts.reflows == 0
        assert wider.plain in str(table.get_cell(host, "host"))

        height = table.size.height
        table.show_fitted([*cells, ("gpu-new", row)])
        await settled(pilot)
        assert layouts.asked["FleetTable#fleet-table"] >= 1
        assert table.size.height == height + 1


@pytest.mark.parametrize("name", ["queue", "hosts", "cost", "scheduler", "job"])
async def test_every_screen_lays_nothing_out_for_the_same_data(
    lab: Path, make_tui, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    layouts = Layouts(monkeypatch)
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        if name == "job":
            app.open_job(1)
        else:
            app.switch_to(name)
        await wait_for(pilot, lambda: getattr(app.screen, "loads", 0) >= 1)
        await settled(pilot)
        await refreshed(pilot)
        layouts.clear()
        for _ in range(2):
            await refreshed(pilot)
        assert not layouts.asked, layouts.asked
        assert layouts.reflows == 0


async def test_new_rows_are_not_measured_for_widths_the_table_does_not_use(
    lab: Path, make_tui, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job queued by another process rebuilds the queue's rows; their cells are not measured
    (every column's width comes from `fit`), and the cells are rendered as before."""
    from textual.widgets import _data_table

    measured: list[object] = []
    measure = _data_table.measure

    def counted(*args, **kwargs):
        measured.append(args[1])
        return measure(*args, **kwargs)

    monkeypatch.setattr(_data_table, "measure", counted)
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await settled(pilot)
        table = app.screen.query_one("#queue-table", DataTable)
        rows = table.row_count
        other = Service.open(lab, user=USER, clock=lambda: FIXED_NOW)
        try:
            job = other.ledger.add_job({"command": "python new.py", "gpus": 1}, USER, at=FIXED_NOW)
        finally:
            other.close()
        measured.clear()
        await refreshed(pilot)
        assert table.row_count == rows + 1
        assert measured == []
        assert str(table.get_row(str(job))[0]) == str(job)


async def test_rows_in_another_order_reuse_their_cells_at_their_new_place(
    lab: Path, make_tui, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sorted otherwise, the queue shows the same cells elsewhere: they are not rendered through
    Rich again, and each line still says which row it is (a mouse click reads it)."""
    rendered = Rendered(monkeypatch)
    app = make_tui()
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        await settled(pilot)
        table = app.screen.query_one("#queue-table", DataTable)
        before = [str(k.value) for k in table.rows]
        rendered.cells.clear()
        app.screen.sort = "user"
        await refreshed(pilot)
        await pilot.pause()
        after = [str(k.value) for k in table.rows]
        assert sorted(after) == sorted(before) and after != before
        # the cursor's row is drawn highlighted, in its new look; every other cell is reused
        assert len(rendered.cells) <= len(table.columns), " | ".join(rendered.cells)
        for y, key in enumerate(after, start=1):  # line 0 is the header
            strip = table.render_line(y)
            rows = {s.style.meta.get("row") for s in strip if s.style and s.style.meta}
            assert rows == {y - 1}, (key, rows)
            assert strip.text.split()[0] == str(table.get_row(key)[0])
