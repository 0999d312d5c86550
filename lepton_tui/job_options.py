"""A job's notification, requeue and kind options: parsed from what users type, stored on submit.

`submit --notify` / `--notify-on end,fail,timeout,hold` (who is told, and when),
`--requeue-on-timeout [--max-requeues N]` and `--signal USR1@120` (a job that checkpoints is
warned before its time limit, then requeued), and the job's kind (`batch`, or `interactive` for
`lepton-tui shell`). Pure: no I/O besides `store`, which writes the ledger inside the submit's
own transaction.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from lepton_tui.errors import ValidationError

if TYPE_CHECKING:
    from lepton_tui.ledger import Ledger
    from lepton_tui.rows import JobRow

# when a job is told about: it ended well (or was cancelled), failed, hit its time limit, or a
# hard budget holds it while queued
NOTIFY_EVENTS = ("end", "fail", "timeout", "hold")
# the job state each ending is told as
EVENT_OF_STATE = {"succeeded": "end", "cancelled": "end", "failed": "fail", "timeout": "timeout"}
JOB_KINDS = ("batch", "interactive")
DEFAULT_MAX_REQUEUES = 10
MAX_REQUEUES = 1000
# the signals a job may ask for before its limit (Slurm's --signal takes the same names)
SIGNALS = {"USR1": 10, "USR2": 12, "TERM": 15, "INT": 2, "HUP": 1, "QUIT": 3, "ALRM": 14}
MAX_SIGNAL_LEAD_S = 65535  # Slurm's bound on --signal's seconds
_SIGNAL_RE = re.compile(r"^(?:SIG)?([A-Z0-9]+)(?:@([0-9]+))?$", re.ASCII)


def parse_notify_on(value: Any) -> list[str]:
    """`end,fail` (or a list) into the checked, ordered list of events; `all` is every event."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
    seen: set[str] = set()
    for item in items:
        word = str(item).strip().lower()
        if word == "all":
            seen.update(NOTIFY_EVENTS)
        elif word in NOTIFY_EVENTS:
            seen.add(word)
        elif word:
            raise ValidationError(
                f"notify-on {item!r} is not an event",
                f"use any of {','.join(NOTIFY_EVENTS)} (or all)",
                field="notify-on",
            )
    if not seen and items:
        raise ValidationError("notify-on names no event", "e.g. --notify-on end,fail")
    return [e for e in NOTIFY_EVENTS if e in seen]


def parse_signal(value: Any) -> str | None:
    """`USR1@120` (signal, seconds before the time limit; 60 when left out) as `USR1@120`."""
    if value in (None, ""):
        return None
    raw = str(value).strip().upper()
    match = _SIGNAL_RE.match(raw)
    name = match.group(1) if match else ""
    if not match or name not in SIGNALS:
        raise ValidationError(
            f"signal {value!r} is not SIGNAL@SECONDS",
            f"e.g. USR1@120; signals: {', '.join(SIGNALS)}",
            field="signal",
        )
    lead = int(match.group(2) or 60)
    if not 1 <= lead <= MAX_SIGNAL_LEAD_S:
        raise ValidationError(
            f"signal {value!r}: the seconds before the limit must be 1 to {MAX_SIGNAL_LEAD_S}",
            field="signal",
        )
    return f"{name}@{lead}"


def signal_parts(text: str | None) -> tuple[int, float] | None:
    """(signal number, seconds before the limit) of a stored `USR1@120`, or None."""
    if not text:
        return None
    name, _, lead = text.partition("@")
    return SIGNALS[name], float(lead or 60)


def check_options(
    *,
    notify: Any = None,
    notify_on: Any = None,
    requeue_on_timeout: Any = False,
    max_requeues: Any = None,
    signal: Any = None,
    kind: Any = None,
    time_limit_s: float | None = None,
) -> dict[str, Any]:
    """The checked option fields of a job spec (see `JobSpec`), or the first ValidationError.

    `notify` True without `notify_on` asks for every event; False turns notifications off for
    the job; None (neither flag) leaves the user's default (`lepton-tui notify set`) in force.
    """
    from lepton_tui.validate import parse_number

    events: list[str] | None
    if notify_on not in (None, "", [], ()):
        events = parse_notify_on(notify_on)
        if notify is False:
            raise ValidationError("--no-notify and --notify-on contradict each other")
    elif notify is None:
        events = None
    else:
        events = list(NOTIFY_EVENTS) if notify else []
    requeue = bool(requeue_on_timeout)
    if max_requeues in (None, ""):
        n_requeues = DEFAULT_MAX_REQUEUES
    else:
        n_requeues = int(
            parse_number(max_requeues, "max-requeues", minimum=0, maximum=MAX_REQUEUES,
                         integer=True)
        )  # fmt: skip
        if not requeue:
            raise ValidationError("--max-requeues needs --requeue-on-timeout", field="max-requeues")
    sig = parse_signal(signal)
    if sig and time_limit_s is None:
        raise ValidationError(
            "--signal is sent before the time limit: give --time too", field="signal"
        )
    if requeue and time_limit_s is None:
        raise ValidationError(
            "--requeue-on-timeout needs a time limit", "give --time too", field="time"
        )
    lead = signal_parts(sig)
    if lead and time_limit_s is not None and lead[1] >= time_limit_s:
        raise ValidationError(
            f"--signal {sig}: {lead[1]:g}s before the limit is not within --time",
            "give fewer seconds or a longer --time",
            field="signal",
        )
    job_kind = str(kind or "batch")
    if job_kind not in JOB_KINDS:
        raise ValidationError(f"job kind {kind!r} is not one of {', '.join(JOB_KINDS)}")
    return {
        "notify_on": events,
        "requeue_on_timeout": requeue,
        "max_requeues": n_requeues,
        "signal": sig,
        "kind": job_kind,
    }


def store(ledger: Ledger, job_id: int, spec: dict[str, Any], user: str) -> None:
    """Write a new job's options (inside the submit's transaction): its notification events are
    the spec's, else the user's default from `lepton-tui notify set`."""
    events = spec.get("notify_on")
    if events is None:
        row = ledger.notify_user(user)
        events = parse_notify_on(row["notify_on"]) if row.get("notify_on") else []
    ledger.set_job_options(
        job_id,
        {
            "notify_on": ",".join(events) or None,
            "requeue_on_timeout": 1 if spec.get("requeue_on_timeout") else 0,
            "max_requeues": int(spec.get("max_requeues") or DEFAULT_MAX_REQUEUES),
            "signal": spec.get("signal"),
            "kind": spec.get("kind") or "batch",
        },
    )


def restart_env(job: JobRow) -> dict[str, str]:
    """What an attempt of a job requeued at its time limit is told: how often it was
    (`LEPTON_RESTART_COUNT`, 0 on its first run); nothing for other jobs."""
    if not job.requeue_on_timeout:
        return {}
    return {"LEPTON_RESTART_COUNT": str(job.requeues)}
