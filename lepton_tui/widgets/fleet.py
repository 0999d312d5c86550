"""The fleet: one row per host with state, CPU and memory bars, a bar per GPU and a sparkline."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Static

from lepton_tui.fleet_view import FleetRow
from lepton_tui.widgets.bars import (
    OUTSIDE_MARK,
    bar,
    gpu_strip,
    heat_text,
    host_text,
    money,
    outside_count,
    per_hour_label,
    sparkline,
    state_text,
    stranded_text,
)
from lepton_tui.widgets.fit import FittedTable
from lepton_tui.widgets.sync import highlighted_key, set_titles

COLUMNS = (
    ("host", "Host"),
    ("state", "State"),
    ("cpu", "CPU"),
    ("mem", "Mem"),
    ("gpus", "GPUs util▮mem"),
    ("heat", "Temp/Pwr"),
    ("spark", "Last 5 min"),
    ("jobs", "Jobs"),
    ("stranded", "Stranded"),  # free GPU capacity the queued requests cannot use
    ("price", "$/h"),  # the lab currency's symbol, set by `FleetTable.show_cells`
)
# Left out, in this order, when the hosts do not fit the width; the host and its GPUs always stay.
DROP_ORDER = ("spark", "heat", "stranded", "jobs", "price", "mem", "cpu", "state")


def mem_percent(row: FleetRow) -> float | None:
    if row.mem_used_mb is None or not row.mem_total_mb:
        return None
    return 100.0 * row.mem_used_mb / row.mem_total_mb


def fleet_cells(
    rows: list[FleetRow], compact: bool = False, *, currency: str
) -> list[tuple[str, tuple]]:
    """The table's cells for `rows` (pure: build them in the thread worker, not on the loop);
    prices in the lab's `currency`."""
    width = 4 if compact else 6
    return [
        (
            r.name,
            (
                host_text(r),
                state_text(r),
                bar(r.cpu_percent, width),
                bar(mem_percent(r), width),
                gpu_strip(r.gpus, 12 if compact else 24),
                heat_text(r),
                sparkline(r.spark, 10 if compact else 20),
                Text(str(r.running) if r.running else "-", justify="right"),
                stranded_text(r, currency, compact),
                Text(
                    money(r.price_per_hour, currency) if r.price_per_hour else "-",
                    justify="right",
                ),
            ),
        )
        for r in rows
    ]


class FleetTable(FittedTable):
    """The hosts as a table; rows are keyed by host name so the cursor survives refreshes. The
    columns fit the table's width (at 80 columns: no sparkline and no temperature)."""

    COLUMNS = COLUMNS
    DROP_ORDER = DROP_ORDER

    def show(self, rows: list[FleetRow], compact: bool = False, *, currency: str) -> None:
        """Show the hosts (cells built here; see `show_cells` for cells built in a worker)."""
        self.show_cells(fleet_cells(rows, compact, currency=currency), currency=currency)

    def show_cells(
        self, cells: list[tuple[str, tuple]], *, currency: str, widths: dict[str, int] | None = None
    ) -> None:
        """Patch changed cells in place; the highlighted host stays put."""
        self.set_currency(currency)
        self.show_fitted(cells, widths)

    def set_currency(self, currency: str) -> None:
        """Label the price column with the lab currency (`$/h`, `€/h`, `CHF/h`)."""
        self.relabel("price", per_hour_label(currency))

    @property
    def selected_host(self) -> str | None:
        """The highlighted host's name, if any."""
        return highlighted_key(self)


def compact_width(app) -> bool:
    """Narrow bars and sparkline below 120 columns, so 110 columns still show every column of 8
    GPUs a host (narrower, the fleet leaves out its least useful columns: `FleetTable`)."""
    return app.size.width < 120


class EmptyFleet(Vertical):
    """What the fleet shows before any host is added: the login node offered as the first one."""

    class AddLocal(Message):
        """Add this machine as a host."""

    class AddSSH(Message):
        """Open the add-host form."""

    def __init__(self, local_name: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.local_name = local_name

    def compose(self) -> ComposeResult:
        yield Static(
            "[b]No hosts yet.[/b] Add this machine to run jobs here, or add a GPU server "
            "reachable over SSH.",
            classes="empty-text",
        )
        with Horizontal(classes="empty-buttons"):
            yield Button(f"Add this machine ({self.local_name})", id="add-local", variant="primary")
            yield Button("Add SSH host (a)", id="add-ssh")

    @on(Button.Pressed, "#add-local")
    def _local(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.AddLocal())

    @on(Button.Pressed, "#add-ssh")
    def _ssh(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.AddSSH())


class FleetPanel(Vertical):
    """The fleet table, or the empty state when there are no hosts."""

    def __init__(self, local_name: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.local_name = local_name
        set_titles(self, "Fleet")

    def compose(self) -> ComposeResult:
        yield EmptyFleet(self.local_name, id="fleet-empty")
        yield FleetTable(id="fleet-table")

    def on_mount(self) -> None:
        self.query_one(FleetTable).display = False

    def show(
        self,
        rows: list[FleetRow],
        cells: list[tuple[str, tuple]] | None = None,
        *,
        currency: str,
        widths: dict[str, int] | None = None,
    ) -> None:
        """Show `rows` (with their cells when a worker already built them), prices in
        `currency`."""
        table = self.query_one(FleetTable)
        empty = self.query_one(EmptyFleet)
        table.display = bool(rows)
        empty.display = not rows
        up = sum(1 for r in rows if r.state == "up")
        title = f"Fleet {up}/{len(rows)} up" if rows else "Fleet"
        outside = outside_count(rows)
        if outside:  # GPUs used by processes lepton did not start
            gpus = "GPU" if outside == 1 else "GPUs"
            title += f" · [yellow]{OUTSIDE_MARK}{outside} {gpus} used outside lepton[/]"
        set_titles(self, title)
        if rows:
            if cells is None:
                cells, widths = fleet_cells(rows, compact_width(self.app), currency=currency), None
            table.show_cells(cells, currency=currency, widths=widths)
