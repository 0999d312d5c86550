"""The ledger's writes for the console's demo (`lepton_tui.demo`): a simulated lab mirrored into
a real ledger, so every screen reads it as it reads a real one.

A mixin of `lepton_tui.ledger.Ledger`, like `lepton_tui.ledger_service`; the demo's jobs,
attempts, decisions and samples go through the same named writes the dispatcher uses. Writes run
inside the caller's transaction (`Ledger.tx()`).
"""

from __future__ import annotations

from typing import Any

from lepton_tui.ledger_dispatch import _Store


class DemoRecords:
    """The demo's own writes (mixed into `Ledger`): what a real lab records in other ways."""

    def seed_demo_settings(self: _Store, values: dict[str, str]) -> None:
        """Text settings written as they are, with no `setting` event (the demo's lab name and
        policy)."""
        for key, value in values.items():
            self.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, f'"{value}"')
            )

    def seed_demo_host(
        self: _Store, host: dict[str, Any], price_per_hour: float, at: float
    ) -> None:
        """A simulated host's row as onboarding would leave it, and its price from `at`."""
        self.insert("hosts", host)
        self.insert("prices", {"host": host["name"], "effective_from": at,
                               "price_per_hour": price_per_hour, "set_by": "demo"})  # fmt: skip

    def mark_up_hosts_seen(self: _Store, at: float) -> None:
        """Every host that is up answered at `at` (the demo's hosts never fail)."""
        self.execute("UPDATE hosts SET last_seen = ? WHERE state = 'up'", (at,))

    def drop_samples_before(self: _Store, at: float) -> None:
        """Forget every sample taken before `at` (the demo keeps a window, not a history)."""
        self.execute("DELETE FROM samples WHERE at < ?", (at,))
