"""A user's notification defaults: read and written here for the user `service.py` names (the
caller: a user's address is theirs to give)."""

from __future__ import annotations

from typing import Any

from lepton_tui.ledger import Ledger


def prefs_of(ledger: Ledger, user: str) -> dict[str, Any]:
    """`user`'s defaults: events for jobs submitted without --notify, and their own email
    address and webhook (None: the lab's, if any)."""
    row = ledger.notify_user(user)
    return {
        "user": user,
        "notify_on": [e for e in (row.get("notify_on") or "").split(",") if e],
        "email": row.get("email") or None,
        "webhook": row.get("webhook") or None,
    }


def set_prefs(
    ledger: Ledger, user: str, notify_on: Any, email: str | None, webhook: str | None
) -> dict[str, Any]:
    """Change `user`'s defaults, with an event; a None field keeps its value, "" clears it."""
    from lepton_tui.job_options import parse_notify_on
    from lepton_tui.notify import check_email, check_webhook

    current = prefs_of(ledger, user)
    events = current["notify_on"] if notify_on is None else parse_notify_on(notify_on)
    mail = current["email"] if email is None else check_email(str(email))
    hook = current["webhook"] if webhook is None else check_webhook(str(webhook))
    with ledger.tx():
        ledger.save_notify_user(user, ",".join(events) or None, mail or None, hook or None)
        ledger.event(
            "notify.prefs", f"{user} notification defaults: {','.join(events) or 'off'}",
            actor=user,
        )  # fmt: skip
    return prefs_of(ledger, user)
