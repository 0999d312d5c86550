"""Economics: prices, the cost of every attempt, roll-ups, idle cost, and the console's numbers.

Prices. A host has either its own prices or the lab defaults (`prices` rows with host NULL). Each
row of the `prices` table is a complete snapshot of one scope's prices from `effective_from` on,
so a change applies from the moment it is made and history is never rewritten. At any instant a
host's allocation prices (flat hourly price, CPU core-hour, GPU-hour, GB-hour of memory) come from
its own latest row when that row sets any of them, else from the lab default; its electricity
price (per kWh of measured GPU power) comes from its own row when set there, else from the lab.

Cost of an attempt (the same rule as `scheduler.model.allocation_price_per_hour`): per-resource
prices are charged per unit held (a GPU share as its memory fraction of one GPU), a flat host price
by the attempt's dominant share of the host (max of its CPU, memory and GPU fractions, at most 1),
integrated over [started_at, ended_at or now] with the prices in force at each moment; plus its
measured energy: the mean power of the GPUs it held (from `samples`) x its duration x the share of
each GPU it held, charged at the electricity price. When an attempt is split (by price period,
day or report window) its energy is spread evenly over its time. A lost attempt is charged too.

Idle cost of a host: its whole price (the flat price plus per-resource prices x capacity) x time
since it was added, minus the allocation cost of the attempts it ran: capacity not allocated x
price x time.

Everything is aggregated in SQL over `attempts`, `jobs`, `hosts` and `prices`; the price periods
and report buckets go in small TEMP tables of the reading connection.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from lepton_tui import settings as _settings
from lepton_tui.errors import LeptonError, NotFound, ValidationError
from lepton_tui.ledger import Ledger
from lepton_tui.validate import check_name, parse_number

# ISO 4217 codes a lab may keep its books in (the `currency` setting checks the same list).
CURRENCIES = _settings.CURRENCIES
DEFAULT_CURRENCY = "USD"
MAX_PRICE = 1e6
RESOURCE_FIELDS = ("price_per_hour", "price_cpu_hour", "price_gpu_hour", "price_gb_hour")
PRICE_FIELDS = (*RESOURCE_FIELDS, "power_price_kwh")
GROUPINGS = ("user", "project", "host", "job", "day", "total")
_FAR = 1e18  # "forever" for open price periods

_indexed: set[str] = set()

# The daily roll-up: per whole past day whose attempts are all settled, spend per user, project and
# host (and idle cost per host), so a year's report reads ~100 rows a day instead of every attempt.
# A cache of what the attempts say: it can be dropped at any time and is rebuilt on use.
ROLLUP_TABLES = {
    "econ_rollup": (
        "CREATE TABLE IF NOT EXISTS econ_rollup (dim TEXT NOT NULL, day REAL NOT NULL, "
        "label TEXT NOT NULL, key TEXT NOT NULL, host TEXT NOT NULL, alloc_cost REAL, "
        "energy_kwh REAL, energy_cost REAL, gpu_hours REAL, cpu_hours REAL, overlaps INTEGER, "
        "starts INTEGER, PRIMARY KEY (dim, day, key, host))"
    ),
    "econ_rollup_idle": (
        "CREATE TABLE IF NOT EXISTS econ_rollup_idle (day REAL NOT NULL, label TEXT NOT NULL, "
        "host TEXT NOT NULL, idle_cost REAL, PRIMARY KEY (day, host))"
    ),
    "econ_rollup_days": (
        "CREATE TABLE IF NOT EXISTS econ_rollup_days (day REAL PRIMARY KEY, day_end REAL, "
        "label TEXT, built_at REAL)"
    ),
}


# Indexes of the cost queries (the first migration has attempts(started_at), (job_id), ...).
_INDEXES = {
    "idx_attempts_host_started": "attempts(host, started_at)",
    "idx_attempts_unmeasured": "attempts(id) WHERE energy_wh IS NULL",
    "idx_attempts_unsettled": "attempts(id) WHERE cost IS NULL",
    "idx_attempts_ended_started": "attempts(ended_at, started_at, created_at)",
}


def ensure_indexes(ledger: Ledger) -> None:
    """Create the indexes the cost queries need (idempotent; once per ledger file per process)."""
    key = str(ledger.path.resolve())
    if key in _indexed:
        return
    wanted = _INDEXES
    have = {r["name"] for r in ledger.query("SELECT name FROM sqlite_master")}
    missing = {k: v for k, v in wanted.items() if k not in have}
    tables = {k: v for k, v in ROLLUP_TABLES.items() if k not in have}
    if missing or tables:
        with ledger.tx():
            for sql in tables.values():
                ledger.execute(sql)
            for name, target in missing.items():
                ledger.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")
    _indexed.add(key)


def _migrate_2(db: Any) -> None:
    """Economics schema as a ledger migration (for `ledger.MIGRATIONS`): the roll-up tables and
    the cost-query indexes that `ensure_indexes` otherwise creates on first use."""
    for sql in ROLLUP_TABLES.values():
        db.execute(sql)
    for name, target in _INDEXES.items():
        db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")


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

    def host_rate(self, cpus: float, mem_mb: float, gpus: float) -> float:
        """Hourly price of a whole host of this capacity."""
        return (
            self.per_hour
            + self.cpu_hour * cpus
            + self.gpu_hour * gpus
            + self.gb_hour * mem_mb / 1024.0
        )


def allocation_rate(prices: PriceSet, alloc: dict[str, Any], capacity: dict[str, Any]) -> float:
    """Hourly allocation price of holding `alloc` (cpus, mem_mb, gpus, gpu_mem_mb) on a host."""
    cap_cpus = float(capacity.get("cpus") or 0)
    cap_mem = float(capacity.get("mem_mb") or 0)
    cap_gpus = float(capacity.get("gpus") or 0)
    cap_gmem = float(capacity.get("gpu_mem_mb") or 0)
    gpus = _gpu_equivalents(alloc, cap_gpus, cap_gmem)
    rate = (
        prices.cpu_hour * float(alloc.get("cpus") or 0)
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
    }
    labels = {
        "price_per_hour": "price per hour",
        "price_cpu_hour": "CPU core-hour price",
        "price_gpu_hour": "GPU-hour price",
        "price_gb_hour": "GB-hour price",
        "power_price_kwh": "electricity price per kWh",
    }
    checked = {k: check_price(v, labels[k]) for k, v in given.items() if v not in (None, "")}
    if host is not None:
        check_name(host, "host")
        if ledger.query_one("SELECT id FROM hosts WHERE name = ?", (host,)) is None:
            raise NotFound(f"host {host!r} does not exist", "see `lepton-tui hosts ls`")
    if not checked and not use_lab_default:
        raise ValidationError(
            "no price given",
            "give --per-hour, --cpu-hour, --gpu-hour, --gb-hour or --power-kwh",
        )
    if use_lab_default and host is None:
        raise ValidationError("--lab-default applies to a --host", field="host")
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
        row.update(checked)
        row.update(
            {
                "host": host,
                "effective_from": now,
                "currency": get_currency(ledger),
                "set_by": actor,
            }
        )
        ledger.insert("prices", row)
        if host is not None:
            ledger.execute(
                "UPDATE hosts SET price_per_hour = ?, price_cpu_hour = ?, price_gpu_hour = ?, "
                "price_gb_hour = ?, power_price_kwh = ? WHERE name = ?",
                [row[f] for f in PRICE_FIELDS] + [host],
            )
        shown = ", ".join(f"{labels[k]} {v:g}" for k, v in checked.items())
        if use_lab_default:
            shown = "lab default prices" + (f", {shown}" if shown else "")
        ledger.event(
            "price.set",
            f"prices of {host or 'the lab (default)'}: {shown} {row['currency']}",
            host=host,
            actor=actor,
            data={k: row[k] for k in PRICE_FIELDS},
            at=now,
        )
    return row


def set_currency(ledger: Ledger, code: str, actor: str | None = None) -> str:
    """Set the lab currency (an ISO code; prices are not converted)."""
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
    where = "host IS NULL" if host is None else "host = ?"
    params: list[Any] = [] if host is None else [host]
    return ledger.query_one(
        f"SELECT * FROM prices WHERE {where} AND effective_from <= ? "
        "ORDER BY effective_from DESC, id DESC LIMIT 1",
        [*params, at],
    )


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
        return ledger.query("SELECT * FROM prices ORDER BY effective_from, id")
    return ledger.query("SELECT * FROM prices WHERE host = ? ORDER BY effective_from, id", (host,))


@dataclass(frozen=True)
class PriceSegment:
    """The prices of one host over [start, end)."""

    host: str
    start: float
    end: float
    prices: PriceSet


def price_segments(ledger: Ledger, hosts: Sequence[str]) -> list[PriceSegment]:
    """Each host's prices as back-to-back periods covering all time (zero before any price)."""
    rows = ledger.query("SELECT * FROM prices ORDER BY effective_from, id")
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
        return now - float(low[:-1]) * unit
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


