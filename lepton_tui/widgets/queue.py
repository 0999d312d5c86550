"""The queue as a windowed table: running and queued jobs, who asked, what for, where, and why it waits."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from lepton_tui.validate import format_duration
from lepton_tui.views import QueueRow, QueueWindow
from lepton_tui.widgets.sync import highlighted_key, sync_rows

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


def why_text(row: QueueRow, width: int = 60) -> Text:
    if row.state == "queued":
        return Text((row.reason or "waiting")[:width], style="italic")
    return Text(row.command.replace("\n", " ")[:width], style="dim")


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
    """Up to a window of jobs; rows keyed by job id so selection survives refreshes."""

    def __init__(self, **kwargs) -> None:
        # Columns exist from construction: a worker's first rows may arrive before on_mount.
        super().__init__(cursor_type="row", **kwargs)
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, window: QueueWindow, cells: list[tuple[str, tuple]] | None = None) -> None:
        """Patch changed cells in place (cells built by a worker if given); selection stays."""
        keep = self.selected_job
        rebuilt = sync_rows(self, cells if cells is not None else queue_cells(window))
        if rebuilt and keep is not None and str(keep) in self.rows:
            self.move_cursor(row=self.get_row_index(str(keep)), animate=False)

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
