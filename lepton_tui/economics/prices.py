"""Prices and dates for the economics: price history per host and lab default, calendar days.

A host has either its own prices or the lab defaults (`prices` rows with host NULL). Each row of
the `prices` table is a complete snapshot of one scope's prices from `effective_from` on, so a
change applies from the moment it is made and history is never rewritten. At any instant a host's
allocation prices (flat hourly price, CPU core-hour, GPU-hour, GB-hour of memory) come from its own
latest row when that row sets any of them, else from the lab default; its electricity price (per
kWh of measured GPU power) comes from its own row when set there, else from the lab.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from lepton_tui import settings as _settings
from lepton_tui.errors import NotFound, ValidationError
from lepton_tui.ledger import Ledger
from lepton_tui.validate import check_name, parse_number

# ISO 4217 codes a lab may keep its books in (the `currency` setting checks the same list).
CURRENCIES = _settings.CURRENCIES
DEFAULT_CURRENCY = "USD"
MAX_PRICE = 1e6
RESOURCE_FIELDS = (
    "price_per_hour",
    "price_cpu_hour",
    "price_gpu_hour",
    "price_gb_hour",
    "price_node_hour",
)
PRICE_FIELDS = (*RESOURCE_FIELDS, "power_price_kwh")
GROUPINGS = ("user", "project", "host", "job", "day", "total")
_FAR = 1e18  # "forever" for open price periods


# -- prices -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceSet:
    """The prices in force for one host at one moment."""

    per_hour: float = 0.0
    cpu_hour: float = 0.0
    gpu_hour: float = 0.0
    gb_hour: float = 0.0
    power_kwh: float = 0.0
    source: str = "none"  # "host", "lab" or "none"
    node_hour: float = 0.0  # a Slurm partition: per node Slurm allocates, per hour

    def host_rate(self, cpus: float, mem_mb: float, gpus: float) -> float:
        """Hourly price of a whole host of this capacity (a price per node-hour is paid only
        for the nodes Slurm allocates to lepton's jobs: no idle part)."""
        return (
            self.per_hour
            + self.cpu_hour * cpus
            + self.gpu_hour * gpus
            + self.gb_hour * mem_mb / 1024.0
        )


def whole_node_per_hour(prices: PriceSet, host: dict[str, Any]) -> float:
    """The flat hourly price of a host as one node of a simulated cluster (`replay`, stranded
    capacity): its flat price, or for a Slurm partition priced per node-hour, that price times
    its nodes as the last poll saw them, so a job holding one node's share of the partition pays
    about one node-hour an hour."""
    if not prices.node_hour:
        return prices.per_hour
    try:
        nodes = len(json.loads(host.get("slurm_nodes") or "[]"))
    except (TypeError, ValueError):
        nodes = 0
    return prices.per_hour + prices.node_hour * max(1, nodes)


def charged_resources(att: dict[str, Any]) -> dict[str, Any]:
    """What an attempt is charged for holding: what Slurm allocated to it where the poll read
    that (`alloc_cpus`, `alloc_mem_mb`, `alloc_gpus`: a request Slurm rounded up, a whole node
    on an exclusive partition), else what its job asked (`cpus`, `mem_mb`, `gpus`,
    `gpu_mem_mb`). Placement keeps using the request. The cost engine's SQL says the same
    (`ledger_econ_sql._CPUS` and its neighbours)."""
    out = dict(att)
    for key in ("cpus", "mem_mb", "gpus"):
        if att.get(f"alloc_{key}") is not None:
            out[key] = att[f"alloc_{key}"]
    if att.get("alloc_gpus") is not None:
        out["gpu_mem_mb"] = 0  # Slurm allocates whole GPUs: no share by memory
    return out


def allocated_text(att: dict[str, Any]) -> str:
    """What Slurm allocated to an attempt beside what its job asked, where they differ
    (`Slurm allocated 2 CPUs (asked 1), 1024 MB (asked 64)`); '' where they agree or Slurm has
    said nothing (any SSH attempt)."""
    parts = []
    for key, unit in (("cpus", "CPU"), ("mem_mb", "MB"), ("gpus", "GPU")):
        got = att.get(f"alloc_{key}")
        asked = float(att.get(key) or 0)
        if got is None or float(got) == asked:
            continue
        plural = "s" if unit != "MB" and float(got) != 1 else ""
        parts.append(f"{float(got):g} {unit}{plural} (asked {asked:g})")
    return "Slurm allocated " + ", ".join(parts) if parts else ""


def allocation_rate(prices: PriceSet, alloc: dict[str, Any], capacity: dict[str, Any]) -> float:
    """Hourly allocation price of holding `alloc` (cpus, mem_mb, gpus, gpu_mem_mb) on a host;
    an attempt row is charged by what Slurm allocated to it where that is known
    (`charged_resources`)."""
    alloc = charged_resources(alloc)
    cap_cpus = float(capacity.get("cpus") or 0)
    cap_mem = float(capacity.get("mem_mb") or 0)
    cap_gpus = float(capacity.get("gpus") or 0)
    cap_gmem = float(capacity.get("gpu_mem_mb") or 0)
    gpus = _gpu_equivalents(alloc, cap_gpus, cap_gmem)
    rate = (
        prices.node_hour * float(alloc.get("slurm_nodes") or 1)  # lepton asks --nodes=1
        + prices.cpu_hour * float(alloc.get("cpus") or 0)
        + prices.gpu_hour * gpus
        + prices.gb_hour * float(alloc.get("mem_mb") or 0) / 1024.0
    )
    if prices.per_hour:
        if cap_cpus <= 0 and cap_mem <= 0 and cap_gpus <= 0:
            share = 1.0  # capacity unknown: the whole host
        else:
            shares = [0.0]
            if cap_cpus > 0:
                shares.append(float(alloc.get("cpus") or 0) / cap_cpus)
            if cap_mem > 0:
                shares.append(float(alloc.get("mem_mb") or 0) / cap_mem)
            if cap_gpus > 0:
                shares.append(gpus / cap_gpus)
            share = min(1.0, max(shares))
        rate += prices.per_hour * share
    return rate


def _gpu_equivalents(alloc: dict[str, Any], cap_gpus: float, cap_gmem: float) -> float:
    if alloc.get("gpus"):
        return float(alloc["gpus"])
    gmem = float(alloc.get("gpu_mem_mb") or 0)
    if gmem > 0 and cap_gpus > 0 and cap_gmem > 0:
        return min(1.0, gmem * cap_gpus / cap_gmem)
    return 0.0


def get_currency(ledger: Ledger) -> str:
    """The lab's currency (setting `currency`, default USD)."""
    return str(ledger.get_setting("currency", DEFAULT_CURRENCY))


def currency_spans(ledger: Ledger, since: float, until: float) -> list[tuple[float, float, str]]:
    """[since, until) cut where the lab currency changed: (start, end, currency) pieces, in order.

    Money is charged in the currency in force when it was spent, so a report shows each piece in
    its own currency. The changes come from the append-only events of the `currency` setting;
    before the first one the currency was the default."""
    changes = ledger.currency_changes()
    current, history = DEFAULT_CURRENCY, []
    for row in changes:
        try:
            code = str(json.loads(row["message"].split(" = ", 1)[1]))
        except (ValueError, IndexError):
            continue
        history.append((float(row["at"]), code))
    spans: list[tuple[float, float, str]] = []
    start = since
    for at, code in history:
        if at <= since:
            current = code
            continue
        if at >= until:
            break
        if code != current:
            spans.append((start, at, current))
            start, current = at, code
    spans.append((start, until, current))
    return spans


def check_currency(code: str) -> str:
    """An upper-cased known ISO 4217 code, or ValidationError."""
    try:
        return str(_settings.SETTINGS["currency"].parse(str(code or "")))
    except ValidationError as exc:
        raise ValidationError(exc.message, exc.hint, field="currency") from None


def check_price(value: Any, what: str) -> float:
    """A price: a finite number from 0 to 1,000,000, or ValidationError."""
    return float(parse_number(value, what, minimum=0, maximum=MAX_PRICE))


def set_prices(
    ledger: Ledger,
    host: str | None = None,
    *,
    per_hour: Any = None,
    cpu_hour: Any = None,
    gpu_hour: Any = None,
    gb_hour: Any = None,
    power_kwh: Any = None,
    node_hour: Any = None,
    use_lab_default: bool = False,
    actor: str | None = None,
) -> dict[str, Any]:
    """Record new prices for `host` (None: the lab default), in force from now on.

    Fields not given keep their current value for that scope. `use_lab_default` drops the host's
    own prices (it then pays the lab defaults). Everything is checked before anything is written.
    Returns the new prices row.
    """
    given = {
        "price_per_hour": per_hour,
        "price_cpu_hour": cpu_hour,
        "price_gpu_hour": gpu_hour,
        "price_gb_hour": gb_hour,
        "power_price_kwh": power_kwh,
        "price_node_hour": node_hour,
    }
    labels = {
        "price_per_hour": "price per hour",
        "price_cpu_hour": "CPU core-hour price",
        "price_gpu_hour": "GPU-hour price",
        "price_gb_hour": "GB-hour price",
        "power_price_kwh": "electricity price per kWh",
        "price_node_hour": "price per node-hour",
    }
    checked = {k: check_price(v, labels[k]) for k, v in given.items() if v not in (None, "")}
    if host is not None:
        check_name(host, "host")
        if not ledger.host_exists(host):
            raise NotFound(f"host {host!r} does not exist", "see `lepton-tui hosts ls`")
    if "price_node_hour" in checked:
        check_node_hour(ledger, host, checked)
    if not checked and not use_lab_default:
        raise ValidationError(
            "no price given",
            "give --per-hour, --cpu-hour, --gpu-hour, --gb-hour or --power-kwh",
        )
    if use_lab_default and host is None:
        raise ValidationError("--lab-default applies to a --host", field="host")
    per_resource = [
        k for k in ("price_cpu_hour", "price_gpu_hour", "price_gb_hour") if k in checked
    ]
    if "price_node_hour" in checked and ("price_per_hour" in checked or per_resource):
        raise ValidationError(
            "give a --node-hour price or a flat/per-resource price, not both",
            "a Slurm partition is charged one way or the other",
        )
    if "price_per_hour" in checked and per_resource:
        raise ValidationError(
            "give a flat --per-hour price or per-resource prices (--cpu-hour, --gpu-hour, "
            "--gb-hour), not both",
            "a host is charged one way or the other",
        )
    now = ledger.clock()
    with ledger.tx():
        current = _latest_row(ledger, host, now)
        row: dict[str, Any] = {f: None for f in PRICE_FIELDS}
        if current is not None and not use_lab_default:
            row.update({f: current[f] for f in PRICE_FIELDS})
        if use_lab_default:
            row.update({f: None for f in RESOURCE_FIELDS})
            if "power_price_kwh" not in checked:
                row["power_price_kwh"] = None
        # Switching between a flat price and per-resource prices drops the other kind, so a
        # host is never charged both ways.
        if "price_node_hour" in checked:
            row.update({k: None for k in RESOURCE_FIELDS})
        elif "price_per_hour" in checked:
            row.update({k: None for k in ("price_cpu_hour", "price_gpu_hour", "price_gb_hour")})
        elif per_resource:
            row["price_per_hour"] = None
        if "price_per_hour" in checked or per_resource:
            row["price_node_hour"] = None
        row.update(checked)
        row.update(
            {
                "host": host,
                "effective_from": now,
                "currency": get_currency(ledger),
                "set_by": actor,
            }
        )
        shown = ", ".join(f"{labels[k]} {v:g}" for k, v in checked.items())
        if use_lab_default:
            shown = "lab default prices" + (f", {shown}" if shown else "")
        _record_row(ledger, row, f"prices of {host or 'the lab (default)'}: {shown} "
                    f"{row['currency']}", actor)  # fmt: skip
    return row


def _record_row(ledger: Ledger, row: dict[str, Any], text: str, actor: str | None) -> None:
    """Write a price row and its `price.set` event (what changed, in `text`)."""
    ledger.record_prices(row, PRICE_FIELDS)
    ledger.event("price.set", text, host=row["host"], actor=actor,
                 data={k: row[k] for k in PRICE_FIELDS}, at=row["effective_from"])  # fmt: skip


def forget_node_hour(ledger: Ledger, host: str, actor: str | None = None) -> None:
    """A host added under the name of a removed one starts without its price per node-hour.

    Price rows are kept by host name, so the new host would inherit the old one's prices; a price
    per node-hour priced that host's Slurm nodes, and an SSH host would pay it once per attempt.
    A new row from now on drops it (the other prices stay inherited, as before): the old host's
    history keeps it, up to now, so what it ran, even lost after a forced removal, stays priced.
    Called inside the transaction that records the host, before it may become a Slurm partition
    (a partition added again under its old name is priced with `price set --node-hour` again)."""
    now = ledger.clock()
    current = _latest_row(ledger, host, now)
    if current is None or current.get("price_node_hour") is None:
        return
    row = {f: current[f] for f in PRICE_FIELDS}
    row.update(
        {
            "price_node_hour": None,
            "host": host,
            "effective_from": now,
            "currency": get_currency(ledger),
            "set_by": actor,
        }
    )
    _record_row(
        ledger, row, f"prices of {host}: no price per node-hour (it priced the host removed "
        "before it)", actor,
    )  # fmt: skip


def check_node_hour(ledger: Ledger, host: str | None, checked: dict[str, float]) -> None:
    """A price per node-hour: more than zero, and only for a Slurm partition (a host whose jobs
    Slurm places on whole nodes), else ValidationError."""
    if host is None:
        raise ValidationError(
            "a price per node-hour applies to a Slurm partition, not the lab default",
            "give --host NAME of a host added with `hosts add NAME --slurm`",
            field="node_hour",
        )
    if not ledger.get_host(host).get("slurm_json"):
        raise ValidationError(
            f"host {host!r} is not a Slurm partition: --node-hour prices Slurm nodes",
            "price an SSH host with --per-hour or --cpu-hour/--gpu-hour/--gb-hour",
            field="node_hour",
        )
    if checked["price_node_hour"] <= 0:
        raise ValidationError(
            "the price per node-hour must be more than 0",
            "give a positive number, e.g. --node-hour 2.5 (--lab-default drops it)",
            field="node_hour",
        )


def set_currency(ledger: Ledger, code: str, actor: str | None = None) -> str:
    """Set the lab currency from now on (an ISO code; prices are not converted, and what was
    already spent keeps the currency it was charged in: see `currency_spans`)."""
    value = check_currency(code)
    ledger.set_setting("currency", value, actor=actor)
    return value


def check_cost_weight(value: Any) -> float:
    """The cost-aware scheduling weight (setting `cost_weight`): 0 = fastest, higher = cheaper."""
    try:
        return float(_settings.SETTINGS["cost_weight"].parse(str(value)))
    except ValidationError as exc:
        raise ValidationError(
            f"cost weight: {exc.message}", exc.hint, field="cost_weight"
        ) from None


def set_cost_weight(ledger: Ledger, value: Any, actor: str | None = None) -> float:
    """Set the lab's `cost_weight` setting (the dispatcher passes it to the policy)."""
    weight = check_cost_weight(value)
    ledger.set_setting("cost_weight", weight, actor=actor)
    return weight


def _latest_row(ledger: Ledger, host: str | None, at: float) -> dict[str, Any] | None:
    return ledger.latest_price_row(host, at)


def _resolve(own: dict[str, Any] | None, lab: dict[str, Any] | None) -> PriceSet:
    own_sets = own is not None and any(own.get(f) is not None for f in RESOURCE_FIELDS)
    source_row = own if own_sets else lab
    vals = {f: float((source_row or {}).get(f) or 0.0) for f in RESOURCE_FIELDS}
    power = None
    if own is not None and own.get("power_price_kwh") is not None:
        power = own["power_price_kwh"]
    elif lab is not None:
        power = lab.get("power_price_kwh")
    source = "host" if own_sets else ("lab" if lab is not None else "none")
    return PriceSet(
        vals["price_per_hour"],
        vals["price_cpu_hour"],
        vals["price_gpu_hour"],
        vals["price_gb_hour"],
        float(power or 0.0),
        source,
        vals["price_node_hour"],
    )


def prices_at(ledger: Ledger, host: str, at: float | None = None) -> PriceSet:
    """The prices in force for `host` at `at` (default now)."""
    when = ledger.clock() if at is None else at
    return _resolve(_latest_row(ledger, host, when), _latest_row(ledger, None, when))


def lab_prices_at(ledger: Ledger, at: float | None = None) -> PriceSet:
    """The lab default prices in force at `at` (default now)."""
    when = ledger.clock() if at is None else at
    return _resolve(None, _latest_row(ledger, None, when))


def price_history(ledger: Ledger, host: str | None = None) -> list[dict[str, Any]]:
    """Every price change (oldest first), for one host, or all when `host` is None."""
    if host is None:
        return ledger.price_rows()
    return ledger.price_rows(host)


@dataclass(frozen=True)
class PriceSegment:
    """The prices of one host over [start, end)."""

    host: str
    start: float
    end: float
    prices: PriceSet


def price_segments(ledger: Ledger, hosts: Sequence[str]) -> list[PriceSegment]:
    """Each host's prices as back-to-back periods covering all time (zero before any price)."""
    rows = ledger.price_rows()
    lab_rows = [r for r in rows if r["host"] is None]
    own_rows: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["host"] is not None:
            own_rows.setdefault(r["host"], []).append(r)
    out: list[PriceSegment] = []
    for host in hosts:
        mine = own_rows.get(host, [])
        times = sorted(
            {r["effective_from"] for r in lab_rows} | {r["effective_from"] for r in mine}
        )
        bounds = [-_FAR, *times, _FAR]
        li = oi = 0
        lab: dict[str, Any] | None = None
        own: dict[str, Any] | None = None
        for start, end in zip(bounds, bounds[1:], strict=False):
            while li < len(lab_rows) and lab_rows[li]["effective_from"] <= start:
                lab = lab_rows[li]
                li += 1
            while oi < len(mine) and mine[oi]["effective_from"] <= start:
                own = mine[oi]
                oi += 1
            if end > start:
                out.append(PriceSegment(host, start, end, _resolve(own, lab)))
    return out


# -- dates --------------------------------------------------------------------------------------


def local_tz() -> tzinfo:
    """The login node's time zone."""
    tz = datetime.now().astimezone().tzinfo
    assert tz is not None
    return tz


def parse_when(text: str, what: str, now: float, tz: tzinfo | None = None) -> float:
    """A date or time: `2026-03-01`, `2026-03-01T14:00`, `today`, `yesterday`, or `7d` ago."""
    tz = tz or local_tz()
    raw = str(text or "").strip()
    if not raw or not raw.isascii():
        raise ValidationError(
            f"{what} {text!r} is not a date",
            "write it like 2026-03-01, 2026-03-01T14:00, today, yesterday or 7d",
            field=what,
        )
    low = raw.lower()
    today = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    if low == "now":
        return now
    if low == "today":
        return today.timestamp()
    if low == "yesterday":
        return _add_days(today, -1).timestamp()
    if low.endswith(("d", "h", "w")) and low[:-1].replace(".", "", 1).isdigit():
        unit = {"h": 3600, "d": 86400, "w": 7 * 86400}[low[-1]]
        ago = float(low[:-1]) * unit
        if ago > 100 * 365 * 86400:
            raise ValidationError(f"{what} {text!r} is more than 100 years ago", field=what)
        return now - ago
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError(
            f"{what} {text!r} is not a date",
            "write it like 2026-03-01, 2026-03-01T14:00, today, yesterday or 7d",
            field=what,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.timestamp()


def _add_days(moment: datetime, days: int) -> datetime:
    day = moment.date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, tzinfo=moment.tzinfo)


def check_range(since: float, until: float) -> None:
    """Refuse a date range that ends before it starts."""
    if until <= since:
        raise ValidationError(
            "the date range ends before it starts",
            f"--until ({_fmt_ts(until)}) must be after --since ({_fmt_ts(since)})",
            field="until",
        )


def _fmt_ts(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def day_buckets(
    since: float, until: float, tz: tzinfo | None = None
) -> list[tuple[str, float, float]]:
    """Calendar days (label, start, end) of `tz` (default local) that cover [since, until)."""
    tz = tz or local_tz()
    start = datetime.fromtimestamp(since, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    start = datetime(start.year, start.month, start.day, tzinfo=tz)
    out = []
    while start.timestamp() < until:
        nxt = _add_days(start, 1)
        out.append(
            (start.date().isoformat(), max(since, start.timestamp()), min(until, nxt.timestamp()))
        )
        start = nxt
    return out


def month_start(now: float, tz: tzinfo | None = None) -> float:
    """The start of the calendar month holding `now`."""
    tz = tz or local_tz()
    d = datetime.fromtimestamp(now, tz)
    return datetime(d.year, d.month, 1, tzinfo=tz).timestamp()


def week_start(now: float, tz: tzinfo | None = None) -> float:
    """Monday 00:00 of the week holding `now`."""
    tz = tz or local_tz()
    d = datetime.fromtimestamp(now, tz)
    monday: date = d.date() - timedelta(days=d.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=tz).timestamp()


def day_start(now: float, tz: tzinfo | None = None) -> float:
    """Midnight of the day holding `now`."""
    tz = tz or local_tz()
    d = datetime.fromtimestamp(now, tz)
    return datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()


def format_money(amount: float, currency: str) -> str:
    """`1,234.56 USD`."""
    return f"{amount:,.2f} {currency}"
