"""The queue as a windowed table: running and queued jobs, who asked, what for, where, and why it waits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.widgets import DataTable

from lepton_tui.validate import format_duration
from lepton_tui.views import QueueRow, QueueWindow
from lepton_tui.widgets.sync import forget_rows, highlighted_key, sync_rows

JOB_STYLE = {
    "queued": "yellow",
    "starting": "cyan",
    "running": "green",
    "cancelling": "magenta",
    "succeeded": "dim green",
    "failed": "red",
    "cancelled": "dim",
    "timeout": "red",
}
# Clicking a column header sorts by it (where the ledger can sort that way).
HEADER_SORTS = {"id": "id", "state": "default", "user": "user", "age": "age"}
COLUMNS = (
    ("id", "ID"),
    ("state", "State"),
    ("user", "User"),
    ("project", "Project"),
    ("request", "Request"),
    ("host", "Host"),
    ("gpus", "GPU ids"),  # which GPUs of the host (the count is in Request: `2g`)
    ("age", "Age"),
    ("why", "Why waiting / command"),
)
KEYS = tuple(key for key, _ in COLUMNS)
# The table is never wider than its panel. On a narrow screen these columns are left out, in
# this order, until Why waiting has at least WHY_MIN cells; ID and Why waiting always stay.
DROP_ORDER = ("gpus", "project", "host", "request", "user", "age", "state")
# The widest a column gets (longer cells end with an ellipsis); Why waiting takes what is left.
CAPS = {"user": 12, "project": 12, "request": 20, "host": 16, "gpus": 12}
WHY_MIN = 21  # its header, "Why waiting / command", whole
WHY_TEXT_MAX = 400  # a cell never carries more: no screen is that wide


def why_text(row: QueueRow) -> Text:
    if row.state == "queued":
        return Text((row.reason or "waiting")[:WHY_TEXT_MAX], style="italic")
    return Text(row.command.replace("\n", " ")[:WHY_TEXT_MAX], style="dim")


def _cell_width(cell: Any) -> int:
    return cell_len(cell.plain if isinstance(cell, Text) else str(cell))


def natural_widths(cells: Sequence[tuple[str, Sequence[Any]]]) -> dict[str, int]:
    """Each column's width with nothing cut: its widest cell or its header."""
    widths = {key: cell_len(label) for key, label in COLUMNS}
    for _, row in cells:
        for key, cell in zip(KEYS, row, strict=False):
            widths[key] = max(widths[key], _cell_width(cell))
    return widths


def fit_columns(natural: Mapping[str, int], room: int, padding: int = 1) -> dict[str, int]:
    """The columns to show in `room` cells, each with its width (pure).

    Every column takes its natural width up to its cap; columns of DROP_ORDER are left out, in
    that order, until Why waiting gets at least WHY_MIN; Why waiting takes all that is left, so
    a wide screen shows whole reasons and a narrow one still shows the start of them.
    """
    gap = 2 * padding
    widths = {
        key: min(natural.get(key, cell_len(label)), CAPS.get(key, room))
        for key, label in COLUMNS
        if key != "why"
    }

    def left() -> int:
        return room - sum(w + gap for w in widths.values()) - gap

    for key in DROP_ORDER:
        if left() >= WHY_MIN:
            break
        del widths[key]
    widths["why"] = max(WHY_MIN, left())
    return {key: widths[key] for key in KEYS if key in widths}


def clip(cell: Any, width: int) -> Any:
    """`cell` cut to `width` cells, with an ellipsis when something was cut."""
    if _cell_width(cell) <= width:
        return cell
    text = cell.copy() if isinstance(cell, Text) else Text(str(cell))
    text.truncate(width, overflow="ellipsis")
    return text


def fitted_cells(
    cells: Sequence[tuple[str, Sequence[Any]]], layout: Mapping[str, int]
) -> list[tuple[str, tuple]]:
    """The cells of the columns in `layout`, each cut to its column's width."""
    return [
        (key, tuple(clip(c, layout[k]) for k, c in zip(KEYS, row, strict=False) if k in layout))
        for key, row in cells
    ]


def queue_cells(window: QueueWindow) -> list[tuple[str, tuple]]:
    """The table's cells (pure: build them in the thread worker)."""
    return [
        (
            str(r.id),
            (
                Text(str(r.id), justify="right"),
                Text(r.state, style=JOB_STYLE.get(r.state, "")),
                r.user,
                r.project,
                r.request,
                r.host or "-",
                r.gpu_ids or "-",
                format_duration(r.age_s),
                why_text(r),
            ),
        )
        for r in window.rows
    ]


class QueueTable(DataTable):
    """Up to a window of jobs; rows keyed by job id so selection survives refreshes.

    The columns fit the table's width (`fit_columns`), again after every resize: no sideways
    scrolling to find out why a job waits.
    """

    def __init__(self, **kwargs) -> None:
        # Columns exist from construction: a worker's first rows may arrive before on_mount.
        super().__init__(cursor_type="row", **kwargs)
        for key, label in COLUMNS:
            self.add_column(label, key=key)
        self.layout_widths: dict[str, int] = {}
        self._cells: list[tuple[str, tuple]] = []

    def show(self, window: QueueWindow, cells: list[tuple[str, tuple]] | None = None) -> None:
        """Patch changed cells in place (cells built by a worker if given); selection stays."""
        self._cells = cells if cells is not None else queue_cells(window)
        self._fit()

    def on_resize(self, event: events.Resize) -> None:
        if self.layout_widths:
            self._fit()

    def room(self) -> int:
        """Cells across for the columns: the table less its border, padding and a scrollbar
        (kept free even before rows overflow, so a growing queue never adds a sideways one)."""
        width = self.content_region.width or self.app.size.width
        return max(0, width - self.styles.scrollbar_size_vertical)

    def _fit(self) -> None:
        keep = self.selected_job
        layout = fit_columns(natural_widths(self._cells), self.room(), self.cell_padding)
        if layout != self.layout_widths:
            self._set_columns(layout)
        rebuilt = sync_rows(self, fitted_cells(self._cells, layout))
        if rebuilt and keep is not None and str(keep) in self.rows:
            self.move_cursor(row=self.get_row_index(str(keep)), animate=False)

    def _set_columns(self, layout: dict[str, int]) -> None:
        labels = dict(COLUMNS)
        if list(layout) == [str(k.value) for k in self.columns]:
            # Same columns, other widths: resize them in place (rows, cursor and scroll stay).
            for key, column in self.columns.items():
                column.width = layout[str(key.value)]
                column.auto_width = False
            self._clear_caches()
            self._require_update_dimensions = True
            self.refresh()
        else:
            self.clear(columns=True)
            forget_rows(self)
            for name, width in layout.items():
                self.add_column(labels[name], key=name, width=width)
        self.layout_widths = layout

    @property
    def selected_job(self) -> int | None:
        """The highlighted job's id, if any."""
        key = highlighted_key(self)
        return int(key) if key is not None else None


def queue_title(window: QueueWindow) -> str:
    """`Queue 3 running, 12 queued (showing 15 of 15)`."""
    title = f"Queue: {window.running} running, {window.queued} queued"
    if window.text:
        title += f" | filter '{window.text}'"
    if window.matched > len(window.rows):
        title += f" | showing {len(window.rows)} of {window.matched:,}"
    if window.sort != "default":
        title += f" | by {window.sort}"
    return title
