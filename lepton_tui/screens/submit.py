"""The submit-job form, validated as the user types with the CLI's own rules."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Static

from lepton_tui.errors import LeptonError, ValidationError
from lepton_tui.validate import JobSpec, expand_jobs, validate_job

if TYPE_CHECKING:
    from lepton_tui.app import LeptonApp

# (field id, label, placeholder, default, validate_job keyword). A field left empty means its
# default, as the placeholder says: it is not passed, so `validate_job` applies its own.
FIELDS: tuple[tuple[str, str, str, str, str], ...] = (
    ("command", "Command", "e.g. python train.py --epochs 3", "", "command"),
    ("cpus", "CPUs", "1", "1", "cpus"),
    ("mem", "Memory", "1G, 512M, 16G", "1G", "mem"),
    ("gpus", "GPUs", "0", "0", "gpus"),
    ("time", "Time limit", "e.g. 2h, 45m (empty: none)", "", "time"),
    ("priority", "Priority", "0 (higher runs first)", "0", "priority"),
    ("project", "Project", "default", "", "project"),
    ("after", "After jobs", "ids of jobs to wait for, e.g. 12 15", "", "after"),
    ("gpu_type", "GPU type", "e.g. A100 (empty: any)", "", "gpu_type"),
    ("constraint", "Constraints", "host labels, e.g. zone=r2 rack=4", "", "constraint"),
    ("host", "Hosts", "only these hosts (empty: any)", "", "host"),
    ("exclude_host", "Not on hosts", "never these hosts", "", "exclude_host"),
    ("array", "Array", "e.g. 0-15%4: 16 jobs, 4 at once", "", "array"),
    # notifications and requeue at the time limit (lepton_tui.job_options), as `submit` takes them
    ("notify_on", "Notify on", "end,fail,timeout,hold; all; none (empty: your default)", "",
     "notify_on"),
    ("requeue_on_timeout", "Requeue", "at the time limit (the job checkpoints)", "",
     "requeue_on_timeout"),
    ("max_requeues", "Max requeues", "10 (with Requeue)", "", "max_requeues"),
    ("signal", "Signal", "e.g. USR1@120: 120s before the time limit", "", "signal"),
)  # fmt: skip
# fields that take several words (space or comma separated)
LIST_FIELDS = frozenset({"constraint", "host", "exclude_host"})
# fields shown as a checkbox (their value: "1" when ticked, "" when not)
CHECKBOX_FIELDS = frozenset({"requeue_on_timeout"})
# fields checked together with the ones they need (a signal before the time limit needs one); a
# field is only blamed when those alone pass (else their own error shows)
DEPENDS: dict[str, tuple[str, ...]] = {
    "signal": ("time",),
    "requeue_on_timeout": ("time",),
    "max_requeues": ("requeue_on_timeout", "time"),
}
NOTIFY_OFF = frozenset({"none", "off", "no"})


EMPTY_COMMAND = "the command is empty: type the command to run above, e.g. python train.py"

# `submit`'s options as the form names them: the rules' messages speak the CLI's words
FLAG_LABELS = {"--" + kw.replace("_", "-"): label for _f, label, _p, _d, kw in FIELDS}


_OPTION_OR_QUOTED = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|--[a-z][a-z-]*""")
"""an option's name, or a quoted value (the user's own text, left as typed)"""


def form_words(message: str) -> str:
    """A rule's message with each `submit` option it names replaced by the form field's label
    (`give --time too` -> `give "Time limit" too`); other words, and the values it quotes
    (`mem '--time' is not a size`: what the user typed), are left as they are."""
    return _OPTION_OR_QUOTED.sub(
        lambda m: f'"{FLAG_LABELS[m.group(0)]}"' if m.group(0) in FLAG_LABELS else m.group(0),
        message,
    )


def job_args(values: dict[str, str], only: str | None = None) -> dict[str, Any]:
    """`validate_job` keywords from the form: blank fields left out (their defaults apply);
    with `only`, that one field (and those it depends on) and a stand-in command."""
    return _args(values, None if only is None else {only, *DEPENDS.get(only, ())})


