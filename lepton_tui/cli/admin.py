"""`lepton-tui settings`: show and change the lab's settings (admins change them)."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from lepton_tui.cli.common import (
    CONTEXT_SETTINGS,
    LeptonGroup,
    echo_json,
    make_console,
    printable,
    service_for,
    user_text,
)
from lepton_tui.settings import SETTINGS, effective, parse_setting


@click.group(cls=LeptonGroup, context_settings=CONTEXT_SETTINGS)
def settings() -> None:
    """Show and change the lab's settings."""


@settings.command("ls", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print the settings as a JSON object.")
@click.pass_context
def ls(ctx: click.Context, as_json: bool) -> None:
    """Every setting with its value in force."""
    with service_for(ctx, read_only=True) as svc:
        stored = svc.settings()
    values = effective(stored)
    if as_json:
        echo_json(values)
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    # a key or value cut to `…` cannot be copied into `settings set`: the key keeps its width
    # and a long value folds onto more lines; the meaning wraps in what is left
    table.add_column("KEY", no_wrap=True, min_width=max(map(len, values), default=3))
    table.add_column("VALUE", overflow="fold")
    table.add_column("")
    table.add_column("MEANING", overflow="fold")
    for key in sorted(values):
        meaning = SETTINGS[key].help if key in SETTINGS else ""
        table.add_row(user_text(key), user_text(values[key]),
                      Text("" if key in stored else "(default)"), Text(meaning))  # fmt: skip
    make_console().print(table)


@settings.command("get", context_settings=CONTEXT_SETTINGS)
@click.argument("key")
@click.pass_context
def get(ctx: click.Context, key: str) -> None:
    """Print one setting's value."""
    with service_for(ctx, read_only=True) as svc:
        values = effective(svc.settings())
    if key not in values:
        parse_setting(key, "")  # raises the "unknown setting" error with the list of keys
    click.echo(printable(values[key]))


@settings.command("set", context_settings=CONTEXT_SETTINGS)
@click.argument("key")
@click.argument("value")
@click.pass_context
def set_(ctx: click.Context, key: str, value: str) -> None:
    """Change a setting (admins only), e.g. `settings set policy dqn`."""
    parsed = parse_setting(key, value)
    with service_for(ctx) as svc:
        svc.set_setting(key, parsed)
    click.echo(printable(f"{key} = {parsed}"))