# -- accounting ---------------------------------------------------------------------------------

# Per (attempt, price period, bucket) overlap in seconds, with the attempt's hourly allocation rate.
_RATE_SQL = """
    p.per_hour * (CASE
        WHEN COALESCE(p.cap_cpus, 0) <= 0 AND COALESCE(p.cap_mem, 0) <= 0
             AND COALESCE(p.cap_gpus, 0) <= 0 THEN 1.0
        ELSE MIN(1.0, MAX(0.0,
            CASE WHEN p.cap_cpus > 0 THEN a.cpus / p.cap_cpus ELSE 0 END,
            CASE WHEN p.cap_mem > 0 THEN a.mem_mb * 1.0 / p.cap_mem ELSE 0 END,
            CASE WHEN p.cap_gpus > 0 THEN ({geq}) / p.cap_gpus ELSE 0 END))
        END)
    + p.cpu_hour * a.cpus + p.gpu_hour * ({geq}) + p.gb_hour * a.mem_mb / 1024.0
"""
_GEQ_SQL = (
    "CASE WHEN a.gpus > 0 THEN a.gpus * 1.0 "
    "WHEN a.gpu_mem_mb > 0 AND p.cap_gpus > 0 AND p.cap_gmem > 0 "
    "THEN MIN(1.0, a.gpu_mem_mb * p.cap_gpus * 1.0 / p.cap_gmem) ELSE 0.0 END"
)
_RATE = _RATE_SQL.format(geq=_GEQ_SQL)

