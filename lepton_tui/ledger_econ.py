"""The economics' named reads and writes (`lepton_tui.economics`): energy, the daily roll-up
and the cost engine over its TEMP tables (SQL text: `lepton_tui.ledger_econ_sql`).

A mixin of `lepton_tui.ledger.Ledger`, like `lepton_tui.ledger_views`. The economics decide what
to read and compute the money; the SQL lives here. The cost panel counts its statements
(`tests/economics/test_panel_queries.py`): each method runs the statements its caller ran before,
no more. The ledger never imports the economics: what a statement needs comes as a parameter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from lepton_tui.ledger_dispatch import _Store
from lepton_tui.ledger_econ_sql import (
    _HOST_TOTAL_SQL,
    _ROLLUP_CROSSING_IDS,
    _SLICE_COLUMNS,
    _SLICE_KEY,
    _attempt_sql,
    _rollup_settled_sql,
    _settled_sql,
)
from lepton_tui.ledger_econ_store import EconStoreRecords

_UNMEASURED_SQL = (
    "SELECT * FROM attempts INDEXED BY idx_attempts_unmeasured "
    "WHERE energy_wh IS NULL AND (gpus > 0 OR gpu_mem_mb > 0)"
)

# Mean sampled power of each GPU an attempt held, over the attempt's time: one correlated lookup
# per (attempt, GPU) through the samples index, in one statement for all the attempts.
_MEAN_POWER_SQL = """
    SELECT a.id AS id, CAST(g.value AS INTEGER) AS gpu,
           (SELECT SUM(s.power_w * s.n) * 1.0 / SUM(s.n) FROM samples s
            WHERE s.host = a.host AND s.gpu_index = CAST(g.value AS INTEGER)
              AND s.resolution IN (0, 60, 3600) AND s.at >= a.t0 AND s.at <= a.t1
              AND s.power_w IS NOT NULL) AS mean_w
    FROM (SELECT id, host, gpu_ids, COALESCE(started_at, created_at) AS t0,
                 COALESCE(ended_at, :now) AS t1
          FROM attempts WHERE id IN (SELECT value FROM json_each(:ids))) a,
         json_each(a.gpu_ids) g
