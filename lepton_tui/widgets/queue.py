"""The queue as a windowed table: running and queued jobs, who asked, what for, where, and why it waits."""

from __future__ import annotations

from collections.abc import Mapping, Set

from rich.text import Text
from textual.binding import Binding
from textual.content import Content

from lepton_tui.validate import format_duration
from lepton_tui.views import QueueRow, QueueWindow
from lepton_tui.widgets.fit import FittedTable, fit_columns
from lepton_tui.widgets.sync import highlighted_key

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
    ("gpus", "GPU ids"),  # which GPUs of the host (the count is in Request: `2gpu`)
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
    """Why a queued job waits, or what a job runs; `[shell] ` first for an interactive job
    (`lepton-tui shell`), as `lepton-tui queue` marks it."""
    if row.state == "queued":
        text = Text((row.reason or "waiting")[:WHY_TEXT_MAX], style="italic")
    else:
        text = Text(row.command.replace("\n", " ")[:WHY_TEXT_MAX], style="dim")
    if row.kind == "interactive":
        text = Text.assemble(("[shell] ", "bold cyan"), text)
    return text


def fit_queue_columns(natural: Mapping[str, int], room: int, padding: int = 1) -> dict[str, int]:
    """The queue's columns in `room` cells, each with its width (pure; see `fit_columns`)."""
    return fit_columns(
        KEYS, natural, room, drop_order=DROP_ORDER, caps=CAPS, fill="why", fill_min=WHY_MIN,
        padding=padding,
    )  # fmt: skip


def queue_cells(window: QueueWindow, expanded: Set[int] = frozenset()) -> list[tuple[str, tuple]]:
    """The table's cells (pure: build them in the thread worker). The elements of an array in
    one state are one row (`12[16]`, keyed `a12:state`) unless the array is `expanded`; then
    each is a row of its own (`12.3`)."""
    groups: dict[tuple[int, str], int] = {}
    for r in window.rows:
        if r.array_id is not None and r.array_id not in expanded:
            groups[(r.array_id, r.state)] = groups.get((r.array_id, r.state), 0) + 1
    out: list[tuple[str, tuple]] = []
    for r in window.rows:
        if r.array_id is not None and r.array_id not in expanded:
            n = groups.pop((r.array_id, r.state), 0)
            if n:  # the group's first element stands for it
                out.append(_row(r, f"a{r.array_id}:{r.state}", f"{r.array_id}[{n}]"))
            continue
        label = str(r.id) if r.array_id is None else f"{r.array_id}.{r.array_index}"
        out.append(_row(r, str(r.id), label))
    return out


def _row(r: QueueRow, key: str, label: str) -> tuple[str, tuple]:
    return (
        key,
        (
            Text(label, justify="right"),
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


class QueueTable(FittedTable):
    """Up to a window of jobs; rows keyed by job id so selection survives refreshes. The columns
    fit the table's width: no sideways scrolling to find out why a job waits."""

    COLUMNS = COLUMNS
    DROP_ORDER = DROP_ORDER
    CAPS = CAPS
    FILL = "why"
    FILL_MIN = WHY_MIN

    BINDINGS = [Binding("plus", "toggle_array", "expand array", show=False)]

    expanded: set[int]
    _window: QueueWindow | None = None

    def show(
        self,
        window: QueueWindow,
        cells: list[tuple[str, tuple]] | None = None,
        widths: dict[str, int] | None = None,
    ) -> None:
        """Patch changed cells in place (cells, and their widths, built by a worker if given);
        selection stays."""
        self._window = window
        if not hasattr(self, "expanded"):
            self.expanded = set()
        if self.expanded and any(r.array_id in self.expanded for r in window.rows):
            cells, widths = queue_cells(window, self.expanded), None  # the worker knows none
        if cells is None:
            cells, widths = queue_cells(window), None
        self.show_fitted(cells, widths)

    def action_toggle_array(self) -> None:
        """`+`: show the highlighted array's elements one per row, or group them again."""
        key = highlighted_key(self)
        if key is None or self._window is None:
            return
        if key.startswith("a"):
            self.expanded.add(int(key[1:].split(":")[0]))
        else:
            row = next((r for r in self._window.rows if str(r.id) == key), None)
            if row is None or row.array_id is None:
                return
            self.expanded.discard(row.array_id)
        self.show(self._window, queue_cells(self._window, self.expanded))

    @property
    def selected_job(self) -> int | None:
        """The highlighted job's id, if any (an array's row: the array's id, its first job)."""
        key = highlighted_key(self)
        if key is not None and key.startswith("a"):
            return int(key[1:].split(":")[0])
        return int(key) if key is not None else None


def queue_title(window: QueueWindow) -> Content:
    """`Queue 3 running, 12 queued (showing 15 of 15)`, as plain text: a border title given as a
    string is markup, and the filter is what the user typed (`[/]` would not even parse)."""
    title = f"Queue: {window.running} running, {window.queued} queued"
    if window.text:
        title += f" | filter '{window.text}'"
    if window.matched > len(window.rows):
        title += f" | showing {len(window.rows)} of {window.matched:,}"
    if window.sort != "default":
        title += f" | by {window.sort}"
    return Content(title)
