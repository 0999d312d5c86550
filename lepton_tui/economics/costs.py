"""An attempt's cost, what runs now costs per hour, and the console's cost numbers.

See `lepton_tui.economics` for the cost rules.
"""

from __future__ import annotations

import json
import math
from datetime import tzinfo
from typing import Any

from lepton_tui.economics.energy import energy_memo, gpu_share, host_capacity, measure_energy_wh
from lepton_tui.economics.prices import (
    PriceSet,
    _resolve,
    allocation_rate,
    charged_resources,
    check_range,
    day_buckets,
    day_start,
    get_currency,
    month_start,
    price_segments,
    prices_at,
    week_start,
)
from lepton_tui.economics.report import cost_report
from lepton_tui.errors import NotFound, ValidationError
from lepton_tui.ledger import Ledger

# -- energy and settling ------------------------------------------------------------------------


def charged_from(att: dict[str, Any]) -> float | None:
    """When an attempt's charge starts: when it started; before that, an SSH attempt from its
    intent (launching holds the host's resources), a Slurm one (`on_slurm` from its intent, or
    `slurm_job_id` set) not at all, as it holds nothing until Slurm starts it, before sbatch
    returns as while it waits in Slurm's queue (None: it never started, it costs nothing).
    The cost engine's SQL says the same (`ledger_econ_sql._S0`)."""
    if att.get("started_at"):
        return float(att["started_at"])
    return None if att.get("slurm_job_id") or att.get("on_slurm") else float(att["created_at"])


def attempt_cost(ledger: Ledger, token: str, now: float | None = None) -> tuple[float, float]:
    """(cost, energy_wh) of one attempt so far (to `now` while it runs)."""
    now = ledger.clock() if now is None else now
    att = ledger.attempt_by_token(token)
    if att is None:
        raise NotFound(f"attempt {token} does not exist")
    start = charged_from(att)
    end = min(att["ended_at"] or now, now)
    if start is None or end <= start:
        return 0.0, 0.0
    energy = (
        att["energy_wh"] if att["energy_wh"] is not None else measure_energy_wh(ledger, att, now)
    )
    host = host_capacity(ledger, att["host"])
    cost = 0.0
    for seg in price_segments(ledger, [att["host"]]):
        ov = min(end, seg.end) - max(start, seg.start)
        if ov <= 0:
            continue
        cost += allocation_rate(seg.prices, att, host) * ov / 3600.0
        cost += energy / 1000.0 * (ov / (end - start)) * seg.prices.power_kwh
    return cost, energy


def settle_attempt(ledger: Ledger, token: str) -> float:
    """Compute an ended attempt's cost and measured energy and store them on it; return the cost.

    For the dispatcher: call it after an attempt reaches an end state (succeeded, failed, timeout,
    cancelled or lost: a lost attempt is charged for the time it held its resources). An attempt
    still running is not stored; its cost so far is returned.
    """
    att = ledger.attempt_by_token(token)
    if att is None:
        raise NotFound(f"attempt {token} does not exist")
    cost, energy = attempt_cost(ledger, token)
    if att["ended_at"] is not None:
        ledger.store_attempt_cost(token, cost, energy)
    return cost


POWER_FRESH_S = 600.0
"""A GPU power sample older than this does not count as the GPU's power now."""


def prices_now(ledger: Ledger, now: float | None = None) -> dict[str, PriceSet]:
    """The prices in force now for every host in the ledger (its own or the lab's)."""
    now = ledger.clock() if now is None else now
    latest: dict[str | None, dict[str, Any]] = {}  # host (None: the lab) -> its row in force
    for row in ledger.price_rows(until=now):
        latest[row["host"]] = row
    lab = latest.get(None)
    return {name: _resolve(latest.get(name), lab) for name in ledger.host_name_list()}


def latest_gpu_power(ledger: Ledger, now: float | None = None) -> dict[tuple[str, int], float]:
    """Each GPU's latest sampled power (W) of the last `POWER_FRESH_S` seconds, by (host, index):
    one query for the whole fleet."""
    now = ledger.clock() if now is None else now
    return {
        (r["host"], int(r["gpu_index"])): float(r["power_w"])
        for r in ledger.latest_power_rows(now - POWER_FRESH_S)
        if r["power_w"] is not None
    }


def _gpu_shares(att: dict[str, Any], cap: dict[str, Any]) -> dict[int, float]:
    """The share of each GPU id an attempt holds (`gpu_share`)."""
    raw = att.get("gpu_ids") or "[]"
    ids = [int(g) for g in (raw if isinstance(raw, list) else json.loads(raw))]
    return dict.fromkeys(ids, gpu_share(charged_resources(att), cap)) if ids else {}


