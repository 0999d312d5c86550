"""The cost engine's SQL text: attempts x price periods x report buckets, summed in SQLite.

Pure strings, no I/O: the statements the economics' ledger mixin (`lepton_tui.ledger_econ`) runs
over the reading connection's TEMP tables (`econ_period`, `econ_bucket`, `econ_energy`). Settled
attempts wholly inside a window are summed from their stored cost (`_settled_sql`), the others
are sliced (`_attempt_sql`); the daily roll-up reuses the same SQL per day.
"""

from __future__ import annotations

# When an attempt's charge starts (`economics.costs.charged_from`): when it started, else from its
# intent, except a Slurm attempt that never started (before sbatch returned, or waiting in Slurm's
# queue): NULL, no charge. For every attempt that started it equals COALESCE(started_at,
# created_at), which the index lookups below keep using; `_CHARGED` leaves out the never-started
# Slurm ones.
_SSH = "(a.slurm_job_id IS NULL AND a.on_slurm = 0)"
_S0 = f"COALESCE(a.started_at, CASE WHEN {_SSH} THEN a.created_at END)"
_CHARGED = f"(a.started_at IS NOT NULL OR {_SSH})"

# What an attempt is charged for holding (`economics.prices.charged_resources`): what Slurm
# allocated where it says (`alloc_*`, a request rounded up), else what the job asked. A GPU
# share by memory is charged as such only where Slurm did not allocate whole GPUs.
_CPUS = "COALESCE(a.alloc_cpus, a.cpus)"
_MEM = "COALESCE(a.alloc_mem_mb, a.mem_mb)"
_GPUS = "COALESCE(a.alloc_gpus, a.gpus)"
_GMEM = "CASE WHEN a.alloc_gpus IS NULL THEN a.gpu_mem_mb ELSE 0 END"

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
    + COALESCE(p.node_hour, 0) * COALESCE(a.slurm_nodes, 1)
"""
_GEQ_SQL = (
    "CASE WHEN a.gpus > 0 THEN a.gpus * 1.0 "
    "WHEN a.gpu_mem_mb > 0 AND p.cap_gpus > 0 AND p.cap_gmem > 0 "
    "THEN MIN(1.0, a.gpu_mem_mb * p.cap_gpus * 1.0 / p.cap_gmem) ELSE 0.0 END"
)
_RATE = _RATE_SQL.format(geq=_GEQ_SQL)

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
      SELECT a.id AS id, a.host AS host, {_CPUS} AS cpus, {_MEM} AS mem_mb, {_GPUS} AS gpus,
             {_GMEM} AS gpu_mem_mb, a.job_id AS job_id, j.user AS user, j.project AS project,
             a.slurm_nodes AS slurm_nodes, {_S0} AS s0,
             MIN(COALESCE(a.ended_at, :now), :now) AS s1,
             COALESCE(a.energy_wh, e.wh, 0.0) AS wh
      FROM {source}
      CROSS JOIN jobs j ON j.id = a.job_id
      LEFT JOIN econ_energy e ON e.attempt_id = a.id
      WHERE (a.ended_at > :since OR a.ended_at IS NULL)
        AND {_S0} < :until
        AND MIN(COALESCE(a.ended_at, :now), :now) > {_S0}
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
      AND a.ended_at > COALESCE(a.started_at, a.created_at) AND {_CHARGED}
    GROUP BY k, a.host
    """


def _settled_sums(kwh: float, *, per_attempt: bool = False) -> str:
    """The sums of a report row over settled attempts, from their stored cost and energy (with
    `per_attempt`, each attempt's own values: a row per attempt, no GROUP BY)."""
    price = f"{float(kwh)!r}"
    geq = (
        f"CASE WHEN {_GPUS} > 0 THEN {_GPUS} * 1.0 WHEN {_GMEM} > 0 "
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
           {total}({_CPUS} * {dur}) / 3600.0 AS cpu_hours,
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
      AND a.ended_at > COALESCE(a.started_at, a.created_at) AND {_CHARGED}
    """


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
