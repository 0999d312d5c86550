"""Every economics write goes through the service, which lets only admins make it."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui.errors import PermissionDenied, ValidationError
from lepton_tui.service import Service
from tests.economics.helpers import Clock, add_host


@pytest.fixture
def owner_and_bob(tmp_path: Path):
    """The ledger's owner (an admin) and bob (not root, not the owner, in no admin group)."""
    clock = Clock()
    owner = Service.open(tmp_path, user="labowner", clock=clock)
    add_host(owner.ledger, "h1")
    bob = Service(owner.ledger, tmp_path, user="bob")
    return owner, bob


@pytest.mark.parametrize(
    ("call", "what"),
    [
        (lambda s: s.set_prices(gpu_hour=2), "set prices"),
        (lambda s: s.set_prices("h1", per_hour=5), "set prices"),
        (lambda s: s.set_currency("EUR"), "set prices"),
        (lambda s: s.set_cost_weight(0.5), "set prices"),
        (lambda s: s.set_budget("project", "vision", 10), "set budgets"),
        (lambda s: s.remove_budget("project", "vision"), "remove budgets"),
    ],
)
def test_a_non_admin_writes_nothing(owner_and_bob, call, what: str) -> None:
    owner, bob = owner_and_bob
    owner.set_budget("project", "vision", 100, new_project=True)
    before = owner.ledger.query("SELECT * FROM events ORDER BY id")
    with pytest.raises(PermissionDenied, match=f"only admins may {what}"):
        call(bob)
    assert owner.ledger.query("SELECT * FROM events ORDER BY id") == before
    assert owner.ledger.query("SELECT * FROM prices") == []
    assert owner.budgets()["budgets"][0]["amount"] == 100.0


def test_an_admin_sets_prices_currency_and_weight_at_once(owner_and_bob) -> None:
    owner, bob = owner_and_bob
    done = owner.set_prices("h1", gpu_hour=2, currency="eur", cost_weight="0.5")
    assert done["currency_set"] == "EUR" and done["cost_weight_set"] == 0.5
    assert done["in_force"]["gpu_hour"] == 2.0 and done["in_force"]["source"] == "host"
    seen = bob.prices()  # anyone reads them
    assert (seen["currency"], seen["cost_weight"]) == ("EUR", 0.5)
    actors = {r["actor"] for r in owner.ledger.query("SELECT actor FROM events "
                                                     "WHERE kind IN ('price.set', 'setting')")}  # fmt: skip
    assert actors == {"labowner"}


def test_a_bad_value_writes_none_of_the_others(owner_and_bob) -> None:
    owner, _ = owner_and_bob
    with pytest.raises(ValidationError, match="cost weight"):
        owner.set_prices(gpu_hour=2, currency="EUR", cost_weight=-1)
    with pytest.raises(ValidationError, match="unknown currency"):
        owner.set_prices(gpu_hour=2, currency="XYZ")
    assert owner.ledger.query("SELECT * FROM prices") == []
    assert owner.prices()["currency"] == "USD"


def test_a_host_added_with_a_price_records_it_as_price_set_does(owner_and_bob) -> None:
    owner, _ = owner_and_bob
    owner.set_prices(currency="EUR")
    owner.add_host("h2", address="127.0.0.3", price_per_hour=3.5)
    [row] = owner.ledger.query("SELECT * FROM prices WHERE host = 'h2'")
    assert (row["price_per_hour"], row["currency"], row["set_by"]) == (3.5, "EUR", "labowner")
    event = owner.ledger.query_one("SELECT * FROM events WHERE kind = 'price.set' AND host = 'h2'")
    assert event is not None and event["actor"] == "labowner"
    assert owner.prices()["prices"][-1]["per_hour"] == 3.5