LiveState = tuple[dict[str, PriceSet], list[dict[str, Any]], dict[str, dict[str, Any]], dict]
"""What runs now: prices in force, running attempts, host capacities, latest GPU power."""


def live_state(
    ledger: Ledger, now: float | None = None, prices: dict[str, PriceSet] | None = None
) -> LiveState:
    """Read what runs now once, for `running_rate` and `idle_rate` of the same instant."""
    now = ledger.clock() if now is None else now
    prices = prices_now(ledger, now) if prices is None else prices
    # a Slurm job waiting in Slurm's queue holds nothing yet: not charged, not idle capacity held
    running = [a for a in ledger.running_attempts() if charged_from(a) is not None]
    for att in running:  # parsed once for both rates
        att["gpu_ids"] = json.loads(att["gpu_ids"] or "[]")
    caps = ledger.host_capacities()
    power = latest_gpu_power(ledger, now) if any(p.power_kwh for p in prices.values()) else {}
    return prices, running, caps, power


def running_rate(
    ledger: Ledger,
    now: float | None = None,
    prices: dict[str, PriceSet] | None = None,
    live: LiveState | None = None,
) -> float:
    """What the running attempts cost per hour now: allocation, plus their share of the latest
    power of the GPUs they hold (a GPU shared by two half-GPU jobs is paid once)."""
    now = ledger.clock() if now is None else now
    prices, running, caps, power = live or live_state(ledger, now, prices)
    rate = 0.0
    for att in running:
        cap = caps.get(att["host"]) or host_capacity(ledger, att["host"])
        p = prices.get(att["host"]) or prices_at(ledger, att["host"], now)
        rate += allocation_rate(p, att, cap)
        if p.power_kwh:
            for g, share in _gpu_shares(att, cap).items():
                rate += power.get((att["host"], g), 0.0) * share / 1000.0 * p.power_kwh
    return rate


def priced_hosts(
    ledger: Ledger, now: float | None = None, prices: dict[str, PriceSet] | None = None
) -> int:
    """How many hosts have a price in force now (their own or the lab's: flat, per resource, per
    Slurm node-hour or electricity), whatever their capacity is known to be yet."""
    prices = prices_now(ledger, now) if prices is None else prices
    return sum(
        1
        for p in prices.values()
        if p.per_hour or p.cpu_hour or p.gpu_hour or p.gb_hour or p.node_hour or p.power_kwh
    )


def idle_rate(
    ledger: Ledger,
    now: float | None = None,
    prices: dict[str, PriceSet] | None = None,
    live: LiveState | None = None,
) -> float:
    """What idle capacity costs per hour now: each host's whole price less what its running
    attempts are charged for holding it (a host that is down still costs its price, as in cost
    reports), plus, where electricity is priced, the latest power of what no attempt holds of
    each GPU."""
    now = ledger.clock() if now is None else now
    prices, running, caps, power = live or live_state(ledger, now, prices)
    held: dict[str, list[dict[str, Any]]] = {}
    for a in running:
        held.setdefault(a["host"], []).append(a)
    power_of: dict[str, list[tuple[int, float]]] = {}  # host -> [(GPU, watts)]
    for (host, g), watts in power.items():
        power_of.setdefault(host, []).append((g, watts))
    rate = 0.0
    for name, cap in caps.items():
        p = prices[name] if name in prices else prices_at(ledger, name, now)
        atts = held.get(name, [])
        whole = p.host_rate(
            float(cap["cpus"] or 0), float(cap["mem_mb"] or 0), float(cap["gpus"] or 0)
        )
        rate += max(0.0, whole - sum(allocation_rate(p, a, cap) for a in atts))
        if p.power_kwh:
            used: dict[int, float] = {}
            for a in atts:
                for g, share in _gpu_shares(a, cap).items():
                    used[g] = used.get(g, 0.0) + share
            for g, watts in power_of.get(name, ()):
                rate += watts * max(0.0, 1.0 - used.get(g, 0.0)) / 1000.0 * p.power_kwh
    return rate


# -- console numbers ----------------------------------------------------------------------------


