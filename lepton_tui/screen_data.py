"""What each console screen reads, in one call, and how it travels over the lab socket.

The same `read_view` serves both modes: in personal mode the console's thread worker calls it on
its own `Service`; in lab mode the lab service calls it on the caller's `Service` (identity from
the kernel) for its `console_view` call and its `watch` stream, and the console rebuilds the
dataclasses from JSON with `from_wire`. So both modes show the same numbers from the same code.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Union

from lepton_tui import fleet_view, views
from lepton_tui.errors import LeptonError, ValidationError
from lepton_tui.fleet_view import FleetRow, GpuCell, ViewMemo
from lepton_tui.views import CostPanel, Header, Overview, QueueRow, QueueWindow

VIEW_NAMES = ("overview", "queue", "hosts", "cost", "scheduler", "job", "why")
COST_SPAN_MAX_S = 366 * 86400.0
TEXT_MAX = 200  # a filter longer than this is refused: no screen has room for it


@dataclass
class HostsData:
    """The hosts screen: the header, the fleet, and each host's ledger row by name."""

    header: Header
    fleet: list[FleetRow]
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class CostData:
    """The cost screen: the header, the panel, and spend per bucket over the chosen span."""

    header: Header
    panel: CostPanel
    series: list[float] = field(default_factory=list)
    fair: dict[str, dict[str, float]] = field(default_factory=dict)
    """the fair-share factors (`share ls`): {"user": {name: factor}, "project": {...}}"""


@dataclass
class SchedulerData:
    """The scheduler screen: the header, recent decisions, whether the caller may choose the
    policy, and the autopilot's summary."""

    header: Header
    decisions: list[dict[str, Any]] = field(default_factory=list)
    admin: bool = False
    league: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobData:
    """The job screen: the job (attempts with their cost so far, latest events), why it waits,
    when this was read, and the lab currency."""

    job: dict[str, Any]
    why: str | None
    now: float
    currency: str = "USD"


@dataclass
class WhyData:
    """One line on why a job waits (the scheduler screen's box)."""

    text: str


VIEW_TYPES: dict[str, type] = {
    "overview": Overview, "queue": QueueWindow, "hosts": HostsData, "cost": CostData,
    "scheduler": SchedulerData, "job": JobData, "why": WhyData,
}  # fmt: skip


def _text(args: dict[str, Any]) -> str:
    text = args.get("text", "")
    if not isinstance(text, str) or len(text) > TEXT_MAX:
        raise ValidationError(f"the filter must be text of at most {TEXT_MAX} characters")
    return text


def _sort(args: dict[str, Any]) -> str:
    sort = args.get("sort", "default")
    if sort not in views.SORTS:
        raise ValidationError(f"unknown sort {sort!r}", f"use one of {', '.join(views.SORTS)}")
    return str(sort)


def _job_id(args: dict[str, Any]) -> int:
    job_id = args.get("job_id")
    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id < 1:
        raise ValidationError("job_id must be a positive whole number")
    return job_id


def header_only(svc: Any, now: float, demo: bool = False, memo: ViewMemo | None = None) -> Header:
    """The header line alone (for screens that show no fleet or cost of their own)."""
    ledger = svc.ledger
    rows = fleet_view.fleet(ledger, now, memo)
    queue = views.queue_window(ledger, now, limit=0)
    return views.header(ledger, rows, views.cost_panel(ledger, now, memo), queue, demo)