_GROUP_KEYS = {
    "user": "j.user",
    "project": "j.project",
    "host": "a.host",
    "job": "a.job_id",
    "day": "w.label",
    "total": "'total'",
    "attempt": "a.id",
}


def _load_temp_tables(
    ledger: Ledger, hosts: Sequence[str], buckets: Sequence[tuple[str, float, float]]
) -> None:
    """(Re)fill this connection's TEMP tables of price periods and report buckets."""
    conn = ledger.conn
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS econ_period (host TEXT, t0 REAL, t1 REAL, "
        "per_hour REAL, cpu_hour REAL, gpu_hour REAL, gb_hour REAL, power_kwh REAL, "
        "cap_cpus REAL, cap_mem REAL, cap_gpus REAL, cap_gmem REAL, added_at REAL)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS temp.econ_period_host ON econ_period(host, t0)")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS econ_bucket (label TEXT, t0 REAL, t1 REAL)")
    conn.execute("CREATE INDEX IF NOT EXISTS temp.econ_bucket_t0 ON econ_bucket(t0)")
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS econ_energy (attempt_id INTEGER PRIMARY KEY, wh REAL)"
    )
    conn.execute("DELETE FROM econ_period")
    conn.execute("DELETE FROM econ_bucket")
    conn.execute("DELETE FROM econ_energy")
    caps = {
        r["name"]: r
        for r in ledger.query("SELECT name, cpus, mem_mb, gpus, gpu_mem_mb, added_at FROM hosts")
    }
    rows = []
    for seg in price_segments(ledger, hosts):
        cap = caps.get(seg.host) or {}
        p = seg.prices
        rows.append(
            (seg.host, seg.start, seg.end, p.per_hour, p.cpu_hour, p.gpu_hour, p.gb_hour,
             p.power_kwh, cap.get("cpus"), cap.get("mem_mb"), cap.get("gpus"),
             cap.get("gpu_mem_mb"), cap.get("added_at"))
        )  # fmt: skip
    conn.executemany(f"INSERT INTO econ_period VALUES ({', '.join('?' * 13)})", rows)
    conn.executemany("INSERT INTO econ_bucket VALUES (?, ?, ?)", list(buckets))


@contextmanager
def _snapshot(ledger: Ledger) -> Iterator[None]:
    """A deferred read transaction (no write lock on the ledger), unless one is already open."""
    conn = ledger.conn
    # reports read much of the attempts table: map it rather than read it page by page
    conn.execute("PRAGMA mmap_size = 268435456")
    conn.execute("PRAGMA cache_size = -32768")
    conn.execute("PRAGMA temp_store = MEMORY")
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def _hosts_in_play(ledger: Ledger) -> list[str]:
    names = {r["name"] for r in ledger.query("SELECT name FROM hosts")}
    names |= {
        r["host"]
        for r in ledger.query(
            # a loose index scan: one index seek per host, not one row per attempt
            "WITH RECURSIVE h(x) AS (SELECT MIN(host) FROM attempts UNION ALL "
            "SELECT (SELECT MIN(host) FROM attempts WHERE host > h.x) FROM h WHERE h.x IS NOT NULL) "
            "SELECT x AS host FROM h WHERE x IS NOT NULL"
        )
    }
    return sorted(names)


def _unsettled_energy(ledger: Ledger, since: float, until: float, now: float) -> None:
    """Measure, for the report, the energy of GPU attempts that have no stored energy yet."""
    rows = ledger.query(
        "SELECT * FROM attempts INDEXED BY idx_attempts_unmeasured "
        "WHERE energy_wh IS NULL AND (gpus > 0 OR gpu_mem_mb > 0) "
        "AND COALESCE(started_at, created_at) < ? AND (ended_at IS NULL OR ended_at > ?)",
        (until, since),
    )
    if not rows:
        return
    values = [(r["id"], measure_energy_wh(ledger, r, now)) for r in rows]
    ledger.conn.executemany("INSERT INTO econ_energy VALUES (?, ?)", values)


# Attempts that need slicing: unsettled ones (still running, or never settled), and settled ones
# that cross the report's start or end. Each part is read through an index, so a long settled
# history is never sliced row by row.
_SLICE_IDS = """
    SELECT id FROM attempts INDEXED BY idx_attempts_unsettled WHERE cost IS NULL
    UNION
    SELECT id FROM attempts INDEXED BY idx_attempts_ended_started
      WHERE ended_at > :since AND COALESCE(started_at, created_at) < :since
    UNION
    SELECT id FROM attempts INDEXED BY idx_attempts_ended_started
      WHERE ended_at > :until AND COALESCE(started_at, created_at) < :until
"""


