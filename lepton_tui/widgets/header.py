"""The top line: lab name, policy in use, hosts up/total, jobs, spend rate now."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text
from textual.widgets import Static

from lepton_tui.views import Header
from lepton_tui.widgets.bars import money
from lepton_tui.widgets.sync import keeps_size

# Parts left out, in this order, when even the compact line is too wide: a part goes whole, so a
# number is never cut ("3 running, 3" for "3 running, 3 queued").
DROP_ORDER = ("policy", "lab", "hosts", "demo", "jobs")


def header_parts(
    h: Header, compact: bool = False, alert: str | None = None
) -> list[tuple[str, Text]]:
    """The header's parts, by name; `compact` drops the labels; `alert` (never dropped) goes
    first: the lab service is unreachable, or no dispatcher runs."""
    parts: list[tuple[str, Text]] = [("badge", Text(" lepton ", style="bold reverse"))]
    if alert:
        parts.append(("alert", Text(alert, style="bold red")))
    parts.append(("lab", Text(h.lab, style="bold")))
    if h.demo:
        parts.append(("demo", Text("DEMO", style="bold magenta")))
    policy = Text("policy ", style="dim")
    policy.append(h.policy, style="bold")
    parts.append(("policy", policy))
    style = "green" if h.hosts_total and h.hosts_up == h.hosts_total else "yellow"
    hosts = Text("" if compact else "hosts ", style="dim")
    hosts.append(f"{h.hosts_up}/{h.hosts_total} {'hosts ' if compact else ''}up", style=style)
    parts.append(("hosts", hosts))
    jobs = Text("" if compact else "jobs ", style="dim")
    jobs.append(f"{h.running} running, {h.queued} queued")
    parts.append(("jobs", jobs))
    spend = Text("" if compact else "spend ", style="dim")
    spend.append(f"{money(h.rate_now, h.currency)}/h", style="bold")
    parts.append(("spend", spend))
    return parts


def _join(parts: list[tuple[str, Text]], gap: str) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, (_name, part) in enumerate(parts):
        if i == 1:
            text.append(" ")
        elif i > 1:
            text.append(gap)
        text.append_text(part)
    return text


def header_text(h: Header, width: int = 200, alert: str | None = None) -> Text:
    """The header line for `width` cells: with labels where they fit, else without, else with
    whole parts left out (DROP_ORDER)."""
    full = _join(header_parts(h, alert=alert), "  ")
    if full.cell_len <= width:
        return full
    parts = header_parts(h, compact=True, alert=alert)
    for name in DROP_ORDER:
        text = _join(parts, " ")
        if text.cell_len <= width:
            return text
        parts = [p for p in parts if p[0] != name]
    return _join(parts, " ")


class HeaderLine:
    """The header, laid out for the width it is drawn in (so it follows a resize)."""

    def __init__(self, header: Header, alert: str | None = None) -> None:
        self.header = header
        self.alert = alert

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield header_text(self.header, options.max_width, self.alert)


class LabHeader(Static):
    """The header line above every screen's panels.

    A refresh with the same header and alert touches nothing; a new one repaints the line
    without a layout of the screen (its height is fixed: whatever it says, it keeps its size)."""

    header: Header | None = None
    alert: str | None = None
    _shown: tuple[Header | None, str | None] | None = None

    def show(self, h: Header) -> None:
        alert = getattr(self.app, "header_alert", None)
        self._draw(h, alert() if alert is not None else None)

    def set_alert(self, alert: str | None) -> None:
        """Say `alert` first (or stop saying it), over the last data shown."""
        self._draw(self.header, alert)

    def _draw(self, h: Header | None, alert: str | None) -> None:
        self.header, self.alert = h, alert
        if (h, alert) == self._shown or (h is None and not alert):
            return
        self._shown = (h, alert)
        content = HeaderLine(h, alert) if h is not None else Text(alert or "", style="bold red")
        self.update(content, layout=not keeps_size(self))
