"""The ledger: one SQLite file, the only state lepton-tui keeps.

WAL, `synchronous=FULL`, a busy timeout and foreign keys; the schema version lives in
`PRAGMA user_version` and moves forward through `MIGRATIONS`. Every change and the event that
records it are written in one `BEGIN IMMEDIATE` transaction, so a crash leaves each change whole
or absent. sqlite-utils builds the schema and runs reads; writes go through `Ledger.tx()` because
sqlite-utils' own writes commit on their own and would split a change from its event.
The file holds job commands and `--env` values: lepton creates it 0600 (0660 in a lab-wide,
group-writable state directory), never readable by other users; see `lepton_tui.paths`.
The schema (states, legal moves, migrations) is `lepton_tui.schema`; the dispatcher's named
reads and writes are `lepton_tui.ledger_dispatch`, the service's `lepton_tui.ledger_service`,
the console read models' `lepton_tui.ledger_views`, the economics' `lepton_tui.ledger_econ`,
all mixed into `Ledger`.
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
from lepton_tui.ledger_demo import DemoRecords
from lepton_tui.ledger_dispatch import DispatchRecords
from lepton_tui.ledger_econ import EconRecords
from lepton_tui.ledger_lab import LabRecords
from lepton_tui.ledger_service import ServiceRecords
from lepton_tui.ledger_views import ViewRecords
from lepton_tui.paths import create_private_file, make_state_dir
from lepton_tui.schema import (
    ATTEMPT_TRANSITIONS,
    ECON_ROLLUP_TABLES,
    JOB_STATES,
    JOB_TRANSITIONS,
    MAX_DAY_S,
    MIGRATIONS,
    SCHEMA_VERSION,
    SPAN_FIELDS,
    TERMINAL_JOB_STATES,
    _migrate_2,
    check_attempt_transition,
    check_job_transition,
)

if TYPE_CHECKING:  # imported where used: sqlite_utils imports numpy (0.2 s on every command)
    import sqlite_utils

# the schema's names are re-exported: the ledger's importers know them from here
__all__ = [
    "Ledger", "open_ledger", "ATTEMPT_TRANSITIONS", "ECON_ROLLUP_TABLES", "JOB_STATES",
    "JOB_TRANSITIONS", "MAX_DAY_S", "MIGRATIONS", "SCHEMA_VERSION", "SPAN_FIELDS",
    "TERMINAL_JOB_STATES", "_migrate_2", "check_attempt_transition", "check_job_transition",
]  # fmt: skip


def _now() -> float:
    return time.time()


class Ledger(DispatchRecords, ServiceRecords, ViewRecords, LabRecords, DemoRecords, EconRecords):
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
            slurm = self.query_one("SELECT 1 FROM hosts WHERE name = ? AND slurm_json IS NOT NULL",
                                   (host,))  # fmt: skip
            attempt_id = self.insert(
                "attempts",
                {
                    "job_id": job_id, "attempt_no": number, "host": host, "token": token,
                    "gpu_ids": json.dumps(list(gpu_ids)), "cpus": job["cpus"],
                    "mem_mb": job["mem_mb"], "gpus": job["gpus"], "gpu_mem_mb": job["gpu_mem_mb"],
                    "state": "starting", "created_at": now, "policy": policy,
                    "on_slurm": int(slurm is not None),  # charged from Slurm's start only
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
