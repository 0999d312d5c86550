"""The economics' plain reads and writes of the ledger (prices, costs, budgets, waste, replay):
every statement outside the cost engine (whose SQL is `lepton_tui.ledger_econ`).

A mixin of `lepton_tui.ledger.Ledger` through `lepton_tui.ledger_econ.EconRecords`, so the
economics' rules (`lepton_tui.economics`) read as Python and call these by name.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from lepton_tui.ledger_dispatch import _Store
from lepton_tui.ledger_econ_sql import _GMEM, _GPUS, _S0


class _EconStore(_Store, Protocol):
    def tx(self) -> AbstractContextManager[sqlite3.Connection]: ...


# The latest power sample of each GPU the hosts have: one index seek per GPU (samples by host,
# GPU, resolution and time, walked backwards), whatever the length of the sample history.
_LATEST_POWER_SQL = """
    WITH RECURSIVE g(i) AS (
      SELECT 0 UNION ALL SELECT i + 1 FROM g
      WHERE i + 1 < (SELECT MAX(MAX(COALESCE(gpus, 0), COALESCE(gpus_override, 0))) FROM hosts))
    SELECT h.name AS host, g.i AS gpu_index,
           (SELECT s.power_w FROM samples s
            WHERE s.host = h.name AND s.gpu_index = g.i AND s.resolution = 0 AND s.at >= ?
              AND s.power_w IS NOT NULL
            ORDER BY s.at DESC LIMIT 1) AS power_w
    FROM hosts h JOIN g ON g.i < MAX(COALESCE(h.gpus, 0), COALESCE(h.gpus_override, 0))
