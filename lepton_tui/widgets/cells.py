"""A DataTable that redraws only the cells that changed.

DataTable keys every render cache (cells, rows, lines) by one counter that each `update_cell`
moves on, so patching one cell renders every visible cell again: on the busy overview, an age
ticking over in the queue cost the event loop ~30 ms of rendering the whole table (issue 18).
`CellCachedTable` keeps each cell's rendering keyed by what it depends on (its row and column,
its own version, its position, width and styles) across such updates; a changed cell gets a new
version and is rendered again, the others are reused.
"""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

CACHE_MAX = 20_000  # renderings kept (a few screens of cells in their styles); then start over


def _key_value(key: Any) -> Any:
    return getattr(key, "value", key)


class CellCachedTable(DataTable):
    """A DataTable whose cells are rendered again only when they, or how they are drawn, change."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._cell_lines: dict[tuple, Any] = {}
        self._moved_lines: dict[tuple, Any] = {}  # by what a cell shows, wherever it is
        self._cell_versions: dict[tuple[Any, Any], int] = {}
        self.cells_rendered = 0  # cells drawn anew (what the cache saved shows in tests)
        super().__init__(*args, **kwargs)

    def _forget_cells(self) -> None:
        self._cell_lines.clear()
        self._cell_versions.clear()

    def _forget_all(self) -> None:
        """Styles or widths changed: no rendering can be reused, wherever its cell is."""
        self._forget_cells()
        self._moved_lines = {}  # a new one: `clear` keeps the old for its rows

    # Whatever DataTable starts over for, this cache starts over for too (but rows cleared to be
    # added again keep what their cells look like).
    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._forget_all()

    def clear(self, columns: bool = False) -> Any:
        moved = self._moved_lines
        result = super().clear(columns)
        if not columns:
            self._moved_lines = moved
        return result

    def widths_changed(self) -> None:
        """Columns got new widths: DataTable's caches start over, each cell's rendering is
        kept (its width is part of its key)."""
        super()._clear_caches()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_all()

    def update_cell(self, row_key: Any, column_key: Any, value: Any, **kwargs: Any) -> None:
        super().update_cell(row_key, column_key, value, **kwargs)
        cell = (_key_value(row_key), _key_value(column_key))
        self._cell_versions[cell] = self._cell_versions.get(cell, 0) + 1

    def add_row(self, *args: Any, **kwargs: Any) -> Any:
        self._forget_cells()  # a key can come back with other cells
        return super().add_row(*args, **kwargs)

    def remove_row(self, row_key: Any) -> None:
        self._forget_cells()
        super().remove_row(row_key)

    def add_column(self, *args: Any, **kwargs: Any) -> Any:
        self._forget_all()
        return super().add_column(*args, **kwargs)

    def remove_column(self, column_key: Any) -> None:
        self._forget_all()
        super().remove_column(column_key)

    def sort(self, *args: Any, **kwargs: Any) -> Any:
        self._forget_cells()
        return super().sort(*args, **kwargs)

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> Any:
        if column_index < 0:  # row labels (none of ours has them): DataTable's own
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        # the header: a new label goes through `_clear_caches`
        row_key: Any = (
            self._header_row_key if row_index == -1 else self._row_locations.get_key(row_index)
        )
        column_key = self._column_locations.get_key(column_index)
        cell = (_key_value(row_key), _key_value(column_key))
        key = (
            cell,
            self._cell_versions.get(cell, 0),
            row_index,  # the rendering carries its position (mouse clicks read it)
            column_index < self.fixed_columns,
            row_index < self.fixed_rows,
            base_style,
            width,
            cursor,
            hover,
            self._show_hover_cursor,
            self.show_cursor,
            self.cursor_foreground_priority,
            self.cursor_background_priority,
            self.fixed_rows,
            self.fixed_columns,
            self._pseudo_class_state,
            column_index,
        )
        lines = self._cell_lines.get(key)
        if lines is None:
            lines = self._render_moved(row_key, column_key, row_index, column_index, key[3:])
            if lines is None:
                lines = super()._render_cell(
                    row_index, column_index, base_style, width, cursor, hover
                )
                self.cells_rendered += 1
                self._keep_moved(row_key, column_key, key[3:], lines)
            if len(self._cell_lines) >= CACHE_MAX:
                self._cell_lines.clear()
            self._cell_lines[key] = lines
        return lines

    # -- rows that moved: the same cell drawn elsewhere ----------------------------------------
    # A table rebuilt with its rows in another order (a job started, another queued) shows the
    # same cells at other positions. Their rendering is kept by what they show and how they are
    # drawn; only the position DataTable writes into every segment's style (for mouse clicks)
    # differs, and is written again: ~20x cheaper than rendering the cell through Rich.

    def _content_key(self, row_key: Any, column_key: Any, how: tuple) -> tuple | None:
        try:
            value = self._data[row_key][column_key]
        except KeyError:
            return None
        if isinstance(value, Text):
            what: Any = (
                "t", value.plain, str(value.style), tuple(value.spans), value.justify,
                value.overflow, value.no_wrap, value.end,
            )  # fmt: skip
        elif isinstance(value, str):
            what = ("s", value)
        else:
            return None
        try:
            hash(what)
        except TypeError:
            return None
        return (what, *how)

    def _keep_moved(self, row_key: Any, column_key: Any, how: tuple, lines: Any) -> None:
        key = self._content_key(row_key, column_key, how)
        if key is not None:
            if len(self._moved_lines) >= CACHE_MAX:
                self._moved_lines = {}
            self._moved_lines[key] = lines

    def _render_moved(
        self, row_key: Any, column_key: Any, row_index: int, column_index: int, how: tuple
    ) -> Any:
        key = self._content_key(row_key, column_key, how)
        lines = self._moved_lines.get(key) if key is not None else None
        if lines is None:
            return None
        here = Style.from_meta({"row": row_index, "column": column_index})
        return [
            [
                Segment(seg.text, seg.style + here if seg.style else here, seg.control)
                for seg in line
            ]
            for line in lines
        ]