"""

# The roll-up's dimensions: (key column, host column) summed from `econ_slice`.
_ROLLUP_DIMS = {"user": ("user", "''"), "project": ("project", "''"), "host": ("host", "host")}


class EconRecords(EconStoreRecords):
    """The economics' named reads and writes (mixed into `Ledger`); the plain ones outside the
    cost engine are `lepton_tui.ledger_econ_store`."""

    # -- energy (`economics.energy`) -----------------------------------------------------------

    def host_capacity_record(self: _Store, name: str) -> dict[str, Any]:
        """A host's capacity (cpus, mem_mb, gpus, gpu_mem_mb): from its row, or for a removed
        host from the event that recorded its removal; {} when neither is known."""
        row = self.query_one(
            "SELECT cpus, mem_mb, gpus, gpu_mem_mb FROM hosts WHERE name = ?", (name,)
        )
        if row is not None:
            return row
        ev = self.query_one(
            "SELECT data FROM events WHERE kind = 'host.removed' AND host = ? AND data IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            (name,),
        )
        return json.loads(ev["data"]) if ev else {}

    def unmeasured_gpu_attempts(
        self: _Store, window: tuple[float, float] | None = None
    ) -> list[dict[str, Any]]:
        """GPU attempts with no stored energy yet; with `window` (since, until), those that
        overlap it."""
        if window is None:
            return self.query(_UNMEASURED_SQL)
        since, until = window
        return self.query(
            _UNMEASURED_SQL + " AND COALESCE(started_at, created_at) < ? "
            "AND (ended_at IS NULL OR ended_at > ?)",
            (until, since),
        )

    def load_report_energy(self: _Store, energy: dict[int, float]) -> None:
        """Put measured energy {attempt id: Wh} in this connection's TEMP table `econ_energy`."""
        self.conn.execute(
            "INSERT INTO econ_energy SELECT value ->> 0, value ->> 1 FROM json_each(?)",
            (json.dumps(list(energy.items())),),
        )

    def host_gpu_capacities(self: _Store) -> dict[str, dict[str, Any]]:
        """Every host's GPUs and GPU memory, by name."""
        return {r["name"]: r for r in self.query("SELECT name, gpus, gpu_mem_mb FROM hosts")}

    def mean_gpu_power(self: _Store, ids: list[int], now: float) -> list[dict[str, Any]]:
        """Per (attempt, GPU it held) of attempts `ids`: the mean sampled power `mean_w` over the
        attempt's time (until `now` for one still running)."""
        return self.query(_MEAN_POWER_SQL, {"now": now, "ids": json.dumps(ids)})

    # -- the daily roll-up (`economics.rollup`) ------------------------------------------------

    def oldest_unsettled_start(self: _Store) -> float | None:
        """When the earliest attempt without a stored cost began (None when all are settled)."""
        row = self.query_one(
            "SELECT MIN(COALESCE(started_at, created_at)) AS t FROM attempts "
            "INDEXED BY idx_attempts_unsettled WHERE cost IS NULL"
        )
        return float(row["t"]) if row and row["t"] is not None else None

    def rollup_days_between(self: _Store, first: float, last: float) -> set[float]:
        """Starts of the days in [first, last] that the roll-up holds."""
        return {
            r["day"]
            for r in self.query(
                "SELECT day FROM econ_rollup_days WHERE day >= ? AND day <= ?", (first, last)
            )
        }

    def open_rollup_slices(self: _Store) -> None:
        """A fresh TEMP table `econ_slice` (day, label, user, project, host, slice columns)."""
        conn = self.conn
        conn.execute("DROP TABLE IF EXISTS temp.econ_slice")
        conn.execute(
            "CREATE TEMP TABLE econ_slice (day REAL, label TEXT, user TEXT, project TEXT, "
            f"host TEXT, {_SLICE_COLUMNS})"
        )

    def write_rollup(
        self: _Store,
        kwh: float | None,
        params: dict[str, Any],
        days: list[tuple[str, float, float]],
        now: float,
    ) -> None:
        """Fill `econ_slice` from the sliced attempts (every one when the electricity price
        changed, `kwh` None; else those crossing a day's edge, and the settled ones inside a day
        from their stored cost), sum it into the roll-up's dimensions and idle cost, mark `days`
        built and drop the TEMP table. In the caller's transaction, after `open_rollup_slices`."""
        conn, cols = self.conn, _SLICE_COLUMNS
        if kwh is None:
            sliced = _attempt_sql(_SLICE_KEY, all_attempts=True)
        else:
            sliced = _attempt_sql(_SLICE_KEY, False, _ROLLUP_CROSSING_IDS)
        conn.execute(
            f"INSERT INTO econ_slice SELECT w.t0, s.label, "
            "substr(s.k, 1, instr(s.k, char(31)) - 1), substr(s.k, instr(s.k, char(31)) + 1), "
            f"s.host, {cols} FROM ({sliced}) s JOIN econ_bucket w ON w.label = s.label",
            params,
        )
        if kwh is not None:
            conn.execute(
                f"INSERT INTO econ_slice SELECT day, label, user, project, host, {cols} "
                f"FROM ({_rollup_settled_sql(kwh)})",
                params,
            )
        for dim, (key, host) in _ROLLUP_DIMS.items():
            conn.execute(
                "INSERT OR REPLACE INTO econ_rollup (dim, day, label, key, host, alloc_cost, "
                "energy_kwh, energy_cost, gpu_hours, cpu_hours, overlaps, starts) "
                f"SELECT ?, day, label, {key}, {host}, SUM(alloc_cost), SUM(energy_kwh), "
                "SUM(energy_cost), SUM(gpu_hours), SUM(cpu_hours), SUM(attempts), SUM(starts) "
                f"FROM econ_slice GROUP BY day, {key}",
                (dim,),
            )
        # idle cost per host and day: its whole price less what attempts were charged
        conn.execute(
            "INSERT OR REPLACE INTO econ_rollup_idle (day, label, host, idle_cost) "
            "SELECT w.t0, t.label, t.host, MAX(0.0, COALESCE(t.total, 0.0) - COALESCE(u.alloc, 0.0)) "
            f"FROM ({_HOST_TOTAL_SQL}) t JOIN econ_bucket w ON w.label = t.label "
            "LEFT JOIN (SELECT label, host, SUM(alloc_cost) AS alloc FROM econ_slice "
            "GROUP BY label, host) u ON u.label = t.label AND u.host = t.host",
            params,
        )
        conn.executemany(
            "INSERT OR REPLACE INTO econ_rollup_days (day, day_end, label, built_at) "
            "VALUES (?, ?, ?, ?)",
            [(d[1], d[2], d[0], now) for d in days],
        )
        conn.execute("DROP TABLE temp.econ_slice")

    def rollup_sums(
        self: _Store, dim: str, starts: list[float], *, by_label: bool
    ) -> list[dict[str, Any]]:
        """The roll-up's sums of dimension `dim` over the days starting at `starts`, by key (or
        by day label) as `k`."""
        among = f"day IN ({', '.join('?' for _ in starts)})"
        group = "label" if by_label else "key"
        return self.query(
            f"SELECT {group} AS k, SUM(alloc_cost) AS alloc_cost, SUM(energy_kwh) AS energy_kwh, "
            "SUM(energy_cost) AS energy_cost, SUM(gpu_hours) AS gpu_hours, "
            "SUM(cpu_hours) AS cpu_hours, SUM(overlaps) AS overlaps, SUM(starts) AS starts "
            f"FROM econ_rollup WHERE dim = ? AND {among} GROUP BY {group}",
            (dim, *starts),
        )

    def rollup_idle(self: _Store, starts: list[float], by: str) -> list[dict[str, Any]]:
        """Idle cost of the days starting at `starts`, summed by `by` ("host" or "label")."""
        group = {"host": "host", "label": "label"}[by]
        among = f"day IN ({', '.join('?' for _ in starts)})"
        return self.query(
            f"SELECT {group} AS k, SUM(idle_cost) AS idle FROM econ_rollup_idle WHERE {among} "
            f"GROUP BY {group}",
            starts,
        )

    # -- the cost engine (`economics.slices`) --------------------------------------------------

    def reset_cost_buckets(self: _Store, buckets: Sequence[tuple[str, float, float]]) -> None:
        """Refill the TEMP table of report buckets alone (the price periods stay)."""
        conn = self.conn
        conn.execute("DELETE FROM econ_bucket")
        conn.executemany("INSERT INTO econ_bucket VALUES (?, ?, ?)", list(buckets))

    def open_cost_tables(self: _Store) -> None:
        """This connection's TEMP tables of price periods, report buckets and measured energy,
        made if missing and emptied."""
        conn = self.conn
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS econ_period (host TEXT, t0 REAL, t1 REAL, "
            "per_hour REAL, cpu_hour REAL, gpu_hour REAL, gb_hour REAL, power_kwh REAL, "
            "cap_cpus REAL, cap_mem REAL, cap_gpus REAL, cap_gmem REAL, added_at REAL, "
            "node_hour REAL)"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS temp.econ_period_host ON econ_period(host, t0)")
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS econ_bucket (label TEXT, t0 REAL, t1 REAL)")
        conn.execute("CREATE INDEX IF NOT EXISTS temp.econ_bucket_t0 ON econ_bucket(t0)")
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS econ_energy (attempt_id INTEGER PRIMARY KEY, wh REAL)"
        )
        conn.execute("DELETE FROM econ_period")
        conn.execute("DELETE FROM econ_bucket")
        conn.execute("DELETE FROM econ_energy")

    def cost_host_capacities(self: _Store) -> dict[str, dict[str, Any]]:
        """Every host's capacity and when it was added, by name."""
        return {
            r["name"]: r
            for r in self.query("SELECT name, cpus, mem_mb, gpus, gpu_mem_mb, added_at FROM hosts")
        }

    def load_cost_periods(
        self: _Store, rows: list[tuple[Any, ...]], buckets: Sequence[tuple[str, float, float]]
    ) -> None:
        """Fill the TEMP tables (after `open_cost_tables`): price periods, 14 values a row (host,
        t0, t1, prices, capacity, added_at, node-hour price), and report buckets (label, t0, t1)."""
        conn = self.conn
        # one statement for all the periods (not one per row: a fleet has hundreds)
        conn.execute(
            "INSERT INTO econ_period SELECT " + ", ".join(f"value ->> {i}" for i in range(14))
            + " FROM json_each(?)",
            (json.dumps(rows),),
        )  # fmt: skip
        conn.executemany("INSERT INTO econ_bucket VALUES (?, ?, ?)", list(buckets))

    def cost_snapshot_pragmas(self: _Store) -> None:
        """Reports read much of the attempts table: map it rather than read it page by page."""
        conn = self.conn
        conn.execute("PRAGMA mmap_size = 268435456")
        conn.execute("PRAGMA cache_size = -32768")
        conn.execute("PRAGMA temp_store = MEMORY")

    @contextmanager
    def cost_snapshot(self: _Store) -> Iterator[None]:
        """A deferred read transaction (no write lock on the ledger), unless one is open."""
        conn = self.conn
        EconRecords.cost_snapshot_pragmas(self)
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def attempt_host_names(self: _Store) -> set[str]:
        """Every host name attempts ran on (removed hosts too)."""
        return {
            r["host"]
            for r in self.query(
                # a loose index scan: one index seek per host, not one row per attempt
                "WITH RECURSIVE h(x) AS (SELECT MIN(host) FROM attempts UNION ALL "
                "SELECT (SELECT MIN(host) FROM attempts WHERE host > h.x) FROM h WHERE h.x IS NOT NULL) "
                "SELECT x AS host FROM h WHERE x IS NOT NULL"
            )
        }

    def first_attempt_created(self: _Store) -> float | None:
        """When the first attempt was created (None without one)."""
        first = self.query_one("SELECT created_at FROM attempts ORDER BY id LIMIT 1")
        if first is None or first["created_at"] is None:
            return None
        return float(first["created_at"])

    def uniform_power_price(self: _Store, since: float, until: float) -> float | None:
        """The electricity price when one price holds for every host over [since, until) in the
        loaded price periods, else None."""
        rows = self.query(
            "SELECT DISTINCT power_kwh FROM econ_period WHERE t0 < ? AND t1 > ?", (until, since)
        )
        return float(rows[0]["power_kwh"] or 0.0) if len(rows) == 1 else None

    def cost_slices(
        self: _Store, key: str, params: dict[str, Any], *, all_attempts: bool
    ) -> list[dict[str, Any]]:
        """Slices summed by the SQL expression `key`, bucket and host (`_attempt_sql`)."""
        return self.query(_attempt_sql(key, all_attempts=all_attempts), params)

    def settled_costs(
        self: _Store, key: str, kwh: float, narrow: bool, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Settled attempts wholly inside the window, summed from their stored cost by `key`."""
        return self.query(_settled_sql(key, kwh, narrow), params)

    def host_totals(self: _Store, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Each host's whole price per bucket (`_HOST_TOTAL_SQL`)."""
        return self.query(_HOST_TOTAL_SQL, params)
