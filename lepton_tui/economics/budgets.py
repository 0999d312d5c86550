"""Budgets: per project or user, per calendar month, in money or GPU-hours.

A budget warns at 80 % and at 100 % of its amount (shown by `queue` and the console). A hard
budget also holds the project's (or user's) *queued* jobs with a reason starting with "over
budget"; running jobs are never touched. Raising the budget, removing it, or the month turning
releases the held jobs: holds are recomputed from the ledger every time, never stored as state
of their own (the job's `reason` only shows them).
"""

from __future__ import annotations

import pwd
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from lepton_tui.economics.prices import currency_spans, format_money, get_currency, month_start
from lepton_tui.economics.report import cost_report
from lepton_tui.errors import NotFound, ValidationError
from lepton_tui.ledger import Ledger
from lepton_tui.validate import check_name, parse_number

SCOPES = ("project", "user")
UNITS = ("money", "gpu_hours")
WARN_AT = 0.8
HOLD_PREFIX = "over budget"


@dataclass(frozen=True)
class BudgetWarning:
    """A budget at or past 80 % of its amount this month. `.message` is one line for people."""

    scope: str
    name: str
    unit: str
    amount: float
    spent: float
    hard: bool
    level: str  # "warning" (>= 80 %) or "over" (>= 100 %)
    message: str

    @property
    def fraction(self) -> float:
        return self.spent / self.amount if self.amount else 0.0


@dataclass(frozen=True)
class BudgetStatus:
    """A budget with what its scope spent this month."""

    id: int
    scope: str
    name: str
    period: str
    amount: float
    unit: str
    hard: bool
    spent: float
    currency: str = ""  # a money budget's: the lab currency when it was set

    @property
    def fraction(self) -> float:
        return self.spent / self.amount if self.amount else 0.0

    @property
    def level(self) -> str:
        if self.fraction >= 1.0:
            return "over"
        if self.fraction >= WARN_AT:
            return "warning"
        return "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "scope": self.scope, "name": self.name, "period": self.period,
            "amount": self.amount, "unit": self.unit, "hard": self.hard,
            "spent": round(self.spent, 6), "fraction": round(self.fraction, 6),
            "level": self.level, "currency": self.currency or None,
        }  # fmt: skip


def _amount_text(amount: float, unit: str, currency: str) -> str:
    return format_money(amount, currency) if unit == "money" else f"{amount:,.1f} GPU-hours"


def known_projects(ledger: Ledger) -> list[str]:
    """Projects that jobs were charged to, plus those declared in the `projects` setting."""
    names = ledger.job_projects()
    names |= set(ledger.get_setting("projects", []) or [])
    return sorted(names)


def known_user(ledger: Ledger, name: str) -> bool:
    """`name` has an account on this machine or jobs in the ledger."""
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return ledger.user_has_jobs(name)


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ValidationError(f"budget scope {scope!r} is not project or user", field="scope")
    return scope


def check_unit(unit: str) -> str:
    text = str(unit).replace("-", "_").lower()
    if text not in UNITS:
        raise ValidationError(f"budget unit {unit!r} is not money or gpu_hours", field="unit")
    return text


def set_budget(
    ledger: Ledger,
    scope: str,
    name: str,
    amount: Any,
    unit: str = "money",
    *,
    hard: bool = False,
    new_project: bool = False,
    actor: str | None = None,
) -> BudgetStatus:
    """Create or replace the monthly budget of a project or user (one per scope, name and unit).

    An unknown project is refused unless `new_project` declares it (it is then added to the
    `projects` setting); an unknown user (no login and no job) is refused.
    """
    check_scope(scope)
    unit = check_unit(unit)
    check_name(name, scope)
    value = float(parse_number(amount, "budget amount", minimum=0, maximum=1e12))
    if value <= 0:
        raise ValidationError("budget amount must be more than zero", field="amount")
    if scope == "project" and name not in known_projects(ledger):
        if not new_project:
            known = ", ".join(known_projects(ledger)[:8]) or "none yet"
            raise ValidationError(
                f"unknown project {name!r} (known: {known})",
                "pass --new to budget a project that has no jobs yet",
                field="name",
            )
    if scope == "user" and not known_user(ledger, name):
        raise ValidationError(f"unknown user {name!r} (no such login and no jobs)", field="name")
    now = ledger.clock()
    with ledger.tx():
        if scope == "project" and new_project and name not in known_projects(ledger):
            projects = sorted({*(ledger.get_setting("projects", []) or []), name})
            ledger.set_setting("projects", projects, actor=actor)
        ledger.upsert_budget(scope, name, value, unit, hard, now, actor)
        ledger.event(
            "budget.set",
            f"budget of {scope} {name}: "
            f"{_amount_text(value, unit, get_currency(ledger))} a month"
            + (" (hard: holds new jobs)" if hard else ""),
            actor=actor,
            data={"scope": scope, "name": name, "amount": value, "unit": unit, "hard": hard},
            at=now,
        )
    return next(
        s for s in budget_status(ledger) if s.scope == scope and s.name == name and s.unit == unit
    )


