"""`lepton-tui keys show`: the lab key's line for users' `~/.ssh/authorized_keys`."""

from __future__ import annotations

import click

from lepton_tui.cli.common import CONTEXT_SETTINGS, LeptonGroup, printable, service_for


@click.group(cls=LeptonGroup, context_settings=CONTEXT_SETTINGS)
def keys() -> None:
    """The lab's SSH key (lab mode)."""


@keys.command("show", context_settings=CONTEXT_SETTINGS)
@click.pass_context
def show(ctx: click.Context) -> None:
    """Print the line to add to ~/.ssh/authorized_keys (on every host, or once in an NFS home).

    \b
    Example:
      lepton-tui keys show >> ~/.ssh/authorized_keys
    """
    with service_for(ctx) as svc:
        click.echo(printable(svc.lab_key()))
