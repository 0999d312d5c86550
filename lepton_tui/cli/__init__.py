"""The `lepton-tui` command line: one lazily loaded module per command group.

Commands live in their own modules (`jobs.py`, `hosts.py`, ...) and are imported only when
invoked, so `lepton-tui queue` never pays for Textual or scipy, and the console never for torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from lepton_tui import __version__
from lepton_tui.cli.common import CONTEXT_SETTINGS, LeptonGroup, guard_command, refuse_empty

# name -> "module:attribute"; each module owns its commands.
COMMANDS: dict[str, str] = {
    "submit": "lepton_tui.cli.jobs:submit",
    "queue": "lepton_tui.cli.jobs:queue",
    "show": "lepton_tui.cli.jobs:show",
    "cancel": "lepton_tui.cli.jobs:cancel",
    "logs": "lepton_tui.cli.jobs:logs",
    "hosts": "lepton_tui.cli.hosts:hosts",
    "serve": "lepton_tui.cli.serve:serve",
    "cost": "lepton_tui.cli.cost:cost",
    "budget": "lepton_tui.cli.cost:budget",
    "price": "lepton_tui.cli.cost:price",
    "replay": "lepton_tui.cli.cost:replay",
    "plan": "lepton_tui.cli.sched:plan",
    "bench": "lepton_tui.cli.sched:bench",
    "train": "lepton_tui.cli.train:train",
    "policy": "lepton_tui.cli.sched:policy",
    "settings": "lepton_tui.cli.admin:settings",
    "events": "lepton_tui.cli.events:events",
    "service": "lepton_tui.cli.service_cmd:service",
    "keys": "lepton_tui.cli.keys:keys",
    "autopilot": "lepton_tui.cli.autopilot:autopilot",
    # notifications and interactive jobs (engineer notify)
    "notify": "lepton_tui.cli.notify:notify",
    "shell": "lepton_tui.cli.shell:shell",
    "share": "lepton_tui.cli.share:share",
    "limit": "lepton_tui.cli.share:limit",
}


class LazyGroup(LeptonGroup):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._module_exists(name))

    @staticmethod
    def _module_exists(name: str) -> bool:
        module = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module) is not None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not self._module_exists(cmd_name):
            return None
        module_name, attr = target.split(":")
        return guard_command(getattr(importlib.import_module(module_name), attr))


@click.group(cls=LazyGroup, invoke_without_command=True, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="lepton-tui")
@click.option(
    "--home",
    envvar="LEPTON_HOME",
    type=click.Path(file_okay=False),
    help="State directory (ledger, known_hosts). Default: $XDG_DATA_HOME/lepton-tui.",
)
@click.option("--demo", is_flag=True, help="Open the console on a simulated busy lab.")
@click.option(
    "--theme", default=None, help="Console theme (lepton, textual-dark, textual-light, ...)."
)
@click.pass_context
def cli(ctx: click.Context, home: str | None, demo: bool, theme: str | None) -> None:
    """lepton-tui: schedule your lab's jobs on its GPU servers, and see what they cost.

    Without a command it opens the console.
    """
    refuse_empty(ctx)
    ctx.ensure_object(dict)
    ctx.obj["home"] = home
    if ctx.invoked_subcommand is None:
        from lepton_tui.cli.console import open_console

        open_console(home=home, demo=demo, theme=theme)


def main() -> None:
    """Entry point of the `lepton-tui` script: errors of the top-level options are one line
    too (the subcommands' are turned into one line by `LeptonGroup`)."""
    from lepton_tui.cli.common import check_std_streams, fail, usage_error

    check_std_streams()
    try:
        code = cli.main(prog_name="lepton-tui", standalone_mode=False)
    except click.UsageError as exc:
        usage_error(exc)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except click.exceptions.Abort:
        fail("interrupted", 130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
