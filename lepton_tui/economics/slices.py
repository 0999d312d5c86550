"""The cost engine's SQL: attempts x price periods x report buckets, summed in SQLite.

Price periods and report buckets go in TEMP tables of the reading connection (`econ_period`,
`econ_bucket`); settled attempts wholly inside a window are summed from their stored cost, the
others are sliced (`_attempt_sql`). `_live_rows` runs one window's slices; the roll-up
(`rollup.py`) reuses the same SQL per day.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from lepton_tui.economics.energy import _memo, _unsettled_energy, host_capacity
from lepton_tui.economics.prices import price_segments
from lepton_tui.ledger import Ledger

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

# The finest grain the roll-up and the memo slice at: (user and project) and host.
_SLICE_KEY = "j.user || char(31) || j.project"
_SLICE_COLUMNS = "alloc_cost, energy_kwh, energy_cost, gpu_hours, cpu_hours, attempts, starts"


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
