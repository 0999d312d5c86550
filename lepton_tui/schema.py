"""The ledger's schema: the states a job, an attempt and a host may be in, the legal moves
between them, and the forward migrations (`PRAGMA user_version` counts those applied).

Append a migration as a function of its own at the end of `MIGRATIONS`; never edit a released
one. `lepton_tui.ledger` runs them when it opens a file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lepton_tui.errors import IllegalTransition

if TYPE_CHECKING:  # imported where used: sqlite_utils imports numpy (0.2 s on every command)
    import sqlite_utils

# -- job and attempt state machines ----------------------------------------------------------

JOB_STATES = (
    "queued", "starting", "running", "cancelling",
    "succeeded", "failed", "cancelled", "timeout",
)  # fmt: skip
TERMINAL_JOB_STATES = frozenset({"succeeded", "failed", "cancelled", "timeout"})
FAILED_JOB_STATES = TERMINAL_JOB_STATES - {"succeeded"}
"""ended without success: a job queued `--after` one of these is cancelled, it can never run"""
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

# `requeued`: a run of a Slurm job that Slurm requeued by itself (`scontrol requeue`, a node
# failure or preemption with requeue); the next run is a new attempt on the same Slurm job
ATTEMPT_STATES = (
    "starting", "running", "succeeded", "failed", "timeout", "cancelled", "lost", "requeued",
)  # fmt: skip
ATTEMPT_TRANSITIONS: dict[str, frozenset[str]] = {
    "starting": frozenset(
        {"running", "lost", "failed", "cancelled", "succeeded", "timeout", "requeued"}
    ),
    "running": frozenset({"succeeded", "failed", "timeout", "cancelled", "lost", "requeued"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "timeout": frozenset(),
    "cancelled": frozenset(),
    "lost": frozenset(),
    "requeued": frozenset(),
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
# rebuilt on use (see `lepton_tui.economics.rollup`). Released: change them only by a new migration.
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


def _migrate_10(db: sqlite_utils.Database) -> None:
    """Lab mode, jobs run as their submitter: whether each user can be reached on each host
    (`host_logins`, one row per host and user, from `hosts check --user` and the dispatcher's
    own tries), and how a host starts another user's jobs (`hosts.run_as`: NULL or `key`, log
    in as the user with the lab key; `sudo`, log in as the service account and `sudo -n -u`)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS host_logins (host TEXT NOT NULL, user TEXT NOT NULL, "
        "ok INTEGER NOT NULL, checked_at REAL NOT NULL, how TEXT, error TEXT, "
        "PRIMARY KEY (host, user))"
    )
    if "run_as" not in db.table("hosts").columns_dict:
        db.execute("ALTER TABLE hosts ADD COLUMN run_as TEXT")


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


