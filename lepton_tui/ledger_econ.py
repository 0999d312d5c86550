"""The economics' named reads and writes (`lepton_tui.economics`): energy, the daily roll-up.

A mixin of `lepton_tui.ledger.Ledger`, like `lepton_tui.ledger_views`. The economics decide what
to read and compute the money; the SQL lives here. The cost panel counts its statements
(`tests/economics/test_panel_queries.py`): each method runs the statements its caller ran before,
no more. The ledger never imports the economics: what a statement needs comes as a parameter.
"""

from __future__ import annotations

import json
from typing import Any

from lepton_tui.ledger_dispatch import _Store

_UNMEASURED_SQL = (
    "SELECT * FROM attempts INDEXED BY idx_attempts_unmeasured "
    "WHERE energy_wh IS NULL AND (gpus > 0 OR gpu_mem_mb > 0)"
)

# Mean sampled power of each GPU an attempt held, over the attempt's time: one correlated lookup
# per (attempt, GPU) through the samples index, in one statement for all the attempts.
_MEAN_POWER_SQL = """
    SELECT a.id AS id, CAST(g.value AS INTEGER) AS gpu,
           (SELECT SUM(s.power_w * s.n) * 1.0 / SUM(s.n) FROM samples s
            WHERE s.host = a.host AND s.gpu_index = CAST(g.value AS INTEGER)
              AND s.resolution IN (0, 60, 3600) AND s.at >= a.t0 AND s.at <= a.t1
              AND s.power_w IS NOT NULL) AS mean_w
    FROM (SELECT id, host, gpu_ids, COALESCE(started_at, created_at) AS t0,
                 COALESCE(ended_at, :now) AS t1
          FROM attempts WHERE id IN (SELECT value FROM json_each(:ids))) a,
         json_each(a.gpu_ids) g
"""


class EconRecords:
    """The economics' named reads and writes (mixed into `Ledger`)."""

    # -- energy (`economics.energy`) -----------------------------------------------------------

    def host_capacity_record(self: _Store, name: str) -> dict[str, Any]:
        """A host's capacity (cpus, mem_mb, gpus, gpu_mem_mb): from its row, or for a removed
        host from the event that recorded its removal; {} when neither is known."""
        row = self.query_one(
            "SELECT cpus, mem_mb, gpus, gpu_mem_mb FROM hosts WHERE name = ?", (name,)
        )
        if row is not None:
            return row
        ev = self.query_one(
            "SELECT data FROM events WHERE kind = 'host.removed' AND host = ? AND data IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            (name,),
        )
        return json.loads(ev["data"]) if ev else {}

    def unmeasured_gpu_attempts(
        self: _Store, window: tuple[float, float] | None = None
    ) -> list[dict[str, Any]]:
        """GPU attempts with no stored energy yet; with `window` (since, until), those that
        overlap it."""
        if window is None:
            return self.query(_UNMEASURED_SQL)
        since, until = window
        return self.query(
            _UNMEASURED_SQL + " AND COALESCE(started_at, created_at) < ? "
            "AND (ended_at IS NULL OR ended_at > ?)",
            (until, since),
        )

    def load_report_energy(self: _Store, energy: dict[int, float]) -> None:
        """Put measured energy {attempt id: Wh} in this connection's TEMP table `econ_energy`."""
        self.conn.execute(
            "INSERT INTO econ_energy SELECT value ->> 0, value ->> 1 FROM json_each(?)",
            (json.dumps(list(energy.items())),),
        )

    def host_gpu_capacities(self: _Store) -> dict[str, dict[str, Any]]:
        """Every host's GPUs and GPU memory, by name."""
        return {r["name"]: r for r in self.query("SELECT name, gpus, gpu_mem_mb FROM hosts")}

    def mean_gpu_power(self: _Store, ids: list[int], now: float) -> list[dict[str, Any]]:
        """Per (attempt, GPU it held) of attempts `ids`: the mean sampled power `mean_w` over the
        attempt's time (until `now` for one still running)."""
        return self.query(_MEAN_POWER_SQL, {"now": now, "ids": json.dumps(ids)})
