"""What every CLI module shares: error handling, the service for the chosen home, JSON output."""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import IO, TYPE_CHECKING, Any

import click

from lepton_tui.errors import LeptonError, ValidationError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# -- printing what users typed -------------------------------------------------------------------
#
# Job commands, names, events, host names and the like are typed by users (or reported by hosts)
# and end up on other people's terminals. They are never read as Rich markup, and characters a
# terminal would act on are shown as visible escapes: C0 controls, DEL, C1 controls (a CSI or OSC
# sequence can retitle a window, move the cursor, write the clipboard), bidirectional overrides
# and line/paragraph separators (they reorder or break what is shown).

_UNSAFE_CHARS = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


@lru_cache(maxsize=8)
def _unsafe_re(keep: str) -> re.Pattern[str]:
    allowed = "".join(f"\\x{ord(c):02x}" for c in keep)
    return re.compile(f"(?![{allowed}])[{_UNSAFE_CHARS}]" if allowed else f"[{_UNSAFE_CHARS}]")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(value: Any, keep: str = "") -> str:
    r"""`value` as text safe to show on a terminal: control characters become visible escapes.

    `keep` names the harmless layout characters to leave alone ("\t\n" for a multi-line value);
    everything else that a terminal would act on is written as `\x1b`, `\n`, `\u202e`, ...
    """
    text = "" if value is None else str(value)
    return _unsafe_re(keep).sub(_escape_char, text)


def user_text(value: Any, style: str = "", *, multiline: bool = False) -> Text:
    """A Rich `Text` of user-controlled `value`: never markup, never raw control characters."""
    from rich.text import Text

    return Text(printable(value, "\t\n" if multiline else ""), style=style, overflow="fold")


def make_console(**kwargs: Any) -> Console:
    """The Console every command prints with: no emoji codes (`:x:`), no guessing highlights.

    Markup stays on for the commands' own literal strings; user-controlled values go in as
    `user_text(...)`, which Rich never parses.
    """
    from rich.console import Console

    return Console(highlight=False, emoji=False, **kwargs)


_SGR_RE = re.compile(r"\x1b\[[0-9;:]{0,64}m")
_SGR_PREFIX_RE = re.compile(r"\x1b(?:\[[0-9;:]{0,64})?\Z")


class TerminalLogFilter:
    """Make a job's own output safe to stream to a terminal, chunk by chunk.

    Colours (SGR sequences, `ESC [ ... m`) and newlines, tabs and carriage returns pass as they
    are: they are what the job meant to show. Every other control character or escape sequence
    (window titles, cursor moves, clipboard writes, device queries) is shown as a visible escape.
    A sequence cut in two by the chunking is held until the next chunk decides it.
    """

    def __init__(self) -> None:
        self._held = ""
        self.coloured = False

    def feed(self, chunk: str) -> str:
        text = self._held + chunk
        self._held = ""
        cut = _SGR_PREFIX_RE.search(text)
        if cut:
            self._held = text[cut.start() :]
            text = text[: cut.start()]
        return self._clean(text)

    def flush(self) -> str:
        """What is still held, cleaned; and a colour reset if the job left colours on."""
        held, self._held = self._held, ""
        text = self._clean(held)
        return text + ("\x1b[0m" if self.coloured else "")

    def _clean(self, text: str) -> str:
        parts: list[str] = []
        pos = 0
        for match in _SGR_RE.finditer(text):
            parts.append(printable(text[pos : match.start()], "\t\n\r"))
            parts.append(match.group())
            self.coloured = True
            pos = match.end()
        parts.append(printable(text[pos:], "\t\n\r"))
        return "".join(parts)


MAX_WORD = 200  # a longer word in an error (a huge argument echoed back) is cut ...
MAX_WORD_SHOWN = 100  # ... to this much of its start
MAX_ERROR_CHARS = 400


