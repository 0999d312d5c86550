"""The ledger's plain reads for the console's read models (`lepton_tui.views`,
`lepton_tui.fleet_view`), each named for what a panel shows, and the autopilot's record
(`lepton_tui.autopilot`).

A mixin of `lepton_tui.ledger.Ledger`, like `lepton_tui.ledger_dispatch`. The console's refresh
runs these every tick: each is one bounded statement (`tests/tui/test_refresh_reads.py` counts
them), and what a refresh keeps between ticks (`fleet_view.ViewMemo`) stays with the read model.
"""

from __future__ import annotations

from typing import Any

from lepton_tui.ledger_dispatch import _Store

# What the stranded capacity depends on: what runs where, the hosts, and the queue (every job
# submitted, amended, started, requeued or ended writes an event in the same transaction).
_STRANDED_INPUTS_SQL = (
    "SELECT (SELECT MAX(id) FROM events) AS last_event, "
    "(SELECT MAX(id) FROM attempts) AS last_attempt, "
    "(SELECT COUNT(*) FROM attempts WHERE state IN ('starting', 'running')) AS live, "
    "(SELECT group_concat(name || ':' || COALESCE(state, '') || ':' || COALESCE(admin_state, '') "
    " || ':' || COALESCE(gpus, '') || ':' || COALESCE(gpus_override, '') || ':' "
    " || COALESCE(price_per_hour, '') || ':' || COALESCE(price_node_hour, '') || ':' "
    " || COALESCE(length(slurm_nodes), '')) FROM hosts) AS hosts"
)


# What the money totals depend on besides the clock: attempts started, ended or settled, what
# Slurm allocated to unsettled ones, prices, hosts and settings (the currency). Each part reads an index or a small table.
_COST_INPUTS_SQL = (
    "SELECT (SELECT MAX(id) FROM attempts) AS last_attempt, "
    "(SELECT COUNT(*) FROM attempts WHERE cost IS NULL) AS unsettled, "
    "(SELECT TOTAL(COALESCE(started_at, 0) + COALESCE(ended_at, 0)) FROM attempts "
    " WHERE cost IS NULL) AS unsettled_times, "
    "(SELECT group_concat(COALESCE(alloc_cpus, '') || ':' || COALESCE(alloc_mem_mb, '') || ':' "
    " || COALESCE(alloc_gpus, '') || ':' || COALESCE(slurm_nodes, '')) FROM attempts "
    " WHERE cost IS NULL AND on_slurm = 1) AS unsettled_slurm, "
    "(SELECT MAX(id) FROM prices) AS last_price, "
    "(SELECT COUNT(*) || ':' || MAX(id) FROM hosts) AS hosts, "
    "(SELECT group_concat(key || '=' || value) FROM settings) AS settings"
)
# The orders the console's queue can be read in, by name (`views.SORTS`).
QUEUE_SORTS: dict[str, str] = {
    "default": "CASE WHEN j.state = 'queued' THEN 1 WHEN j.state IN ('starting', 'running', "
    "'cancelling') THEN 0 ELSE 2 END, j.priority DESC, j.id",
    "age": "j.submitted_at, j.id",
    "priority": "j.priority DESC, j.id",
    "user": "j.user, j.id",
    "id": "j.id DESC",
}


def _queue_filter(text: str, live_only: bool, ended_since: float | None) -> tuple[str, list[Any]]:
    """The WHERE clause (with its leading space, or "") and parameters of a queue window: the
    live jobs (and, from `ended_since`, those that ended) unless not `live_only`, each word of
    `text` matched (a number: the id or the command; a word: user, project, state, command,
    name or host)."""
    where: list[str] = []
    params: list[Any] = []
    if live_only and ended_since is not None:
        where.append(
            "(j.state IN ('queued', 'starting', 'running', 'cancelling') OR j.ended_at >= ?)"
        )
        params.append(ended_since)
    elif live_only:
        where.append("j.state IN ('queued', 'starting', 'running', 'cancelling')")
    for word in text.split():
        if word.isdigit():
            where.append("(j.id = ? OR j.command LIKE ?)")
            params += [int(word), f"%{word}%"]
        else:
            like = f"%{word}%"
            where.append(
                "(j.user LIKE ? OR j.project LIKE ? OR j.state LIKE ? OR j.command LIKE ? "
                "OR j.name LIKE ? OR j.host LIKE ?)"
            )
            params += [like] * 6
    return (f" WHERE {' AND '.join(where)}" if where else ""), params


