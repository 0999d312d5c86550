"""The cost engine: attempts x price periods x report buckets, summed in SQL, and the daily roll-up.

See `lepton_tui.economics` for the cost rules. Price periods and report buckets go in TEMP tables
of the reading connection; settled attempts wholly inside a window are summed from their stored
cost, the others are sliced; whole settled past days are read from `econ_rollup`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from lepton_tui.economics_prices import (
    _FAR,
    GROUPINGS,
    _add_days,
    check_range,
    currency_spans,
    day_buckets,
    local_tz,
    price_segments,
)
from lepton_tui.errors import ValidationError
from lepton_tui.ledger import ECON_ROLLUP_TABLES, Ledger
from lepton_tui.ledger import _migrate_2 as _migrate_2  # re-exported (lepton_tui.economics)

# The daily roll-up: per whole past day whose attempts are all settled, spend per user, project and
# host (and idle cost per host), so a year's report reads ~100 rows a day instead of every attempt.
# A cache of what the attempts say: its rows can be deleted at any time and are rebuilt on use.
# Its tables and the cost-query indexes are ledger schema 2 (`lepton_tui.ledger._migrate_2`), so
# every opened ledger has them; nothing here creates schema.
ROLLUP_TABLES = ECON_ROLLUP_TABLES


def ensure_indexes(ledger: Ledger) -> None:
    """Kept for callers of the lazy schema: the indexes and roll-up tables now come with the
    ledger's versioned migrations (schema 2), so opening a ledger has made them; nothing to do."""
    del ledger


# -- accounting ---------------------------------------------------------------------------------

# Per (attempt, price period, bucket) overlap in seconds, with the attempt's hourly allocation rate.
_RATE_SQL = """
    p.per_hour * (CASE
        WHEN COALESCE(p.cap_cpus, 0) <= 0 AND COALESCE(p.cap_mem, 0) <= 0
             AND COALESCE(p.cap_gpus, 0) <= 0 THEN 1.0
        ELSE MIN(1.0, MAX(0.0,
            CASE WHEN p.cap_cpus > 0 THEN a.cpus / p.cap_cpus ELSE 0 END,
            CASE WHEN p.cap_mem > 0 THEN a.mem_mb * 1.0 / p.cap_mem ELSE 0 END,
            CASE WHEN p.cap_gpus > 0 THEN ({geq}) / p.cap_gpus ELSE 0 END))
        END)
    + p.cpu_hour * a.cpus + p.gpu_hour * ({geq}) + p.gb_hour * a.mem_mb / 1024.0
"""
_GEQ_SQL = (
    "CASE WHEN a.gpus > 0 THEN a.gpus * 1.0 "
    "WHEN a.gpu_mem_mb > 0 AND p.cap_gpus > 0 AND p.cap_gmem > 0 "
    "THEN MIN(1.0, a.gpu_mem_mb * p.cap_gpus * 1.0 / p.cap_gmem) ELSE 0.0 END"
)
_RATE = _RATE_SQL.format(geq=_GEQ_SQL)

_GROUP_KEYS = {
    "user": "j.user",
    "project": "j.project",
    "host": "a.host",
    "job": "a.job_id",
    "day": "w.label",
    "total": "'total'",
    "attempt": "a.id",
}


def host_capacity(ledger: Ledger, name: str) -> dict[str, Any]:
    """A host's capacity (cpus, mem_mb, gpus, gpu_mem_mb): from its row, or for a removed host
    from the event that recorded its removal; {} when neither is known."""
    row = ledger.query_one(
        "SELECT cpus, mem_mb, gpus, gpu_mem_mb FROM hosts WHERE name = ?", (name,)
    )
    if row is not None:
        return row
    ev = ledger.query_one(
        "SELECT data FROM events WHERE kind = 'host.removed' AND host = ? AND data IS NOT NULL "
        "ORDER BY id DESC LIMIT 1",
        (name,),
    )
    return json.loads(ev["data"]) if ev else {}


def _memo(ledger: Ledger, now: float) -> dict[str, Any] | None:
    """What reports at `now` inside `energy_memo` share (None outside one)."""
    held = getattr(ledger, "_energy_memo", None)
    if held is not None and held[0] == now and held[2] is ledger.conn:
        return held[1]
    return None


