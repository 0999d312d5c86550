"""The shared lab's rules in lab mode, over the real socket as real Unix users: only admins set
shares, limits and labels; arrays and constraints cross the wire checked again."""

from __future__ import annotations

from typing import Any

import pytest

from lepton_tui.client import LabClient
from lepton_tui.validate import expand_jobs
from tests.lab.conftest import Lab, UserError, as_user, client_call


def test_only_admins_set_shares_limits_and_labels(lab: Lab) -> None:
    admin = lab.client()
    admin.add_host("h1", address="127.0.0.9")
    admin.close()
    for method, args, kwargs in (
        ("share_set", ("user", "alice", 5), {}),
        ("limit_set", ("user", "alice"), {"gpus": 8}),
        ("label_host", ("h1", ["zone=r2"]), {}),
    ):
        with pytest.raises(UserError) as err:
            as_user("alice", client_call(lab.socket, method, *args, **kwargs))
        assert err.value.kind == "PermissionDenied", err.value
    assert as_user("labadmin", client_call(lab.socket, "share_set", "user", "alice", 5)) == {
        "scope": "user", "name": "alice", "shares": 5.0,
    }  # fmt: skip
    as_user("labadmin", client_call(lab.socket, "limit_set", "user", "alice", gpus=2))
    host = as_user("labadmin", client_call(lab.socket, "label_host", "h1", ["zone=r2"]))
    assert host["labels"] == ["zone=r2"]
    shares = as_user("bob", client_call(lab.socket, "share_list"))
    assert {"scope": "user", "name": "alice"}.items() <= shares[0].items()
    limits = as_user("bob", client_call(lab.socket, "limit_list"))
    assert limits == [{"scope": "user", "name": "alice", "gpus": 2, "cpus": None, "jobs": None}]


def test_an_array_with_constraints_crosses_the_socket(lab: Lab) -> None:
    specs = expand_jobs(["true"], "0-3%2", (), gpu_type="A100", constraint=["zone=r2"])

    def submit() -> Any:
        client = LabClient(lab.socket)
        try:
            ids = client.submit_many(specs)
            return [client.get_job(i) for i in ids], client.resolve_jobs(f"{ids[0]}.2")
        finally:
            client.close()

    jobs, [third] = as_user("alice", submit)
    assert [(j["array_id"], j["array_index"], j["array_limit"]) for j in jobs] == [
        (jobs[0]["id"], i, 2) for i in range(4)
    ]
    assert [j["env"] for j in jobs] == [{"LEPTON_ARRAY_INDEX": str(i)} for i in range(4)]
    assert third == jobs[2]["id"]
    assert jobs[0]["constraints"] == '{"gpu_type": "A100", "labels": ["zone=r2"]}'
    forged = expand_jobs(["true"], None, ())[0]
    forged.env = {"LEPTON_ARRAY_INDEX": "7"}  # lepton sets it, never the user
    with pytest.raises(UserError) as err:
        as_user("alice", client_call(lab.socket, "submit_many", [forged]))
    assert err.value.kind == "ValidationError" and "LEPTON_ARRAY_INDEX" in err.value.message