def cost_summary(
    ledger: Ledger,
    now: float | None = None,
    tz: tzinfo | None = None,
    prices: dict[str, PriceSet] | None = None,
    live: LiveState | None = None,
) -> dict[str, Any]:
    """The console's cost panel (`prices`: `prices_now`, `live`: `live_state`, when the caller
    has them already).

    Keys: `currency`; `today`, `week` (since Monday), `month` (spend, allocation plus energy);
    `rate_per_hour` (what runs now costs per hour); `by_user`, `by_project` (this month,
    {name: spend}, largest first); `idle_today`, `idle_month` (idle cost); `idle_by_host` (this
    month).
    """
    now = ledger.clock() if now is None else now
    t_day, t_week, t_month = day_start(now, tz), week_start(now, tz), month_start(now, tz)
    if now <= min(t_week, t_month):
        return {"currency": get_currency(ledger), "today": 0.0, "week": 0.0, "month": 0.0,
                "rate_per_hour": 0.0, "by_user": {}, "by_project": {}, "idle_today": 0.0,
                "idle_month": 0.0, "idle_by_host": {}}  # fmt: skip
    # Three reports, sharing the price periods and the energy of what runs: the week by day
    # (today is its last day), the month by user (its total and idle cost are the month's) and
    # by project. Whole past days come from the roll-up; only today is sliced.
    with energy_memo(ledger, now):
        week = cost_report(ledger, t_week, now, "day", now=now, tz=tz) if now > t_week else None
        month = now > t_month
        by_user = cost_report(ledger, t_month, now, "user", now=now, tz=tz) if month else None
        by_project = cost_report(ledger, t_month, now, "project", now=now, tz=tz) if month else None
    today = None
    if week is not None and now > t_day:
        label = day_buckets(t_day, now, tz)[0][0]
        today = next((r for r in week.rows if r.key == label), None)
    return {
        "currency": get_currency(ledger),
        "today": today.cost if today else 0.0,
        "week": week.total.cost if week else 0.0,
        "month": by_user.total.cost if by_user else 0.0,
        "rate_per_hour": running_rate(ledger, now, prices, live),
        "by_user": {r.key: r.cost for r in by_user.rows} if by_user else {},
        "by_project": {r.key: r.cost for r in by_project.rows} if by_project else {},
        "idle_today": today.idle_cost if today else 0.0,
        "idle_month": by_user.idle_cost if by_user else 0.0,
        "idle_by_host": by_user.idle_by_host if by_user else {},
    }


def cost_series(
    ledger: Ledger, since: float, until: float, bucket_s: float, now: float | None = None
) -> list[dict[str, float]]:
    """Spend per time bucket for a chart: [{"t": start, "cost": .., "idle": ..}, ...], oldest first.

    At most 5,000 buckets; the last one ends at `until` (or now).
    """
    check_range(since, until)
    if not math.isfinite(bucket_s) or bucket_s <= 0:
        raise ValidationError("bucket size must be more than zero")
    n = math.ceil((until - since) / bucket_s)
    if n > 5000:
        raise ValidationError(f"{n} buckets is too many", "use a larger bucket (at most 5,000)")
    buckets = [
        (str(i), since + i * bucket_s, min(until, since + (i + 1) * bucket_s)) for i in range(n)
    ]
    rep = cost_report(ledger, since, until, "day", now=now, buckets=buckets)
    got = {r.key: r for r in rep.rows}
    return [
        {
            "t": b[1],
            "cost": got[b[0]].cost if b[0] in got else 0.0,
            "idle": got[b[0]].idle_cost if b[0] in got else 0.0,
        }
        for b in buckets
    ]


def gpu_utilization(
    ledger: Ledger, since: float, until: float, now: float | None = None
) -> list[dict[str, Any]]:
    """Per GPU over [since, until): allocated % (time held by attempts) and measured % (mean util).

    Rows: {"host", "gpu", "allocated_pct", "measured_pct" (None without samples)}.
    """
    check_range(since, until)
    now = ledger.clock() if now is None else now
    until = min(until, now)
    if until <= since:
        return []
    span = until - since
    held = ledger.gpu_held_seconds(since, until, now)
    measured = ledger.gpu_mean_util(since, until)
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for h in ledger.host_capacities().values():
        for g in range(int(h["gpus"] or 0)):
            out[(h["name"], g)] = {
                "host": h["name"],
                "gpu": g,
                "allocated_pct": 0.0,
                "measured_pct": None,
            }
    for r in held:
        row = out.setdefault(
            (r["host"], r["gpu"]),
            {"host": r["host"], "gpu": r["gpu"], "allocated_pct": 0.0, "measured_pct": None},
        )
        row["allocated_pct"] = min(100.0, 100.0 * (r["held"] or 0.0) / span)
    for r in measured:
        row = out.setdefault(
            (r["host"], r["gpu"]),
            {"host": r["host"], "gpu": r["gpu"], "allocated_pct": 0.0, "measured_pct": None},
        )
        row["measured_pct"] = r["util"]
    return [out[k] for k in sorted(out)]