def _load_temp_tables(
    ledger: Ledger,
    hosts: Sequence[str],
    buckets: Sequence[tuple[str, float, float]],
    memo: dict[str, Any] | None = None,
) -> None:
    """(Re)fill this connection's TEMP tables of price periods and report buckets. Inside
    `energy_memo` the price periods (and measured energy) are loaded once for all its reports."""
    conn = ledger.conn
    if memo is not None and memo.get("periods"):
        conn.execute("DELETE FROM econ_bucket")
        conn.executemany("INSERT INTO econ_bucket VALUES (?, ?, ?)", list(buckets))
        return
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS econ_period (host TEXT, t0 REAL, t1 REAL, "
        "per_hour REAL, cpu_hour REAL, gpu_hour REAL, gb_hour REAL, power_kwh REAL, "
        "cap_cpus REAL, cap_mem REAL, cap_gpus REAL, cap_gmem REAL, added_at REAL)"
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
    caps = {
        r["name"]: r
        for r in ledger.query("SELECT name, cpus, mem_mb, gpus, gpu_mem_mb, added_at FROM hosts")
    }
    rows = []
    for seg in price_segments(ledger, hosts):
        cap = caps.get(seg.host)
        if cap is None:  # a removed host: its recorded capacity (and no idle time)
            cap = caps[seg.host] = host_capacity(ledger, seg.host)
        p = seg.prices
        rows.append(
            (seg.host, seg.start, seg.end, p.per_hour, p.cpu_hour, p.gpu_hour, p.gb_hour,
             p.power_kwh, cap.get("cpus"), cap.get("mem_mb"), cap.get("gpus"),
             cap.get("gpu_mem_mb"), cap.get("added_at"))
        )  # fmt: skip
    # one statement for all the periods (not one per row: a fleet has hundreds)
    conn.execute(
        "INSERT INTO econ_period SELECT " + ", ".join(f"value ->> {i}" for i in range(13))
        + " FROM json_each(?)",
        (json.dumps(rows),),
    )  # fmt: skip
    conn.executemany("INSERT INTO econ_bucket VALUES (?, ?, ?)", list(buckets))
    if memo is not None:  # loaded for every report of the memo; the energy table was emptied
        memo["periods"], memo["energy_loaded"] = True, False


def _snapshot_pragmas(conn: Any) -> None:
    """Reports read much of the attempts table: map it rather than read it page by page."""
    conn.execute("PRAGMA mmap_size = 268435456")
    conn.execute("PRAGMA cache_size = -32768")
    conn.execute("PRAGMA temp_store = MEMORY")


@contextmanager
def _snapshot(ledger: Ledger) -> Iterator[None]:
    """A deferred read transaction (no write lock on the ledger), unless one is already open."""
    conn = ledger.conn
    _snapshot_pragmas(conn)
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def _hosts_in_play(ledger: Ledger, memo: dict[str, Any] | None = None) -> list[str]:
    """Every host, and every host name attempts ran on (removed ones too)."""
    if memo is not None and "hosts" in memo:
        return list(memo["hosts"])
    names = {r["name"] for r in ledger.query("SELECT name FROM hosts")}
    names |= {
        r["host"]
        for r in ledger.query(
            # a loose index scan: one index seek per host, not one row per attempt
            "WITH RECURSIVE h(x) AS (SELECT MIN(host) FROM attempts UNION ALL "
            "SELECT (SELECT MIN(host) FROM attempts WHERE host > h.x) FROM h WHERE h.x IS NOT NULL) "
            "SELECT x AS host FROM h WHERE x IS NOT NULL"
        )
    }
    if memo is not None:
        memo["hosts"] = sorted(names)
    return sorted(names)


_UNMEASURED_SQL = (
    "SELECT * FROM attempts INDEXED BY idx_attempts_unmeasured "
    "WHERE energy_wh IS NULL AND (gpus > 0 OR gpu_mem_mb > 0)"
)


def _unsettled_energy(
    ledger: Ledger, since: float, until: float, now: float, memo: dict[str, Any] | None = None
) -> None:
    """Measure, for the report, the energy of GPU attempts that have no stored energy yet.

    Inside `energy_memo` (several reports at one `now`) they are read and measured once, for
    every window: the TEMP table then holds them all, and each report's SQL keeps its own."""
    if memo is not None and memo.get("energy_loaded"):
        return
    if memo is not None and "energy" in memo:
        energy = memo["energy"]
    else:
        if memo is not None:
            rows = ledger.query(_UNMEASURED_SQL)
        else:
            rows = ledger.query(
                _UNMEASURED_SQL + " AND COALESCE(started_at, created_at) < ? "
                "AND (ended_at IS NULL OR ended_at > ?)",
                (until, since),
            )
        energy = measure_energy_many(ledger, rows, now) if rows else {}
    if memo is not None:
        memo["energy"], memo["energy_loaded"] = energy, True
    if energy:
        ledger.conn.execute(
            "INSERT INTO econ_energy SELECT value ->> 0, value ->> 1 FROM json_each(?)",
            (json.dumps(list(energy.items())),),
        )


@contextmanager
def energy_memo(ledger: Ledger, now: float) -> Iterator[None]:
    """While open, reports at `now` share the energy they measure for running attempts (the
    console's cost panel asks for several at one instant)."""
    ledger._energy_memo = (now, {}, ledger.conn)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        ledger._energy_memo = None  # type: ignore[attr-defined]


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


def gpu_share(attempt: dict[str, Any], cap: dict[str, Any]) -> float:
    """The share of each GPU an attempt holds: 1 for whole GPUs, else its GPU memory over one
    GPU's memory on a host of capacity `cap` (1 when that is unknown)."""
    if attempt.get("gpus"):
        return 1.0
    gpus, gmem = float(cap.get("gpus") or 0), float(cap.get("gpu_mem_mb") or 0)
    per = gmem / gpus if gpus and gmem else 0.0
    return min(1.0, float(attempt.get("gpu_mem_mb") or 0) / per) if per else 1.0


def measure_energy_many(
    ledger: Ledger, attempts: list[dict[str, Any]], now: float
) -> dict[int, float]:
    """`measure_energy_wh` of many attempts at once (a fixed number of statements): {id: Wh}."""
    out = {int(a["id"]): 0.0 for a in attempts}
    if not attempts:
        return out
    caps = {r["name"]: r for r in ledger.query("SELECT name, gpus, gpu_mem_mb FROM hosts")}
    means: dict[int, list[float]] = {}
    for r in ledger.query(
        _MEAN_POWER_SQL, {"now": now, "ids": json.dumps([int(a["id"]) for a in attempts])}
    ):
        if r["mean_w"] is not None:
            means.setdefault(int(r["id"]), []).append(float(r["mean_w"]))
    for a in attempts:
        start = a.get("started_at") or a.get("created_at")
        end = a.get("ended_at") or now
        if start is None or end <= start or int(a["id"]) not in means:
            continue
        share = gpu_share(a, caps.get(a["host"]) or host_capacity(ledger, a["host"]))
        out[int(a["id"])] = sum(w * (end - start) / 3600.0 * share for w in means[int(a["id"])])
    return out


# Attempts that need slicing: unsettled ones (still running, or never settled), and settled ones
# that cross the report's start or end. Each part is read through an index, so a long settled
# history is never sliced row by row.
_SLICE_IDS = """
    SELECT id FROM attempts INDEXED BY idx_attempts_unsettled WHERE cost IS NULL
    UNION
    SELECT id FROM attempts INDEXED BY idx_attempts_ended_started
      WHERE ended_at > :since AND COALESCE(started_at, created_at) < :since
    UNION
    SELECT id FROM attempts INDEXED BY idx_attempts_ended_started
      WHERE ended_at > :until AND COALESCE(started_at, created_at) < :until
"""


def _attempt_sql(key: str, all_attempts: bool, ids_sql: str | None = None) -> str:
    """Per (attempt, price period, bucket) slices summed by key, bucket and host.

    `ov` is the slice's overlap in seconds; `first` marks the one slice of each (attempt, bucket)
    that holds the attempt's start in that bucket, so attempts are counted once per bucket, and
    `lead` the one slice of the whole report that holds its start, so the total counts it once.
    With `all_attempts` every attempt of the window is sliced (the `day` report); otherwise only
    those of `ids_sql` (default `_SLICE_IDS`; the others are summed from their stored cost by
    `_settled_sql`).
    """
    if all_attempts:
        source = "attempts a NOT INDEXED"
    else:
        source = f"({ids_sql or _SLICE_IDS}) ids CROSS JOIN attempts a ON a.id = ids.id"
    return f"""
    WITH b AS (
      SELECT a.id AS id, a.host AS host, a.cpus AS cpus, a.mem_mb AS mem_mb, a.gpus AS gpus,
             a.gpu_mem_mb AS gpu_mem_mb, a.job_id AS job_id, j.user AS user, j.project AS project,
             COALESCE(a.started_at, a.created_at) AS s0,
             MIN(COALESCE(a.ended_at, :now), :now) AS s1,
             COALESCE(a.energy_wh, e.wh, 0.0) AS wh
      FROM {source}
      CROSS JOIN jobs j ON j.id = a.job_id
      LEFT JOIN econ_energy e ON e.attempt_id = a.id
      WHERE (a.ended_at > :since OR a.ended_at IS NULL)
        AND COALESCE(a.started_at, a.created_at) < :until
        AND MIN(COALESCE(a.ended_at, :now), :now) > COALESCE(a.started_at, a.created_at)
    ),
    sl AS (
      SELECT {key.replace("j.", "a.")} AS k, w.label AS label,
             a.host AS host, a.s0 AS s0, a.s1 AS s1, a.wh AS wh, a.cpus AS cpus,
             MAX(0.0, MIN(a.s1, p.t1, w.t1) - MAX(a.s0, p.t0, w.t0)) AS ov,
             ({_RATE}) AS rate,
             ({_GEQ_SQL}) AS geq,
             p.power_kwh AS kwh,
             (p.t0 <= MAX(a.s0, w.t0) AND MAX(a.s0, w.t0) < p.t1) AS first,
             (p.t0 <= MAX(a.s0, w.t0) AND MAX(a.s0, w.t0) < p.t1 AND a.s0 >= w.t0) AS starts,
             (p.t0 <= MAX(a.s0, :since) AND MAX(a.s0, :since) < p.t1
              AND w.t0 <= MAX(a.s0, :since) AND MAX(a.s0, :since) < w.t1
              AND a.s0 >= :count_from) AS lead
      FROM b a
      CROSS JOIN econ_bucket w ON w.t0 < a.s1 AND w.t1 > a.s0 AND w.t0 >= a.s0 - :maxb
      CROSS JOIN econ_period p ON p.host = a.host AND p.t0 < MIN(a.s1, w.t1)
                              AND p.t1 > MAX(a.s0, w.t0)
    )
    SELECT k, label, host,
           SUM(ov * rate) / 3600.0 AS alloc_cost,
           SUM(wh * ov / (s1 - s0)) / 1000.0 AS energy_kwh,
           SUM(wh * ov / (s1 - s0) * kwh) / 1000.0 AS energy_cost,
           SUM(ov * geq) / 3600.0 AS gpu_hours,
           SUM(ov * cpus) / 3600.0 AS cpu_hours,
           SUM(first) AS attempts,
           SUM(starts) AS starts,
           SUM(lead) AS lead
    FROM sl GROUP BY k, label, host
    """


def _settled_sql(key: str, kwh: float, narrow: bool = False) -> str:
    """Settled attempts wholly inside the report window, summed from their stored cost.

    Their energy cost (split from the allocation cost for idle cost) is their energy x `kwh`, the
    one electricity price in force everywhere over the window.
    """
    source = (
        "attempts a INDEXED BY idx_attempts_ended_started" if narrow else "attempts a NOT INDEXED"
    )
    return f"""
    SELECT {key} AS k, 'all' AS label, a.host AS host, {_settled_sums(kwh)}
    FROM {source}
    CROSS JOIN jobs j ON j.id = a.job_id
    WHERE a.cost IS NOT NULL AND a.ended_at <= :until AND a.ended_at > :since
      AND COALESCE(a.started_at, a.created_at) >= :since
      AND a.ended_at > COALESCE(a.started_at, a.created_at)
    GROUP BY k, a.host
    """


def _settled_sums(kwh: float, *, per_attempt: bool = False) -> str:
    """The sums of a report row over settled attempts, from their stored cost and energy (with
    `per_attempt`, each attempt's own values: a row per attempt, no GROUP BY)."""
    price = f"{float(kwh)!r}"
    geq = (
        "CASE WHEN a.gpus > 0 THEN a.gpus * 1.0 WHEN a.gpu_mem_mb > 0 "
        "THEN COALESCE((SELECT MIN(1.0, a.gpu_mem_mb * h.gpus * 1.0 / h.gpu_mem_mb) FROM hosts h "
        "WHERE h.name = a.host AND h.gpus > 0 AND h.gpu_mem_mb > 0), 0.0) ELSE 0.0 END"
    )
    dur = "(a.ended_at - COALESCE(a.started_at, a.created_at))"
    total, count = ("", "1") if per_attempt else ("SUM", "COUNT(*)")
    return f"""
           {total}(a.cost - COALESCE(a.energy_wh, 0.0) * {price} / 1000.0) AS alloc_cost,
           {total}(COALESCE(a.energy_wh, 0.0)) / 1000.0 AS energy_kwh,
           {total}(COALESCE(a.energy_wh, 0.0) * {price}) / 1000.0 AS energy_cost,
           {total}(({geq}) * {dur}) / 3600.0 AS gpu_hours,
           {total}(a.cpus * {dur}) / 3600.0 AS cpu_hours,
           {count} AS attempts,
           {count} AS starts,
           {count} AS lead
    """


# The roll-up of a chunk of days: settled attempts that start and end inside one day are summed
# from their stored cost (most of a lab's attempts: the price-period slicing is the costly part);
# only those that cross a day's edge (or have no stored cost) are sliced.
_ROLLUP_CROSSING_IDS = """
    SELECT id FROM attempts INDEXED BY idx_attempts_unsettled WHERE cost IS NULL
    UNION
    SELECT a.id FROM attempts a INDEXED BY idx_attempts_ended_started
    WHERE a.ended_at > :since AND COALESCE(a.started_at, a.created_at) < :until
      AND NOT EXISTS (
        SELECT 1 FROM econ_bucket w
        WHERE w.t0 <= COALESCE(a.started_at, a.created_at)
          AND w.t0 > COALESCE(a.started_at, a.created_at) - :maxb
          AND a.ended_at <= w.t1)
"""  # index-only: the unsettled ones come from the first part, by their own index


def _rollup_settled_sql(kwh: float) -> str:
    """Settled attempts that start and end inside one bucket, a row each (the roll-up's GROUP BY
    sums them per dimension: grouping here first would only sort them once more)."""
    return f"""
    SELECT w.t0 AS day, w.label AS label, j.user AS user, j.project AS project, a.host AS host,
           {_settled_sums(kwh, per_attempt=True)}
    FROM attempts a INDEXED BY idx_attempts_ended_started
    CROSS JOIN econ_bucket w ON w.t0 <= COALESCE(a.started_at, a.created_at)
                            AND w.t0 > COALESCE(a.started_at, a.created_at) - :maxb
                            AND a.ended_at <= w.t1
    CROSS JOIN jobs j ON j.id = a.job_id
    WHERE a.cost IS NOT NULL AND a.ended_at > :since AND a.ended_at <= :until
      AND COALESCE(a.started_at, a.created_at) >= :since
      AND a.ended_at > COALESCE(a.started_at, a.created_at)
    """


def _is_narrow(ledger: Ledger, since: float, until: float) -> bool:
    """True when [since, until) is a small part of the ledger's history: read it by index."""
    first = ledger.query_one("SELECT created_at FROM attempts ORDER BY id LIMIT 1")
    if first is None or first["created_at"] is None:
        return True
    return (until - since) * 8 < max(1.0, until - float(first["created_at"]))


def _uniform_kwh(ledger: Ledger, since: float, until: float) -> float | None:
    """The electricity price when one price holds for every host over [since, until), else None."""
    rows = ledger.query(
        "SELECT DISTINCT power_kwh FROM econ_period WHERE t0 < ? AND t1 > ?", (until, since)
    )
    return float(rows[0]["power_kwh"] or 0.0) if len(rows) == 1 else None


_HOST_TOTAL_SQL = """
    SELECT p.host AS host, w.label AS label,
           SUM(MAX(0.0, MIN(p.t1, w.t1, :now) - MAX(p.t0, w.t0, COALESCE(p.added_at, w.t0)))
               * (p.per_hour + p.cpu_hour * COALESCE(p.cap_cpus, 0)
                  + p.gpu_hour * COALESCE(p.cap_gpus, 0)
                  + p.gb_hour * COALESCE(p.cap_mem, 0) / 1024.0)) / 3600.0 AS total
    FROM econ_period p JOIN econ_bucket w ON p.t0 < w.t1 AND p.t1 > w.t0
    WHERE p.added_at IS NOT NULL
    GROUP BY p.host, w.label
"""


@dataclass
class CostRow:
    """One line of a cost report."""

    key: str
    cost: float = 0.0
    alloc_cost: float = 0.0
    energy_cost: float = 0.0
    energy_kwh: float = 0.0
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0
    attempts: int = 0
    idle_cost: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "cost": round(self.cost, 6),
            "alloc_cost": round(self.alloc_cost, 6),
            "energy_cost": round(self.energy_cost, 6),
            "energy_kwh": round(self.energy_kwh, 6),
            "gpu_hours": round(self.gpu_hours, 6),
            "cpu_hours": round(self.cpu_hours, 6),
            "attempts": self.attempts,
            "idle_cost": round(self.idle_cost, 6),
        }


