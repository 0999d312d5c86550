"""Text bars, GPU strips and sparklines as Rich `Text`, coloured like btop (green, amber, red)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from lepton_tui.views import FleetRow, GpuCell

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


def bar(percent: float | None, width: int, label: bool = True) -> Text:
    """A horizontal bar `█████░░░ 62%` of `width` cells (plus the label)."""
    if percent is None:
        text = Text("·" * width, style="dim")
        if label:
            text.append("   -", style="dim")
        return text
    p = max(0.0, min(100.0, percent))
    filled = int(round(p / 100 * width))
    text = Text(FULL * filled, style=level_style(p))
    text.append(EMPTY * (width - filled), style="dim")
    if label:
        text.append(f"{p:4.0f}%")
    return text


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
    text = Text()
    for i, g in enumerate(gpus):
        if i:
            text.append(" ")
        if per == 1:
            text.append(glyph(g.util), style=level_style(g.util))
        else:
            text.append_text(bar(g.util, per, label=False))
        mem = gpu_mem_percent(g)
        text.append(glyph(mem), style=f"{level_style(mem)} dim" if mem is not None else "dim")
    return text


def sparkline(values: Sequence[float], width: int | None = None) -> Text:
    """Values 0..100 as block glyphs, oldest first, coloured by level."""
    vals = list(values)[-width:] if width else list(values)
    if not vals:
        return Text("")
    text = Text()
    for v in vals:
        text.append(glyph(v) if v > 0 else "▁", style=level_style(v) if v > 0 else "dim")
    return text


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


def money(amount: float) -> str:
    """Dollars with cents below $100 and whole dollars above."""
    if abs(amount) >= 100:
        return f"${amount:,.0f}"
    return f"${amount:,.2f}"
