"""Laid out for the width there is, so a narrow terminal cuts words, never numbers (`$0...` for
`$28.39` would be nonsense, `Rate n… $13.00/h` is still true), and a table never hides a column
behind a sideways scroll: `FitTable` for Rich tables, `FittedTable` for DataTables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text
from textual import events

from lepton_tui.widgets.cells import CellCachedTable
from lepton_tui.widgets.sync import forget_rows, highlighted_key, sync_rows

Cell = str | Text
MIN_LABEL = 4  # below this, optional number columns are left out to make room for the label


def cell_width(cell: Any) -> int:
    """The cells a table cell takes (plain text or Rich Text)."""
    return cell_len(cell.plain if isinstance(cell, Text) else str(cell))


def cell_widths(keys: Sequence[str], cells: Sequence[tuple[str, tuple]]) -> dict[str, int]:
    """Each column's widest cell (headers aside): measured in a worker, so the event loop only
    lays the columns out."""
    widths = dict.fromkeys(keys, 0)
    for _, row in cells:
        for key, cell in zip(keys, row, strict=False):
            w = cell_width(cell)
            if w > widths[key]:
                widths[key] = w
    return widths


class FitTable:
    """A label column and right-aligned number columns; drawn, the numbers keep their whole width
    and the label takes what is left (ending with an ellipsis). When the label would get fewer
    than MIN_LABEL cells, the `optional` number columns are left out (last first)."""

    def __init__(
        self,
        rows: Sequence[Sequence[Cell]],
        *,
        headers: Sequence[str] | None = None,
        optional: Sequence[int] = (),
        gap: int = 1,
    ) -> None:
        self.rows = [list(r) for r in rows]
        self.headers = list(headers) if headers is not None else None
        self.optional = list(optional)
        self.gap = gap

    def columns_for(self, width: int) -> tuple[list[int], int]:
        """The number columns shown in `width` cells, and the label's width (pure)."""
        count = max((len(r) for r in self.rows), default=len(self.headers or [""]))
        if self.headers is not None:
            count = max(count, len(self.headers))
        shown = list(range(1, count))
        widths = {i: self._column_width(i) for i in shown}

        def label() -> int:
            return width - sum(widths[i] + self.gap for i in shown)

        for i in reversed(self.optional):
            if label() >= MIN_LABEL:
                break
            if i in shown:
                shown.remove(i)
        return shown, max(1, label())

    def _column_width(self, i: int) -> int:
        cells = [r[i] for r in self.rows if i < len(r)]
        if self.headers is not None and i < len(self.headers):
            cells.append(self.headers[i])
        return max((cell_width(c) for c in cells), default=0)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        shown, label_width = self.columns_for(options.max_width)
        table = Table(
            box=None, padding=(0, 0, 0, self.gap), pad_edge=False, show_edge=False,
            show_header=self.headers is not None, header_style="bold", expand=False,
        )  # fmt: skip
        heads = self.headers or []
        table.add_column(
            heads[0] if heads else "", width=label_width, no_wrap=True, overflow="ellipsis"
        )
        for i in shown:
            table.add_column(
                heads[i] if i < len(heads) else "", justify="right", no_wrap=True,
                width=self._column_width(i),
            )  # fmt: skip
        for row in self.rows:
            table.add_row(row[0], *(row[i] if i < len(row) else "" for i in shown))
        yield table


# -- DataTables whose columns fit the width ------------------------------------------------------


