"""The overview: header, fleet, queue and cost on one screen."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Input

from lepton_tui import views
from lepton_tui.screens.live import LiveScreen
from lepton_tui.widgets.cost import CostSummary
from lepton_tui.widgets.fit import cell_widths
from lepton_tui.widgets.fleet import (
    EmptyFleet,
    FleetPanel,
    FleetTable,
    compact_width,
    fleet_cells,
)
from lepton_tui.widgets.header import LabHeader
from lepton_tui.widgets.queue import HEADER_SORTS, QueueTable, queue_cells, queue_title
from lepton_tui.widgets.sync import set_titles


class QueueFilter(Input):
    """The `/` filter line: words match user, project, state, host or command; escape clears.

    Like k9s: enter keeps the filter and goes back to the queue; escape, in the line or later in
    the queue, clears it (and a second escape in the queue screen goes back)."""

    BINDINGS = [Binding("escape", "clear", "clear filter", show=False)]

    @property
    def active(self) -> bool:
        return bool(self.value.strip())

    def action_clear(self) -> None:
        self.value = ""
        self.display = False
        # Back to the queue, whatever focus_next() would pick (it wraps to the fleet table).
        self.screen.query_one(QueueTable).focus()


class OverviewScreen(LiveScreen):
    """Everything at a glance."""

    AUTO_FOCUS = "QueueTable"
    BINDINGS = [
        Binding("slash", "filter", "filter"),
        Binding("c", "cancel", "cancel"),
        Binding("l", "logs", "logs"),
        Binding("d", "drain", "drain"),
        Binding("o", "sort", "sort", show=False),
        Binding("enter", "open", "open", show=False),
        Binding("escape", "clear_filter", "clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="overview")
        self.text = ""
        self.sort = "default"

    def compose(self) -> ComposeResult:
        yield LabHeader(id="lab-header")
        yield FleetPanel(self.app.local_name, id="fleet")
        with Horizontal(id="bottom"):
            with Vertical(id="queue-panel", classes="panel"):
                yield QueueFilter(
                    placeholder="filter: user, project, state, host, words of the command",
                    id="queue-filter",
                )
                yield QueueTable(id="queue-table")
            yield CostSummary(id="cost", classes="panel")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#queue-filter").display = False
        set_titles(self.query_one("#queue-panel"), "Queue")
        self.query_one("#cost").border_title = "Cost"

    def view(self) -> tuple[str, dict[str, Any]]:
        return "overview", {"text": self.text, "sort": self.sort}

    def prepare(self, data: views.Overview) -> Any:
        # Cells are built here, in the worker: the event loop only patches what changed.
        fleet = fleet_cells(data.fleet, compact_width(self.app), currency=data.cost.currency)
        self.app.yield_to_input()
        queue = queue_cells(data.queue)
        widths = cell_widths(FleetTable.keys_of(), fleet), cell_widths(QueueTable.keys_of(), queue)
        return data, fleet, queue, widths

    def show(self, loaded: Any) -> None:
        data, fleet, queue, (fleet_widths, queue_widths) = loaded
        self.query_one(LabHeader).show(data.header)
        self.app.note_header(data.header)
        first = self.loads == 1
        self.query_one(FleetPanel).show(
            data.fleet, fleet, currency=data.cost.currency, widths=fleet_widths
        )
        if first and not data.fleet:
            # A new lab: the first thing to do is add a host, so enter does that.
            self.query_one("#add-local").focus()
        elif (
            data.fleet and self.focused is not None and self.focused.id in ("add-local", "add-ssh")
        ):
            # The empty state's buttons are gone once a host exists: enter opens jobs again.
            self.query_one(QueueTable).focus()
        self.query_one(QueueTable).show(data.queue, queue, queue_widths)
        subtitle = "/ filter  o sort  enter open" if data.queue.rows else None
        if not data.queue.rows and not data.queue.text:
            subtitle = "empty: press s to submit a job"
        set_titles(self.query_one("#queue-panel"), queue_title(data.queue), subtitle)
        self.query_one(CostSummary).show(data.cost)

    # -- selection --------------------------------------------------------------------------

    @property
    def selected_job(self) -> int | None:
        return self.query_one(QueueTable).selected_job

    @property
    def selected_host(self) -> str | None:
        table = self.query_one(FleetTable)
        return table.selected_host if table.display else None

    # -- actions ----------------------------------------------------------------------------

    def action_filter(self) -> None:
        box = self.query_one(QueueFilter)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        """Escape with a filter kept (after enter): clear it and show every job again."""
        box = self.query_one(QueueFilter)
        if box.active or box.display:
            box.action_clear()

    @on(Input.Changed, "#queue-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.text = event.value.strip()
        self.reload()

    @on(Input.Submitted, "#queue-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.display = False
        self.query_one(QueueTable).focus()

    @on(DataTable.HeaderSelected, "#queue-table")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        sort = HEADER_SORTS.get(str(event.column_key.value))
        if sort is not None:
            self.sort = sort
            self.reload()

    def action_sort(self) -> None:
        names = views.SORT_NAMES
        self.sort = names[(names.index(self.sort) + 1) % len(names)]
        self.notify(f"queue sorted by {self.sort}", timeout=2)
        self.reload()

    def action_cancel(self) -> None:
        self.app.confirm_cancel(self.selected_job)

    def action_logs(self) -> None:
        self.app.open_job(self.selected_job, logs=True)

    def action_open(self) -> None:
        if self.focused is self.query_one(FleetTable):
            self.app.switch_to("hosts")
        else:
            self.app.open_job(self.selected_job)

    def action_drain(self) -> None:
        self.app.toggle_drain(self.selected_host)

    @on(DataTable.RowSelected, "#queue-table")
    def _job_selected(self, event: DataTable.RowSelected) -> None:
        self.app.open_job(int(str(event.row_key.value)))

    @on(EmptyFleet.AddLocal)
    def _add_local(self) -> None:
        self.app.add_local_host()

    @on(EmptyFleet.AddSSH)
    def _add_ssh(self) -> None:
        self.app.action_add_host()
