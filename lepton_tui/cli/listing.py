"""Long listings without Rich: plain aligned columns, a pager on a terminal, streamed JSON.

`lepton-tui queue` on a big ledger is read far more often than it is looked at whole: building a
Rich table of 1,000 rows cost over a second (and importing Rich 40 ms) where formatting the same
rows as padded strings costs a few milliseconds. Cells here are already safe text (`printable`).
On a terminal, a listing longer than the screen goes through a pager (`$LEPTON_PAGER`, `$PAGER`,
else `less` with `LESS=FRX`, as git does); into a pipe or a file it is written as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

ELLIPSIS = "\u2026"
BOLD, YELLOW, RESET = "\x1b[1m", "\x1b[33m", "\x1b[0m"


def cell_width(text: str) -> int:
    """The terminal cells `text` takes: East Asian wide characters two, combining marks none."""
    if text.isascii():
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return width


def clip(text: str, width: int) -> str:
    """`text` cut to at most `width` cells, ending with an ellipsis when cut."""
    if cell_width(text) <= width:
        return text
    if width <= 0:
        return ""
    out, used = [], 0
    for char in text:
        w = cell_width(char)
        if used + w > width - 1:
            break
        out.append(char)
        used += w
    return "".join(out) + ELLIPSIS


def table_lines(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int | None = None,
    color: bool = False,
    gap: int = 2,
) -> Iterator[str]:
    """The lines of a table: a header, then one line per row, columns `gap` cells apart.

    Every column but the last is as wide as its widest cell; the last takes the rest of `width`
    (cut with an ellipsis) or, without a width (a pipe), all it needs."""
    widths = [cell_width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            w = cell_width(cell)
            if w > widths[i]:
                widths[i] = w
    lead = sum(widths[:-1]) + gap * (len(headers) - 1)
    last = None if width is None else max(8, width - lead)
    sep = " " * gap

    def line(cells: Sequence[str]) -> str:
        parts = [c + " " * (widths[i] - cell_width(c)) for i, c in enumerate(cells[:-1])]
        tail = cells[-1] if last is None else clip(cells[-1], last)
        return (sep.join(parts) + sep + tail).rstrip()

    head = line(headers)
    yield f"{BOLD}{head}{RESET}" if color else head
    for row in rows:
        yield line(row)


def is_terminal(stream: Any) -> bool:
    """Whether `stream` is a terminal (a closed or fake stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def use_color(stream: Any) -> bool:
    """Colours on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    return is_terminal(stream) and not os.environ.get("NO_COLOR")


def pager_command() -> str | None:
    """The pager to use: $LEPTON_PAGER, else $PAGER, else `less`; None for `cat` or empty.
    A shell command line, run by the shell as git runs its pager (`PAGER='less -S'` works)."""
    for var in ("LEPTON_PAGER", "PAGER"):
        value = os.environ.get(var)
        if value is not None:
            return None if value.strip() in ("", "cat") else value
    return "less" if shutil.which("less") else None


def write_lines(lines: Iterable[str], *, out: IO[str] | None = None, page: bool = True) -> None:
    """Write `lines`: through a pager when `out` is a terminal, `page` is set and they are more
    than the screen holds; else straight to `out`."""
    out = out or sys.stdout
    lines = list(lines)
    if page and is_terminal(out) and len(lines) >= shutil.get_terminal_size().lines:
        pager = pager_command()
        if pager is not None and _page(pager, lines):
            return
    out.write("".join(f"{text}\n" for text in lines))
    out.flush()


def _page(pager: str, lines: list[str]) -> bool:
    """Feed `lines` to `pager` and wait for it; False if it cannot be started."""
    env = dict(os.environ)
    env.setdefault("LESS", "FRX")  # quit if it fits, keep colours, leave the screen as it was
    try:  # the user's own $PAGER, through the shell (never a value from the ledger)
        proc = subprocess.Popen(pager, shell=True, stdin=subprocess.PIPE, env=env, text=True)
    except OSError:
        return False
    assert proc.stdin is not None
    try:
        for text in lines:
            proc.stdin.write(text + "\n")
        proc.stdin.close()
    except BrokenPipeError:  # the user quit the pager before the end: nothing more to show
        pass
    while True:
        try:
            proc.wait()
            return True
        except KeyboardInterrupt:  # Ctrl-C belongs to the pager (less searches, scrolls)
            continue


def write_json_array(items: Iterable[Any], out: IO[str] | None = None) -> int:
    """Write `items` as one JSON array, one object per line, as they come (never all held).

    Returns how many were written."""
    out = out or sys.stdout
    count = 0
    dumps = json.JSONEncoder(sort_keys=True, default=str).encode
    for item in items:
        out.write(("[\n" if count == 0 else ",\n") + dumps(item))
        count += 1
    out.write("[]\n" if count == 0 else "\n]\n")
    out.flush()
    return count
