"""Tables at 80 columns (a terminal that size, or any pipe) with names as long as allowed (63):
every column stays, and no name or message is cut with an ellipsis."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.clirun import lepton

HOST = "gpu-server-with-a-rather-long-name-for-testing-the-widths-01234"  # 63 characters
FINGERPRINT = "SHA256:" + "A" * 43


def _column(lines: list[str], header: str, first: str, key: str, last: bool = False) -> str:
    """The text of column `header` in the row starting with `first`, its folded lines joined;
    a new row starts where column `key` (filled on a row's first line only) is not blank."""
    start, at = lines[0].index(header), lines[0].index(key)
    row = next(i for i, line in enumerate(lines) if line.startswith(first))
    pieces = []
    for i, line in enumerate(lines[row:]):
        if i and line[at : at + len(key)].strip():
            break  # the next row
        cell = line[start:] if last else line[start:].split("  ")[0]
        pieces.append(cell.strip())
    return "".join(pieces)


def _add_host(home: Path) -> None:
    res = lepton(home, "hosts", "add", HOST, "--address", "10.255.255.1", "--no-connect",
                 "--fingerprint", FINGERPRINT, "--price-per-hour", "2.5")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert len(HOST) == 63


def test_hosts_ls_folds_a_long_name(home: Path) -> None:
    """`hosts ls` once cut the name to `gpu-server-with-a-rather-lo…`."""
    _add_host(home)
    for args, key in ((["hosts", "ls"], "ADDRESS"), (["price", "ls"], "PER HOUR"),
                      (["cost", "--by", "host"], "COST")):  # fmt: skip
        res = lepton(home, *args, columns=80)
        assert res.returncode == 0, res.stderr
        assert "…" not in res.stdout, args
        lines = res.stdout.splitlines()
        lines = lines[next(i for i, line in enumerate(lines) if key in line) :]  # from the header
        assert _column(lines, lines[0].split()[0], HOST[:10], key) == HOST, args


def test_events_keep_every_column_and_the_whole_message(home: Path) -> None:
    """With a long host name `events` once showed only TIME, KIND and HOST (`2026-12-06 04…`,
    `pric…`): the user, job and message columns were dropped."""
    _add_host(home)
    res = lepton(home, "events", columns=80)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["TIME", "USER", "KIND", "JOB", "HOST", "MESSAGE"]
    assert "…" not in res.stdout and all(len(line) <= 80 for line in lines)
    [added] = [e for e in json.loads(lepton(home, "events", "--json").stdout)
               if e["kind"] == "host.added"]  # fmt: skip
    row = next(line for line in lines[1:] if "host.added" in line)
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ", row)  # the whole time
    message = _column(lines, "MESSAGE", row, "TIME", last=True)
    assert message.replace(" ", "") == added["message"].replace(" ", "")
    assert _column(lines, "HOST", row, "TIME") == HOST
