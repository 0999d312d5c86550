"""Text bars, GPU strips and sparklines as Rich `Text`, coloured like btop (green, amber, red)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Span, Text

from lepton_tui.fleet_view import FleetRow, GpuCell

BLOCKS = " ▁▂▃▄▅▆▇█"
FULL, EMPTY = "█", "░"
STATE_STYLE = {
    "up": "bold green",
    "down": "bold red",
    "unknown": "yellow",
    "draining": "bold magenta",
}


def level_style(percent: float | None) -> str:
    """Green below 50 %, amber below 80 %, red above."""
    if percent is None:
        return "dim"
    if percent < 50:
        return "green"
    if percent < 80:
        return "yellow"
    return "red"


class _Runs:
    """Builds a Text from (chunk, style) pieces with one span per run of equal style.

    Text.append per glyph costs ~30 us (control-code stripping, span bookkeeping); a fleet of 64
    hosts redraws ~3,000 glyphs a tick, so the plain string and spans are built by hand."""

    __slots__ = ("parts", "spans", "pos", "run_style", "run_start")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[Span] = []
        self.pos = 0
        self.run_style = ""
        self.run_start = 0

    def add(self, chunk: str, style: str) -> None:
        if style != self.run_style:
            self._close()
            self.run_style, self.run_start = style, self.pos
        self.parts.append(chunk)
        self.pos += len(chunk)

    def _close(self) -> None:
        if self.run_style and self.pos > self.run_start:
            self.spans.append(Span(self.run_start, self.pos, self.run_style))

    def text(self) -> Text:
        self._close()
        return Text("".join(self.parts), spans=self.spans, no_wrap=True, end="")


def bar(percent: float | None, width: int, label: bool = True) -> Text:
    """A horizontal bar `█████░░░ 62%` of `width` cells (plus the label)."""
    runs = _Runs()
    _bar_into(runs, percent, width, label)
    return runs.text()


def _bar_into(runs: _Runs, percent: float | None, width: int, label: bool) -> None:
    if percent is None:
        runs.add("·" * width + ("   -" if label else ""), "dim")
        return
    p = max(0.0, min(100.0, percent))
    filled = int(round(p / 100 * width))
    runs.add(FULL * filled, level_style(p))
    runs.add(EMPTY * (width - filled), "dim")
    if label:
        runs.add(f"{p:4.0f}%", "")


def glyph(percent: float | None) -> str:
    """One vertical block for a percentage."""
    if percent is None:
        return "·"
    p = max(0.0, min(100.0, percent))
    return BLOCKS[max(1, int(round(p / 100 * (len(BLOCKS) - 1))))]


def gpu_mem_percent(g: GpuCell) -> float | None:
    if g.mem_used_mb is None or not g.mem_total_mb:
        return None
    return 100.0 * g.mem_used_mb / g.mem_total_mb


def gpu_strip(gpus: Sequence[GpuCell], budget: int = 24) -> Text:
    """One small bar per GPU: utilisation as a bar, memory as the glyph after it."""
    if not gpus:
        return Text("no GPU", style="dim")
    per = max(1, min(6, budget // len(gpus) - 2))
    runs = _Runs()
    for i, g in enumerate(gpus):
        if i:
            runs.add(" ", "")
        if per == 1:
            runs.add(glyph(g.util), level_style(g.util))
        else:
            _bar_into(runs, g.util, per, False)
        mem = gpu_mem_percent(g)
        runs.add(glyph(mem), f"{level_style(mem)} dim" if mem is not None else "dim")
    return runs.text()


def sparkline(values: Sequence[float], width: int | None = None) -> Text:
    """Values 0..100 as block glyphs, oldest first, coloured by level."""
    vals = list(values)[-width:] if width else list(values)
    runs = _Runs()
    for v in vals:
        if v > 0:
            runs.add(glyph(v), level_style(v))
        else:
            runs.add("▁", "dim")
    return runs.text()


OUTSIDE_MARK = "⚠"  # GPUs used by processes lepton did not start


def host_text(row: FleetRow) -> Text:
    """The host's name, then `⚠2` when 2 of its GPUs are used by processes lepton did not start
    (placement gives them only what is really free; `hosts ls` and the hosts screen say which)."""
    text = Text(row.name, style="bold")
    if row.outside_gpus:
        text.append(f" {OUTSIDE_MARK}{len(row.outside_gpus)}", style="bold yellow")
    return text


def outside_count(rows: Sequence[FleetRow]) -> int:
    """How many GPUs of the fleet are used by processes lepton did not start."""
    return sum(len(r.outside_gpus) for r in rows)


def state_text(row: FleetRow) -> Text:
    state = row.shown_state
    return Text(state, style=STATE_STYLE.get(state, ""))


def heat_text(row: FleetRow) -> Text:
    """Hottest GPU and total GPU power, or the load average for GPU-less hosts."""
    temp, power = row.mean_temperature, row.total_power
    if temp is None and power is None:
        if row.load1 is None:
            return Text("-", style="dim")
        return Text(f"load {row.load1:.1f}", style="dim")
    parts = Text()
    if temp is not None:
        parts.append(f"{temp:.0f}°C", style="red" if temp >= 80 else "")
    if power is not None:
        parts.append(f" {power:.0f}W" if temp is not None else f"{power:.0f}W")
    return parts


def stranded_text(row: FleetRow, currency: str, compact: bool = False) -> Text:
    """Capacity free but unusable by the queued requests: GPUs and their hourly price, and CPUs
    where no queued request fits at all: `1.25 GPU $2.50/h`, `12 CPU` (`1.25g $2.50/h`, `12c`
    compact); `-` when nothing is stranded or nothing is queued."""
    gpus, cpus = row.stranded_gpus, row.stranded_cpus
    if not gpus and not cpus:
        return Text("-", style="dim")
    text = Text()
    if gpus:
        text.append(f"{gpus:.2f}", style="yellow")
        text.append("g" if compact else " GPU", style="dim")
        if row.stranded_per_hour:
            text.append(f" {money(row.stranded_per_hour, currency)}/h")
    if cpus:
        if gpus:
            text.append(" ")
        text.append(f"{cpus:g}", style="yellow")
        text.append("c" if compact else " CPU", style="dim")
    return text


# Currencies shown by their symbol; any other ISO code is written out (`CHF 2.00`).
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩"}


def currency_symbol(currency: str) -> str:
    """`$` for USD, `€` for EUR, `£` for GBP (a few more); else the code and a space: `CHF `."""
    code = (currency or "USD").upper()
    return SYMBOLS.get(code, f"{code} ")


def money(amount: float, currency: str) -> str:
    """An amount in the lab's currency (the `currency` setting) for a narrow panel: its symbol
    where it has a common one, cents below 100 and whole units above; `$2.00`, `€1,234`,
    `CHF 2.00`, `-£3.50`. The same amounts as `lepton-tui cost`, which prints full reports with
    cents and the code (`1,234.56 EUR`)."""
    sign = "-" if amount < 0 else ""
    value = abs(amount)
    digits = f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"
    return f"{sign}{currency_symbol(currency)}{digits}"


def per_hour_label(currency: str) -> str:
    """A column or field label for an hourly price: `$/h`, `€/h`, `CHF/h`."""
    return f"{currency_symbol(currency).strip()}/h"
