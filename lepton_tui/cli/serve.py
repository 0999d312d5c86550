"""`lepton-tui serve`: run the dispatcher headless (one per ledger, guarded by a lock)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

import click

from lepton_tui.cli.common import CONTEXT_SETTINGS, AsciiNumber, service_for
from lepton_tui.errors import LeptonError, ValidationError


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--tick",
    "tick_s",
    type=AsciiNumber(click.FLOAT),
    default=None,
    help="Seconds between ticks (default: the tick_s setting, 2).",
)
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@click.option("-v", "--verbose", is_flag=True, help="Log every tick's work.")
@click.pass_context
def serve(ctx: click.Context, tick_s: float | None, once: bool, verbose: bool) -> None:
    """Run the dispatcher: poll hosts, place queued jobs, launch and watch them.

    Only one dispatcher runs per ledger; the console dispatches itself when none runs.
    """
    from lepton_tui.dispatcher import Dispatcher

    if tick_s is not None and not (0.05 <= tick_s <= 3600):
        raise ValidationError(f"--tick {tick_s:g} is out of range", "use 0.05 to 3600 seconds")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    with service_for(ctx) as svc:
        dispatcher = Dispatcher(svc)
        if tick_s is not None:
            dispatcher.tick_override = tick_s
        if not dispatcher.acquire():
            pid = dispatcher.lock.holder_pid()
            raise LeptonError(
                f"another dispatcher{f' (pid {pid})' if pid else ''} already serves this ledger",
                f"it holds {dispatcher.lock.path}",
            )
        try:
            if once:
                result = dispatcher.tick()
                click.echo(
                    f"polled {result.polled} host(s) ({result.failed} failed), "
                    f"placed {result.placed}, launched {result.launched}, "
                    f"finished {result.finished}"
                )
                return
            stop = threading.Event()

            def on_signal(signum: int, frame: Any) -> None:
                stop.set()

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            hosts = len(svc.list_hosts())
            click.echo(
                f"lepton-tui dispatcher serving {svc.home} ({hosts} host(s)); Ctrl-C stops it",
                err=True,
            )
            dispatcher.run(stop)
        finally:
            dispatcher.close()
