"""What the service offers of the economics, as plain data (JSON-able, the same over the socket).

`lepton_tui.service.Service` calls these after its permission check (writes: admins only); the
faces never call them directly. Dates come as the text users type (`7d`, `2026-03-01`) and are
read here, with the ledger's clock, so a client of the lab service needs no clock of its own.
"""

from __future__ import annotations

from typing import Any

from lepton_tui.economics.budgets import budget_status, remove_budget, set_budget
from lepton_tui.economics.costs import gpu_utilization
from lepton_tui.economics.prices import (
    PriceSet,
    check_cost_weight,
    check_currency,
    check_node_hour,
    check_price,
    check_range,
    get_currency,
    lab_prices_at,
    month_start,
    parse_when,
    price_history,
    prices_at,
    set_cost_weight,
    set_currency,
    set_prices,
)
from lepton_tui.economics.replay import replay_ledger
from lepton_tui.economics.report import cost_report
from lepton_tui.economics.stranded import stranded_now
from lepton_tui.economics.waste import find_waste
from lepton_tui.errors import ValidationError
from lepton_tui.ledger import Ledger

BY_CHOICES = ("user", "project", "host", "job", "day", "gpu")
PRICE_LABELS = {
    "per_hour": "price per hour",
    "cpu_hour": "CPU core-hour price",
    "gpu_hour": "GPU-hour price",
    "gb_hour": "GB-hour price",
    "power_kwh": "electricity price per kWh",
    "node_hour": "price per node-hour",
}
DEFAULT_POLICIES = ("fifo", "sjf", "backfill", "dqn")


def _window(
    ledger: Ledger, since: str | None, until: str | None, default_since: float | None = None
) -> tuple[float, float, float]:
    """(start, end, now) of a window typed as text; start defaults to the month's start."""
    now = ledger.clock()
    if since:
        t0 = parse_when(since, "since", now)
    else:
        t0 = month_start(now) if default_since is None else default_since
    t1 = parse_when(until, "until", now) if until else now
    check_range(t0, t1)
    return t0, t1, now


def cost_data(
    ledger: Ledger, since: str | None = None, until: str | None = None, by: str = "user"
) -> dict[str, Any]:
    """`cost`: {"since", "until", "now", "by"} and the report (`report`, a `CostReport.as_dict`)
    or, by GPU, {"gpus": allocated and measured use per GPU}."""
    if by not in BY_CHOICES:
        raise ValidationError(f"--by {by!r} is not one of {', '.join(BY_CHOICES)}", field="by")
    t0, t1, now = _window(ledger, since, until)
    out: dict[str, Any] = {"since": t0, "until": t1, "now": now, "by": by}
    if by == "gpu":
        out["gpus"] = gpu_utilization(ledger, t0, t1, now=now)
    else:
        out["report"] = cost_report(ledger, t0, t1, by, now=now).as_dict()
    return out


def price_dict(p: PriceSet) -> dict[str, Any]:
    """A price set as the faces show it."""
    return {"per_hour": p.per_hour, "cpu_hour": p.cpu_hour, "gpu_hour": p.gpu_hour,
            "gb_hour": p.gb_hour, "power_kwh": p.power_kwh, "node_hour": p.node_hour,
            "source": p.source}  # fmt: skip


def price_list(ledger: Ledger, history: bool = False) -> dict[str, Any]:
    """`price ls`: the currency, the cost weight, and the prices in force per host (and the lab
    default, host None), or with `history` every price change, oldest first."""
    if history:
        rows = price_history(ledger)
    else:
        rows = [{"host": None, **price_dict(lab_prices_at(ledger))}]
        rows += [{"host": h["name"], **price_dict(prices_at(ledger, h["name"]))}
                 for h in ledger.hosts()]  # fmt: skip
    return {
        "currency": get_currency(ledger),
        "cost_weight": ledger.get_setting("cost_weight", 0.0),
        "prices": rows,
    }


