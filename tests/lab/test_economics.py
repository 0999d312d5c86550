"""The economics commands in lab mode: reports for every user, writes for admins, over the socket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import inventory.probe  # noqa: F401 - imported before forking (root's modules)
from lepton_tui.client import LabClient
from tests.lab.conftest import Lab, UserError, as_user, client_call
from tests.lab.test_cli import _add_this_machine, _cli_as, _lepton


def test_a_non_admin_is_refused_a_price_change_over_the_socket(lab: Lab, tmp_path: Path) -> None:
    res = _lepton(lab.socket, "price", "set", "--cpu-hour", "36", home=tmp_path / "personal")
    assert res.returncode == 0, res.stderr  # root: an admin
    for call in (
        client_call(lab.socket, "set_prices", gpu_hour=9),
        client_call(lab.socket, "set_currency", "EUR"),
        client_call(lab.socket, "set_cost_weight", 0.5),
    ):
        with pytest.raises(UserError) as err:
            as_user("alice", call)
        assert err.value.kind == "PermissionDenied", err.value
        assert "only admins" in err.value.message
    out = as_user("alice", _cli_as(lab.socket, "price", "set", "--gpu-hour", "9"))
    assert out["code"] == 1 and "only admins may set prices" in out["out"], out
    # nothing was written: the lab default is what root set, in the currency it had
    out = as_user("alice", _cli_as(lab.socket, "price", "ls", "--json"))
    assert out["code"] == 0, out
    data = json.loads(out["out"])
    lab_default = next(p for p in data["prices"] if p["host"] is None)
    assert (lab_default["cpu_hour"], lab_default["gpu_hour"]) == (36.0, 0.0)
    assert (data["currency"], data["cost_weight"]) == ("USD", 0.0)
    out = as_user("alice", _cli_as(lab.socket, "price", "ls", "--history"))
    assert out["code"] == 0 and "(lab)" in out["out"] and "root" in out["out"], out
    assert not (tmp_path / "personal").exists()  # the CLI opened no ledger of its own


def test_budgets_are_set_by_admins_and_seen_by_everyone(lab: Lab) -> None:
    out = as_user("alice", _cli_as(lab.socket, "budget", "set", "--user", "alice", "--amount", "5"))
    assert out["code"] == 1 and "only admins may set budgets" in out["out"], out
    out = as_user(
        "labadmin", _cli_as(lab.socket, "budget", "set", "--user", "alice", "--amount", "5")
    )
    assert out["code"] == 0 and "budget of user alice: 5.00 USD a month" in out["out"], out
    out = as_user("bob", _cli_as(lab.socket, "budget", "ls", "--json"))
    [budget] = json.loads(out["out"])
    assert (budget["scope"], budget["name"], budget["amount"]) == ("user", "alice", 5.0)
    out = as_user("alice", _cli_as(lab.socket, "budget", "rm", "--user", "alice"))
    assert out["code"] == 1 and "only admins may remove budgets" in out["out"], out
    [event] = LabClient(lab.socket).events(limit=1, user="labadmin")
    assert event["kind"] == "budget.set"  # the audit trail names the admin the kernel named


def test_cost_waste_and_replay_work_through_the_socket(lab: Lab) -> None:
    _add_this_machine(lab)
    admin = LabClient(lab.socket)
    admin.set_prices(cpu_hour=3600)  # a CPU-second costs one
    # the local host runs only the service account's jobs (root here): its job is the one costed
    job = admin.submit(command="sleep 1")
    assert "".join(admin.read_log(job, follow=True)) == ""
    out = as_user("bob", _cli_as(lab.socket, "cost", "--since", "1h", "--by", "user", "--json"))
    assert out["code"] == 0, out
    rows = {r["key"]: r for r in json.loads(out["out"])["rows"]}
    assert set(rows) == {"root"} and rows["root"]["attempts"] == 1
    assert 1.0 <= rows["root"]["cost"] < 30.0  # about one CPU-second a second, for ~1 s
    out = as_user("bob", _cli_as(lab.socket, "cost", "--since", "1h", "--by", "host"))
    assert out["code"] == 0 and "Idle cost" in out["out"], out
    out = as_user("bob", _cli_as(lab.socket, "cost", "--waste", "--json"))
    assert out["code"] == 0, out
    waste = json.loads(out["out"])
    assert waste["findings"] == [] and waste["stranded"]["queued"] == 0
    out = as_user("bob", _cli_as(lab.socket, "replay", "--policies", "fifo", "--json"))
    assert out["code"] == 0, out
    replay = json.loads(out["out"])
    assert replay["jobs"] == 1 and [r["policy"] for r in replay["rows"]] == ["actual", "fifo"]
    bad = as_user("bob", _cli_as(lab.socket, "cost", "--since", "last tuesday"))
    assert bad["code"] == 2 and "is not a date" in bad["out"], bad


def test_hosts_probe_works_through_the_socket(lab: Lab) -> None:
    _add_this_machine(lab)
    out = as_user("alice", _cli_as(lab.socket, "hosts", "probe", "here", "--json"))
    assert out["code"] == 0, out
    sample = json.loads(out["out"])
    assert sample["host"] == "here" and sample["cpus"] >= 1
    out = as_user("alice", _cli_as(lab.socket, "hosts", "probe", "here"))
    assert out["code"] == 0 and "memory" in out["out"], out
    out = as_user("alice", _cli_as(lab.socket, "hosts", "probe", "nowhere"))
    assert out["code"] == 1 and "host 'nowhere' does not exist" in out["out"], out
