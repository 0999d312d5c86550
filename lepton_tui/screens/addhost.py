"""The add-host modal: fields, a connection test showing the host key, then the preflight."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from lepton_tui.errors import LeptonError, ValidationError
from lepton_tui.screens import onboard
from lepton_tui.widgets.bars import per_hour_label

if TYPE_CHECKING:
    from lepton_tui.app import LeptonApp

# (field id, label, placeholder, check_host_fields keyword, error field name)
FIELDS = (
    ("name", "Name", "e.g. gpu1", "name", "host name"),
    ("address", "Address", "host name or IP", "address", "address"),
    ("port", "Port", "22", "port", "port"),
    ("user", "User", "login user (empty: yours)", "user", "user"),
    ("key", "Key file", "~/.ssh/id_ed25519 (empty: agent/default)", "key_path", "key"),
    # "Price" is followed by the lab currency: `Price $/h`, `Price €/h`, `Price CHF/h`
    ("price", "Price", "e.g. 2.50 (empty: none)", "price_per_hour", "price per hour"),
)

NO_ADDRESS = 'give its host name or IP address (or tick "This machine" to add this one)'


class AddHostModal(ModalScreen[str | None]):
    """Dismisses with the new host's name, or None."""

    if TYPE_CHECKING:
        app: LeptonApp  # type: ignore[assignment]  # this screen only runs in the console

    BINDINGS = [Binding("escape", "close", "close")]

    def __init__(self, local_name: str = "", local: bool = False) -> None:
        super().__init__(classes="modal")
        self.local_name = local_name
        self.start_local = local
        self.key: onboard.KeyCheck | None = None
        self.checked: dict[str, Any] | None = None
        self.added: str | None = None
        self.step = "fields"

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog form", id="addhost-form"):
            yield Static("[b]Add a host[/b]  (escape closes)")
            yield Checkbox(
                "This machine (no SSH)", value=self.start_local, id="f-local", compact=True
            )
            for fid, label, placeholder, _kw, _err in FIELDS:
                if fid == "price":
                    label = f"{label} {per_hour_label(getattr(self.app, 'currency', 'USD'))}"
                with Horizontal(classes="field", id=f"row-{fid}"):
                    yield Label(label, classes="field-label")
                    yield Input(placeholder=placeholder, id=f"f-{fid}", compact=True)
                yield Static("", id=f"err-{fid}", classes="field-error", markup=False)
            yield Static("", id="status", classes="status")
            with Horizontal(classes="buttons"):
                yield Button("Test connection", id="test", variant="primary", compact=True)
                yield Button("Accept key", id="accept", variant="warning", compact=True)
                yield Button("Done", id="add", variant="success", compact=True)
                yield Button("Cancel", id="close", compact=True)

    def on_mount(self) -> None:
        if self.start_local:
            self.query_one("#f-name", Input).value = self.local_name
        self.query_one("#f-port", Input).value = "22"
        self._set_step("fields")
        self._local_changed()
        self.query_one("#f-name", Input).focus()

    # -- fields -------------------------------------------------------------------------------

    @property
    def local(self) -> bool:
        return self.query_one("#f-local", Checkbox).value

    def raw(self) -> dict[str, Any]:
        v = {fid: self.query_one(f"#f-{fid}", Input).value.strip() for fid, *_ in FIELDS}
        return {
            "name": v["name"],
            "address": None if self.local else (v["address"] or None),
            "port": v["port"] or "22",
            "user": v["user"] or None,
            "key_path": v["key"] or None,
            "local": self.local,
            "price_per_hour": v["price"] or None,
        }

    def field_errors(self) -> dict[str, str]:
        """Every field checked on its own, with the service's rules (as `hosts add` does)."""
        raw = self.raw()
        safe = {
            "name": "h",
            "address": None if raw["local"] else "localhost",
            "local": raw["local"],
        }
        errors: dict[str, str] = {}
        for fid, _l, _p, kw, _e in FIELDS:
            if kw == "address" and raw["local"]:
                continue
            args = {**safe, kw: raw[kw]}
            if kw == "address" and not raw["address"]:
                if self._tried:  # the rule's words are the CLI's (`--address`, `--local`)
                    errors[fid] = NO_ADDRESS
                continue
            if kw == "name" and not raw["name"]:
                if self._tried:
                    errors[fid] = "give the host a name"
                continue
            try:
                self.app.svc.check_host_fields(**args)
            except ValidationError as exc:
                errors[fid] = str(exc)
        return errors

    _tried = False

    def _show_errors(self) -> dict[str, str]:
        errors = self.field_errors()
        for fid, *_ in FIELDS:
            label = self.query_one(f"#err-{fid}", Static)
            label.update(errors.get(fid, ""))
            label.display = fid in errors
            self.query_one(f"#f-{fid}", Input).set_class(fid in errors, "-invalid")
        return errors

    @on(Input.Changed)
    def _changed(self) -> None:
        self._set_step("fields")
        self._show_errors()

    @on(Input.Submitted)
    def _enter(self) -> None:
        if self.step in ("fields", "failed"):
            self.action_test()
        elif self.step == "key":
            self.action_accept()

    @on(Checkbox.Changed, "#f-local")
    def _local_changed(self) -> None:
        local = self.local
        for fid in ("address", "port", "user", "key"):
            self.query_one(f"#row-{fid}").display = not local
            if local:
                self.query_one(f"#err-{fid}").display = False
        if local and not self.query_one("#f-name", Input).value:
            self.query_one("#f-name", Input).value = self.local_name
        self.query_one("#test", Button).label = "Check and add" if local else "Test connection"
        self._set_step("fields")
        self._show_errors()

    def _set_step(self, step: str) -> None:
        """fields -> key (asks to accept) -> checking -> done (or failed)."""
        self.step = step
        self.query_one("#test", Button).display = step in ("fields", "failed", "checking")
        self.query_one("#accept", Button).display = step == "key"
        self.query_one("#add", Button).display = step == "done"
        self.query_one("#test", Button).disabled = step == "checking"
        self.query_one("#close", Button).display = step != "done"
        if step == "fields":
            self.key = None
            self.status("")

    def status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    # -- steps --------------------------------------------------------------------------------

    @on(Button.Pressed, "#test")
    def action_test(self) -> None:
        if self.step == "checking":
            return
        self._tried = True
        if self._show_errors():
            return
        try:
            self.checked = self.app.svc.check_host_fields(**self.raw())
        except ValidationError as exc:
            self.status(f"[red]{escape(str(exc))}[/red]")
            return
        self._set_step("checking")
        self.status("checking...")
        self._start(self.checked, self.raw())

    @work(thread=True, exclusive=True, exit_on_error=False, group="onboard")
    def _start(self, checked: dict[str, Any], raw: dict[str, Any]) -> None:
        """In a worker (the ledger and the network are never touched on the event loop)."""
        name = checked["name"]
        if self.app.ledger.host_exists(name):
            self.app.call_from_thread(
                self._failed, [f"host {name!r} already exists; pick another name"]
            )
            return
        if checked["transport"] == "local":
            self.app.call_from_thread(self.status, "checking this machine...")
            self.app.call_from_thread(self._onboard, raw, None)
            return
        where = f"{checked['address']}:{checked['port']}"
        self.app.call_from_thread(self.status, f"connecting to {where}...")
        self.app.call_from_thread(self._fetch_key, checked["address"], checked["port"])

    @work(thread=True, exclusive=True, exit_on_error=False, group="onboard")
    def _fetch_key(self, address: str, port: int) -> None:
        try:
            key = onboard.check_key(self.app.svc.known_hosts, address, port)
        except LeptonError as exc:
            self.app.call_from_thread(self._failed, [f"✗ {exc}"])
            return
        self.app.call_from_thread(self._got_key, key)

    def _got_key(self, key: onboard.KeyCheck) -> None:
        self.key = key
        if key.trusted:
            self.status(
                f"host key {key.key_type} {key.fingerprint}: already trusted\nlogging in..."
            )
            self._onboard(self.raw(), key.fingerprint)
            return
        note = (
            "It matches your ~/.ssh/known_hosts."
            if key.vouched
            else "Compare it with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the host."
        )
        self.status(
            f"The host presents this key:\n  [b]{key.key_type} {key.fingerprint}[/b]\n"
            f"{escape(note)}\nAccept it, log in and run the preflight?"
        )
        self._set_step("key")
        self.query_one("#accept", Button).focus()

    @on(Button.Pressed, "#accept")
    def action_accept(self) -> None:
        if self.step != "key" or self.key is None:
            return
        self._set_step("checking")
        self.status(f"accepted {self.key.fingerprint}; logging in and running the preflight...")
        self._onboard(self.raw(), self.key.fingerprint)

    @work(thread=True, exclusive=True, exit_on_error=False, group="onboard")
    def _onboard(self, raw: dict[str, Any], fingerprint: str | None) -> None:
        outcome = onboard.add_host(self.app.svc, raw, fingerprint)
        self.app.call_from_thread(self._onboarded, outcome)

    def _onboarded(self, outcome: onboard.Outcome) -> None:
        if not outcome.ok:
            self._failed(outcome.lines)
            return
        self.added = outcome.name
        self.status(
            escape("\n".join(outcome.lines)) + f"\n[b green]Host {outcome.name} added.[/b green]"
        )
        self._set_step("done")
        self.query_one("#add", Button).focus()

    def _failed(self, lines: list[str]) -> None:
        self.status("[red]" + escape("\n".join(lines)) + "[/red]\nNothing was stored.")
        self._set_step("failed")

    @on(Button.Pressed, "#add")
    def action_done(self) -> None:
        self.dismiss(self.added)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        if self.step == "done":
            self.dismiss(self.added)
        else:
            self.dismiss(None)
