"""The ledger's reads and writes for the dispatcher, each named for what the dispatcher does.

A mixin of `lepton_tui.ledger.Ledger` (kept apart to keep each module small): the dispatch
package calls these and holds no SQL of its own. Writes run inside the caller's transaction
(`Ledger.tx()`), so a change and the others of its tick commit together.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from lepton_tui.rows import ActiveAttempt, AttemptRow, JobRow

# an attempt that may have started: seen running, or lost unseen after its launch went out
_MAY_HAVE_RUN = "(started_at IS NOT NULL OR (presumed = 1 AND launch_sent_at IS NOT NULL))"
_CHUNK = 500  # SQLite's limit on bound parameters, with room
_JOB_FIELDS = ("id", "state", "command", "workdir", "env", "time_limit_s", "retries",
               "attempts_used", "requeue_on_timeout", "max_requeues", "requeues",
               "signal")  # fmt: skip
# the job's submitter too: in lab mode its attempts run as them (AttemptRow.owner)
_JOB_COLUMNS = ", ".join(f"j.{c} AS j_{c}" for c in _JOB_FIELDS) + ", j.user AS owner"


def _active(row: dict[str, Any]) -> ActiveAttempt:
    job = JobRow.from_row({c: row[f"j_{c}"] for c in _JOB_FIELDS})
    att = AttemptRow.from_row(row)
    return ActiveAttempt(**{f.name: getattr(att, f.name) for f in fields(att)}, job=job)


@dataclass(frozen=True)
class RetryTally:
    """What a loss needs to know of a job's attempts (see `lepton_tui.dispatch.outcome`)."""

    allowed: int  # the job's --retries
    ran: int  # its attempts that ran or may have
    made: int  # all its attempts
    this_ran: bool  # the attempt being lost is one of `ran`
    unseen: bool  # the ledger never saw it running
    requeued: int = 0  # times requeued at its time limit (`--requeue-on-timeout`)


class _Store(Protocol):
    path: Path
    clock: Callable[[], float]

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor: ...
    def query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[dict[str, Any]]: ...
    def query_one(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> dict[str, Any] | None: ...
    @property
    def conn(self) -> sqlite3.Connection: ...
    def insert(self, table: str, row: dict[str, Any]) -> int: ...
    def update(self, table: str, key: Any, values: dict[str, Any], pk: str = "id") -> None: ...
    def get_setting(self, key: str, default: Any = None) -> Any: ...
    def setdefault_setting(self, key: str, value: Any, actor: str | None = None) -> Any: ...
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
    ) -> int: ...


