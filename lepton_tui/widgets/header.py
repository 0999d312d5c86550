"""The top line: lab name, policy in use, hosts up/total, spend rate now."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from lepton_tui.views import Header
from lepton_tui.widgets.bars import money


def header_text(h: Header, compact: bool = False) -> Text:
    """The header line; `compact` drops the labels so it fits 80 columns."""
    gap = " " if compact else "  "
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(" lepton ", style="bold reverse")
    text.append(f" {h.lab}", style="bold")
    if h.demo:
        text.append(f"{gap}DEMO", style="bold magenta")
    text.append(f"{gap}policy ", style="dim")
    text.append(h.policy, style="bold")
    text.append(gap if compact else "  hosts ", style="dim")
    style = "green" if h.hosts_total and h.hosts_up == h.hosts_total else "yellow"
    text.append(f"{h.hosts_up}/{h.hosts_total} {'hosts ' if compact else ''}up", style=style)
    text.append(gap if compact else "  jobs ", style="dim")
    text.append(f"{h.running} running, {h.queued} queued")
    text.append(f"{gap}spend " if not compact else gap, style="dim")
    text.append(f"{money(h.rate_now, h.currency)}/h", style="bold")
    return text


class LabHeader(Static):
    """The header line above every screen's panels."""

    def show(self, h: Header) -> None:
        self.update(header_text(h, compact=self.app.size.width < 100))
