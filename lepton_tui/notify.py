"""Notifications: a job's end, failure, time limit or budget hold, told once to whoever asked.

Where from: the `events` table is the outbox. Every job transition writes its event in the same
transaction as the change (`lepton_tui.ledger`), so `collect` reads the events after a cursor
and turns the endings of jobs that asked (`jobs.notify_on`) into `notifications` rows, one per
(job, event, channel), with the cursor's move, in one transaction: a crash before it loses
nothing (the events are still there), a crash after it repeats nothing (the rows are unique).
Budget holds are not transitions: queued jobs whose reason says a hard budget holds them are
looked up instead.

Sending: `deliver_due` claims a row (`sending`, committed) before it sends, and records the
result after. A dispatcher killed between the two leaves the row `sending`; the next one marks it
`unknown` and never sends it again (at most once; the window is the time from the claim to the
hand-over to the command, the web server or sendmail). A send that provably reached nobody (a
connection refused, an HTTP 429 or 5xx answer) is tried again later, up to MAX_TRIES.

Channels: the lab's `notify_command` (a shell command run by the dispatcher's account with the
job's JSON on stdin), a webhook URL (the user's own, else the lab's `notify_webhook`; Slack and
Mattermost incoming-webhook JSON: `{"text": ...}`; only to hosts on the admins' allow-list,
checked when set and again when sent: `lepton_tui.webhook_hosts`), and email through the login node's
`sendmail` (the user's own address, else the lab's `notify_email` template, `{user}@lab.org`).

All of it runs in `NotifyWorker`, a thread beside the dispatcher's loop: never on a tick.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lepton_tui.errors import ValidationError
from lepton_tui.job_options import EVENT_OF_STATE, parse_notify_on

if TYPE_CHECKING:
    from lepton_tui.ledger import Ledger

log = logging.getLogger("lepton_tui.notify")

CHANNELS = ("command", "webhook", "email")
HOLD_PREFIX = "over budget"  # lepton_tui.economics.budgets.HOLD_PREFIX (not imported: numpy)
MAX_TRIES = 5
RETRY_BASE_S = 5.0
SEND_TIMEOUT_S = 30.0
EVENTS_PER_ROUND = 5000
DUE_PER_ROUND = 50
# the job fields a notification carries (the job's JSON, less its environment)
PAYLOAD_FIELDS = (
    "id", "name", "user", "project", "state", "reason", "command", "host", "exit_code",
    "cpus", "mem_mb", "gpus", "gpu_mem_mb", "time_limit_s", "attempts_used", "requeues",
    "submitted_at", "started_at", "ended_at", "kind",
)  # fmt: skip
_ENDING_KINDS = tuple(f"job.{state}" for state in EVENT_OF_STATE)
_EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$", re.ASCII)
_NONE_WORDS = frozenset({"", "none", "off", "-"})  # clear a setting (an empty argument is refused)
_URL_RE = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.ASCII)


# -- what users type ---------------------------------------------------------------------------


def check_webhook(value: str) -> str:
    """An http(s) URL, or "" (none, also written `none`)."""
    value = "" if value.strip().lower() in _NONE_WORDS else value.strip()
    if value and not _URL_RE.match(value):
        raise ValidationError(
            f"webhook {value!r} is not an http(s) URL",
            "give the incoming-webhook URL Slack or Mattermost shows, or none",
        )
    return value


def check_email(value: str, template: bool = False) -> str:
    """An email address (with `template`, one that may hold `{user}`), or "" (`none`)."""
    value = "" if value.strip().lower() in _NONE_WORDS else value.strip()
    sample = value.replace("{user}", "alice") if template else value
    if value and not _EMAIL_RE.match(sample):
        how = "e.g. {user}@lab.example.org" if template else "e.g. alice@lab.example.org"
        raise ValidationError(f"email {value!r} is not an address", f"{how}, or none")
    return value


def check_command(value: str) -> str:
    """A shell command (run with the job's JSON on stdin), or "" (`none`)."""
    if "\x00" in value or len(value) > 4096:
        raise ValidationError("the notify command must be text of at most 4096 characters")
    return "" if value.strip().lower() in _NONE_WORDS else value.strip()


# -- collecting: events -> notification rows ----------------------------------------------------


def start_cursor(ledger: Ledger) -> int:
    """The last event already turned into notifications (created at the latest event when
    missing: history from before notifications existed is never told)."""
    cursor = ledger.notify_cursor()
    if cursor is not None:
        return cursor
    ledger.create_notify_cursor()
    return ledger.notify_cursor() or 0


def targets(ledger: Ledger, user: str, settings: dict[str, Any]) -> dict[str, str]:
    """Where a user's notifications go: {channel: command, URL or address}."""
    prefs = ledger.notify_user(user)
    out: dict[str, str] = {}
    command = str(settings.get("notify_command") or "")
    if command:
        out["command"] = command
    webhook = (prefs or {}).get("webhook") or str(settings.get("notify_webhook") or "")
    if webhook:
        out["webhook"] = webhook
    email = (prefs or {}).get("email") or str(settings.get("notify_email") or "").replace(
        "{user}", user
    )
    if email:
        out["email"] = email
    return out


def collect(ledger: Ledger) -> int:
    """Turn new job endings and budget holds into pending rows; how many rows were made."""
    made = 0
    seen, top, holds = ledger.notify_cursor(), ledger.last_event_id(), ledger.has_hard_budget()
    if seen is not None and seen >= top and not holds:
        return 0  # nothing new: no write transaction every round
    with ledger.tx():
        cursor = start_cursor(ledger)
        last = min(ledger.last_event_id(), cursor + EVENTS_PER_ROUND)
        found: list[tuple[dict[str, Any], str]] = []
        if last > cursor:
            for r in ledger.notified_endings(cursor, last, _ENDING_KINDS):
                found.append((r, EVENT_OF_STATE[r["kind"].removeprefix("job.")]))
            ledger.move_notify_cursor(last)
        if ledger.has_hard_budget():
            # only a hard budget holds jobs: no scan of the queue every round without one
            found += [(r, "hold") for r in ledger.untold_holds(HOLD_PREFIX)]
        if not found:
            return 0
        settings = ledger.settings()
        now = ledger.clock()
        where: dict[str, dict[str, str]] = {}  # per user, looked up once a round
        for job, event in found:
            if event not in parse_notify_on(job["notify_on"]):
                continue
            if job["user"] not in where:
                where[job["user"]] = targets(ledger, job["user"], settings)
            for channel, target in where[job["user"]].items():
                made += ledger.add_notification(job["id"], event, channel, target, now)
    return made


# -- sending -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendError(Exception):
    """A send that failed; `retry` when it provably reached nobody (safe to send again)."""

    message: str
    retry: bool = False

    def __str__(self) -> str:
        return self.message


def payload(ledger: Ledger, job_id: int, event: str) -> dict[str, Any]:
    """The job's JSON as a notification carries it, with the event and a one-line text."""
    job = ledger.job_or_none(job_id) or {"id": job_id}
    out = {k: job.get(k) for k in PAYLOAD_FIELDS}
    lab = ledger.get_setting("lab_name", "lab")
    words = {"end": "ended", "fail": "failed", "timeout": "hit its time limit",
             "hold": "is held"}  # fmt: skip
    name = f" ({job['name']})" if job.get("name") else ""
    what = words.get(event, event)
    if event == "end" and job.get("state") == "cancelled":
        what = "was cancelled"
    text = f"[{lab}] job {job_id}{name} of {job.get('user')} {what}"
    if job.get("exit_code") is not None and event != "hold":
        text += f" (exit code {job['exit_code']})"
    if job.get("host"):
        text += f" on {job['host']}"
    if event in ("fail", "hold") and job.get("reason"):
        text += f": {job['reason']}"
    return {"event": event, "lab": lab, "job": out, "text": text}


def send_command(command: str, body: dict[str, Any], cwd: str | None = None) -> None:
    """Run the lab's hook with the job's JSON on stdin; a non-zero exit is a failure."""
    env = dict(os.environ)
    env.update(
        LEPTON_NOTIFY_EVENT=body["event"], LEPTON_JOB_ID=str(body["job"]["id"]),
        LEPTON_JOB_STATE=str(body["job"].get("state") or ""),
        # the command (it may hold a token) reaches the shell through the environment, which
        # only its own uid can read in /proc, never through argv, which every user can
        LEPTON_NOTIFY_COMMAND=command,
    )  # fmt: skip
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", 'eval "$LEPTON_NOTIFY_COMMAND"'], input=json.dumps(body, sort_keys=True).encode(),
            capture_output=True, timeout=SEND_TIMEOUT_S, env=env, cwd=cwd,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise SendError(f"the notify command ran past {SEND_TIMEOUT_S:g}s") from None
    except OSError as exc:
        raise SendError(f"cannot run the notify command: {exc}", retry=True) from None
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-300:]
        raise SendError(f"the notify command exited {done.returncode}: {tail}")


