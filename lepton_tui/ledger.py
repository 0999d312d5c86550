"""The ledger: one SQLite file, the only state lepton-tui keeps.

WAL, `synchronous=FULL`, a busy timeout and foreign keys; the schema version lives in
`PRAGMA user_version` and moves forward through `MIGRATIONS`. Every change and the event that
records it are written in one `BEGIN IMMEDIATE` transaction, so a crash leaves each change whole
or absent. sqlite-utils builds the schema and runs reads; writes go through `Ledger.tx()` because
sqlite-utils' own writes commit on their own and would split a change from its event.
The file holds job commands and `--env` values: lepton creates it 0600 (0660 in a lab-wide,
group-writable state directory), never readable by other users; see `lepton_tui.paths`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lepton_tui.errors import IllegalTransition, LedgerError, NotFound
from lepton_tui.paths import create_private_file, make_state_dir

if TYPE_CHECKING:  # imported where used: sqlite_utils imports numpy (0.2 s on every command)
    import sqlite_utils

# -- job and attempt state machines ----------------------------------------------------------

JOB_STATES = (
    "queued", "starting", "running", "cancelling",
    "succeeded", "failed", "cancelled", "timeout",
)  # fmt: skip
TERMINAL_JOB_STATES = frozenset({"succeeded", "failed", "cancelled", "timeout"})
ACTIVE_JOB_STATES = frozenset({"starting", "running", "cancelling"})

JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"starting", "cancelled", "failed"}),
    "starting": frozenset(
        {"running", "queued", "failed", "cancelling", "cancelled", "succeeded", "timeout"}
    ),
    "running": frozenset({"succeeded", "failed", "timeout", "cancelling", "queued"}),
    "cancelling": frozenset({"cancelled", "succeeded", "failed", "timeout"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
    "timeout": frozenset(),
}

ATTEMPT_STATES = ("starting", "running", "succeeded", "failed", "timeout", "cancelled", "lost")
ATTEMPT_TRANSITIONS: dict[str, frozenset[str]] = {
    "starting": frozenset({"running", "lost", "failed", "cancelled", "succeeded", "timeout"}),
    "running": frozenset({"succeeded", "failed", "timeout", "cancelled", "lost"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "timeout": frozenset(),
    "cancelled": frozenset(),
    "lost": frozenset(),
}

HOST_STATES = ("unknown", "up", "down")
HOST_ADMIN_STATES = ("active", "draining")


def check_job_transition(old: str, new: str) -> None:
    """Raise IllegalTransition unless `old -> new` is a legal job state change."""
    if new not in JOB_TRANSITIONS.get(old, frozenset()):
        raise IllegalTransition(f"a job cannot go from {old} to {new}")


def check_attempt_transition(old: str, new: str) -> None:
    """Raise IllegalTransition unless `old -> new` is a legal attempt state change."""
    if new not in ATTEMPT_TRANSITIONS.get(old, frozenset()):
        raise IllegalTransition(f"an attempt cannot go from {old} to {new}")


# -- schema ------------------------------------------------------------------------------------


def _migrate_1(db: sqlite_utils.Database) -> None:
    """The first schema: hosts, prices, jobs, dependencies, attempts, events, samples, settings."""
    db.table("hosts").create(
        {
            "id": int, "name": str, "address": str, "port": int, "user": str, "key_path": str,
            "transport": str, "root_dir": str, "labels": str,
            "state": str, "admin_state": str,
            "cpus": float, "mem_mb": int, "gpus": int, "gpu_mem_mb": int, "gpu_model": str,
            "gpus_override": int,
            "price_per_hour": float, "price_cpu_hour": float, "price_gpu_hour": float,
            "price_gb_hour": float, "power_price_kwh": float,
            "host_key_type": str, "host_key_fingerprint": str,
            "added_at": float, "added_by": str, "last_seen": float, "last_error": str,
            "capacity_json": str,
        },
        pk="id",
        not_null={"name", "transport", "state", "admin_state", "added_at"},
        defaults={"port": 22, "transport": "ssh", "root_dir": "~/.lepton", "labels": "[]",
                  "state": "unknown", "admin_state": "active", "cpus": 0, "mem_mb": 0,
                  "gpus": 0, "gpu_mem_mb": 0},
    )  # fmt: skip
    db.table("hosts").create_index(["name"], unique=True)
    # Price history: a row per change, effective from its time; host NULL is the lab default.
    db.table("prices").create(
        {
            "id": int, "host": str, "effective_from": float, "price_per_hour": float,
            "price_cpu_hour": float, "price_gpu_hour": float, "price_gb_hour": float,
            "power_price_kwh": float, "currency": str, "set_by": str,
        },
        pk="id",
        not_null={"effective_from"},
    )  # fmt: skip
    db.table("prices").create_index(["host", "effective_from"])
    db.table("jobs").create(
        {
            "id": int, "name": str, "user": str, "project": str, "command": str,
            "workdir": str, "env": str,
            "cpus": float, "mem_mb": int, "gpus": int, "gpu_mem_mb": int,
            "time_limit_s": float, "priority": int, "retries": int, "attempts_used": int,
            "state": str, "reason": str, "submitted_at": float, "started_at": float,
            "ended_at": float, "exit_code": int, "host": str, "updated_at": float,
        },
        pk="id",
        not_null={"user", "project", "command", "state", "submitted_at"},
        defaults={"attempts_used": 0, "retries": 0, "priority": 0, "env": "{}"},
    )  # fmt: skip
    db.table("jobs").create_index(["state", "priority", "id"])
    db.table("jobs").create_index(["user", "id"])
    db.table("jobs").create_index(["project", "id"])
    db.table("job_deps").create(
        {"job_id": int, "depends_on": int},
        pk=("job_id", "depends_on"),
        foreign_keys=[("job_id", "jobs", "id"), ("depends_on", "jobs", "id")],
    )
    db.table("job_deps").create_index(["depends_on"])
    db.table("attempts").create(
        {
            "id": int, "job_id": int, "attempt_no": int, "host": str, "token": str,
            "gpu_ids": str, "cpus": float, "mem_mb": int, "gpus": int, "gpu_mem_mb": int,
            "state": str, "remote_dir": str, "created_at": float, "started_at": float,
            "ended_at": float, "exit_code": int, "reason": str, "cost": float,
            "energy_wh": float, "fenced_at": float, "policy": str,
        },
        pk="id",
        not_null={"job_id", "host", "token", "state", "created_at"},
        foreign_keys=[("job_id", "jobs", "id")],
    )  # fmt: skip
    db.table("attempts").create_index(["token"], unique=True)
    db.table("attempts").create_index(["job_id"])
    db.table("attempts").create_index(["state", "host"])
    db.table("attempts").create_index(["started_at"])
    db.table("events").create(
        {
            "id": int, "at": float, "kind": str, "job_id": int, "host": str, "actor": str,
            "message": str, "data": str,
        },
        pk="id",
        not_null={"at", "kind", "message"},
    )  # fmt: skip
    db.table("events").create_index(["job_id", "id"])
    db.table("events").create_index(["at"])
    db.execute(
        "CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events "
        "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events "
        "BEGIN SELECT RAISE(ABORT, 'events are append-only'); END"
    )
    # One row per host (gpu_index -1) or per GPU and time; `resolution` 0 = raw, 60, 3600.
    db.table("samples").create(
        {
            "id": int, "host": str, "gpu_index": int, "at": float, "resolution": int,
            "cpu_percent": float, "mem_used_mb": float, "mem_total_mb": float, "load1": float,
            "util_percent": float, "gpu_mem_used_mb": float, "gpu_mem_total_mb": float,
            "temperature_c": float, "power_w": float, "n": int,
        },
        pk="id",
        not_null={"host", "gpu_index", "at", "resolution"},
        defaults={"resolution": 0, "n": 1},
    )  # fmt: skip
    db.table("samples").create_index(["host", "gpu_index", "resolution", "at"])
    db.table("samples").create_index(["at"])
    db.table("settings").create({"key": str, "value": str}, pk="key")
    db.table("budgets").create(
        {
            "id": int, "scope": str, "name": str, "period": str, "amount": float,
            "unit": str, "hard": int, "created_at": float, "created_by": str,
        },
        pk="id",
        not_null={"scope", "name", "amount", "unit"},
    )  # fmt: skip
    db.table("budgets").create_index(["scope", "name", "unit"], unique=True)
    db.table("decisions").create(
        {"id": int, "at": float, "policy": str, "job_id": int, "host": str, "placed": int,
         "explanation": str},
        pk="id",
    )  # fmt: skip
    db.table("decisions").create_index(["job_id", "id"])
    db.table("decisions").create_index(["at"])


# The economics schema (migration 2): the daily cost roll-up and the indexes of the cost queries.
# The roll-up is a cache of what the attempts say: its rows may be deleted at any time and are
# rebuilt on use (see `lepton_tui.economics_report`). Released: change them only by a new migration.
# Attempt fields a cost roll-up day is summed from: amending one drops the days it touches.
SPAN_FIELDS = frozenset({"started_at", "ended_at", "cost", "energy_wh"})
MAX_DAY_S = 25 * 3600.0
ECON_ROLLUP_TABLES = {
    "econ_rollup": (
        "CREATE TABLE IF NOT EXISTS econ_rollup (dim TEXT NOT NULL, day REAL NOT NULL, "
        "label TEXT NOT NULL, key TEXT NOT NULL, host TEXT NOT NULL, alloc_cost REAL, "
        "energy_kwh REAL, energy_cost REAL, gpu_hours REAL, cpu_hours REAL, overlaps INTEGER, "
        "starts INTEGER, PRIMARY KEY (dim, day, key, host))"
    ),
    "econ_rollup_idle": (
        "CREATE TABLE IF NOT EXISTS econ_rollup_idle (day REAL NOT NULL, label TEXT NOT NULL, "
        "host TEXT NOT NULL, idle_cost REAL, PRIMARY KEY (day, host))"
    ),
    "econ_rollup_days": (
        "CREATE TABLE IF NOT EXISTS econ_rollup_days (day REAL PRIMARY KEY, day_end REAL, "
        "label TEXT, built_at REAL)"
    ),
}
ECON_INDEXES = {
    "idx_attempts_host_started": "attempts(host, started_at)",
    "idx_attempts_unmeasured": "attempts(id) WHERE energy_wh IS NULL",
    "idx_attempts_unsettled": "attempts(id) WHERE cost IS NULL",
    "idx_attempts_ended_started": "attempts(ended_at, started_at, created_at)",
}


def _migrate_2(db: sqlite_utils.Database) -> None:
    """The economics schema: the roll-up tables and the cost-query indexes.

    `IF NOT EXISTS` throughout: ledgers of schema 1 may already hold them, created on first use
    by the cost engine before this was a migration.
    """
    for sql in ECON_ROLLUP_TABLES.values():
        db.execute(sql)
    for name, target in ECON_INDEXES.items():
        db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")


def _migrate_3(db: sqlite_utils.Database) -> None:
    """What the dispatcher notices about an attempt across ticks, kept so that a restarted
    dispatcher (or `serve --once` from a timer) goes on counting: since when its host has not
    shown its directory, and how many launches of it failed."""
    db.execute("ALTER TABLE attempts ADD COLUMN missing_since REAL")
    db.execute("ALTER TABLE attempts ADD COLUMN launch_failures INTEGER NOT NULL DEFAULT 0")


def _migrate_4(db: sqlite_utils.Database) -> None:
    """When an attempt's cancel went out (`serve --once` must not send TERM again every run).
    Only if missing: a development ledger may have it from an early version of migration 3."""
    if "cancel_sent_at" not in db.table("attempts").columns_dict:
        db.execute("ALTER TABLE attempts ADD COLUMN cancel_sent_at REAL")


def _migrate_5(db: sqlite_utils.Database) -> None:
    """The dispatcher's look-ups of a host's events by kind (the connection kept when it was
    removed, whether a failing fence was said) without a scan of every event."""
    db.execute("CREATE INDEX IF NOT EXISTS idx_events_host_kind ON events(host, kind, at)")


def _migrate_6(db: sqlite_utils.Database) -> None:
    """A host's streak of failed polls (how many in a row, since when): a host is down after
    consecutive failures that span the grace, not after one poll that came late because the
    dispatcher itself was slow. Kept in the ledger so `serve --once` counts it too."""
    db.execute("ALTER TABLE hosts ADD COLUMN failed_polls INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE hosts ADD COLUMN failing_since REAL")


def _migrate_7(db: sqlite_utils.Database) -> None:
    """Whether an attempt's launch may have run: `launch_sent_at` is written (and committed)
    before the launch goes out, so an answer lost on the way back (a dropped connection, the
    dispatcher killed) leaves the attempt *unknown*, not "never started"; `presumed` marks one
    lost while its host did not answer (its fate unknown until the host says)."""
    db.execute("ALTER TABLE attempts ADD COLUMN launch_sent_at REAL")
    db.execute("ALTER TABLE attempts ADD COLUMN presumed INTEGER NOT NULL DEFAULT 0")


def _migrate_8(db: sqlite_utils.Database) -> None:
    """Slurm as a kind of host: a host's partition, account, QOS and SLURM_CONF (JSON; NULL for
    an SSH or local host), and the Slurm job id of an attempt submitted there."""
    if "slurm_json" not in db.table("hosts").columns_dict:
        db.execute("ALTER TABLE hosts ADD COLUMN slurm_json TEXT")
    if "slurm_job_id" not in db.table("attempts").columns_dict:
        db.execute("ALTER TABLE attempts ADD COLUMN slurm_job_id TEXT")


def _migrate_9(db: sqlite_utils.Database) -> None:
    """Lab mode: a client's key for each submit, so that a submit retried after the daemon's
    answer was lost (the daemon restarted) returns the jobs it queued instead of queueing twice."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS submit_keys (key TEXT PRIMARY KEY, user TEXT NOT NULL, "
        "job_ids TEXT NOT NULL, at REAL)"
    )


