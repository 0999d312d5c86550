"""Read models for the console: what each panel shows, computed from the ledger.

Every function here is plain, blocking SQLite work: the console calls them from thread workers,
never on the event loop. They take `now` from the caller (the app's clock) so a fixed clock gives
fixed pictures. Queries are bounded: the fleet (`lepton_tui.fleet_view`) reads the latest sample
per host and GPU and a bucketed sparkline, the queue reads a window of rows, never the whole jobs
table.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lepton_tui.economics.costs import charged_from
from lepton_tui.economics.prices import charged_resources, day_start, get_currency, week_start
from lepton_tui.fleet_view import FleetRow, ViewMemo, fleet
from lepton_tui.ledger import Ledger
from lepton_tui.ledger_views import QUEUE_SORTS
from lepton_tui.request_text import short_request
from lepton_tui.settings import SETTINGS
from lepton_tui.settings import effective as effective_settings

# The cost panel's money totals (today, this week, by user and project) are read again at most
# this often; its rates (the spend and idle rate now) every refresh.
COST_TOTALS_S = 10.0
QUEUE_WINDOW = 200
RECENT_S = 600.0  # the overview keeps jobs that ended this recently
LIVE_STATES = ("starting", "running", "cancelling")
DEFAULT_POLICY = SETTINGS["policy"].default

# -- queue ---------------------------------------------------------------------------------------

SORTS = QUEUE_SORTS  # the orders the queue can be read in, by name
SORT_NAMES = tuple(SORTS)


@dataclass
class QueueRow:
    """One job of the queue window."""

    id: int
    state: str
    user: str
    project: str
    name: str | None
    command: str
    request: str
    host: str | None
    gpu_ids: str
    age_s: float
    reason: str | None
    priority: int
    kind: str = "batch"  # or "interactive" (`lepton-tui shell`): shown apart
    array_id: int | None = None
    """the array this job is an element of (its first job's id), else None"""
    array_index: int | None = None


@dataclass
class QueueWindow:
    """A window of the queue, and how many jobs there are in all."""

    rows: list[QueueRow]
    matched: int
    running: int
    queued: int
    sort: str = "default"
    text: str = ""


def gpu_ranges(ids: list[int]) -> str:
    """GPU ids with runs of three or more shortened: [0, 1, 2, 3, 6, 7] -> `0-3,6,7`."""
    runs: list[list[int]] = []
    for i in sorted(set(ids)):
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    parts = [f"{r[0]}-{r[-1]}" if len(r) >= 3 else ",".join(map(str, r)) for r in runs]
    return ",".join(parts)


def describe_request(cpus: float, mem_mb: int, gpus: int, gpu_mem_mb: int = 0) -> str:
    """`4c 16G 2gpu` style summary of a request (the CLI's `queue` writes it the same)."""
    return short_request(cpus, mem_mb, gpus, gpu_mem_mb)


def queue_window(
    ledger: Ledger,
    now: float,
    *,
    text: str = "",
    sort: str = "default",
    limit: int = QUEUE_WINDOW,
    all_states: bool = False,
    recent_s: float = 0.0,
) -> QueueWindow:
    """Running and queued jobs (or all with `all_states`), filtered by `text`, at most `limit`.

    `recent_s` also keeps jobs that ended in the last `recent_s` seconds (after the live ones),
    so a job just submitted does not vanish from the overview the moment it finishes."""
    since = None if all_states or recent_s <= 0 else now - recent_s
    rows, matched = ledger.queue_page(
        text, sort, limit, live_only=not all_states, ended_since=since
    )
    counts = ledger.live_job_counts()
    out = []
    for r in rows:
        # where it runs, or for an ended job where it ran last (a queued job has no host yet,
        # even one requeued after a lost attempt)
        ran = r["state"] != "queued"
        ids = json.loads(r["gpu_ids"]) if r["gpu_ids"] and ran else []
        out.append(
            QueueRow(
                id=r["id"], state=r["state"], user=r["user"], project=r["project"],
                name=r["name"], command=r["command"],
                request=describe_request(r["cpus"] or 0, r["mem_mb"] or 0, r["gpus"] or 0,
                                         r["gpu_mem_mb"] or 0),
                host=r["host"] if ran else None,
                gpu_ids=gpu_ranges(ids),
                age_s=max(0.0, now - float(r["submitted_at"] or now)),
                reason=r["reason"] if r["state"] == "queued" else None,
                priority=int(r["priority"] or 0),
                kind=r["kind"] or "batch",
                array_id=r["array_id"], array_index=r["array_index"],
            )
        )  # fmt: skip
    return QueueWindow(
        rows=out,
        matched=matched,
        running=sum(counts.get(s, 0) for s in LIVE_STATES),
        queued=counts.get("queued", 0),
        sort=sort,
        text=text,
    )


# -- cost ----------------------------------------------------------------------------------------


@dataclass
class CostPanel:
    """Money: spent today and this week, the rate now, by user and project, and idle cost."""

    today: float = 0.0
    week: float = 0.0
    rate_now: float = 0.0
    idle_rate: float = 0.0
    idle_today: float = 0.0
    by_user: list[tuple[str, float]] = field(default_factory=list)
    by_project: list[tuple[str, float]] = field(default_factory=list)
    priced_hosts: int = 0
    hosts: int = 0
    month: float | None = None
    currency: str = "USD"
    breakdown_period: str = "this week"
    source: str = "views"


def _share(att: dict[str, Any], host: dict[str, Any]) -> float:
    """The fraction of a host an attempt holds (its largest share of CPUs, memory or GPUs)."""
    shares = [0.0]
    if host.get("gpus"):
        shares.append((att["gpus"] or 0) / host["gpus"])
    if host.get("cpus"):
        shares.append((att["cpus"] or 0) / host["cpus"])
    if host.get("mem_mb"):
        shares.append((att["mem_mb"] or 0) / host["mem_mb"])
    if len(shares) == 1:  # capacity unknown: a whole host per attempt
        return 1.0
    return min(1.0, max(shares))


def _host_prices(ledger: Ledger) -> dict[str, dict[str, Any]]:
    lab_price = ledger.lab_default_price()
    hosts = {}
    for h in ledger.host_price_rows():
        h["price"] = float(h["price_per_hour"]) if h["price_per_hour"] is not None else lab_price
        hosts[h["name"]] = h
    return hosts


def cost_panel(
    ledger: Ledger,
    now: float,
    memo: ViewMemo | None = None,
    pause: Callable[[], None] | None = None,
) -> CostPanel:
    """The cost panel: `economics.cost_summary` (the numbers `lepton-tui cost` prints) and
    `economics.idle_rate`, with the prices and what runs now read once for all of them.

    With a `memo`, the money totals (`cost_summary`, three reports) are read again only when
    what they depend on changed or `COST_TOTALS_S` passed; the rates are read every time.
    `pause` is called before the totals are read again (the longest piece of a refresh)."""
    from lepton_tui.economics.costs import (
        cost_summary,
        idle_rate,
        live_state,
        priced_hosts,
        prices_now,
        running_rate,
    )

    prices = prices_now(ledger, now)
    live = live_state(ledger, now, prices)
    if memo is None:
        summary = cost_summary(ledger, now, prices=prices, live=live)
    else:
        with memo.lock:
            inputs = ledger.cost_inputs()
            cached = memo.cost
            if (
                cached is None
                or memo.cost_at is None
                or not 0 <= now - memo.cost_at < COST_TOTALS_S
                or cached["_inputs"] != inputs
            ):
                if pause is not None:
                    pause()
                cached = cost_summary(ledger, now, prices=prices, live=live)
                # a report may settle ended attempts (a write): key on what it leaves
                cached["_inputs"] = ledger.cost_inputs()
                memo.cost, memo.cost_at = cached, now
            else:
                cached = {**cached, "rate_per_hour": running_rate(ledger, now, prices, live)}
        summary = cached
    return CostPanel(
        today=summary["today"],
        week=summary["week"],
        month=summary["month"],
        rate_now=summary["rate_per_hour"],
        idle_rate=idle_rate(ledger, now, prices, live),
        idle_today=summary["idle_today"],
        by_user=sorted(summary["by_user"].items(), key=lambda kv: -kv[1]),
        by_project=sorted(summary["by_project"].items(), key=lambda kv: -kv[1]),
        priced_hosts=priced_hosts(ledger, now, prices),
        hosts=len(prices),
        currency=summary["currency"],
        breakdown_period="this month",
        source="economics",
    )


def simple_cost_panel(ledger: Ledger, now: float) -> CostPanel:
    """Cost from attempts and host prices alone: each attempt pays its host's hourly price times
    its largest share of the host's CPUs, memory or GPUs (a whole host when capacity is unknown)."""
    hosts = _host_prices(ledger)
    panel = CostPanel(
        hosts=len(hosts),
        priced_hosts=sum(1 for h in hosts.values() if h["price"]),
        currency=get_currency(ledger),
    )
    t_day, t_week = day_start(now), week_start(now)
    by_user: dict[str, float] = defaultdict(float)
    by_project: dict[str, float] = defaultdict(float)
    held_today: dict[str, float] = defaultdict(float)
    held_now: dict[str, float] = defaultdict(float)
    for a in ledger.attempts_with_owners_since(t_week):
        host = hosts.get(a["host"])
        if host is None or not host["price"]:
            continue
        share = _share(charged_resources(a), host)
        rate = host["price"] * share
        charged = charged_from(a)  # as the cost engine charges it
        if charged is None:  # a Slurm job that never left Slurm's queue
            continue
        start = charged
        end = float(a["ended_at"]) if a["ended_at"] is not None else now
        end = min(end, now)
        week_h = max(0.0, end - max(start, t_week)) / 3600
        day_h = max(0.0, end - max(start, t_day)) / 3600
        panel.week += rate * week_h
        panel.today += rate * day_h
        by_user[a["user"]] += rate * week_h
        by_project[a["project"]] += rate * week_h
        held_today[a["host"]] += share * day_h
        if a["ended_at"] is None and a["state"] in ("starting", "running"):
            panel.rate_now += rate
            held_now[a["host"]] += share
    for name, h in hosts.items():
        if not h["price"] or h["state"] != "up":
            continue
        panel.idle_rate += h["price"] * max(0.0, 1.0 - min(1.0, held_now[name]))
        up_h = max(0.0, now - max(t_day, float(h["added_at"] or t_day))) / 3600
        panel.idle_today += h["price"] * max(0.0, up_h - held_today[name])
    panel.by_user = sorted(by_user.items(), key=lambda kv: -kv[1])
    panel.by_project = sorted(by_project.items(), key=lambda kv: -kv[1])
    return panel


def cost_series(
    ledger: Ledger, now: float, *, span_s: float = 86400.0, buckets: int = 48
) -> list[float]:
    """Spend per bucket over the last `span_s` seconds (oldest first), for the cost chart."""
    hosts = _host_prices(ledger)
    start = now - span_s
    width = span_s / buckets
    out = [0.0] * buckets
    for a in ledger.attempt_spans_since(start):
        host = hosts.get(a["host"])
        if host is None or not host["price"]:
            continue
        rate = host["price"] * _share(charged_resources(a), host) / 3600
        charged = charged_from(a)  # as the panel and reports charge it
        if charged is None:  # a Slurm job that never left Slurm's queue
            continue
        a0 = max(start, charged)
        a1 = min(now, float(a["ended_at"]) if a["ended_at"] is not None else now)
        if a1 <= a0:
            continue
        first, last = int((a0 - start) // width), min(buckets - 1, int((a1 - start) // width))
        for b in range(max(0, first), last + 1):
            b0, b1 = start + b * width, start + (b + 1) * width
            out[b] += rate * max(0.0, min(a1, b1) - max(a0, b0))
    return out


# -- header and scheduler ------------------------------------------------------------------------


@dataclass
class Header:
    """The line above everything: lab, policy, hosts up, spend rate."""

    lab: str
    policy: str
    hosts_up: int
    hosts_total: int
    rate_now: float
    running: int
    queued: int
    demo: bool = False
    currency: str = "USD"
    local_host: bool = False  # this machine is a host already (`hosts add --local`)


def header(
    ledger: Ledger, rows: list[FleetRow], cost: CostPanel, queue: QueueWindow, demo: bool = False
) -> Header:
    """The header from the pieces already read this tick (plus two settings)."""
    settings = effective_settings(ledger.settings())
    return Header(
        lab=str(settings.get("lab_name") or "lab"),
        policy=str(settings.get("policy") or DEFAULT_POLICY),
        hosts_up=sum(1 for r in rows if r.state == "up"),
        hosts_total=len(rows),
        rate_now=cost.rate_now,
        running=queue.running,
        queued=queue.queued,
        demo=demo,
        currency=cost.currency,
        local_host=any(r.transport == "local" for r in rows),
    )


@dataclass
class Overview:
    """Everything the overview screen shows, read in one go."""

    header: Header
    fleet: list[FleetRow]
    queue: QueueWindow
    cost: CostPanel
    now: float


def overview(
    ledger: Ledger,
    now: float,
    *,
    text: str = "",
    sort: str = "default",
    demo: bool = False,
    memo: ViewMemo | None = None,
    pause: Callable[[], None] | None = None,
) -> Overview:
    """Read the whole overview (run it in a thread worker); `memo`: see `ViewMemo`; `pause`:
    called between the pieces (the console lets a key press be drawn first)."""
    step = pause or (lambda: None)
    rows = fleet(ledger, now, memo)
    step()
    queue = queue_window(ledger, now, text=text, sort=sort, limit=60, recent_s=RECENT_S)
    step()
    cost = cost_panel(ledger, now, memo, pause)
    step()
    return Overview(header(ledger, rows, cost, queue, demo), rows, queue, cost, now)


def decisions(ledger: Ledger, limit: int = 100) -> list[dict[str, Any]]:
    """The policy's most recent decisions, newest first."""
    return ledger.recent_decisions(limit)


def why_pending(ledger: Ledger, job_id: int) -> str:
    """The scheduler's last word on a job, or its recorded reason."""
    return _why(ledger, job_id)[1]


def why_line(ledger: Ledger, job_id: int) -> str:
    """One line on a job for the scheduler screen, the id said once: `job 5: backfill: 4 GPUs
    fit no host now`, `job 3 is running, not pending`, `job 999 does not exist`."""
    whole, text = _why(ledger, job_id)
    return text if whole else f"job {job_id}: {text}"


def _why(ledger: Ledger, job_id: int) -> tuple[bool, str]:
    """(True, a sentence naming the job) when it is not pending; else (False, why it waits)."""
    job = ledger.job_state_reason(job_id)
    if job is None:
        return True, f"job {job_id} does not exist"
    if job["state"] != "queued":
        return True, f"job {job_id} is {job['state']}, not pending"
    last = ledger.last_decision(job_id)
    deps = ledger.unmet_dependencies(job_id)
    parts = []
    if deps:
        parts.append(
            "waits for " + ", ".join(f"job {d['depends_on']} ({d['state']})" for d in deps)
        )
    if last and last["explanation"]:
        # a decision recorded without a policy name (no policy loaded) gets no `None:` prefix
        policy = last["policy"]
        parts.append(f"{policy}: {last['explanation']}" if policy else last["explanation"])
    elif job["reason"]:
        parts.append(job["reason"])
    return False, "; ".join(parts) or "waiting for the scheduler's next tick"
