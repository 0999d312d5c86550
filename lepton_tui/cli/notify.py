"""`lepton-tui notify`: your notification defaults, and the notifications sent about your jobs."""

from __future__ import annotations

import time

import click

from lepton_tui.cli.common import (
    CONTEXT_SETTINGS,
    AsciiNumber,
    LeptonGroup,
    echo_json,
    printable,
    service_for,
)
from lepton_tui.cli.listing import table_lines, write_lines


@click.group(cls=LeptonGroup, context_settings=CONTEXT_SETTINGS)
def notify() -> None:
    """Be told when your jobs end, fail, time out or are held.

    \b
    Per job: `submit --notify` (every event) or `--notify-on end,fail`.
    By default for all your jobs: `notify set --on end,fail,timeout,hold`.
    Where to: your own `--email` / `--webhook`, else the lab's settings
    (notify_command, notify_webhook, notify_email: `lepton-tui settings ls`).
    """


def _show(prefs: dict[str, object]) -> None:
    events = prefs.get("notify_on") or []
    click.echo(f"on       {','.join(events) if isinstance(events, list) and events else 'off'}")
    click.echo(f"email    {printable(prefs.get('email') or '- (the lab setting notify_email)')}")
    click.echo(
        f"webhook  {printable(prefs.get('webhook') or '- (the lab setting notify_webhook)')}"
    )


@notify.command("show", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print them as a JSON object.")
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """Your defaults: the events you are told of, your email and webhook."""
    with service_for(ctx, read_only=True) as svc:
        prefs = svc.notify_prefs()
    echo_json(prefs) if as_json else _show(prefs)


@notify.command("set", context_settings=CONTEXT_SETTINGS)
@click.option("--on", "notify_on", default=None, help="end,fail,timeout,hold (or all).")
@click.option("--email", default=None, help="Your address (none: the lab's).")
@click.option("--webhook", default=None, help="Your Slack/Mattermost URL (none: the lab's).")
@click.pass_context
def set_(ctx: click.Context, notify_on: str | None, email: str | None, webhook: str | None) -> None:
    """Change your defaults (jobs submitted without --notify/--no-notify get them)."""
    from lepton_tui.errors import ValidationError
    from lepton_tui.job_options import parse_notify_on
    from lepton_tui.notify import check_email, check_webhook

    if notify_on is None and email is None and webhook is None:
        raise ValidationError("nothing to set", "give --on, --email or --webhook")
    # checked here too, so bad input fails before the service is reached (exit 2)
    events = None if notify_on is None else parse_notify_on(notify_on)
    email = None if email is None else check_email(email)
    webhook = None if webhook is None else check_webhook(webhook)
    with service_for(ctx) as svc:
        prefs = svc.set_notify_prefs(events, email, webhook)
    _show(prefs)


@notify.command("off", context_settings=CONTEXT_SETTINGS)
@click.pass_context
def off(ctx: click.Context) -> None:
    """No notifications for jobs submitted without --notify (from now on)."""
    with service_for(ctx) as svc:
        prefs = svc.set_notify_prefs([], None, None)
    _show(prefs)


@notify.command("ls", context_settings=CONTEXT_SETTINGS)
@click.option("--limit", default=50, show_default=True, type=AsciiNumber(click.IntRange(1, 10000)))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def ls(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The latest notifications of your jobs (an admin's: everyone's), newest first."""
    with service_for(ctx, read_only=True) as svc:
        rows = svc.notifications(limit)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No notifications yet. Submit with --notify, or `lepton-tui notify set`.")
        return
    lines = table_lines(
        ("ID", "JOB", "USER", "EVENT", "CHANNEL", "STATE", "WHEN", "ERROR"),
        [
            (str(r["id"]), str(r["job_id"]), printable(r["user"]), r["event"], r["channel"],
             r["state"], time.strftime("%m-%d %H:%M:%S",
                                       time.localtime(r["sent_at"] or r["created_at"])),
             printable(r["error"] or ""))
            for r in rows
        ],
    )  # fmt: skip
    write_lines(list(lines), page=False)
