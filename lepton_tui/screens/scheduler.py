"""The scheduler: the policy in use (admins choose it or leave it to the autopilot), the
autopilot's league table and why it chose, recent decisions, and why a job waits."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Input, Label, Select, Static

from lepton_tui import autopilot
from lepton_tui.screen_data import SchedulerData
from lepton_tui.screens.live import LiveScreen
from lepton_tui.widgets.fit import FitTable, FittedTable
from lepton_tui.widgets.header import LabHeader
from lepton_tui.widgets.sync import set_titles, update_static

EXPLANATION_MAX = 400  # a cell never carries more: no screen is that wide


class DecisionsTable(FittedTable):
    """The policy's decisions, newest first; the explanation takes the width that is left."""

    COLUMNS = (("at", "When"), ("policy", "Policy"), ("job", "Job"), ("host", "Host"),
               ("placed", "Placed"), ("why", "Explanation"))  # fmt: skip
    DROP_ORDER = ("policy", "host", "placed", "at")
    CAPS = {"policy": 12, "host": 16}
    FILL = "why"
    FILL_MIN = 20


def decision_cells(decisions: list[dict[str, Any]]) -> list[tuple[str, tuple]]:
    """The decisions table's cells, keyed by decision id."""
    return [
        (
            str(d["id"]),
            (
                time.strftime("%H:%M:%S", time.localtime(d["at"] or 0)),
                d["policy"] or "-",
                str(d["job_id"]),
                d["host"] or "-",
                Text("yes", style="green") if d["placed"] else Text("no", style="yellow"),
                (d["explanation"] or "").replace("\n", " ")[:EXPLANATION_MAX],
            ),
        )
        for d in decisions
    ]


def policy_names() -> tuple[str, ...]:
    """What an admin may choose: auto (the autopilot) or a registered policy (pinned)."""
    from scheduler.registry import POLICY_NAMES

    return (autopilot.AUTO, *POLICY_NAMES)


def _num(value: Any, fmt: str = "{:.3g}") -> str:
    return "-" if value is None or not math.isfinite(value) else fmt.format(value)


def league_renderable(state: dict[str, Any]) -> Group:
    """The policy in force and why, then the last round's league table (best first)."""
    how = "pinned by an admin" if state["pinned"] else "chosen by the autopilot"
    head = Text.assemble(("Running ", "bold"), (state["policy"], "bold green"), f" ({how})")
    parts: list[Any] = [head, Text(state["why"])]
    last = state["last_round"]
    if last is None:
        parts.append(Text("No round yet: one runs when the dispatcher starts.", style="dim"))
        return Group(*parts)
    rows: list[list[str | Text]] = [
        [Text(s["policy"] + (" *" if s["policy"] == last["policy"] else ""),
              style="bold" if s["policy"] == last["policy"] else ""),
         _num(s["objective"], "{:.4g}"), _num(s["avg_bounded_slowdown"], "{:.4g}"), _num(s["cost"], "{:.2f}"),
         _num(s["mean_wait_s"], "{:.0f}s")]
        for s in last["table"]
    ]  # fmt: skip
    if rows:
        parts.append(FitTable(rows, headers=["Policy", "Objective", "Avg bsld", "Cost", "Wait"],
                              optional=[4, 3]))  # fmt: skip
    when = time.strftime("%H:%M", time.localtime(last["at"]))
    parts.append(
        Text(
            f"Last round {when}: {last['jobs']} job(s) of the last "
            f"{autopilot.span(state['window_s'])} replayed in {last['took_s']:.2f}s; "
            f"one every {autopilot.span(state['period_s'])}",
            style="dim",
        )  # fmt: skip
    )
    return Group(*parts)


class LeagueTable(Static):
    """The autopilot's panel: its choice, why, and every policy's score on the lab's history."""

    DEFAULT_CSS = """
    LeagueTable {
        height: auto;
        max-height: 45%;
        padding: 0 1;
    }
    """