def _shorten_word(match: re.Match[str]) -> str:
    word = match.group()
    return f"{word[:MAX_WORD_SHOWN]}... ({len(word):,} characters)"


def short_line(message: str) -> str:
    """`message` as one short line: a huge value in it (a 100 kB argument echoed back) is cut to
    its start and its length, and the whole line to MAX_ERROR_CHARS, keeping its end (the hint)."""
    text = re.sub(rf"\S{{{MAX_WORD + 1},}}", _shorten_word, printable(message))
    if len(text) > MAX_ERROR_CHARS:
        keep = MAX_ERROR_CHARS // 3
        text = f"{text[: MAX_ERROR_CHARS - keep - 5]} ... {text[-keep:]}"
    return text


def fail(message: str, code: int = 1) -> None:
    """Print one short line on stderr and exit with `code` (2 for usage, 1 for runtime)."""
    click.echo(f"lepton-tui: error: {short_line(message)}", err=True)
    sys.exit(code)


def _open_mode(fd: int) -> int | None:
    try:
        return fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:
        return None


def _to_devnull(fd: int, flags: int) -> None:
    """Point `fd` at /dev/null (child processes get it too)."""
    nul = os.open(os.devnull, flags)
    if nul != fd:
        os.dup2(nul, fd)
        os.close(nul)


STDOUT_CLOSED = False
"""stdout was closed when the command started (`check_std_streams`)"""
PRINT_NOTHING = frozenset({"serve"})
"""commands that print nothing to stdout while they run, so a closed stdout is no loss"""


def check_std_streams() -> None:
    """A closed standard stream (`2>&-` in a cron line, `>&-`; a shell may leave a read-only
    file there instead) is pointed at /dev/null, so nothing opened later takes its number and a
    write never fails: stderr then goes nowhere, as GNU tools carry on without it. A command
    that prints its result (a job's id, a table) then refuses to run (`refuse_closed_stdout`),
    since what it would print could not be seen; `serve` and the console run."""
    global STDOUT_CLOSED
    if _open_mode(0) is None:
        _to_devnull(0, os.O_RDONLY)
    for fd, name in ((2, "stderr"), (1, "stdout")):
        if _open_mode(fd) in (os.O_WRONLY, os.O_RDWR) and getattr(sys, name) is not None:
            continue
        if _open_mode(fd) not in (os.O_WRONLY, os.O_RDWR):
            _to_devnull(fd, os.O_WRONLY)
        setattr(sys, name, open(fd, "w", closefd=False))  # noqa: SIM115 - the process's stream
        STDOUT_CLOSED = STDOUT_CLOSED or fd == 1


def refuse_closed_stdout(ctx: click.Context) -> None:
    """Fail (exit 1) before a command that prints its result runs with stdout closed."""
    if STDOUT_CLOSED and ctx.find_root().invoked_subcommand not in PRINT_NOTHING:
        fail("standard output is closed, so nothing would be shown; "
             "send it somewhere (`> /dev/null` drops it)")  # fmt: skip


class AsciiNumber(click.ParamType):
    """A click number type (`click.IntRange(1, 10)`, `float`) that takes only the digits 0-9:
    Python's int() and float() also read other scripts' digits ('١٢' is 12)."""

    def __init__(self, base: click.ParamType) -> None:
        self.base = base
        self.name = base.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.isascii():
            self.fail(f"{value!r} is not a number written with the digits 0-9", param, ctx)
        return self.base.convert(value, param, ctx)


def refuse_empty(ctx: click.Context) -> None:
    """Bad input: an option or argument given as an empty string (`--time ''`) is refused, not
    taken as "not given" (a script's unset variable must not silently drop a limit)."""
    from click.core import ParameterSource

    for param in ctx.command.params:
        if param.name is None or param.nargs == -1 or getattr(param, "is_flag", False):
            continue
        if ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
            continue
        value = ctx.params.get(param.name)
        values = value if isinstance(value, (tuple, list)) else (value,)
        if any(isinstance(v, str) and not v.strip() for v in values):
            if isinstance(param, click.Option):
                shown, hint = max(param.opts, key=len), "give a value, or leave the option out"
            else:
                shown, hint = param.human_readable_name, "give a value"
            raise ValidationError(f"{shown} is empty", hint, field=shown)


