"""The submit-job form, validated as the user types with the CLI's own rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from lepton_tui.errors import LeptonError, ValidationError
from lepton_tui.validate import JobSpec, validate_job

if TYPE_CHECKING:
    from lepton_tui.app import LeptonApp

# (field id, label, placeholder, default, validate_job keyword)
FIELDS: tuple[tuple[str, str, str, str, str], ...] = (
    ("command", "Command", "e.g. python train.py --epochs 3", "", "command"),
    ("cpus", "CPUs", "1", "1", "cpus"),
    ("mem", "Memory", "1G, 512M, 16G", "1G", "mem"),
    ("gpus", "GPUs", "0", "0", "gpus"),
    ("time", "Time limit", "e.g. 2h, 45m (empty: none)", "", "time"),
    ("priority", "Priority", "0 (higher runs first)", "0", "priority"),
    ("project", "Project", "default", "", "project"),
    ("after", "After jobs", "ids of jobs to wait for, e.g. 12 15", "", "after"),
)


def field_errors(values: dict[str, str]) -> dict[str, str]:
    """Each field checked on its own (the others at safe values), so every bad field is named."""
    errors: dict[str, str] = {}
    for fid, _label, _ph, _default, kw in FIELDS:
        value = values.get(fid, "")
        raw: dict[str, Any] = {"command": "true"}
        if kw == "after":
            raw["after"] = [value] if value.strip() else []
        else:
            raw[kw] = value
        try:
            validate_job(**raw)
        except ValidationError as exc:
            errors[fid] = str(exc)
    return errors


def spec_from(values: dict[str, str]) -> JobSpec:
    """The whole form as a JobSpec (raises the first ValidationError)."""
    return validate_job(
        command=values.get("command", ""),
        cpus=values.get("cpus", "1"),
        mem=values.get("mem", "1G"),
        gpus=values.get("gpus", "0"),
        time=values.get("time") or None,
        priority=values.get("priority", "0"),
        project=values.get("project") or None,
        after=[values["after"]] if values.get("after", "").strip() else [],
    )


class SubmitJobModal(ModalScreen[int | None]):
    """Command, CPUs, memory, GPUs, time, priority, project, dependencies; dismisses with the job id."""

    if TYPE_CHECKING:
        app: LeptonApp  # type: ignore[assignment]  # this screen only runs in the console

    BINDINGS = [
        Binding("escape", "dismiss_none", "close"),
        Binding("ctrl+s", "submit", "submit"),
    ]

    def __init__(self, command: str = "") -> None:
        super().__init__(classes="modal")
        self.initial_command = command

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog form", id="submit-form"):
            yield Static("[b]Submit a job[/b]  (ctrl+s submits, escape closes)")
            for fid, label, placeholder, default, _kw in FIELDS:
                value = self.initial_command if fid == "command" else default
                with Horizontal(classes="field"):
                    yield Label(label, classes="field-label")
                    yield Input(value=value, placeholder=placeholder, id=f"f-{fid}", compact=True)
                yield Static("", id=f"err-{fid}", classes="field-error")
            yield Static("", id="form-error", classes="field-error")
            with Horizontal(classes="buttons"):
                yield Button("Submit", id="submit", variant="primary", compact=True)
                yield Button("Cancel", id="close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#f-command", Input).focus()
        self._check()

    def values(self) -> dict[str, str]:
        return {fid: self.query_one(f"#f-{fid}", Input).value for fid, *_ in FIELDS}

    def _check(self) -> dict[str, str]:
        values = self.values()
        errors = field_errors(values)
        for fid, *_ in FIELDS:
            label = self.query_one(f"#err-{fid}", Static)
            # An empty command is only an error once the user tried to submit.
            text = errors.get(fid, "")
            if fid == "command" and not values["command"].strip() and not self._tried:
                text = ""
            label.update(text)
            label.display = bool(text)
            self.query_one(f"#f-{fid}", Input).set_class(bool(text), "-invalid")
        self.query_one("#submit", Button).disabled = bool(errors) and self._tried
        return errors

    _tried = False

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        self.query_one("#form-error", Static).update("")
        self._check()

    @on(Input.Submitted)
    def _enter(self, event: Input.Submitted) -> None:
        self.action_submit()

    @on(Button.Pressed, "#close")
    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#submit")
    def action_submit(self) -> None:
        self._tried = True
        errors = self._check()
        if errors:
            first = next(fid for fid, *_ in FIELDS if fid in errors)
            self.query_one(f"#f-{first}", Input).focus()
            return
        try:
            spec = spec_from(self.values())
        except ValidationError as exc:
            self.query_one("#form-error", Static).update(str(exc))
            return
        self.query_one("#submit", Button).disabled = True
        self._submit(spec)

    @work(thread=True, exclusive=True, exit_on_error=False, group="submit")
    def _submit(self, spec: JobSpec) -> None:
        try:
            job_id = self.app.svc.submit(spec)
        except LeptonError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self.dismiss, job_id)

    def _failed(self, message: str) -> None:
        self.query_one("#form-error", Static).update(message)
        self.query_one("#submit", Button).disabled = False