def _attempt_sql(key: str, all_attempts: bool) -> str:
    """Per (attempt, price period, bucket) slices summed by key, bucket and host.

    `ov` is the slice's overlap in seconds; `first` marks the one slice of each (attempt, bucket)
    that holds the attempt's start in that bucket, so attempts are counted once per bucket, and
    `lead` the one slice of the whole report that holds its start, so the total counts it once.
    With `all_attempts` every attempt of the window is sliced (the `day` report); otherwise only
    those of `_SLICE_IDS` (the others are summed from their stored cost by `_settled_sql`).
    """
    if all_attempts:
        source = "attempts a NOT INDEXED"
    else:
        source = f"({_SLICE_IDS}) ids CROSS JOIN attempts a ON a.id = ids.id"
    return f"""
    WITH b AS (
      SELECT a.id AS id, a.host AS host, a.cpus AS cpus, a.mem_mb AS mem_mb, a.gpus AS gpus,
             a.gpu_mem_mb AS gpu_mem_mb, a.job_id AS job_id, j.user AS user, j.project AS project,
             COALESCE(a.started_at, a.created_at) AS s0,
             MIN(COALESCE(a.ended_at, :now), :now) AS s1,
             COALESCE(a.energy_wh, e.wh, 0.0) AS wh
      FROM {source}
      CROSS JOIN jobs j ON j.id = a.job_id
      LEFT JOIN econ_energy e ON e.attempt_id = a.id
      WHERE (a.ended_at > :since OR a.ended_at IS NULL)
        AND COALESCE(a.started_at, a.created_at) < :until
        AND MIN(COALESCE(a.ended_at, :now), :now) > COALESCE(a.started_at, a.created_at)
    ),
    sl AS (
      SELECT {key.replace("j.", "a.")} AS k, w.label AS label,
             a.host AS host, a.s0 AS s0, a.s1 AS s1, a.wh AS wh, a.cpus AS cpus,
             MAX(0.0, MIN(a.s1, p.t1, w.t1) - MAX(a.s0, p.t0, w.t0)) AS ov,
             ({_RATE}) AS rate,
             ({_GEQ_SQL}) AS geq,
             p.power_kwh AS kwh,
             (p.t0 <= MAX(a.s0, w.t0) AND MAX(a.s0, w.t0) < p.t1) AS first,
             (p.t0 <= MAX(a.s0, w.t0) AND MAX(a.s0, w.t0) < p.t1 AND a.s0 >= w.t0) AS starts,
             (p.t0 <= MAX(a.s0, :since) AND MAX(a.s0, :since) < p.t1
              AND w.t0 <= MAX(a.s0, :since) AND MAX(a.s0, :since) < w.t1
              AND a.s0 >= :count_from) AS lead
      FROM b a
      CROSS JOIN econ_bucket w ON w.t0 < a.s1 AND w.t1 > a.s0 AND w.t0 >= a.s0 - :maxb
      CROSS JOIN econ_period p ON p.host = a.host AND p.t0 < MIN(a.s1, w.t1)
                              AND p.t1 > MAX(a.s0, w.t0)
    )
    SELECT k, label, host,
           SUM(ov * rate) / 3600.0 AS alloc_cost,
           SUM(wh * ov / (s1 - s0)) / 1000.0 AS energy_kwh,
           SUM(wh * ov / (s1 - s0) * kwh) / 1000.0 AS energy_cost,
           SUM(ov * geq) / 3600.0 AS gpu_hours,
           SUM(ov * cpus) / 3600.0 AS cpu_hours,
           SUM(first) AS attempts,
           SUM(starts) AS starts,
           SUM(lead) AS lead
    FROM sl GROUP BY k, label, host
    """


def _settled_sql(key: str, kwh: float, narrow: bool = False) -> str:
    """Settled attempts wholly inside the report window, summed from their stored cost.

    Their energy cost (split from the allocation cost for idle cost) is their energy x `kwh`, the
    one electricity price in force everywhere over the window.
    """
    price = f"{float(kwh)!r}"
    source = (
        "attempts a INDEXED BY idx_attempts_ended_started" if narrow else "attempts a NOT INDEXED"
    )
    geq = (
        "CASE WHEN a.gpus > 0 THEN a.gpus * 1.0 WHEN a.gpu_mem_mb > 0 "
        "THEN COALESCE((SELECT MIN(1.0, a.gpu_mem_mb * h.gpus * 1.0 / h.gpu_mem_mb) FROM hosts h "
        "WHERE h.name = a.host AND h.gpus > 0 AND h.gpu_mem_mb > 0), 0.0) ELSE 0.0 END"
    )
    return f"""
    SELECT {key} AS k, 'all' AS label, a.host AS host,
           SUM(a.cost - COALESCE(a.energy_wh, 0.0) * {price} / 1000.0) AS alloc_cost,
           SUM(COALESCE(a.energy_wh, 0.0)) / 1000.0 AS energy_kwh,
           SUM(COALESCE(a.energy_wh, 0.0) * {price}) / 1000.0 AS energy_cost,
           SUM(({geq}) * (a.ended_at - COALESCE(a.started_at, a.created_at))) / 3600.0
               AS gpu_hours,
           SUM(a.cpus * (a.ended_at - COALESCE(a.started_at, a.created_at))) / 3600.0
               AS cpu_hours,
           COUNT(*) AS attempts,
           COUNT(*) AS starts,
           COUNT(*) AS lead
    FROM {source}
    CROSS JOIN jobs j ON j.id = a.job_id
    WHERE a.cost IS NOT NULL AND a.ended_at <= :until AND a.ended_at > :since
      AND COALESCE(a.started_at, a.created_at) >= :since
      AND a.ended_at > COALESCE(a.started_at, a.created_at)
    GROUP BY k, a.host
    """


