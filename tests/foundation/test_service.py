"""The service: submit, cancel permissions, hosts records, drain."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui.errors import LeptonError, NotFound, PermissionDenied, ValidationError
from lepton_tui.service import Service


@pytest.fixture
def owner(tmp_path: Path) -> Service:
    return Service.open(tmp_path / "state", user="alice")


def _as(owner: Service, user: str) -> Service:
    return Service(owner.ledger, owner.home, user=user)


def test_owner_is_admin_others_are_not(owner: Service) -> None:
    assert owner.is_admin()
    assert not _as(owner, "bob").is_admin()
    assert _as(owner, "root").is_admin()


def test_submit_and_list(owner: Service) -> None:
    a = owner.submit(command="echo a", gpus=1)
    b = _as(owner, "bob").submit(command="echo b", project="nlp")
    assert [j["id"] for j in owner.list_jobs()] == [a, b]
    assert [j["id"] for j in owner.list_jobs(user="bob")] == [b]
    assert [j["id"] for j in owner.list_jobs(project="nlp")] == [b]
    with pytest.raises(ValidationError):
        owner.list_jobs(states=["bogus"])


def test_users_cancel_only_their_own_jobs(owner: Service) -> None:
    bob, carol = _as(owner, "bob"), _as(owner, "carol")
    job = bob.submit(command="sleep 100")
    [denied] = carol.cancel([job])
    assert not denied.ok and "belongs to bob" in denied.message
    assert owner.get_job(job)["state"] == "queued"
    [ok] = bob.cancel([job])
    assert ok.ok and owner.get_job(job)["state"] == "cancelled"
    [again] = bob.cancel([job])
    assert not again.ok and "already ended" in again.message


def test_admin_cancels_anyones_job_and_running_goes_through_cancelling(owner: Service) -> None:
    bob = _as(owner, "bob")
    job = bob.submit(command="sleep 100")
    owner.ledger.start_attempt(job, "h1", "tok", [])
    [res] = owner.cancel([job])
    assert res.ok and owner.get_job(job)["state"] == "cancelling"
    events = [e["kind"] for e in owner.show_job(job)["events"]]
    assert events[-1] == "job.cancelling"


def test_cancel_unknown_job(owner: Service) -> None:
    [res] = owner.cancel([12345])
    assert not res.ok and "does not exist" in res.message


def test_dependency_must_exist(owner: Service) -> None:
    with pytest.raises(NotFound):
        owner.submit(command="x", after=["77"])
    assert owner.list_jobs(all_states=True) == []


def test_hosts_records(owner: Service, tmp_path: Path) -> None:
    key = tmp_path / "id_test"
    key.write_text("not really a key but a file")
    owner.add_host("login", local=True)
    owner.add_host(
        "gpu1", address="10.0.0.5", port="2222", user="lab", key_path=str(key), price_per_hour="2.5"
    )
    hosts = {h["name"]: h for h in owner.list_hosts()}
    assert hosts["login"]["transport"] == "local" and hosts["gpu1"]["port"] == 2222
    assert (
        owner.ledger.query("SELECT price_per_hour FROM prices WHERE host = 'gpu1'")[0][
            "price_per_hour"
        ]
        == 2.5
    )
    with pytest.raises(ValidationError, match="already exists"):
        owner.add_host("gpu1", address="10.0.0.6")
    owner.set_draining("gpu1", True)
    assert owner.get_host("gpu1")["admin_state"] == "draining"
    owner.set_draining("gpu1", False)
    assert owner.get_host("gpu1")["admin_state"] == "active"
    owner.remove_host("login")
    assert [h["name"] for h in owner.list_hosts()] == ["gpu1"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "bad name", "address": "h"},
        {"name": "h;rm", "address": "h"},
        {"name": "h", "address": "$(id)"},
        {"name": "h", "address": "a b"},
        {"name": "h"},
        {"name": "h", "address": "h", "port": "70000"},
        {"name": "h", "address": "h", "user": "x;y"},
        {"name": "h", "address": "h", "key_path": "/nonexistent/key"},
        {"name": "h", "address": "h", "price_per_hour": "-3"},
        {"name": "h", "address": "h", "price_per_hour": "abc"},
        {"name": "h", "local": True, "address": "x"},
    ],
)
def test_bad_host_fields_write_nothing(owner: Service, kwargs: dict) -> None:
    name = kwargs.pop("name")
    with pytest.raises(ValidationError):
        owner.add_host(name, **kwargs)
    assert owner.list_hosts() == []


def test_only_admins_manage_hosts(owner: Service) -> None:
    with pytest.raises(PermissionDenied):
        _as(owner, "bob").add_host("x", local=True)
    owner.add_host("x", local=True)
    with pytest.raises(PermissionDenied):
        _as(owner, "bob").set_draining("x", True)


def test_remove_busy_host_needs_force(owner: Service) -> None:
    owner.add_host("h1", local=True)
    job = owner.submit(command="sleep 5")
    owner.ledger.start_attempt(job, "h1", "tok", [])
    with pytest.raises(LeptonError, match="still runs"):
        owner.remove_host("h1")
    owner.remove_host("h1", force=True)


def test_cancel_many_when_one_starts_under_us(
    owner: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dispatcher starting one job mid-request must not drop the rest of the request."""
    ids = [owner.submit(command=f"sleep {i}") for i in range(3)]
    real = owner.ledger.transition_job
    raced = []

    def racing(job_id: int, new_state: str, **kw):  # the dispatcher wins the race for the first job
        if not raced:
            raced.append(job_id)
            owner.ledger.start_attempt(job_id, "h1", "race", [])
        return real(job_id, new_state, **kw)

    monkeypatch.setattr(owner.ledger, "transition_job", racing)
    results = owner.cancel(ids)
    assert [r.job_id for r in results] == ids and all(r.ok for r in results)
    assert [owner.get_job(i)["state"] for i in ids] == ["cancelling", "cancelled", "cancelled"]
