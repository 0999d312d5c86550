"""The personal console's reader process (`lepton_tui.reader`, `console_source.ReaderSource`).

The real app on a real SQLite ledger: its screens' data comes from a process of its own (the
console reads no view itself), a job queued by another process shows up, a reader killed with
SIGKILL is replaced (or, past the limit, the console reads in-process and says so in one line),
and no reader outlives its console, closed or killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lepton_tui import console_source
from lepton_tui.console_source import ReaderSource
from lepton_tui.service import Service
from lepton_tui.widgets.queue import QueueTable
from tests.tui.conftest import loaded, wait_for
from tests.tui.data import USER

ROOT = Path(__file__).resolve().parents[2]


def queue_ids(app) -> set[str]:
    table = app.screen.query_one(QueueTable)
    return {str(k.value) for k in table.rows}


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def reader_cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


def submit_elsewhere(home: Path, command: str) -> int:
    """Queue a job through a Service of its own (as `lepton-tui submit` in another terminal)."""
    svc = Service.open(home, user=USER)
    try:
        return svc.submit(command=command)
    finally:
        svc.close()


async def test_personal_console_reads_in_a_reader_process(lab: Path, make_tui) -> None:
    app = make_tui(reader=True)
    source = app.source
    assert isinstance(source, ReaderSource) and not app.lab and app.ledger is not None
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        pid = source.pid
        assert pid is not None and pid != os.getpid()
        assert "lepton_tui.reader" in reader_cmdline(pid)
        before = set(queue_ids(app))
        assert before  # the fixed lab's queue, as the reader read it
        assert source.pushes >= 1 and source.reads == 0  # no view read in the console's process

        job = submit_elsewhere(lab, "echo from another terminal")
        # refresh_s is an hour: only the ledger's data_version can have made the reader push
        await wait_for(pilot, lambda: str(job) in queue_ids(app), timeout=30)
        assert source.reads == 0 and source.starts == 1
    assert source.pid is None
    await_gone(pid)


def await_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"reader {pid} outlived its console"
        time.sleep(0.05)


async def test_a_killed_reader_is_replaced(lab: Path, make_tui) -> None:
    app = make_tui(reader=True)
    source = app.source
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        first = source.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        await wait_for(pilot, lambda: source.pid not in (None, first), timeout=30)
        job = submit_elsewhere(lab, "echo after the kill")
        await wait_for(pilot, lambda: str(job) in queue_ids(app), timeout=30)
        assert source.starts == 2 and source.reads == 0 and source.fallback is None
        assert not any("reader" in n.message for n in app._notifications)  # replaced quietly
        second = source.pid
    assert second is not None
    await_gone(second)
    assert not alive(first)


async def test_past_the_restart_limit_the_console_reads_itself(
    lab: Path, make_tui, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console_source, "READER_STARTS_MAX", 1)
    app = make_tui(reader=True)
    source = app.source
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        pid = source.pid
        assert pid is not None and source.reads == 0
        os.kill(pid, signal.SIGKILL)
        await wait_for(pilot, lambda: source.fallback is not None, timeout=30)
        await wait_for(pilot, lambda: source.reads >= 1, timeout=30)  # read in this process
        notes = [n.message for n in app._notifications if "reader process" in n.message]
        assert len(notes) == 1 and "\n" not in notes[0]
        assert "stopped (killed by signal 9)" in notes[0]
        assert "reading the ledger in the console itself" in notes[0]
        job = submit_elsewhere(lab, "echo read in-process")  # data_version, in this process
        await wait_for(pilot, lambda: str(job) in queue_ids(app), timeout=30)
        assert source.pid is None and source.starts == 1


def test_the_reader_ends_when_its_console_is_killed(lab: Path) -> None:
    """A console killed with SIGKILL closes the reader's pipe, which ends the reader."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from lepton_tui.console_source import ReaderSource
        from lepton_tui.service import Service
        svc = Service.open({str(lab)!r}, user={USER!r})
        source = ReaderSource(svc)
        stream = iter(source.watch("overview", {{}}, 3600.0))
        next(stream)  # the first push: the reader runs and serves
        print(source.pid, flush=True)
        time.sleep(600)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    console = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert console.stdout is not None
        line = console.stdout.readline()
        assert line.strip().isdigit(), line
        pid = int(line)
        assert alive(pid) and "lepton_tui.reader" in reader_cmdline(pid)
        console.kill()
        console.wait(10)
        await_gone(pid)
    finally:
        console.kill()
        console.wait(10)


def test_a_closed_pipe_ends_the_reader_mid_watch(lab: Path) -> None:
    """The reader on its own: it pushes a watched view, stops at `stop`, and exits 0 at the end
    of its input."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lepton_tui.reader", "--home", str(lab), "--user", USER],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b'{"watch": 7, "view": "queue", "args": {}, "tick_s": 3600}\n')
    proc.stdin.flush()
    line = proc.stdout.readline()
    assert line.startswith(b"7 {") and b'"view"' in line
    proc.stdin.write(b'{"watch": 8, "view": "nothing", "args": {}, "tick_s": 3600}\n')
    proc.stdin.flush()
    line = proc.stdout.readline()
    assert line.startswith(b"8 {") and b"unknown view" in line  # an error, said, not a crash
    proc.stdin.close()
    assert proc.wait(15) == 0


@pytest.mark.parametrize(
    ("view", "args"),
    [("overview", {}), ("queue", {"all_states": True}), ("hosts", {}), ("cost", {}),
     ("scheduler", {}), ("job", {"job_id": 1}), ("why", {"job_id": 4})],
)  # fmt: skip
def test_every_view_comes_off_the_pipe_as_it_was_read(lab: Path, view: str, args: dict) -> None:
    """What the reader sends (`to_wire`, JSON) is rebuilt by the console (`from_wire`) into the
    very dataclasses the in-process read returns."""
    import json

    from lepton_tui.screen_data import VIEW_TYPES, from_wire, read_view, to_wire
    from tests.tui.data import FIXED_NOW

    svc = Service.open(lab, user=USER)
    try:
        data = read_view(svc, view, FIXED_NOW, args)
    finally:
        svc.close()
    line = json.dumps({"view": to_wire(data)})
    assert from_wire(VIEW_TYPES[view], json.loads(line)["view"]) == data
