"""Cost: spend today and this week, by user and by project, idle money, and spend over time."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Sparkline, Static

from lepton_tui import views
from lepton_tui.screens.live import LiveScreen
from lepton_tui.widgets.bars import money
from lepton_tui.widgets.cost import cost_renderable
from lepton_tui.widgets.header import LabHeader

SPANS = ((86400.0, "last 24 h"), (7 * 86400.0, "last 7 days"), (3600.0, "last hour"))


def breakdown(title: str, items: list[tuple[str, float]], total: float, currency: str) -> Table:
    t = Table(box=None, expand=True, header_style="bold")
    t.add_column(title, no_wrap=True, overflow="ellipsis")
    t.add_column("spent", justify="right")
    t.add_column("share", justify="right")
    for name, amount in items[:20]:
        share = f"{100 * amount / total:.0f}%" if total else "-"
        t.add_row(name, money(amount, currency), share)
    if not items:
        t.add_row(Text("nothing spent yet", style="dim"), "", "")
    return t


class CostScreen(LiveScreen):
    """Money, by who and over time (`w` changes the chart's span)."""

    BINDINGS = [
        Binding("w", "span", "chart span"),
        Binding("escape", "app.switch_to('overview')", "back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="cost-screen")
        self.span = 0

    def compose(self) -> ComposeResult:
        yield LabHeader(id="lab-header")
        with Horizontal(id="cost-top"):
            yield Static(id="cost-summary", classes="panel")
            yield Static(id="cost-users", classes="panel")
            yield Static(id="cost-projects", classes="panel")
        yield Sparkline([], id="cost-chart", classes="panel")
        yield Static(id="cost-axis")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#cost-summary").border_title = "Spend"
        self.query_one("#cost-users").border_title = "By user"
        self.query_one("#cost-projects").border_title = "By project"

    def load(self) -> Any:
        now = self.app.clock()
        span, _label = SPANS[self.span]
        panel = views.cost_panel(self.app.ledger, now)
        series = views.cost_series(self.app.ledger, now, span_s=span, buckets=48)
        rows = views.fleet(self.app.ledger, now)
        queue = views.queue_window(self.app.ledger, now, limit=0)
        return panel, series, views.header(self.app.ledger, rows, panel, queue, self.app.demo)

    def show(self, data: Any) -> None:
        panel, series, head = data
        self.query_one(LabHeader).show(head)
        self.query_one("#cost-summary", Static).update(cost_renderable(panel, top=0))
        total = panel.month if panel.breakdown_period == "this month" else panel.week
        cur = self.app.currency = panel.currency
        self.query_one("#cost-users", Static).update(
            breakdown("user", panel.by_user, total or 0, cur)
        )
        self.query_one("#cost-projects", Static).update(
            breakdown("project", panel.by_project, total or 0, cur)
        )
        self.query_one("#cost-users").border_title = f"By user ({panel.breakdown_period})"
        self.query_one("#cost-projects").border_title = f"By project ({panel.breakdown_period})"
        chart = self.query_one("#cost-chart", Sparkline)
        chart.data = series
        _span, label = SPANS[self.span]
        peak = max(series) if series else 0.0
        chart.border_title = (
            f"Spend over the {label}: {money(sum(series), cur)}, peak {money(peak, cur)} per bucket"
        )
        chart.border_subtitle = "w: change span"

    def action_span(self) -> None:
        self.span = (self.span + 1) % len(SPANS)
        self.reload()