def set_lab_prices(
    ledger: Ledger,
    actor: str,
    host: str | None = None,
    *,
    use_lab_default: bool = False,
    currency: str | None = None,
    cost_weight: Any = None,
    **prices: Any,
) -> dict[str, Any]:
    """`price set`: prices (of a host or the lab default), the currency and the cost weight, all
    checked before any is written, then written in one transaction.

    Returns {"currency_set", "cost_weight_set" (None when not given), "prices_set" (bool),
    "in_force" (the host's prices now, when a host's were set), "currency" (the lab's now)}."""
    unknown = sorted(set(prices) - set(PRICE_LABELS))
    if unknown:
        raise ValidationError(f"unknown price {unknown[0]!r}", f"use {', '.join(PRICE_LABELS)}")
    given = {k: v for k, v in prices.items() if v is not None}
    any_price = bool(given) or use_lab_default
    if not any_price and currency is None and cost_weight is None:
        raise ValidationError(
            "nothing to set",
            "give a price (--per-hour, --gpu-hour, ...), --currency or --cost-weight",
        )
    code = check_currency(currency) if currency is not None else None
    weight = check_cost_weight(cost_weight) if cost_weight is not None else None
    for key, value in given.items():
        check_price(value, PRICE_LABELS[key])
    if host is not None:
        ledger.get_host(host)
    if "node_hour" in given:  # a Slurm partition's, more than zero: before anything is written
        check_node_hour(
            ledger,
            host,
            {"price_node_hour": check_price(given["node_hour"], PRICE_LABELS["node_hour"])},
        )
    if use_lab_default and host is None:
        raise ValidationError("--lab-default applies to a --host", field="host")
    with ledger.tx():
        if code is not None:
            set_currency(ledger, code, actor=actor)
        if any_price:
            set_prices(ledger, host, **given, use_lab_default=use_lab_default, actor=actor)
        if weight is not None:
            set_cost_weight(ledger, weight, actor=actor)
    in_force = price_dict(prices_at(ledger, host)) if any_price and host else None
    return {"currency_set": code, "cost_weight_set": weight, "prices_set": any_price,
            "in_force": in_force, "currency": get_currency(ledger)}  # fmt: skip


def budget_list(ledger: Ledger) -> dict[str, Any]:
    """`budget ls`: the lab currency and every budget with this month's spend."""
    return {
        "currency": get_currency(ledger),
        "budgets": [s.as_dict() for s in budget_status(ledger)],
    }


def budget_set(
    ledger: Ledger,
    actor: str,
    scope: str,
    name: str,
    amount: Any,
    unit: str = "money",
    *,
    hard: bool = False,
    new_project: bool = False,
) -> dict[str, Any]:
    """`budget set`: the budget as it stands now (`BudgetStatus.as_dict`)."""
    status = set_budget(ledger, str(scope), str(name), amount, str(unit), hard=bool(hard),
                        new_project=bool(new_project), actor=actor)  # fmt: skip
    return status.as_dict()


def budget_remove(
    ledger: Ledger, actor: str, scope: str, name: str, unit: str | None = None
) -> int:
    """`budget rm`: how many budgets were removed."""
    return remove_budget(ledger, str(scope), str(name), unit, actor=actor)


def replay_data(
    ledger: Ledger,
    since: str | None = None,
    until: str | None = None,
    policies: list[str] | tuple[str, ...] = DEFAULT_POLICIES,
    cost_weight: Any = None,
) -> dict[str, Any]:
    """`replay`: the side by side comparison (`ReplayResult.as_dict`), by default of 30 days."""
    names = [str(p).strip() for p in policies if str(p).strip()]
    if not names:
        raise ValidationError("--policies is empty", "e.g. --policies fifo,backfill")
    weight = check_cost_weight(cost_weight) if cost_weight is not None else None
    now = ledger.clock()
    t0, t1, _ = _window(ledger, since, until, default_since=now - 30 * 86400)
    return replay_ledger(ledger, t0, t1, names, cost_weight=weight).as_dict()


def waste_data(ledger: Ledger) -> dict[str, Any]:
    """`cost --waste`: idle allocated GPUs and GPUs busy outside lepton (`findings`), and the
    capacity the queued jobs cannot use (`stranded`, see `stranded.stranded_now`)."""
    return {
        "findings": [f.as_dict() for f in find_waste(ledger)],
        "stranded": stranded_now(ledger),
    }
