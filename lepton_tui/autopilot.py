"""The policy autopilot: the lab's own recent history, replayed under every policy, picks the next.

With the `policy` setting at `auto` (the default), a worker beside the dispatcher runs a *round*
every `autopilot_period_s`: it replays the last `autopilot_window_s` of the ledger's history (the
same `replay` machinery as `lepton-tui replay`) under every registered policy but the ILP (too
slow to run every tick), scores each with the lab's objective

    average bounded slowdown + cost_weight x cost of the window

and records the winner with the whole league table as one `autopilot` event. The dispatcher runs
the latest recorded winner until the next round. Nothing else is written, so a round killed
half-way leaves the previous choice in force, and a restarted dispatcher reads its choice back
from the ledger. With fewer than `autopilot_min_jobs` ended jobs in the window, a round chooses
`FALLBACK` (EASY backfilling, Slurm's default: never starves a job and needs no estimates to be
good) and says why. `settings set policy NAME` pins a policy (rounds stop switching; the
dispatcher runs NAME); `settings set policy auto` unpins.

The round runs in a child process (`python -m lepton_tui.autopilot`), so its simulation never
holds the dispatcher's interpreter lock and a crash in a policy never reaches `serve`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lepton_tui.ledger import Ledger

log = logging.getLogger("lepton_tui.autopilot")

AUTO = "auto"
FALLBACK = "backfill"
EXCLUDED = frozenset({"ilp"})  # an integer program per round: too slow for every tick
EVENT = "autopilot"  # a finished round: its choice and league table (the only record it writes)
EVENT_START = "autopilot.start"  # a round began (so a dying round is not retried every check)
RETRY_S = 300.0  # a round that died is tried again after this (or the period, if shorter)
LOG_FILE = "autopilot.log"
# Test seam: while the file this names exists, a round waits after replaying its first policy
# (so a test can kill it mid-round deterministically).
HOLD_ENV = "LEPTON_AUTOPILOT_HOLD"


@dataclass(frozen=True)
class Standing:
    """One policy's line in the league table."""

    policy: str
    objective: float
    avg_bounded_slowdown: float
    cost: float
    mean_wait_s: float
    finished: int


@dataclass
class Decision:
    """A round's outcome: the policy chosen, why, and the league table behind it."""

    policy: str
    reason: str
    at: float
    since: float
    until: float
    jobs: int
    cost_weight: float
    table: list[Standing] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fallback: bool = False
    took_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["table"] = [
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in asdict(s).items()}
            for s in self.table
        ]  # fmt: skip
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Decision:
        table = [
            Standing(
                str(s["policy"]), _num(s.get("objective")), _num(s.get("avg_bounded_slowdown")),
                _num(s.get("cost")), _num(s.get("mean_wait_s")), int(s.get("finished") or 0),
            )
            for s in d.get("table") or []
        ]  # fmt: skip
        return cls(
            str(d["policy"]), str(d.get("reason") or ""), float(d.get("at") or 0),
            float(d.get("since") or 0), float(d.get("until") or 0), int(d.get("jobs") or 0),
            float(d.get("cost_weight") or 0), table, list(d.get("notes") or []),
            bool(d.get("fallback")), float(d.get("took_s") or 0),
        )  # fmt: skip


def _num(v: Any) -> float:
    return math.inf if v is None else float(v)


# -- pure parts ----------------------------------------------------------------------------------


def candidates() -> list[str]:
    """Every registered policy the autopilot tries: all but the ILP."""
    from scheduler.registry import POLICY_NAMES

    return [p for p in POLICY_NAMES if p not in EXCLUDED]


def objective(avg_bounded_slowdown: float, cost: float, cost_weight: float) -> float:
    """The lab's objective (lower is better); a policy that finished nothing scores infinity."""
    value = avg_bounded_slowdown + cost_weight * cost
    return value if math.isfinite(value) else math.inf


def choose(table: list[Standing], current: str | None) -> Standing | None:
    """The best standing; on a tie (within 1e-9) the current policy keeps its turn, else the
    first in the table's (the registry's) order. None when no policy finished anything."""
    most = max((s.finished for s in table), default=0)
    # a policy that left jobs unfinished would be scored on the easy ones only
    scored = [s for s in table if math.isfinite(s.objective) and s.finished == most]
    if not scored:
        return None
    best = min(s.objective for s in scored)
    tied = [s for s in scored if s.objective <= best + 1e-9 * max(1.0, abs(best))]
    return next((s for s in tied if s.policy == current), tied[0])


def span(seconds: float) -> str:
    """A period in words: 7 d, 1 h, 90 s."""
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g} d"
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"


