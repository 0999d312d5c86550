"""Versioned migrations: a fresh ledger and an upgraded one end with the same schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from lepton_tui.economics.report import cost_report
from lepton_tui.economics.rollup import ROLLUP_TABLES
from lepton_tui.ledger import MIGRATIONS, SCHEMA_VERSION, Ledger, open_ledger

# What the cost engine used to create on first use, outside the versioned migrations.
LAZY_INDEXES = {
    "idx_attempts_host_started": "attempts(host, started_at)",
    "idx_attempts_unmeasured": "attempts(id) WHERE energy_wh IS NULL",
    "idx_attempts_unsettled": "attempts(id) WHERE cost IS NULL",
    "idx_attempts_ended_started": "attempts(ended_at, started_at, created_at)",
}
ECON_OBJECTS = {"econ_rollup", "econ_rollup_idle", "econ_rollup_days", *LAZY_INDEXES}


def _schema(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    finally:
        conn.close()
    return {name: " ".join(sql.split()) for name, sql in rows}


def _version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _ledger_at_version_1(path: Path, *, lazy_econ: bool = False) -> None:
    """A ledger as lepton-tui with schema 1 left it, with a job in it; `lazy_econ`: after a cost
    report had created the economics tables and indexes on first use (and a roll-up row)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    MIGRATIONS[0](sqlite_utils.Database(conn))
    conn.execute(
        "INSERT INTO jobs (user, project, command, state, submitted_at) "
        "VALUES ('alice', 'p', 'true', 'queued', 1.0)"
    )
    if lazy_econ:
        for sql in ROLLUP_TABLES.values():
            conn.execute(sql)
        for name, target in LAZY_INDEXES.items():
            conn.execute(f"CREATE INDEX {name} ON {target}")
        conn.execute("INSERT INTO econ_rollup_days (day, day_end, label) VALUES (0, 86400, 'd')")
    conn.execute("PRAGMA user_version = 1")
    conn.close()


def test_economics_schema_is_a_versioned_migration() -> None:
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 2


def test_a_fresh_ledger_has_the_economics_schema_at_once(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    open_ledger(db).close()  # no cost query has run
    assert _version(db) == SCHEMA_VERSION
    assert ECON_OBJECTS <= set(_schema(db))


def test_a_schema_1_ledger_upgrades_to_the_fresh_schema(tmp_path: Path) -> None:
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    _ledger_at_version_1(old)
    assert not ECON_OBJECTS & set(_schema(old))
    ledger = Ledger(old)
    try:
        assert _version(old) == SCHEMA_VERSION
        assert [j["user"] for j in ledger.query("SELECT user FROM jobs")] == ["alice"]
        cost_report(ledger, 0.0, 86400.0 * 3, "user", now=86400.0 * 3)
    finally:
        ledger.close()
    open_ledger(fresh).close()
    assert _schema(old) == _schema(fresh)


def test_a_schema_1_ledger_with_lazily_made_economics_tables_upgrades(tmp_path: Path) -> None:
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    _ledger_at_version_1(old, lazy_econ=True)
    ledger = Ledger(old)
    try:
        assert _version(old) == SCHEMA_VERSION
        # the tables are kept; their rows are a cache, which migration 17 drops to be summed
        # again (a Slurm job's wait in Slurm's queue is no longer charged)
        assert ledger.query("SELECT label FROM econ_rollup_days") == []
    finally:
        ledger.close()
    open_ledger(fresh).close()
    assert _schema(old) == _schema(fresh)


def test_reports_write_no_schema(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = open_ledger(db)
    try:
        before = _schema(db)
        cost_report(ledger, 0.0, 86400.0 * 3, "user", now=86400.0 * 3)
        assert _schema(db) == before
    finally:
        ledger.close()


def test_attempt_columns_of_migrations_3_and_4_from_any_version(tmp_path: Path) -> None:
    """Schema 1 or 2 upgrades to what a fresh ledger has; a ledger at 3 made before the cancel
    column moved to migration 4 (with or without it) gets it exactly once."""
    fresh = tmp_path / "fresh.db"
    open_ledger(fresh).close()
    cols = {"missing_since", "launch_failures", "cancel_sent_at"}
    for name, with_cancel in (("v3-without.db", False), ("v3-with.db", True)):
        db = tmp_path / name
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        for migrate in MIGRATIONS[:3]:
            migrate(sqlite_utils.Database(conn))
        if with_cancel:
            conn.execute("ALTER TABLE attempts ADD COLUMN cancel_sent_at REAL")
        conn.execute("PRAGMA user_version = 3")
        conn.close()
        open_ledger(db).close()
        assert _version(db) == SCHEMA_VERSION
        assert cols <= set(sqlite_utils.Database(db)["attempts"].columns_dict)
        assert _schema(db)["attempts"] == _schema(fresh)["attempts"]
    old = tmp_path / "v1.db"
    _ledger_at_version_1(old)
    open_ledger(old).close()
    assert _schema(old)["attempts"] == _schema(fresh)["attempts"]
