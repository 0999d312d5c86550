"""`lepton-tui events`: the audit trail (who changed what, when)."""

from __future__ import annotations

import time
from datetime import datetime

import click
from rich.table import Table
from rich.text import Text

from lepton_tui.cli.common import CONTEXT_SETTINGS, echo_json, make_console, service_for, user_text
from lepton_tui.errors import ValidationError
from lepton_tui.validate import parse_duration_s, parse_id


def parse_since(text: str, now: float) -> float:
    """`2h` (that long ago) or a date `2026-12-01` / `2026-12-01T09:30` (local time)."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        pass
    try:
        return now - parse_duration_s(text, "since")
    except ValidationError:
        raise ValidationError(
            f"--since {text!r} is neither a duration nor a date",
            "give e.g. 2h, 3d or 2026-12-01",
            field="since",
        ) from None


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--user", default=None, help="Only what this user did.")
@click.option("--since", default=None, help="Only since then: 2h (ago), 3d, or 2026-12-01.")
@click.option("--job", "job_id", default=None, help="Only events of this job.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of events.")
@click.pass_context
def events(ctx: click.Context, user: str | None, since: str | None, job_id: str | None,
           limit: int, as_json: bool) -> None:  # fmt: skip
    """The audit trail, newest first: every state change and who made it."""
    since_at = None if since is None else parse_since(since, time.time())
    job_no = None if job_id is None else parse_id(job_id, "job")
    with service_for(ctx, read_only=True) as svc:  # a typo'd --home makes no new lab
        rows = svc.events(limit=limit, job_id=job_no, user=user, since=since_at)
    if as_json:
        echo_json(rows)
        return
    console = make_console()
    if not rows:
        console.print("No events.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    # the time, kind and job keep to one line; on a narrow terminal a long user or host name
    # folds, rather than pushing the message (and the columns after it) off the table
    for col in ("TIME", "USER", "KIND", "JOB", "HOST", "MESSAGE"):
        table.add_column(col, no_wrap=col in ("TIME", "KIND", "JOB"))
    for e in rows:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"]))
        table.add_row(
            Text(stamp), user_text(e["actor"] or "-"), user_text(e["kind"]),
            Text(str(e["job_id"] or "-")), user_text(e["host"] or "-"), user_text(e["message"]),
        )  # fmt: skip
    console.print(table)
