"""A screen whose panels refresh from the ledger without ever blocking the event loop.

Personal mode: `load()` runs in a thread worker (one at a time per screen, `exclusive`), posts its
result as a coalescing message, `show()` draws it on the loop, then a one-shot timer is re-armed.
While another screen or a modal is on top the tick only re-arms, so a hidden screen costs nothing.

Lab mode: a thread worker holds a `watch` stream of the screen's view; the lab service pushes the
data on its tick and when the ledger changes, and the console sends no request per refresh. When
the service goes away the header says "reconnecting", the last data stays, and the worker tries
again (1 s, then up to the tick) until the service is back. A hidden screen closes its stream.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from textual import work
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState, get_current_worker

from lepton_tui.errors import LeptonError

RETRY_FIRST_S = 1.0  # the first try to reach a lab service that went away; then doubling

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
        self._stream: Any = None  # lab mode: the open watch stream, closed from the loop
        self._watching = False  # lab mode: a watch worker runs for this screen

    # -- to override ---------------------------------------------------------------------------

    def view(self) -> tuple[str, dict[str, Any]] | None:
        """The view this screen shows and its arguments (`screen_data.read_view`); None: no view."""
        return None

    def prepare(self, data: Any) -> Any:
        """Turn the view's data into what `show` takes (runs in the thread: build cells here)."""
        return data

    def load(self) -> Any:
        """Read what the screen shows (runs in a thread: SQLite or the socket, never Textual)."""
        wanted = self.view()
        if wanted is None:
            return None
        name, args = wanted
        return self.prepare(self.app.source.read(name, args, self.app.clock()))

    def show(self, data: Any) -> None:
        """Draw `data` (runs on the event loop)."""

    # -- the refresh loop ----------------------------------------------------------------------

    def on_mount(self) -> None:
        self.reload()

    def on_screen_resume(self) -> None:
        if self._streams():
            if not self._watching:  # shown again: watch again (the first show already does)
                self.reload()
        elif self.loads:
            self.reload()

    def on_screen_suspend(self) -> None:
        if self._streams():  # hidden: the service stops pushing to this screen
            self._watching = False
            self.workers.cancel_group(self, "live")
            self._close_stream()

    def on_unmount(self) -> None:
        self._close_stream()

    def _streams(self) -> bool:
        return bool(getattr(self.app.source, "streams", False)) and self.view() is not None

    def reload(self) -> None:
        """Read again now (a running read is cancelled and replaced)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self._streams():
            # cancelled before its stream closes: woken by the close, the old worker must not
            # take the end of its stream for a lost reader or lab service
            self.workers.cancel_group(self, "live")
            self._close_stream()
            self._watching = True
            self._watch()
        else:
            self._load()

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    @work(thread=True, exclusive=True, exit_on_error=False, group="live")
    def _watch(self) -> None:
        """Lab mode: show what the service pushes; when it goes away, say so and try again."""
        from lepton_tui.client import ServiceUnreachable

        worker = get_current_worker()
        wanted = self.view()
        if wanted is None:
            return
        name, args = wanted
        tick = float(getattr(self.app, "refresh_s", 2.0))
        delay = RETRY_FIRST_S
        while not worker.is_cancelled:
            stream = None
            try:
                stream = self.app.source.watch(name, args, tick)
                if worker.is_cancelled:
                    stream.close()
                    return
                self._stream = stream
                for data in stream:
                    if worker.is_cancelled:
                        return
                    delay = RETRY_FIRST_S
                    prepared = self.prepare(data)  # waits for input to go quiet: a reload
                    if worker.is_cancelled:  # meanwhile (a filter typed) made this data stale
                        return
                    self.post_message(self.Loaded(prepared))
                if worker.is_cancelled:
                    return
                raise ServiceUnreachable("the lab service ended the stream")
            except ServiceUnreachable as exc:
                if worker.is_cancelled:
                    return
                self.app.call_from_thread(self.app.link_lost, str(exc))
            except LeptonError as exc:  # refused (too many consoles, a bad view): say it once
                if worker.is_cancelled:
                    return
                self.post_message(self.Failed(str(exc)))
                delay = max(delay, tick)
            finally:
                if stream is not None:
                    stream.close()
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                if worker.is_cancelled:
                    return
                time.sleep(0.05)
            delay = min(delay * 2, max(tick, RETRY_FIRST_S))

    class Failed(Message):
        """A read failed with a message to show (once while it repeats)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def on_live_screen_failed(self, message: LiveScreen.Failed) -> None:
        message.stop()
        if message.text != self.last_error:
            where = getattr(self.app.source, "where", "the lab service")
            self.notify(f"cannot read {where}: {message.text}", severity="error", markup=False)
        self.last_error = message.text

    @work(thread=True, exclusive=True, exit_on_error=False, group="live")
    def _load(self) -> None:
        worker = get_current_worker()
        data = self.load()
        self.app.yield_to_input()  # a key press is drawn before the refresh is patched in
        if not worker.is_cancelled:
            self.post_message(self.Loaded(data))

    def on_live_screen_loaded(self, message: LiveScreen.Loaded) -> None:
        message.stop()
        self.loads += 1
        self.last_error = None
        self.app.link_ok()
        self.show(message.data)
        if self.loads == 1:
            self.app.tune_runtime()
        if not self._streams():
            self._arm()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "live" or event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        text = str(error) if isinstance(error, LeptonError) else f"{type(error).__name__}: {error}"
        if text != self.last_error:
            self.notify(f"cannot read the ledger: {text}", severity="error", markup=False)
        self.last_error = text
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(getattr(self.app, "refresh_s", 2.0), self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.is_active:
            if self._streams():  # a watch that failed on something unexpected: watch again
                self.reload()
            else:
                self._load()
        else:
            self._arm()