def guard_command(cmd: click.Command | None) -> click.Command | None:
    """Make `cmd` (and, for a group, each subcommand it resolves) refuse empty values first."""
    if cmd is None or getattr(cmd, "_lepton_guarded", False) or cmd.callback is None:
        return cmd
    callback = cmd.callback

    @functools.wraps(callback)
    def checked(*args: Any, **kwargs: Any) -> Any:
        refuse_closed_stdout(click.get_current_context())
        refuse_empty(click.get_current_context())
        return callback(*args, **kwargs)

    cmd.callback = checked
    cmd._lepton_guarded = True  # type: ignore[attr-defined]
    return cmd


def usage_error(exc: click.UsageError, ctx: click.Context | None = None) -> None:
    """Bad options or arguments: one line, like every other error, saying where help is. A
    group given no subcommand (`lepton-tui hosts`) shows its help instead."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        click.echo(exc.format_message(), err=True)
        sys.exit(exc.exit_code)
    at = exc.ctx or ctx
    path = at.command_path if at is not None else "lepton-tui"
    sub = at.invoked_subcommand if at is not None and exc.ctx is None else None
    if sub:  # the subcommand's own parser failed before it had a context
        path = f"{path} {sub}"
    message = exc.format_message()
    if isinstance(exc, click.NoSuchOption) and _NEGATIVE_RE.match(exc.option_name):
        # `show -1`, `settings set tick_s -5`: a value, not an option that is missing (click
        # names only the first "short option" of `-1.5`: the word typed is in argv)
        typed = [a for a in sys.argv[1:] if a.startswith(exc.option_name)]
        word = typed[0] if typed and _NEGATIVE_RE.fullmatch(typed[0]) else exc.option_name
        message = f"{word} is not a valid value here (negative numbers are not)"
    fail(f"{message} (see `{path} --help`)", 2)


_NEGATIVE_RE = re.compile(r"-[0-9][0-9.e+-]*")


class LeptonGroup(click.Group):
    """A group that turns every failure into one line on stderr, never a traceback, and whose
    commands refuse empty values."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return guard_command(super().get_command(ctx, cmd_name))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LeptonError as exc:
            fail(str(exc), exc.exit_code)
        except click.UsageError as exc:
            usage_error(exc, ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:
            sys.exit(0)
        except UnicodeEncodeError as exc:
            encoding = getattr(sys.stdout, "encoding", None) or exc.encoding
            fail(f"cannot print {exc.object[exc.start : exc.end]!r} in this terminal's encoding "
                 f"({encoding}); use a UTF-8 locale, e.g. LANG=C.UTF-8", 1)  # fmt: skip
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
def service_for(
    ctx: click.Context, *, read_only: bool = False, local: bool = False, **kwargs: Any
) -> Iterator[Any]:
    """The service for this command, closed afterwards: a client of the lab service when a
    socket is configured (lab mode: no ledger is opened here), else the service on the chosen
    state directory. `local` (the daemon itself) always opens the ledger. A `read_only` command
    never creates the directory or its ledger: a missing one is an error."""
    from lepton_tui.client import LabClient, configured_socket

    socket_path = None if local else configured_socket()
    if socket_path is not None:
        client = LabClient(socket_path)
        try:
            yield client
        finally:
            client.close()
        return

    from lepton_tui.service import Service

    svc = Service.open(home_from(ctx), create=not read_only, **kwargs)
    try:
        yield svc
    finally:
        svc.close()


def echo_json(data: Any, out: IO[str] | None = None) -> None:
    """Print `data` as stable, sorted, indented JSON."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str), file=out)
