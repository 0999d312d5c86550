"""`hosts add --no-connect --fingerprint`: the host is recorded unchecked and comes up, its key
trusted on the first connection only if it has the vetted fingerprint (real sshd test bed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inventory.hostkeys import fetch_host_key
from tests.inventory.test_onboarding_cli import add_args, cli, hosts_json
from tests.sshbed import SSHBed

pytestmark = pytest.mark.ssh

WRONG = "SHA256:" + "A" * 43


@pytest.fixture
def user_home(tmp_path: Path) -> Path:
    d = tmp_path / "user-home"
    d.mkdir()
    return d


def test_a_pinned_host_comes_up_and_a_wrong_pin_does_not(
    sshbed: SSHBed, home: Path, user_home: Path
) -> None:
    good, bad = sshbed(2)
    _, fp, _ = fetch_host_key(good.address, good.port, 5)

    added = cli(home, user_home, *add_args(good, "h2", "--no-connect", "--fingerprint", fp))
    assert added.returncode == 0, added.stderr
    assert f"trusted if it has the fingerprint {fp}" in added.stdout
    added = cli(home, user_home, *add_args(bad, "h3", "--no-connect", "--fingerprint", WRONG))
    assert added.returncode == 0, added.stderr

    probed = cli(home, user_home, "hosts", "probe", "h2", "--json")
    assert probed.returncode == 0, probed.stderr
    assert json.loads(probed.stdout)["cpus"] >= 1
    refused = cli(home, user_home, "hosts", "probe", "h3")
    assert refused.returncode == 1 and "not trusted yet" in refused.stderr

    served = cli(home, user_home, "serve", "--once")
    assert served.returncode == 0, served.stderr
    states = {h["name"]: h["state"] for h in hosts_json(home, user_home)}
    assert states["h2"] == "up" and states["h3"] != "up"
    assert not (home / "known_hosts").exists()  # the pin is the trust; nothing else was added


def test_no_connect_without_a_fingerprint_says_how_the_key_gets_trusted(
    sshbed: SSHBed, home: Path, user_home: Path
) -> None:
    (host,) = sshbed(1)
    added = cli(home, user_home, *add_args(host, "h2", "--no-connect"))
    assert added.returncode == 0, added.stderr
    assert "not trusted yet" in added.stdout and "--fingerprint" in added.stdout
    refused = cli(home, user_home, *add_args(host, "h4", "--no-connect", "--accept-new-host-key"))
    assert refused.returncode == 2 and "--fingerprint" in refused.stderr
