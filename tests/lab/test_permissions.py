"""Who may do what in lab mode: identity is the kernel's, permissions are service.py's."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from dataclasses import asdict
from typing import Any

import pytest

from lepton_tui.client import LabClient, _UnixConnection
from lepton_tui.labd import PROTOCOL, PROTOCOL_HEADER
from tests.lab.conftest import Lab, UserError, as_user, client_call


def _submit(sock: str, *command: str, env: tuple[str, ...] = ()) -> Any:
    return client_call(sock, "submit", command=list(command), env=list(env))


def _cancel(sock: str, job_id: int) -> Any:
    def call() -> Any:
        client = LabClient(sock)
        try:
            return [asdict(r) for r in client.cancel([job_id])]
        finally:
            client.close()

    return call


def test_bob_cannot_cancel_alices_job_nor_read_its_env_or_logs(lab: Lab) -> None:
    job = as_user("alice", _submit(lab.socket, "sleep", "600", env=("TOKEN=s3cret",)))
    seen_by_bob = as_user("bob", client_call(lab.socket, "get_job", job))
    assert seen_by_bob["user"] == "alice"
    assert seen_by_bob["command"] == "sleep 600"  # visible, as squeue shows it
    assert seen_by_bob["env"] is None and seen_by_bob["env_hidden"] is True
    shown = as_user("bob", client_call(lab.socket, "show_job", job))
    assert "s3cret" not in json.dumps(shown)
    listed = as_user("bob", client_call(lab.socket, "list_jobs", all_states=True))
    assert [j["id"] for j in listed] == [job] and "s3cret" not in json.dumps(listed)
    [refused] = as_user("bob", _cancel(lab.socket, job))
    assert not refused["ok"] and "belongs to alice" in refused["message"]

    def read_log() -> Any:
        return "".join(LabClient(lab.socket).read_log(job))

    with pytest.raises(UserError) as err:
        as_user("bob", read_log)
    assert err.value.kind == "PermissionDenied" and "logs" in err.value.message

    # alice herself sees her environment; an admin (labadmin, in admin_group) does too, and
    # may cancel it
    assert as_user("alice", client_call(lab.socket, "get_job", job))["env"] == {"TOKEN": "s3cret"}
    assert as_user("labadmin", client_call(lab.socket, "get_job", job))["env"] == {
        "TOKEN": "s3cret"
    }
    [done] = as_user("labadmin", _cancel(lab.socket, job))
    assert done["ok"], done
    assert lab.client().get_job(job)["state"] == "cancelled"


def test_alice_cannot_open_the_ledger(lab: Lab) -> None:
    ledger = lab.state / "ledger.db"
    assert stat.S_IMODE(os.stat(lab.state).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(ledger).st_mode) == 0o600

    def open_it() -> Any:
        with open(ledger, "rb") as fh:
            return len(fh.read(16))

    with pytest.raises(UserError) as err:
        as_user("alice", open_it)
    assert err.value.kind == "PermissionError"

    def sqlite_it() -> Any:
        conn = sqlite3.connect(str(ledger))
        return conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]

    with pytest.raises(UserError) as err:
        as_user("alice", sqlite_it)
    assert err.value.kind == "OperationalError"


def _raw(sock: str, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
    conn = _UnixConnection(sock, 10)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data,
                     headers={PROTOCOL_HEADER: str(PROTOCOL), **(headers or {})})  # fmt: skip
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_forged_identity_fields_change_nothing(lab: Lab) -> None:
    bobs = as_user("bob", _submit(lab.socket, "true"))
    forged = {"user": "root", "uid": 0, "gid": 0, "actor": "root", "admin": True}
    headers = {"X-Lepton-User": "root", "X-Remote-User": "root", "Authorization": "root"}

    def forge() -> Any:
        spec = {"command": "id -un", "user": "root"}
        submitted = _raw(lab.socket, "POST", "/v1/call/submit",
                         {"args": {"spec": spec}, **forged}, headers)  # fmt: skip
        clean = {"command": "id -un"}
        ok = _raw(lab.socket, "POST", "/v1/call/submit",
                  {"args": {"spec": clean}, **forged}, headers)  # fmt: skip
        whoami = _raw(lab.socket, "POST", "/v1/call/whoami", {"args": {}, **forged}, headers)
        cancel = _raw(lab.socket, "POST", "/v1/call/cancel",
                      {"args": {"job_ids": [bobs]}, **forged}, headers)  # fmt: skip
        return {"submitted": submitted, "ok": ok, "whoami": whoami, "cancel": cancel}

    out = as_user("alice", forge)
    status, body = out["submitted"]
    assert status == 400 and "unknown job field 'user'" in body["error"]["message"]
    status, body = out["ok"]
    assert status == 200
    [job_id] = body["result"]
    assert lab.client().get_job(job_id)["user"] == "alice"
    status, body = out["whoami"]
    assert body["result"]["user"] == "alice" and body["result"]["admin"] is False
    assert body["result"]["uid"] == as_user("alice", os.getuid)
    status, body = out["cancel"]
    assert not body["result"][0]["ok"] and "belongs to bob" in body["result"][0]["message"]
    assert lab.client().get_job(bobs)["state"] == "queued"


def test_every_change_records_who_made_it(lab: Lab) -> None:
    job = as_user("alice", _submit(lab.socket, "sleep", "600"))
    as_user("labadmin", _cancel(lab.socket, job))
    admin = lab.client()
    trail = admin.events(job_id=job)
    by_kind = {e["kind"]: e["actor"] for e in trail}
    assert by_kind["job.submitted"] == "alice"
    assert any(e["actor"] == "labadmin" and "cancelled" in e["message"] for e in trail)
    alices = as_user("alice", client_call(lab.socket, "events", user="alice"))
    assert alices and {e["actor"] for e in alices} == {"alice"}
    assert not admin.events(user="alice", since=alices[0]["at"] + 1)


def test_a_retried_submit_with_the_same_key_queues_once(lab: Lab) -> None:
    spec = {"command": "echo once"}

    def twice() -> Any:
        client = LabClient(lab.socket)
        first = client.call("submit", spec=[spec], key="k" * 32)
        second = client.call("submit", spec=[spec], key="k" * 32)
        return [first, second]

    first, second = as_user("alice", twice)
    assert first == second
    jobs = lab.client().list_jobs(all_states=True)
    assert [j["command"] for j in jobs].count("echo once") == 1
    with pytest.raises(UserError) as err:  # bob cannot learn alice's jobs through her key
        as_user("bob", lambda: LabClient(lab.socket).call("submit", spec=[spec], key="k" * 32))
    assert err.value.kind == "ValidationError"


def test_only_admins_change_settings(lab: Lab) -> None:
    with pytest.raises(UserError) as err:
        as_user("alice", client_call(lab.socket, "set_setting", "admin_group", "users"))
    assert err.value.kind == "PermissionDenied"
    as_user("labadmin", client_call(lab.socket, "set_setting", "tick_s", 0.5))
    assert lab.client().settings()["tick_s"] == 0.5


def test_protocol_mismatch_names_both_versions(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    status, body = _raw(lab.socket, "GET", "/v1/hello", headers={PROTOCOL_HEADER: "99"})
    assert status == 400
    assert body["error"]["type"] == "ProtocolMismatch"
    message = body["error"]["message"]
    assert f"protocol {PROTOCOL}" in message and "protocol 99" in message
    import lepton_tui.client
    from lepton_tui.labd import ProtocolMismatch

    monkeypatch.setattr(lepton_tui.client, "PROTOCOL", PROTOCOL + 1)
    with pytest.raises(ProtocolMismatch, match=f"protocol {PROTOCOL} .*protocol {PROTOCOL + 1}"):
        LabClient(lab.socket).list_jobs()


def test_lab_service_refuses_a_state_directory_others_can_read(lab: Lab, tmp_path: Any) -> None:
    from tests.clirun import lepton

    state = tmp_path / "open"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    res = lepton(state, "serve", "--socket", str(tmp_path / "s.sock"))
    assert res.returncode == 1
    assert "open to other users" in res.stderr and "chmod 700" in res.stderr
    assert not (state / "ledger.db").exists()


def test_the_service_account_is_an_admin_and_its_users_are_not(
    lab_users: Any, tmp_path: Any
) -> None:
    """In the tests the daemon runs as root, where "root" and "the service account" are one uid:
    here carol plays the service account (this process's uid, not 0), as the unit's `lepton`."""
    import shutil
    import tempfile
    from pathlib import Path

    from lepton_tui.identity import identity_of
    from lepton_tui.ledger import open_ledger
    from lepton_tui.service import Service

    def as_the_service() -> dict[str, bool]:
        home = Path(tempfile.mkdtemp(prefix="lepton-svc-"))
        ledger = open_ledger(home / "ledger.db")
        try:
            ledger.set_setting("admin_group", "lepton-labadm", actor="carol")
            who = {u: identity_of(lab_users[u].pw_uid, lab_users[u].pw_gid)
                   for u in ("carol", "alice", "labadmin")}  # fmt: skip
            return {u: Service(ledger, home, identity=i).is_admin() for u, i in who.items()}
        finally:
            ledger.close()
            shutil.rmtree(home, ignore_errors=True)

    open_ledger(tmp_path / "ledger.db").close()  # its lazy imports, before forking
    assert as_user("carol", as_the_service) == {"carol": True, "alice": False, "labadmin": True}
