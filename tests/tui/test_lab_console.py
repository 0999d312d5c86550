"""The console as a client of a real lab service: a `serve --socket` process started here.

The console opens no ledger, reads through the socket (a `watch` stream the service pushes), says
"reconnecting" when the service is killed, keeps the last data, and recovers when it is back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable

from lepton_tui.app import make_app
from lepton_tui.client import LabClient
from lepton_tui.widgets.header import LabHeader
from lepton_tui.widgets.queue import QueueTable
from tests.lab.conftest import Lab
from tests.tui.conftest import wait_for


class Daemon(Lab):
    """`lepton-tui serve --socket` in a process of its own, as systemd would run it (the lab
    tests' service, on a console's tick)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, str(root / "lab.sock"), root / "state", tick=0.5,
                         start_timeout=60.0)  # fmt: skip

    def submit(self, command: str) -> int:
        client = LabClient(self.socket)
        try:
            return client.submit(command=command)
        finally:
            client.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    lab = Daemon(tmp_path)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def header_text(app) -> str:
    from rich.console import Console

    head = app.screen.query_one(LabHeader)
    console = Console(width=200, color_system=None)
    with console.capture() as capture:
        console.print(head.content)
    return capture.get()


def queue_ids(app) -> set[str]:
    table = app.screen.query_one(QueueTable)
    return {str(k.value) for k in table.rows}


def open_ledgers(under: Path) -> list[str]:
    """Ledger files under `under` this process has open (the console must have none in lab
    mode; other tests' ledgers, elsewhere, are not its business)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if "ledger.db" in target and target.startswith(str(under)):
                out.append(target)
    return out


async def test_lab_console_reads_through_the_socket_and_survives_kill9(
    daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "personal"))
    first = daemon.submit("echo one")
    app = make_app(socket=daemon.socket, refresh_s=1.0)
    assert app.lab and app.ledger is None
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: str(first) in queue_ids(app))
        assert "1 queued" in header_text(app)
        assert "reconnecting" not in header_text(app)
        assert open_ledgers(tmp_path) == []  # everything came through the socket

        daemon.kill9()
        await wait_for(pilot, lambda: "reconnecting" in header_text(app), timeout=20)
        assert str(first) in queue_ids(app)  # the last data stays on screen

        daemon.start()
        await wait_for(pilot, lambda: "reconnecting" not in header_text(app), timeout=30)
        second = daemon.submit("echo two")  # pushed by the service: the ledger changed
        await wait_for(pilot, lambda: str(second) in queue_ids(app), timeout=20)
        assert "2 queued" in header_text(app)
    assert open_ledgers(tmp_path) == []
    assert not (tmp_path / "personal").exists()  # no personal ledger made beside the lab's


async def test_lab_console_sends_no_request_per_refresh(daemon: Daemon) -> None:
    """One watch per shown screen, however many refreshes the service pushes."""
    daemon.submit("echo one")
    app = make_app(socket=daemon.socket, refresh_s=0.5)
    watches: list[str] = []
    calls: list[str] = []
    source, pool = app.source, app.source.pool
    real_watch, real_call = source.watch, pool.call

    def watch(view, args, tick_s):
        watches.append(view)
        return real_watch(view, args, tick_s)

    def call(method, /, **kwargs):
        calls.append(method)
        return real_call(method, **kwargs)

    source.watch, pool.call = watch, call
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.loads >= 6, timeout=30)  # 6 pushes: ~3 s
        assert watches == ["overview"] and calls == []
        await pilot.press("3")  # the queue screen: its own stream; the overview's is closed
        await wait_for(pilot, lambda: app.screen.id == "queue" and app.screen.loads >= 2)
        assert watches == ["overview", "queue"] and calls == []
        table = app.screen.query_one(DataTable)
        assert table.row_count == 1


async def test_lab_console_changes_go_through_the_service(daemon: Daemon) -> None:
    job = daemon.submit("sleep 1000")
    app = make_app(socket=daemon.socket, refresh_s=1.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: str(job) in queue_ids(app))
        table = app.screen.query_one(QueueTable)
        table.focus()
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        client = LabClient(daemon.socket)
        try:
            await wait_for(pilot, lambda: client.get_job(job)["state"] == "cancelled")
        finally:
            client.close()
        # the service pushes the change: the row shows it
        await wait_for(pilot, lambda: table.get_row(str(job))[1].plain == "cancelled")


def test_a_followed_log_stream_ends_at_once_when_closed(daemon: Daemon) -> None:
    """The job screen closes its log stream when it goes: the reading thread returns at once
    (not when the job next writes), and the service's stream is freed."""
    import threading

    from lepton_tui.client import follow_log_stream

    job = daemon.submit("echo hi")  # stays queued (no hosts): following waits for it to start
    stream = follow_log_stream(daemon.socket, job)
    got: list[str] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            got.extend(stream)
        except BaseException as exc:  # noqa: BLE001 - the test says what the reader met
            errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(1.0)
    assert reader.is_alive()  # still following
    stream.close()  # from another thread, as the job screen does
    reader.join(5.0)
    assert not reader.is_alive() and got == [] and errors == []


def test_the_console_command_is_a_lab_client_when_a_socket_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lepton-tui` with LEPTON_SOCKET set builds the lab console and opens no personal ledger."""
    from click.testing import CliRunner

    from lepton_tui.app import LeptonApp
    from lepton_tui.cli import cli

    built: list[LeptonApp] = []
    monkeypatch.setattr(LeptonApp, "run", lambda self, *a, **k: built.append(self))
    monkeypatch.setattr("lepton_tui.cli.console.has_terminal", lambda: True)  # CliRunner's pipes
    monkeypatch.setenv("LEPTON_SOCKET", str(tmp_path / "lab.sock"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    res = CliRunner().invoke(cli, [])
    assert res.exit_code == 0, res.output
    (app,) = built
    assert app.lab and app.ledger is None and app.source.socket_path == str(tmp_path / "lab.sock")
    assert not (tmp_path / "data").exists()
    monkeypatch.setenv("LEPTON_SOCKET", "")  # empty: personal mode, as for every command
    res = CliRunner().invoke(cli, ["--home", str(tmp_path / "personal")])
    assert res.exit_code == 0, res.output
    assert not built[-1].lab and (tmp_path / "personal").is_dir()
    built[-1].shutdown()
