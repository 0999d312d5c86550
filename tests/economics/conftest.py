"""The economics tests' common fixtures: a fake clock and an empty ledger on it (a test file
that needs hosts or prices in it defines its own `ledger`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lepton_tui.ledger import Ledger
from tests.economics.helpers import Clock, make_ledger


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Iterator[Ledger]:
    led = make_ledger(tmp_path, clock)
    yield led
    led.close()