def send_webhook(url: str, body: dict[str, Any], settings: Mapping[str, Any] | None = None) -> None:
    """POST Slack/Mattermost incoming-webhook JSON (`text`, plus the job for other receivers),
    only to a host the lab's allow-list holds now (`lepton_tui.webhook_hosts`)."""
    import http.client

    from lepton_tui import webhook_hosts

    try:
        target = webhook_hosts.check_url(url, settings or {})
    except ValidationError as exc:
        raise SendError(f"not sent: {exc}") from None  # the admins' choice: never tried again
    except (OSError, UnicodeError) as exc:  # the name does not resolve now
        raise SendError(f"the webhook is out of reach: {exc}", retry=True) from None
    data = json.dumps({"text": body["text"], "username": "lepton-tui", "lepton": body}).encode()
    try:
        status = webhook_hosts.post(target, data, SEND_TIMEOUT_S)
    except ConnectionRefusedError as exc:
        raise SendError(f"the webhook is out of reach: {exc}", retry=True) from None
    except (OSError, http.client.HTTPException) as exc:
        raise SendError(f"the webhook did not answer: {exc}") from None
    if 300 <= status < 400:
        raise SendError(f"the webhook answered HTTP {status} (a redirect: not followed)")
    if status >= 400:
        raise SendError(f"the webhook answered HTTP {status}",
                        retry=status == 429 or status >= 500)  # fmt: skip