def explain(
    best: Standing, table: list[Standing], jobs: int, window_s: float, weight: float
) -> str:
    """One line: why `best` won."""
    what = "avg bounded slowdown" + (f" + {weight:g} x cost" if weight else "")
    text = (f"{best.policy}: lowest objective {best.objective:.4g} ({what}) replaying "
            f"{jobs} job(s) of the last {span(window_s)}")  # fmt: skip
    others = sorted((s for s in table if s is not best and math.isfinite(s.objective)),
                    key=lambda s: s.objective)  # fmt: skip
    if others:
        nxt = others[0]
        gap = (nxt.objective / best.objective - 1) * 100 if best.objective > 0 else 0.0
        text += f"; next {nxt.policy} {nxt.objective:.4g} (+{gap:.1f} %)"
    return text


# -- the ledger's record ----------------------------------------------------------------------


def latest(ledger: Ledger) -> Decision | None:
    """The last recorded round's decision (None before the first)."""
    row = ledger.last_lab_event(EVENT)
    if row is None or not row["data"]:
        return None
    try:
        return Decision.from_dict(json.loads(row["data"]))
    except (ValueError, KeyError, TypeError):
        return None


def ended_jobs(ledger: Ledger, since: float, until: float) -> int:
    """Jobs submitted in [since, until) that have ended (what a replay can use, at most)."""
    return ledger.ended_jobs_submitted(since, until)


def setting(ledger: Ledger, key: str) -> Any:
    """A setting's value in force (stored, else its default)."""
    from lepton_tui.settings import SETTINGS

    return ledger.get_setting(key, SETTINGS[key].default)


def policy_in_force(ledger: Ledger) -> tuple[str, str]:
    """(policy, why) the dispatcher runs: the pinned one, else the last round's choice, else
    the fallback."""
    name = str(setting(ledger, "policy"))
    if name != AUTO:
        return name, f"pinned by an admin (settings set policy {name}; `auto` unpins)"
    decision = latest(ledger)
    if decision is None:
        return FALLBACK, f"no autopilot round yet: {FALLBACK} until the first one"
    return decision.policy, decision.reason


def summary(ledger: Ledger) -> dict[str, Any]:
    """What `lepton-tui autopilot` and the scheduler screen show: the setting, the policy in
    force and why, the period, window and minimum, and the last round (None before the first)."""
    name = str(setting(ledger, "policy"))
    policy, why = policy_in_force(ledger)
    decision = latest(ledger)
    return {
        "setting": name,
        "pinned": name != AUTO,
        "policy": policy,
        "why": why,
        "period_s": float(setting(ledger, "autopilot_period_s")),
        "window_s": float(setting(ledger, "autopilot_window_s")),
        "min_jobs": int(setting(ledger, "autopilot_min_jobs")),
        "last_round": decision.as_dict() if decision else None,
    }


def due(ledger: Ledger, now: float) -> bool:
    """Whether a round should run now: the policy is `auto` and the last round is a period old
    (a round that started and died is retried after RETRY_S, or the period if shorter)."""
    if str(setting(ledger, "policy")) != AUTO:
        return False
    period = float(setting(ledger, "autopilot_period_s"))
    done, began = ledger.last_lab_event_at(EVENT), ledger.last_lab_event_at(EVENT_START)
    if done is not None and now < done + period:
        return False
    return (
        began is None or (done is not None and began <= done) or now >= began + min(RETRY_S, period)
    )


# -- a round -----------------------------------------------------------------------------------


