"""Cost: spend today and this week, by user and by project, idle money, and spend over time."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Sparkline, Static

from lepton_tui.screen_data import CostData
from lepton_tui.screens.live import LiveScreen
from lepton_tui.widgets.bars import money
from lepton_tui.widgets.cost import cost_renderable
from lepton_tui.widgets.fit import FitTable
from lepton_tui.widgets.header import LabHeader

SPANS = ((86400.0, "last 24 h"), (7 * 86400.0, "last 7 days"), (3600.0, "last hour"))


def breakdown(title: str, items: list[tuple[str, float]], total: float, currency: str) -> FitTable:
    """Spend by `title` (user or project) with each one's share; a narrow panel drops the share
    column before it would cut an amount."""
    rows: list[tuple[Text | str, ...]] = [
        (name, money(amount, currency), f"{100 * amount / total:.0f}%" if total else "-")
        for name, amount in items[:20]
    ]
    if not items:
        rows.append((Text("nothing spent yet", style="dim"), "", ""))
    return FitTable(rows, headers=(title, "spent", "share"), optional=(2,), gap=2)


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

    def view(self) -> tuple[str, dict[str, Any]]:
        span, _label = SPANS[self.span]
        return "cost", {"span_s": span}

    def prepare(self, data: CostData) -> Any:
        return data.panel, data.series, data.header

    def show(self, data: Any) -> None:
        panel, series, head = data
        self.query_one(LabHeader).show(head)
        self.app.note_header(head)
        self.query_one("#cost-summary", Static).update(cost_renderable(panel, top=0))
        total = panel.month if panel.breakdown_period == "this month" else panel.week
        cur = self.app.currency = panel.currency
        self.query_one("#cost-users", Static).update(
            breakdown("user", panel.by_user, total or 0, cur)
        )
        self.query_one("#cost-projects", Static).update(
            breakdown("project", panel.by_project, total or 0, cur)
        )
        # The period goes below: a narrow panel cuts a title, and it would cut the period.
        self.query_one("#cost-users").border_subtitle = panel.breakdown_period
        self.query_one("#cost-projects").border_subtitle = panel.breakdown_period
        chart = self.query_one("#cost-chart", Sparkline)
        chart.data = series
        _span, label = SPANS[self.span]
        peak = max(series) if series else 0.0
        chart.border_title = f"Spend, {label}: {money(sum(series), cur)}, peak {money(peak, cur)}"
        chart.border_subtitle = "w: change span"

    def action_span(self) -> None:
        self.span = (self.span + 1) % len(SPANS)
        self.reload()
