"""Hosts: the fleet table with one host's details; drain/resume, remove, probe now."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Static

from lepton_tui import fleet_view
from lepton_tui.request_text import plural, size_words
from lepton_tui.screen_data import HostsData
from lepton_tui.screens.live import LiveScreen
from lepton_tui.validate import format_size_mb
from lepton_tui.widgets.bars import money
from lepton_tui.widgets.fleet import EmptyFleet, FleetPanel, FleetTable
from lepton_tui.widgets.header import LabHeader
from lepton_tui.widgets.sync import update_static


def host_details(
    host: dict[str, Any] | None, row: fleet_view.FleetRow | None, currency: str
) -> Table | Text:
    if host is None:
        return Text("Select a host to see its details.", style="dim")
    t = Table.grid(padding=(0, 2))
    t.add_column(style="dim")
    t.add_column()
    where = (
        "this machine"
        if host["transport"] == "local"
        else (f"{host['user'] + '@' if host['user'] else ''}{host['address']}:{host['port']}")
    )
    t.add_row("host", Text(host["name"], style="bold"))
    t.add_row("reach", where)
    t.add_row("state", f"{host['state']} ({host['admin_state']})")
    t.add_row(
        "capacity",
        f"{plural(host['cpus'] or 0, 'CPU')}, {size_words(host['mem_mb'] or 0)} memory, "
        f"{plural(host['gpus'] or 0, 'GPU')} {host['gpu_model'] or ''}".strip(),
    )
    price = host["price_per_hour"]
    t.add_row("price", f"{money(price, currency)}/h" if price else "none")
    if host["host_key_fingerprint"]:
        t.add_row("host key", f"{host['host_key_type']} {host['host_key_fingerprint']}")
    if row is not None and row.gpus:
        for g in row.gpus:
            mem = (
                f"{format_size_mb(g.mem_used_mb)}/{format_size_mb(g.mem_total_mb)}"
                if g.mem_total_mb
                else "-"
            )
            util = f"{g.util:.0f}%" if g.util is not None else "-"
            extra = f" {g.temperature_c:.0f}°C" if g.temperature_c is not None else ""
            extra += f" {g.power_w:.0f}W" if g.power_w is not None else ""
            cell = Text(f"util {util}  mem {mem}{extra}")
            outside = {o["gpu"]: o for o in host.get("outside_gpus") or ()}.get(g.index)
            if outside is not None:  # processes lepton did not start use it
                held = f"{format_size_mb(outside['outside_mb'])} " if outside["outside_mb"] else ""
                cell.append(f"  {held}in use outside lepton", style="yellow")
            t.add_row(f"GPU {g.index}", cell)
    if host["last_error"]:
        t.add_row("last error", Text(host["last_error"], style="red"))
    return t


class HostsScreen(LiveScreen):
    """All hosts, with the highlighted one's details."""

    AUTO_FOCUS = "FleetTable"
    BINDINGS = [
        Binding("d", "drain", "drain/resume"),
        Binding("x,delete", "remove", "remove"),
        Binding("p", "probe", "probe now"),
        Binding("escape", "app.switch_to('overview')", "back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="hosts")
        self.rows: dict[str, fleet_view.FleetRow] = {}
        self.hosts: dict[str, dict[str, Any]] = {}
        self.currency = "USD"  # the lab's, from the first read on

    def compose(self) -> ComposeResult:
        yield LabHeader(id="lab-header")
        yield FleetPanel(self.app.local_name, id="fleet")
        yield Static(id="host-details", classes="panel")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#host-details").border_title = "Details"

    def view(self) -> tuple[str, dict[str, Any]]:
        return "hosts", {}

    def prepare(self, data: HostsData) -> Any:
        return data.fleet, data.hosts, data.header

    def show(self, data: Any) -> None:
        rows, self.hosts, head = data
        self.rows = {r.name: r for r in rows}
        self.app.note_header(head)
        self.currency = head.currency
        self.query_one(LabHeader).show(head)
        self.query_one(FleetPanel).show(rows, currency=head.currency)
        table = self.query_one(FleetTable)
        if rows and (self.focused is None or not self.focused.visible or self.loads == 1):
            table.focus()
        self._details()

    @property
    def selected_host(self) -> str | None:
        return self.query_one(FleetTable).selected_host

    @on(DataTable.RowHighlighted)
    def _details(self) -> None:
        host, row = (
            self.hosts.get(self.selected_host or ""),
            self.rows.get(self.selected_host or ""),
        )
        update_static(
            self.query_one("#host-details", Static),
            (host, row, self.currency),
            lambda: host_details(host, row, self.currency),
        )

    def action_drain(self) -> None:
        self.app.toggle_drain(self.selected_host)

    def action_remove(self) -> None:
        self.app.confirm_remove(self.selected_host)

    def action_probe(self) -> None:
        name = self.selected_host
        if name is None or name not in self.hosts:
            self.notify("select a host first", severity="warning")
            return
        if self.app.lab:  # this console cannot reach hosts as the lab does
            self.notify(
                "the lab service polls every host each tick: its state and last error show here",
                timeout=6,
            )
            return
        self.notify(f"probing {name}...", timeout=2)
        self._probe(dict(self.hosts[name]))

    @work(thread=True, exit_on_error=False, group="probe")
    def _probe(self, host: dict[str, Any]) -> None:
        from lepton_tui.screens.onboard import probe_now

        result = probe_now(self.app.svc, host)
        severity = "information" if result.ok else "error"
        self.app.call_from_thread(
            self.notify,
            f"{host['name']}:\n" + "\n".join(result.lines),
            severity=severity,
            timeout=10,
            markup=False,  # what the host reported: text, never markup (`[/]` would not parse)
        )

    @on(EmptyFleet.AddLocal)
    def _add_local(self) -> None:
        self.app.add_local_host()

    @on(EmptyFleet.AddSSH)
    def _add_ssh(self) -> None:
        self.app.action_add_host()
