"""Jobs run as their submitter on every host (lab mode): the lab key, `hosts check --user`,
placement that only considers hosts a job's owner can log in to."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from tests.lab.conftest import Lab, as_user
from tests.lab.test_cli import _cli_as


def _add_host(lab: Lab, host: Any, name: str) -> None:
    """root (an admin, the bed's own login) adds a bed host over the socket."""
    client = lab.client()
    try:
        client.onboard(name, address=host.address, port=host.port, user=host.user,
                       key_path=host.key_path, accept_new_host_key=True)  # fmt: skip
    finally:
        client.close()


def _key_line(lab: Lab) -> str:
    client = lab.client()
    try:
        return client.lab_key()
    finally:
        client.close()


def _wait(cond: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or cond}")


def test_hosts_check_tells_whether_a_user_can_be_reached(
    lab: Lab, lab_bed: Any, user_keys: Any
) -> None:
    h = lab_bed(1)[0]
    _add_host(lab, h, "gpu1")
    out = as_user("carol", _cli_as(lab.socket, "hosts", "check", "gpu1"))
    assert out["code"] == 1, out
    assert "carol cannot run jobs on gpu1" in out["out"]
    assert "~carol/.ssh/authorized_keys" in out["out"], out["out"]
    user_keys("carol", _key_line(lab))
    out = as_user("carol", _cli_as(lab.socket, "hosts", "check", "gpu1", "--json"))
    assert out["code"] == 0, out
    got = json.loads(out["out"])
    assert got["ok"] and got["user"] == "carol" and got["how"] == "lab key"
    assert any("python3" in line and " ok " in line for line in got["lines"])
    # recorded: the admin sees carol's record; carol cannot check bob's login
    records = lab.client().logins("*")
    assert [(r["host"], r["user"], r["ok"]) for r in records if r["user"] == "carol"] == [
        ("gpu1", "carol", 1)
    ]
    out = as_user("carol", _cli_as(lab.socket, "hosts", "check", "gpu1", "--user", "bob"))
    assert out["code"] == 1 and "only admins" in out["out"], out
    # an admin checks anyone: bob has no key
    out = as_user("labadmin", _cli_as(lab.socket, "hosts", "check", "gpu1", "--user", "bob"))
    assert out["code"] == 1 and "bob cannot run jobs on gpu1" in out["out"], out
