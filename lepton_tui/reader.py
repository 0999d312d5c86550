"""The personal console's reader: a process of its own that reads the console's screens.

`python -m lepton_tui.reader --home DIR --user NAME` opens the console's ledger (never creating or
migrating it: the console did that; it writes nothing but what the same read wrote in the console:
the cost reports' settled costs and daily roll-up, caches a read fills) and serves the screens the console watches, as `lepton-tui
serve` does for a lab console (`labd`'s watch): each watched view is read with
`screen_data.read_view` (one `ViewMemo` for all of them, as the in-process read keeps one per
console) on its tick and, sooner, when the ledger's `data_version` moves (another connection
committed), never more often than every half tick or second; it travels as `screen_data.to_wire`
makes it.
So the console's event loop never shares its interpreter with a refresh read.

The pipe, one JSON object a line:
- console -> reader (stdin): `{"watch": ID, "view": NAME, "args": {...}, "tick_s": T,
  "offset_s": S}` (S: the console's clock minus this process's, so a console on a fixed clock
  reads the same instants) and `{"stop": ID}`;
- reader -> console (stdout): `ID {"view": WIRE}` or `ID {"error": {"message": M, "hint": H}}`
  (the ID first, so the console routes a line without decoding it); ID 0 is the reader itself
  (`{"error": ...}` when it cannot open the ledger, then it exits).

The reader lives exactly as long as its pipe: end of input (the console closed it, or died
however it died) ends it at once, and so does a broken output pipe.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from lepton_tui.errors import LeptonError

CHECK_S = 0.25  # how often the reader looks at the ledger's data_version (one PRAGMA)
TICK_MIN_S = 0.25  # the fastest tick a console may ask for
# The reader yields the CPU to the console: on a busy machine a key press is drawn by the console's
# event loop while the reader reads, and the kernel favours the one with the lower nice value.
READER_NICE = 10
CHANGE_GAP_S = 1.0  # a change is pushed this long (or half a tick, if less) after the last push


@dataclass
class Watch:
    """One screen the console shows: what to read, how often, and when it was last sent."""

    id: int
    view: str
    args: dict[str, Any]
    tick_s: float
    offset_s: float = 0.0
    pushed: float | None = None  # monotonic time of the last push; None: never pushed
    seen: Any = None  # the ledger's data_version at the last push

    def due(self, version: Any, now: float) -> bool:
        """Whether to read and push now: first, a tick gone by, or the ledger changed (and half a
        tick, at most `CHANGE_GAP_S`, gone by since the last push: a dispatcher that commits
        all the time does not make the reader read all the time)."""
        if self.pushed is None:
            return True
        since = now - self.pushed
        gap = min(self.tick_s / 2, CHANGE_GAP_S)
        return since >= self.tick_s or (version != self.seen and since >= gap)


def parse_command(line: bytes) -> dict[str, Any] | None:
    """A console command, or None when the line is not one (ignored: the console wrote it)."""
    try:
        cmd = json.loads(line)
    except ValueError:
        return None
    return cmd if isinstance(cmd, dict) else None


def apply_command(cmd: dict[str, Any], watches: dict[int, Watch]) -> None:
    """Start or stop a watch."""
    if "stop" in cmd:
        watches.pop(int(cmd["stop"]), None)
        return
    if "watch" not in cmd or not isinstance(cmd.get("view"), str):
        return
    tick = cmd.get("tick_s", 2.0)
    tick = max(float(tick) if isinstance(tick, int | float) else 2.0, TICK_MIN_S)
    offset = cmd.get("offset_s", 0.0)
    raw = cmd.get("args")
    args: dict[str, Any] = raw if isinstance(raw, dict) else {}
    watch_id = int(cmd["watch"])
    watches[watch_id] = Watch(
        watch_id, cmd["view"], args, tick, float(offset) if isinstance(offset, int | float) else 0.0
    )


def error_line(exc: BaseException) -> dict[str, Any]:
    """An exception as the pipe's error (the console raises it again as a LeptonError)."""
    if isinstance(exc, LeptonError):
        return {"error": {"message": exc.message, "hint": exc.hint}}
    return {"error": {"message": f"the reader failed: {type(exc).__name__}: {exc}", "hint": None}}


