"""Who may do what is decided in `service.py` alone: no face checks a permission itself.

A check in a face (the CLI, the console) is one the lab socket's clients skip: `lepton_tui/labd.py`
only calls the service. So every `require_admin` call, and every `is_admin` answer that decides
something, lives in `service.py`; the faces call a service method that checks and acts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from lepton_tui import lab_routes
from lepton_tui.client import LabClient
from lepton_tui.errors import PermissionDenied
from lepton_tui.service import Service

PACKAGE = Path(__file__).resolve().parents[2] / "lepton_tui"

# Calls of `is_admin()` outside service.py that decide nothing: they only show the answer.
SHOWS_ONLY = {
    "lab_routes.py",  # `whoami` tells a client whether its caller is an admin
    "screen_data.py",  # the console greys out what a non-admin may not do; the service refuses
    "client.py",  # asks the lab service (`whoami`) on its caller's behalf
}


def _permission_calls(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        (node.func.attr, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("require_admin", "is_admin")
    ]


def test_no_permission_check_outside_the_service() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "service.py":
            continue
        for name, line in _permission_calls(path):
            if name == "is_admin" and rel in SHOWS_ONLY:
                continue
            found.append(f"lepton_tui/{rel}:{line} calls {name}")
    assert found == [], "decide permissions in service.py: " + "; ".join(found)


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[Service]:
    svc = Service.open(tmp_path / "state", user="alice")
    yield svc
    svc.close()


def test_only_admins_run_an_autopilot_round(owner: Service) -> None:
    bob = Service(owner.ledger, owner.home, user="bob")
    before = owner.ledger.query_one("SELECT COUNT(*) AS n FROM events")
    with pytest.raises(PermissionDenied, match="only admins may run an autopilot round"):
        bob.autopilot_round()
    assert owner.ledger.query_one("SELECT COUNT(*) AS n FROM events") == before
    state = owner.autopilot_round()  # alice opened the ledger first: she owns it
    assert state["last_round"] is not None and "policy" in state


def test_the_autopilot_round_is_offered_over_the_lab_socket() -> None:
    assert "autopilot_round" in lab_routes.CALLS
    assert "autopilot_round" in vars(LabClient)
