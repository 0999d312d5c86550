"""The cost panel: today, this week, the rate now, by user and project, and idle money."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from lepton_tui.views import CostPanel
from lepton_tui.widgets.bars import money
from lepton_tui.widgets.fit import FitTable


def cost_renderable(panel: CostPanel, top: int = 3) -> FitTable | Text:
    """A compact two-column summary of `panel` (amounts never cut, whatever the width)."""
    if not panel.hosts:
        return Text("Costs appear once hosts with a price are added.", style="dim")
    if not panel.priced_hosts:
        return Text(
            "No host has a price yet: set one when adding a host (price per hour).", style="dim"
        )
    cur = panel.currency
    rows: list[tuple[Text | str, Text | str]] = [
        ("Rate now", Text(f"{money(panel.rate_now, cur)}/h", style="bold")),
        ("Today", money(panel.today, cur)),
        ("This week", money(panel.week, cur)),
    ]
    if panel.month is not None:
        rows.append(("This month", money(panel.month, cur)))
    rows.append(
        (Text("Idle now", style="yellow"), Text(f"{money(panel.idle_rate, cur)}/h", style="yellow"))
    )
    rows.append(
        (Text("Idle today", style="yellow"), Text(money(panel.idle_today, cur), style="yellow"))
    )
    for title, items in (("user", panel.by_user), ("project", panel.by_project)):
        for name, amount in items[:top]:
            rows.append((Text(f"{title[0]}:{name}", style="dim"), money(amount, cur)))
    return FitTable(rows)


def _lines(content: FitTable | Text) -> object:
    """What decides the summary's height: its number of rows, or the words of a message."""
    return len(content.rows) if isinstance(content, FitTable) else content.plain


class CostSummary(Static):
    """The cost panel of the overview. The same panel again touches nothing; new amounts in as
    many rows repaint it without a layout of the screen (its size is the panel's, not its
    text's: only a new number of rows can change what scrolls)."""

    _panel: CostPanel | None = None
    _shape: object = None

    def show(self, panel: CostPanel) -> None:
        if panel == self._panel:
            return
        self._panel = panel
        content = cost_renderable(panel)
        shape = _lines(content)
        self.update(content, layout=shape != self._shape)
        self._shape = shape
