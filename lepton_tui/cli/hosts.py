"""Host commands: add, ls, rm, drain, resume (records; SSH onboarding lives in onboarding.py)."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lepton_tui.cli.common import CONTEXT_SETTINGS, LeptonGroup, echo_json, service_for
from lepton_tui.validate import format_size_mb

HOST_JSON_FIELDS = (
    "name", "address", "port", "user", "transport", "state", "admin_state", "cpus", "mem_mb",
    "gpus", "gpu_mem_mb", "gpu_model", "price_per_hour", "host_key_fingerprint", "last_seen",
    "last_error", "labels",
)  # fmt: skip


def host_json(host: dict[str, Any]) -> dict[str, Any]:
    """A host as the stable JSON object `hosts ls --json` prints."""
    return {k: host.get(k) for k in HOST_JSON_FIELDS}


@click.group(cls=LeptonGroup, context_settings=CONTEXT_SETTINGS)
def hosts() -> None:
    """Add, list, drain and remove the servers jobs run on."""


@hosts.command("add", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--address", default=None, help="Host name or IP address to SSH to.")
@click.option("--port", default="22", show_default=True, help="SSH port.")
@click.option("--user", default=None, help="SSH login (default: from ~/.ssh/config or yours).")
@click.option("--key", "key_path", default=None, help="Private key file (else the ssh agent).")
@click.option("--local", is_flag=True, help="This machine itself (no SSH).")
@click.option("--price-per-hour", default=None, help="What an hour of this host costs, in $.")
@click.pass_context
def add(ctx: click.Context, name: str, **opts: Any) -> None:
    """Record a host."""
    with service_for(ctx) as svc:
        host = svc.add_host(name, **opts)
    click.echo(f"added host {host['name']} ({host['transport']})")


@hosts.command("ls", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of hosts.")
@click.pass_context
def ls(ctx: click.Context, as_json: bool) -> None:
    """List hosts with their state and capacity."""
    with service_for(ctx) as svc:
        rows = svc.list_hosts()
    if as_json:
        echo_json([host_json(h) for h in rows])
        return
    console = Console()
    if not rows:
        console.print("No hosts yet. Add this machine with `lepton-tui hosts add NAME --local`.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("NAME", "ADDRESS", "STATE", "CPUS", "MEM", "GPUS", "$/H"):
        table.add_column(col)
    for h in rows:
        state = "draining" if h["admin_state"] == "draining" else h["state"]
        where = "local" if h["transport"] == "local" else f"{h['address']}:{h['port']}"
        price = "-" if h["price_per_hour"] is None else f"{h['price_per_hour']:.2f}"
        gpus = (
            f"{h['gpus']}x {h['gpu_model']}"
            if h["gpus"] and h["gpu_model"]
            else str(h["gpus"] or 0)
        )
        table.add_row(
            h["name"],
            where,
            state,
            f"{h['cpus'] or 0:g}",
            format_size_mb(h["mem_mb"] or 0),
            gpus,
            price,
        )
    console.print(table)


@hosts.command("rm", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove even while jobs run there.")
@click.pass_context
def rm(ctx: click.Context, name: str, force: bool) -> None:
    """Remove a host."""
    with service_for(ctx) as svc:
        svc.remove_host(name, force=force)
    click.echo(f"removed host {name}")


@hosts.command("drain", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.pass_context
def drain(ctx: click.Context, name: str) -> None:
    """Let running jobs finish and place nothing new on NAME."""
    with service_for(ctx) as svc:
        svc.set_draining(name, True)
    click.echo(f"host {name} draining")


@hosts.command("resume", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.pass_context
def resume(ctx: click.Context, name: str) -> None:
    """Place jobs on NAME again."""
    with service_for(ctx) as svc:
        svc.set_draining(name, False)
    click.echo(f"host {name} resumed")
