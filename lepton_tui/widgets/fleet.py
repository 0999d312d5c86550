"""The fleet: one row per host with state, CPU and memory bars, a bar per GPU and a sparkline."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Static

from lepton_tui.fleet_view import FleetRow, NodeCell
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
from lepton_tui.widgets.fit import FittedTable, cell_widths
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


# A Slurm partition is one row that expands into a row per node: its host cell starts with
# COLLAPSED or EXPANDED, and its nodes' rows are keyed "host<NODE_SEP>node" (cells for every node
# are always built, in the worker; the table shows those of the expanded partitions only, so a
# toggle needs no new read; the columns fit the rows shown).
COLLAPSED, EXPANDED = "▸ ", "▾ "
NODE_SEP = "\x1f"
NODE_STATE_CELLS = 24  # a node's state and Slurm's reason, cut with an ellipsis past this
NODE_STATE_STYLE = {"idle": "green", "mixed": "yellow", "allocated": "yellow", "completing": ""}


def node_key(host: str, node: str) -> str:
    """The row key of `node` of the Slurm host `host`."""
    return f"{host}{NODE_SEP}{node}"


def host_of(key: str) -> str:
    """The host a row key belongs to (a node row's partition host)."""
    return key.split(NODE_SEP, 1)[0]


def node_cells(node: NodeCell, last: bool, width: int, gpus_width: int) -> tuple:
    """One node of a partition: its name under the partition's, its state (and Slurm's reason),
    CPUs and memory allocated of its total as bars, and its GRES GPUs allocated of its total."""
    state = Text(node.state, style=NODE_STATE_STYLE.get(node.state, "bold red"))
    if node.reason:
        state.append(f" ({node.reason})", style="dim")
        # a long drain reason, shown expanded, must not push every host's columns out
        state.truncate(NODE_STATE_CELLS, overflow="ellipsis")
    cpu = bar(100.0 * node.cpus_alloc / node.cpus if node.cpus else None, width, label=False)
    cpu.append(f" {node.cpus_alloc}/{node.cpus}")
    mem = bar(100.0 * node.mem_alloc_mb / node.mem_mb if node.mem_mb else None, width)
    if node.gpus:
        gpus = bar(100.0 * node.gpus_alloc / node.gpus, min(node.gpus, gpus_width), label=False)
        gpus.append(f" {node.gpus_alloc}/{node.gpus} GPU")
    else:
        gpus = Text("no GPUs", style="dim")
    name = Text(("  └ " if last else "  ├ ") + node.name)
    blank = Text("")
    return (name, state, cpu, mem, gpus, blank, blank, blank, blank, blank)


def partition_rows(r: FleetRow, width: int, gpus_width: int) -> list[tuple[str, tuple]]:
    """The rows a Slurm partition's row expands into: a row per node (one saying so before the
    first poll saw any)."""
    if not r.nodes:
        blank = Text("")
        return [(node_key(r.name, ""), (Text("  └ no nodes seen yet", style="dim"),
                                         *([blank] * (len(COLUMNS) - 1))))]  # fmt: skip
    last = len(r.nodes) - 1
    return [
        (node_key(r.name, n.name), node_cells(n, i == last, width, gpus_width))
        for i, n in enumerate(r.nodes)
    ]


def fleet_cells(
    rows: list[FleetRow], compact: bool = False, *, currency: str
) -> list[tuple[str, tuple]]:
    """The table's cells for `rows` (pure: build them in the thread worker, not on the loop);
    prices in the lab's `currency`. A Slurm partition's row is followed by its nodes' rows
    (`FleetTable` shows them while the partition is expanded)."""
    width = 4 if compact else 6
    out: list[tuple[str, tuple]] = []
    for r in rows:
        out.append((r.name, host_cells(r, width, compact, currency)))
        if r.partition is not None:
            out += partition_rows(r, width, 12 if compact else 24)
    return out


def host_cells(r: FleetRow, width: int, compact: bool, currency: str) -> tuple:
    """One host's cells (a Slurm partition's name marked as one that expands)."""
    name = host_text(r)
    if r.partition is not None:
        name = Text(COLLAPSED) + name
        if r.others_pending:  # the partition's own queue: other users' pending jobs
            name.append(f" +{r.others_pending} pending", style="dim")
    return (
        name,
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
    )


def visible_cells(cells: list[tuple[str, tuple]], expanded: set[str]) -> list[tuple[str, tuple]]:
    """The rows shown (pure): every host's, the nodes' of the `expanded` partitions only, and
    an expanded partition's name marked so."""
    shown = []
    for key, row in cells:
        if NODE_SEP in key:
            if host_of(key) in expanded:
                shown.append((key, row))
        elif key in expanded:
            shown.append((key, (Text(EXPANDED) + row[0][len(COLLAPSED) :], *row[1:])))
        else:
            shown.append((key, row))
    return shown


class FleetTable(FittedTable):
    """The hosts as a table; rows are keyed by host name so the cursor survives refreshes. The
    columns fit the table's width (at 80 columns: no sparkline and no temperature)."""

    COLUMNS = COLUMNS
    DROP_ORDER = DROP_ORDER
    # a long host name (up to 63) is cut to this before CPU, memory and the rest give way to it
    SOFT_CAPS = {"host": 16}
    BINDINGS = [
        Binding("space", "toggle_nodes", "show/hide a Slurm partition's nodes", show=False),
        Binding("right", "expand", "show a Slurm partition's nodes", show=False),
        Binding("left", "collapse", "hide a Slurm partition's nodes", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._expanded: set[str] = set()  # before the table has an app
        self._all_cells: list[tuple[str, tuple]] = []
        self._all_widths: dict[str, int] | None = None

    @property
    def expanded(self) -> set[str]:
        """The Slurm hosts whose nodes are shown: one set for the app's fleet tables (the
        overview's and the hosts screen's), so a partition expanded in one is in the other."""
        if not self.is_attached:
            return self._expanded
        return self.app.__dict__.setdefault("_fleet_expanded", self._expanded)

    def show(self, rows: list[FleetRow], compact: bool = False, *, currency: str) -> None:
        """Show the hosts (cells built here; see `show_cells` for cells built in a worker)."""
        self.show_cells(fleet_cells(rows, compact, currency=currency), currency=currency)

    def show_cells(
        self, cells: list[tuple[str, tuple]], *, currency: str, widths: dict[str, int] | None = None
    ) -> None:
        """Patch changed cells in place; the highlighted host stays put."""
        self.set_currency(currency)
        self._all_cells, self._all_widths = cells, widths
        self._show_visible()

    def _show_visible(self) -> None:
        """Show the hosts, and the nodes of the expanded partitions. The columns are as wide as
        the rows SHOWN need: a collapsed partition's node (a long drain reason) widens no
        column, nor leaves a column of every host out; expanding it may widen some."""
        # a host gone, or no longer a Slurm partition, is not kept expanded
        partitions = self.partition_hosts
        self.expanded.intersection_update(partitions)
        shown = visible_cells(self._all_cells, self.expanded)
        widths = self._all_widths  # a worker's, over every row: right when no row is hidden
        if widths is None or partitions:
            widths = cell_widths(self.keys, shown)
        self.show_fitted(shown, widths)

    # -- a Slurm partition's row expands into its nodes ----------------------------------------

    @property
    def partition_hosts(self) -> set[str]:
        """The Slurm hosts shown, whose rows expand."""
        return {host_of(k) for k, _ in self._all_cells if NODE_SEP in k}

    def set_expanded(self, host: str, expand: bool) -> bool:
        """Show (or hide) the nodes of the Slurm host `host`; True when that changed anything."""
        if host not in self.partition_hosts or (host in self.expanded) == expand:
            return False
        keep = highlighted_key(self)
        if expand:
            self.expanded.add(host)
        else:
            self.expanded.discard(host)
        self._show_visible()
        if keep is not None and keep not in self.rows and host in self.rows:
            self.move_cursor(row=self.get_row_index(host), animate=False)  # a node row hidden
        return True

    def action_toggle_nodes(self) -> None:
        host = self.selected_host
        if host is not None:
            self.set_expanded(host, host not in self.expanded)

    def action_expand(self) -> None:
        if self.selected_host is not None:
            self.set_expanded(self.selected_host, True)

    def action_collapse(self) -> None:
        if self.selected_host is not None:
            self.set_expanded(self.selected_host, False)

    async def _on_click(self, event: events.Click) -> None:
        """A click on a partition's name (or one of its nodes' names) shows or hides its
        nodes; anywhere else, a click does what it does in any table."""
        meta = event.style.meta
        await super()._on_click(event)
        row, column = meta.get("row"), meta.get("column")
        if column != 0 or not isinstance(row, int) or not 0 <= row < self.row_count:
            return
        host = host_of(str(self.ordered_rows[row].key.value))
        self.set_expanded(host, host not in self.expanded)

    def set_currency(self, currency: str) -> None:
        """Label the price column with the lab currency (`$/h`, `€/h`, `CHF/h`)."""
        self.relabel("price", per_hour_label(currency))

    @property
    def selected_host(self) -> str | None:
        """The highlighted host's name, if any (a node's row: its partition's host)."""
        key = highlighted_key(self)
        return None if key is None else host_of(key)


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
        # neither until the first read says which: "No hosts yet" is not flashed at a lab that
        # has hosts while the console starts
        self.query_one(FleetTable).display = False
        self.query_one(EmptyFleet).display = False

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
