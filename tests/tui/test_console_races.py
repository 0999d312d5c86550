"""Races between a screen's reload and the data its worker is still preparing (reader process).

The real app on a real SQLite ledger with its real reader process; the only hook is a gate in the
overview's `prepare`, which holds one worker where `yield_to_input` would hold it while the user
types a filter.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from lepton_tui.screens.overview import OverviewScreen
from lepton_tui.widgets.queue import QueueTable
from tests.tui.conftest import loaded, wait_for

NO_MATCH = "no such job anywhere"


def shown(screen) -> set[str]:
    return {str(k.value) for k in screen.query_one(QueueTable).rows}


async def test_a_push_prepared_for_an_old_filter_is_not_shown(
    lab: Path, make_tui, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, held = threading.Event(), threading.Event()
    gate.set()
    real = OverviewScreen.prepare

    def prepare(self, data):
        if self.text == NO_MATCH and not gate.is_set():
            held.set()
            gate.wait(30)
        return real(self, data)

    monkeypatch.setattr(OverviewScreen, "prepare", prepare)
    app = make_tui(reader=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        screen = app.screen
        everything = shown(screen)
        assert everything
        gate.clear()
        before = set(app.workers)
        screen.text = NO_MATCH  # as typing a filter does
        screen.reload()
        (old,) = set(app.workers) - before
        await wait_for(pilot, held.is_set)  # the reader pushed; its worker prepares it
        loads = screen.loads
        screen.text = ""  # the filter cleared before that push was shown
        screen.reload()
        await wait_for(pilot, lambda: screen.loads > loads)
        assert shown(screen) == everything
        gate.set()
        await wait_for(pilot, lambda: old.is_finished)
        for _ in range(5):
            await pilot.pause()
        assert screen.loads == loads + 1  # the old filter's data never drawn
        assert shown(screen) == everything


async def test_a_reload_never_reads_as_a_lost_link(
    lab: Path, make_tui, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload closes the screen's stream and starts another worker: the old worker, woken by
    the close, must find itself cancelled, not think the reader (or lab service) went away. The
    close waits here until the old worker has seen its stream end (the thread switch that a busy
    machine makes at that moment)."""
    from lepton_tui.app import LeptonApp
    from lepton_tui.console_source import ReaderWatch

    ended: dict[int, threading.Event] = {}  # by watch: its stream has ended
    real_iter, real_close = ReaderWatch.__iter__, ReaderWatch.close

    def iterate(self):
        ended[id(self)] = threading.Event()
        try:
            yield from real_iter(self)
        finally:
            ended[id(self)].set()

    def close(self):
        real_close(self)
        if id(self) in ended:  # the old worker's stream has ended before the loop goes on
            assert ended[id(self)].wait(30)

    lost: list[str] = []
    real_lost = LeptonApp.link_lost

    def link_lost(self, why: str) -> None:
        lost.append(why)
        real_lost(self, why)

    monkeypatch.setattr(ReaderWatch, "__iter__", iterate)
    monkeypatch.setattr(ReaderWatch, "close", close)
    monkeypatch.setattr(LeptonApp, "link_lost", link_lost)
    app = make_tui(reader=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        screen = app.screen
        for _ in range(3):
            loads = screen.loads
            screen.reload()
            await wait_for(pilot, lambda: screen.loads > loads)  # noqa: B023
        assert lost == []
        assert app.link_error is None
        assert not any("lab service" in n.message for n in app._notifications)


async def test_a_reader_that_cannot_start_is_said_once(
    lab: Path, make_tui, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console starts its reader as it builds; when that start fails (here: no interpreter
    at sys.executable), the screens read in the console, and the console says so once."""
    import sys

    monkeypatch.setattr(sys, "executable", str(lab / "no-such-python"))
    app = make_tui(reader=True)
    source = app.source
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        assert source.fallback is not None and source.starts == 0
        assert source.reads >= 1 and shown(app.screen)  # read in this process
        await pilot.pause()
        notes = [n.message for n in app._notifications if "reader process" in n.message]
        assert len(notes) == 1 and "could not start" in notes[0]
