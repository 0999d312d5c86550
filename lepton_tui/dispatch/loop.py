"""The dispatcher: ledger, policy and hosts joined into a control loop that never loses a job.

This module is the loop; each step is a module of `lepton_tui.dispatch` (named below).

Exactly one runs per ledger: it holds an `fcntl` lock on `dispatcher.lock` beside the ledger.
`lepton-tui serve` runs it headless; the console runs it in a thread when it gets the lock.

Each tick:
1. control requests (`control`): `cancelling` jobs are cancelled on their host (drain and
   resume act through the host rows the view is built from);
2. every host is polled in parallel (`record`), one round trip each (attempt status and
   utilization);
3. per host, in one transaction (`record`; the rules in `outcome`): samples, attempt
   transitions (running, done with exit code, lost), host state; then stale copies of lost
   attempts on a host that came back are killed (fencing, `fence`) before anything new may run
   there;
4. the cluster view is built from the ledger (`view`: capacity minus active attempts, GPUs by
   index);
5. the policy places queued jobs whose dependencies (after-ok) are met and that no budget
   holds (`place`);
6. each placement is written as a `starting` attempt and committed (`place`), then launched (in
   parallel across hosts, one round trip per host; `launch`), then marked `running`.

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
  amends the ledger (`lepton_tui.dispatch.truth`). A wrapper that never records itself is lost
  after the grace too (`start_timeout_s`).
- `cancel_grace_s` (10): seconds between TERM and KILL on cancel and at the time limit.
- `cost_weight` (0.0): passed to the policy.
- `long_share` (0.0): under `sjf`, long jobs (time limit over 1 h) hold at most this share of the
  CPUs and of the GPUs (`SJFPolicy(long_share=...)`); 0: no limit. The DQN has its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from inventory.fanout import Ok
from lepton_tui import paths
from lepton_tui.dispatch import control, fence, launch, place, record, runas
from lepton_tui.dispatch import slurm as dslurm
from lepton_tui.dispatch.common import Ctx, Stats, TickResult
from lepton_tui.dispatch.hostpool import HostPool, poll_host
from lepton_tui.dispatch.lock import DispatcherLock
from lepton_tui.dispatch.samples import compact_samples
from lepton_tui.dispatch.view import FirstFitPolicy
from lepton_tui.errors import LeptonError
from lepton_tui.ledger import Ledger, open_ledger
from lepton_tui.local_state import current_user
from lepton_tui.rows import ActiveAttempt, AttemptRow

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

__all__ = ["Dispatcher", "DispatcherHandle", "DispatcherLock", "Stats", "TickResult"]


class OpenLedger(Protocol):
    """What the dispatcher takes from an open `lepton_tui.service.Service`: its ledger and state
    directory (a protocol, so the dispatcher never imports the service above it)."""

    ledger: Ledger
    home: Path


class Dispatcher:
    """The control loop over one ledger. Make one, take the lock, then `tick()` or `run()`."""

    def __init__(
        self,
        home_or_service: OpenLedger | str | os.PathLike[str] | None = None,
        *,
        pool: HostPool | None = None,
        clock: Callable[[], float] = time.time,
        poll_timeout_s: float = 20.0,
        before_launch: Callable[[list[ActiveAttempt]], None] | None = None,
        tick_s: float | None = None,
    ) -> None:
        self.service: OpenLedger | None = None  # the caller's service, when given one
        if home_or_service is None or isinstance(home_or_service, (str, os.PathLike)):
            self.home = paths.state_dir(home_or_service)
            self.ledger: Ledger = open_ledger(self.home / paths.LEDGER_FILE)
            self.ledger.claim_owner(current_user())  # as `Service.open` would
            self._own_ledger = True
        else:
            self.service = home_or_service
            self.ledger = home_or_service.ledger
            self.home = Path(home_or_service.home)
            self._own_ledger = False
        self.clock = clock
        self.pool = pool or HostPool(self.home / paths.KNOWN_HOSTS_FILE)
        self.lock = DispatcherLock(self.home / paths.LOCK_FILE)
        self.slurm = dslurm.SlurmHosts(self.pool, self.ledger)  # Slurm hosts' verbs
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
        self._weights: tuple[str, int] | None = None  # installed DQN weights (path, mtime)
        self._bad_settings: dict[str, str] = {}
        self._last_reason: dict[int, str] = {}
        self._last_compact = 0.0

    @property
    def ctx(self) -> Ctx:
        """What the steps work with (read afresh: tests swap the clock or the pool)."""
        return Ctx(
            self.ledger, self.pool, self.slurm, self.clock, self.stats, self.poll_timeout_s,
            self.setting,
        )  # fmt: skip

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
        weights = installed_weights(self.home) if name == "dqn" else None
        key = (name, weight, share)
        if self._policy is not None and self._policy_key == key and self._weights == weights:
            return self._policy
        self._policy_key, self._weights = key, weights
        self._policy = load_policy(name, weight, share, weights[0] if weights else None)
        return self._policy

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set (the lock must be held)."""
        if not self.lock.held:
            raise LeptonError("the dispatcher lock is not held", "call acquire() first")
        from lepton_tui.autopilot import AutopilotWorker

        autopilot = AutopilotWorker(self.home, self.ledger.path, stop).start()  # beside the loop
        from lepton_tui.notify import NotifyWorker

        notifier = NotifyWorker(self.ledger, stop).start()  # notifications, beside the loop
        while not stop.is_set():
            begun = time.monotonic()
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - one bad tick must not stop dispatching
                log.exception("tick failed; retrying next tick")
            tick_s = max(0.05, self.tick_override or self.setting("tick_s"))
            stop.wait(max(0.0, tick_s - (time.monotonic() - begun)))
        autopilot.join()
        notifier.join()

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
        if self._own_ledger:
            self.ledger.close()

    def tick(self) -> TickResult:
        """One round: control, poll, record, fence, place, launch (the design's steps)."""
        with self.pool.threads.current():  # every step's fan-out on one pool, kept across ticks
            return self._tick()

    def _tick(self) -> TickResult:
        cpu0 = _cpu_s()
        begun = time.monotonic()
        trips0 = self.pool.round_trips
        ctx, result, now = self.ctx, TickResult(), self.clock()
        hosts = self.ledger.hosts()
        by_name = {h["name"]: h for h in hosts}
        self._drained = set()  # hosts this tick drains (their launches fail)
        self.pool.forget(list(by_name))
        active = record.orphans(ctx, hosts, self.ledger.active_attempts())
        if self._unreconciled is None:
            self._unreconciled = {a.host for a in active}
        # a host removed since (`hosts rm --force`) is never polled again: nothing to wait for
        self._unreconciled &= set(by_name)
        with self._phase("control"):  # 1
            control.send_cancels(ctx, hosts, active)
        with self._phase("poll"):  # 2
            polls = record.poll(ctx, hosts, active, result, poll_host)  # looked up here: a seam
        with self._phase("record"):  # 3
            ok_hosts, relaunch = self._record(ctx, by_name, polls, active, result, now)
        with self._phase("fence"):
            fenced_ok = fence.fence(ctx, hosts, polls, self._kill_stale, self._removed_tried)
        if relaunch:
            with self._phase("launch"):
                launch.launch(ctx, relaunch, by_name, True, self._drained)
        placeable = {
            n
            for n in ok_hosts & fenced_ok
            if by_name[n].get("admin_state") != "draining" and n not in self._drained
        }
        result.reconciled = not self._unreconciled
        with self._phase("place"):  # 4, 5, 6 (includes "launch")
            starts = place.place(
                ctx, hosts, placeable, result.reconciled, now, self.policy, self._last_reason
            )
            result.placed = len(starts)
            if starts and self.before_launch is not None:
                self.before_launch(starts)
            if starts:
                with self._phase("launch"):
                    result.launched = launch.launch(ctx, starts, by_name, False, self._drained)
        if now - self._last_compact >= COMPACT_EVERY_S:
            self._last_compact = now
            with self._phase("housekeeping"):
                self._housekeeping(now)
        self._count(cpu0, begun, trips0, result)
        return result

    def _record(
        self,
        ctx: Ctx,
        by_name: Mapping[str, dict[str, Any]],
        polls: Mapping[str, Any],
        active: list[ActiveAttempt],
        result: TickResult,
        now: float,
    ) -> tuple[set[str], list[ActiveAttempt]]:
        """Record every host's poll; the hosts that answered and the attempts to relaunch."""
        assert self._unreconciled is not None
        ok_hosts: set[str] = set()
        relaunch: list[ActiveAttempt] = []
        for name, answer in polls.items():
            host = by_name[name]
            if isinstance(answer, Ok):
                ok_hosts.add(name)
                relaunch += record.record_poll(ctx, host, answer.value, active, result)
                self._unreconciled.discard(name)
            elif record.record_failure(ctx, host, answer, active, now):
                self._unreconciled.discard(name)
        return ok_hosts, relaunch

    def _count(self, cpu0: float, begun: float, trips0: int, result: TickResult) -> None:
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

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """Add the wall time of a tick's phase to `stats.phase_s` (for the benchmark)."""
        begun = time.monotonic()
        try:
            yield
        finally:
            self.stats.phase_s[name] = self.stats.phase_s.get(name, 0.0) + time.monotonic() - begun

    def _kill_stale(self, host: Mapping[str, Any], atts: list[AttemptRow]) -> dict[str, int]:
        """Fence `atts` on `host` in one round trip; signals that hit, per token it handled."""
        if dslurm.is_slurm(host):
            return self.slurm.kill_stale(host, [a.token for a in atts])
        return runas.kill_stale(self.pool, host, runas.by_owner(self.pool, atts))  # as the owners

    def _housekeeping(self, now: float) -> None:
        compact_samples(self.ledger, now)
        report_waste(self.ledger, now)
        with self.ledger.tx():
            self.ledger.trim_decisions(DECISIONS_KEEP)
        live = self.ledger.queued_job_ids()
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