class DispatchRecords:
    """The dispatcher's named reads and writes (mixed into `Ledger`)."""

    # -- reads ---------------------------------------------------------------------------------

    def active_attempts(self: _Store) -> list[ActiveAttempt]:
        """`starting` and `running` attempts, each with its job."""
        rows = self.query(
            f"SELECT a.*, {_JOB_COLUMNS} FROM attempts a JOIN jobs j ON j.id = a.job_id "
            "WHERE a.state IN ('starting', 'running') ORDER BY a.id"
        )
        return [_active(r) for r in rows]

    def active_attempt(self: _Store, token: str) -> ActiveAttempt | None:
        """One attempt with its job (a start just written, read back to launch it)."""
        row = self.query_one(
            f"SELECT a.*, {_JOB_COLUMNS} FROM attempts a JOIN jobs j ON j.id = a.job_id "
            "WHERE a.token = ?",
            (token,),
        )
        return _active(row) if row else None

    def attempt_row(self: _Store, token: str) -> AttemptRow | None:
        row = self.query_one("SELECT * FROM attempts WHERE token = ?", (token,))
        return AttemptRow.from_row(row) if row else None

    def placed_attempts(self: _Store) -> list[dict[str, Any]]:
        """`starting` and `running` attempts with their jobs' time limits (the cluster view)."""
        return self.query(
            "SELECT a.*, j.time_limit_s FROM attempts a JOIN jobs j ON j.id = a.job_id "
            "WHERE a.state IN ('starting', 'running')"
        )

    def unfenced_attempts(self: _Store) -> list[AttemptRow]:
        """Lost attempts whose copies may still run somewhere."""
        rows = self.query(
            "SELECT a.*, j.user AS owner FROM attempts a JOIN jobs j ON j.id = a.job_id "
            "WHERE a.state = 'lost' AND a.fenced_at IS NULL ORDER BY a.id"
        )
        return [AttemptRow.from_row(r) for r in rows]

    def fencing_holds(self: _Store) -> dict[int, str]:
        """Job -> host of its lost attempt not stopped yet, on a host that is not down (or
        removed): the job waits until that copy is stopped."""
        rows = self.query(
            "SELECT a.job_id, a.host FROM attempts a LEFT JOIN hosts h ON h.name = a.host "
            "WHERE a.state = 'lost' AND a.fenced_at IS NULL "
            "AND (h.name IS NULL OR h.state != 'down')"
        )
        return {int(r["job_id"]): str(r["host"]) for r in rows}

    def job_state(self: _Store, job_id: int) -> str:
        """A job's state ("missing" when there is no such job)."""
        row = self.query_one("SELECT state FROM jobs WHERE id = ?", (job_id,))
        return str(row["state"]) if row else "missing"

    def attempt_state(self: _Store, token: str) -> str | None:
        row = self.query_one("SELECT state FROM attempts WHERE token = ?", (token,))
        return str(row["state"]) if row else None

    def cancel_sent(self: _Store, token: str) -> bool:
        """Whether the cancel of an attempt went out to its host."""
        row = self.query_one("SELECT cancel_sent_at FROM attempts WHERE token = ?", (token,))
        return bool(row and row["cancel_sent_at"] is not None)

    def retry_tally(self: _Store, job_id: int, token: str) -> RetryTally | None:
        """The job's retries and how its attempts went, for the loss of attempt `token` (runs
        Slurm requeued by itself are not lepton's attempts: they spend no retry)."""
        row = self.query_one(
            f"SELECT retries, requeues, (SELECT COUNT(*) FROM attempts WHERE job_id = jobs.id "
            f"AND state != 'requeued' AND {_MAY_HAVE_RUN}) AS ran, (SELECT COUNT(*) FROM "
            "attempts WHERE job_id = jobs.id AND state != 'requeued') AS made, "
            f"(SELECT {_MAY_HAVE_RUN} FROM attempts WHERE token = ?) AS this_ran, (SELECT started_at IS NULL FROM attempts "
            "WHERE token = ?) AS unseen FROM jobs WHERE id = ?",
            (token, token, job_id),
        )
        if row is None:
            return None
        return RetryTally(
            int(row["retries"]), int(row["ran"]), int(row["made"]), bool(row["this_ran"]),
            bool(row["unseen"]), int(row["requeues"] or 0),
        )  # fmt: skip

    def job_and_latest(self: _Store, job_id: int) -> tuple[str, int | None]:
        """A job's state ("missing": no such job) and its latest attempt's id."""
        row = self.query_one(
            "SELECT state, (SELECT MAX(id) FROM attempts WHERE job_id = jobs.id) AS latest "
            "FROM jobs WHERE id = ?",
            (job_id,),
        )
        if row is None:
            return "missing", None
        return str(row["state"]), None if row["latest"] is None else int(row["latest"])

    def said_unreadable(self: _Store, job_id: int, token: str) -> bool:
        """Whether the event that an attempt's files cannot be read was written."""
        return bool(
            self.query_one(
                "SELECT 1 AS x FROM events WHERE kind = 'attempt.unreadable' AND job_id = ? "
                "AND json_extract(data, '$.token') = ?",
                (job_id, token),
            )
        )

    def said_fence_failed(self: _Store, host: str, since: float) -> bool:
        """Whether a `host.fence_failed` event was written for `host` at `since` or later."""
        return bool(
            self.query_one(
                "SELECT 1 AS x FROM events WHERE host = ? AND kind = 'host.fence_failed' "
                "AND at >= ? LIMIT 1",
                (host, since),
            )
        )

    def removed_host(self: _Store, name: str) -> tuple[float, dict[str, Any] | None]:
        """When a host was removed and the connection its `host.removed` event kept."""
        ev = self.query_one(
            "SELECT at, data FROM events WHERE kind = 'host.removed' AND host = ? "
            "ORDER BY id DESC LIMIT 1",
            (name,),
        )
        data = json.loads(ev["data"]) if ev and ev["data"] else {}
        conn = data.get("connection") if isinstance(data, dict) else None
        return (float(ev["at"]) if ev else 0.0, conn)

    def queued_jobs(self: _Store) -> list[dict[str, Any]]:
        """Queued jobs, highest priority first, then oldest."""
        return self.query("SELECT * FROM jobs WHERE state = 'queued' ORDER BY priority DESC, id")

    def queued_job_ids(self: _Store) -> set[int]:
        return {int(r["id"]) for r in self.query("SELECT id FROM jobs WHERE state = 'queued'")}

    def queued_dependencies(self: _Store) -> list[dict[str, Any]]:
        """(job_id, depends_on, state of depends_on) for every queued job's dependency."""
        return self.query(
            "SELECT d.job_id, d.depends_on, j.state FROM job_deps d "
            "JOIN jobs q ON q.id = d.job_id AND q.state = 'queued' "
            "JOIN jobs j ON j.id = d.depends_on"
        )

    def host_names(self: _Store) -> set[str]:
        return {str(r["name"]) for r in self.query("SELECT name FROM hosts")}

    def slurm_after(self: _Store, job_id: int, host: str) -> list[str]:
        """Slurm ids of the job's dependencies still in Slurm on `host`."""
        rows = self.query(
            "SELECT a.slurm_job_id FROM job_deps d JOIN jobs p ON p.id = d.depends_on "
            "JOIN attempts a ON a.job_id = p.id AND a.host = ? "
            "AND a.state IN ('starting', 'running') AND a.slurm_job_id IS NOT NULL "
            "WHERE d.job_id = ? AND p.state != 'succeeded' ORDER BY a.id",
            (host, job_id),
        )
        return [str(r["slurm_job_id"]) for r in rows]

    def dependency_places(self: _Store, job_ids: Sequence[int]) -> list[dict[str, Any]]:
        """For each dependency of `job_ids`: (job_id, depends_on, its state, and the host and
        Slurm id of its active attempt, if any)."""
        rows: list[dict[str, Any]] = []
        for i in range(0, len(job_ids), _CHUNK):
            chunk = list(job_ids[i : i + _CHUNK])
            rows += self.query(
                "SELECT d.job_id, d.depends_on, p.state, a.host, a.slurm_job_id FROM job_deps d "
                "JOIN jobs p ON p.id = d.depends_on LEFT JOIN attempts a ON a.job_id = p.id "
                f"AND a.state IN ('starting', 'running') WHERE d.job_id IN "
                f"({','.join('?' * len(chunk))})",
                chunk,
            )
        return rows

    def attempt_refs(
        self: _Store, tokens: Sequence[str]
    ) -> dict[str, tuple[int, str | None, float]]:
        """token -> (job id, Slurm job id, created at), read through a short-lived read-only
        connection of its own: safe from the dispatcher's fan-out threads (the ledger keeps one
        connection per thread, for the life of the ledger)."""
        out: dict[str, tuple[int, str | None, float]] = {}
        if not tokens:
            return out
        uri = f"file:{self.path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
            for i in range(0, len(tokens), _CHUNK):
                chunk = list(tokens[i : i + _CHUNK])
                marks = ",".join("?" * len(chunk))
                for token, job_id, sid, created in conn.execute(
                    "SELECT token, job_id, slurm_job_id, created_at FROM attempts "
                    f"WHERE token IN ({marks})",
                    chunk,
                ):
                    out[token] = (int(job_id), sid, float(created or 0))
        return out

    def attempt_owners(self: _Store, tokens: Sequence[str]) -> dict[str, str]:
        """token -> the user who queued its job, read through a short-lived read-only
        connection of its own (safe from the fan-out threads, as `attempt_refs`)."""
        out: dict[str, str] = {}
        if not tokens:
            return out
        uri = f"file:{self.path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
            for i in range(0, len(tokens), _CHUNK):
                chunk = list(tokens[i : i + _CHUNK])
                marks = ",".join("?" * len(chunk))
                for token, user in conn.execute(
                    "SELECT a.token, j.user FROM attempts a JOIN jobs j ON j.id = a.job_id "
                    f"WHERE a.token IN ({marks})",
                    chunk,
                ):
                    out[str(token)] = str(user)
        return out

    # -- writes (inside the caller's transaction) ----------------------------------------------

    def note_slurm_pending(self: _Store, job_id: int, reason: str) -> None:
        """A `starting` job waits in Slurm's queue: Slurm's pending reason is its own."""
        self.execute(
            "UPDATE jobs SET reason = ? WHERE id = ? AND state = 'starting' "
            "AND (reason IS NULL OR reason != ?)",
            (reason, job_id, reason),
        )

    def clear_slurm_pending(self: _Store, job_id: int, prefix: str) -> None:
        """A job Slurm runs (or ended) loses the pending reason starting with `prefix`."""
        self.execute(
            "UPDATE jobs SET reason = NULL WHERE id = ? AND state IN ('starting', 'running') "
            "AND reason LIKE ?",
            (job_id, prefix + "%"),
        )

    def mark_cancel_sent(self: _Store, token: str, at: float) -> None:
        """The cancel of an attempt went out (`serve --once` must not TERM again each run)."""
        self.execute("UPDATE attempts SET cancel_sent_at = ? WHERE token = ?", (at, token))

    def note_missing(self: _Store, token: str, since: float | None) -> None:
        """Since when an attempt's directory has been out of its host's sight (None: seen)."""
        self.execute("UPDATE attempts SET missing_since = ? WHERE token = ?", (since, token))

    def note_started(self: _Store, token: str, at: float) -> None:
        """When an attempt started, as its host says (it ran: that spends a retry)."""
        self.execute("UPDATE attempts SET started_at = ? WHERE token = ?", (at, token))

    def mark_presumed(self: _Store, token: str) -> None:
        """An attempt lost while its host did not answer: its fate is unknown until it does."""
        self.execute("UPDATE attempts SET presumed = 1 WHERE token = ?", (token,))

    def unassign_job(self: _Store, job_id: int) -> None:
        """A requeued job is on no host."""
        self.update("jobs", job_id, {"host": None})

    def mark_launch_sent(self: _Store, token: str, at: float | None) -> None:
        """When an attempt's launch went out (None: it never reached the host)."""
        self.execute("UPDATE attempts SET launch_sent_at = ? WHERE token = ?", (at, token))

    def count_launch_failure(self: _Store, token: str) -> int:
        """Count a failed launch (or submission) of an attempt; return how many failed."""
        row = self.query_one("SELECT launch_failures FROM attempts WHERE token = ?", (token,))
        tries = int((row or {}).get("launch_failures") or 0) + 1
        self.execute("UPDATE attempts SET launch_failures = ? WHERE token = ?", (tries, token))
        return tries

    def set_remote_dir(self: _Store, token: str, remote_dir: str) -> None:
        """Where an attempt's directory is on its host (its launch answered)."""
        self.execute("UPDATE attempts SET remote_dir = ? WHERE token = ?", (remote_dir, token))

    def mark_submitted(self: _Store, token: str, job_dir: str, slurm_job_id: str) -> None:
        """A `starting` attempt Slurm took: its directory and Slurm job id."""
        self.execute(
            "UPDATE attempts SET remote_dir = ?, slurm_job_id = ? "
            "WHERE token = ? AND state = 'starting'",
            (job_dir, slurm_job_id, token),
        )

    def slurm_restarts(self: _Store, token: str) -> int:
        """How many times Slurm had requeued an attempt's job when its run began (0: first)."""
        row = self.query_one("SELECT slurm_restarts FROM attempts WHERE token = ?", (token,))
        return int((row or {}).get("slurm_restarts") or 0)

    def split_slurm_run(
        self: _Store, token: str, *, ended_at: float, restarts: int, why: str
    ) -> str:
        """Slurm requeued the job of attempt `token` (restart count now `restarts`): the run the
        attempt recorded ends `requeued` at `ended_at`, and a new `starting` attempt takes the
        token (the Slurm job's name, comment and directory carry it: lepton finds exactly one
        live attempt for it after a crash) for Slurm's next run, with nothing of the old run's
        allocation. The old run keeps its row (the lower id: attempts read oldest first) under
        the token `TOKEN-rN` (its run number). Returns that token, to settle its cost."""
        att = self.query_one("SELECT * FROM attempts WHERE token = ?", (token,))
        if att is None or att["state"] not in ("starting", "running"):
            raise ValueError(f"attempt {token} is not live")
        job = self.query_one("SELECT attempts_used FROM jobs WHERE id = ?", (att["job_id"],))
        run = int(att.get("slurm_restarts") or 0) + 1
        old = f"{token}-r{run}"
        ended_at = max(ended_at, float(att["started_at"] or ended_at))
        self.execute(
            "UPDATE attempts SET token = ?, state = 'requeued', ended_at = ?, reason = ? "
            "WHERE id = ?",
            (old, ended_at, why, att["id"]),
        )
        number = int((job or {}).get("attempts_used") or att["attempt_no"]) + 1
        fresh = {
            k: v for k, v in att.items()
            if k not in ("id", "started_at", "ended_at", "exit_code", "reason", "cost",
                         "energy_wh", "fenced_at", "missing_since", "alloc_cpus",
                         "alloc_mem_mb", "alloc_gpus", "slurm_nodes")
        }  # fmt: skip
        fresh.update(token=token, attempt_no=number, state="starting", created_at=ended_at,
                     launch_failures=0, presumed=0, slurm_restarts=restarts)  # fmt: skip
        self.insert("attempts", fresh)
        self.execute(
            "UPDATE jobs SET attempts_used = ?, reason = ?, updated_at = ? WHERE id = ?",
            (number, "pending in Slurm (requeued by Slurm)", self.clock(), att["job_id"]),
        )
        self.event(
            "attempt.requeued",
            f"job {att['job_id']} attempt {att['attempt_no']} on {att['host']}: "
            f"{att['state']} -> requeued ({why}); Slurm runs it again as attempt {number}",
            job_id=att["job_id"], host=att["host"], actor="dispatcher",
            data={"token": old, "next": token, "slurm_job_id": att["slurm_job_id"],
                  "restarts": restarts},
        )  # fmt: skip
        return old

    def mark_fenced(self: _Store, attempt_id: int, at: float) -> None:
        """Nothing of a lost attempt runs any more (or it was given up)."""
        self.update("attempts", attempt_id, {"fenced_at": at})

    def host_answered(self: _Store, host_id: int, at: float, capacity: dict[str, Any]) -> None:
        """A host answered its poll: up, its failure streak ended, what it has."""
        values: dict[str, Any] = {
            "last_seen": at, "last_error": None, "state": "up", "failed_polls": 0,
            "failing_since": None, **capacity,
        }  # fmt: skip
        self.update("hosts", host_id, values)

    def host_poll_failed(self: _Store, host_id: int, error: str, streak: int, since: float) -> None:
        """A host missed a poll: its streak of failures and since when."""
        self.update(
            "hosts", host_id,
            {"last_error": error[:500], "failed_polls": streak, "failing_since": since},
        )  # fmt: skip

    def mark_host_down(self: _Store, host_id: int) -> None:
        self.update("hosts", host_id, {"state": "down"})

    def set_slurm_target(
        self: _Store, host_id: int, capacity: dict[str, Any], target_json: str
    ) -> None:
        """A host that is a Slurm partition: its settings and what the partition holds."""
        self.update("hosts", host_id, {**capacity, "slurm_json": target_json})

    def note_host_error(self: _Store, host_id: int, error: str) -> None:
        self.update("hosts", host_id, {"last_error": error[:500]})

    def drain_host_row(self: _Store, host_id: int) -> None:
        """The dispatcher drains a host (its event is the caller's)."""
        self.update("hosts", host_id, {"admin_state": "draining"})

    def record_decision(
        self: _Store, at: float, policy: str | None, job_id: int, host: str | None, text: str
    ) -> None:
        """One line of the scheduler's decisions (placed when `host` is given)."""
        self.insert("decisions", {
            "at": at, "policy": policy, "job_id": job_id, "host": host,
            "placed": 1 if host is not None else 0, "explanation": text,
        })  # fmt: skip

    def trim_decisions(self: _Store, keep: int) -> None:
        """Keep the latest `keep` decisions."""
        self.execute(
            "DELETE FROM decisions WHERE id <= (SELECT MAX(id) FROM decisions) - ?", (keep,)
        )

    def insert_samples(self: _Store, rows: Iterable[dict[str, Any]]) -> int:
        n = 0
        for row in rows:
            self.insert("samples", row)
            n += 1
        return n

    def downsample(self: _Store, src: int, dst: int, cutoff: float, values: Sequence[str]) -> int:
        """Average samples of resolution `src` older than `cutoff` into buckets of `dst`
        seconds (weighted by how many each row holds); return how many rows were removed."""
        avg = ", ".join(
            f"SUM({c} * n) / NULLIF(SUM(CASE WHEN {c} IS NULL THEN 0 ELSE n END), 0)"
            for c in values
        )
        self.execute(
            f"INSERT INTO samples (host, gpu_index, at, resolution, {', '.join(values)}, n) "
            f"SELECT host, gpu_index, CAST(at / {dst} AS INTEGER) * {dst}, {dst}, {avg}, SUM(n) "
            "FROM samples WHERE resolution = ? AND at < ? GROUP BY host, gpu_index, "
            f"CAST(at / {dst} AS INTEGER)",
            (src, cutoff),
        )
        cur = self.execute("DELETE FROM samples WHERE resolution = ? AND at < ?", (src, cutoff))
        return int(cur.rowcount or 0)