class ViewRecords:
    """The read models' named reads (mixed into `Ledger`)."""

    # -- the queue (`lepton_tui.views.queue_window`) -------------------------------------------

    def queue_page(
        self: _Store,
        text: str,
        sort: str,
        limit: int,
        *,
        live_only: bool = True,
        ended_since: float | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """A window of at most `limit` jobs in the `sort` order (`QUEUE_SORTS`), each with its
        latest attempt's `gpu_ids`, and how many jobs match in all (see `_queue_filter`)."""
        clause, params = _queue_filter(text, live_only, ended_since)
        order = QUEUE_SORTS.get(sort, QUEUE_SORTS["default"])
        rows = self.query(
            "SELECT j.id, j.state, j.user, j.project, j.name, j.command, j.cpus, j.mem_mb, "
            "j.gpus, j.gpu_mem_mb, j.host, j.submitted_at, j.reason, j.priority, j.kind, "
            "j.array_id, j.array_index, "
            "(SELECT a.gpu_ids FROM attempts a WHERE a.job_id = j.id ORDER BY a.id DESC LIMIT 1) "
            f"AS gpu_ids FROM jobs j{clause} ORDER BY {order} LIMIT ?",
            [*params, int(limit)],
        )
        matched = self.query_one(f"SELECT COUNT(*) AS n FROM jobs j{clause}", params)
        return rows, int((matched or {"n": 0})["n"])

    def live_job_counts(self: _Store) -> dict[str, int]:
        """How many jobs are queued, starting, running or cancelling (states with none left
        out)."""
        rows = self.query(
            "SELECT state, COUNT(*) AS n FROM jobs WHERE state IN "
            "('queued', 'starting', 'running', 'cancelling') GROUP BY state"
        )
        return {r["state"]: r["n"] for r in rows}

    # -- the console's cost panel and chart (`lepton_tui.views`) -------------------------------

    def cost_inputs(self: _Store) -> dict[str, Any] | None:
        """One row that changes whenever the money totals may have (besides the clock):
        attempts started, ended or settled, prices, hosts and settings."""
        return self.query_one(_COST_INPUTS_SQL)

    def lab_default_price(self: _Store) -> float:
        """The lab-wide price per hour in force last set (0 when there is none)."""
        row = self.query_one(
            "SELECT price_per_hour FROM prices WHERE host IS NULL ORDER BY effective_from DESC "
            "LIMIT 1"
        )
        return float(row["price_per_hour"] or 0) if row else 0.0

    def host_price_rows(self: _Store) -> list[dict[str, Any]]:
        """Every host's name, state, capacity, own price per hour and when it was added."""
        return self.query(
            "SELECT name, state, cpus, mem_mb, gpus, price_per_hour, added_at FROM hosts"
        )

    def attempts_with_owners_since(self: _Store, since: float) -> list[dict[str, Any]]:
        """The attempts not ended before `since`: host, request, what Slurm allocated, state,
        times, and the job's user and project."""
        return self.query(
            "SELECT a.host, a.cpus, a.mem_mb, a.gpus, a.state, a.created_at, a.started_at, "
            "a.ended_at, a.slurm_job_id, a.on_slurm, a.alloc_cpus, a.alloc_mem_mb, a.alloc_gpus, "
            "j.user, j.project FROM attempts a JOIN jobs j ON j.id = a.job_id "
            "WHERE a.ended_at IS NULL OR a.ended_at >= ?",
            (since,),
        )

    def attempt_spans_since(self: _Store, since: float) -> list[dict[str, Any]]:
        """The attempts not ended before `since`: host, request, what Slurm allocated and times."""
        return self.query(
            "SELECT host, cpus, mem_mb, gpus, created_at, started_at, ended_at, slurm_job_id, "
            "on_slurm, alloc_cpus, alloc_mem_mb, alloc_gpus FROM attempts "
            "WHERE ended_at IS NULL OR ended_at >= ?",
            (since,),
        )

    # -- the fleet panel (`lepton_tui.fleet_view`) ----------------------------------------------

    def fleet_hosts(self: _Store) -> list[dict[str, Any]]:
        """Every host with what the fleet panel shows of it, by name."""
        return self.query(
            "SELECT name, state, admin_state, transport, address, cpus, gpus, price_per_hour, "
            "last_seen, last_error, gpu_model, gpus_override, gpu_mem_mb, slurm_json, slurm_nodes, "
            "slurm_pending "
            "FROM hosts ORDER BY name"
        )

    def host_rows(self: _Store) -> list[dict[str, Any]]:
        """Every host's row as stored (labels still JSON text), by name."""
        return self.query("SELECT * FROM hosts ORDER BY name")

    def latest_samples(self: _Store, since: float, until: float) -> list[dict[str, Any]]:
        """Each series' (host, GPU or -1) latest full-resolution sample in [since, until]."""
        return self.query(
            "SELECT s.* FROM samples s JOIN (SELECT host, gpu_index, MAX(at) AS at FROM samples "
            "WHERE at >= ? AND at <= ? AND resolution = 0 GROUP BY +host, +gpu_index) m "
            "ON s.host = m.host AND s.gpu_index = m.gpu_index AND s.at = m.at "
            "WHERE s.resolution = 0 ORDER BY s.host, s.gpu_index",
            (since, until),
        )

    def spark_buckets(self: _Store, width: float, start: float, end: float) -> list[dict[str, Any]]:
        """Per host and epoch-aligned bucket `b` of `width` seconds in [start, end): the mean GPU
        utilisation `g` and CPU percent `c` of the full-resolution samples."""
        return self.query(
            "SELECT host, CAST(at / ? AS INTEGER) AS b, "
            "AVG(CASE WHEN gpu_index >= 0 THEN util_percent END) AS g, "
            "AVG(CASE WHEN gpu_index < 0 THEN cpu_percent END) AS c "
            "FROM samples WHERE at >= ? AND at < ? AND resolution = 0 GROUP BY host, b",
            (width, start, end),
        )

    def live_attempt_gpus(self: _Store) -> list[dict[str, Any]]:
        """The starting and running attempts: host, GPU ids, GPUs and GPU memory."""
        return self.query(
            "SELECT host, gpu_ids, gpus, gpu_mem_mb FROM attempts WHERE state IN ('starting', "
            "'running')"
        )

    def active_attempt_holdings(self: _Store) -> list[dict[str, Any]]:
        """What the starting and running attempts (`cluster_view.ACTIVE_ATTEMPT_STATES`) hold,
        as `cluster_view.build_view` takes it."""
        return self.query(
            "SELECT job_id, host, gpu_ids, cpus, mem_mb, gpus, gpu_mem_mb, started_at, created_at "
            "FROM attempts WHERE state IN ('starting', 'running')"
        )

    def stranded_inputs(self: _Store) -> dict[str, Any] | None:
        """One row that changes whenever the stranded capacity may have: the latest event and
        attempt, how many attempts run, and the hosts' states, GPUs and prices."""
        return self.query_one(_STRANDED_INPUTS_SQL)

    # -- the scheduler screen (why a job waits) and the queue's shapes -------------------------

    def recent_decisions(self: _Store, limit: int) -> list[dict[str, Any]]:
        """The policy's most recent decisions, newest first."""
        return self.query(
            "SELECT id, at, policy, job_id, host, placed, explanation FROM decisions "
            "ORDER BY id DESC LIMIT ?",
            (int(limit),),
        )

    def job_state_reason(self: _Store, job_id: int) -> dict[str, Any] | None:
        """A job's state and recorded reason, or None when there is no such job."""
        return self.query_one("SELECT state, reason FROM jobs WHERE id = ?", (int(job_id),))

    def last_decision(self: _Store, job_id: int) -> dict[str, Any] | None:
        """The policy's latest decision about a job, if any."""
        return self.query_one(
            "SELECT at, policy, host, placed, explanation FROM decisions WHERE job_id = ? "
            "ORDER BY id DESC LIMIT 1",
            (int(job_id),),
        )

    def unmet_dependencies(self: _Store, job_id: int) -> list[dict[str, Any]]:
        """The jobs a job waits for that have not succeeded (`depends_on`, `state`)."""
        return self.query(
            "SELECT d.depends_on, j.state FROM job_deps d JOIN jobs j ON j.id = d.depends_on "
            "WHERE d.job_id = ? AND j.state != 'succeeded'",
            (int(job_id),),
        )

    def live_attempts_per_host(self: _Store) -> dict[str, int]:
        """How many attempts are starting or running on each host that has any."""
        rows = self.query(
            "SELECT host, COUNT(*) AS n FROM attempts WHERE state IN ('starting', 'running') "
            "GROUP BY host"
        )
        return {r["host"]: int(r["n"]) for r in rows}

    def queued_shapes(self: _Store) -> list[dict[str, Any]]:
        """The queued jobs' distinct requests (cpus, mem_mb, gpus, gpu_mem_mb) and their count n."""
        return self.query(
            "SELECT cpus, mem_mb, gpus, gpu_mem_mb, COUNT(*) AS n FROM jobs WHERE state = 'queued' "
            "GROUP BY cpus, mem_mb, gpus, gpu_mem_mb"
        )

    def data_version(self: _Store) -> int | None:
        """SQLite's `PRAGMA data_version` on this thread's connection: it moves when another
        connection commits, so a live view (`lepton_tui.labd`'s watch) sees that the ledger
        changed without reading it. Compare values read on the same thread only."""
        row = self.query_one("PRAGMA data_version")
        return None if row is None else next(iter(row.values()))

    # -- training on the lab's own history (`lepton-tui train --from-ledger`) ------------------

    def finished_runs(self: _Store) -> list[dict[str, Any]]:
        """Each attempt that ran to an exit code, with its job's request, oldest job first."""
        return self.query(
            "SELECT j.id, j.cpus, j.mem_mb, j.gpus, j.gpu_mem_mb, j.priority, j.user, j.project,"
            " j.submitted_at, j.time_limit_s, a.started_at, a.ended_at FROM jobs j"
            " JOIN attempts a ON a.job_id = j.id"
            " WHERE a.started_at IS NOT NULL AND a.ended_at > a.started_at"
            " AND a.exit_code IS NOT NULL ORDER BY j.submitted_at, a.id"
        )

    def sized_hosts(self: _Store) -> list[dict[str, Any]]:
        """The hosts whose capacity is known: name, CPUs, memory, GPUs."""
        return self.query("SELECT name, cpus, mem_mb, gpus, gpu_mem_mb FROM hosts WHERE cpus > 0")

    # -- the autopilot's record (`lepton_tui.autopilot`) ----------------------------------------

    def last_lab_event(self: _Store, kind: str) -> dict[str, Any] | None:
        """The latest lab-wide event (no host) of a kind: its `at` and `data`, or None."""
        return self.query_one(
            "SELECT at, data FROM events WHERE host IS NULL AND kind = ? ORDER BY at DESC, id DESC "
            "LIMIT 1",
            (kind,),
        )

    def last_lab_event_at(self: _Store, kind: str) -> float | None:
        """When the latest lab-wide event (no host) of a kind was recorded, or None."""
        row = self.query_one(
            "SELECT MAX(at) AS at FROM events WHERE host IS NULL AND kind = ?", (kind,)
        )
        return None if row is None or row["at"] is None else float(row["at"])

    def ended_jobs_submitted(self: _Store, since: float, until: float) -> int:
        """How many jobs submitted in [since, until) have ended."""
        row = self.query_one(
            "SELECT COUNT(*) AS n FROM jobs WHERE submitted_at >= ? AND submitted_at < ? "
            "AND state IN ('succeeded', 'failed', 'timeout', 'cancelled')",
            (since, until),
        )
        return int(row["n"]) if row else 0
