"""The cost engine: attempts x price periods x report buckets, summed in SQLite.

Price periods and report buckets go in TEMP tables of the reading connection (`econ_period`,
`econ_bucket`); settled attempts wholly inside a window are summed from their stored cost, the
others are sliced. `_live_rows` runs one window's slices; the roll-up (`rollup.py`) reuses the
same SQL per day. The SQL text is `lepton_tui.ledger_econ_sql`, run by the ledger's named
methods (`lepton_tui.ledger_econ`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lepton_tui.economics.energy import _memo, _unsettled_energy, host_capacity
from lepton_tui.economics.prices import price_segments
from lepton_tui.ledger import Ledger
from lepton_tui.ledger_econ_sql import _SLICE_KEY

# -- accounting ---------------------------------------------------------------------------------

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
    ledger: Ledger,
    hosts: Sequence[str],
    buckets: Sequence[tuple[str, float, float]],
    memo: dict[str, Any] | None = None,
) -> None:
    """(Re)fill this connection's TEMP tables of price periods and report buckets. Inside
    `energy_memo` the price periods (and measured energy) are loaded once for all its reports."""
    if memo is not None and memo.get("periods"):
        ledger.reset_cost_buckets(buckets)
        return
    ledger.open_cost_tables()
    caps = ledger.cost_host_capacities()
    rows = []
    for seg in price_segments(ledger, hosts):
        cap = caps.get(seg.host)
        if cap is None:  # a removed host: its recorded capacity (and no idle time)
            cap = caps[seg.host] = host_capacity(ledger, seg.host)
        p = seg.prices
        rows.append(
            (seg.host, seg.start, seg.end, p.per_hour, p.cpu_hour, p.gpu_hour, p.gb_hour,
             p.power_kwh, cap.get("cpus"), cap.get("mem_mb"), cap.get("gpus"),
             cap.get("gpu_mem_mb"), cap.get("added_at"), p.node_hour)
        )  # fmt: skip
    ledger.load_cost_periods(rows, buckets)
    if memo is not None:  # loaded for every report of the memo; the energy table was emptied
        memo["periods"], memo["energy_loaded"] = True, False


def _hosts_in_play(ledger: Ledger, memo: dict[str, Any] | None = None) -> list[str]:
    """Every host, and every host name attempts ran on (removed ones too)."""
    if memo is not None and "hosts" in memo:
        return list(memo["hosts"])
    names = ledger.host_names() | ledger.attempt_host_names()
    if memo is not None:
        memo["hosts"] = sorted(names)
    return sorted(names)


def _is_narrow(ledger: Ledger, since: float, until: float) -> bool:
    """True when [since, until) is a small part of the ledger's history: read it by index."""
    first = ledger.first_attempt_created()
    if first is None:
        return True
    return (until - since) * 8 < max(1.0, until - first)


def _live_rows(
    ledger: Ledger,
    by: str,
    since: float,
    until: float,
    now: float,
    buckets: Sequence[tuple[str, float, float]],
    count_from: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Slices summed by (key, bucket label, host), and each host's whole price per bucket.

    Inside `energy_memo`, a one-bucket window is sliced once by (user and project, host) and
    each report of the memo (by user, project, host, day or in total) regroups those rows."""
    buckets = [b for b in buckets if b[2] > b[1]]
    if not buckets or until <= since:
        return [], []
    memo = _memo(ledger, now)
    if memo is None or len(buckets) != 1 or by not in _REGROUP:
        return _live_rows_sql(ledger, _GROUP_KEYS[by], since, until, now, buckets, count_from)
    (label, b0, b1), = buckets  # fmt: skip
    cache = memo.setdefault("slices", {})
    found = cache.get((since, until, b0, b1, count_from))
    if found is None:
        found = _live_rows_sql(ledger, _SLICE_KEY, since, until, now, [("", b0, b1)], count_from)
        cache[(since, until, b0, b1, count_from)] = found
    regroup = _REGROUP[by]
    rows = [{**r, "k": regroup(r, label), "label": label} for r in found[0]]
    return rows, [{**t, "label": label} for t in found[1]]


# How a report regroups rows sliced by `_SLICE_KEY` (user and project) and host.
_REGROUP: dict[str, Any] = {
    "user": lambda r, label: r["k"].split("\x1f", 1)[0],
    "project": lambda r, label: r["k"].split("\x1f", 1)[1],
    "host": lambda r, label: r["host"],
    "day": lambda r, label: label,
    "total": lambda r, label: "total",
}


def _live_rows_sql(
    ledger: Ledger,
    key: str,
    since: float,
    until: float,
    now: float,
    buckets: Sequence[tuple[str, float, float]],
    count_from: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`_live_rows` grouped by the SQL expression `key`."""
    max_len = max(b[2] - b[1] for b in buckets)
    params = {"since": since, "until": until, "now": now, "maxb": max_len + 1.0,
              "count_from": count_from}  # fmt: skip
    memo = _memo(ledger, now)
    with ledger.cost_snapshot():  # one consistent read; the temp tables are this connection's
        _load_temp_tables(ledger, _hosts_in_play(ledger, memo), buckets, memo)
        _unsettled_energy(ledger, since, until, now, memo)
        # Settled attempts inside the window are summed from their stored cost, unless the
        # report is split into buckets or the electricity price changed in the window (their
        # energy cost, needed apart for idle cost, would then depend on the slicing).
        kwh = ledger.uniform_power_price(since, until) if len(buckets) == 1 else None
        if kwh is not None:
            rows = ledger.cost_slices(key, params, all_attempts=False)
            labelled = {**params, "label": buckets[0][0]}
            narrow = _is_narrow(ledger, since, until)
            settled = ledger.settled_costs(key.replace("w.label", ":label"), kwh, narrow, labelled)
            rows += [{**r, "label": buckets[0][0]} for r in settled]
        else:
            rows = ledger.cost_slices(key, params, all_attempts=True)
        hosts_total = ledger.host_totals(params)
    return rows, hosts_total