class Reader:
    """The read loop: the console's watches, served from one `Service` on one thread."""

    def __init__(self, svc: Any, out: BinaryIO, commands: queue.Queue[dict[str, Any] | None]):
        from lepton_tui.fleet_view import ViewMemo

        self.svc = svc
        self.out = out
        self.commands = commands
        self.watches: dict[int, Watch] = {}
        self.memo = ViewMemo()
        self.pushes = 0

    def send(self, watch_id: int, body: dict[str, Any]) -> None:
        self.out.write(f"{watch_id} ".encode() + json.dumps(body).encode() + b"\n")
        self.out.flush()

    def push(self, watch: Watch, version: Any) -> None:
        """Read `watch`'s view and send it (an error is sent too: the console shows it)."""
        from lepton_tui.screen_data import read_view, to_wire

        now = time.time() + watch.offset_s
        try:
            body = {
                "view": to_wire(read_view(self.svc, watch.view, now, watch.args, memo=self.memo))
            }
        except Exception as exc:  # noqa: BLE001 - said to the console, which shows one line
            body = error_line(exc)
        watch.pushed, watch.seen = time.monotonic(), version
        self.send(watch.id, body)
        self.pushes += 1

    def take_commands(self, timeout: float) -> bool:
        """Apply what the console asked (waiting up to `timeout` for the first); False at the
        end of the console's input."""
        try:
            cmd = self.commands.get(timeout=timeout)
        except queue.Empty:
            return True
        while True:
            if cmd is None:
                return False
            apply_command(cmd, self.watches)
            try:
                cmd = self.commands.get_nowait()
            except queue.Empty:
                return True

    def run(self) -> None:
        """Serve until the console's input ends."""
        ledger = self.svc.ledger
        while self.take_commands(CHECK_S):
            version = ledger.data_version()
            for watch in list(self.watches.values()):
                if watch.id in self.watches and watch.due(version, time.monotonic()):
                    self.push(watch, version)
                    if not self.commands.empty():  # a new screen waits: serve it first
                        break


def _read_input(stream: BinaryIO, commands: queue.Queue[dict[str, Any] | None]) -> None:
    """Feed the console's commands to the loop; the end of input ends the process at once (a
    read in progress included: nobody waits for it)."""
    for line in stream:
        cmd = parse_command(line)
        if cmd is not None:
            commands.put(cmd)
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton_tui.reader")
    parser.add_argument("--home", required=True)
    parser.add_argument("--user", required=True)
    opts = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the console's end (its pipe) ends this one
    try:  # the console's event loop comes first, its start-up included
        os.nice(READER_NICE)
    except OSError:
        pass  # not allowed here: the reader reads at the console's priority
    out = sys.stdout.buffer
    commands: queue.Queue[dict[str, Any] | None] = queue.Queue()
    threading.Thread(
        target=_read_input, args=(sys.stdin.buffer, commands), name="console-input", daemon=True
    ).start()
    try:
        from lepton_tui import screen_data  # noqa: F401 - loaded before the console needs it
        from lepton_tui.service import Service

        svc = Service.open(opts.home, user=opts.user, create=False)
    except Exception as exc:  # noqa: BLE001 - said to the console in one line
        _send_quietly(out, 0, error_line(exc))
        return 2
    try:
        Reader(svc, out, commands).run()
    except (OSError, ValueError):
        os._exit(0)  # the console went away (its end of the pipe is closed)
    except Exception as exc:  # noqa: BLE001 - said to the console, which starts another
        _send_quietly(out, 0, error_line(exc))
        os._exit(1)
    os._exit(0)  # not waiting for the input thread: the console's end is the reader's end


def _send_quietly(out: BinaryIO, watch_id: int, body: dict[str, Any]) -> None:
    try:
        out.write(f"{watch_id} ".encode() + json.dumps(body).encode() + b"\n")
        out.flush()
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
