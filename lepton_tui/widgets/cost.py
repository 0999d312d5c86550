"""The cost panel: today, this week, the rate now, by user and project, and idle money."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from lepton_tui.views import CostPanel
from lepton_tui.widgets.bars import money


def cost_renderable(panel: CostPanel, top: int = 3) -> Table | Text:
    """A compact two-column summary of `panel`."""
    if not panel.hosts:
        return Text("Costs appear once hosts with a price are added.", style="dim")
    if not panel.priced_hosts:
        return Text(
            "No host has a price yet: set one when adding a host (price per hour).", style="dim"
        )
    t = Table.grid(padding=(0, 1), expand=True)
    t.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    t.add_column(justify="right", no_wrap=True)
    cur = panel.currency
    t.add_row("Rate now", Text(f"{money(panel.rate_now, cur)}/h", style="bold"))
    t.add_row("Today", money(panel.today, cur))
    t.add_row("This week", money(panel.week, cur))
    if panel.month is not None:
        t.add_row("This month", money(panel.month, cur))
    t.add_row(
        Text("Idle now", style="yellow"), Text(f"{money(panel.idle_rate, cur)}/h", style="yellow")
    )
    t.add_row(
        Text("Idle today", style="yellow"), Text(money(panel.idle_today, cur), style="yellow")
    )
    for title, items in (("user", panel.by_user), ("project", panel.by_project)):
        for name, amount in items[:top]:
            t.add_row(Text(f"{title[0]}:{name}", style="dim"), money(amount, cur))
    return t


class CostSummary(Static):
    """The cost panel of the overview."""

    def show(self, panel: CostPanel) -> None:
        self.update(cost_renderable(panel))
