"""A yes/no question as a modal; dismisses with True or False."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmModal(ModalScreen[bool]):
    """Ask before something that cannot be undone (cancel a job, remove a host)."""

    BINDINGS = [
        Binding("escape,n", "answer(False)", "no"),
        Binding("y", "answer(True)", "yes"),
    ]

    def __init__(self, question: str, yes: str = "Yes", danger: bool = True) -> None:
        super().__init__(classes="modal")
        self.question = question
        self.yes = yes
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog confirm"):
            yield Static(self.question, classes="question")
            # Both buttons compact, so they sit on one row (a tall and a compact one did not).
            with Horizontal(classes="buttons"):
                yield Button(
                    f"{self.yes} (y)", id="yes", compact=True,
                    variant="error" if self.danger else "primary",
                )  # fmt: skip
                yield Button("No (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
