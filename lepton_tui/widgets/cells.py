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

from rich.style import Style
from textual.widgets import DataTable

CACHE_MAX = 20_000  # renderings kept (a few screens of cells in their styles); then start over


def _key_value(key: Any) -> Any:
    return getattr(key, "value", key)


class CellCachedTable(DataTable):
    """A DataTable whose cells are rendered again only when they, or how they are drawn, change."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._cell_lines: dict[tuple, Any] = {}
        self._cell_versions: dict[tuple[Any, Any], int] = {}
        self.cells_rendered = 0  # cells drawn anew (what the cache saved shows in tests)
        super().__init__(*args, **kwargs)

    def _forget_cells(self) -> None:
        self._cell_lines.clear()
        self._cell_versions.clear()

    # Whatever DataTable starts over for, this cache starts over for too.
    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._forget_cells()

    def widths_changed(self) -> None:
        """Columns got new widths: DataTable's caches start over, each cell's rendering is
        kept (its width is part of its key)."""
        super()._clear_caches()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._forget_cells()

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
        self._forget_cells()
        return super().add_column(*args, **kwargs)

    def remove_column(self, column_key: Any) -> None:
        self._forget_cells()
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
            column_index,
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
        )
        lines = self._cell_lines.get(key)
        if lines is None:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            if len(self._cell_lines) >= CACHE_MAX:
                self._cell_lines.clear()
            self._cell_lines[key] = lines
            self.cells_rendered += 1
        return lines
