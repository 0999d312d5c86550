"""The Textual console, built by one factory: `make_app(...)`.

Personal mode: the app owns a `Service` (every change goes through it) and, unless another process
holds the ledger's lock, a dispatcher running in a background thread. Lab mode (a socket is
configured): the app opens no ledger and starts no dispatcher; its `svc` is a client of the lab
service and its screens watch views the service pushes. Either way screens read in thread workers
(`screens/live.py`, through `self.source`); writes run in thread workers too, so the event loop
never waits on SQLite, the socket or SSH. The console never imports torch.
"""

from __future__ import annotations

import errno
import gc
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual import events, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.theme import Theme

from lepton_tui.console_prefs import save_pref, saved_theme
from lepton_tui.console_source import ClientPool, LabSource, LedgerSource, ReaderSource
from lepton_tui.errors import LeptonError
from lepton_tui.local_state import local_host_name
from lepton_tui.service import Service
from themes import CSS_PATHS, CYCLE, DEFAULT_THEME, THEMES

NO_DISPATCHER = "no dispatcher is running: jobs wait until `lepton-tui serve` runs"
MAX_THEME_SHOWN = 40  # an unknown theme's name is cut to this in its warning
# The collector's thresholds once the console has shown its first data (Python's are 700, 10, 10).
# A refresh allocates some 100,000 short-lived objects; at Python's thresholds that set off a full
# collection every few refreshes, each scanning the whole of Textual and Rich: 50 to 200 ms with
# the event loop stopped (a key press waits). The console freezes what it holds after start-up
# (`gc.freeze`: never scanned again) and collects the young generation less often.
GC_THRESHOLDS = (10_000, 50, 100)
# How long a thread may hold the interpreter while another waits for it (Python's is 5 ms). The
# event loop needs it several times to take in a key press and draw it while a refresh worker
# runs; on a loaded machine each wait is the worker's turn on a CPU.
SWITCH_INTERVAL_S = 0.001
# A refresh worker steps aside while the user acts: between the pieces of a read, and before it
# hands its data over, it sleeps (the GIL released) until the last key press, click or scroll has
# been drawn and is INPUT_QUIET_S old, so the event loop answers without sharing the interpreter
# and before it patches the refresh in; at most YIELD_MAX_S per pause.
INPUT_QUIET_S = 0.03
YIELD_MAX_S = 0.5
_INPUT_EVENTS = (events.Key, events.MouseDown, events.MouseScrollDown, events.MouseScrollUp)

SCREEN_KEYS = {
    "overview": ("1", "Overview: fleet, queue and cost"),
    "hosts": ("2", "Hosts: details, drain, remove, probe"),
    "queue": ("3", "Queue: filter, sort, select"),
    "cost": ("4", "Cost: spend by user and project, over time"),
    "scheduler": ("5", "Scheduler: policy, decisions, why pending"),
}


def _screen_factory(name: str) -> Callable[[], Screen]:
    def make() -> Screen:
        if name == "overview":
            from lepton_tui.screens.overview import OverviewScreen

            return OverviewScreen()
        if name == "hosts":
            from lepton_tui.screens.hosts import HostsScreen

            return HostsScreen()
        if name == "queue":
            from lepton_tui.screens.queue import QueueScreen

            return QueueScreen()
        if name == "cost":
            from lepton_tui.screens.cost import CostScreen

            return CostScreen()
        from lepton_tui.screens.scheduler import SchedulerScreen

        return SchedulerScreen()

    return make


