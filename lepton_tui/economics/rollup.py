"""The daily roll-up: per whole past day whose attempts are all settled, spend per user, project
and host (and idle cost per host), so a year's report reads ~100 rows a day, not every attempt.

A cache of what the attempts say: its rows can be deleted at any time and are rebuilt on use. Its
tables and the cost-query indexes are ledger schema 2 (`lepton_tui.ledger._migrate_2`), so every
opened ledger has them; nothing here creates schema.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from lepton_tui.economics.energy import _unsettled_energy
from lepton_tui.economics.prices import _FAR, _add_days, day_buckets, local_tz
from lepton_tui.economics.slices import _hosts_in_play, _load_temp_tables
from lepton_tui.ledger import ECON_ROLLUP_TABLES, Ledger

ROLLUP_TABLES = ECON_ROLLUP_TABLES


def _final_days(
    ledger: Ledger, since: float, until: float, now: float, tz: tzinfo | None
) -> list[tuple[str, float, float]]:
    """Whole days inside [since, until) that can no longer change: every attempt that overlaps
    them is settled (ended, with its cost stored). Contiguous, oldest first."""
    horizon = min(now, until)
    oldest = ledger.oldest_unsettled_start()
    if oldest is not None:
        horizon = min(horizon, oldest)
    if horizon <= since:
        return []
    tz = tz or local_tz()  # once, not once per day
    days = day_buckets(since, horizon, tz)
    return [d for d in days if _is_whole(d, tz) and d[2] <= horizon]


def _is_whole(day: tuple[str, float, float], tz: tzinfo | None) -> bool:
    start = datetime.fromtimestamp(day[1], tz or local_tz())
    return (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0) and (
        _add_days(start, 1).timestamp() == day[2]
    )


ROLLUP_CHUNK_DAYS = 32
"""Days the roll-up builds per statement: memory stays bounded (a month of slices at a time)."""


def _ensure_rollup(ledger: Ledger, days: list[tuple[str, float, float]], now: float) -> None:
    """Build the roll-up rows of the days that have none yet (user, project and host, per day).

    A chunk of days at a time, each sliced once into a TEMP table at the finest grain (day, user,
    project, host) and summed from there into every dimension by SQL: no slice ever reaches
    Python, and memory is bounded by a chunk whatever the history's length."""
    have = ledger.rollup_days_between(days[0][1], days[-1][1])
    missing = [d for d in days if d[1] not in have]
    for i in range(0, len(missing), ROLLUP_CHUNK_DAYS):
        _rollup_chunk(ledger, missing[i : i + ROLLUP_CHUNK_DAYS], now)


def _rollup_chunk(ledger: Ledger, days: list[tuple[str, float, float]], now: float) -> None:
    """The roll-up rows of `days` (contiguous or not), written in one transaction."""
    t0, t1 = days[0][1], days[-1][2]
    params = {"since": t0, "until": t1, "now": now, "count_from": -_FAR,
              "maxb": max(d[2] - d[1] for d in days) + 1.0}  # fmt: skip
    with ledger.tx():  # a write transaction is also the one consistent read the slices need
        ledger.cost_snapshot_pragmas()
        _load_temp_tables(ledger, _hosts_in_play(ledger), days)
        _unsettled_energy(ledger, t0, t1, now)
        ledger.open_rollup_slices()
        # None when the electricity price changed: every attempt is then sliced
        kwh = ledger.uniform_power_price(t0, t1)
        ledger.write_rollup(kwh, params, days, now)
    held = getattr(ledger, "_energy_memo", None)
    if held is not None:  # the TEMP tables now hold this chunk's: the next report reloads them
        held[1]["periods"] = False


def rollup_sums(ledger: Ledger, dim: str, starts: list[float], *, by_label: bool) -> list[dict]:
    """The roll-up's sums of dimension `dim` over the days starting at `starts`, by key (or by
    day label). Exact day starts: another time zone's days (its own rows, starting at other
    hours) lie inside any range of starts and must not be summed in."""
    return ledger.rollup_sums(dim, starts, by_label=by_label)


def rollup_idle(ledger: Ledger, starts: list[float], by: str) -> list[dict]:
    """Idle cost of the days starting at `starts`, summed by `by` ("host" or "label") as `k`."""
    return ledger.rollup_idle(starts, by)