def _migrate_13(db: sqlite_utils.Database) -> None:
    """Notifications (engineer notify): who is told when a job ends, fails, times out or is
    held (`jobs.notify_on`), one row per (job, event, channel) claimed before it is sent (a
    crash neither loses nor repeats one), the last event read, and each user's defaults."""
    jobs = db.table("jobs").columns_dict
    if "notify_on" not in jobs:
        db.execute("ALTER TABLE jobs ADD COLUMN notify_on TEXT")
    db.execute(
        "CREATE TABLE IF NOT EXISTS notifications (id INTEGER PRIMARY KEY, job_id INTEGER NOT "
        "NULL, event TEXT NOT NULL, channel TEXT NOT NULL, target TEXT, state TEXT NOT NULL "
        "DEFAULT 'pending', created_at REAL NOT NULL, next_at REAL, tries INTEGER NOT NULL "
        "DEFAULT 0, claimed_at REAL, claimed_by TEXT, sent_at REAL, error TEXT, "
        "UNIQUE (job_id, event, channel))"
    )
    db.execute("CREATE INDEX IF NOT EXISTS idx_notifications_state ON notifications(state, id)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS notify_cursor (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "event_id INTEGER NOT NULL)"
    )
    # from now on: the endings already in the ledger are history, never told
    db.execute(
        "INSERT OR IGNORE INTO notify_cursor (id, event_id) "
        "SELECT 1, COALESCE(MAX(id), 0) FROM events"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS notify_users (user TEXT PRIMARY KEY, notify_on TEXT, "
        "email TEXT, webhook TEXT, updated_at REAL)"
    )


def _migrate_14(db: sqlite_utils.Database) -> None:
    """Requeue at the time limit and interactive jobs (engineer notify): whether a job that
    times out is requeued, how often at most and so far, the signal it gets before its limit
    (`USR1@120`), and its kind (`batch` or `interactive`)."""
    jobs = db.table("jobs").columns_dict
    for column, sql in (
        ("requeue_on_timeout", "INTEGER NOT NULL DEFAULT 0"),
        ("max_requeues", "INTEGER NOT NULL DEFAULT 10"),
        ("requeues", "INTEGER NOT NULL DEFAULT 0"),
        ("signal", "TEXT"),
        ("kind", "TEXT NOT NULL DEFAULT 'batch'"),
    ):
        if column not in jobs:
            db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {sql}")


def _migrate_15(db: sqlite_utils.Database) -> None:
    """A Slurm partition's nodes as its last poll saw them for the fleet
    panel's expandable row: a JSON list of {name, state, cpus, cpus_alloc, mem_mb, mem_alloc_mb,
    gpus, gpus_alloc, reason}; NULL for any other host."""
    if "slurm_nodes" not in db.table("hosts").columns_dict:
        db.execute("ALTER TABLE hosts ADD COLUMN slurm_nodes TEXT")


def _migrate_16(db: sqlite_utils.Database) -> None:
    """A price per node-hour for a Slurm partition and how many nodes
    Slurm allocated to each attempt there (read from its NodeList): such an attempt is charged
    nodes x hours x that price; and the partition's own queue as its last poll saw it (JSON:
    other users' pending jobs, what those waiting for room ask, the free capacity before
    them). NULL elsewhere."""
    if "price_node_hour" not in db.table("prices").columns_dict:
        db.execute("ALTER TABLE prices ADD COLUMN price_node_hour REAL")
    if "slurm_nodes" not in db.table("attempts").columns_dict:
        db.execute("ALTER TABLE attempts ADD COLUMN slurm_nodes INTEGER")
    if "slurm_pending" not in db.table("hosts").columns_dict:
        db.execute("ALTER TABLE hosts ADD COLUMN slurm_pending TEXT")


def _migrate_17(db: sqlite_utils.Database) -> None:
    """A Slurm attempt is charged from its start only (never while it waits in Slurm's queue):
    the cached days of the cost roll-up were summed under the old rule, so they are dropped and
    summed again from the attempts on the next report."""
    tables = set(db.table_names())
    for table in ECON_ROLLUP_TABLES:
        if table in tables:
            db.execute(f"DELETE FROM {table}")


def _migrate_18(db: sqlite_utils.Database) -> None:
    """What Slurm allocated to an attempt where it rounded the request up (a whole node on an
    `OverSubscribe=EXCLUSIVE` partition, whole CPUs, memory), read from the poll's own
    squeue/sacct: the cost side charges by it (`alloc_*`; NULL: as requested), placement keeps
    the request (`cpus`, `mem_mb`, `gpus`). And whether an attempt went to a Slurm host
    (`on_slurm`, set by `start_attempt`): it is charged only from Slurm's start, even before
    sbatch returned its job id. Attempts of older ledgers are marked from their Slurm job id or
    their host; the cached days of the cost roll-up are dropped (summed again on the next
    report), as those attempts are no longer charged from their intent. And a Slurm host's
    price per node-hour on its row (`hosts.price_node_hour`, beside its other current prices),
    so the placement policy and the fleet's stranded column price the partition by it."""
    if "price_node_hour" not in db.table("hosts").columns_dict:
        db.execute("ALTER TABLE hosts ADD COLUMN price_node_hour REAL")
    db.execute(  # the price row in force last, as `record_prices` keeps it from now on
        "UPDATE hosts SET price_node_hour = (SELECT p.price_node_hour FROM prices p "
        "WHERE p.host = hosts.name ORDER BY p.effective_from DESC, p.id DESC LIMIT 1) "
        "WHERE slurm_json IS NOT NULL"
    )
    cols = db.table("attempts").columns_dict
    for column, sql in (
        ("alloc_cpus", "REAL"),
        ("alloc_mem_mb", "INTEGER"),
        ("alloc_gpus", "INTEGER"),
        ("on_slurm", "INTEGER NOT NULL DEFAULT 0"),
    ):
        if column not in cols:
            db.execute(f"ALTER TABLE attempts ADD COLUMN {column} {sql}")
    db.execute(  # by its host only if that Slurm host was there when the attempt was made:
        # an SSH host removed and its name reused for a partition keeps its attempts' charge
        "UPDATE attempts SET on_slurm = 1 WHERE slurm_job_id IS NOT NULL OR EXISTS "
        "(SELECT 1 FROM hosts h WHERE h.name = attempts.host AND h.slurm_json IS NOT NULL "
        "AND h.added_at <= attempts.created_at)"
    )
    db.execute(  # a Slurm attempt that never started is charged nothing now: its stored cost too
        "UPDATE attempts SET cost = 0 WHERE on_slurm = 1 AND started_at IS NULL "
        "AND cost IS NOT NULL AND COALESCE(energy_wh, 0) = 0"
    )
    tables = set(db.table_names())
    for table in ECON_ROLLUP_TABLES:
        if table in tables:
            db.execute(f"DELETE FROM {table}")


def _migrate_19(db: sqlite_utils.Database) -> None:
    """Each run of a job Slurm requeues is an attempt of its own, charged for its own time and
    allocation (state `requeued` for the runs Slurm cut short): an attempt keeps the restart
    count Slurm had reached when its run began (`slurm_restarts`; NULL: 0), so a count that
    rises tells lepton that Slurm requeued it."""
    if "slurm_restarts" not in db.table("attempts").columns_dict:
        db.execute("ALTER TABLE attempts ADD COLUMN slurm_restarts INTEGER")


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
    _migrate_10,
    _migrate_11,
    _migrate_12,
    _migrate_13,
    _migrate_14,
    _migrate_15,
    _migrate_16,
    _migrate_17,
    _migrate_18,
    _migrate_19,
]
SCHEMA_VERSION = len(MIGRATIONS)
