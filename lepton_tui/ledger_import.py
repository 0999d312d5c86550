"""Take a personal ledger into the lab's (`service install --system --import PATH`).

Jobs keep their ids, so `show 42` and every event about job 42 still mean the same job; their
attempts keep their stored cost and energy, the prices and samples their history. Nothing is
merged when it would clash: a job id, a host name or a budget that both ledgers have, or books
kept in two currencies, refuse the whole import before anything is written. The rest goes in one
transaction. The personal ledger is never written: a consistent copy of it (SQLite's backup, WAL
included) is brought to the current schema and read from there.

Other rows keep their ids when none clash (a fresh lab ledger), else they are numbered after the
lab's. The personal `owner` setting is not taken (the lab has its own admins), nor settings the
lab already has; the daily cost roll-up, a cache, is cleared and rebuilt on use.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lepton_tui import paths
from lepton_tui.errors import LeptonError, ValidationError
from lepton_tui.ledger import ECON_ROLLUP_TABLES, Ledger, open_ledger

# Not taken from the personal ledger: caches and one-shot request keys.
# notify_cursor: the lab's own place in its events (one row); moved past the imported history
SKIPPED_TABLES = {
    *ECON_ROLLUP_TABLES, "submit_keys", "sqlite_sequence", "sqlite_stat1", "notify_cursor",
}  # fmt: skip
# Settings that belong to the ledger, not to the history. `notify_command` runs as the service
# account, which holds the lab key: in lab mode only root sets it, never an imported file.
SKIPPED_SETTINGS = ("owner", "notify_command")
# Tables whose rows are inserted first: others refer to them.
FIRST_TABLES = ("jobs", "hosts")


@dataclass
class ImportSummary:
    """What an import took: rows per table, and the tables whose ids were renumbered."""

    source: Path
    rows: dict[str, int] = field(default_factory=dict)
    renumbered: list[str] = field(default_factory=list)
    not_taken: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per table taken, for people."""
        out = [f"imported {self.source}:"]
        for table, n in self.rows.items():
            if n:
                again = " (numbered after the lab's)" if table in self.renumbered else ""
                out.append(f"  {n} {table}{again}")
        out += [f"  not taken: {what}" for what in self.not_taken]
        return out


def personal_ledger_file(path: str | Path) -> Path:
    """The ledger file a user named: the file itself, or a state directory holding one."""
    given = Path(path).expanduser()
    target = given / paths.LEDGER_FILE if given.is_dir() else given
    if not target.is_file():
        raise ValidationError(
            f"{given} is not a lepton ledger (no such file)",
            f"give the ledger file or its state directory (the one holding {paths.LEDGER_FILE})",
            field="import",
        )
    return target


def _copy(source: Path, into: Path) -> Ledger:
    """A consistent copy of the ledger at `source`, migrated to the current schema."""
    try:
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(str(into))
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.DatabaseError as exc:
        raise ValidationError(
            f"cannot read {source} as a ledger: {exc}", "give a lepton-tui ledger", field="import"
        ) from None
    return open_ledger(into)


def _tables(conn: sqlite3.Connection, schema: str) -> dict[str, list[str]]:
    names = [
        r[0]
        for r in conn.execute(
            f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' ORDER BY name"
        )
    ]
    return {
        n: [c[1] for c in conn.execute(f'PRAGMA {schema}.table_info("{n}")')]
        for n in names
        if n not in SKIPPED_TABLES
    }


def _clashes(conn: sqlite3.Connection) -> list[str]:
    """What both ledgers have that an import would merge wrongly, as phrases."""
    found = []
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM main.jobs WHERE id IN (SELECT id FROM personal.jobs) ORDER BY id LIMIT 6"
    )]  # fmt: skip
    if ids:
        (n,) = conn.execute(
            "SELECT COUNT(*) FROM main.jobs WHERE id IN (SELECT id FROM personal.jobs)"
        ).fetchone()
        shown = ", ".join(map(str, ids[:5])) + (", ..." if n > 5 else "")
        found.append(f"{n} job id(s) that the lab ledger already has ({shown})")
    hosts = [r[0] for r in conn.execute(
        "SELECT name FROM main.hosts WHERE name IN (SELECT name FROM personal.hosts) ORDER BY name"
    )]  # fmt: skip
    if hosts:
        found.append(f"host(s) {', '.join(hosts[:5])} in both ledgers")
    budgets = conn.execute(
        "SELECT COUNT(*) FROM main.budgets b JOIN personal.budgets p "
        "ON p.scope = b.scope AND p.name = b.name AND p.unit = b.unit"
    ).fetchone()[0]
    if budgets:
        found.append(f"{budgets} budget(s) set in both ledgers")
    cur = conn.execute(
        "SELECT m.value, p.value FROM main.settings m JOIN personal.settings p ON p.key = m.key "
        "WHERE m.key = 'currency' AND m.value != p.value"
    ).fetchone()
    if cur:
        found.append(f"books kept in {cur[1]} there and {cur[0]} in the lab")
    return found