def find_sendmail() -> str | None:
    """The login node's sendmail (PATH, then /usr/sbin, /usr/lib), or None."""
    for candidate in (shutil.which("sendmail"), "/usr/sbin/sendmail", "/usr/lib/sendmail"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def send_email(address: str, body: dict[str, Any]) -> None:
    """Hand a short mail to `sendmail -t -oi` (the login node's mail system delivers it)."""
    from email.message import EmailMessage

    sendmail = find_sendmail()
    if sendmail is None:
        raise SendError("no sendmail on this machine (install an MTA, e.g. Debian's msmtp-mta)")
    msg = EmailMessage()
    msg["To"] = address
    msg["Subject"] = " ".join(body["text"].split())[:200]  # one line, whatever a reason holds
    msg.set_content(body["text"] + "\n\n" + json.dumps(body["job"], indent=2, sort_keys=True))
    try:
        done = subprocess.run(
            [sendmail, "-t", "-oi"], input=msg.as_bytes(), capture_output=True,
            timeout=SEND_TIMEOUT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise SendError(f"sendmail ran past {SEND_TIMEOUT_S:g}s") from None
    except OSError as exc:
        raise SendError(f"cannot run sendmail: {exc}", retry=True) from None
    if done.returncode != 0:
        raise SendError(f"sendmail exited {done.returncode}: {done.stderr.decode()[-300:]}")


Sender = Callable[[str, str, dict[str, Any]], None]


def send(
    channel: str, target: str, body: dict[str, Any], settings: Mapping[str, Any] | None = None
) -> None:
    """Send one notification on its channel (webhooks as the lab's `settings` allow); SendError
    when it fails."""
    if channel == "command":
        send_command(target, body)
    elif channel == "webhook":
        send_webhook(target, body, settings)
    elif channel == "email":
        send_email(target, body)
    else:
        raise SendError(f"unknown channel {channel!r}")


def recover(ledger: Ledger, me: str) -> int:
    """Rows a stopped dispatcher claimed but never recorded: `unknown`, never sent again."""
    with ledger.tx():
        return ledger.abandon_sending(me)


def deliver_due(
    ledger: Ledger, me: str, sender: Sender | None = None, stop: threading.Event | None = None
) -> int:
    """Claim and send the pending notifications that are due (until `stop` is set); how many
    were sent. By default `send`, with the settings (the webhook allow-list) of this round."""
    now = ledger.clock()
    due = ledger.due_notifications(now, DUE_PER_ROUND)
    if not due:
        return 0
    # the settings (the webhook allow-list) as they are now, read once a round
    send_one = sender or functools.partial(send, settings=ledger.settings())
    sent = 0
    for row in due:
        if stop is not None and stop.is_set():
            break
        with ledger.tx():  # the claim, committed before anything goes out
            if not ledger.claim_notification(row["id"], ledger.clock(), me):
                continue
        try:
            send_one(row["channel"], row["target"], payload(ledger, row["job_id"], row["event"]))
        except SendError as exc:
            again = exc.retry and int(row["tries"]) + 1 < MAX_TRIES
            state = "pending" if again else "failed"
            next_at = ledger.clock() + RETRY_BASE_S * 2 ** int(row["tries"]) if again else None
            with ledger.tx():
                ledger.notification_not_sent(row["id"], state, next_at, str(exc)[:500])
            log.warning("notification %s (%s) of job %s: %s", row["id"], row["channel"],
                        row["job_id"], exc)  # fmt: skip
            continue
        except Exception as exc:  # noqa: BLE001 - a bad notification must not stop the others
            log.exception("notification %s failed", row["id"])
            with ledger.tx():
                ledger.notification_failed(row["id"], f"{type(exc).__name__}: {exc}"[:500])
            continue
        with ledger.tx():
            ledger.notification_sent(row["id"], ledger.clock())
        sent += 1
    return sent


def pump(
    ledger: Ledger, me: str, sender: Sender | None = None, stop: threading.Event | None = None
) -> int:
    """One round: collect new rows, send what is due; how many were sent."""
    collect(ledger)
    return deliver_due(ledger, me, sender, stop)


def run_once(ledger: Ledger) -> int:
    """`serve --once` (the lock held, so no other sender): recover, collect, send; how many."""
    me = f"{socket.gethostname()}:{os.getpid()}:once"
    recover(ledger, me)
    return pump(ledger, me)


class NotifyWorker:
    """Collects and sends notifications in a thread beside the dispatcher's loop."""

    def __init__(
        self, ledger: Ledger, stop: threading.Event, period_s: float = 1.0,
        sender: Sender | None = None,
    ) -> None:  # fmt: skip
        self.ledger = ledger
        self.stop = stop
        self.period_s = period_s
        self.sender = sender
        self.me = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.thread = threading.Thread(target=self._run, name="lepton-notify", daemon=True)

    def start(self) -> NotifyWorker:
        self.thread.start()
        return self

    def join(self, timeout: float = 60.0) -> None:
        self.thread.join(timeout)

    def _run(self) -> None:
        try:
            stale = recover(self.ledger, self.me)
            if stale:
                log.warning("%d notification(s) were being sent when the last dispatcher "
                            "stopped: marked unknown, not sent again", stale)  # fmt: skip
        except Exception:  # noqa: BLE001
            log.exception("notification recovery failed")
        while True:
            try:
                pump(self.ledger, self.me, self.sender, self.stop)
            except Exception:  # noqa: BLE001 - one bad round must not stop notifying
                log.exception("notification round failed; retrying")
            if self.stop.wait(self.period_s):
                return


def since(ledger: Ledger, user: str | None, limit: int = 100) -> list[dict[str, Any]]:
    """The latest notifications (of `user`'s jobs, or all), newest first."""
    return ledger.latest_notifications(user, limit)