def remove_budget(
    ledger: Ledger, scope: str, name: str, unit: str | None = None, actor: str | None = None
) -> int:
    """Remove a scope's budget (one unit, or all of them); returns how many were removed."""
    check_scope(scope)
    unit = None if unit is None else check_unit(unit)
    with ledger.tx():
        n = ledger.delete_budgets(scope, name, unit)
        if n == 0:
            raise NotFound(f"no budget for {scope} {name}", "see `lepton-tui budget ls`")
        ledger.event("budget.removed", f"budget of {scope} {name} removed", actor=actor,
                     data={"scope": scope, "name": name, "unit": unit})  # fmt: skip
    return n


def budget_status(
    ledger: Ledger, now: float | None = None, tz: tzinfo | None = None
) -> list[BudgetStatus]:
    """Every budget with its spend since the start of this month (money or GPU-hours)."""
    rows = ledger.budget_rows()
    if not rows:
        return []
    now = ledger.clock() if now is None else now
    since = month_start(now, tz)
    # money is spent in the currency in force at the time: a budget counts only the money of its
    # own currency (the lab's when the budget was set), never relabelled after a change
    spent: dict[tuple[str, str, str, str], float] = {}
    if now > since:
        for scope in {r["scope"] for r in rows}:
            report = cost_report(ledger, since, now, scope, now=now, tz=tz)
            for part in (report, *report.other_currencies):
                for line in part.rows:
                    key = (scope, line.key, "money", part.currency)
                    spent[key] = spent.get(key, 0.0) + line.cost
                    gkey = (scope, line.key, "gpu_hours", "")
                    spent[gkey] = spent.get(gkey, 0.0) + line.gpu_hours
    out = []
    for r in rows:
        currency = _currency_at(ledger, float(r["created_at"])) if r["unit"] == "money" else ""
        out.append(
            BudgetStatus(
                r["id"],
                r["scope"],
                r["name"],
                r["period"] or "month",
                float(r["amount"]),
                r["unit"],
                bool(r["hard"]),
                spent.get((r["scope"], r["name"], r["unit"], currency), 0.0),
                currency,
            )  # fmt: skip
        )
    return out


def _currency_at(ledger: Ledger, at: float) -> str:
    """The lab currency in force at `at`."""
    return currency_spans(ledger, at, at + 1.0)[0][2]


def _message(s: BudgetStatus, currency: str) -> str:
    currency = s.currency or currency
    pct = 100.0 * s.fraction
    head = f"{s.scope} {s.name} spent {_amount_text(s.spent, s.unit, currency)} of its "
    head += f"{_amount_text(s.amount, s.unit, currency)} monthly budget ({pct:.0f} %)"
    if s.level == "over":
        return head + (" - new jobs are held" if s.hard else " - over budget")
    return head


def budget_warnings(
    ledger: Ledger, now: float | None = None, tz: tzinfo | None = None
) -> list[BudgetWarning]:
    """Budgets at or past 80 % this month, worst first; each with a one-line `.message`."""
    statuses = [s for s in budget_status(ledger, now, tz) if s.level != "ok"]
    currency = get_currency(ledger)
    out = [
        BudgetWarning(
            s.scope, s.name, s.unit, s.amount, s.spent, s.hard, s.level, _message(s, currency)
        )
        for s in statuses
    ]
    return sorted(out, key=lambda w: -w.fraction)


def budget_hold_reasons(
    ledger: Ledger,
    jobs: Sequence[dict[str, Any]],
    now: float | None = None,
    tz: tzinfo | None = None,
) -> dict[int, str]:
    """For the dispatcher: {job id: reason} for the queued jobs a hard budget holds.

    `jobs` are job rows (id, user, project, state). Only queued jobs are held; the reason starts
    with "over budget". Jobs not in the result may be placed.
    """
    if not ledger.any_hard_budget():
        return {}  # the dispatcher asks every tick: no hard budget, no spend to add up
    hard = [s for s in budget_status(ledger, now, tz) if s.hard and s.level == "over"]
    if not hard:
        return {}
    currency = get_currency(ledger)
    reasons: dict[int, str] = {}
    for job in jobs:
        if job.get("state", "queued") != "queued":
            continue
        for s in hard:
            if job.get(s.scope) == s.name:
                money = s.currency or currency
                reasons[int(job["id"])] = (
                    f"{HOLD_PREFIX}: {s.scope} {s.name} spent "
                    f"{_amount_text(s.spent, s.unit, money)} of "
                    f"{_amount_text(s.amount, s.unit, money)} this month"
                )
                break
    return reasons


def apply_budget_holds(
    ledger: Ledger, now: float | None = None, tz: tzinfo | None = None
) -> dict[int, str]:
    """Write the hold reason on every queued job a hard budget holds, and clear it on released ones.

    Returns the held jobs {id: reason}. Only `jobs.reason` changes (no state change, no event).
    """
    queued = ledger.queued_jobs_oldest_first()
    held = budget_hold_reasons(ledger, queued, now, tz)
    with ledger.tx():
        for job in queued:
            if job["id"] in held:
                ledger.set_job_reason(job["id"], held[job["id"]])
            elif (job["reason"] or "").startswith(HOLD_PREFIX):
                ledger.set_job_reason(job["id"], "waiting for the scheduler")
    return held
