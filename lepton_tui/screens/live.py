"""A screen whose panels refresh from the ledger without ever blocking the event loop.

`load()` runs in a thread worker (one at a time per screen, `exclusive`), posts its result as a
coalescing message, `show()` draws it on the loop, then a one-shot timer is re-armed. While another
screen or a modal is on top the tick only re-arms, so a hidden screen costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState, get_current_worker

from lepton_tui.errors import LeptonError

if TYPE_CHECKING:
    from lepton_tui.app import LeptonApp


class LiveScreen(Screen):
    """Base of every screen that shows ledger data."""

    if TYPE_CHECKING:
        app: LeptonApp  # type: ignore[assignment]  # this screen only runs in the console

    class Loaded(Message):
        """Fresh data for the screen; a newer one replaces a queued stale one."""

        def __init__(self, data: Any) -> None:
            super().__init__()
            self.data = data

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, LiveScreen.Loaded)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: Timer | None = None
        self.loads = 0
        self.last_error: str | None = None

    # -- to override ---------------------------------------------------------------------------

    def load(self) -> Any:
        """Read what the screen shows (runs in a thread: SQLite only, never Textual)."""
        return None

    def show(self, data: Any) -> None:
        """Draw `data` (runs on the event loop)."""

    # -- the refresh loop ----------------------------------------------------------------------

    def on_mount(self) -> None:
        self.reload()

    def on_screen_resume(self) -> None:
        if self.loads:
            self.reload()

    def reload(self) -> None:
        """Read again now (a running read is cancelled and replaced)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._load()

    @work(thread=True, exclusive=True, exit_on_error=False, group="live")
    def _load(self) -> None:
        worker = get_current_worker()
        data = self.load()
        if not worker.is_cancelled:
            self.post_message(self.Loaded(data))

    def on_live_screen_loaded(self, message: LiveScreen.Loaded) -> None:
        message.stop()
        self.loads += 1
        self.last_error = None
        self.show(message.data)
        self._arm()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "live" or event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        text = str(error) if isinstance(error, LeptonError) else f"{type(error).__name__}: {error}"
        if text != self.last_error:
            self.notify(f"cannot read the ledger: {text}", severity="error")
        self.last_error = text
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(getattr(self.app, "refresh_s", 2.0), self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.is_active:
            self._load()
        else:
            self._arm()