@dataclass
class CostReport:
    """A cost report over [since, until): rows by the chosen key, totals and idle cost."""

    by: str
    since: float
    until: float
    currency: str
    rows: list[CostRow]
    total: CostRow
    idle_cost: float
    idle_by_host: dict[str, float] = field(default_factory=dict)
    # what was charged in other currencies in this window (the lab changed its currency)
    other_currencies: list[CostReport] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = self._own_dict()
        out["other_currencies"] = [r._own_dict() for r in self.other_currencies]
        return out

    def _own_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "since": self.since,
            "until": self.until,
            "currency": self.currency,
            "rows": [r.as_dict() for r in self.rows],
            "total": self.total.as_dict(),
            "idle_cost": round(self.idle_cost, 6),
            "idle_by_host": {k: round(v, 6) for k, v in sorted(self.idle_by_host.items())},
        }


def _live_rows(
    ledger: Ledger,
    by: str,
    since: float,
    until: float,
    now: float,
    buckets: Sequence[tuple[str, float, float]],
    count_from: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Slices summed by (key, bucket label, host), and each host's whole price per bucket.

    Inside `energy_memo`, a one-bucket window is sliced once by (user and project, host) and
    each report of the memo (by user, project, host, day or in total) regroups those rows."""
    buckets = [b for b in buckets if b[2] > b[1]]
    if not buckets or until <= since:
        return [], []
    memo = _memo(ledger, now)
    if memo is None or len(buckets) != 1 or by not in _REGROUP:
        return _live_rows_sql(ledger, _GROUP_KEYS[by], since, until, now, buckets, count_from)
    (label, b0, b1), = buckets  # fmt: skip
    cache = memo.setdefault("slices", {})
    found = cache.get((since, until, b0, b1, count_from))
    if found is None:
        found = _live_rows_sql(ledger, _SLICE_KEY, since, until, now, [("", b0, b1)], count_from)
        cache[(since, until, b0, b1, count_from)] = found
    regroup = _REGROUP[by]
    rows = [{**r, "k": regroup(r, label), "label": label} for r in found[0]]
    return rows, [{**t, "label": label} for t in found[1]]


# How a report regroups rows sliced by `_SLICE_KEY` (user and project) and host.
_REGROUP: dict[str, Any] = {
    "user": lambda r, label: r["k"].split("\x1f", 1)[0],
    "project": lambda r, label: r["k"].split("\x1f", 1)[1],
    "host": lambda r, label: r["host"],
    "day": lambda r, label: label,
    "total": lambda r, label: "total",
}


def _live_rows_sql(
    ledger: Ledger,
    key: str,
    since: float,
    until: float,
    now: float,
    buckets: Sequence[tuple[str, float, float]],
    count_from: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`_live_rows` grouped by the SQL expression `key`."""
    max_len = max(b[2] - b[1] for b in buckets)
    params = {"since": since, "until": until, "now": now, "maxb": max_len + 1.0,
              "count_from": count_from}  # fmt: skip
    memo = _memo(ledger, now)
    with _snapshot(ledger):  # one consistent read; the temp tables are this connection's
        _load_temp_tables(ledger, _hosts_in_play(ledger, memo), buckets, memo)
        _unsettled_energy(ledger, since, until, now, memo)
        # Settled attempts inside the window are summed from their stored cost, unless the
        # report is split into buckets or the electricity price changed in the window (their
        # energy cost, needed apart for idle cost, would then depend on the slicing).
        kwh = _uniform_kwh(ledger, since, until) if len(buckets) == 1 else None
        if kwh is not None:
            rows = ledger.query(_attempt_sql(key, all_attempts=False), params)
            labelled = {**params, "label": buckets[0][0]}
            narrow = _is_narrow(ledger, since, until)
            settled = _settled_sql(key.replace("w.label", ":label"), kwh, narrow)
            for r in ledger.query(settled, labelled):
                rows.append({**r, "label": buckets[0][0]})
        else:
            rows = ledger.query(_attempt_sql(key, all_attempts=True), params)
        hosts_total = ledger.query(_HOST_TOTAL_SQL, params)
    return rows, hosts_total


def cost_report(
    ledger: Ledger,
    since: float,
    until: float,
    by: str = "total",
    *,
    now: float | None = None,
    tz: tzinfo | None = None,
    buckets: Sequence[tuple[str, float, float]] | None = None,
    rollup: bool = True,
) -> CostReport:
    """Cost of every attempt over [since, until), rolled up `by` user, project, host, job or day.

    Running attempts count up to `now` (default the ledger clock). Idle cost (capacity not
    allocated x price x time) is reported per host, per day with `by="day"`, and in total.
    Whole past days whose attempts are all settled are read from the daily roll-up
    (`econ_rollup`, built on first use; `rollup=False` computes everything from the attempts).

    Money stays in the currency it was charged in: when the lab currency changed within the
    window, the report is that of the latest currency's time, and `other_currencies` holds one
    report per earlier currency (never summed with it).
    """
    if by not in GROUPINGS and by != "attempt":
        raise ValidationError(f"cannot group costs by {by!r}", f"use one of {', '.join(GROUPINGS)}")
    check_range(since, until)
    now = ledger.clock() if now is None else now
    spans = currency_spans(ledger, since, min(until, now)) if since < now else []
    if len(spans) <= 1:
        currency = spans[0][2] if spans else currency_spans(ledger, now, now + 1)[0][2]
        return _one_currency_report(ledger, since, until, by, now, tz, buckets, rollup, currency)
    per_currency: dict[str, list[CostReport]] = {}
    for i, (t0, t1, currency) in enumerate(spans):
        t1 = until if i == len(spans) - 1 else t1
        part_buckets = None
        if buckets is not None:
            part_buckets = [(lb, max(a, t0), min(b, t1)) for lb, a, b in buckets]
            part_buckets = [b for b in part_buckets if b[2] > b[1]] or [("all", t0, t0)]
        part = _one_currency_report(ledger, t0, t1, by, now, tz, part_buckets, rollup, currency)
        per_currency.setdefault(currency, []).append(part)
    latest = spans[-1][2]
    main = _merge_reports(per_currency.pop(latest), since, until)
    main.other_currencies = [_merge_reports(p, since, until) for p in per_currency.values()]
    return main


def _merge_reports(parts: list[CostReport], since: float, until: float) -> CostReport:
    """Reports of one currency over pieces of a window, as one (rows and totals summed)."""
    if len(parts) == 1:
        part = parts[0]
        part.since, part.until = since, until
        return part
    rows: dict[str, CostRow] = {}
    total = CostRow("total")
    idle_by_host: dict[str, float] = {}
    for part in parts:
        for r in [*part.rows, part.total]:
            into = total if r is part.total else rows.setdefault(r.key, CostRow(r.key))
            for f in ("cost", "alloc_cost", "energy_cost", "energy_kwh", "gpu_hours",
                      "cpu_hours", "attempts", "idle_cost"):  # fmt: skip
                setattr(into, f, getattr(into, f) + getattr(r, f))
        for host, idle in part.idle_by_host.items():
            idle_by_host[host] = idle_by_host.get(host, 0.0) + idle
    ordered = sorted(rows.values(), key=lambda r: (-r.cost, r.key))
    first = parts[0]
    return CostReport(first.by, since, until, first.currency, ordered, total, total.idle_cost,
                      idle_by_host)  # fmt: skip


def _one_currency_report(
    ledger: Ledger,
    since: float,
    until: float,
    by: str,
    now: float,
    tz: tzinfo | None,
    buckets: Sequence[tuple[str, float, float]] | None,
    rollup: bool,
    currency: str,
) -> CostReport:
    until_eff = min(until, now)
    acc = _Acc(by)
    if buckets is not None or by in ("job", "attempt") or not rollup:
        if buckets is None:
            buckets = (
                day_buckets(since, until_eff, tz) if by == "day" else [("all", since, until_eff)]
            )
        rows, totals = _live_rows(ledger, by, since, until_eff, now, buckets, -_FAR)
        acc.add_live(rows, totals)
    else:
        if ledger.query_one(
            "SELECT 1 AS x FROM attempts INDEXED BY idx_attempts_unsettled "
            "WHERE cost IS NULL AND ended_at IS NOT NULL LIMIT 1"
        ):
            settle_ended(ledger, now)  # ended attempts nobody settled would hold the roll-up back
        days = _final_days(ledger, since, until_eff, now, tz)
        pieces: list[tuple[float, float]] = []
        if days:
            _ensure_rollup(ledger, days, now)
            acc.add_rollup(ledger, days)
            pieces = [(since, days[0][1]), (days[-1][2], until_eff)]
        else:
            pieces = [(since, until_eff)]
        for i, (t0, t1) in enumerate(pieces):
            if t1 <= t0:
                continue
            bks = day_buckets(t0, t1, tz) if by == "day" else [("all", t0, t1)]
            rows, totals = _live_rows(ledger, by, t0, t1, now, bks, -_FAR if i == 0 else t0)
            acc.add_live(rows, totals)
    return acc.report(since, until, currency)


class _Acc:
    """Adds report parts (live slices, roll-up days) into rows, totals and idle cost."""

    def __init__(self, by: str) -> None:
        self.by = by
        self.out: dict[str, CostRow] = {}
        self.total = CostRow("total")
        self.idle_by_host: dict[str, float] = {}
        self.idle_by_label: dict[str, float] = {}

    def _add(self, key: str, r: dict[str, Any], attempts: int, lead: int) -> None:
        row = self.out.setdefault(key, CostRow(key))
        for target in (row, self.total):
            target.alloc_cost += r["alloc_cost"] or 0.0
            target.energy_cost += r["energy_cost"] or 0.0
            target.energy_kwh += r["energy_kwh"] or 0.0
            target.gpu_hours += r["gpu_hours"] or 0.0
            target.cpu_hours += r["cpu_hours"] or 0.0
        row.attempts += attempts
        self.total.attempts += lead

    def _idle(self, host: str, label: str, idle: float) -> None:
        self.idle_by_host[host] = self.idle_by_host.get(host, 0.0) + idle
        self.idle_by_label[label] = self.idle_by_label.get(label, 0.0) + idle

    def add_live(self, rows: list[dict[str, Any]], totals: list[dict[str, Any]]) -> None:
        alloc: dict[tuple[str, str], float] = {}
        for r in rows:
            per_row = r["attempts"] if self.by == "day" else r["lead"]
            self._add(str(r["k"]), r, int(per_row or 0), int(r["lead"] or 0))
            hl = (r["host"], r["label"])
            alloc[hl] = alloc.get(hl, 0.0) + (r["alloc_cost"] or 0.0)
        for h in totals:
            idle = max(0.0, (h["total"] or 0.0) - alloc.get((h["host"], h["label"]), 0.0))
            self._idle(h["host"], h["label"], idle)

    def add_rollup(self, ledger: Ledger, days: list[tuple[str, float, float]]) -> None:
        dim = "host" if self.by in ("host", "day", "total") else self.by
        # the exact day starts of this time zone: another zone's days (its own roll-up rows,
        # starting at other hours) lie inside any range of starts and must not be summed in
        starts = [d[1] for d in days]
        among = f"day IN ({', '.join('?' for _ in starts)})"
        group = "label" if self.by == "day" else "key"
        for r in ledger.query(
            f"SELECT {group} AS k, SUM(alloc_cost) AS alloc_cost, SUM(energy_kwh) AS energy_kwh, "
            "SUM(energy_cost) AS energy_cost, SUM(gpu_hours) AS gpu_hours, "
            "SUM(cpu_hours) AS cpu_hours, SUM(overlaps) AS overlaps, SUM(starts) AS starts "
            f"FROM econ_rollup WHERE dim = ? AND {among} GROUP BY {group}",
            (dim, *starts),
        ):
            key = "total" if self.by == "total" else str(r["k"])
            per_row = r["overlaps"] if self.by == "day" else r["starts"]
            self._add(key, r, int(per_row or 0), int(r["starts"] or 0))
        # idle cost summed in SQL: per host, and per day for the day report
        for r in ledger.query(
            f"SELECT host, SUM(idle_cost) AS idle FROM econ_rollup_idle WHERE {among} GROUP BY host",
            starts,
        ):
            self.idle_by_host[r["host"]] = self.idle_by_host.get(r["host"], 0.0) + (r["idle"] or 0)
        if self.by == "day":
            for r in ledger.query(
                f"SELECT label, SUM(idle_cost) AS idle FROM econ_rollup_idle WHERE {among} "
                "GROUP BY label",
                starts,
            ):
                self.idle_by_label[r["label"]] = r["idle"] or 0.0

    def report(self, since: float, until: float, currency: str) -> CostReport:
        by, out, total = self.by, self.out, self.total
        for row in [*out.values(), total]:
            row.cost = row.alloc_cost + row.energy_cost
        if by == "host":
            for host, idle in self.idle_by_host.items():
                out.setdefault(host, CostRow(host)).idle_cost = idle
        elif by == "day":
            for label, idle in self.idle_by_label.items():
                out.setdefault(label, CostRow(label)).idle_cost = idle
        total.idle_cost = sum(self.idle_by_host.values())
        if by == "job" or by == "attempt":
            ordered = sorted(out.values(), key=lambda r: int(r.key))
        elif by == "day":
            ordered = sorted(out.values(), key=lambda r: r.key)
        else:
            ordered = sorted(out.values(), key=lambda r: (-r.cost, r.key))
        return CostReport(by, since, until, currency, ordered, total, total.idle_cost,
                          dict(self.idle_by_host))  # fmt: skip


# -- the daily roll-up --------------------------------------------------------------------------


def _final_days(
    ledger: Ledger, since: float, until: float, now: float, tz: tzinfo | None
) -> list[tuple[str, float, float]]:
    """Whole days inside [since, until) that can no longer change: every attempt that overlaps
    them is settled (ended, with its cost stored). Contiguous, oldest first."""
    row = ledger.query_one(
        "SELECT MIN(COALESCE(started_at, created_at)) AS t FROM attempts "
        "INDEXED BY idx_attempts_unsettled WHERE cost IS NULL"
    )
    horizon = min(now, until)
    if row and row["t"] is not None:
        horizon = min(horizon, float(row["t"]))
    if horizon <= since:
        return []
    tz = tz or local_tz()  # once, not once per day
    days = day_buckets(since, horizon, tz)
    return [d for d in days if _is_whole(d, tz) and d[2] <= horizon]


def _is_whole(day: tuple[str, float, float], tz: tzinfo | None) -> bool:
    start = datetime.fromtimestamp(day[1], tz or local_tz())
    return (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0) and (
        _add_days(start, 1).timestamp() == day[2]
    )


ROLLUP_CHUNK_DAYS = 32
"""Days the roll-up builds per statement: memory stays bounded (a month of slices at a time)."""

# The finest grain a roll-up chunk needs, one row per (bucket, user, project, host) slice: every
# dimension of the roll-up is a GROUP BY of it. Its rows live in a TEMP table of this connection.
_SLICE_KEY = "j.user || char(31) || j.project"
_SLICE_COLUMNS = "alloc_cost, energy_kwh, energy_cost, gpu_hours, cpu_hours, attempts, starts"
_ROLLUP_DIMS = {"user": ("user", "''"), "project": ("project", "''"), "host": ("host", "host")}


def _ensure_rollup(ledger: Ledger, days: list[tuple[str, float, float]], now: float) -> None:
    """Build the roll-up rows of the days that have none yet (user, project and host, per day).

    A chunk of days at a time, each sliced once into a TEMP table at the finest grain (day, user,
    project, host) and summed from there into every dimension by SQL: no slice ever reaches
    Python, and memory is bounded by a chunk whatever the history's length."""
    have = {
        r["day"]
        for r in ledger.query(
            "SELECT day FROM econ_rollup_days WHERE day >= ? AND day <= ?",
            (days[0][1], days[-1][1]),
        )
    }
    missing = [d for d in days if d[1] not in have]
    for i in range(0, len(missing), ROLLUP_CHUNK_DAYS):
        _rollup_chunk(ledger, missing[i : i + ROLLUP_CHUNK_DAYS], now)


def _rollup_chunk(ledger: Ledger, days: list[tuple[str, float, float]], now: float) -> None:
    """The roll-up rows of `days` (contiguous or not), written in one transaction."""
    t0, t1 = days[0][1], days[-1][2]
    params = {"since": t0, "until": t1, "now": now, "count_from": -_FAR,
              "maxb": max(d[2] - d[1] for d in days) + 1.0}  # fmt: skip
    conn = ledger.conn
    with ledger.tx():  # a write transaction is also the one consistent read the slices need
        _snapshot_pragmas(conn)
        _load_temp_tables(ledger, _hosts_in_play(ledger), days)
        _unsettled_energy(ledger, t0, t1, now)
        conn.execute("DROP TABLE IF EXISTS temp.econ_slice")
        conn.execute(
            "CREATE TEMP TABLE econ_slice (day REAL, label TEXT, user TEXT, project TEXT, "
            f"host TEXT, {_SLICE_COLUMNS})"
        )
        kwh = _uniform_kwh(ledger, t0, t1)
        if kwh is None:  # the electricity price changed: every attempt is sliced
            sliced = _attempt_sql(_SLICE_KEY, all_attempts=True)
        else:
            sliced = _attempt_sql(_SLICE_KEY, False, _ROLLUP_CROSSING_IDS)
        conn.execute(
            f"INSERT INTO econ_slice SELECT w.t0, s.label, "
            "substr(s.k, 1, instr(s.k, char(31)) - 1), substr(s.k, instr(s.k, char(31)) + 1), "
            f"s.host, {_SLICE_COLUMNS} FROM ({sliced}) s JOIN econ_bucket w ON w.label = s.label",
            params,
        )
        if kwh is not None:
            conn.execute(
                f"INSERT INTO econ_slice SELECT day, label, user, project, host, {_SLICE_COLUMNS} "
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
    held = getattr(ledger, "_energy_memo", None)
    if held is not None:  # the TEMP tables now hold this chunk's: the next report reloads them
        held[1]["periods"] = False


def measure_energy_wh(ledger: Ledger, attempt: dict[str, Any], now: float | None = None) -> float:
    """Measured GPU energy of an attempt (a row of `attempts`): per GPU it held, mean sampled
    power x time x its share."""
    now = ledger.clock() if now is None else now
    return measure_energy_many(ledger, [attempt], now)[int(attempt["id"])]


def settle_ended(ledger: Ledger, now: float | None = None) -> int:
    """Store cost and energy on every ended attempt that has none yet, in bulk; return how many.

    For ledgers whose attempts ended before anything settled them (an old ledger, an end the
    dispatcher did not settle); `settle_attempt` does the same for one attempt. An attempt of no
    duration costs 0.
    """
    now = ledger.clock() if now is None else now
    ended = ledger.query(
        "SELECT id, COALESCE(started_at, created_at) AS s0 FROM attempts "
        "INDEXED BY idx_attempts_unsettled WHERE cost IS NULL AND ended_at IS NOT NULL"
    )
    if not ended:
        return 0
    first = min(float(r["s0"]) for r in ended)
    found: dict[int, CostRow] = {}
    if first < now:
        # every attempt, whatever the currency of its time (an attempt's cost has no label)
        report = _one_currency_report(ledger, first, now, "attempt", now, None, None, True, "")
        found = {int(row.key): row for row in report.rows}
    values = []
    for r in ended:
        row = found.get(r["id"])
        values.append((row.cost, row.energy_kwh * 1000.0, r["id"]) if row else (0.0, 0.0, r["id"]))
    with ledger.tx():
        ledger.conn.executemany(
            "UPDATE attempts SET cost = ?, energy_wh = COALESCE(energy_wh, ?) "
            "WHERE id = ? AND cost IS NULL",
            values,
        )
    return len(values)
