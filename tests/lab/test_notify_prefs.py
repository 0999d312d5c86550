"""Notifications and the new submit options in lab mode: real Unix users, a real daemon."""

from __future__ import annotations

from typing import Any

import pytest

from tests.lab.conftest import Lab, UserError, as_user, client_call

pytestmark = pytest.mark.slow


def _submit(sock: str, **options: Any) -> Any:
    def call() -> Any:
        import lepton_tui.client

        client = lepton_tui.client.LabClient(sock)
        try:
            return client.submit(command="sleep 600", **options)
        finally:
            client.close()

    return call


def test_notify_options_and_defaults_over_the_socket(lab: Lab) -> None:
    prefs = as_user(
        "alice", client_call(lab.socket, "set_notify_prefs", ["fail"], "alice@lab.example.org")
    )
    assert prefs == {"user": "alice", "notify_on": ["fail"], "email": "alice@lab.example.org",
                     "webhook": None}  # fmt: skip
    # bob sees his own defaults only
    assert as_user("bob", client_call(lab.socket, "notify_prefs"))["notify_on"] == []
    default = as_user("alice", _submit(lab.socket))
    chosen = as_user(
        "alice",
        _submit(lab.socket, notify_on="end,timeout", requeue_on_timeout=True, max_requeues=2,
                time="1h", signal="USR1@60"),
    )  # fmt: skip
    quiet = as_user("alice", _submit(lab.socket, notify=False))
    admin = lab.client()
    try:
        jobs = {j: admin.get_job(j) for j in (default, chosen, quiet)}
    finally:
        admin.close()
    assert jobs[default]["notify_on"] == "fail"
    assert jobs[chosen]["notify_on"] == "end,timeout"
    assert jobs[chosen]["requeue_on_timeout"] == 1 and jobs[chosen]["max_requeues"] == 2
    assert jobs[chosen]["signal"] == "USR1@60"
    assert jobs[quiet]["notify_on"] is None
    with pytest.raises(UserError) as refused:  # the hook runs as the service: admins only
        as_user("alice", client_call(lab.socket, "set_setting", "notify_command", "echo hi"))
    assert "only admins" in refused.value.message
    with pytest.raises(UserError) as bad:
        as_user("alice", client_call(lab.socket, "set_notify_prefs", None, None, "ftp://x"))
    assert "http(s)" in bad.value.message
    with pytest.raises(UserError) as ssrf:  # the service would POST from inside the lab
        as_user("alice", client_call(lab.socket, "set_notify_prefs", None, None,
                                     "http://127.0.0.1:22/x"))  # fmt: skip
    assert "not on the lab's allow-list" in ssrf.value.message
    with pytest.raises(UserError) as not_admin:  # the allow-list is the admins' to set
        as_user("alice", client_call(lab.socket, "set_setting", "notify_webhook_internal_hosts",
                                     "http://127.0.0.1"))  # fmt: skip
    assert "only admins" in not_admin.value.message
    admin = lab.client()
    try:
        admin.set_setting("notify_webhook_internal_hosts", "http://127.0.0.1")
    finally:
        admin.close()
    prefs = as_user("alice", client_call(lab.socket, "set_notify_prefs", None, None,
                                         "http://127.0.0.1:22/x"))  # fmt: skip
    assert prefs["webhook"] == "http://127.0.0.1:22/x"
    assert as_user("bob", client_call(lab.socket, "notifications")) == []