def run_round(ledger: Ledger, now: float | None = None, actor: str | None = None) -> Decision:
    """Replay the window under every candidate, record the winner and the table, return it."""
    from lepton_tui.economics.replay import replay_ledger

    begun = time.monotonic()
    now = ledger.clock() if now is None else now
    window = float(setting(ledger, "autopilot_window_s"))
    need = int(setting(ledger, "autopilot_min_jobs"))
    weight = float(setting(ledger, "cost_weight") or 0.0)
    since = now - window
    with ledger.tx():
        ledger.event(EVENT_START, f"autopilot round: replaying the last {span(window)}",
                     actor=actor, at=now)  # fmt: skip
    previous = latest(ledger)
    table: list[Standing] = []
    notes: list[str] = []
    jobs = ended_jobs(ledger, since, now)
    hold = os.environ.get(HOLD_ENV)
    for i, name in enumerate(candidates() if jobs >= need else []):
        # One replay per policy: a policy that raises costs only its own line.
        try:
            result = replay_ledger(ledger, since, now, [name], cost_weight=weight)
        except Exception as exc:  # noqa: BLE001 - one broken policy must not end the round
            notes.append(f"{name}: replay failed ({type(exc).__name__}: {exc})")
            continue
        jobs = result.jobs
        notes.extend(n for n in result.notes if n.startswith(f"{name}:"))
        for row in result.rows[1:]:  # the first row is what really happened
            table.append(
                Standing(row.policy, objective(row.mean_bounded_slowdown, row.cost, weight),
                         row.mean_bounded_slowdown, row.cost, row.mean_wait_s, row.finished)
            )  # fmt: skip
        if not result.rows:  # nothing ended in the window: the other policies would say the same
            break
        if i == 0 and hold and os.path.exists(hold):
            Path(hold + ".reached").touch()
            while os.path.exists(hold):
                time.sleep(0.05)
    table.sort(key=lambda s: s.objective)
    best = choose(table, previous.policy if previous else None)
    if jobs < need:
        policy, fallback = FALLBACK, True
        reason = (f"{FALLBACK} (fallback): only {jobs} ended job(s) in the last {span(window)}, "
                  f"the autopilot needs {need} (autopilot_min_jobs) to choose")  # fmt: skip
    elif best is None:
        policy, fallback = FALLBACK, True
        reason = f"{FALLBACK} (fallback): no policy's replay finished ({'; '.join(notes)})"
    else:
        policy, fallback = best.policy, False
        reason = explain(best, table, jobs, window, weight)
    decision = Decision(policy, reason, now, since, now, jobs, weight, table, notes, fallback,
                        round(time.monotonic() - begun, 3))  # fmt: skip
    pinned = str(setting(ledger, "policy"))
    message = f"autopilot chose {policy}" + (f" (pinned: {pinned} runs)" if pinned != AUTO else "")
    with ledger.tx():
        ledger.event(EVENT, message, actor=actor, data=decision.as_dict(), at=now)
    return decision


# -- the worker beside the dispatcher ------------------------------------------------------------


class AutopilotWorker:
    """A thread that, while `stop` is unset, runs a round in a child process whenever one is due."""

    def __init__(self, home: Path, ledger_path: Path, stop: threading.Event) -> None:
        self.home = Path(home)
        self.ledger_path = Path(ledger_path)
        self.stop = stop
        self.rounds = 0  # child processes started
        self.limit_s = 3600.0  # a round's longest run (the period)
        self.thread = threading.Thread(target=self._loop, name="lepton-autopilot", daemon=True)

    def start(self) -> AutopilotWorker:
        self.thread.start()
        return self

    def join(self, timeout: float = 10.0) -> None:
        self.thread.join(timeout)

    def _loop(self) -> None:
        # its own connection and query count: the dispatcher's ledger object is not touched
        ledger = Ledger(self.ledger_path)
        try:
            while not self.stop.is_set():
                try:
                    self._check(ledger)
                    wait = max(0.2, min(60.0, float(setting(ledger, "autopilot_period_s")) / 4))
                except Exception:  # noqa: BLE001 - the worker must outlive a bad check
                    log.exception("autopilot check failed")
                    wait = 60.0
                if self.stop.wait(wait):
                    return
        finally:
            ledger.close()

    def _check(self, ledger: Ledger) -> None:
        now = time.time()
        if not due(ledger, now):
            return
        window = float(setting(ledger, "autopilot_window_s"))
        if ended_jobs(ledger, now - window, now) < int(setting(ledger, "autopilot_min_jobs")):
            run_round(ledger, now, actor="autopilot")  # the fallback: no replay, no child needed
        else:
            self.limit_s = float(setting(ledger, "autopilot_period_s"))
            self._round()

    def _round(self) -> None:
        """One round in a child process; stopped (its choice not recorded) if we stop."""
        self.rounds += 1
        fd = os.open(self.home / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            child = subprocess.Popen(
                [sys.executable, "-m", "lepton_tui.autopilot", "--home", str(self.home)],
                stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(fd)
        # a round may take at most one period: a slower one (a policy gone quadratic) is
        # stopped, its choice not recorded, and tried again after RETRY_S
        deadline = time.monotonic() + self.limit_s
        while child.poll() is None:
            if self.stop.wait(0.1) or time.monotonic() > deadline:
                if not self.stop.is_set():
                    log.warning("autopilot round ran past %.0f s; stopped it", self.limit_s)
                child.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(5)
                if child.poll() is None:
                    child.kill()
                    child.wait()
                return
        if child.returncode:
            log.warning("autopilot round exited %s (see %s)", child.returncode, LOG_FILE)


def main(argv: list[str] | None = None) -> int:
    """The worker's child: one round on the ledger under --home, if still due (or --force)."""
    from lepton_tui import paths

    parser = argparse.ArgumentParser(prog="python -m lepton_tui.autopilot")
    parser.add_argument("--home", required=True)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    ledger = Ledger(paths.ledger_path(args.home))
    try:
        if args.force or due(ledger, ledger.clock()):
            d = run_round(ledger, actor="autopilot")
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} chose {d.policy}: {d.reason}", flush=True)
    finally:
        ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
