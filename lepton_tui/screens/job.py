"""One job: its spec, attempts and events, and its log followed live (`e` toggles stderr)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Log, Static
from textual.worker import get_current_worker

from lepton_tui.economics.prices import allocated_text
from lepton_tui.errors import LeptonError
from lepton_tui.request_text import long_request
from lepton_tui.schema import TERMINAL_JOB_STATES
from lepton_tui.screen_data import JobData
from lepton_tui.screens.live import LiveScreen
from lepton_tui.validate import format_duration
from lepton_tui.widgets.bars import money
from lepton_tui.widgets.queue import JOB_STYLE
from lepton_tui.widgets.sync import update_static


class _Stopped(Exception):
    """The log worker was cancelled (screen closed or stream switched)."""


def spec_table(job: dict[str, Any], now: float, why: str | None) -> Table:
    t = Table.grid(padding=(0, 1))
    t.add_column(style="dim", no_wrap=True)
    t.add_column()
    t.add_row(
        "job", Text(f"{job['id']}" + (f" {job['name']}" if job["name"] else ""), style="bold")
    )
    t.add_row("state", Text(job["state"], style=JOB_STYLE.get(job["state"], "")))
    t.add_row("command", Text(job["command"]))
    t.add_row("who", f"{job['user']} / {job['project']}")
    t.add_row(
        "request",
        long_request(job["cpus"], job["mem_mb"], job["gpus"], job["gpu_mem_mb"] or 0)
        + (f", limit {format_duration(job['time_limit_s'])}" if job["time_limit_s"] else ""),
    )
    t.add_row("priority", str(job["priority"]))
    if job.get("after"):
        t.add_row("after", ", ".join(map(str, job["after"])))
    t.add_row("age", format_duration(now - job["submitted_at"]))
    if why:
        t.add_row("waiting", Text(why, style="italic yellow"))
    if job.get("exit_code") is not None:
        t.add_row("exit code", str(job["exit_code"]))
    return t


def attempts_table(attempts: list[dict[str, Any]], now: float, currency: str) -> RenderableType:
    if not attempts:
        return Text("no attempt yet", style="dim")
    t = Table(box=None, padding=(0, 1, 0, 0), show_edge=False, header_style="bold")
    for col in ("#", "host", "GPU ids", "state", "ran", "exit", "cost"):
        t.add_column(col)
    for a in attempts:
        start = a["started_at"] or a["created_at"]
        ran = (a["ended_at"] or now) - start if start else None
        t.add_row(
            str(a["attempt_no"]), a["host"], ",".join(map(str, a["gpu_ids"])) or "-",
            a["state"], format_duration(ran),
            "-" if a["exit_code"] is None else str(a["exit_code"]),
            money(a["cost_now"], currency) if a.get("cost_now") is not None else "-",
        )  # fmt: skip
    reasons = [f"#{a['attempt_no']}: {a['reason']}" for a in attempts if a["reason"]][-3:]
    # what Slurm allocated where it rounded the request up (the cost column charges by it)
    reasons += [f"#{a['attempt_no']}: {s}" for a in attempts[-1:] if (s := allocated_text(a))]
    if reasons:
        return Group(t, Text("\n".join(reasons), style="dim"))
    return t


def events_text(events: list[dict[str, Any]]) -> Text:
    text = Text()
    for e in reversed(events[-12:]):  # newest first: the panel is short
        stamp = time.strftime("%H:%M:%S", time.localtime(e["at"]))
        text.append(f"{stamp} ", style="dim")
        text.append(f"{e['message']}\n")
    return text


class JobScreen(LiveScreen):
    """Spec, attempts, events and the live log of one job."""

    BINDINGS = [
        Binding("escape", "back", "back"),
        Binding("e", "toggle_stream", "stdout/stderr"),
        Binding("c", "cancel", "cancel"),
        Binding("l", "focus_log", "log"),
    ]

    def __init__(self, job_id: int, logs: bool = False) -> None:
        super().__init__(id="job")
        self.job_id = job_id
        self.stream = "stdout"
        self.want_logs = logs
        self.log_state: str | None = None
        self.log_note = ""  # what the log pane says while the job has no attempt
        self._log_stream: Any = None  # lab mode: the followed log's stream, closed when we go

    def compose(self) -> ComposeResult:
        with Horizontal(id="job-top"):
            yield Static(id="job-spec", classes="panel")
            with Vertical(id="job-side"):
                yield Static(id="job-attempts", classes="panel")
                yield Static(id="job-events", classes="panel")
        yield Log(id="job-log", classes="panel", max_lines=20000)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#job-spec").border_title = f"Job {self.job_id}"
        self.query_one("#job-attempts").border_title = "Attempts"
        self.query_one("#job-events").border_title = "Events"
        self._log_title()
        if self.want_logs:
            self.query_one("#job-log").focus()

    def _log_title(self, note: str = "") -> None:
        log = self.query_one("#job-log", Log)
        log.border_title = f"Log: {self.stream}" + (f" ({note})" if note else "")
        log.border_subtitle = "e: stdout/stderr"

    def view(self) -> tuple[str, dict[str, Any]]:
        return "job", {"job_id": self.job_id}

    def prepare(self, data: JobData) -> Any:
        return data.job, data.why, data.now, data.currency

    def show(self, data: Any) -> None:
        job, why, now, currency = data
        update_static(
            self.query_one("#job-spec", Static), (job, now, why), lambda: spec_table(job, now, why)
        )
        attempts, events = job["attempts"], job["events"]
        update_static(
            self.query_one("#job-attempts", Static),
            (attempts, now, currency),
            lambda: attempts_table(attempts, now, currency),
        )
        update_static(self.query_one("#job-events", Static), events, lambda: events_text(events))
        # Start following once there is an attempt; restart when a new attempt appears.
        state = f"{len(job['attempts'])}"
        if job["attempts"] and state != self.log_state:
            self.log_state = state
            self.follow()
        elif not job["attempts"]:
            note = "(the log appears here once the job starts)"
            if job["state"] in TERMINAL_JOB_STATES:  # cancelled or failed while queued
                note = f"(no log: the job ended ({job['state']}) before it started)"
            if self.log_state != "" or note != self.log_note:
                self.log_state, self.log_note = "", note
                log = self.query_one("#job-log", Log)
                log.clear()
                log.write_line(note)

    # -- the log -----------------------------------------------------------------------------

    def _close_log(self) -> None:
        stream, self._log_stream = self._log_stream, None
        if stream is not None:
            stream.close()  # frees the lab service's stream at once

    def on_unmount(self) -> None:
        self._close_log()

    def follow(self) -> None:
        self._close_log()
        log = self.query_one("#job-log", Log)
        log.clear()
        self._log_title("following")
        self._follow(self.stream)

    @work(thread=True, exclusive=True, exit_on_error=False, group="log")
    def _follow(self, stream: str) -> None:
        worker = get_current_worker()

        def sleep(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if worker.is_cancelled:
                    raise _Stopped
                time.sleep(min(0.1, seconds))
            if worker.is_cancelled:
                raise _Stopped

        if self.app.demo:
            self.app.call_from_thread(self._write, "(demo: simulated jobs write no log)\n")
            return
        from lepton_tui.logs import follow_log

        chunks: Iterable[str]
        if self.app.lab:  # the lab service reads the host and streams the log here
            from lepton_tui.client import follow_log_stream

            try:
                opened = self._log_stream = follow_log_stream(
                    self.app.source.socket_path, self.job_id, stream
                )
            except LeptonError as exc:
                self.app.call_from_thread(self._write, f"\n[{exc}]\n")
                return
            if worker.is_cancelled:
                opened.close()
                return
            chunks = opened
        else:
            chunks = follow_log(self.app.svc, self.job_id, stream, follow=True, sleep=sleep)
        try:
            for chunk in chunks:
                if worker.is_cancelled:
                    return
                self.app.call_from_thread(self._write, chunk)
        except _Stopped:
            return
        except LeptonError as exc:
            self.app.call_from_thread(self._write, f"\n[{exc}]\n")
            return
        except Exception as exc:  # noqa: BLE001 - shown in the log pane, never a traceback
            self.app.call_from_thread(self._write, f"\n[cannot read the log: {exc}]\n")
            return
        self.app.call_from_thread(self._log_title, "ended")

    def _write(self, text: str) -> None:
        self.query_one("#job-log", Log).write(text)

    def action_toggle_stream(self) -> None:
        self.stream = "stderr" if self.stream == "stdout" else "stdout"
        if self.log_state:
            self.follow()
        else:
            self._log_title()

    def action_focus_log(self) -> None:
        self.query_one("#job-log").focus()

    def action_cancel(self) -> None:
        self.app.confirm_cancel(self.job_id)

    def action_back(self) -> None:
        self.workers.cancel_group(self, "log")
        self._close_log()
        self.app.pop_screen()
