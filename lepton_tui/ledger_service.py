"""The ledger's reads and writes for `lepton_tui.service`, each named for what the service does,
and for the notifications it configures (`lepton_tui.notify`: the outbox and its cursor).

A mixin of `lepton_tui.ledger.Ledger` (kept apart to keep each module small), like
`lepton_tui.ledger_dispatch`. These decide nothing about who may do what: the service checks that
first and then calls them. Writes run inside the caller's transaction (`Ledger.tx()`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from lepton_tui.errors import ValidationError
from lepton_tui.ledger_dispatch import _Store
from lepton_tui.schema import JOB_STATES

# Jobs not yet ended, in the order lists show them: what runs, then what waits.
LIVE_ORDER = ("running", "cancelling", "starting", "queued")


def job_filter(
    all_states: bool, user: str | None, project: str | None, states: Sequence[str] | None
) -> tuple[str, list[Any]]:
    """The WHERE clause (with its leading space, or "") and parameters of a jobs listing."""
    where: list[str] = []
    params: list[Any] = []
    if states:
        bad = [s for s in states if s not in JOB_STATES]
        if bad:
            raise ValidationError(
                f"unknown job state {bad[0]!r}", f"use one of {', '.join(JOB_STATES)}"
            )
        where.append(f"state IN ({', '.join('?' for _ in states)})")
        params.extend(states)
    elif not all_states:
        where.append(f"state IN ({', '.join('?' for _ in LIVE_ORDER)})")
        params.extend(LIVE_ORDER)
    if user:
        where.append("user = ?")
        params.append(user)
    if project:
        where.append("project = ?")
        params.append(project)
    return (f" WHERE {' AND '.join(where)}" if where else ""), params


class ServiceRecords:
    """The service's named reads and writes (mixed into `Ledger`)."""

    # -- jobs ----------------------------------------------------------------------------------

    def iter_job_rows(
        self: _Store,
        *,
        all_states: bool = False,
        user: str | None = None,
        project: str | None = None,
        states: Sequence[str] | None = None,
        limit: int | None = 1000,
        offset: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Jobs as `Service.iter_jobs` lists them (live ones first, in `LIVE_ORDER`, higher
        priority then older first; then ended ones, the most recently ended first), row by row."""
        where, params = job_filter(all_states, user, project, states)
        rank = (
            "CASE state "
            + " ".join(f"WHEN '{state}' THEN {i}" for i, state in enumerate(LIVE_ORDER))
            + f" ELSE {len(LIVE_ORDER)} END"
        )
        live = f"({rank}) < {len(LIVE_ORDER)}"
        sql = f"SELECT * FROM jobs{where} ORDER BY {rank}, "
        sql += f"CASE WHEN {live} THEN -priority END, CASE WHEN {live} THEN id END, "
        sql += "COALESCE(ended_at, submitted_at) DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params.extend([int(limit), int(offset)])
        for row in self.execute(sql, params):
            yield dict(row)

    def count_job_rows(
        self: _Store,
        *,
        all_states: bool = False,
        user: str | None = None,
        project: str | None = None,
        states: Sequence[str] | None = None,
    ) -> int:
        """How many jobs `iter_job_rows` with the same filters would list without a limit."""
        where, params = job_filter(all_states, user, project, states)
        row = self.query_one(f"SELECT COUNT(*) AS n FROM jobs{where}", params)
        return int(row["n"]) if row else 0

    def claim_owner(self: _Store, user: str) -> None:
        """Make `user` the ledger's owner (an admin) if it has none yet: whoever opens it first."""
        if self.get_setting("owner") is None:
            self.setdefault_setting("owner", user, actor=user)

    def job_counts(self: _Store) -> dict[str, int]:
        """How many jobs are in each state."""
        rows = self.query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    def job_owner(self: _Store, job_id: int) -> dict[str, Any] | None:
        """A job's id and user, or None when there is no such job."""
        return self.query_one("SELECT id, user FROM jobs WHERE id = ?", (int(job_id),))

    def job_events(self: _Store, job_id: int, limit: int) -> list[dict[str, Any]]:
        """A job's latest `limit` events, oldest first."""
        return self.query(
            "SELECT at, kind, actor, host, message FROM events WHERE job_id = ? ORDER BY id DESC LIMIT ?",
            (job_id, limit),
        )[::-1]

    def set_job_rules(
        self: _Store,
        job_id: int,
        constraints: dict[str, Any] | None,
        array_id: int | None,
        array_index: int | None,
        array_limit: int | None,
    ) -> None:
        """Record a new job's placement constraints and its place in an array."""
        self.execute(
            "UPDATE jobs SET constraints = ?, array_id = ?, array_index = ?, "
            "array_limit = ? WHERE id = ?",
            (json.dumps(constraints, sort_keys=True) if constraints else None, array_id,
             array_index, array_limit, job_id),
        )  # fmt: skip

    def array_element(self: _Store, array_id: int, index: int) -> int | None:
        """The job that is element `index` of array `array_id`, if any."""
        row = self.query_one(
            "SELECT id FROM jobs WHERE array_id = ? AND array_index = ?", (array_id, index)
        )
        return None if row is None else int(row["id"])

    def array_members(self: _Store, array_id: int) -> list[dict[str, Any]]:
        """The ids and states of array `array_id`'s elements, by index (none: not an array)."""
        return self.query(
            "SELECT id, state FROM jobs WHERE array_id = ? ORDER BY array_index", (array_id,)
        )

    def submit_key(self: _Store, key: str) -> dict[str, Any] | None:
        """The user and job ids (JSON) a submit key was first used for."""
        return self.query_one("SELECT user, job_ids FROM submit_keys WHERE key = ?", (key,))

    def record_submit_key(self: _Store, key: str, user: str, job_ids: Sequence[int]) -> None:
        self.insert(
            "submit_keys",
            {"key": key, "user": user, "job_ids": json.dumps(list(job_ids)), "at": self.clock()},
        )

    # -- hosts ---------------------------------------------------------------------------------

    def host_exists(self: _Store, name: str) -> bool:
        return self.query_one("SELECT id FROM hosts WHERE name = ?", (name,)) is not None

    def host_reaching(self: _Store, transport: str, address: str | None, port: int) -> str | None:
        """The name of a host that already reaches this machine (the local one, or the same
        address and port), if any."""
        if transport == "local":
            row = self.query_one("SELECT name FROM hosts WHERE transport = 'local'")
        else:
            row = self.query_one(
                "SELECT name FROM hosts WHERE lower(address) = lower(?) AND port = ?",
                (address, port),
            )
        return None if row is None else str(row["name"])

    def host_busy(self: _Store, name: str) -> int:
        """How many attempts are starting or running on a host."""
        row = self.query_one(
            "SELECT COUNT(*) AS n FROM attempts WHERE host = ? AND state IN ('starting', 'running')",
            (name,),
        )
        return int(row["n"]) if row else 0

    def delete_host(self: _Store, name: str) -> None:
        self.execute("DELETE FROM hosts WHERE name = ?", (name,))

    def set_host_labels(self: _Store, name: str, labels: Sequence[Any]) -> None:
        self.execute("UPDATE hosts SET labels = ? WHERE name = ?", (json.dumps(list(labels)), name))

    def last_host_event(self: _Store, name: str, kind: str) -> dict[str, Any] | None:
        """The latest event of `kind` about host `name` (its actor and data)."""
        return self.query_one(
            "SELECT actor, data FROM events WHERE kind = ? AND host = ? ORDER BY id DESC LIMIT 1",
            (kind, name),
        )

    # -- the audit trail, notifications, budgets -----------------------------------------------

    def events_by(
        self: _Store,
        limit: int = 100,
        job_id: int | None = None,
        user: str | None = None,
        since: float | None = None,
    ) -> list[dict[str, Any]]:
        """The audit trail, newest first: by job, by acting user, since a time."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("job_id", job_id), ("actor", user)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("at >= ?")
            params.append(float(since))
        sql = "SELECT * FROM events" + (f" WHERE {' AND '.join(where)}" if where else "")
        return self.query(sql + " ORDER BY id DESC LIMIT ?", [*params, int(limit)])

    def notify_user(self: _Store, user: str) -> dict[str, Any]:
        """A user's notification defaults row ({} when they set none)."""
        return self.query_one("SELECT * FROM notify_users WHERE user = ?", (user,)) or {}

    def save_notify_user(
        self: _Store, user: str, notify_on: str | None, email: str | None, webhook: str | None
    ) -> None:
        self.execute(
            "INSERT INTO notify_users (user, notify_on, email, webhook, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(user) DO UPDATE SET notify_on = "
            "excluded.notify_on, email = excluded.email, webhook = excluded.webhook, "
            "updated_at = excluded.updated_at",
            (user, notify_on, email, webhook, self.clock()),
        )

    def has_budgets(self: _Store) -> bool:
        return self.query_one("SELECT 1 AS n FROM budgets LIMIT 1") is not None

    # -- notifications (`lepton_tui.notify`): the cursor over events, the outbox ---------------

    def notify_cursor(self: _Store) -> int | None:
        """The last event already turned into notifications (None before the first round)."""
        row = self.query_one("SELECT event_id FROM notify_cursor WHERE id = 1")
        return None if row is None else int(row["event_id"])

    def create_notify_cursor(self: _Store) -> None:
        """Start the cursor at the latest event (a no-op when it exists)."""
        self.execute(
            "INSERT OR IGNORE INTO notify_cursor (id, event_id) "
            "SELECT 1, COALESCE(MAX(id), 0) FROM events"
        )

    def move_notify_cursor(self: _Store, event_id: int) -> None:
        self.execute("UPDATE notify_cursor SET event_id = ? WHERE id = 1", (event_id,))

    def last_event_id(self: _Store) -> int:
        """The id of the latest event (0 when there is none)."""
        row = self.query_one("SELECT MAX(id) AS id FROM events")
        return int((row or {}).get("id") or 0)

    def has_hard_budget(self: _Store) -> bool:
        """Whether any budget is hard (only a hard budget holds jobs)."""
        return self.query_one("SELECT 1 AS x FROM budgets WHERE hard = 1 LIMIT 1") is not None

    def notified_endings(
        self: _Store, after: int, upto: int, kinds: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The events of `kinds` in (after, upto] of jobs that asked to be told (`notify_on`):
        the event's `kind`, the job's `id`, `user` and `notify_on`, in event order."""
        marks = ", ".join("?" for _ in kinds)
        return self.query(
            "SELECT e.kind, j.id, j.user, j.notify_on FROM events e JOIN jobs j "
            f"ON j.id = e.job_id WHERE e.id > ? AND e.id <= ? AND e.kind IN ({marks}) "
            "AND j.notify_on IS NOT NULL ORDER BY e.id",
            (after, upto, *kinds),
        )

    def untold_holds(self: _Store, reason_prefix: str) -> list[dict[str, Any]]:
        """Queued jobs held for a reason starting with `reason_prefix` that asked to hear of
        holds and have no `hold` notification yet (`id`, `user`, `notify_on`)."""
        return self.query(
            "SELECT id, user, notify_on FROM jobs WHERE state = 'queued' AND reason LIKE ? "
            "AND notify_on LIKE '%hold%' AND NOT EXISTS (SELECT 1 FROM notifications n "
            "WHERE n.job_id = jobs.id AND n.event = 'hold')",
            (reason_prefix + "%",),
        )

    def add_notification(
        self: _Store, job_id: int, event: str, channel: str, target: str, at: float
    ) -> int:
        """A pending notification row; 1 when made, 0 when it was already there."""
        cur = self.execute(
            "INSERT OR IGNORE INTO notifications (job_id, event, channel, target, state, "
            "created_at) VALUES (?, ?, ?, ?, 'pending', ?)",
            (job_id, event, channel, target, at),
        )
        return int(cur.rowcount)

    def job_or_none(self: _Store, job_id: int) -> dict[str, Any] | None:
        """A job's row as stored (None when there is no such job)."""
        return self.query_one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    def abandon_sending(self: _Store, me: str) -> int:
        """Mark `unknown` the rows a sender other than `me` claimed and never recorded (never
        sent again: at most once); how many."""
        cur = self.execute(
            "UPDATE notifications SET state = 'unknown', error = 'the dispatcher stopped while "
            "sending it; not sent again (at most once)' WHERE state = 'sending' AND "
            "(claimed_by IS NULL OR claimed_by != ?)",
            (me,),
        )
        return int(cur.rowcount)

    def due_notifications(self: _Store, now: float, limit: int) -> list[dict[str, Any]]:
        """Pending notifications due by `now`, oldest first."""
        return self.query(
            "SELECT * FROM notifications WHERE state = 'pending' AND (next_at IS NULL OR "
            "next_at <= ?) ORDER BY id LIMIT ?",
            (now, limit),
        )

    def claim_notification(self: _Store, notification_id: int, at: float, me: str) -> bool:
        """Claim a pending row for sending (one more try); False when it is no longer pending."""
        cur = self.execute(
            "UPDATE notifications SET state = 'sending', claimed_at = ?, claimed_by = ?, "
            "tries = tries + 1 WHERE id = ? AND state = 'pending'",
            (at, me, notification_id),
        )
        return bool(cur.rowcount)

    def notification_not_sent(
        self: _Store, notification_id: int, state: str, next_at: float | None, error: str
    ) -> None:
        """A send that failed: `pending` again from `next_at`, or `failed`."""
        self.execute(
            "UPDATE notifications SET state = ?, next_at = ?, error = ? WHERE id = ?",
            (state, next_at, error, notification_id),
        )

    def notification_failed(self: _Store, notification_id: int, error: str) -> None:
        self.execute(
            "UPDATE notifications SET state = 'failed', error = ? WHERE id = ?",
            (error, notification_id),
        )

    def notification_sent(self: _Store, notification_id: int, at: float) -> None:
        self.execute(
            "UPDATE notifications SET state = 'sent', sent_at = ?, error = NULL WHERE id = ?",
            (at, notification_id),
        )

    def latest_notifications(self: _Store, user: str | None, limit: int) -> list[dict[str, Any]]:
        """The latest notifications (of `user`'s jobs, or all) with the job's user, newest
        first."""
        sql = (
            "SELECT n.id, n.job_id, n.event, n.channel, n.state, n.tries, n.created_at, "
            "n.sent_at, n.error, j.user FROM notifications n JOIN jobs j ON j.id = n.job_id"
        )
        params: list[Any] = []
        if user is not None:
            sql += " WHERE j.user = ?"
            params.append(user)
        return self.query(sql + " ORDER BY n.id DESC LIMIT ?", [*params, int(limit)])
