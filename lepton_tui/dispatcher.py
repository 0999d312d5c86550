"""The dispatcher: ledger, policy and hosts joined into a control loop that never loses a job.

Exactly one runs per ledger: it holds an `fcntl` lock on `dispatcher.lock` beside the ledger.
`lepton-tui serve` runs it headless; the console runs it in a thread when it gets the lock.

Each tick:
1. control requests: `cancelling` jobs are cancelled on their host (drain and resume act through
   the host rows the view is built from);
2. every host is polled in parallel, one round trip each (attempt status and utilization);
3. per host, in one transaction: samples, attempt transitions (running, done with exit code,
   lost), host state; then stale copies of lost attempts on a host that came back are killed
   (fencing) before anything new may run there;
4. the cluster view is built from the ledger (capacity minus active attempts, GPUs by index);
5. the policy places queued jobs whose dependencies (after-ok) are met and that no budget holds;
6. each placement is written as a `starting` attempt and committed, then launched (in parallel
   across hosts, one round trip per host), then marked `running`.

Exactly once: an attempt's token names its directory on the host, created with `mkdir`, so a
launch repeated after a crash is a no-op. On start, placement waits until every `starting` and
`running` attempt has been reconciled with its host; a `starting` attempt the host has never
seen is launched again with the same token.

Settings (keys of the `settings` table):
- `policy` (default "auto": the autopilot's choice, see lepton_tui.autopilot; or a pinned name,
  e.g. "dqn", the trained policy run in numpy): one that fails to load falls back to backfill
  with one logged line.

Defaults come from `lepton_tui.settings.SETTINGS` when it knows the key (one source of truth for
the console, `lepton-tui settings` and this loop), else from `DEFAULTS` below.
- `tick_s` (2): seconds between ticks.
- `host_grace_s` (120): a host whose failed polls in a row (two at least) span this long is
  `down`; its attempts are lost and their jobs requeued (while retries last) or failed. Retries
  (`--retries`) are spent only on lost attempts that ran or may have (host down, wrapper killed,
  host removed); a job that exits non-zero has failed. When the host answers again, what it says
  amends the ledger (`lepton_tui.dispatch_truth`). A wrapper that never records itself is lost
  after the grace too (`start_timeout_s`).
- `cancel_grace_s` (10): seconds between TERM and KILL on cancel and at the time limit.
- `cost_weight` (0.0): passed to the policy.
- `long_share` (0.0): under `sjf`, long jobs (time limit over 1 h) hold at most this share of the
  CPUs and of the GPUs (`SJFPolicy(long_share=...)`); 0: no limit. The DQN has its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import resource
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inventory import supervisor
from inventory.fanout import Failed, Ok, fan_out
from inventory.supervisor import AttemptStatus, LaunchSpec
from inventory.transport import never_sent
from lepton_tui import dispatch_slurm, paths
from lepton_tui import dispatch_truth as truth
from lepton_tui.dispatch_samples import compact_samples, record_samples
from lepton_tui.dispatch_view import (
    REASON_POLICY,
    REASON_RECONCILING,
    FirstFitPolicy,
    build_view,
    job_request,
    job_resources,
    sort_queued,
    waiting_reason,
)
from lepton_tui.errors import IllegalTransition, LeptonError
from lepton_tui.hostpool import HostPool, Poll, poll_host
from lepton_tui.ledger import Ledger
from lepton_tui.place_rules import PlaceRules
from lepton_tui.service import Service

log = logging.getLogger("lepton_tui.dispatcher")

DEFAULTS: dict[str, Any] = {
    "policy": "auto",
    "tick_s": 2.0,
    "host_grace_s": 120.0,
    "cancel_grace_s": 10.0,
    "cost_weight": 0.0,
    "long_share": 0.0,
}
COMPACT_EVERY_S = 60.0
DECISIONS_KEEP = 5000
MAX_LAUNCH_TRIES = 3
MIN_START_TIMEOUT_S = 10.0  # see start_timeout_s
MIN_FAILED_POLLS = 2  # a host is down after this many failed polls in a row spanning the grace
FREE_LOSSES = 3  # attempts per job lost before they ran that spend no retry
REMOVED_RETRY_S = 30.0  # how often fencing tries a removed host again
# an attempt that may have started: seen running, or lost unseen after its launch went out
_MAY_HAVE_RUN = "(started_at IS NOT NULL OR (presumed = 1 AND launch_sent_at IS NOT NULL))"
DECISIONS_PER_ROUND = 200
EXPLAIN_PER_ROUND = 50


# -- the lock ----------------------------------------------------------------------------------


class DispatcherLock:
    """An exclusive, non-blocking `flock` on a file beside the ledger; the holder dispatches."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock if free; True when this object holds it."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder_pid(self) -> int | None:
        """The pid written by the current holder (None if unknown)."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


# -- counters ---------------------------------------------------------------------------------


@dataclass
class Stats:
    """What the dispatcher did, for the benchmark, tests and the console."""

    ticks: int = 0
    polls: int = 0
    poll_failures: int = 0
    launches: int = 0
    relaunches: int = 0
    cancels_sent: int = 0
    fenced: int = 0
    placements: int = 0
    cpu_s: float = 0.0  # this process's CPU time spent inside tick()
    last_tick_s: float = 0.0
    last_round_trips: int = 0
    phase_s: dict[str, float] = field(default_factory=dict)  # wall time per phase, summed


@dataclass
class TickResult:
    """One tick's outcome (for `serve --once` and tests)."""

    polled: int = 0
    failed: int = 0
    placed: int = 0
    launched: int = 0
    finished: int = 0
    reconciled: bool = True
    round_trips: int = 0


def _status_of(poll: Poll, token: str) -> AttemptStatus:
    return poll.attempts.get(token) or AttemptStatus(token, "missing")


