"""Cost reports: rows by user, project, host, job or day over a window, with idle cost.

See `lepton_tui.economics` for the cost rules. A window is cut where the lab currency changed;
each piece adds whole settled past days from the roll-up (`rollup.py`) and slices the rest
(`slices.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from lepton_tui.economics.prices import (
    _FAR,
    GROUPINGS,
    check_range,
    currency_spans,
    day_buckets,
)
from lepton_tui.economics.rollup import _ensure_rollup, _final_days, rollup_idle, rollup_sums
from lepton_tui.economics.slices import _live_rows
from lepton_tui.errors import ValidationError
from lepton_tui.ledger import Ledger


@dataclass
class CostRow:
    """One line of a cost report."""

    key: str
    cost: float = 0.0
    alloc_cost: float = 0.0
    energy_cost: float = 0.0
    energy_kwh: float = 0.0
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0
    attempts: int = 0
    idle_cost: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "cost": round(self.cost, 6),
            "alloc_cost": round(self.alloc_cost, 6),
            "energy_cost": round(self.energy_cost, 6),
            "energy_kwh": round(self.energy_kwh, 6),
            "gpu_hours": round(self.gpu_hours, 6),
            "cpu_hours": round(self.cpu_hours, 6),
            "attempts": self.attempts,
            "idle_cost": round(self.idle_cost, 6),
        }


@dataclass
class CostReport:
    """A cost report over [since, until): rows by the chosen key, totals and idle cost."""

    by: str
    since: float
    until: float
    currency: str
    rows: list[CostRow]
    total: CostRow
    idle_cost: float
    idle_by_host: dict[str, float] = field(default_factory=dict)
    # what was charged in other currencies in this window (the lab changed its currency)
    other_currencies: list[CostReport] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = self._own_dict()
        out["other_currencies"] = [r._own_dict() for r in self.other_currencies]
        return out

    def _own_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "since": self.since,
            "until": self.until,
            "currency": self.currency,
            "rows": [r.as_dict() for r in self.rows],
            "total": self.total.as_dict(),
            "idle_cost": round(self.idle_cost, 6),
            "idle_by_host": {k: round(v, 6) for k, v in sorted(self.idle_by_host.items())},
        }


def cost_report(
    ledger: Ledger,
    since: float,
    until: float,
    by: str = "total",
    *,
    now: float | None = None,
    tz: tzinfo | None = None,
    buckets: Sequence[tuple[str, float, float]] | None = None,
    rollup: bool = True,
) -> CostReport:
    """Cost of every attempt over [since, until), rolled up `by` user, project, host, job or day.

    Running attempts count up to `now` (default the ledger clock). Idle cost (capacity not
    allocated x price x time) is reported per host, per day with `by="day"`, and in total.
    Whole past days whose attempts are all settled are read from the daily roll-up
    (`econ_rollup`, built on first use; `rollup=False` computes everything from the attempts).

    Money stays in the currency it was charged in: when the lab currency changed within the
    window, the report is that of the latest currency's time, and `other_currencies` holds one
    report per earlier currency (never summed with it).
    """
    if by not in GROUPINGS and by != "attempt":
        raise ValidationError(f"cannot group costs by {by!r}", f"use one of {', '.join(GROUPINGS)}")
    check_range(since, until)
    now = ledger.clock() if now is None else now
    spans = currency_spans(ledger, since, min(until, now)) if since < now else []
    if len(spans) <= 1:
        currency = spans[0][2] if spans else currency_spans(ledger, now, now + 1)[0][2]
        return _one_currency_report(ledger, since, until, by, now, tz, buckets, rollup, currency)
    per_currency: dict[str, list[CostReport]] = {}
    for i, (t0, t1, currency) in enumerate(spans):
        t1 = until if i == len(spans) - 1 else t1
        part_buckets = None
        if buckets is not None:
            part_buckets = [(lb, max(a, t0), min(b, t1)) for lb, a, b in buckets]
            part_buckets = [b for b in part_buckets if b[2] > b[1]] or [("all", t0, t0)]
        part = _one_currency_report(ledger, t0, t1, by, now, tz, part_buckets, rollup, currency)
        per_currency.setdefault(currency, []).append(part)
    latest = spans[-1][2]
    main = _merge_reports(per_currency.pop(latest), since, until)
    main.other_currencies = [_merge_reports(p, since, until) for p in per_currency.values()]
    return main


def _merge_reports(parts: list[CostReport], since: float, until: float) -> CostReport:
    """Reports of one currency over pieces of a window, as one (rows and totals summed)."""
    if len(parts) == 1:
        part = parts[0]
        part.since, part.until = since, until
        return part
    rows: dict[str, CostRow] = {}
    total = CostRow("total")
    idle_by_host: dict[str, float] = {}
    for part in parts:
        for r in [*part.rows, part.total]:
            into = total if r is part.total else rows.setdefault(r.key, CostRow(r.key))
            for f in ("cost", "alloc_cost", "energy_cost", "energy_kwh", "gpu_hours",
                      "cpu_hours", "attempts", "idle_cost"):  # fmt: skip
                setattr(into, f, getattr(into, f) + getattr(r, f))
        for host, idle in part.idle_by_host.items():
            idle_by_host[host] = idle_by_host.get(host, 0.0) + idle
    ordered = sorted(rows.values(), key=lambda r: (-r.cost, r.key))
    first = parts[0]
    return CostReport(first.by, since, until, first.currency, ordered, total, total.idle_cost,
                      idle_by_host)  # fmt: skip


def _one_currency_report(
    ledger: Ledger,
    since: float,
    until: float,
    by: str,
    now: float,
    tz: tzinfo | None,
    buckets: Sequence[tuple[str, float, float]] | None,
    rollup: bool,
    currency: str,
) -> CostReport:
    until_eff = min(until, now)
    acc = _Acc(by)
    if buckets is not None or by in ("job", "attempt") or not rollup:
        if buckets is None:
            buckets = (
                day_buckets(since, until_eff, tz) if by == "day" else [("all", since, until_eff)]
            )
        rows, totals = _live_rows(ledger, by, since, until_eff, now, buckets, -_FAR)
        acc.add_live(rows, totals)
    else:
        if ledger.ended_unsettled(limit=1):
            settle_ended(ledger, now)  # ended attempts nobody settled would hold the roll-up back
        days = _final_days(ledger, since, until_eff, now, tz)
        pieces: list[tuple[float, float]] = []
        if days:
            _ensure_rollup(ledger, days, now)
            acc.add_rollup(ledger, days)
            pieces = [(since, days[0][1]), (days[-1][2], until_eff)]
        else:
            pieces = [(since, until_eff)]
        for i, (t0, t1) in enumerate(pieces):
            if t1 <= t0:
                continue
            bks = day_buckets(t0, t1, tz) if by == "day" else [("all", t0, t1)]
            rows, totals = _live_rows(ledger, by, t0, t1, now, bks, -_FAR if i == 0 else t0)
            acc.add_live(rows, totals)
    return acc.report(since, until, currency)


class _Acc:
    """Adds report parts (live slices, roll-up days) into rows, totals and idle cost."""

    def __init__(self, by: str) -> None:
        self.by = by
        self.out: dict[str, CostRow] = {}
        self.total = CostRow("total")
        self.idle_by_host: dict[str, float] = {}
        self.idle_by_label: dict[str, float] = {}

    def _add(self, key: str, r: dict[str, Any], attempts: int, lead: int) -> None:
        row = self.out.setdefault(key, CostRow(key))
        for target in (row, self.total):
            target.alloc_cost += r["alloc_cost"] or 0.0
            target.energy_cost += r["energy_cost"] or 0.0
            target.energy_kwh += r["energy_kwh"] or 0.0
            target.gpu_hours += r["gpu_hours"] or 0.0
            target.cpu_hours += r["cpu_hours"] or 0.0
        row.attempts += attempts
        self.total.attempts += lead

    def _idle(self, host: str, label: str, idle: float) -> None:
        self.idle_by_host[host] = self.idle_by_host.get(host, 0.0) + idle
        self.idle_by_label[label] = self.idle_by_label.get(label, 0.0) + idle

    def add_live(self, rows: list[dict[str, Any]], totals: list[dict[str, Any]]) -> None:
        alloc: dict[tuple[str, str], float] = {}
        for r in rows:
            per_row = r["attempts"] if self.by == "day" else r["lead"]
            self._add(str(r["k"]), r, int(per_row or 0), int(r["lead"] or 0))
            hl = (r["host"], r["label"])
            alloc[hl] = alloc.get(hl, 0.0) + (r["alloc_cost"] or 0.0)
        for h in totals:
            idle = max(0.0, (h["total"] or 0.0) - alloc.get((h["host"], h["label"]), 0.0))
            self._idle(h["host"], h["label"], idle)

    def add_rollup(self, ledger: Ledger, days: list[tuple[str, float, float]]) -> None:
        dim = "host" if self.by in ("host", "day", "total") else self.by
        # the exact day starts of this time zone: another zone's days (its own roll-up rows,
        # starting at other hours) lie inside any range of starts and must not be summed in
        starts = [d[1] for d in days]
        for r in rollup_sums(ledger, dim, starts, by_label=self.by == "day"):
            key = "total" if self.by == "total" else str(r["k"])
            per_row = r["overlaps"] if self.by == "day" else r["starts"]
            self._add(key, r, int(per_row or 0), int(r["starts"] or 0))
        # idle cost summed in SQL: per host, and per day for the day report
        for r in rollup_idle(ledger, starts, "host"):
            self.idle_by_host[r["k"]] = self.idle_by_host.get(r["k"], 0.0) + (r["idle"] or 0)
        if self.by == "day":
            for r in rollup_idle(ledger, starts, "label"):
                self.idle_by_label[r["k"]] = r["idle"] or 0.0

    def report(self, since: float, until: float, currency: str) -> CostReport:
        by, out, total = self.by, self.out, self.total
        for row in [*out.values(), total]:
            row.cost = row.alloc_cost + row.energy_cost
        if by == "host":
            for host, idle in self.idle_by_host.items():
                out.setdefault(host, CostRow(host)).idle_cost = idle
        elif by == "day":
            for label, idle in self.idle_by_label.items():
                out.setdefault(label, CostRow(label)).idle_cost = idle
        total.idle_cost = sum(self.idle_by_host.values())
        if by == "job" or by == "attempt":
            ordered = sorted(out.values(), key=lambda r: int(r.key))
        elif by == "day":
            ordered = sorted(out.values(), key=lambda r: r.key)
        else:
            ordered = sorted(out.values(), key=lambda r: (-r.cost, r.key))
        return CostReport(by, since, until, currency, ordered, total, total.idle_cost,
                          dict(self.idle_by_host))  # fmt: skip


def settle_ended(ledger: Ledger, now: float | None = None) -> int:
    """Store cost and energy on every ended attempt that has none yet, in bulk; return how many.

    For ledgers whose attempts ended before anything settled them (an old ledger, an end the
    dispatcher did not settle); `settle_attempt` does the same for one attempt. An attempt of no
    duration costs 0.
    """
    now = ledger.clock() if now is None else now
    ended = ledger.ended_unsettled()
    if not ended:
        return 0
    first = min(float(r["s0"]) for r in ended)
    found: dict[int, CostRow] = {}
    if first < now:
        # every attempt, whatever the currency of its time (an attempt's cost has no label)
        report = _one_currency_report(ledger, first, now, "attempt", now, None, None, True, "")
        found = {int(row.key): row for row in report.rows}
    values = []
    for r in ended:
        row = found.get(r["id"])
        values.append((row.cost, row.energy_kwh * 1000.0, r["id"]) if row else (0.0, 0.0, r["id"]))
    ledger.store_settled(values)
    return len(values)
