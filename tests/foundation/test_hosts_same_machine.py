"""One machine is one host: the CLI and the console refuse a second host that reaches it (its
capacity would be counted twice); the Service API allows it for test beds on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui.errors import ValidationError
from lepton_tui.service import Service
from tests.clirun import lepton


def test_a_second_local_host_is_refused(home: Path) -> None:
    assert lepton(home, "hosts", "add", "login", "--local", "--no-connect").returncode == 0
    out = lepton(home, "hosts", "add", "vm2", "--local", "--no-connect")
    assert out.returncode == 2 and out.stdout == ""
    assert "'login' already reaches this machine" in out.stderr
    assert "twice" in out.stderr and len(out.stderr.strip().splitlines()) <= 2
    svc = Service.open(home)
    try:
        assert [h["name"] for h in svc.list_hosts()] == ["login"]
    finally:
        svc.close()


def test_the_same_address_and_port_is_refused_whatever_the_name_or_user(svc: Service) -> None:
    svc.add_host("s1", address="10.0.0.5", port=2222, same_machine_ok=False)
    for address, user in (("10.0.0.5", None), ("10.0.0.5", "other"), ("10.0.0.5", "x")):
        with pytest.raises(ValidationError, match="'s1' already reaches 10.0.0.5:2222"):
            svc.add_host("dup", address=address, port=2222, user=user, same_machine_ok=False)
    # another port of the same address is another sshd (a container, a VM): allowed
    svc.add_host("s2", address="10.0.0.5", port=22, same_machine_ok=False)
    # the onboarding check (CLI and console form) refuses before connecting
    with pytest.raises(ValidationError, match="already reaches"):
        svc.check_new_host("dup", address="10.0.0.5", port=22, local=False)
    assert [h["name"] for h in svc.list_hosts()] == ["s1", "s2"]


def test_the_api_may_add_one_machine_under_several_names(svc: Service) -> None:
    svc.add_host("local0", local=True)
    svc.add_host("local1", local=True)
    assert len(svc.list_hosts()) == 2