def _args(values: dict[str, str], fields: set[str] | None) -> dict[str, Any]:
    args: dict[str, Any] = {"command": "true"} if fields and "command" not in fields else {}
    for fid, _label, _ph, _default, kw in FIELDS:
        if fields is not None and fid not in fields:
            continue
        value = values.get(fid, "")
        if kw == "command":
            args["command"] = value
        elif not value.strip():
            continue
        elif kw in CHECKBOX_FIELDS:
            args[kw] = True
        elif kw == "notify_on" and value.strip().lower() in NOTIFY_OFF:
            args["notify"] = False  # `--no-notify`: not even the user's default
        elif kw == "after":
            args["after"] = [value]
        elif kw in LIST_FIELDS:
            args[kw] = value.replace(",", " ").split()
        else:
            args[kw] = value.strip()
    return args


def _check(args: dict[str, Any]) -> JobSpec:
    return _check_all(args)[0]


def _check_all(args: dict[str, Any]) -> list[JobSpec]:
    """One spec, or one per element of the form's array."""
    args = dict(args)
    array = args.pop("array", None)
    command = args.pop("command", "")
    try:
        if array is None:
            return [validate_job(command=command, **args)]
        return expand_jobs([command], array, (), **args)
    except ValidationError as exc:
        if exc.field == "command" and not str(args.get("command", "")).strip():
            # the rule's hint is the CLI's (`give it after --`): say what to do in the form
            raise ValidationError(EMPTY_COMMAND, field="command") from None
        raise


def field_errors(values: dict[str, str]) -> dict[str, str]:
    """Each field checked on its own (the others at safe values), so every bad field is named."""
    errors: dict[str, str] = {}
    for fid, *_ in FIELDS:
        if fid in DEPENDS:
            try:
                _check(_args(values, set(DEPENDS[fid])))
            except ValidationError:
                continue  # what it needs is wrong: that field says so
        try:
            _check(job_args(values, only=fid))
        except ValidationError as exc:
            errors[fid] = form_words(str(exc))
    return errors


def spec_from(values: dict[str, str]) -> JobSpec:
    """The whole form as a JobSpec (raises the first ValidationError)."""
    return _check(job_args(values))


def specs_from(values: dict[str, str]) -> list[JobSpec]:
    """The whole form as JobSpecs: one, or one per element of its array."""
    return _check_all(job_args(values))


class SubmitJobModal(ModalScreen[int | None]):
    """Command, CPUs, memory, GPUs, time, priority, project, dependencies, constraints, array,
    notifications, requeue at the time limit and its signal; dismisses with the job id (an array's: its first job's)."""

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
                    if fid in CHECKBOX_FIELDS:
                        yield Checkbox(placeholder, id=f"f-{fid}", compact=True)
                    else:
                        yield Input(
                            value=value, placeholder=placeholder, id=f"f-{fid}", compact=True
                        )
                yield Static("", id=f"err-{fid}", classes="field-error", markup=False)
            yield Static("", id="form-error", classes="field-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Submit", id="submit", variant="primary", compact=True)
                yield Button("Cancel", id="close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#f-command", Input).focus()
        self._check()

    def values(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for fid, *_ in FIELDS:
            if fid in CHECKBOX_FIELDS:
                out[fid] = "1" if self.query_one(f"#f-{fid}", Checkbox).value else ""
            else:
                out[fid] = self.query_one(f"#f-{fid}", Input).value
        return out

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
            self.query_one(f"#f-{fid}", Widget).set_class(bool(text), "-invalid")
        self.query_one("#submit", Button).disabled = bool(errors) and self._tried
        return errors

    _tried = False

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _changed(self, event: Input.Changed | Checkbox.Changed) -> None:
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
            self.query_one(f"#f-{first}", Widget).focus()
            return
        try:
            specs = specs_from(self.values())
        except ValidationError as exc:
            self.query_one("#form-error", Static).update(form_words(str(exc)))
            return
        self.query_one("#submit", Button).disabled = True
        self._submit(specs)

    @work(thread=True, exclusive=True, exit_on_error=False, group="submit")
    def _submit(self, specs: list[JobSpec]) -> None:
        try:
            job_id = self.app.svc.submit_many(specs)[0]  # an array: its id, the first job's
        except LeptonError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self.dismiss, job_id)

    def _failed(self, message: str) -> None:
        self.query_one("#form-error", Static).update(form_words(message))
        self.query_one("#submit", Button).disabled = False