"""


class EconStoreRecords:
    """The economics' named reads and writes outside the cost engine (mixed into `Ledger`)."""

    # -- prices and currency -----------------------------------------------------------------------

    def currency_changes(self: _EconStore) -> list[dict[str, Any]]:
        """The events that set the lab currency, oldest first (at, message)."""
        return self.query(  # host IS NULL: setting events have no host, and the index needs it
            "SELECT at, message FROM events WHERE host IS NULL AND kind = 'setting' "
            "AND message LIKE 'set currency = %' ORDER BY at, id"
        )

    def record_prices(self: _EconStore, row: dict[str, Any], fields: Sequence[str]) -> None:
        """Append a price row; a host's row also sets its current prices on the host."""
        self.insert("prices", row)
        if row["host"] is not None:
            self.execute(
                "UPDATE hosts SET price_per_hour = ?, price_cpu_hour = ?, price_gpu_hour = ?, "
                "price_gb_hour = ?, power_price_kwh = ?, price_node_hour = ? WHERE name = ?",
                [row[f] for f in fields if f != "price_node_hour"]
                + [row.get("price_node_hour"), row["host"]],
            )

    def note_attempt_nodes(self: _EconStore, counts: dict[str, int]) -> None:
        """How many nodes Slurm allocated to each attempt (token -> nodes), written only where
        it changed: a price per node-hour charges by it."""
        for token, n in counts.items():
            self.execute(
                "UPDATE attempts SET slurm_nodes = ? WHERE token = ? AND slurm_nodes IS NOT ?",
                (int(n), token, int(n)),
            )

    def note_attempt_alloc(
        self: _EconStore, allocs: dict[str, tuple[float, int, int | None]]
    ) -> None:
        """What Slurm allocated to each attempt (token -> cpus, mem_mb, gpus; GPUs None where
        Slurm does not count them, which keeps the request's), written only where
        it changed and only on an attempt not settled yet: the cost side charges by it. A settled
        attempt's cost (and the roll-up's days, built only once every attempt in them is settled)
        never changes under it, so no cached day has to be dropped."""
        self.conn.executemany(  # one statement for a partition's many jobs
            "UPDATE attempts SET alloc_cpus = ?1, alloc_mem_mb = ?2, alloc_gpus = ?3 "
            "WHERE token = ?4 AND cost IS NULL AND (alloc_cpus IS NOT ?1 "
            "OR alloc_mem_mb IS NOT ?2 OR alloc_gpus IS NOT ?3)",
            [
                (float(c), int(m), None if g is None else int(g), t)
                for t, (c, m, g) in allocs.items()
            ],
        )

    def latest_price_row(self: _EconStore, host: str | None, at: float) -> dict[str, Any] | None:
        """The price row in force at `at` for `host` (None: the lab default)."""
        where = "host IS NULL" if host is None else "host = ?"
        params: list[Any] = [] if host is None else [host]
        return self.query_one(
            f"SELECT * FROM prices WHERE {where} AND effective_from <= ? "
            "ORDER BY effective_from DESC, id DESC LIMIT 1",
            [*params, at],
        )

    def price_rows(
        self: _EconStore, host: str | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        """Price rows oldest first: all of them, one host's, or those in force by `until`."""
        if host is not None:
            return self.query(
                "SELECT * FROM prices WHERE host = ? ORDER BY effective_from, id", (host,)
            )
        if until is not None:
            return self.query(
                "SELECT * FROM prices WHERE effective_from <= ? ORDER BY effective_from, id",
                (until,),
            )
        return self.query("SELECT * FROM prices ORDER BY effective_from, id")

    # -- hosts and attempts ------------------------------------------------------------------------

    def host_name_list(self: _EconStore) -> list[str]:
        return [h["name"] for h in self.query("SELECT name FROM hosts")]

    def host_capacities(self: _EconStore) -> dict[str, dict[str, Any]]:
        """{name: cpus, mem_mb, gpus, gpu_mem_mb} of every host, by name."""
        return {
            r["name"]: r
            for r in self.query(
                "SELECT name, cpus, mem_mb, gpus, gpu_mem_mb FROM hosts ORDER BY name"
            )
        }

    def attempt_by_token(self: _EconStore, token: str) -> dict[str, Any] | None:
        return self.query_one("SELECT * FROM attempts WHERE token = ?", (token,))

    def store_attempt_cost(self: _EconStore, token: str, cost: float, energy_wh: float) -> None:
        with self.tx():
            self.execute(
                "UPDATE attempts SET cost = ?, energy_wh = ? WHERE token = ?",
                (cost, energy_wh, token),
            )

    def ended_unsettled(self: _EconStore, limit: int | None = None) -> list[dict[str, Any]]:
        """Ended attempts with no stored cost yet (id, s0 = when they started)."""
        sql = (
            "SELECT id, COALESCE(started_at, created_at) AS s0 FROM attempts "
            "INDEXED BY idx_attempts_unsettled WHERE cost IS NULL AND ended_at IS NOT NULL"
        )
        return self.query(sql + (f" LIMIT {int(limit)}" if limit else ""))

    def store_settled(self: _EconStore, values: list[tuple[float, float, int]]) -> None:
        """Store (cost, energy_wh, attempt id) on attempts that have no cost yet."""
        with self.tx():
            self.conn.executemany(
                "UPDATE attempts SET cost = ?, energy_wh = COALESCE(energy_wh, ?) "
                "WHERE id = ? AND cost IS NULL",
                values,
            )

    def running_attempts(self: _EconStore, *, with_job: bool = False) -> list[dict[str, Any]]:
        """Attempts starting or running; `with_job` adds the job's user and time limit."""
        if not with_job:
            return self.query("SELECT * FROM attempts WHERE state IN ('starting', 'running')")
        return self.query(
            "SELECT a.*, j.user AS user, j.time_limit_s FROM attempts a "
            "JOIN jobs j ON j.id = a.job_id WHERE a.state IN ('starting', 'running')"
        )

    def latest_power_rows(self: _EconStore, since: float) -> list[dict[str, Any]]:
        """Each GPU's latest raw power sample since `since` (host, gpu_index, power_w or None)."""
        return self.query(_LATEST_POWER_SQL, (since,))

    def gpu_held_seconds(
        self: _EconStore, since: float, until: float, now: float
    ) -> list[dict[str, Any]]:
        """Per (host, gpu): GPU-seconds attempts held it over [since, until) (a share by memory,
        or a whole GPU where Slurm allocated whole ones, as cost counts it), from when they are
        charged (`_S0`: a Slurm attempt from Slurm's start, never while it
        waits in Slurm's queue)."""
        return self.query(
            f"""SELECT a.host AS host, CAST(g.value AS INTEGER) AS gpu,
                  SUM(MAX(0.0, MIN(COALESCE(a.ended_at, :now), :until)
                      - MAX({_S0}, :since))
                      * CASE WHEN {_GPUS} > 0 THEN 1.0 ELSE
                          MIN(1.0, {_GMEM} * 1.0 / MAX(1.0, h.gpu_mem_mb * 1.0 / MAX(h.gpus, 1)))
                        END) AS held
           FROM attempts a JOIN json_each(a.gpu_ids) g LEFT JOIN hosts h ON h.name = a.host
           WHERE {_S0} < :until
             AND (a.ended_at > :since OR a.ended_at IS NULL)
           GROUP BY a.host, gpu""",
            {"since": since, "until": until, "now": now},
        )

    def gpu_mean_util(self: _EconStore, since: float, until: float) -> list[dict[str, Any]]:
        """Per (host, gpu): the mean sampled utilization over [since, until)."""
        return self.query(
            """SELECT host, gpu_index AS gpu, SUM(util_percent * n) * 1.0 / SUM(n) AS util
           FROM samples WHERE gpu_index >= 0 AND at >= ? AND at < ? AND util_percent IS NOT NULL
           GROUP BY host, gpu_index""",
            (since, until),
        )

    def gpu_window_stats(
        self: _EconStore, host: str, gpu: int, since: float, now: float
    ) -> dict[str, Any]:
        """A GPU's samples over [since, now]: count, max and mean util, max memory used."""
        return self.query_one(
            "SELECT COUNT(*) AS n, MAX(util_percent) AS max_util, AVG(util_percent) AS avg_util, "
            "MAX(gpu_mem_used_mb) AS max_mem FROM samples "
            "WHERE host = ? AND gpu_index = ? AND resolution IN (0, 60) AND at >= ? AND at <= ?",
            (host, gpu, since, now),
        ) or {"n": 0}

    def waste_noticed(self: _EconStore, kind: str, data: dict[str, Any], *, job_id: int | None = None,
        host: str | None = None, since: float | None = None,
    ) -> bool:  # fmt: skip
        """Whether a waste event of `kind` with `data` was written (for the job, or the host since)."""
        sql = "SELECT 1 AS x FROM events WHERE kind = ? AND data = ?"
        params: list[Any] = [kind, json.dumps(data, sort_keys=True)]
        if job_id is not None:
            sql += " AND job_id = ?"
            params.append(job_id)
        if host is not None:
            sql += " AND host = ?"
            params.append(host)
        if since is not None:
            sql += " AND at > ?"
            params.append(since)
        return self.query_one(sql, params) is not None

    # -- jobs and budgets --------------------------------------------------------------------------

    def job_projects(self: _EconStore) -> set[str]:
        return {r["project"] for r in self.query("SELECT DISTINCT project FROM jobs")}

    def user_has_jobs(self: _EconStore, user: str) -> bool:
        return self.query_one("SELECT 1 AS x FROM jobs WHERE user = ? LIMIT 1", (user,)) is not None

    def queued_jobs_oldest_first(
        self: _EconStore, *, held_too: bool = True
    ) -> list[dict[str, Any]]:
        """Queued jobs, oldest first; without `held_too`, not those a hard budget holds."""
        if held_too:
            return self.query("SELECT * FROM jobs WHERE state = 'queued' ORDER BY id")
        return self.query(
            "SELECT * FROM jobs WHERE state = 'queued' AND COALESCE(reason, '') NOT LIKE "
            "'over budget%' ORDER BY id LIMIT 5000"
        )

    def upsert_budget(self: _EconStore, scope: str, name: str, amount: float, unit: str, hard: bool, at: float,
        actor: str | None,
    ) -> None:  # fmt: skip
        """Create or replace the budget of (scope, name, unit)."""
        self.execute(
            "INSERT INTO budgets (scope, name, period, amount, unit, hard, created_at, created_by) "
            "VALUES (?, ?, 'month', ?, ?, ?, ?, ?) "
            "ON CONFLICT(scope, name, unit) DO UPDATE SET amount = excluded.amount, "
            "hard = excluded.hard, created_at = excluded.created_at, "
            "created_by = excluded.created_by",
            (scope, name, amount, unit, int(hard), at, actor),
        )

    def delete_budgets(self: _EconStore, scope: str, name: str, unit: str | None) -> int:
        """Delete a scope's budgets (one unit, or all); how many."""
        params: list[Any] = [scope, name]
        sql = "DELETE FROM budgets WHERE scope = ? AND name = ?"
        if unit is not None:
            sql += " AND unit = ?"
            params.append(unit)
        return int(self.execute(sql, params).rowcount)

    def budget_rows(self: _EconStore) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM budgets ORDER BY scope, name, unit")

    def any_hard_budget(self: _EconStore) -> bool:
        return self.query_one("SELECT 1 AS x FROM budgets WHERE hard = 1 LIMIT 1") is not None

    # -- history for replay ------------------------------------------------------------------------

    def dispatcher_sample_times(
        self: _EconStore, since: float, until: float
    ) -> list[dict[str, Any]]:
        """The distinct (at, resolution) of host samples in [since, until]: when a dispatcher ran."""
        return self.query(
            "SELECT DISTINCT at, resolution FROM samples WHERE gpu_index < 0 AND at >= ? AND at <= ? "
            "ORDER BY at",
            (since, until),
        )

    def jobs_submitted(self: _EconStore, since: float, until: float) -> list[dict[str, Any]]:
        return self.query(
            "SELECT * FROM jobs WHERE submitted_at >= ? AND submitted_at < ? ORDER BY submitted_at, id",
            (since, until),
        )

    def attempts_of_jobs_submitted(
        self: _EconStore, since: float, until: float
    ) -> list[dict[str, Any]]:
        return self.query(
            "SELECT a.* FROM attempts a JOIN jobs j ON j.id = a.job_id "
            "WHERE j.submitted_at >= ? AND j.submitted_at < ? ORDER BY a.id",
            (since, until),
        )

    def dependencies_ended(self: _EconStore, since: float, until: float) -> dict[int, float]:
        """{job id: when its last dependency really ended} for the window's jobs run --after others."""
        rows = self.query(
            "SELECT d.job_id, MAX(a.ended_at) AS ended FROM job_deps d "
            "JOIN jobs j ON j.id = d.job_id JOIN attempts a ON a.job_id = d.depends_on "
            "WHERE j.submitted_at >= ? AND j.submitted_at < ? AND a.ended_at IS NOT NULL "
            "GROUP BY d.job_id",
            (since, until),
        )
        return {int(r["job_id"]): float(r["ended"]) for r in rows if r["ended"] is not None}
