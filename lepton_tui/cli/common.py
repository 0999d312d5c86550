"""What every CLI module shares: error handling, the service for the chosen home, JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

from lepton_tui.errors import LeptonError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def fail(message: str, code: int = 1) -> None:
    """Print one line on stderr and exit with `code` (2 for usage, 1 for runtime)."""
    click.echo(f"lepton-tui: error: {message}", err=True)
    sys.exit(code)


class LeptonGroup(click.Group):
    """A group that turns every failure into one line on stderr, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LeptonError as exc:
            fail(str(exc), exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:
            sys.exit(0)
        except UnicodeError as exc:
            fail(f"input is not valid UTF-8 text: {getattr(exc, 'reason', exc)}", 2)
        except OSError as exc:
            fail(f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc), 1)
        except Exception as exc:  # noqa: BLE001 - the last guard: one line, not a traceback
            fail(f"internal error: {type(exc).__name__}: {exc} (please report it)", 1)


def home_from(ctx: click.Context) -> str | None:
    """The --home given to the top-level command (or LEPTON_HOME), or None for the default."""
    root = ctx.find_root()
    return (root.obj or {}).get("home")


@contextmanager
def service_for(ctx: click.Context, **kwargs: Any) -> Iterator[Any]:
    """Open the service on the chosen state directory and close it afterwards."""
    from lepton_tui.service import Service

    svc = Service.open(home_from(ctx), **kwargs)
    try:
        yield svc
    finally:
        svc.close()


def echo_json(data: Any, out: IO[str] | None = None) -> None:
    """Print `data` as stable, sorted, indented JSON."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str), file=out)