class LeptonApp(App[None]):
    """The lab console."""

    TITLE = "lepton-tui"
    CSS_PATH = CSS_PATHS
    MODES = {name: _screen_factory(name) for name in SCREEN_KEYS}
    DEFAULT_MODE = "overview"
    BINDINGS = [
        Binding("question_mark", "help", "help"),
        Binding("colon", "command_palette", "commands", show=False),
        Binding("ctrl+p", "command_palette", "commands", show=False, priority=True),
        Binding("a", "add_host", "add host", key_display="a"),
        Binding("s", "submit", "submit"),
        Binding("t", "cycle_theme", "theme", show=False),
        Binding("q", "quit", "quit"),
        *(
            Binding(key, f"switch_to('{name}')", name, show=False)
            for name, (key, _) in SCREEN_KEYS.items()
        ),
    ]

    def __init__(
        self,
        svc: Service | ClientPool,
        *,
        clock: Callable[[], float] = time.time,
        theme: str | None = None,
        refresh_s: float = 2.0,
        demo: Any = None,
        dispatch: bool = True,
        dispatch_retry_s: float = 5.0,
        cleanup: Iterable[Path] = (),
        source: Any = None,
    ) -> None:
        super().__init__()
        self.svc = svc
        # where the screens read: the ledger, or the lab service (then there is no ledger here)
        self.source: Any = source or LedgerSource(svc, demo=demo is not None)
        self.lab = bool(self.source.lab)
        self.ledger: Any = None if self.lab else svc.ledger
        # lab mode: why the lab service cannot be reached now (None while it answers)
        self.link_error: str | None = None
        self.clock = clock
        self.refresh_s = refresh_s
        self.demo_driver = demo
        self.demo = demo is not None
        self.dispatch = dispatch and demo is None and not self.lab
        self.dispatch_retry_s = dispatch_retry_s
        self.dispatcher_handle: Any = None
        # the dispatcher starts in a worker: `shutdown` may come first (a console closed at once)
        self._dispatch_guard = threading.Lock()
        self._closing = False
        self._dispatch_error: str | None = None
        self.local_name = local_host_name()
        self._cleanup = list(cleanup)
        # `--theme` wins for this run; else the theme this user chose last (console_prefs).
        self._wanted_theme = theme or saved_theme() or DEFAULT_THEME
        self._prefs_warned = False
        # The lab currency (setting `currency`) for labels outside loaded data (the add-host
        # form); the main screens refresh it with every read.
        self.currency = "USD" if self.lab else _ledger_currency(svc)
        # Whether this machine is a host already, as the last header read said (the command
        # palette offers "Add this machine" only while it is not).
        self.local_host_added = False
        self._gc_before: tuple[int, int, int] | None = None  # thresholds to restore at exit
        self._switch_before = 0.0  # the interpreter's switch interval, to restore at exit
        self.input_at = float("-inf")  # monotonic time of the last key press, click or scroll
        self._inputs = self._inputs_drawn = 0  # input events seen; of them, drawn since
        if isinstance(self.source, LedgerSource):
            self.source.pause = self.yield_to_input
        if isinstance(self.source, ReaderSource):
            self.source.notice = self._reader_notice
        for t in THEMES:
            self.register_theme(t)

    # -- life cycle ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self._wanted_theme not in self.available_themes:
            name = self._wanted_theme
            if len(name) > MAX_THEME_SHOWN:  # a huge --theme is not echoed whole (issue 14)
                name = f"{name[:MAX_THEME_SHOWN]}... ({len(name):,} characters)"
            known = ", ".join(t.name for t in THEMES)
            self.notify(
                f"unknown theme {name!r}; using {DEFAULT_THEME} (themes: {known})",
                severity="warning", markup=False,  # the name is what the user typed
            )  # fmt: skip
            self._wanted_theme = DEFAULT_THEME
        self.theme = self._wanted_theme
        # From now on a theme chosen here (`t`, or the palette's theme picker) is kept.
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        if self.demo_driver is not None:
            self.demo_driver.start()
        elif self.dispatch:
            self._start_dispatcher()

    @work(thread=True, exit_on_error=False, group="dispatcher")
    def _start_dispatcher(self) -> None:
        """Dispatch here unless another process (`lepton-tui serve`) holds the ledger's lock; then
        only show, and take over (checking every `dispatch_retry_s`) when that process stops."""
        from lepton_tui.dispatch.loop import Dispatcher

        dispatcher = None
        try:
            with self._dispatch_guard:
                if self._closing:  # closed before this worker ran: start nothing
                    return
                dispatcher = Dispatcher(self.svc, clock=self.clock)
                self.dispatcher_handle = dispatcher.start_in_thread(retry_s=self.dispatch_retry_s)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                self._dispatch_failed(f"dispatcher failed to start: {exc}", dispatcher)
                return
            # Another user's console (no write access to the state directory): only show.
            where = f" ({exc.filename})" if exc.filename else ""
            self._dispatch_failed(
                f"this console only shows: it cannot take the dispatcher lock{where}; jobs start "
                "while `lepton-tui serve` runs as the ledger's owner (ask an admin)",
                dispatcher,
                severity="warning",
            )
        except Exception as exc:  # noqa: BLE001 - the console still shows without it
            self._dispatch_failed(f"dispatcher failed to start: {exc}", dispatcher)

    def _dispatch_failed(
        self, message: str, dispatcher: Any, severity: SeverityLevel = "error"
    ) -> None:
        """Say why this console does not dispatch (one line), and let go of what was opened."""
        self._dispatch_error = message
        if dispatcher is not None:
            try:
                dispatcher.close()
            except Exception:  # noqa: BLE001 - nothing more to release
                pass
        self.call_from_thread(self.notify, message, severity=severity, timeout=10, markup=False)

    @property
    def dispatch_note(self) -> str:
        """Who dispatches for this ledger, in words."""
        if self.demo:
            return "the demo's simulator places jobs"
        if self.lab:
            return f"the lab service dispatches ({self.source.socket_path})"
        if self._dispatch_error:
            return self._dispatch_error
        handle = self.dispatcher_handle
        if handle is None:
            return "not dispatching"
        if handle.dispatching:
            return "dispatching in this console"
        return "another process dispatches (lepton-tui serve); this console only shows"

    def header_alert(self) -> str | None:
        """What the header must say before anything else: the lab service is unreachable, or
        (personal mode) this console could not start its dispatcher and none other runs."""
        if self.lab:
            if self.link_error is not None:
                return "reconnecting to the lab service: showing the last data"
            return None
        if self._dispatch_error and not self.demo and not self.svc.dispatcher_running():
            return NO_DISPATCHER
        return None

    def link_lost(self, why: str) -> None:
        """Lab mode: the service went away; keep the last data, say so in every header."""
        if self.link_error is None:
            self.log.warning(f"lab service lost: {why}")
            # said once, for the screens without a header line too (the queue)
            self.notify(f"{why}; reconnecting", severity="warning", timeout=6, markup=False)
        self.link_error = why
        self._show_alert()

    def link_ok(self) -> None:
        """Data arrived: the lab service (or the ledger) answers again."""
        if self.link_error is not None:
            self.link_error = None
            self.notify("the lab service is back", timeout=3)
            self._show_alert()

    def _show_alert(self) -> None:
        from lepton_tui.widgets.header import LabHeader

        alert = self.header_alert()
        for screen in self.screen_stack:
            for head in screen.query(LabHeader):
                head.set_alert(alert)

    def _reader_notice(self, text: str) -> None:
        """The reader process is gone for good (called from a screen's worker): say it once."""
        self.log.warning(text)
        self.call_from_thread(self.notify, text, severity="warning", timeout=10, markup=False)

    def on_unmount(self) -> None:
        self.shutdown()

    async def on_event(self, event: events.Event) -> None:
        if not isinstance(event, _INPUT_EVENTS):
            await super().on_event(event)
            return
        self.input_at = time.monotonic()
        self._inputs += 1
        seen = self._inputs
        await super().on_event(event)
        self.call_after_refresh(self._input_drawn, seen)

    def _input_drawn(self, seen: int) -> None:
        self._inputs_drawn = max(self._inputs_drawn, seen)

    def yield_to_input(self) -> None:
        """Called by refresh workers (never on the event loop): wait while the user's last input
        is not drawn yet or younger than `INPUT_QUIET_S`, at most `YIELD_MAX_S`."""
        deadline = time.monotonic() + YIELD_MAX_S
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            if self._inputs_drawn >= self._inputs and now - self.input_at >= INPUT_QUIET_S:
                return
            time.sleep(0.002)

    def tune_runtime(self) -> None:
        """Once the first data is shown: freeze what start-up made, collect less often
        (`GC_THRESHOLDS`) and let the event loop have the interpreter sooner
        (`SWITCH_INTERVAL_S`); `shutdown` undoes it (tests run many consoles in one process)."""
        if self._gc_before is not None:
            return
        self._gc_before = gc.get_threshold()
        self._switch_before = sys.getswitchinterval()
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        sys.setswitchinterval(SWITCH_INTERVAL_S)

    def _restore_runtime(self) -> None:
        before, self._gc_before = self._gc_before, None
        if before is not None:
            gc.set_threshold(*before)
            gc.unfreeze()
            sys.setswitchinterval(self._switch_before)

    def shutdown(self) -> None:
        """Stop the demo or dispatcher thread, close the ledger, remove temporary state."""
        if self.demo_driver is not None:
            self.demo_driver.stop()
        with self._dispatch_guard:
            self._closing = True
            handle, self.dispatcher_handle = self.dispatcher_handle, None
        if handle is not None:
            try:
                handle.stop(timeout=10)
            except Exception:  # noqa: BLE001 - leaving anyway
                pass
        if isinstance(self.source, ReaderSource):
            self.source.close()  # the reader process ends with the console
        self.svc.close()
        self._restore_runtime()
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)
        self._cleanup = []

    # -- navigation ---------------------------------------------------------------------------

    def action_switch_to(self, name: str) -> None:
        self.switch_to(name)

    def switch_to(self, name: str) -> None:
        """Show one of the main screens."""
        if isinstance(self.screen, Screen) and self.screen.is_modal:
            return
        self.switch_mode(name)

    def open_job(self, job_id: int | None, logs: bool = False) -> None:
        """The job detail screen (with the log in front when `logs`)."""
        if job_id is None:
            self.notify("select a job first", severity="warning")
            return
        from lepton_tui.screens.job import JobScreen

        self.push_screen(JobScreen(int(job_id), logs=logs))

    def action_help(self) -> None:
        from lepton_tui.screens.help import HelpScreen, binding_rows

        rows = binding_rows(self)
        rows += [(key, text) for key, text in SCREEN_KEYS.values()]
        self.push_screen(HelpScreen(rows))

    def action_cycle_theme(self) -> None:
        current = self.theme if self.theme in CYCLE else CYCLE[-1]
        self.theme = CYCLE[(CYCLE.index(current) + 1) % len(CYCLE)]
        self.notify(f"theme {self.theme}", timeout=2)

    def _theme_changed(self, theme: Theme) -> None:
        if theme.name != self._wanted_theme:
            self._wanted_theme = theme.name
            self._keep_theme(theme.name)

    @work(thread=True, exclusive=True, exit_on_error=False, group="prefs")
    def _keep_theme(self, name: str) -> None:
        """Save the chosen theme for this user's next console (a file write: in a thread)."""
        try:
            save_pref("theme", name)
        except OSError as exc:
            if not self._prefs_warned:  # once: pressing `t` again would only repeat it
                self._prefs_warned = True
                self.call_from_thread(
                    self.notify, f"theme {name} not kept for next time: {exc}", severity="warning",
                    markup=False,
                )  # fmt: skip

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for name, (_key, text) in SCREEN_KEYS.items():
            yield SystemCommand(f"Go to {name}", text, lambda n=name: self.switch_to(n))
        yield SystemCommand("Submit a job", "Open the submit form", self.action_submit)
        yield SystemCommand("Add a host", "Open the add-host form", self.action_add_host)
        if not self.local_host_added and not self.lab:
            yield SystemCommand(
                "Add this machine", f"Add {self.local_name} as a host", self.add_local_host
            )

    # -- actions that change state (through the service, in threads) --------------------------

    def action_submit(self) -> None:
        from lepton_tui.screens.submit import SubmitJobModal

        def done(job_id: int | None) -> None:
            if job_id is not None:
                self.notify(f"job {job_id} queued")
                self.refresh_screen()

        self.push_screen(SubmitJobModal(), done)

    def action_add_host(self, local: bool = False) -> None:
        if self.lab:  # the form checks the host from this machine; the lab service must
            self.notify(
                "in lab mode an admin adds hosts with `lepton-tui hosts add NAME --address ...`",
                severity="warning", timeout=8,
            )  # fmt: skip
            return
        from lepton_tui.screens.addhost import AddHostModal

        def done(name: str | None) -> None:
            if name:
                self.notify(f"host {name} added")
                self.refresh_screen()

        self.push_screen(AddHostModal(self.local_name, local=local), done)

    def add_local_host(self) -> None:
        """The login node itself as the first host (the form, pre-filled, with its preflight)."""
        self.action_add_host(local=True)

    def confirm_cancel(self, job_id: int | None) -> None:
        """Ask, then cancel one job."""
        if job_id is None:
            self.notify("select a job first", severity="warning")
            return
        from lepton_tui.screens.confirm import ConfirmModal

        def answer(yes: bool | None) -> None:
            if yes:
                self.run_change(lambda: self.svc.cancel([job_id])[0], "cancel")

        self.push_screen(ConfirmModal(f"Cancel job {job_id}?", yes="Cancel job"), answer)

    def toggle_drain(self, host: str | None) -> None:
        """Drain an active host, resume a draining one."""
        if host is None:
            self.notify("select a host first", severity="warning")
            return

        def change() -> str:
            row = self.svc.get_host(host)
            draining = row["admin_state"] != "draining"
            self.svc.set_draining(host, draining)
            return f"host {host} {'draining' if draining else 'resumed'}"

        self.run_change(change, "drain")

    def confirm_remove(self, host: str | None) -> None:
        if host is None:
            self.notify("select a host first", severity="warning")
            return
        from lepton_tui.screens.confirm import ConfirmModal

        def answer(yes: bool | None) -> None:
            if yes:

                def change() -> str:
                    self.svc.remove_host(host)
                    return f"host {host} removed"

                self.run_change(change, "remove")

        self.push_screen(
            ConfirmModal(f"Remove host {host}? Its history stays in the ledger.", yes="Remove"),
            answer,
        )

    def run_change(self, change: Callable[[], Any], what: str) -> None:
        """Run a service call in a thread worker; report its result or its one-line error."""
        self._run_change(change, what)

    @work(thread=True, exit_on_error=False, group="change")
    def _run_change(self, change: Callable[[], Any], what: str) -> None:
        try:
            result = change()
        except LeptonError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", markup=False)
            return
        message = getattr(result, "message", result)
        ok = getattr(result, "ok", True)
        if message:
            self.call_from_thread(
                self.notify, str(message), severity="information" if ok else "warning",
                markup=False,
            )  # fmt: skip
        self.call_from_thread(self.refresh_screen)

    def note_header(self, head: Any) -> None:
        """What every screen's header read tells the app: the lab currency (for labels outside
        loaded data, like the add-host form) and whether this machine is a host already."""
        self.currency = head.currency
        self.local_host_added = head.local_host

    def refresh_screen(self) -> None:
        """Read the current screen's data again now."""
        from lepton_tui.screens.live import LiveScreen

        for screen in (self.screen, *self.screen_stack):
            if isinstance(screen, LiveScreen):
                screen.reload()
                return


