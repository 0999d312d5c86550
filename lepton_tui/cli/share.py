"""`lepton-tui share`, `lepton-tui limit` and `lepton-tui hosts label`: the shared lab's rules
(fair share, limits, host labels). Everyone may list; only admins change them."""

from __future__ import annotations

from typing import Any

import click

from lepton_tui.cli.common import CONTEXT_SETTINGS, LeptonGroup, echo_json, printable, service_for
from lepton_tui.cli.listing import table_lines, write_lines
from lepton_tui.errors import ValidationError
from lepton_tui.validate import format_duration


def _scope(user: str | None, project: str | None) -> tuple[str, str]:
    if bool(user) == bool(project):
        raise ValidationError("give exactly one of --user U or --project P", field="user")
    return ("user", str(user)) if user else ("project", str(project))


@click.group(cls=LeptonGroup, context_settings=CONTEXT_SETTINGS)
def share() -> None:
    """Fair share: each user's and project's recent usage against its shares."""


@share.command("ls", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def share_ls(ctx: click.Context, as_json: bool) -> None:
    """Usage (decayed GPU- and CPU-hours by the lab's prices), shares and factor of every user
    and project with usage, shares or jobs waiting. A factor under 1 lowers its jobs' priority."""
    with service_for(ctx, read_only=True) as svc:
        rows = svc.share_list()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No usage, shares or waiting jobs yet.")
        return
    table = [
        (
            r["scope"],
            printable(r["name"]),
            f"{r['usage']:.4g}",
            f"{r['shares']:g}",
            f"{r['factor']:.3f}",
        )  # fmt: skip
        for r in rows
    ]
    lines = list(table_lines(("SCOPE", "NAME", "USAGE", "SHARES", "FACTOR"), table))
    lines.append(f"usage half-life {format_duration(rows[0]['half_life_s'])}; "
                 "factor = 2^-(usage part / share part)")  # fmt: skip
    write_lines(lines, page=False)


@share.command("set", context_settings=CONTEXT_SETTINGS)
@click.option("--user", default=None, help="The user.")
@click.option("--project", default=None, help="The project.")
@click.option("--shares", default=None, help="Shares (default for everyone: 1).")
@click.option("--reset", is_flag=True, help="Back to the default share (1).")
@click.pass_context
def share_set(ctx: click.Context, user: str | None, project: str | None, shares: str | None,
              reset: bool) -> None:  # fmt: skip
    """Set a user's or project's shares (admins only)."""
    scope, name = _scope(user, project)
    if (shares is None) == (not reset):
        raise ValidationError("give --shares N or --reset", field="shares")
    with service_for(ctx) as svc:
        out = svc.share_set(scope, name, None if reset else shares)
    click.echo(f"{scope} {printable(name)}: {out['shares']:g} shares")


@click.group(cls=LeptonGroup, context_settings=CONTEXT_SETTINGS)
def limit() -> None:
    """Limits: the most GPUs, CPUs and running jobs a user or project holds at once."""


@limit.command("ls", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def limit_ls(ctx: click.Context, as_json: bool) -> None:
    """Every limit in force."""
    with service_for(ctx, read_only=True) as svc:
        rows = svc.limit_list()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No limits. Set one with `lepton-tui limit set --user U --gpus 4`.")
        return

    def cell(v: Any) -> str:
        return "-" if v is None else f"{v:g}"

    table = [(r["scope"], printable(r["name"]), cell(r["gpus"]), cell(r["cpus"]), cell(r["jobs"]))
             for r in rows]  # fmt: skip
    write_lines(list(table_lines(("SCOPE", "NAME", "GPUS", "CPUS", "JOBS"), table)), page=False)


@limit.command("set", context_settings=CONTEXT_SETTINGS)
@click.option("--user", default=None, help="The user.")
@click.option("--project", default=None, help="The project.")
@click.option("--gpus", default=None, help="At most this many GPUs at once (a GPU share: 1).")
@click.option("--cpus", default=None, help="At most this many CPUs at once.")
@click.option("--jobs", default=None, help="At most this many running jobs.")
@click.option("--clear", is_flag=True, help="Remove this user's or project's limits.")
@click.pass_context
def limit_set(ctx: click.Context, user: str | None, project: str | None, gpus: str | None,
              cpus: str | None, jobs: str | None, clear: bool) -> None:  # fmt: skip
    """Cap what a user or project holds at once (admins only); jobs past it wait, saying so."""
    scope, name = _scope(user, project)
    if clear and any(v is not None for v in (gpus, cpus, jobs)):
        raise ValidationError("--clear takes no --gpus, --cpus or --jobs", field="clear")
    with service_for(ctx) as svc:
        out = svc.limit_set(scope, name, gpus=gpus, cpus=cpus, jobs=jobs, clear=clear)
    parts = [f"{k} {out[k]:g}" for k in ("gpus", "cpus", "jobs") if out[k] is not None]
    click.echo(f"{scope} {printable(name)}: " + (", ".join(parts) if parts else "no limits"))


@click.command("label", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.argument("labels", nargs=-1)
@click.option("--rm", "remove", multiple=True, help="Remove a label by key or key=value.")
@click.option("--json", "as_json", is_flag=True, help="Print the host's labels as JSON.")
@click.pass_context
def label(ctx: click.Context, name: str, labels: tuple[str, ...], remove: tuple[str, ...],
          as_json: bool) -> None:  # fmt: skip
    """Set labels key=value on host NAME (admins only); jobs ask for them with --constraint.
    With no label, print its labels (its GPU model is `gpu=MODEL`, from the probe)."""
    from lepton_tui.constraints import host_labels

    with service_for(ctx, read_only=not (labels or remove)) as svc:
        host = svc.label_host(name, labels, remove) if labels or remove else svc.get_host(name)
    shown = host_labels(host)
    if as_json:
        echo_json(shown)
        return
    click.echo(f"{printable(name)}: " + (printable(" ".join(shown)) if shown else "no labels"))
