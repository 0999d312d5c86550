"""Fixtures of the dispatcher tests."""

from __future__ import annotations

import pytest

from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.service import Service


@pytest.fixture
def dispatcher(svc: Service):
    """A dispatcher on `svc` holding the ledger's lock."""
    d = Dispatcher(svc)
    assert d.acquire()
    yield d
    d.close()