def import_ledger(lab: Ledger, source: str | Path, actor: str) -> ImportSummary:
    """Take the personal ledger at `source` (file or state directory) into `lab`, all or none;
    the import's event names `actor`."""
    path = personal_ledger_file(source)
    if path.resolve() == lab.path.resolve():
        raise ValidationError("the ledger to import is the lab's own", field="import")
    with tempfile.TemporaryDirectory(prefix="lepton-import-") as tmp:
        copy = _copy(path, Path(tmp) / paths.LEDGER_FILE)
        copy.close()
        conn = lab.conn
        conn.execute("ATTACH DATABASE ? AS personal", (str(Path(tmp) / paths.LEDGER_FILE),))
        try:
            return _take(lab, conn, path, actor)
        finally:
            conn.execute("DETACH DATABASE personal")


def _take(lab: Ledger, conn: sqlite3.Connection, path: Path, actor: str) -> ImportSummary:
    summary = ImportSummary(path)
    mine, theirs = _tables(conn, "main"), _tables(conn, "personal")
    missing = sorted(set(theirs) - set(mine))
    if missing:
        raise ValidationError(
            f"{path} has tables this lepton-tui does not know ({', '.join(missing)})",
            "install the lepton-tui version that wrote it, or a newer one",
            field="import",
        )
    with lab.tx():  # read and checked inside the write transaction: nothing moves meanwhile
        clashes = _clashes(conn)
        if clashes:
            raise ValidationError(
                f"cannot import {path}: it has {'; '.join(clashes)}",
                "import into a new lab ledger (before the lab queues jobs), or cancel and "
                "remove the clashing jobs, hosts or budgets first",
                field="import",
            )
        order = [t for t in FIRST_TABLES if t in theirs]
        order += sorted(t for t in theirs if t not in FIRST_TABLES)
        for table in order:
            summary.rows[table] = _take_table(conn, table, theirs[table], mine[table], summary)
        for table in ECON_ROLLUP_TABLES:  # a cache of past days: the new attempts change them
            conn.execute(f"DELETE FROM main.{table}")
        # the imported endings are history: the lab's notifications never tell them
        conn.execute(
            "INSERT OR REPLACE INTO main.notify_cursor (id, event_id) "
            "SELECT 1, COALESCE(MAX(id), 0) FROM main.events"
        )
        lab.event(
            "ledger.imported",
            f"imported {sum(summary.rows.values())} rows from {path}",
            actor=actor,
            data={"source": str(path), "rows": summary.rows},
        )
    return summary


def _take_table(
    conn: sqlite3.Connection, table: str, cols: list[str], lab_cols: list[str],
    summary: ImportSummary,
) -> int:  # fmt: skip
    common = [c for c in cols if c in lab_cols]
    where = ""
    if table == "settings":
        if conn.execute("SELECT 1 FROM personal.settings WHERE key = 'notify_command'").fetchone():
            summary.not_taken.append(
                "the notify_command setting (it would run as the service account; root sets "
                "the lab's with `lepton-tui settings set notify_command ...`)"
            )
        skipped = ", ".join(f"'{k}'" for k in SKIPPED_SETTINGS)
        where = f" WHERE key NOT IN ({skipped}) AND key NOT IN (SELECT key FROM main.settings)"
    elif "id" in common and table != "jobs":
        clash = conn.execute(
            f'SELECT 1 FROM main."{table}" WHERE id IN (SELECT id FROM personal."{table}") LIMIT 1'
        ).fetchone()
        if clash:  # numbered after the lab's rows, in their own order
            common = [c for c in common if c != "id"]
            where = " ORDER BY id"
            summary.renumbered.append(table)
    names = ", ".join(f'"{c}"' for c in common)
    try:
        cur = conn.execute(
            f'INSERT INTO main."{table}" ({names}) SELECT {names} FROM personal."{table}"{where}'
        )
    except sqlite3.IntegrityError as exc:
        raise LeptonError(
            f"cannot import the {table} of the personal ledger: {exc}", "nothing was imported"
        ) from None
    return int(cur.rowcount)
