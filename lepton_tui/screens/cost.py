"""Cost: spend today and this week, by user and by project, idle money, and spend over time."""

from __future__ import annotations

from functools import partial
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
from lepton_tui.widgets.sync import set_titles, update_static

SPANS = ((86400.0, "last 24 h"), (7 * 86400.0, "last 7 days"), (3600.0, "last hour"))


def breakdown(
    title: str, items: list[tuple[str, float]], total: float, currency: str,
    fair: dict[str, float] | None = None,
) -> FitTable:  # fmt: skip
    """Spend by `title` (user or project) with each one's share, and with `fair` its fair-share
    factor (`share ls`); a narrow panel drops those columns before it would cut an amount."""
    rows: list[tuple[Text | str, ...]] = [
        (name, money(amount, currency), f"{100 * amount / total:.0f}%" if total else "-")
        + ((f"{fair[name]:.2f}" if name in fair else "-",) if fair is not None else ())
        for name, amount in items[:20]
    ]
    headers: tuple[str, ...] = (title, "spent", "share") + (("fair",) if fair is not None else ())
    if not items:
        rows.append((Text("nothing spent yet", style="dim"), *[""] * (len(headers) - 1)))
    optional = (2, 3) if fair is not None else (2,)
    return FitTable(rows, headers=headers, optional=optional, gap=2)


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
        return data.panel, data.series, data.header, data.fair

    def show(self, data: Any) -> None:
        panel, series, head, fair = data
        fair = fair or {"user": {}, "project": {}}
        self.query_one(LabHeader).show(head)
        self.app.note_header(head)
        update_static(
            self.query_one("#cost-summary", Static), panel, lambda: cost_renderable(panel, top=0)
        )
        total = panel.month if panel.breakdown_period == "this month" else panel.week
        cur = self.app.currency = panel.currency
        for kind, items in (("user", panel.by_user), ("project", panel.by_project)):
            made_of = (kind, items, total or 0, cur, fair[kind])
            update_static(
                self.query_one(f"#cost-{kind}s", Static), made_of, partial(breakdown, *made_of)
            )
            # The period goes below: a narrow panel cuts a title, and it would cut the period.
            set_titles(self.query_one(f"#cost-{kind}s"), subtitle=panel.breakdown_period)
        chart = self.query_one("#cost-chart", Sparkline)
        chart.data = series
        _span, label = SPANS[self.span]
        peak = max(series) if series else 0.0
        set_titles(
            chart,
            f"Spend, {label}: {money(sum(series), cur)}, peak {money(peak, cur)}",
            "w: change span",
        )

    def action_span(self) -> None:
        self.span = (self.span + 1) % len(SPANS)
        self.reload()
