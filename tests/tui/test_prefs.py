"""The chosen theme is kept per user in $XDG_CONFIG_HOME/lepton-tui/, and `--theme` overrides it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lepton_tui.console_prefs import load_prefs, prefs_path, save_pref
from tests.tui.conftest import loaded, wait_for


def saved() -> dict:
    return load_prefs(prefs_path())


def test_prefs_live_under_xdg_config_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert prefs_path() == tmp_path / "cfg" / "lepton-tui" / "console.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert prefs_path() == Path.home() / ".config" / "lepton-tui" / "console.json"


def test_a_write_keeps_other_keys_and_a_bad_file_means_none(tmp_path: Path) -> None:
    path = tmp_path / "lepton-tui" / "console.json"
    assert load_prefs(path) == {}
    path.parent.mkdir()
    path.write_text('{"theme": "lepton", "future": [1, 2]}')
    save_pref("theme", "lepton-light", path)
    assert json.loads(path.read_text()) == {"theme": "lepton-light", "future": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["console.json"]  # no temporary left
    path.write_text("{not json")
    assert load_prefs(path) == {}
    path.write_bytes(b"\xff\xfe")
    assert load_prefs(path) == {}


async def test_the_chosen_theme_is_kept_for_the_next_console(make_tui, lab: Path) -> None:
    assert not prefs_path().exists()
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        assert app.theme == "lepton"
        assert not prefs_path().exists()  # starting writes nothing
        await pilot.press("t")
        assert app.theme == "lepton-dark"
        await wait_for(pilot, lambda: saved().get("theme") == "lepton-dark")
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        assert app.theme == "lepton-dark"  # restored
        app.theme = "textual-light"  # as the palette's theme picker sets it
        await wait_for(pilot, lambda: saved().get("theme") == "textual-light")


async def test_theme_option_overrides_the_saved_one(make_tui, lab: Path) -> None:
    save_pref("theme", "lepton-dark")
    before = prefs_path().stat().st_mtime_ns
    app = make_tui(theme="lepton-light")
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        assert app.theme == "lepton-light"
    assert saved() == {"theme": "lepton-dark"}  # an option for one run is not saved
    assert prefs_path().stat().st_mtime_ns == before


async def test_a_saved_theme_that_no_longer_exists_falls_back(make_tui, lab: Path) -> None:
    save_pref("theme", "no-such-theme")
    app = make_tui()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        assert app.theme == "lepton"


async def test_an_unwritable_config_says_why_once_and_the_theme_still_changes(
    make_tui, lab: Path, tmp_path: Path, monkeypatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(blocker))  # lepton-tui/ cannot be made under it
    notes: list[str] = []
    app = make_tui()
    app.notify = lambda message, **kw: notes.append(str(message))  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await pilot.press("t")
        assert app.theme == "lepton-dark"
        await wait_for(pilot, lambda: any("not kept" in n for n in notes))
        await pilot.press("t")
        assert app.theme == "lepton-light"
        await app.workers.wait_for_complete()
        await pilot.pause()
    assert os.path.isfile(blocker)
    assert len([n for n in notes if "not kept" in n]) == 1


async def test_a_huge_unknown_theme_is_not_echoed_whole(make_tui, lab: Path) -> None:
    """Issue 14: `--theme` with a 100 kB value filled the screen with its warning."""
    notes: list[str] = []
    app = make_tui(theme="x" * 100_000)
    app.notify = lambda message, **kw: notes.append(str(message))  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        assert app.theme == "lepton"
    (note,) = [n for n in notes if "unknown theme" in n]
    assert len(note) < 300 and "(100,000 characters)" in note and "lepton-dark" in note
    assert saved() == {}  # nothing kept
