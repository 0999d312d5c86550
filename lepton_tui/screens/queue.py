"""The queue screen: a window of up to 200 jobs, `/` to filter, `o` to sort, `A` for ended jobs too."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer

from lepton_tui import views
from lepton_tui.screens.live import LiveScreen
from lepton_tui.screens.overview import QueueFilter
from lepton_tui.widgets.queue import HEADER_SORTS, QueueTable, queue_title
from lepton_tui.widgets.sync import set_titles


class QueueScreen(LiveScreen):
    """Every live job (or every job), windowed."""

    AUTO_FOCUS = "QueueTable"
    BINDINGS = [
        Binding("slash", "filter", "filter"),
        Binding("o", "sort", "sort"),
        Binding("A", "toggle_all", "all/live"),
        Binding("c", "cancel", "cancel"),
        Binding("l", "logs", "logs"),
        Binding("enter", "open", "open", show=False),
        Binding("escape", "back", "clear filter / back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="queue")
        self.text = ""
        self.sort = "default"
        self.all_states = False

    def compose(self) -> ComposeResult:
        yield QueueFilter(
            placeholder="filter: user, project, state, host, command words", id="queue-filter"
        )
        yield QueueTable(id="queue-table", classes="panel")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(QueueFilter).display = False

    def view(self) -> tuple[str, dict[str, Any]]:
        return "queue", {"text": self.text, "sort": self.sort, "all_states": self.all_states}

    def show(self, data: views.QueueWindow) -> None:
        table = self.query_one(QueueTable)
        table.show(data)
        title = queue_title(data)
        set_titles(table, title + (" | all states" if self.all_states else ""))

    def action_back(self) -> None:
        """Escape: clear a kept filter first (as k9s does), then back to the overview."""
        box = self.query_one(QueueFilter)
        if box.active or box.display:
            box.action_clear()
        else:
            self.app.switch_to("overview")

    def action_filter(self) -> None:
        box = self.query_one(QueueFilter)
        box.display = True
        box.focus()

    @on(QueueFilter.Changed)
    def _changed(self, event: QueueFilter.Changed) -> None:
        self.text = event.value.strip()
        self.reload()

    @on(QueueFilter.Submitted)
    def _submitted(self, event: QueueFilter.Submitted) -> None:
        if not event.value.strip():
            event.input.display = False
        self.query_one(QueueTable).focus()

    @on(DataTable.HeaderSelected, "QueueTable")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        sort = HEADER_SORTS.get(str(event.column_key.value))
        if sort is not None:
            self.sort = sort
            self.reload()

    def action_sort(self) -> None:
        names = views.SORT_NAMES
        self.sort = names[(names.index(self.sort) + 1) % len(names)]
        self.reload()

    def action_toggle_all(self) -> None:
        self.all_states = not self.all_states
        self.reload()

    def action_cancel(self) -> None:
        self.app.confirm_cancel(self.query_one(QueueTable).selected_job)

    def action_logs(self) -> None:
        self.app.open_job(self.query_one(QueueTable).selected_job, logs=True)

    def action_open(self) -> None:
        self.app.open_job(self.query_one(QueueTable).selected_job)

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_job(int(str(event.row_key.value)))