def _is_narrow(ledger: Ledger, since: float, until: float) -> bool:
    """True when [since, until) is a small part of the ledger's history: read it by index."""
    first = ledger.query_one("SELECT created_at FROM attempts ORDER BY id LIMIT 1")
    if first is None or first["created_at"] is None:
        return True
    return (until - since) * 8 < max(1.0, until - float(first["created_at"]))


def _uniform_kwh(ledger: Ledger, since: float, until: float) -> float | None:
    """The electricity price when one price holds for every host over [since, until), else None."""
    rows = ledger.query(
        "SELECT DISTINCT power_kwh FROM econ_period WHERE t0 < ? AND t1 > ?", (until, since)
    )
    return float(rows[0]["power_kwh"] or 0.0) if len(rows) == 1 else None


_HOST_TOTAL_SQL = """
    SELECT p.host AS host, w.label AS label,
           SUM(MAX(0.0, MIN(p.t1, w.t1, :now) - MAX(p.t0, w.t0, COALESCE(p.added_at, w.t0)))
               * (p.per_hour + p.cpu_hour * COALESCE(p.cap_cpus, 0)
                  + p.gpu_hour * COALESCE(p.cap_gpus, 0)
                  + p.gb_hour * COALESCE(p.cap_mem, 0) / 1024.0)) / 3600.0 AS total
    FROM econ_period p JOIN econ_bucket w ON p.t0 < w.t1 AND p.t1 > w.t0
    WHERE p.added_at IS NOT NULL
    GROUP BY p.host, w.label
"""


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

    def as_dict(self) -> dict[str, Any]:
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


