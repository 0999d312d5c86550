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
    " || COALESCE(price_per_hour, '')) FROM hosts) AS hosts"
)


class ViewRecords:
    """The read models' named reads (mixed into `Ledger`)."""

    # -- the fleet panel (`lepton_tui.fleet_view`) ----------------------------------------------

    def fleet_hosts(self: _Store) -> list[dict[str, Any]]:
        """Every host with what the fleet panel shows of it, by name."""
        return self.query(
            "SELECT name, state, admin_state, transport, address, cpus, gpus, price_per_hour, "
            "last_seen, last_error, gpu_model, gpus_override, gpu_mem_mb FROM hosts ORDER BY name"
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
