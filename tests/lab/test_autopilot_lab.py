"""`autopilot run` in lab mode: the lab service runs the round for admins only, over the socket
as real Unix users (`Service.autopilot_round` decides; the CLI only calls it)."""

from __future__ import annotations

import json

import pytest

import inventory.probe  # noqa: F401 - imported before forking (root's modules)
from lepton_tui.client import LabClient
from tests.lab.conftest import Lab, UserError, as_user, client_call
from tests.lab.test_cli import _cli_as


def test_only_admins_run_an_autopilot_round_through_the_socket(lab: Lab) -> None:
    with pytest.raises(UserError) as err:
        as_user("alice", client_call(lab.socket, "autopilot_round"))
    assert err.value.kind == "PermissionDenied", err.value
    assert "only admins may run an autopilot round" in err.value.message
    out = as_user("alice", _cli_as(lab.socket, "autopilot", "run"))
    assert out["code"] == 1 and "only admins may run an autopilot round" in out["out"], out
    # nothing recorded in alice's name (the service's own dispatcher runs rounds meanwhile)
    assert LabClient(lab.socket).events(limit=1000, user="alice") == []
    out = as_user("labadmin", _cli_as(lab.socket, "autopilot", "run", "--json"))
    assert out["code"] == 0, out
    state = json.loads(out["out"])
    assert state["last_round"] is not None and state["policy"]
    [event] = LabClient(lab.socket).events(limit=1, user="labadmin")
    assert event["kind"].startswith("autopilot")  # the audit trail names the admin