def fit_columns(
    keys: Sequence[str],
    natural: Mapping[str, int],
    room: int,
    *,
    drop_order: Sequence[str] = (),
    caps: Mapping[str, int] | None = None,
    fill: str | None = None,
    fill_min: int = 0,
    padding: int = 1,
    soft_caps: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """The columns to show in `room` cells, each with its width (pure).

    Every column takes its natural width up to its cap; when they do not fit, the columns of
    `soft_caps` give up what they must down to that width, then the columns of `drop_order` are
    left out, in that order, until the rest fits (with at least `fill_min` cells for `fill`), and
    what leaving them out freed goes back to the soft-capped columns; `fill` takes all that is
    left, so a wide screen shows it whole and a narrow one its start.
    """
    caps = caps or {}
    gap = 2 * padding
    widths = {k: min(natural.get(k, 0), caps.get(k, room)) for k in keys if k != fill}

    def left() -> int:
        return room - sum(w + gap for w in widths.values()) - (gap + fill_min if fill else 0)

    for key, cap in (soft_caps or {}).items():
        if key in widths and left() < 0:  # one long name cuts itself, not the other columns
            widths[key] = max(min(widths[key], cap), widths[key] + left())
    for key in drop_order:
        if left() >= 0:
            break
        widths.pop(key, None)
    for key in soft_caps or {}:
        if key in widths and left() > 0:  # what a dropped column freed goes back to the name
            widths[key] = min(natural.get(key, 0), caps.get(key, room), widths[key] + left())
    if fill is not None:
        widths[fill] = max(fill_min, room - sum(w + gap for w in widths.values()) - gap)
    return {k: widths[k] for k in keys if k in widths}


def clip(cell: Any, width: int) -> Any:
    """`cell` cut to `width` cells, with an ellipsis when something was cut."""
    if cell_width(cell) <= width:
        return cell
    text = cell.copy() if isinstance(cell, Text) else Text(str(cell))
    text.truncate(width, overflow="ellipsis")
    return text


class FittedTable(CellCachedTable):
    """A DataTable whose columns fit its width, again after every resize (`fit_columns` with the
    class's COLUMNS, DROP_ORDER, CAPS, SOFT_CAPS, FILL and FILL_MIN). Rows are keyed; the
    highlighted row stays highlighted. A reserved scrollbar column keeps a growing table from
    scrolling sideways."""

    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = ()
    DROP_ORDER: ClassVar[tuple[str, ...]] = ()
    CAPS: ClassVar[dict[str, int]] = {}
    SOFT_CAPS: ClassVar[dict[str, int]] = {}
    FILL: ClassVar[str | None] = None
    FILL_MIN: ClassVar[int] = 0

    def __init__(self, **kwargs: Any) -> None:
        # Columns exist from construction: a worker's first rows may arrive before on_mount.
        super().__init__(cursor_type="row", **kwargs)
        self.labels = dict(self.COLUMNS)
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)
        self.layout_widths: dict[str, int] = {}
        self._cells: list[tuple[str, tuple]] = []
        self._widths: dict[str, int] | None = None  # the cells' widths, if a worker measured them

    @property
    def keys(self) -> tuple[str, ...]:
        return self.keys_of()

    @classmethod
    def keys_of(cls) -> tuple[str, ...]:
        """The column keys, in order (usable in a worker, without the widget)."""
        return tuple(key for key, _ in cls.COLUMNS)

    def show_fitted(
        self, cells: list[tuple[str, tuple]], widths: dict[str, int] | None = None
    ) -> None:
        """Show `cells` (a cell per column of COLUMNS) in the columns that fit; `widths`: their
        `cell_widths`, when a worker measured them already."""
        self._cells = cells
        self._widths = widths
        self.fit()

    def on_resize(self, event: events.Resize) -> None:
        if self.layout_widths:
            self.fit()

    def room(self) -> int:
        """Cells across for the columns: the table less its border, padding and a scrollbar
        (kept free even before rows overflow, so a growing table never adds a sideways one)."""
        width = self.content_region.width or self.app.size.width
        return max(0, width - self.styles.scrollbar_size_vertical)

    def natural_widths(self) -> dict[str, int]:
        """Each column's width with nothing cut: its widest cell or its header."""
        cells = self._widths if self._widths is not None else cell_widths(self.keys, self._cells)
        return {key: max(cell_len(label), cells.get(key, 0)) for key, label in self.labels.items()}

    def fit(self) -> None:
        """Lay the columns out for the width there is now, and show the cells in them."""
        keep = highlighted_key(self)
        natural = self.natural_widths()
        layout = fit_columns(
            self.keys, natural, self.room(), drop_order=self.DROP_ORDER,
            caps=self.CAPS, fill=self.FILL, fill_min=self.FILL_MIN, padding=self.cell_padding,
            soft_caps=self.SOFT_CAPS,
        )  # fmt: skip
        if layout != self.layout_widths:
            self._set_columns(layout)
        # only a column narrower than its widest cell has cells to cut
        cut = {k for k in layout if layout[k] < natural.get(k, 0)}
        rows = [
            (key, tuple(clip(c, layout[k]) if k in cut else c
                        for k, c in zip(self.keys, row, strict=False) if k in layout))
            for key, row in self._cells
        ]  # fmt: skip
        if sync_rows(self, rows) and keep is not None and keep in self.rows:
            self.move_cursor(row=self.get_row_index(keep), animate=False)

    # -- a new virtual size that changes nothing on screen asks for no layout ----------------

    _virtual_before: Any = None

    def _update_dimensions(self, new_rows: Any) -> None:
        if self.columns and not any(c.auto_width for c in self.columns.values()):
            # Every column has its width from `fit`: DataTable would measure each new row's
            # cells (~10 ms for the queue's rows on the event loop) for widths it does not use.
            new_rows = ()
        self._virtual_before = self.virtual_size
        try:
            super()._update_dimensions(new_rows)
        finally:
            self._virtual_before = None

    def refresh(self, *regions: Any, layout: bool = False, **kwargs: Any) -> Any:
        before = self._virtual_before
        if layout and before is not None and self._scrolls_alike(before, self.virtual_size):
            layout = False  # a repaint does: DataTable would reflow the whole screen
        return super().refresh(*regions, layout=layout, **kwargs)

    def _scrolls_alike(self, before: Any, after: Any) -> bool:
        """True when the table's content going from `before` to `after` (virtual sizes) leaves
        its size and scrollbars as they are: as many lines, as wide or narrower than the room
        both times, and a width that does not follow the content."""
        width = self.styles.width
        if before.height != after.height or (width is not None and width.is_auto):
            return False
        room = self.scrollable_content_region.width
        return before.width <= room and after.width <= room

    def relabel(self, key: str, label: str) -> None:
        """Give column `key` a new header (DataTable has no public rename)."""
        self.labels[key] = label
        column = self.columns.get(key)  # type: ignore[call-overload]
        if column is not None and column.label.plain != label:
            column.label = Text(label)
            column.content_width = max(column.content_width, cell_len(label))
            self._clear_caches()
            self._require_update_dimensions = True
            self.refresh()

    def _set_columns(self, layout: dict[str, int]) -> None:
        if list(layout) == [str(k.value) for k in self.columns]:
            # Same columns, other widths: resize them in place (rows, cursor and scroll stay).
            for key, column in self.columns.items():
                column.width = layout[str(key.value)]
                column.auto_width = False
            self.widths_changed()
            self._require_update_dimensions = True
            self.refresh()
        else:
            self.clear(columns=True)
            forget_rows(self)
            for name, width in layout.items():
                self.add_column(self.labels[name], key=name, width=width)
        self.layout_widths = layout
