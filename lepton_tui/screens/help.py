"""`?`: every key binding that works here, and what it does."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

GLOBAL_NOTES = (
    ("mouse", "click rows, buttons and tabs; scroll with the wheel"),
    ("tab / shift+tab", "move between panels and fields"),
    ("escape", "close a dialog or go back"),
)


class HelpScreen(ModalScreen[None]):
    """A table of bindings: the app's and the screen's below it."""

    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "close")]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__(classes="modal")
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for key, text in [*self.rows, *GLOBAL_NOTES]:
            table.add_row(key, text)
        with VerticalScroll(classes="dialog help"):
            yield Static(Text("Keys  (escape closes)", style="bold"))
            yield Static(table)


def binding_rows(app) -> list[tuple[str, str]]:
    """(key, description) for every binding active on the current screen, app ones included."""
    seen: dict[str, str] = {}
    for key, active in app.active_bindings.items():
        binding = active.binding
        text = binding.description or binding.action
        display = app.get_key_display(binding) if hasattr(app, "get_key_display") else key
        if text and display not in seen:
            seen[display] = text
    return sorted(seen.items(), key=lambda kv: (len(kv[0]) > 1, kv[0]))