def read_view(
    svc: Any, name: str, now: float, args: dict[str, Any], demo: bool = False,
    memo: ViewMemo | None = None, pause: Callable[[], None] | None = None,
) -> Any:  # fmt: skip
    """Read screen `name` with `args` (validated here: in lab mode they come off the socket).
    `memo`: what the same reader kept from its last refresh (`fleet_view.ViewMemo`); `pause`:
    called between the pieces of the overview's read (`views.overview`)."""
    if not isinstance(args, dict):
        raise ValidationError("view arguments must be a JSON object")
    ledger = svc.ledger
    if name == "overview":
        return views.overview(
            ledger, now, text=_text(args), sort=_sort(args), demo=demo, memo=memo, pause=pause
        )
    if name == "queue":
        return views.queue_window(
            ledger, now, text=_text(args), sort=_sort(args),
            all_states=bool(args.get("all_states", False)),
        )  # fmt: skip
    if name == "hosts":
        rows = fleet_view.fleet(ledger, now, memo)
        queue = views.queue_window(ledger, now, limit=0)
        head = views.header(ledger, rows, views.cost_panel(ledger, now, memo), queue, demo)
        hosts = {h["name"]: h for h in svc.list_hosts()}
        from lepton_tui.constraints import outside_gpus  # GPUs busy outside lepton

        for host_name, gpus in outside_gpus(ledger, list(hosts.values()), now).items():
            hosts[host_name]["outside_gpus"] = gpus
        return HostsData(head, rows, hosts)
    if name == "cost":
        span = args.get("span_s", 86400.0)
        if isinstance(span, bool) or not isinstance(span, int | float):
            raise ValidationError("span_s must be a number of seconds")
        span = min(max(float(span), 60.0), COST_SPAN_MAX_S)
        panel = views.cost_panel(ledger, now, memo)
        series = views.cost_series(ledger, now, span_s=span, buckets=48)
        rows = fleet_view.fleet(ledger, now, memo)
        queue = views.queue_window(ledger, now, limit=0)
        return CostData(
            views.header(ledger, rows, panel, queue, demo), panel, series, fair_share(ledger, now)
        )
    if name == "scheduler":
        from lepton_tui import autopilot

        return SchedulerData(
            header_only(svc, now, demo, memo), views.decisions(ledger, 200), bool(svc.is_admin()),
            autopilot.summary(ledger),
        )  # fmt: skip
    if name == "job":
        from lepton_tui.economics.costs import attempt_cost
        from lepton_tui.economics.prices import get_currency

        job_id = _job_id(args)
        job = svc.show_job(job_id, events=30)  # the service hides what the caller may not see
        for a in job["attempts"]:
            try:
                a["cost_now"] = attempt_cost(ledger, a["token"], now)[0]
            except LeptonError:
                a["cost_now"] = None
        why = views.why_pending(ledger, job_id) if job["state"] == "queued" else None
        return JobData(job, why, now, get_currency(ledger))
    if name == "why":
        return WhyData(views.why_line(ledger, _job_id(args)))
    raise ValidationError(f"unknown view {name!r}", f"use one of {', '.join(VIEW_NAMES)}")


# -- over the socket -------------------------------------------------------------------------


def to_wire(data: Any) -> dict[str, Any]:
    """A view as JSON-able data."""
    return dataclasses.asdict(data)


def from_wire(cls: type, data: Any) -> Any:
    """The dataclass `cls` rebuilt from what `to_wire` made (fields it does not know ignored)."""
    if not isinstance(data, dict):
        raise LeptonError("the lab service sent a bad view")
    return _builder(cls)(data)


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    """A dataclass's fields and their types (resolved once: `get_type_hints` is slow)."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in fields(cls))


@functools.cache
def _builder(cls: type) -> Callable[[dict[str, Any]], Any]:
    """What rebuilds `cls` from its wire dict: a converter per field, worked out once per class
    (a busy lab's overview has some 13,000 dataclasses and 200,000 values: looking at each
    value's type hint every time took most of a decode)."""
    plan = tuple((name, _converter(hint)) for name, hint in _fields(cls))

    def build(data: dict[str, Any]) -> Any:
        kwargs = {}
        for name, convert in plan:
            if name in data:
                value = data[name]
                kwargs[name] = value if convert is None or value is None else convert(value)
        return cls(**kwargs)

    return build


@functools.cache
def _converter(hint: Any) -> Callable[[Any], Any] | None:
    """How a non-None wire value of type `hint` becomes a field's value; None: as it is."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _converter(inner[0]) if len(inner) == 1 else None
    if isinstance(hint, type) and is_dataclass(hint):
        return functools.partial(from_wire, hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        convert = _converter(item)
        if convert is None:
            return list
        return lambda values: [None if v is None else convert(v) for v in values]
    if origin is tuple:
        return tuple
    return None


# the types from_wire meets, named here so a reader sees what crosses the socket
WIRE_TYPES = (Overview, QueueWindow, QueueRow, FleetRow, GpuCell, CostPanel, Header)


def fair_share(ledger: Any, now: float) -> dict[str, dict[str, float]]:
    """{"user": {name: factor}, "project": {...}}: the fair-share factors (`share ls`)."""
    from lepton_tui.sharing import lab_standings

    out: dict[str, dict[str, float]] = {"user": {}, "project": {}}
    for s in lab_standings(ledger, now)[1]:
        out[s.kind][s.name] = s.factor
    return out