def _live_rows(
    ledger: Ledger,
    by: str,
    since: float,
    until: float,
    now: float,
    buckets: Sequence[tuple[str, float, float]],
    count_from: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Slices summed by (key, bucket label, host), and each host's whole price per bucket."""
    buckets = [b for b in buckets if b[2] > b[1]]
    if not buckets or until <= since:
        return [], []
    max_len = max(b[2] - b[1] for b in buckets)
    params = {"since": since, "until": until, "now": now, "maxb": max_len + 1.0,
              "count_from": count_from}  # fmt: skip
    with _snapshot(ledger):  # one consistent read; the temp tables are this connection's
        _load_temp_tables(ledger, _hosts_in_play(ledger), buckets)
        _unsettled_energy(ledger, since, until, now)
        key = _GROUP_KEYS[by]
        # Settled attempts inside the window are summed from their stored cost, unless the
        # report is split into buckets or the electricity price changed in the window (their
        # energy cost, needed apart for idle cost, would then depend on the slicing).
        kwh = _uniform_kwh(ledger, since, until) if len(buckets) == 1 else None
        if kwh is not None:
            rows = ledger.query(_attempt_sql(key, all_attempts=False), params)
            labelled = {**params, "label": buckets[0][0]}
            narrow = _is_narrow(ledger, since, until)
            settled = _settled_sql(key.replace("w.label", ":label"), kwh, narrow)
            for r in ledger.query(settled, labelled):
                rows.append({**r, "label": buckets[0][0]})
        else:
            rows = ledger.query(_attempt_sql(key, all_attempts=True), params)
        hosts_total = ledger.query(_HOST_TOTAL_SQL, params)
    return rows, hosts_total


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
    """
    if by not in GROUPINGS and by != "attempt":
        raise ValidationError(f"cannot group costs by {by!r}", f"use one of {', '.join(GROUPINGS)}")
    check_range(since, until)
    now = ledger.clock() if now is None else now
    until_eff = min(until, now)
    ensure_indexes(ledger)
    acc = _Acc(by)
    if buckets is not None or by in ("job", "attempt") or not rollup:
        if buckets is None:
            buckets = (
                day_buckets(since, until_eff, tz) if by == "day" else [("all", since, until_eff)]
            )
        rows, totals = _live_rows(ledger, by, since, until_eff, now, buckets, -_FAR)
        acc.add_live(rows, totals)
    else:
        if ledger.query_one(
            "SELECT 1 AS x FROM attempts INDEXED BY idx_attempts_unsettled "
            "WHERE cost IS NULL AND ended_at IS NOT NULL LIMIT 1"
        ):
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
    return acc.report(since, until, get_currency(ledger))


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
        lo, hi = days[0][1], days[-1][1]
        group = "label" if self.by == "day" else "key"
        for r in ledger.query(
            f"SELECT {group} AS k, SUM(alloc_cost) AS alloc_cost, SUM(energy_kwh) AS energy_kwh, "
            "SUM(energy_cost) AS energy_cost, SUM(gpu_hours) AS gpu_hours, "
            "SUM(cpu_hours) AS cpu_hours, SUM(overlaps) AS overlaps, SUM(starts) AS starts "
            f"FROM econ_rollup WHERE dim = ? AND day >= ? AND day <= ? GROUP BY {group}",
            (dim, lo, hi),
        ):
            key = "total" if self.by == "total" else str(r["k"])
            per_row = r["overlaps"] if self.by == "day" else r["starts"]
            self._add(key, r, int(per_row or 0), int(r["starts"] or 0))
        # idle cost summed in SQL: per host, and per day for the day report
        for r in ledger.query(
            "SELECT host, SUM(idle_cost) AS idle FROM econ_rollup_idle "
            "WHERE day >= ? AND day <= ? GROUP BY host",
            (lo, hi),
        ):
            self.idle_by_host[r["host"]] = self.idle_by_host.get(r["host"], 0.0) + (r["idle"] or 0)
        if self.by == "day":
            for r in ledger.query(
                "SELECT label, SUM(idle_cost) AS idle FROM econ_rollup_idle "
                "WHERE day >= ? AND day <= ? GROUP BY label",
                (lo, hi),
            ):
                self.idle_by_label[r["label"]] = r["idle"] or 0.0

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


# -- the daily roll-up --------------------------------------------------------------------------


def _final_days(
    ledger: Ledger, since: float, until: float, now: float, tz: tzinfo | None
) -> list[tuple[str, float, float]]:
    """Whole days inside [since, until) that can no longer change: every attempt that overlaps
    them is settled (ended, with its cost stored). Contiguous, oldest first."""
    row = ledger.query_one(
        "SELECT MIN(COALESCE(started_at, created_at)) AS t FROM attempts "
        "INDEXED BY idx_attempts_unsettled WHERE cost IS NULL"
    )
    horizon = min(now, until)
    if row and row["t"] is not None:
        horizon = min(horizon, float(row["t"]))
    if horizon <= since:
        return []
    days = day_buckets(since, horizon, tz)
    return [d for d in days if _is_whole(d, tz) and d[2] <= horizon]


def _is_whole(day: tuple[str, float, float], tz: tzinfo | None) -> bool:
    start = datetime.fromtimestamp(day[1], tz or local_tz())
    return (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0) and (
        _add_days(start, 1).timestamp() == day[2]
    )


def _ensure_rollup(ledger: Ledger, days: list[tuple[str, float, float]], now: float) -> None:
    """Build the roll-up rows of the days that have none yet (user, project and host, per day)."""
    have = {
        r["day"]
        for r in ledger.query(
            "SELECT day FROM econ_rollup_days WHERE day >= ? AND day <= ?",
            (days[0][1], days[-1][1]),
        )
    }
    missing = [d for d in days if d[1] not in have]
    if not missing:
        return
    t0, t1 = missing[0][1], missing[-1][2]
    parts = {dim: _live_rows(ledger, dim, t0, t1, now, missing, -_FAR)
             for dim in ("user", "project", "host")}  # fmt: skip
    day_of = {d[0]: d[1] for d in missing}
    fields = ("alloc_cost", "energy_kwh", "energy_cost", "gpu_hours", "cpu_hours")
    with ledger.tx():
        for dim, (rows, totals) in parts.items():
            merged: dict[tuple[str, str, str], list[float]] = {}
            for r in rows:
                host = r["host"] if dim == "host" else ""
                acc = merged.setdefault((r["label"], str(r["k"]), host), [0.0] * 7)
                for i, f in enumerate(fields):
                    acc[i] += r[f] or 0.0
                acc[5] += r["attempts"] or 0
                acc[6] += r["starts"] or 0
            ledger.conn.executemany(
                "INSERT OR REPLACE INTO econ_rollup (dim, day, label, key, host, alloc_cost, "
                "energy_kwh, energy_cost, gpu_hours, cpu_hours, overlaps, starts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(dim, day_of[label], label, key, host, *vals)
                 for (label, key, host), vals in merged.items()],
            )  # fmt: skip
            if dim == "host":
                alloc = {(r["host"], r["label"]): 0.0 for r in rows}
                for r in rows:
                    alloc[(r["host"], r["label"])] += r["alloc_cost"] or 0.0
                ledger.conn.executemany(
                    "INSERT OR REPLACE INTO econ_rollup_idle (day, label, host, idle_cost) "
                    "VALUES (?, ?, ?, ?)",
                    [(day_of[h["label"]], h["label"], h["host"],
                      max(0.0, (h["total"] or 0.0) - alloc.get((h["host"], h["label"]), 0.0)))
                     for h in totals],
                )  # fmt: skip
        ledger.conn.executemany(
            "INSERT OR REPLACE INTO econ_rollup_days (day, day_end, label, built_at) "
            "VALUES (?, ?, ?, ?)",
            [(d[1], d[2], d[0], now) for d in missing],
        )


# -- energy and settling ------------------------------------------------------------------------


def measure_energy_wh(ledger: Ledger, attempt: dict[str, Any], now: float | None = None) -> float:
    """Measured GPU energy of an attempt: per GPU it held, mean sampled power x time x its share."""
    gpu_ids = attempt.get("gpu_ids")
    if isinstance(gpu_ids, str):
        gpu_ids = json.loads(gpu_ids or "[]")
    if not gpu_ids:
        return 0.0
    start = attempt.get("started_at") or attempt.get("created_at")
    end = attempt.get("ended_at") or (ledger.clock() if now is None else now)
    if start is None or end <= start:
        return 0.0
    share = 1.0
    if not attempt.get("gpus"):
        host = ledger.query_one(
            "SELECT gpus, gpu_mem_mb FROM hosts WHERE name = ?", (attempt["host"],)
        )
        per = (host["gpu_mem_mb"] / host["gpus"]) if host and host["gpus"] else 0
        share = min(1.0, (attempt.get("gpu_mem_mb") or 0) / per) if per else 1.0
    hours = (end - start) / 3600.0
    total = 0.0
    for g in gpu_ids:
        r = ledger.query_one(
            "SELECT SUM(power_w * n) AS p, SUM(n) AS n FROM samples "
            "WHERE host = ? AND gpu_index = ? AND resolution IN (0, 60, 3600) "
            "AND at >= ? AND at <= ? AND power_w IS NOT NULL",
            (attempt["host"], int(g), start, end),
        )
        if r and r["n"]:
            total += (r["p"] / r["n"]) * hours * share
    return total


def attempt_cost(ledger: Ledger, token: str, now: float | None = None) -> tuple[float, float]:
    """(cost, energy_wh) of one attempt so far (to `now` while it runs)."""
    now = ledger.clock() if now is None else now
    att = ledger.query_one("SELECT * FROM attempts WHERE token = ?", (token,))
    if att is None:
        raise NotFound(f"attempt {token} does not exist")
    start = att["started_at"] or att["created_at"]
    end = min(att["ended_at"] or now, now)
    if end <= start:
        return 0.0, 0.0
    energy = (
        att["energy_wh"] if att["energy_wh"] is not None else measure_energy_wh(ledger, att, now)
    )
    host = (
        ledger.query_one(
            "SELECT cpus, mem_mb, gpus, gpu_mem_mb FROM hosts WHERE name = ?", (att["host"],)
        )
        or {}
    )
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
    att = ledger.query_one("SELECT ended_at FROM attempts WHERE token = ?", (token,))
    if att is None:
        raise NotFound(f"attempt {token} does not exist")
    cost, energy = attempt_cost(ledger, token)
    if att["ended_at"] is not None:
        with ledger.tx():
            ledger.execute(
                "UPDATE attempts SET cost = ?, energy_wh = ? WHERE token = ?",
                (cost, energy, token),
            )
    return cost


def settle_ended(ledger: Ledger, now: float | None = None) -> int:
    """Store cost and energy on every ended attempt that has none yet, in bulk; return how many.

    For ledgers whose attempts ended before anything settled them (an old ledger, an end the
    dispatcher did not settle); `settle_attempt` does the same for one attempt. An attempt of no
    duration costs 0.
    """
    now = ledger.clock() if now is None else now
    ensure_indexes(ledger)
    ended = ledger.query(
        "SELECT id, COALESCE(started_at, created_at) AS s0 FROM attempts "
        "INDEXED BY idx_attempts_unsettled WHERE cost IS NULL AND ended_at IS NOT NULL"
    )
    if not ended:
        return 0
    first = min(float(r["s0"]) for r in ended)
    found: dict[int, CostRow] = {}
    if first < now:
        report = cost_report(ledger, first, now, "attempt", now=now)
        found = {int(row.key): row for row in report.rows}
    values = []
    for r in ended:
        row = found.get(r["id"])
        values.append((row.cost, row.energy_kwh * 1000.0, r["id"]) if row else (0.0, 0.0, r["id"]))
    with ledger.tx():
        ledger.conn.executemany(
            "UPDATE attempts SET cost = ?, energy_wh = COALESCE(energy_wh, ?) "
            "WHERE id = ? AND cost IS NULL",
            values,
        )
    return len(values)


def running_rate(ledger: Ledger, now: float | None = None) -> float:
    """What the running attempts cost per hour now (allocation plus their latest power draw)."""
    now = ledger.clock() if now is None else now
    rows = ledger.query("SELECT * FROM attempts WHERE state IN ('starting', 'running')")
    if not rows:
        return 0.0
    caps = {
        r["name"]: r for r in ledger.query("SELECT name, cpus, mem_mb, gpus, gpu_mem_mb FROM hosts")
    }
    rate = 0.0
    for att in rows:
        prices = prices_at(ledger, att["host"], now)
        rate += allocation_rate(prices, att, caps.get(att["host"], {}))
        if prices.power_kwh:
            for g in json.loads(att["gpu_ids"] or "[]"):
                r = ledger.query_one(
                    "SELECT power_w FROM samples WHERE host = ? AND gpu_index = ? "
                    "AND resolution = 0 AND power_w IS NOT NULL ORDER BY at DESC LIMIT 1",
                    (att["host"], int(g)),
                )
                if r:
                    rate += r["power_w"] / 1000.0 * prices.power_kwh
    return rate


# -- console numbers ----------------------------------------------------------------------------


def cost_summary(
    ledger: Ledger, now: float | None = None, tz: tzinfo | None = None
) -> dict[str, Any]:
    """The console's cost panel.

    Keys: `currency`; `today`, `week` (since Monday), `month` (spend, allocation plus energy);
    `rate_per_hour` (what runs now costs per hour); `by_user`, `by_project` (this month,
    {name: spend}, largest first); `idle_today`, `idle_month` (idle cost); `idle_by_host` (this
    month).
    """
    now = ledger.clock() if now is None else now
    t_day, t_week, t_month = day_start(now, tz), week_start(now, tz), month_start(now, tz)
    first = min(t_week, t_month)
    buckets = [("day", t_day, now), ("week", t_week, now), ("month", t_month, now)]
    if now <= first:
        return {"currency": get_currency(ledger), "today": 0.0, "week": 0.0, "month": 0.0,
                "rate_per_hour": 0.0, "by_user": {}, "by_project": {}, "idle_today": 0.0,
                "idle_month": 0.0, "idle_by_host": {}}  # fmt: skip
    # overlapping buckets: one report per bucket kind
    spend = {}
    idle = {}
    for label, t0, t1 in buckets:
        if t1 <= t0:
            spend[label], idle[label] = 0.0, 0.0
            continue
        rep = cost_report(ledger, t0, t1, "total", now=now, buckets=[(label, t0, t1)])
        spend[label], idle[label] = rep.total.cost, rep.idle_cost
        if label == "month":
            month_idle_by_host = rep.idle_by_host
    by_user = cost_report(ledger, t_month, now, "user", now=now, tz=tz) if now > t_month else None
    by_project = (
        cost_report(ledger, t_month, now, "project", now=now, tz=tz) if now > t_month else None
    )
    return {
        "currency": get_currency(ledger),
        "today": spend["day"],
        "week": spend["week"],
        "month": spend["month"],
        "rate_per_hour": running_rate(ledger, now),
        "by_user": {r.key: r.cost for r in by_user.rows} if by_user else {},
        "by_project": {r.key: r.cost for r in by_project.rows} if by_project else {},
        "idle_today": idle["day"],
        "idle_month": idle["month"],
        "idle_by_host": month_idle_by_host if now > t_month else {},
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
    held = ledger.query(
        """SELECT a.host AS host, CAST(g.value AS INTEGER) AS gpu,
                  SUM(MAX(0.0, MIN(COALESCE(a.ended_at, :now), :until)
                      - MAX(COALESCE(a.started_at, a.created_at), :since))
                      * CASE WHEN a.gpus > 0 THEN 1.0 ELSE
                          MIN(1.0, a.gpu_mem_mb * 1.0 / MAX(1.0, h.gpu_mem_mb * 1.0 / MAX(h.gpus, 1)))
                        END) AS held
           FROM attempts a JOIN json_each(a.gpu_ids) g LEFT JOIN hosts h ON h.name = a.host
           WHERE COALESCE(a.started_at, a.created_at) < :until
             AND (a.ended_at > :since OR a.ended_at IS NULL)
           GROUP BY a.host, gpu""",
        {"since": since, "until": until, "now": now},
    )
    measured = ledger.query(
        """SELECT host, gpu_index AS gpu, SUM(util_percent * n) * 1.0 / SUM(n) AS util
           FROM samples WHERE gpu_index >= 0 AND at >= ? AND at < ? AND util_percent IS NOT NULL
           GROUP BY host, gpu_index""",
        (since, until),
    )
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for h in ledger.query("SELECT name, gpus FROM hosts"):
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


def format_money(amount: float, currency: str) -> str:
    """`1,234.56 USD`."""
    return f"{amount:,.2f} {currency}"


__all__ = [
    "CURRENCIES", "budget_hold_reasons", "budget_warnings", "CostReport", "CostRow", "LeptonError", "PriceSegment", "PriceSet",
    "allocation_rate", "attempt_cost", "check_currency", "check_price", "check_range",
    "cost_report", "cost_series", "cost_summary", "day_buckets", "ensure_indexes",
    "format_money", "get_currency", "gpu_utilization", "measure_energy_wh", "month_start",
    "parse_when", "price_history", "price_segments", "prices_at", "running_rate",
    "set_cost_weight", "set_currency", "set_prices", "settle_attempt",
]  # fmt: skip


# -- budgets (kept in economics_budgets.py; re-exported here for the dispatcher and `queue`) ------


def budget_warnings(
    ledger: Ledger, now: float | None = None, tz: tzinfo | None = None
) -> list[Any]:
    """Budgets at or past 80 % / 100 % this month, each with a one-line `.message`."""
    from lepton_tui.economics_budgets import budget_warnings as warnings

    return warnings(ledger, now, tz)


def budget_hold_reasons(
    ledger: Ledger, jobs: Sequence[dict[str, Any]], now: float | None = None
) -> dict[int, str]:
    """{job id: "over budget: ..."} for queued jobs a hard budget holds (see economics_budgets)."""
    from lepton_tui.economics_budgets import budget_hold_reasons as holds

    return holds(ledger, jobs, now)