def _migrate_10_reserved(db: sqlite_utils.Database) -> None:
    """Number 10 is lab mode's (another branch); a no-op here so 11 and 12 keep their numbers.
    When merging, the real migration 10 takes this place."""


def _migrate_11(db: sqlite_utils.Database) -> None:
    """Constraints and arrays: a job's placement constraints (JSON: gpu_type, labels, hosts,
    exclude; NULL for none), and for an array element its array (the first element's id), its
    index and how many elements may run at once (NULL: no cap)."""
    columns = db.table("jobs").columns_dict
    for name, kind in (("constraints", "TEXT"), ("array_id", "INTEGER"),
                       ("array_index", "INTEGER"), ("array_limit", "INTEGER")):  # fmt: skip
        if name not in columns:
            db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
    db.execute("CREATE INDEX IF NOT EXISTS idx_jobs_array ON jobs(array_id, array_index)")


def _migrate_12(db: sqlite_utils.Database) -> None:
    """Fair share and limits: shares per user or project (scope 'user'/'project'), and caps on
    what one holds at once (GPUs, CPUs, running jobs; NULL: no cap)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS shares (scope TEXT NOT NULL, name TEXT NOT NULL, "
        "shares REAL NOT NULL, set_by TEXT, set_at REAL, PRIMARY KEY (scope, name))"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS limits (scope TEXT NOT NULL, name TEXT NOT NULL, "
        "gpus INTEGER, cpus REAL, jobs INTEGER, set_by TEXT, set_at REAL, "
        "PRIMARY KEY (scope, name))"
    )


# Append forward migrations here; never edit a released one.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migrate_1,
    _migrate_2,
    _migrate_3,
    _migrate_4,
    _migrate_5,
    _migrate_6,
    _migrate_7,
    _migrate_8,
    _migrate_9,
    _migrate_10_reserved,
    _migrate_11,
    _migrate_12,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _now() -> float:
    return time.time()


class Ledger:
    """One ledger file. Thread-safe: a connection per thread, writes serialised by SQLite."""

    def __init__(self, path: Path | str, clock: Callable[[], float] = _now) -> None:
        self.path = Path(path)
        self.clock = clock
        self._local = threading.local()
        # every connection with the thread that uses it: a connection is closed only by its own
        # thread (closing one while another thread runs a statement on it crashes the process)
        self._all_conns: list[tuple[sqlite3.Connection, threading.Thread]] = []
        self._lock = threading.Lock()
        self._closed = False
        self.queries = 0  # statements run, for complexity tests
        self._open_and_migrate()

    # -- connections ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 30000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise LedgerError(f"cannot put the ledger {self.path} in WAL mode")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc) from None
        with self._lock:
            self._all_conns.append((conn, threading.current_thread()))
        return conn

    def _explain(self, exc: sqlite3.Error) -> LedgerError:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            return LedgerError(
                f"{self.path} is not a lepton-tui ledger (not an SQLite database)",
                "move it aside or pick another --home",
            )
        if "readonly" in text or "unable to open" in text or "read-only" in text:
            return LedgerError(
                f"cannot write the ledger {self.path}: {text}",
                "check that the state directory is writable or pick another --home",
            )
        return LedgerError(f"ledger {self.path}: {text}")

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if self._closed:
            if conn is not None:  # a thread that was busy when the ledger closed
                self._local.conn = None
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            raise LedgerError(f"the ledger {self.path} is closed")
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        """A sqlite-utils view of this thread's connection (for reads and schema work)."""
        conn = self.conn
        db = getattr(self._local, "db", None)
        if db is None or db.conn is not conn:
            import sqlite_utils

            db = sqlite_utils.Database(conn)
            self._local.db = db
        return db

    def close(self) -> None:
        """Close this thread's connection and those of threads that have ended; one still used
        by another thread (a console's refresh worker) is closed by that thread on its next use,
        which then fails with LedgerError: never a connection closed under a running statement."""
        me = threading.current_thread()
        with self._lock:
            self._closed = True
            mine = [c for c, t in self._all_conns if t is me or not t.is_alive()]
            self._all_conns = [(c, t) for c, t in self._all_conns if c not in mine]
        for conn in mine:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local.conn = None

    def _open_and_migrate(self) -> None:
        try:
            # Before SQLite makes it with the umask's mode (0644): 0600, or 0660 in a lab-wide
            # directory; SQLite gives the -wal and -shm files the mode of this one.
            create_private_file(self.path)
        except OSError:
            pass  # a missing or read-only directory: connecting says why
        # Never open() the file to look at its header: closing any descriptor of it drops every
        # POSIX lock this process holds on it, those of its other SQLite connections included
        # (a dispatcher's, when the lab service or the autopilot opens a second Ledger), and a
        # writer elsewhere then corrupts it. SQLite says "not a database" itself (_explain).
        try:
            conn = self.conn
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._explain(exc) from None
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path} was written by a newer lepton-tui (schema {version}, this one "
                f"knows {SCHEMA_VERSION})",
                "upgrade lepton-tui",
            )
        if version == SCHEMA_VERSION:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number in range(version, SCHEMA_VERSION):
                MIGRATIONS[number](self.db)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._explain(exc) from None

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (`BEGIN IMMEDIATE`): all of it commits, or none of it."""
        conn = self.conn
        if conn.in_transaction:  # nested: join the outer transaction
            yield conn
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._explain(exc) from None
        try:
            yield conn
        except BaseException:
            # a ledger closed meanwhile (from another thread) has already dropped the transaction
            with contextlib.suppress(sqlite3.ProgrammingError):
                conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise self._explain(exc) from None

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        self.queries += 1
        try:
            return self.conn.execute(sql, params)
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise self._explain(exc) from None
            raise

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read query as dicts."""
        return [dict(row) for row in self.execute(sql, params).fetchall()]

    def query_one(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> dict[str, Any] | None:
        row = self.execute(sql, params).fetchone()
        return dict(row) if row is not None else None

    def insert(self, table: str, row: dict[str, Any]) -> int:
        """Insert one row inside the current transaction; return its rowid."""
        cols = ", ".join(f'"{k}"' for k in row)
        marks = ", ".join("?" for _ in row)
        cur = self.execute(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', list(row.values()))
        return int(cur.lastrowid or 0)

    def update(self, table: str, key: Any, values: dict[str, Any], pk: str = "id") -> None:
        sets = ", ".join(f'"{k}" = ?' for k in values)
        self.execute(f'UPDATE "{table}" SET {sets} WHERE "{pk}" = ?', [*values.values(), key])

    # -- events --------------------------------------------------------------------------------

    def event(
        self,
        kind: str,
        message: str,
        *,
        job_id: int | None = None,
        host: str | None = None,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> int:
        """Append an event; call inside the transaction of the change it records."""
        return self.insert(
            "events",
            {
                "at": self.clock() if at is None else at,
                "kind": kind,
                "job_id": job_id,
                "host": host,
                "actor": actor,
                "message": message,
                "data": json.dumps(data, sort_keys=True) if data else None,
            },
        )

    # -- settings ------------------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self.query_one("SELECT value FROM settings WHERE key = ?", (key,))
        return default if row is None else json.loads(row["value"])

    def settings(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.query("SELECT * FROM settings")}

    def set_setting(self, key: str, value: Any, actor: str | None = None) -> None:
        with self.tx():
            self.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )
            self.event("setting", f"set {key} = {json.dumps(value)}", actor=actor)

    def setdefault_setting(self, key: str, value: Any, actor: str | None = None) -> Any:
        """Set `key` only if it has no value yet (race-free); return the value in force."""
        with self.tx():
            cur = self.execute(
                "INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)",
                (key, json.dumps(value)),
            )
            if cur.rowcount:
                self.event("setting", f"set {key} = {json.dumps(value)}", actor=actor)
        return self.get_setting(key)

    # -- jobs ----------------------------------------------------------------------------------

    def add_job(self, spec: dict[str, Any], user: str, at: float | None = None) -> int:
        """Insert a queued job (and its dependencies and event) in the current transaction."""
        now = self.clock() if at is None else at
        after = list(spec.get("after") or [])
        for dep in after:
            if self.query_one("SELECT id FROM jobs WHERE id = ?", (dep,)) is None:
                raise NotFound(f"job {dep} (to run after) does not exist")
        row = {
            "name": spec.get("name"),
            "user": user,
            "project": spec.get("project") or "default",
            "command": spec["command"],
            "workdir": spec.get("workdir"),
            "env": json.dumps(spec.get("env") or {}, sort_keys=True),
            "cpus": spec.get("cpus", 1.0),
            "mem_mb": spec.get("mem_mb", 1024),
            "gpus": spec.get("gpus", 0),
            "gpu_mem_mb": spec.get("gpu_mem_mb", 0),
            "time_limit_s": spec.get("time_limit_s"),
            "priority": spec.get("priority", 0),
            "retries": spec.get("retries", 0),
            "attempts_used": 0,
            "state": "queued",
            "reason": "waiting for the scheduler",
            "submitted_at": now,
            "updated_at": now,
        }
        job_id = self.insert("jobs", row)
        for dep in after:
            self.insert("job_deps", {"job_id": job_id, "depends_on": dep})
        self.event(
            "job.submitted",
            f"job {job_id} submitted by {user}",
            job_id=job_id,
            actor=user,
            data={"command": spec["command"][:200], "project": row["project"]},
            at=now,
        )
        return job_id

    def get_job(self, job_id: int) -> dict[str, Any]:
        row = self.query_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise NotFound(f"job {job_id} does not exist", "see `lepton-tui queue --all`")
        row["env"] = json.loads(row["env"] or "{}")
        row["after"] = [
            r["depends_on"]
            for r in self.query("SELECT depends_on FROM job_deps WHERE job_id = ?", (job_id,))
        ]
        return row

    def transition_job(
        self,
        job_id: int,
        new_state: str,
        *,
        reason: str | None = None,
        actor: str | None = None,
        expect: str | Sequence[str] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Move a job to `new_state` with its event, in one transaction; illegal moves raise.

        `expect` guards against races: the move happens only from one of those states.
        """
        with self.tx():
            row = self.query_one("SELECT id, state FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                raise NotFound(f"job {job_id} does not exist")
            old = row["state"]
            if expect is not None:
                allowed = (expect,) if isinstance(expect, str) else tuple(expect)
                if old not in allowed:
                    raise IllegalTransition(f"job {job_id} is {old}, not {' or '.join(allowed)}")
            check_job_transition(old, new_state)
            now = self.clock()
            values: dict[str, Any] = {"state": new_state, "updated_at": now, **fields}
            if reason is not None:
                values["reason"] = reason
            if new_state in TERMINAL_JOB_STATES and "ended_at" not in values:
                values["ended_at"] = now
            self.update("jobs", job_id, values)
            text = f"job {job_id}: {old} -> {new_state}" + (f" ({reason})" if reason else "")
            self.event(f"job.{new_state}", text, job_id=job_id, actor=actor,
                       data={"from": old, "to": new_state}, at=now)  # fmt: skip
        return {"id": job_id, "from": old, "to": new_state}

    def set_job_reason(self, job_id: int, reason: str) -> None:
        """Record why a queued job waits (no event: reasons change every tick)."""
        self.execute(
            "UPDATE jobs SET reason = ? WHERE id = ? AND state = 'queued' AND "
            "(reason IS NULL OR reason != ?)",
            (reason, job_id, reason),
        )

    # -- attempts ------------------------------------------------------------------------------

    def start_attempt(
        self,
        job_id: int,
        host: str,
        token: str,
        gpu_ids: Sequence[int],
        *,
        policy: str | None = None,
        actor: str = "dispatcher",
    ) -> int:
        """Write the intent to launch (job queued -> starting, attempt `starting`), committed."""
        with self.tx():
            job = self.query_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
            if job is None:
                raise NotFound(f"job {job_id} does not exist")
            check_job_transition(job["state"], "starting")
            now = self.clock()
            number = int(job["attempts_used"]) + 1
            attempt_id = self.insert(
                "attempts",
                {
                    "job_id": job_id, "attempt_no": number, "host": host, "token": token,
                    "gpu_ids": json.dumps(list(gpu_ids)), "cpus": job["cpus"],
                    "mem_mb": job["mem_mb"], "gpus": job["gpus"], "gpu_mem_mb": job["gpu_mem_mb"],
                    "state": "starting", "created_at": now, "policy": policy,
                },
            )  # fmt: skip
            self.update(
                "jobs",
                job_id,
                {"state": "starting", "attempts_used": number, "host": host,
                 "reason": None, "updated_at": now},
            )  # fmt: skip
            self.event(
                "attempt.starting",
                f"job {job_id} attempt {number} starting on {host}"
                + (f" GPUs {','.join(map(str, gpu_ids))}" if gpu_ids else ""),
                job_id=job_id, host=host, actor=actor,
                data={"token": token, "gpu_ids": list(gpu_ids), "policy": policy}, at=now,
            )  # fmt: skip
        return attempt_id

    def get_attempt(self, token: str) -> dict[str, Any]:
        row = self.query_one("SELECT * FROM attempts WHERE token = ?", (token,))
        if row is None:
            raise NotFound(f"attempt {token} does not exist")
        row["gpu_ids"] = json.loads(row["gpu_ids"] or "[]")
        return row

    def attempts_for(self, job_id: int) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM attempts WHERE job_id = ? ORDER BY id", (job_id,))
        for row in rows:
            row["gpu_ids"] = json.loads(row["gpu_ids"] or "[]")
        return rows

    def transition_attempt(
        self,
        token: str,
        new_state: str,
        *,
        job_state: str | None = None,
        reason: str | None = None,
        actor: str = "dispatcher",
        job_fields: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Move an attempt (and optionally its job) to a new state, with events, atomically."""
        with self.tx():
            att = self.query_one("SELECT * FROM attempts WHERE token = ?", (token,))
            if att is None:
                raise NotFound(f"attempt {token} does not exist")
            check_attempt_transition(att["state"], new_state)
            now = self.clock()
            values: dict[str, Any] = {"state": new_state, **fields}
            if reason is not None:
                values["reason"] = reason
            if new_state != "running" and "ended_at" not in values:
                values["ended_at"] = now
            self.update("attempts", att["id"], values)
            self.event(
                f"attempt.{new_state}",
                f"job {att['job_id']} attempt {att['attempt_no']} on {att['host']}: "
                f"{att['state']} -> {new_state}" + (f" ({reason})" if reason else ""),
                job_id=att["job_id"], host=att["host"], actor=actor,
                data={"token": token, **{k: v for k, v in fields.items() if k == "exit_code"}},
                at=now,
            )  # fmt: skip
            if job_state is not None:
                self.transition_job(
                    att["job_id"], job_state, reason=reason, actor=actor, **(job_fields or {})
                )

    def amend_attempt(
        self,
        token: str,
        note: str,
        *,
        state: str | None = None,
        actor: str = "dispatcher",
        **fields: Any,
    ) -> None:
        """Correct an attempt from what its host says after it was presumed lost (outside the
        state machine on purpose: `lost` was a presumption, not an outcome), with an event."""
        with self.tx():
            att = self.query_one("SELECT * FROM attempts WHERE token = ?", (token,))
            if att is None:
                raise NotFound(f"attempt {token} does not exist")
            values: dict[str, Any] = dict(fields)
            if state is not None:
                values["state"] = state
                values["reason"] = note
            if values:
                self.update("attempts", att["id"], values)
            if SPAN_FIELDS & fields.keys():
                self._drop_rollup_days(att, fields)
            to = state or att["state"]
            self.event(
                "attempt.amended",
                f"job {att['job_id']} attempt {att['attempt_no']} on {att['host']}: "
                f"{att['state']} -> {to} ({note})",
                job_id=att["job_id"], host=att["host"], actor=actor,
                data={"token": token, "from": att["state"], "to": to,
                      **{k: v for k, v in fields.items() if k == "exit_code"}},
            )  # fmt: skip

    def _drop_rollup_days(self, att: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
        """Forget the cost roll-up of every day the attempt's old or new span touches: those
        days were summed from what the attempt said before (rebuilt on the next report)."""
        now = self.clock()
        starts = [t for t in (att["started_at"], att["created_at"], fields.get("started_at"))
                  if t is not None]  # fmt: skip
        ends = [att["ended_at"] or now, fields.get("ended_at") or now, now]
        t0, t1 = min(starts, default=now), max(ends)
        # a roll-up day is at most 25 hours long (a daylight-saving change), in any time zone
        self.execute(
            "DELETE FROM econ_rollup_days WHERE day < ? AND COALESCE(day_end, day + ?) > ?",
            (t1, MAX_DAY_S, t0),
        )
        for table in ("econ_rollup", "econ_rollup_idle"):
            self.execute(f"DELETE FROM {table} WHERE day < ? AND day > ?", (t1, t0 - MAX_DAY_S))

    def amend_job(
        self, job_id: int, state: str, note: str, *, actor: str = "dispatcher", **fields: Any
    ) -> None:
        """Correct a job's state that a presumed loss decided (a host that answers again with
        the truth), outside the state machine on purpose, with a `job.amended` event."""
        if state not in JOB_STATES:
            raise IllegalTransition(f"unknown job state {state}")
        with self.tx():
            row = self.query_one("SELECT id, state FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                raise NotFound(f"job {job_id} does not exist")
            now = self.clock()
            values = {"state": state, "updated_at": now, "reason": note, **fields}
            self.update("jobs", job_id, values)
            self.event(
                "job.amended", f"job {job_id}: {row['state']} -> {state} ({note})",
                job_id=job_id, actor=actor, data={"from": row["state"], "to": state}, at=now,
            )  # fmt: skip

    # -- hosts ---------------------------------------------------------------------------------

    def get_host(self, name: str) -> dict[str, Any]:
        row = self.query_one("SELECT * FROM hosts WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"host {name!r} does not exist", "see `lepton-tui hosts ls`")
        row["labels"] = json.loads(row["labels"] or "[]")
        return row

    def hosts(self) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM hosts ORDER BY name")
        for row in rows:
            row["labels"] = json.loads(row["labels"] or "[]")
        return rows


def open_ledger(path: Path | str, clock: Callable[[], float] = _now) -> Ledger:
    """Open (creating and migrating if needed) the ledger at `path`."""
    path = Path(path)
    if not path.parent.exists():
        try:
            make_state_dir(path.parent)
        except OSError as exc:
            raise LedgerError(
                f"cannot create the state directory {path.parent}: {exc.strerror}",
                "pick another --home",
            ) from None
    if not os.access(path.parent, os.W_OK):
        raise LedgerError(
            f"the state directory {path.parent} is read-only",
            "make it writable or pick another --home",
        )
    return Ledger(path, clock)
