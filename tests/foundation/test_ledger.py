"""The ledger: schema, pragmas, migrations, state machines, atomic events."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lepton_tui.errors import IllegalTransition, LedgerError, NotFound
from lepton_tui.ledger import (
    ATTEMPT_TRANSITIONS,
    JOB_STATES,
    JOB_TRANSITIONS,
    SCHEMA_VERSION,
    Ledger,
    open_ledger,
)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    clock = iter(range(1_000_000, 2_000_000))
    return open_ledger(tmp_path / "ledger.db", clock=lambda: float(next(clock)))


def _job(ledger: Ledger, **spec) -> int:
    with ledger.tx():
        return ledger.add_job({"command": "true", **spec}, "alice")


def test_pragmas_and_version(ledger: Ledger) -> None:
    conn = ledger.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = set(ledger.db.table_names())
    assert {
        "hosts",
        "jobs",
        "attempts",
        "events",
        "samples",
        "settings",
        "prices",
        "budgets",
    } <= tables


def test_submit_writes_job_and_event_together(ledger: Ledger) -> None:
    job_id = _job(ledger, project="p1")
    job = ledger.get_job(job_id)
    assert job["state"] == "queued" and job["user"] == "alice" and job["project"] == "p1"
    events = ledger.query("SELECT kind FROM events WHERE job_id = ?", (job_id,))
    assert [e["kind"] for e in events] == ["job.submitted"]


def test_failed_transaction_writes_nothing(ledger: Ledger) -> None:
    with pytest.raises(NotFound):
        with ledger.tx():
            ledger.add_job({"command": "a"}, "alice")
            ledger.add_job({"command": "b", "after": [999]}, "alice")
    assert ledger.query("SELECT COUNT(*) AS n FROM jobs")[0]["n"] == 0
    assert ledger.query("SELECT COUNT(*) AS n FROM events")[0]["n"] == 0


@pytest.mark.parametrize("old", JOB_STATES)
@pytest.mark.parametrize("new", JOB_STATES)
def test_every_job_transition(ledger: Ledger, old: str, new: str) -> None:
    """Legal moves write the state and one event; illegal ones raise and write nothing."""
    job_id = _job(ledger)
    ledger.execute("UPDATE jobs SET state = ? WHERE id = ?", (old, job_id))
    before = ledger.query("SELECT COUNT(*) AS n FROM events")[0]["n"]
    if new in JOB_TRANSITIONS[old]:
        ledger.transition_job(job_id, new, reason="test")
        assert ledger.get_job(job_id)["state"] == new
        assert ledger.query("SELECT COUNT(*) AS n FROM events")[0]["n"] == before + 1
    else:
        with pytest.raises(IllegalTransition):
            ledger.transition_job(job_id, new)
        assert ledger.get_job(job_id)["state"] == old
        assert ledger.query("SELECT COUNT(*) AS n FROM events")[0]["n"] == before


@pytest.mark.parametrize("old", list(ATTEMPT_TRANSITIONS))
@pytest.mark.parametrize("new", list(ATTEMPT_TRANSITIONS))
def test_every_attempt_transition(ledger: Ledger, old: str, new: str) -> None:
    job_id = _job(ledger)
    ledger.start_attempt(job_id, "h1", f"tok-{old}-{new}", [0])
    ledger.execute("UPDATE attempts SET state = ? WHERE token = ?", (old, f"tok-{old}-{new}"))
    if new in ATTEMPT_TRANSITIONS[old]:
        ledger.transition_attempt(f"tok-{old}-{new}", new, exit_code=0)
        assert ledger.get_attempt(f"tok-{old}-{new}")["state"] == new
    else:
        with pytest.raises(IllegalTransition):
            ledger.transition_attempt(f"tok-{old}-{new}", new)
        assert ledger.get_attempt(f"tok-{old}-{new}")["state"] == old


def test_attempt_and_job_move_together(ledger: Ledger) -> None:
    job_id = _job(ledger)
    ledger.start_attempt(job_id, "h1", "t1", [0, 1])
    ledger.transition_attempt("t1", "running", job_state="running", started_at=5.0)
    # An illegal job move inside the attempt move rolls both back.
    with pytest.raises(IllegalTransition):
        ledger.transition_attempt("t1", "succeeded", job_state="starting", exit_code=0)
    assert ledger.get_attempt("t1")["state"] == "running"
    assert ledger.get_job(job_id)["state"] == "running"
    ledger.transition_attempt(
        "t1", "succeeded", job_state="succeeded", exit_code=0, job_fields={"exit_code": 0}
    )
    job = ledger.get_job(job_id)
    assert job["state"] == "succeeded" and job["exit_code"] == 0 and job["attempts_used"] == 1
    assert ledger.get_attempt("t1")["gpu_ids"] == [0, 1]


def test_events_are_append_only(ledger: Ledger) -> None:
    _job(ledger)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        ledger.execute("UPDATE events SET message = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        ledger.execute("DELETE FROM events")


def test_attempt_tokens_unique(ledger: Ledger) -> None:
    a, b = _job(ledger), _job(ledger)
    ledger.start_attempt(a, "h1", "same", [])
    with pytest.raises(sqlite3.IntegrityError):
        ledger.start_attempt(b, "h1", "same", [])
    assert ledger.get_job(b)["state"] == "queued"


def test_not_sqlite_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ledger.db"
    bad.write_bytes(b"this is a text file, not a database\n" * 10)
    with pytest.raises(LedgerError, match="not an SQLite database"):
        open_ledger(bad)
    assert bad.read_bytes().startswith(b"this is a text file")


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    open_ledger(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(LedgerError, match="newer lepton-tui"):
        open_ledger(path)


def test_reopen_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    first = open_ledger(path)
    with first.tx():
        job_id = first.add_job({"command": "echo hi"}, "bob")
    first.close()
    assert open_ledger(path).get_job(job_id)["command"] == "echo hi"


def test_close_never_pulls_a_connection_from_under_another_thread(tmp_path: Path) -> None:
    """A console's refresh worker may be mid-query when the console closes the ledger; closing
    that thread's connection from here crashed the process (a segfault in sqlite3). Now it is
    left to that thread, whose next statement fails with LedgerError instead."""
    import threading

    led = Ledger(tmp_path / "l.db")
    outcome: list[BaseException | None] = []
    started = threading.Event()

    def worker() -> None:
        try:
            for _ in range(1_000_000):
                led.query("SELECT COUNT(*) AS n FROM jobs")
                started.set()
        except BaseException as exc:  # noqa: BLE001 - what the worker met is the result
            outcome.append(exc)
        else:
            outcome.append(None)

    t = threading.Thread(target=worker)
    t.start()
    assert started.wait(10)
    led.close()
    t.join(30)
    assert isinstance(outcome[0], LedgerError) and "closed" in str(outcome[0])
    with pytest.raises(LedgerError, match="closed"):
        led.query("SELECT 1")


def test_opening_a_ledger_never_opens_its_file_outside_sqlite(tmp_path, monkeypatch) -> None:
    # closing any descriptor of the database file drops every POSIX lock the process holds on
    # it, those of its live SQLite connections included: a second Ledger in the lab service's
    # process (the autopilot's, a request's) once corrupted the dispatcher's ledger that way
    import builtins
    import io

    from lepton_tui.ledger import Ledger

    path = tmp_path / "ledger.db"
    first = Ledger(path)
    seen: list[str] = []
    real_open, real_io_open = builtins.open, io.open

    def spy(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(io, "open", spy)
    second = Ledger(path)
    second.query("SELECT COUNT(*) AS n FROM jobs")
    monkeypatch.setattr(builtins, "open", real_open)
    monkeypatch.setattr(io, "open", real_io_open)
    second.close()
    first.close()
    assert str(path) not in seen