class Dispatcher:
    """The control loop over one ledger. Make one, take the lock, then `tick()` or `run()`."""

    def __init__(
        self,
        home_or_service: Service | str | os.PathLike[str] | None = None,
        *,
        pool: HostPool | None = None,
        clock: Callable[[], float] = time.time,
        poll_timeout_s: float = 20.0,
        before_launch: Callable[[list[dict[str, Any]]], None] | None = None,
        tick_s: float | None = None,
    ) -> None:
        if isinstance(home_or_service, Service):
            self.service = home_or_service
            self._own_service = False
        else:
            self.service = Service.open(home_or_service)
            self._own_service = True
        self.ledger: Ledger = self.service.ledger
        self.home = Path(self.service.home)
        self.clock = clock
        self.pool = pool or HostPool(self.home / paths.KNOWN_HOSTS_FILE)
        self.lock = DispatcherLock(self.home / paths.LOCK_FILE)
        self.slurm = dispatch_slurm.SlurmHosts(self.pool, self.ledger)  # Slurm hosts' verbs
        self.poll_timeout_s = poll_timeout_s
        self.before_launch = before_launch  # test seam: called after the intent, before launch
        self.tick_override = tick_s  # `serve --tick`; else the tick_s setting
        self.stats = Stats()
        self.started_at = clock()
        self._unreconciled: set[str] | None = None  # hosts with attempts from before this start
        self._drained: set[str] = set()
        self._removed_tried: dict[str, float] = {}  # removed host -> when fencing last tried it
        self._policy: Any = None
        self._policy_key: tuple[Any, ...] | None = None
        self._bad_settings: dict[str, str] = {}
        self._last_reason: dict[int, str] = {}
        self._last_compact = 0.0

    # -- settings and policy -----------------------------------------------------------------

    def setting(self, key: str) -> Any:
        """A dispatcher setting from the ledger, or its default."""
        default = setting_default(key)
        value = self.ledger.get_setting(key, default)
        try:
            typed = type(DEFAULTS[key])(value)
            if value != default:
                check_stored_setting(key, typed)  # the same rules as `settings set`
            return typed
        except (TypeError, ValueError, LeptonError):
            # one warning per value (every tick reads settings)
            if self._bad_settings.get(key) != repr(value):
                self._bad_settings[key] = repr(value)
                log.warning("setting %s = %r is not valid; using %r", key, value, default)
            return default

    def policy(self) -> Any:
        """The configured policy (cached until its settings change)."""
        name, weight = self.setting("policy"), self.setting("cost_weight")
        share = self.setting("long_share")
        if name == "auto":  # the autopilot's latest choice (lepton_tui.autopilot)
            from lepton_tui.autopilot import policy_in_force

            name = policy_in_force(self.ledger)[0]
        if self._policy is not None and self._policy_key == (name, weight, share):
            return self._policy
        self._policy_key = (name, weight, share)
        self._policy = load_policy(name, weight, share)
        return self._policy

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set (the lock must be held)."""
        if not self.lock.held:
            raise LeptonError("the dispatcher lock is not held", "call acquire() first")
        from lepton_tui.autopilot import AutopilotWorker

        autopilot = AutopilotWorker(self.home, self.ledger.path, stop).start()  # beside the loop
        while not stop.is_set():
            begun = time.monotonic()
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - one bad tick must not stop dispatching
                log.exception("tick failed; retrying next tick")
            tick_s = max(0.05, self.tick_override or self.setting("tick_s"))
            stop.wait(max(0.0, tick_s - (time.monotonic() - begun)))
        autopilot.join()

    def acquire(self) -> bool:
        """Take the per-ledger lock; False when another process dispatches."""
        return self.lock.acquire()

    def start_in_thread(self, retry_s: float | None = None) -> DispatcherHandle:
        """Dispatch in a daemon thread if this process gets the lock (the handle says whether).

        With `retry_s`, a process that does not get the lock keeps trying every `retry_s` seconds
        and takes over when the other dispatcher stops (the console uses this).
        """
        handle = DispatcherHandle(self)
        if self.acquire() or retry_s is not None:
            handle.thread = threading.Thread(
                target=self._serve_when_locked,
                args=(handle.stop_event, retry_s),
                name="lepton-dispatcher",
                daemon=True,
            )
            handle.thread.start()
        return handle

    def _serve_when_locked(self, stop: threading.Event, retry_s: float | None) -> None:
        while not self.lock.held:
            if retry_s is None or stop.wait(retry_s):
                return
            if self.acquire():
                log.warning("took over dispatching (the other dispatcher stopped)")
        try:
            self.run(stop)
        finally:  # a tick that outlived `DispatcherHandle.stop`'s wait still held the lock
            if stop.is_set():
                self.lock.release()

    def close(self) -> None:
        """Release the lock and connections."""
        self.lock.release()
        self.pool.close()
        if self._own_service:
            self.service.close()

    def tick(self) -> TickResult:
        """One round: control, poll, record, fence, place, launch."""
        cpu0 = _cpu_s()
        begun = time.monotonic()
        trips0 = self.pool.round_trips
        result = TickResult()
        now = self.clock()
        hosts = self.ledger.hosts()
        self._drained = set()  # hosts this tick drains (their launches fail)
        self.pool.forget([h["name"] for h in hosts])
        active = self._orphans(hosts, self._active_attempts())
        if self._unreconciled is None:
            self._unreconciled = {a["host"] for a in active}
        # a host removed since (`hosts rm --force`) is never polled again: nothing to wait for
        self._unreconciled &= {h["name"] for h in hosts}
        with self._phase("control"):
            self._send_cancels(hosts, active)
        with self._phase("poll"):
            polls = self._poll(hosts, active, result)
        ok_hosts: set[str] = set()
        relaunch: list[dict[str, Any]] = []
        by_name = {h["name"]: h for h in hosts}
        with self._phase("record"):
            for name, outcome in polls.items():
                host = by_name[name]
                if isinstance(outcome, Ok):
                    ok_hosts.add(name)
                    relaunch += self._record_poll(host, outcome.value, active, result)
                    self._unreconciled.discard(name)
                elif self._record_failure(host, outcome, active, now):
                    self._unreconciled.discard(name)
        with self._phase("fence"):
            fenced_ok = self._fence(hosts, polls)
        if relaunch:
            with self._phase("launch"):
                self._launch(relaunch, by_name, relaunch=True)
        placeable = {
            n
            for n in ok_hosts & fenced_ok
            if by_name[n].get("admin_state") != "draining" and n not in self._drained
        }
        result.reconciled = not self._unreconciled
        with self._phase("place"):  # includes "launch"
            result.placed, result.launched = self._place(hosts, placeable, result.reconciled, now)
        if now - self._last_compact >= COMPACT_EVERY_S:
            self._last_compact = now
            with self._phase("housekeeping"):
                self._housekeeping(now)
        self.stats.ticks += 1
        self.stats.cpu_s += _cpu_s() - cpu0
        self.stats.last_tick_s = time.monotonic() - begun
        result.round_trips = self.pool.round_trips - trips0
        self.stats.last_round_trips = result.round_trips
        if result.placed or result.finished or result.failed:
            log.info(
                "tick %d: polled %d (%d failed), placed %d, launched %d, finished %d, %d round trips",
                self.stats.ticks, result.polled, result.failed, result.placed, result.launched,
                result.finished, result.round_trips,
            )  # fmt: skip
        return result

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """Add the wall time of a tick's phase to `stats.phase_s` (for the benchmark)."""
        begun = time.monotonic()
        try:
            yield
        finally:
            self.stats.phase_s[name] = self.stats.phase_s.get(name, 0.0) + time.monotonic() - begun

    # -- step 1: control ----------------------------------------------------------------------

    def _active_attempts(self) -> list[dict[str, Any]]:
        return self.ledger.query(
            "SELECT a.*, j.state AS job_state, j.retries, j.attempts_used, j.time_limit_s, "
            "j.command, j.workdir, j.env FROM attempts a JOIN jobs j ON j.id = a.job_id "
            "WHERE a.state IN ('starting', 'running') ORDER BY a.id"
        )

    def _orphans(
        self, hosts: list[dict[str, Any]], active: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Lose attempts on hosts removed from the ledger (`hosts rm --force`); return the rest."""
        names = {h["name"] for h in hosts}
        orphans = [a for a in active if a["host"] not in names]
        if not orphans:
            return active
        with self.ledger.tx():  # left unfenced: `_fence_removed` stops what still runs there
            for a in orphans:
                self._lose(
                    a, f"host {a['host']} was removed", self._job_state(a["job_id"]),
                    presumed=True,
                )  # fmt: skip
        for a in orphans:
            settle(self.ledger, a["token"])
        return [a for a in active if a["host"] in names]

    def _send_cancels(self, hosts: list[dict[str, Any]], active: list[dict[str, Any]]) -> None:
        up = {h["name"]: h for h in hosts if h["state"] == "up"}
        todo: dict[str, list[str]] = {}
        for a in active:
            if a["job_state"] == "cancelling" and a.get("cancel_sent_at") is None:
                if a["host"] in up:
                    todo.setdefault(a["host"], []).append(a["token"])
        if not todo:
            return
        grace = self.setting("cancel_grace_s")

        def call(host: dict[str, Any], tokens: list[str]) -> list[str]:
            if dispatch_slurm.is_slurm(host):
                return self.slurm.cancel(host, tokens)  # one scancel
            spec, transport = self.pool.get(host)
            found = supervisor.cancel_batch(transport, spec, tokens, grace_s=grace)  # 1 trip
            # a token the host did not find (a directory hidden for a while) or could not handle
            # is sent again next tick, until its attempt ends one way or the other
            return [t for t in tokens if found.get(t)]

        results = fan_out(
            {name: _bind(call, up[name], toks) for name, toks in todo.items()},
            timeout=self.poll_timeout_s,
        )
        now = self.clock()
        with self.ledger.tx():  # kept in the ledger: `serve --once` does not TERM again each run
            for name, outcome in results.items():
                if isinstance(outcome, Ok):
                    for token in outcome.value:
                        self.ledger.execute(
                            "UPDATE attempts SET cancel_sent_at = ? WHERE token = ?", (now, token)
                        )
                    self.stats.cancels_sent += len(outcome.value)
                else:
                    log.warning("cancel on %s failed: %s", name, outcome.reason)

    # -- step 2 and 3: poll and record --------------------------------------------------------

    def _poll(
        self, hosts: list[dict[str, Any]], active: list[dict[str, Any]], result: TickResult
    ) -> dict[str, Ok[Poll] | Failed]:
        tokens: dict[str, list[str]] = {h["name"]: [] for h in hosts}
        for a in active:
            tokens.setdefault(a["host"], []).append(a["token"])
        for a in self._unfenced():
            tokens.setdefault(a["host"], []).append(a["token"])
        calls = {}
        for host in hosts:
            try:
                spec, transport = self.pool.get(host)
            except LeptonError as exc:
                calls[host["name"]] = _raiser(exc)
                continue
            if dispatch_slurm.is_slurm(host):  # one squeue however many jobs
                calls[host["name"]] = _bind(self.slurm.poll, host, tokens[host["name"]])
                continue
            calls[host["name"]] = _bind(poll_host, transport, spec, tokens[host["name"]])
        polls = fan_out(calls, timeout=self.poll_timeout_s)
        result.polled = len(polls)
        result.failed = sum(1 for p in polls.values() if not isinstance(p, Ok))
        self.stats.polls += result.polled
        self.stats.poll_failures += result.failed
        return polls

    def _unfenced(self) -> list[dict[str, Any]]:
        return self.ledger.query(
            "SELECT * FROM attempts WHERE state = 'lost' AND fenced_at IS NULL ORDER BY id"
        )

    def _record_poll(
        self,
        host: dict[str, Any],
        poll: Poll,
        active: list[dict[str, Any]],
        result: TickResult,
    ) -> list[dict[str, Any]]:
        """Record one host's poll in one transaction; return `starting` attempts to (re)launch."""
        name = host["name"]
        now = self.clock()
        relaunch = []
        ended: list[str] = []
        with self.ledger.tx():
            values: dict[str, Any] = {
                "last_seen": now, "last_error": None, "state": "up",
                "failed_polls": 0, "failing_since": None,
            }  # fmt: skip
            values.update(_discovered_capacity(host, poll))
            self.ledger.update("hosts", host["id"], values)
            if host["state"] != "up":
                self.ledger.event("host.up", f"host {name} is up", host=name, actor="dispatcher")
            record_samples(self.ledger, poll, now)
            for a in active:
                if a["host"] != name:
                    continue
                st = _status_of(poll, a["token"])
                outcome = self._apply_status(a, st)
                if outcome == "relaunch":
                    relaunch.append(a)
                elif outcome == "ended":
                    ended.append(a["token"])
            for token in ended:  # cost settled in the same transaction as the end
                settle(self.ledger, token)
        result.finished += len(ended)
        return relaunch

    def _apply_status(self, a: dict[str, Any], st: AttemptStatus) -> str | None:
        """Move one attempt (and its job) as its host reports; inside the host's transaction."""
        token, job_state = a["token"], self._job_state(a["job_id"])
        if st.state == "running" and a["state"] == "starting":
            self._mark_running(a, st)
            return None
        if st.state == "done":
            self._finish(a, st, job_state)
            return "ended"
        if st.state == "missing" and a["state"] == "running":
            # Not proof that the job died: a network filesystem can hide the directory for a
            # while. Lose it only once it has stayed out of sight for the host grace period.
            # (kept in the ledger: a restarted dispatcher, or `serve --once`, goes on counting)
            first = a.get("missing_since")
            if first is None:
                first = self.clock()
                self.ledger.execute(
                    "UPDATE attempts SET missing_since = ? WHERE token = ?", (first, token)
                )
            if self.clock() - first < self.setting("host_grace_s"):
                return None
            why = f"its directory has been gone from the host for {self.clock() - first:.0f}s"
            self._lose(a, f"attempt lost on {a['host']}: {why}", job_state)
            return "ended"
        if a.get("missing_since") is not None and st.state != "unreadable":
            self.ledger.execute(
                "UPDATE attempts SET missing_since = NULL WHERE token = ?", (token,)
            )
        if st.state == "lost":
            why = st.reason or "its wrapper is gone"
            if st.started_at and not a.get("started_at"):  # it did run: that spends a retry
                self.ledger.execute(
                    "UPDATE attempts SET started_at = ? WHERE token = ?", (st.started_at, token)
                )
            self._lose(a, f"attempt lost on {a['host']}: {why}", job_state)
            return "ended"
        if st.state == "unreadable":  # nothing concluded; said once, so someone can look
            said = self.ledger.query_one(
                "SELECT 1 AS x FROM events WHERE kind = 'attempt.unreadable' AND job_id = ? "
                "AND json_extract(data, '$.token') = ?",
                (a["job_id"], token),
            )
            if not said:
                self.ledger.event(
                    "attempt.unreadable",
                    f"job {a['job_id']} attempt {a['attempt_no']}: its files on {a['host']} "
                    f"cannot be read ({st.reason}); left as it is until they can",
                    job_id=a["job_id"], host=a["host"], actor="dispatcher",
                    data={"token": token},
                )  # fmt: skip
            return None
        if st.state == "missing" and a["state"] == "starting":
            if job_state == "cancelling":
                # lost, not cancelled: a launch still in flight may yet start it, and a lost
                # attempt is fenced (looked for by token and killed) before anything else runs
                self._lose(a, "before it started", job_state)
                return "ended"
            return "relaunch"
        return None

    def _cancel_was_sent(self, token: str) -> bool:
        row = self.ledger.query_one("SELECT cancel_sent_at FROM attempts WHERE token = ?", (token,))
        return bool(row and row["cancel_sent_at"] is not None)

    def _job_state(self, job_id: int) -> str:
        row = self.ledger.query_one("SELECT state FROM jobs WHERE id = ?", (job_id,))
        return row["state"] if row else "missing"

    def _mark_running(self, a: Mapping[str, Any], st: AttemptStatus | None) -> None:
        fields: dict[str, Any] = {"started_at": (st.started_at if st else None) or self.clock()}
        if self._job_state(a["job_id"]) == "starting":
            self.ledger.transition_attempt(
                a["token"], "running", job_state="running",
                job_fields={"started_at": fields["started_at"]}, **fields,
            )  # fmt: skip
        else:  # cancelling: the cancel goes out next tick
            self.ledger.transition_attempt(a["token"], "running", **fields)

    def _finish(self, a: Mapping[str, Any], st: AttemptStatus, job_state: str) -> None:
        code = st.exit_code
        state, reason = truth.ended_state(st)
        target = state
        if job_state == "running" and state == "cancelled":
            target = "failed"  # cancelled on the host without a request here (an admin by hand)
        if job_state == "cancelling" and state == "failed" and self._cancel_was_sent(a["token"]):
            target = "cancelled"
        fields: dict[str, Any] = {"exit_code": code, "ended_at": st.ended_at or self.clock()}
        if st.started_at:
            # The host's own clock for both ends: a start this loop stamped with its clock
            # (launch seen before the wrapper wrote its pid) could land after a quick job's end.
            fields["started_at"] = st.started_at
        started = fields.get("started_at") or a.get("started_at")
        if started is not None and fields["ended_at"] < started:
            fields["ended_at"] = started
        job_fields = {"exit_code": code, "ended_at": fields["ended_at"]}
        if job_state in ("starting", "running", "cancelling"):
            if job_state == "starting" and st.started_at:
                job_fields["started_at"] = st.started_at
            self.ledger.transition_attempt(
                a["token"], state, job_state=target, reason=reason, job_fields=job_fields, **fields
            )
        else:
            self.ledger.transition_attempt(a["token"], state, reason=reason, **fields)

    def _lose(
        self, a: Mapping[str, Any], why: str, job_state: str, *, presumed: bool = False
    ) -> None:
        """Mark an attempt lost; requeue its job while retries last, else fail it.

        A retry is spent by an attempt that started running; one lost before its job ever ran (a
        failed launch, a host that went down while starting it) is not the job's fault, up to
        FREE_LOSSES of them per job (so a launch that does run the job but never answers cannot
        start it again and again).

        `presumed`: the host did not answer (down, removed), so what became of the attempt is
        not known. One whose launch may have gone out (`launch_sent_at`) then counts as started:
        it is *unknown*, never "not started", until its host says (`_amend`), so a job with no
        retries left is not placed again while that copy may run.
        """
        if presumed:
            self.ledger.execute("UPDATE attempts SET presumed = 1 WHERE token = ?", (a["token"],))
        job = self.ledger.query_one(
            f"SELECT retries, (SELECT COUNT(*) FROM attempts WHERE job_id = jobs.id "
            f"AND {_MAY_HAVE_RUN}) AS ran, (SELECT COUNT(*) FROM attempts "
            f"WHERE job_id = jobs.id) AS made, (SELECT {_MAY_HAVE_RUN} FROM attempts "
            "WHERE token = ?) AS this_ran, (SELECT started_at IS NULL FROM attempts "
            "WHERE token = ?) AS unseen FROM jobs WHERE id = ?",
            (a["token"], a["token"], a["job_id"]),
        )
        spent = 0
        if job:
            ran = int(job["ran"])
            spent = ran + max(0, int(job["made"]) - ran - FREE_LOSSES)
        if presumed and job and job["this_ran"] and job["unseen"]:
            why = f"{why}; its launch may have run there"
        if job_state == "cancelling":
            target, reason = "cancelled", f"cancelled ({why})"
        elif job_state in ("starting", "running"):
            if job and spent <= int(job["retries"]):
                if job["this_ran"] or spent > int(job["ran"]):
                    how = f"retry {spent} of {job['retries']}"
                else:
                    how = "it had not started: no retry spent"
                target, reason = "queued", f"requeued ({how}): {why}"
            else:
                target, reason = "failed", f"{why} (no retries left)"
        else:
            target, reason = None, why
        self.ledger.transition_attempt(a["token"], "lost", job_state=target, reason=reason)
        if target == "queued":
            self.ledger.update("jobs", a["job_id"], {"host": None})

    def _record_failure(
        self, host: dict[str, Any], outcome: Failed, active: list[dict[str, Any]], now: float
    ) -> bool:
        """A missed poll: count it in the host's streak; mark the host down once consecutive
        failed polls (at least MIN_FAILED_POLLS) span the grace period. True if down.

        The time since the host last answered is no measure: one tick slower than the grace (a
        loaded login node) would mark a healthy host down on its first missed poll, and its
        jobs, running fine, would be lost with it.
        """
        name = host["name"]
        grace = self.setting("host_grace_s")
        streak = int(host.get("failed_polls") or 0) + 1
        since = host.get("failing_since")
        since = now if since is None else float(since)
        with self.ledger.tx():
            self.ledger.update(
                "hosts", host["id"],
                {"last_error": outcome.reason[:500], "failed_polls": streak,
                 "failing_since": since},
            )  # fmt: skip
            if host["state"] == "down":
                return True
            if streak < MIN_FAILED_POLLS or now - since < grace:
                return False
            self.ledger.update("hosts", host["id"], {"state": "down"})
            self.ledger.event(
                "host.down",
                f"host {name} is down: {streak} polls in a row failed over {now - since:.0f}s "
                f"({outcome.reason})",
                host=name, actor="dispatcher",
            )  # fmt: skip
            if dispatch_slurm.is_slurm(host):  # its jobs run in Slurm, not on the node lepton
                active = []  # reaches: none is lost; they are reconciled when it answers again
            for a in active:
                if a["host"] == name:
                    self._lose(
                        a, f"host {name} is down", self._job_state(a["job_id"]), presumed=True
                    )
        for a in active:
            if a["host"] == name:
                settle(self.ledger, a["token"])
        log.warning("host %s is down: %s", name, outcome.reason)
        return True

    # -- fencing ------------------------------------------------------------------------------

    def _fence(self, hosts: list[dict[str, Any]], polls: Mapping[str, Any]) -> set[str]:
        """Kill still-running copies of lost attempts; return hosts with nothing left to fence."""
        by_name = {h["name"]: h for h in hosts}
        todo: dict[str, list[dict[str, Any]]] = {}
        statuses: dict[str, AttemptStatus] = {}
        now = self.clock()
        for a in self._unfenced():
            outcome = polls.get(a["host"])
            if not isinstance(outcome, Ok):
                continue
            st = statuses[a["token"]] = _status_of(outcome.value, a["token"])
            # the host's truth first: an ended attempt's real exit code, a copy taken back
            job, latest = self._amend_context(a)
            amendment = truth.before_fence(a, job, st, latest, now)
            if amendment is not None:
                self._amend(a, amendment)
                if not amendment.fence or st.state == "done":
                    continue
            if st.state == "done":  # its wrapper ended: nothing of it runs
                with self.ledger.tx():
                    self.ledger.update("attempts", a["id"], {"fenced_at": now})
            else:  # running, starting, lost, or missing (its processes are looked for by token)
                todo.setdefault(a["host"], []).append(a)
        if todo:
            results = fan_out(
                {n: _bind(self._kill_stale, by_name[n], atts) for n, atts in todo.items()},
                timeout=self.poll_timeout_s,
            )
            for name, outcome in results.items():
                if not isinstance(outcome, Ok):
                    log.warning("fencing on %s failed: %s", name, outcome.reason)
                    # once per streak: a streak begins with the oldest attempt still to fence
                    since = min(float(a.get("ended_at") or 0.0) for a in todo[name])
                    said = self.ledger.query_one(
                        "SELECT 1 AS x FROM events WHERE host = ? AND kind = 'host.fence_failed' "
                        "AND at >= ? LIMIT 1",
                        (name, since),
                    )
                    if not said:
                        self.ledger.event(
                            "host.fence_failed",
                            f"host {name} takes no new jobs until {len(todo[name])} old "
                            f"attempt(s) there are stopped; stopping them failed: "
                            f"{outcome.reason}",
                            host=name, actor="dispatcher",
                        )  # fmt: skip
                    continue
                with self.ledger.tx():
                    for a in todo[name]:
                        if a["token"] in outcome.value:  # else the host could not: next tick
                            killed = outcome.value[a["token"]]
                            self._fenced(a, killed, f"stale copy on {name} "
                                         "killed before anything else runs there")  # fmt: skip
                            job, latest = self._amend_context(a)
                            st = statuses[a["token"]]
                            amendment = truth.after_fence(a, job, st, killed, latest)
                            if amendment is not None:
                                self._amend(a, amendment)
                log.warning("fenced %d stale attempt(s) on %s", len(todo[name]), name)
        self._fence_removed(hosts)
        left = {a["host"] for a in self._unfenced()}
        return {h["name"] for h in hosts} - left

    def _amend_context(self, a: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """An attempt's job row, and whether the attempt is the job's latest."""
        job = self.ledger.query_one(
            "SELECT state, (SELECT MAX(id) FROM attempts WHERE job_id = jobs.id) AS latest "
            "FROM jobs WHERE id = ?",
            (a["job_id"],),
        ) or {"state": "missing", "latest": None}
        return job, job["latest"] == a["id"]

    def _amend(self, a: Mapping[str, Any], amendment: truth.Amendment) -> None:
        """Record what the host said of an attempt presumed lost (and correct its job)."""
        with self.ledger.tx():
            self.ledger.amend_attempt(
                a["token"], amendment.note, state=amendment.attempt_state,
                **amendment.attempt_fields,
            )  # fmt: skip
            if amendment.job_state is not None:
                self.ledger.amend_job(
                    a["job_id"], amendment.job_state, amendment.note, **amendment.job_fields
                )
        log.warning("job %s: %s", a["job_id"], amendment.note)
        if amendment.attempt_fields.get("ended_at"):
            settle(self.ledger, a["token"])

    def _fenced(self, a: Mapping[str, Any], killed: int, what: str) -> None:
        """Record that nothing of attempt `a` runs any more (inside the caller's transaction)."""
        self.ledger.update("attempts", a["id"], {"fenced_at": self.clock()})
        self.ledger.event(
            "attempt.fenced",
            f"job {a['job_id']} attempt {a['attempt_no']}: {what} ({killed} signal(s))",
            job_id=a["job_id"], host=a["host"], actor="dispatcher",
            data={"token": a["token"], "killed": killed},
        )  # fmt: skip
        self.stats.fenced += 1

    def _kill_stale(self, host: Mapping[str, Any], atts: list[dict[str, Any]]) -> dict[str, int]:
        """Fence `atts` on `host` in one round trip; signals that hit, per token it handled."""
        if dispatch_slurm.is_slurm(host):
            return self.slurm.kill_stale(host, [a["token"] for a in atts])
        spec, transport = self.pool.get(host)
        return supervisor.kill_stale_batch(transport, spec, [a["token"] for a in atts])

    def _fence_removed(self, hosts: list[dict[str, Any]]) -> None:
        """Stop what still runs of attempts on hosts removed with `hosts rm --force`, reaching
        them with the connection their `host.removed` event kept. One that cannot be reached
        for the host grace period is given up, with an event saying the job may still run."""
        names = {h["name"] for h in hosts}
        by_host: dict[str, list[dict[str, Any]]] = {}
        for a in self._unfenced():
            if a["host"] not in names:
                by_host.setdefault(a["host"], []).append(a)
        if not by_host:
            return
        removed: dict[str, tuple[float, dict[str, Any] | None]] = {}
        for name in by_host:
            ev = self.ledger.query_one(
                "SELECT at, data FROM events WHERE kind = 'host.removed' AND host = ? "
                "ORDER BY id DESC LIMIT 1",
                (name,),
            )
            data = json.loads(ev["data"]) if ev and ev["data"] else {}
            conn = data.get("connection") if isinstance(data, dict) else None
            removed[name] = (float(ev["at"]) if ev else 0.0, conn)
        now, grace = self.clock(), self.setting("host_grace_s")
        # at most one try per host every REMOVED_RETRY_S (or grace): an unreachable host (the
        # usual reason for --force) must not add a connection timeout to every tick
        every = min(REMOVED_RETRY_S, grace)
        calls = {
            name: _bind(self._kill_stale, {**conn, "name": name}, by_host[name])
            for name, (_, conn) in removed.items()
            if conn and now - self._removed_tried.get(name, -math.inf) >= every
        }
        self._removed_tried.update(dict.fromkeys(calls, now))
        results = fan_out(calls, timeout=self.poll_timeout_s) if calls else {}
        with self.ledger.tx():
            for name, atts in by_host.items():
                outcome = results.get(name)
                at, conn = removed[name]
                if isinstance(outcome, Ok):
                    for a in atts:
                        if a["token"] in outcome.value:
                            self._fenced(
                                a, outcome.value[a["token"]], f"stopped on removed host {name}"
                            )
                    atts = [a for a in atts if a["token"] not in outcome.value]
                    if not atts:
                        continue
                tried = name in calls
                if conn is None or (tried and now - at >= grace):
                    if conn is None:
                        why = "no connection kept"
                    elif isinstance(outcome, Failed):
                        why = outcome.reason
                    else:
                        why = "the host could not stop it"
                    for a in atts:
                        self.ledger.update("attempts", a["id"], {"fenced_at": now})
                        self.ledger.event(
                            "attempt.unfenced",
                            f"job {a['job_id']} attempt {a['attempt_no']}: could not reach "
                            f"removed host {name} to stop it ({why}); it may still run there "
                            f"(its directory ends in -{a['token']})",
                            job_id=a["job_id"], host=name, actor="dispatcher",
                            data={"token": a["token"]},
                        )  # fmt: skip
                    log.warning("gave up stopping %d attempt(s) on removed %s", len(atts), name)

    # -- step 4 to 6: view, policy, launch ------------------------------------------------------

    def _place(
        self, hosts: list[dict[str, Any]], placeable: set[str], reconciled: bool, now: float
    ) -> tuple[int, int]:
        queued = self.ledger.query(
            "SELECT * FROM jobs WHERE state = 'queued' ORDER BY priority DESC, id"
        )
        if not queued:
            return 0, 0
        # A job whose lost attempt may still run on a host that answers (or on a host just
        # removed) waits until that copy is stopped, so it never runs twice; one on a host that
        # is down is requeued at once (the README says what that costs).
        fencing = {
            r["job_id"]: r["host"]
            for r in self.ledger.query(
                "SELECT a.job_id, a.host FROM attempts a LEFT JOIN hosts h ON h.name = a.host "
                "WHERE a.state = 'lost' AND a.fenced_at IS NULL "
                "AND (h.name IS NULL OR h.state != 'down')"
            )
        }
        held = {j["id"] for j in queued if j["id"] in fencing}
        queued = [j for j in queued if j["id"] not in held]
        deps = self.ledger.query(
            "SELECT d.job_id, d.depends_on, j.state FROM job_deps d "
            "JOIN jobs q ON q.id = d.job_id AND q.state = 'queued' "
            "JOIN jobs j ON j.id = d.depends_on"
        )
        holds = budget_holds(self.ledger, queued)
        sorting = sort_queued(queued, deps, holds, hosts)
        for job_id, reason in sorting.dependency_failed.items():
            try:
                self.ledger.transition_job(
                    job_id, "cancelled", reason=reason, actor="dispatcher", expect="queued"
                )
            except IllegalTransition:
                pass
        reasons = dict(sorting.reasons)
        if reconciled:  # jobs whose unmet dependencies all run in Slurm on one host: chained
            for job_id in self.slurm.chain(hosts, placeable, sorting.reasons, holds):
                reasons.pop(job_id, None)
        for job_id in held:
            reasons[job_id] = f"waiting until its last attempt on {fencing[job_id]} is stopped"
        placed: list[tuple[dict[str, Any], Any]] = []
        policy_name = None
        if sorting.pending and not reconciled:
            for job in sorting.pending:
                reasons[job["id"]] = REASON_RECONCILING
        elif sorting.pending:
            # the shared lab's rules: constraints, outside GPU use, limits, arrays, fair share
            rules = PlaceRules.prepare(self.ledger, sorting.pending, hosts, now)
            attempts = self.ledger.query(
                "SELECT a.*, j.time_limit_s FROM attempts a JOIN jobs j ON j.id = a.job_id "
                "WHERE a.state IN ('starting', 'running')"
            )
            view = rules.view(build_view(hosts, attempts, placeable, now))
            policy = self.policy()
            policy_name = getattr(policy, "name", type(policy).__name__)
            requests = [rules.request(j, job_request(j)) for j in rules.pending]
            try:
                decisions = list(policy.decide(view, requests, now))
            except Exception:  # noqa: BLE001 - a broken policy must not stop the loop
                log.exception("policy %s failed; placing nothing this tick", policy_name)
                decisions = []
            placed = rules.admit(self._check_placements(view, rules.pending, decisions))
            reasons.update(rules.reasons)
            placed_ids = {j["id"] for j, _ in placed}
            nodes = {n.id: n for n in view.nodes}
            # the view after the accepted placements, for honest "waiting for GPUs" reasons
            for job, p in placed:
                nodes[p.node_id] = nodes[p.node_id].allocate(job_resources(job), tuple(p.gpu_ids))
            after = type(view)(tuple(nodes.values()), now, view.running)
            memo: dict[Any, str] = {}  # many queued jobs ask for the same resources
            explained = 0
            for job in rules.pending:
                if job["id"] in placed_ids or job["id"] in rules.reasons:
                    continue
                req = job_resources(job)
                if req not in memo:
                    memo[req] = waiting_reason(req, after, None)
                reason = memo[req]
                # The policy's own words where they matter (it passed over a job that fits),
                # for the first jobs of the queue: explaining costs as much as deciding.
                if reason == REASON_POLICY and explained < EXPLAIN_PER_ROUND:
                    explained += 1
                    text = _explain(policy, job["id"])
                    reason = f"{reason}: {text}" if text else reason
                reasons[job["id"]] = rules.waiting(job, reason, placed_ids)
        current = {j["id"]: j["reason"] for j in queued}
        with self.ledger.tx():
            for job_id, reason in reasons.items():
                if current.get(job_id) != reason:
                    self.ledger.set_job_reason(job_id, reason)
            self._record_decisions(policy_name, placed, reasons, now)
        if not placed:
            return 0, 0
        starts = []
        with self.ledger.tx():  # every intent of the round, committed before any launch
            present = {r["name"] for r in self.ledger.query("SELECT name FROM hosts")}
            for job, p in placed:
                if p.node_id not in present:  # removed (`hosts rm`) since this tick read it
                    continue
                token = secrets.token_hex(6)
                try:
                    self.ledger.start_attempt(
                        job["id"], p.node_id, token, list(p.gpu_ids), policy=policy_name
                    )
                except IllegalTransition:  # cancelled since we read it
                    continue
                starts.append({**job, "job_id": job["id"], "token": token, "host": p.node_id,
                               "gpu_ids": list(p.gpu_ids), "state": "starting"})  # fmt: skip
        self.stats.placements += len(starts)
        if self.before_launch is not None:
            self.before_launch(starts)
        with self._phase("launch"):
            launched = self._launch(starts, {h["name"]: h for h in hosts}, relaunch=False)
        return len(starts), launched

    def _check_placements(
        self, view: Any, pending: Sequence[dict[str, Any]], decisions: Sequence[Any]
    ) -> list[tuple[dict[str, Any], Any]]:
        """Keep only placements that fit together (a policy bug never overcommits a host)."""
        from scheduler.model import Placement

        jobs = {j["id"]: j for j in pending}
        nodes = {n.id: n for n in view.nodes}
        out = []
        for p in decisions:
            job = jobs.pop(int(p.job_id), None) if str(p.job_id).isdigit() else None
            node = nodes.get(p.node_id)
            if job is None or node is None or not node.is_up:
                log.warning("policy placement %s ignored: unknown job or host not up", p)
                continue
            req = job_resources(job)
            gpu_ids = tuple(p.gpu_ids) or (node.pick_gpus(req) or ())
            try:
                nodes[p.node_id] = node.allocate(req, gpu_ids)
            except ValueError as exc:
                log.warning("policy placement of job %s ignored: %s", job["id"], exc)
                jobs[job["id"]] = job
                continue
            out.append((job, Placement(job["id"], p.node_id, gpu_ids)))
        return out

    def _record_decisions(
        self,
        policy_name: str | None,
        placed: list[tuple[dict[str, Any], Any]],
        reasons: dict[int, str],
        now: float,
    ) -> None:
        rows = 0
        for job, p in placed:
            self.ledger.insert("decisions", {
                "at": now, "policy": policy_name, "job_id": job["id"], "host": p.node_id,
                "placed": 1, "explanation": f"placed on {p.node_id}"
                + (f" GPUs {','.join(map(str, p.gpu_ids))}" if p.gpu_ids else ""),
            })  # fmt: skip
            self._last_reason.pop(job["id"], None)
        for job_id, reason in reasons.items():
            if rows >= DECISIONS_PER_ROUND or self._last_reason.get(job_id) == reason:
                continue
            self._last_reason[job_id] = reason
            self.ledger.insert("decisions", {
                "at": now, "policy": policy_name, "job_id": job_id, "host": None, "placed": 0,
                "explanation": reason,
            })  # fmt: skip
            rows += 1

    def _launch(
        self, starts: list[dict[str, Any]], hosts: Mapping[str, dict[str, Any]], relaunch: bool
    ) -> int:
        """Launch `starting` attempts, one round trip per host, in parallel; mark them running."""
        if not starts:
            return 0
        slurm_starts = [a for a in starts if dispatch_slurm.is_slurm(hosts.get(a["host"]))]
        submitted = 0
        if slurm_starts:  # sbatch; the attempts stay `starting` until Slurm runs them
            submitted = self.slurm.launch(hosts, slurm_starts, relaunch, self.poll_timeout_s)
            starts = [a for a in starts if not dispatch_slurm.is_slurm(hosts.get(a["host"]))]
        grace = self.setting("cancel_grace_s")
        targets: dict[str, tuple[Any, Any, list[LaunchSpec]]] = {}
        by_token = {}
        for a in starts:
            host = hosts.get(a["host"])
            if host is None:
                continue
            if self._job_state(a["job_id"]) == "cancelling":  # cancelled while `starting`
                with contextlib.suppress(IllegalTransition):
                    self.ledger.transition_attempt(
                        a["token"], "cancelled", job_state="cancelled",
                        reason="cancelled before it started",
                    )  # fmt: skip
                continue
            try:
                spec = LaunchSpec(
                    job_id=int(a["job_id"]), token=a["token"], command=a["command"],
                    workdir=a.get("workdir") or None, env=_env(a.get("env")),
                    gpu_ids=_gpu_list(a.get("gpu_ids")), time_limit_s=a.get("time_limit_s"),
                    kill_grace_s=grace,
                    end_patience_s=max(180.0, 1.5 * self.setting("host_grace_s")),
                    start_timeout_s=start_timeout_s(self.setting("host_grace_s")),
                )  # fmt: skip
            except ValueError as exc:
                self._give_up(a, f"cannot launch: {exc}")
                continue
            hspec, transport = self.pool.get(host)
            targets.setdefault(a["host"], (transport, hspec, []))[2].append(spec)
            by_token[a["token"]] = a
        # The intent to send, committed before anything goes out: an answer lost on the way
        # back (a dropped connection, this process killed) leaves the attempt unknown, not
        # "never started", and a restarted dispatcher asks the host before placing it again.
        sent_before = {t: by_token[t].get("launch_sent_at") for t in by_token}
        now = self.clock()
        with self.ledger.tx():
            for token, before in sent_before.items():
                if before is None:
                    self.ledger.execute(
                        "UPDATE attempts SET launch_sent_at = ? WHERE token = ?", (now, token)
                    )
        results = supervisor.launch_many(
            {h: (t, s, launches) for h, (t, s, launches) in targets.items()},
            timeout=self.poll_timeout_s,
        )
        launched = submitted
        for name, outcome in results.items():
            specs = targets[name][2]
            if not isinstance(outcome, Ok):
                log.warning("launch on %s failed (will retry): %s", name, outcome.reason)
                broken = []
                with self.ledger.tx():  # counted in the ledger, across restarts
                    if never_sent(outcome.error):  # no connection: nothing reached the host
                        for s in specs:
                            self.ledger.execute(
                                "UPDATE attempts SET launch_sent_at = ? WHERE token = ?",
                                (sent_before[s.token], s.token),
                            )
                    for s in specs:
                        tries = int(by_token[s.token].get("launch_failures") or 0) + 1
                        self.ledger.execute(
                            "UPDATE attempts SET launch_failures = ? WHERE token = ?",
                            (tries, s.token),
                        )
                        if tries >= MAX_LAUNCH_TRIES and _is_remote_error(outcome.error):
                            broken.append(by_token[s.token])
                if broken:  # the host answers but cannot start jobs (full disk, quota, ...)
                    self._launch_broken(hosts[name], broken, outcome.reason)
                continue
            with self.ledger.tx():
                for s, res in zip(specs, outcome.value, strict=True):
                    a = by_token[s.token]
                    row = self.ledger.query_one(
                        "SELECT state FROM attempts WHERE token = ?", (s.token,)
                    )
                    if row is None or row["state"] != "starting":
                        continue
                    self.ledger.execute(
                        "UPDATE attempts SET remote_dir = ? WHERE token = ?",
                        (res.remote_dir, s.token),
                    )
                    self._mark_running(a, None)
                    launched += 1
        self.stats.launches += launched
        if relaunch:
            self.stats.relaunches += launched
        return launched

    def _launch_broken(self, host: Mapping[str, Any], atts: list[dict[str, Any]], why: str) -> None:
        """A host whose agent answers but fails every launch: not the jobs' fault. Requeue them
        (a launch that never ran spends no retry, see `_lose`) and drain the host with the
        reason, as Slurm drains a node whose job launch fails, until an admin fixes it and
        resumes it. The attempts stay unfenced: anything that did start there is killed before
        the job is placed again (`_place`) or the host runs anything else."""
        name = host["name"]
        self._drained.add(name)
        with self.ledger.tx():
            for a in atts:
                job_state = self._job_state(a["job_id"])
                with contextlib.suppress(IllegalTransition):
                    self._lose(a, f"launch failed on {name}: {why}", job_state)
            self.ledger.update("hosts", host["id"], {"last_error": f"launch failed: {why}"[:500]})
            if host.get("admin_state") != "draining":
                self.ledger.update("hosts", host["id"], {"admin_state": "draining"})
                self.ledger.event(
                    "host.drain",
                    f"host {name} drained: launches fail there ({why}); fix it, then "
                    f"`lepton-tui hosts resume {name}`",
                    host=name, actor="dispatcher", data={"reason": why[:500]},
                )  # fmt: skip
        log.warning("host %s drained: %d launch(es) failed: %s", name, len(atts), why)

    def _give_up(self, a: Mapping[str, Any], why: str) -> None:
        """An attempt that can never launch: fail it and its job."""
        job_state = self._job_state(a["job_id"])
        target = "cancelled" if job_state == "cancelling" else "failed"
        with contextlib.suppress(IllegalTransition):
            self.ledger.transition_attempt(
                a["token"], "failed", job_state=target if job_state != target else None,
                reason=why,
            )  # fmt: skip

    # -- housekeeping -------------------------------------------------------------------------

    def _housekeeping(self, now: float) -> None:
        compact_samples(self.ledger, now)
        report_waste(self.ledger, now)
        with self.ledger.tx():
            self.ledger.execute(
                "DELETE FROM decisions WHERE id <= (SELECT MAX(id) FROM decisions) - ?",
                (DECISIONS_KEEP,),
            )
        live = {r["id"] for r in self.ledger.query("SELECT id FROM jobs WHERE state = 'queued'")}
        self._last_reason = {k: v for k, v in self._last_reason.items() if k in live}


class DispatcherHandle:
    """A dispatcher running in a background thread (or not, when another process holds the lock)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def dispatching(self) -> bool:
        """True when this process holds the lock and its thread runs."""
        alive = self.thread is not None and self.thread.is_alive()
        return alive and self.dispatcher.lock.held

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop after its current tick and release the lock."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():  # mid-tick (a slow host): the thread releases it on exit
                log.warning("dispatcher still finishing a tick; it releases the lock when done")
                return
        self.dispatcher.lock.release()


# -- helpers -----------------------------------------------------------------------------------


def start_timeout_s(host_grace_s: float) -> float:
    """How long an attempt may go without its wrapper's record before it reads as lost: the
    host grace (a wrapper killed before it recorded itself held its job 120 s whatever the
    grace), but at least MIN_START_TIMEOUT_S for a python3 slow to start on a loaded host."""
    return max(MIN_START_TIMEOUT_S, float(host_grace_s))


def check_stored_setting(key: str, value: Any) -> None:
    """Raise ValidationError when a stored value breaks the rules `settings set` applies (a
    ledger edited by hand, or an older version's value)."""
    from lepton_tui.settings import SETTINGS

    known = SETTINGS.get(key)
    if known is not None and key != "policy":  # an unknown policy falls back on its own
        known.parse(str(value))


def setting_default(key: str) -> Any:
    """The default of a dispatcher setting: the lab settings registry's, else DEFAULTS."""
    from lepton_tui.settings import SETTINGS

    known = SETTINGS.get(key)
    return DEFAULTS[key] if known is None else type(DEFAULTS[key])(known.default)


def load_policy(name: str, cost_weight: float = 0.0, long_share: float = 0.0) -> Any:
    """The named policy from scheduler.registry; backfill (one logged line) when it fails.
    `long_share` > 0 gives `sjf` its long-job limit (other policies ignore it)."""
    from scheduler.registry import make_policy

    for candidate in dict.fromkeys([name, "backfill"]):
        options: dict[str, Any] = {"cost_weight": cost_weight}
        if candidate == "sjf" and long_share > 0:
            options["long_share"] = long_share
        try:
            try:
                return make_policy(candidate, **options)
            except TypeError:
                return make_policy(candidate)
        except Exception as exc:  # noqa: BLE001 - fall back, say so once
            log.warning("policy %r failed to load (%s); falling back to backfill", candidate, exc)
    return FirstFitPolicy()


def budget_holds(ledger: Ledger, jobs: list[dict[str, Any]]) -> dict[int, str]:
    """Jobs a hard budget holds."""
    from lepton_tui.economics import budget_hold_reasons

    try:
        return {int(k): str(v) for k, v in budget_hold_reasons(ledger, jobs).items()}
    except Exception:  # noqa: BLE001 - a budget bug must not stop dispatching
        log.exception("budget_hold_reasons failed; holding nothing")
        return {}


def report_waste(ledger: Ledger, now: float) -> None:
    """Tell owners about idle allocated GPUs and record foreign GPU use (never kills)."""
    from lepton_tui.economics_waste import find_waste, notify_waste

    try:
        notify_waste(ledger, find_waste(ledger, now))
    except Exception:  # noqa: BLE001 - waste reports must not stop dispatching
        log.exception("waste detection failed")


def settle(ledger: Ledger, token: str) -> None:
    """Compute and store an ended attempt's cost."""
    from lepton_tui.economics import settle_attempt

    try:
        settle_attempt(ledger, token)
    except Exception:  # noqa: BLE001
        log.exception("settle_attempt(%s) failed", token)


def _explain(policy: Any, job_id: int) -> str:
    try:
        return str(policy.explain(job_id) or "")
    except Exception:  # noqa: BLE001
        return ""


def _discovered_capacity(host: Mapping[str, Any], poll: Poll) -> dict[str, Any]:
    """Probed capacity, except fields an admin fixed when adding the host (capacity_json)."""
    fixed = json.loads(host.get("capacity_json") or "{}")
    found: dict[str, Any] = {
        "cpus": float(poll.cpus),
        "mem_mb": int(poll.mem_total_mb),
        "gpus": len(poll.gpus),
        "gpu_mem_mb": int(sum(g.mem_total_mb or 0 for g in poll.gpus)),
    }
    if poll.gpus and poll.gpus[0].name:
        found["gpu_model"] = poll.gpus[0].name
    return {k: v for k, v in found.items() if k not in fixed}


def _env(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        value = json.loads(value or "{}")
    return {str(k): str(v) for k, v in (value or {}).items()}


def _gpu_list(value: Any) -> list[int]:
    if isinstance(value, str):
        value = json.loads(value or "[]")
    return [int(g) for g in value or []]


def _is_remote_error(exc: BaseException | None) -> bool:
    from inventory.errors import RemoteError

    return isinstance(exc, RemoteError)


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


def _raiser(exc: BaseException) -> Callable[[], Any]:
    def call() -> Any:
        raise exc

    return call
