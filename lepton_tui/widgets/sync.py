"""Refresh a DataTable in place: only changed cells are touched, rows are rebuilt only when the
set or order of rows changed. A clear-and-refill of 64 rows every tick would re-measure and
re-render the whole table; updating a few cells costs almost nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from weakref import WeakKeyDictionary

from rich.cells import cell_len
from rich.text import Text
from textual.css.scalar import Unit
from textual.widget import Widget
from textual.widgets import DataTable, Static

# What each table shows now, by row key: a signature per cell.
_SHOWN: WeakKeyDictionary[DataTable, dict[str, tuple[Any, ...]]] = WeakKeyDictionary()


def _signature(cell: Any) -> Any:
    if isinstance(cell, Text):
        return (cell.plain, str(cell.style), tuple(cell.spans))
    return cell


def _width(cell: Any) -> int:
    return cell_len(cell.plain if isinstance(cell, Text) else str(cell))


def sync_rows(table: DataTable, rows: Sequence[tuple[str, Sequence[Any]]]) -> bool:
    """Show `rows` (key, cells) in `table`; True when it had to rebuild, False when patched."""
    old = _SHOWN.get(table, {})
    keys = [key for key, _ in rows]
    current = [str(k.value) for k in table.rows]
    columns = list(table.columns)
    if keys != current or len(old) != len(rows):
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key)
        # Measure now rather than when the table is next idle: a frame drawn in between would
        # show every column at its header's width.
        for i, column_key in enumerate(columns):
            column = table.columns[column_key]
            widest = max((_width(cells[i]) for _, cells in rows if i < len(cells)), default=0)
            column.content_width = max(column.content_width, widest)
        table.refresh()
        _SHOWN[table] = {key: tuple(map(_signature, cells)) for key, cells in rows}
        return True
    fresh = {}
    for key, cells in rows:
        sig = tuple(map(_signature, cells))
        before = old.get(key, ())
        for i, (cell, s) in enumerate(zip(cells, sig, strict=False)):
            if i >= len(before) or before[i] != s:
                grow = _width(cell) > table.columns[columns[i]].content_width
                table.update_cell(key, columns[i], cell, update_width=grow)
        fresh[key] = sig
    _SHOWN[table] = fresh
    return False


def forget_rows(table: DataTable) -> None:
    """Forget what `table` showed (after its columns changed): the next sync rebuilds it."""
    _SHOWN.pop(table, None)


_TITLES: WeakKeyDictionary[Widget, tuple[Any, Any]] = WeakKeyDictionary()
_KEEP = object()


def set_titles(widget: Widget, title: Any = _KEEP, subtitle: Any = _KEEP) -> None:
    """Set `widget`'s border title and subtitle, touching it only when one changed (setting
    either repaints the whole widget, children included, even to the same text)."""
    old = _TITLES.get(widget, (_KEEP, _KEEP))
    new = (old[0] if title is _KEEP else title, old[1] if subtitle is _KEEP else subtitle)
    if new[0] != old[0] and new[0] is not _KEEP:
        widget.border_title = new[0]
    if new[1] != old[1] and new[1] is not _KEEP:
        widget.border_subtitle = new[1]
    _TITLES[widget] = new


_MADE_OF: WeakKeyDictionary[Widget, Any] = WeakKeyDictionary()


def update_static(widget: Static, made_of: Any, build: Callable[[], Any]) -> bool:
    """Show `build()` in `widget` unless `made_of`, the data it is built from, is what it shows
    already (`Static.update` lays the whole screen out, even for the same text); a widget whose
    size does not follow its content is only repainted. True when it was updated."""
    if _MADE_OF.get(widget, _KEEP) == made_of:
        return False
    _MADE_OF[widget] = made_of
    widget.update(build(), layout=not keeps_size(widget))
    return True


def keeps_size(widget: Widget) -> bool:
    """True when CSS fixes `widget`'s height in cells and its width does not follow its content:
    new content of any length keeps its size, so an update needs a repaint, not a layout."""
    height, width = widget.styles.height, widget.styles.width
    return height is not None and height.unit == Unit.CELLS and (width is None or not width.is_auto)


def highlighted_key(table: DataTable) -> str | None:
    """The key of the highlighted row, or None for an empty (or shrinking) table."""
    if not table.row_count:
        return None
    try:
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
    except Exception:  # noqa: BLE001 - the cursor can point past rows that just went away
        return None
    return str(key.value) if key.value is not None else None