def _ledger_currency(svc: Any) -> str:
    from lepton_tui.economics.prices import get_currency

    try:
        return get_currency(svc.ledger)
    except Exception:  # noqa: BLE001 - a label only; the panels read it again and say why
        return "USD"


def make_app(
    home: str | Path | None = None,
    demo: bool = False,
    theme: str | None = None,
    clock: Callable[[], float] | None = None,
    *,
    refresh_s: float = 2.0,
    dispatch: bool = True,
    dispatch_retry_s: float = 5.0,
    user: str | None = None,
    demo_speed: float = 30.0,
    demo_seed: int = 7,
    socket: str | None = None,
    reader: bool | None = None,
) -> LeptonApp:
    """Build the console. `demo`: a simulated busy lab in a temporary ledger (removed on exit).
    `socket`: a client of the lab service there (lab mode: no ledger is opened here).
    `reader`: personal mode reads the screens in a reader process of its own
    (`console_source.ReaderSource`); by default when `clock` is the wall clock (a fixed clock,
    for tests and snapshots, reads in this process unless `reader=True`).

    `clock` fixes time for tests and snapshots; `dispatch=False` never starts a dispatcher.
    """
    if socket is not None and not demo:
        pool = ClientPool(socket)
        return LeptonApp(
            pool, clock=clock or time.time, theme=theme, refresh_s=refresh_s, dispatch=False,
            source=LabSource(socket, pool),
        )  # fmt: skip
    if demo:
        from lepton_tui.demo import DemoDriver

        tmp = Path(tempfile.mkdtemp(prefix="lepton-demo-"))
        driver = DemoDriver(speed=demo_speed, seed=demo_seed)
        svc = Service.open(tmp, user=user, clock=driver.clock)
        driver.attach(svc)
        return LeptonApp(
            svc, clock=driver.clock, theme=theme, refresh_s=min(refresh_s, 1.0), demo=driver,
            cleanup=[tmp],
        )  # fmt: skip
    svc = Service.open(home, user=user, clock=clock)
    separate = clock is None if reader is None else reader
    source = ReaderSource(svc, clock or time.time) if separate else None
    app = LeptonApp(
        svc, clock=clock or time.time, theme=theme, refresh_s=refresh_s, dispatch=dispatch,
        dispatch_retry_s=dispatch_retry_s, source=source,
    )  # fmt: skip
    if source is not None:
        source.start()  # its start-up overlaps the console's (ended by `shutdown`, or with us)
    return app