def installed_weights(home: Path) -> tuple[str, int] | None:
    """The installed DQN weights that run (`lepton-tui policy install`), as (path, mtime) so a
    reinstall reloads them; None: the shipped ones."""
    from lepton_tui.policies import active_weights

    path = active_weights(home)
    try:
        return (str(path), path.stat().st_mtime_ns) if path is not None else None
    except OSError:
        return None


def load_policy(
    name: str, cost_weight: float = 0.0, long_share: float = 0.0, weights: str | None = None
) -> Any:
    """The named policy from scheduler.registry; backfill (one logged line) when it fails.
    `long_share` > 0 gives `sjf` its long-job limit (other policies ignore it); `weights` are the
    DQN's (None: the shipped ones)."""
    from scheduler.registry import make_policy

    for candidate in dict.fromkeys([name, "backfill"]):
        options: dict[str, Any] = {"cost_weight": cost_weight}
        if candidate == "sjf" and long_share > 0:
            options["long_share"] = long_share
        if candidate == "dqn" and weights is not None:
            options["weights"] = weights
        try:
            try:
                return make_policy(candidate, **options)
            except TypeError:
                return make_policy(candidate)
        except Exception as exc:  # noqa: BLE001 - fall back, say so once
            log.warning("policy %r failed to load (%s); falling back to backfill", candidate, exc)
    return FirstFitPolicy()


def report_waste(ledger: Ledger, now: float) -> None:
    """Tell owners about idle allocated GPUs and record foreign GPU use (never kills)."""
    from lepton_tui.economics.waste import find_waste, notify_waste

    try:
        notify_waste(ledger, find_waste(ledger, now))
    except Exception:  # noqa: BLE001 - waste reports must not stop dispatching
        log.exception("waste detection failed")


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
