"""The ledger's reads and writes for the shared lab: shares, limits, decayed usage, host logins.

A mixin of `lepton_tui.ledger.Ledger`, like `lepton_tui.ledger_service`. The rules live above it
(`lepton_tui.sharing`, `lepton_tui.logins`, `lepton_tui.place_rules`, `lepton_tui.constraints`);
these only name the SQL, so no module above the ledger writes any. Writes run inside the caller's
transaction (`Ledger.tx()`).
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from lepton_tui.ledger_dispatch import _Store

# Each (user, project)'s decayed usage: GPU- and CPU-seconds weighted (`:gw`, `:cw`), each moment
# decayed by exp(-k * age), summed in SQL (one row per user and project, whatever the attempts).
_USAGE_SQL = (
    "SELECT j.user, j.project, SUM((CASE WHEN a.gpus > 0 THEN a.gpus "
    "WHEN a.gpu_mem_mb > 0 AND h.gpus > 0 AND h.gpu_mem_mb > 0 "
    "THEN MIN(1.0, a.gpu_mem_mb * h.gpus * 1.0 / h.gpu_mem_mb) ELSE 0 END * :gw "
    "+ COALESCE(a.cpus, 0) * :cw) "
    "* (exp(-:k * (:now - MIN(COALESCE(a.ended_at, :now), :now))) "
    "- exp(-:k * (:now - MIN(a.started_at, :now))))) / :k AS amount "
    "FROM attempts a JOIN jobs j ON j.id = a.job_id LEFT JOIN hosts h ON h.name = a.host "
    "WHERE a.started_at IS NOT NULL AND (a.ended_at IS NULL OR a.ended_at >= :since) "
    "AND COALESCE(a.ended_at, :now) > a.started_at GROUP BY j.user, j.project"
)


class LabRecords:
    """The shared lab's named reads and writes (mixed into `Ledger`)."""

    # -- fair share ----------------------------------------------------------------------------

    def share_rows(self: _Store) -> list[dict[str, Any]]:
        """Every share an admin set: scope, name, shares."""
        return self.query("SELECT scope, name, shares FROM shares")

    def decayed_usage(self: _Store, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Each (user, project)'s usage `amount` at `:now`, decayed with rate `:k`, from attempts
        ended after `:since`, weighted `:gw` per GPU-second and `:cw` per CPU-second."""
        try:
            return self.query(_USAGE_SQL, params)
        except sqlite3.OperationalError as exc:  # an SQLite built without its math functions
            if "exp" not in str(exc):
                raise
            self.conn.create_function("exp", 1, math.exp, deterministic=True)
            return self.query(_USAGE_SQL, params)

    def usage_mark(self: _Store) -> dict[str, Any] | None:
        """What changes when usage must be summed again: the last attempt and how many run."""
        return self.query_one(
            "SELECT (SELECT MAX(id) FROM attempts) AS last, (SELECT COUNT(*) FROM attempts "
            "WHERE state IN ('starting', 'running')) AS active"
        )

    def queued_owners(self: _Store) -> list[dict[str, Any]]:
        """The distinct (user, project) of the queued jobs."""
        return self.query("SELECT DISTINCT user, project FROM jobs WHERE state = 'queued'")

    def delete_share(self: _Store, scope: str, name: str) -> None:
        self.execute("DELETE FROM shares WHERE scope = ? AND name = ?", (scope, name))

    def save_share(self: _Store, scope: str, name: str, shares: float, by: str) -> None:
        """Set a user's or project's shares (replacing any)."""
        self.execute(
            "INSERT INTO shares (scope, name, shares, set_by, set_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (scope, name) DO UPDATE SET shares = excluded.shares, "
            "set_by = excluded.set_by, set_at = excluded.set_at",
            (scope, name, shares, by, self.clock()),
        )

    # -- limits --------------------------------------------------------------------------------

    def limit_rows(self: _Store) -> list[dict[str, Any]]:
        """Every limit, users first, by name."""
        return self.query("SELECT * FROM limits ORDER BY scope DESC, name")

    def limit_row(self: _Store, scope: str, name: str) -> dict[str, Any] | None:
        return self.query_one("SELECT * FROM limits WHERE scope = ? AND name = ?", (scope, name))

    def delete_limit(self: _Store, scope: str, name: str) -> None:
        self.execute("DELETE FROM limits WHERE scope = ? AND name = ?", (scope, name))

    def save_limit(self: _Store, scope: str, name: str, values: dict[str, Any], by: str) -> None:
        """Set a user's or project's `gpus`, `cpus` and `jobs` limits (replacing any)."""
        self.execute(
            "INSERT INTO limits (scope, name, gpus, cpus, jobs, set_by, set_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, name) DO UPDATE SET "
            "gpus = excluded.gpus, cpus = excluded.cpus, jobs = excluded.jobs, "
            "set_by = excluded.set_by, set_at = excluded.set_at",
            (scope, name, values["gpus"], values["cpus"], values["jobs"], by, self.clock()),
        )

    # -- host logins (lab mode: who can be reached where) ---------------------------------------

    def host_login(self: _Store, host: str, user: str) -> dict[str, Any] | None:
        return self.query_one("SELECT * FROM host_logins WHERE host = ? AND user = ?", (host, user))

    def save_host_login(
        self: _Store, host: str, user: str, ok: bool, at: float, how: str, error: str | None
    ) -> None:
        """Store whether `user` can be reached on `host`, and how it was checked."""
        self.execute(
            "INSERT INTO host_logins (host, user, ok, checked_at, how, error) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(host, user) DO UPDATE SET ok = excluded.ok, "
            "checked_at = excluded.checked_at, how = excluded.how, error = excluded.error",
            (host, user, int(ok), at, how, error),
        )

    def host_logins(self: _Store, user: str | None = None) -> list[dict[str, Any]]:
        """Every (host, user) record by host then user, or one user's by host."""
        if user is None:
            return self.query("SELECT * FROM host_logins ORDER BY host, user")
        return self.query("SELECT * FROM host_logins WHERE user = ? ORDER BY host", (user,))

    def set_run_as(self: _Store, host: str, mode: str) -> None:
        """How `host` starts other users' jobs; what was learnt of its logins is forgotten (it
        was learnt the other way)."""
        self.execute("UPDATE hosts SET run_as = ? WHERE name = ?", (mode, host))
        self.execute("DELETE FROM host_logins WHERE host = ?", (host,))

    # -- placement rules: what runs, and GPUs used outside lepton -------------------------------

    def active_usage(self: _Store) -> list[dict[str, Any]]:
        """What each `starting` or `running` attempt holds, with its job's user, project and
        array (limits, array caps, GPUs used outside lepton)."""
        return self.query(
            "SELECT a.host, a.gpu_ids, a.cpus, a.gpus, a.gpu_mem_mb, j.user, j.project, "
            "j.array_id FROM attempts a JOIN jobs j ON j.id = a.job_id "
            "WHERE a.state IN ('starting', 'running')"
        )

    def active_gpu_holds(self: _Store) -> list[dict[str, Any]]:
        """The GPUs each `starting` or `running` attempt holds, by host."""
        return self.query(
            "SELECT host, gpu_ids, gpus, gpu_mem_mb FROM attempts "
            "WHERE state IN ('starting', 'running')"
        )

    def latest_gpu_samples(self: _Store, since: float) -> list[dict[str, Any]]:
        """Each host's latest raw GPU samples taken at or after `since`, one row per GPU."""
        return self.query(
            "SELECT s.host, s.gpu_index, s.util_percent, s.gpu_mem_used_mb, s.gpu_mem_total_mb "
            "FROM samples s JOIN (SELECT host, MAX(at) AS at FROM samples WHERE resolution = 0 "
            "AND gpu_index >= 0 AND at >= ? GROUP BY host) m ON s.host = m.host AND s.at = m.at "
            "WHERE s.resolution = 0 AND s.gpu_index >= 0",
            (since,),
        )

    def active_tokens(self: _Store, host: str) -> list[str]:
        """The tokens of the `starting` and `running` attempts on `host`."""
        rows = self.query(
            "SELECT token FROM attempts WHERE host = ? AND state IN ('starting', 'running')",
            (host,),
        )
        return [r["token"] for r in rows]

    def set_job_options(self: _Store, job_id: int, options: dict[str, Any]) -> None:
        """A new job's `notify_on`, `requeue_on_timeout`, `max_requeues`, `signal` and `kind`
        (inside the submit's transaction)."""
        self.execute(
            "UPDATE jobs SET notify_on = ?, requeue_on_timeout = ?, max_requeues = ?, signal = ?, "
            "kind = ? WHERE id = ?",
            (options["notify_on"], options["requeue_on_timeout"], options["max_requeues"],
             options["signal"], options["kind"], job_id),
        )  # fmt: skip