class SchedulerScreen(LiveScreen):
    """Decisions newest first; select one (or type a job id) to see why it waits."""

    AUTO_FOCUS = "#decisions"  # not the job-id box: digits there would not switch screens
    BINDINGS = [
        Binding("w", "why", "why pending"),
        Binding("escape", "back", "back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(id="scheduler")
        self._policy_shown: str | None = None
        self._jobs: dict[str, int] = {}  # decision id -> job id, for a selected row

    def compose(self) -> ComposeResult:
        yield LabHeader(id="lab-header")
        with Horizontal(id="sched-top"):
            yield Label("Policy", classes="field-label")
            yield Select([(n, n) for n in policy_names()], allow_blank=False, id="policy")
            yield Label("Why is job", classes="field-label")
            yield Input(placeholder="id", id="why-job", restrict=r"\d*", max_length=12)
            yield Label("pending?", classes="field-label")
        yield LeagueTable(id="league", classes="panel")
        yield Static(id="why", classes="panel")
        yield DecisionsTable(id="decisions", classes="panel")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one(DecisionsTable)
        table.border_title = "Recent decisions"
        self.query_one("#why").border_title = "Why pending"
        self.query_one(LeagueTable).border_title = "Autopilot"
        self.query_one("#why", Static).update(
            Text("Type a job id above, or select a decision, to see why it waits.", style="dim")
        )
        self.query_one("#policy", Select).disabled = True  # until load() says this user is an admin

    def view(self) -> tuple[str, dict[str, Any]]:
        return "scheduler", {}

    def prepare(self, data: SchedulerData) -> Any:
        return data.header, data.decisions, data.admin, data.league

    def show(self, data: Any) -> None:
        head, decisions, admin, league = data
        update_static(self.query_one(LeagueTable), league, lambda: league_renderable(league))
        self.query_one(LabHeader).show(head)
        self.app.note_header(head)
        select = self.query_one("#policy", Select)
        select.disabled = not admin
        if self._policy_shown != head.policy and head.policy in policy_names():
            self._policy_shown = head.policy
            with self.prevent(Select.Changed):
                select.value = head.policy
        table = self.query_one(DecisionsTable)
        set_titles(table, subtitle=self.app.dispatch_note)
        self._jobs = {str(d["id"]): int(d["job_id"]) for d in decisions}
        table.show_fitted(decision_cells(decisions))

    @on(Select.Changed, "#policy")
    def _policy(self, event: Select.Changed) -> None:
        name = str(event.value)
        # Ignore the Select's own start-up value and our programmatic updates: only a user's
        # choice, after the current policy is shown, changes the setting.
        if self._policy_shown is None or name == self._policy_shown:
            return

        def change() -> str:
            from lepton_tui.settings import parse_setting

            value = parse_setting("policy", name)
            self.app.svc.set_setting("policy", value)
            return f"policy set to {value}"

        self._policy_shown = name
        self.app.run_change(change, "policy")

    @on(Input.Submitted, "#why-job")
    def _why_typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self._explain(int(event.value))

    @on(DataTable.RowSelected, "#decisions")
    def _why_selected(self, event: DataTable.RowSelected) -> None:
        job = self._jobs.get(str(event.row_key.value))
        if job is not None:
            self._explain(job)

    def action_why(self) -> None:
        self.query_one("#why-job", Input).focus()

    def action_back(self) -> None:
        """Escape: out of the job-id box to the decisions first (so the box does not hold the
        focus when this screen comes back, eating the digits that switch screens), then back to
        the overview."""
        if self.focused is self.query_one("#why-job", Input):
            self.query_one("#decisions", DataTable).focus()
        else:
            self.app.switch_to("overview")

    def _explain(self, job_id: int) -> None:
        self.run_worker(
            lambda: self.app.call_from_thread(
                self.query_one("#why", Static).update,
                Text(self.app.source.read("why", {"job_id": job_id}, 0.0).text),  # no markup
            ),
            thread=True, exclusive=True, group="why", exit_on_error=False,
        )  # fmt: skip
