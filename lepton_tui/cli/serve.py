"""`lepton-tui serve`: run the dispatcher headless (one per ledger, guarded by a lock)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

import click

from lepton_tui.cli.common import CONTEXT_SETTINGS, AsciiNumber, home_from, service_for
from lepton_tui.errors import LeptonError, ValidationError
from lepton_tui.paths import state_dir


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--tick",
    "tick_s",
    type=AsciiNumber(click.FLOAT),
    default=None,
    help="Seconds between ticks (default: the tick_s setting, 2).",
)
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Lab mode: also serve the service API to the lab's users on this Unix socket.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every tick's work.")
@click.pass_context
def serve(
    ctx: click.Context, tick_s: float | None, once: bool, socket_path: str | None, verbose: bool
) -> None:
    """Run the dispatcher: poll hosts, place queued jobs, launch and watch them.

    Only one dispatcher runs per ledger; the console dispatches itself when none runs. With
    --socket it is the lab service: the lab's users reach it through that socket (their identity
    is their uid, as the kernel tells it), and only it opens the ledger.
    """
    from lepton_tui.dispatch.loop import Dispatcher

    if tick_s is not None and not (0.05 <= tick_s <= 3600):
        raise ValidationError(f"--tick {tick_s:g} is out of range", "use 0.05 to 3600 seconds")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    if socket_path is not None and once:
        raise ValidationError("--once runs no service", "drop --socket or --once")
    if socket_path is not None:
        from lepton_tui.labd import check_private_state
        from lepton_tui.labkey import ensure_lab_key

        check_private_state(state_dir(home_from(ctx)))
        key, made = ensure_lab_key(state_dir(home_from(ctx)))
        if made:
            click.echo(f"created the lab key {key}; users add `lepton-tui keys show`", err=True)
    with service_for(ctx, local=True) as svc:
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
            server = _start_lab_service(socket_path, svc) if socket_path else None
            where = f", lab service on {socket_path}" if socket_path else ""
            click.echo(
                f"lepton-tui dispatcher serving {svc.home} ({hosts} host(s)){where}; "
                "Ctrl-C stops it",
                err=True,
            )
            try:
                dispatcher.run(stop)
            finally:
                if server is not None:
                    server.shutdown()
                    server.server_close()
        finally:
            dispatcher.close()


def _start_lab_service(socket_path: str, svc: Any) -> Any:
    """Listen on the lab socket in a thread of its own, on the dispatcher's ledger."""
    from lepton_tui.labd import LabServer

    server = LabServer(socket_path, svc.ledger, svc.home)
    threading.Thread(target=server.serve_forever, name="lab-service", daemon=True).start()
    return server
