"""`lepton-tui hosts add` and `hosts probe` against the real sshd test bed (the issue's "Done when")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inventory.hostkeys import fetch_host_key, known_key
from tests.sshbed import SSHBed, SSHHost

pytestmark = pytest.mark.ssh


def cli(home: Path, fake_home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LEPTON_HOME=str(home), HOME=str(fake_home))
    return subprocess.run(
        [sys.executable, "-m", "lepton_tui", *args], capture_output=True, text=True, env=env,
        stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip


@pytest.fixture
def user_home(tmp_path: Path) -> Path:
    d = tmp_path / "user-home"
    d.mkdir()
    return d


def add_args(host: SSHHost, name: str = "h2", *extra: str) -> list[str]:
    return [
        "hosts", "add", name, "--address", host.address, "--port", str(host.port), "--user",
        host.user, "--key", host.key_path, "--root-dir", host.root_dir, *extra,
    ]  # fmt: skip


def hosts_json(home: Path, user_home: Path) -> list[dict]:
    out = cli(home, user_home, "hosts", "ls", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_done_when(sshbed: SSHBed, home: Path, user_home: Path) -> None:
    host = sshbed(1)[0]
    _, fp, _ = fetch_host_key(host.address, host.port, 5)

    refused = cli(home, user_home, *add_args(host))
    assert refused.returncode == 1
    assert fp in refused.stdout and "not trusted yet" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert hosts_json(home, user_home) == []

    added = cli(home, user_home, *add_args(host, "h2", "--accept-new-host-key"))
    assert added.returncode == 0, added.stderr
    lines = added.stdout.splitlines()
    for check in ("connected", "python3", "nvidia-smi", "gpus", "cpus", "memory", "disk", "logout"):
        assert any(line.startswith(check) for line in lines), (check, added.stdout)
    assert lines[-1].startswith("added host h2")
    [row] = hosts_json(home, user_home)
    assert row["cpus"] == os.cpu_count() and row["mem_mb"] > 0
    assert row["host_key_fingerprint"] == fp
    assert known_key(home / "known_hosts", host.address, host.port) is not None

    probed = cli(home, user_home, "hosts", "probe", "h2", "--json")
    assert probed.returncode == 0, probed.stderr
    sample = json.loads(probed.stdout)
    assert sample["cpus"] == os.cpu_count() and sample["mem_total_mb"] > 0
    assert isinstance(sample["gpus"], list)
    human = cli(home, user_home, "hosts", "probe", "h2")
    assert human.returncode == 0 and "CPUs" in human.stdout


def test_fingerprint_option(sshbed: SSHBed, home: Path, user_home: Path) -> None:
    host = sshbed(1)[0]
    _, fp, _ = fetch_host_key(host.address, host.port, 5)
    wrong = cli(home, user_home, *add_args(host, "h2", "--fingerprint", "SHA256:" + "A" * 43))
    assert wrong.returncode == 1 and "mismatch" in wrong.stderr
    right = cli(home, user_home, *add_args(host, "h2", "--fingerprint", fp.removeprefix("SHA256:")))
    assert right.returncode == 0, right.stderr
    assert "accepted (--fingerprint)" in right.stdout


def test_users_known_hosts_vouches(sshbed: SSHBed, home: Path, user_home: Path) -> None:
    host = sshbed(1)[0]
    (user_home / ".ssh").mkdir()
    host.write_known_hosts(user_home / ".ssh" / "known_hosts")
    out = cli(home, user_home, *add_args(host))
    assert out.returncode == 0, out.stderr
    assert "~/.ssh/known_hosts" in out.stdout


def test_changed_key_refused_later(sshbed: SSHBed, home: Path, user_home: Path) -> None:
    host = sshbed(1)[0]
    assert cli(home, user_home, *add_args(host, "h2", "--accept-new-host-key")).returncode == 0
    host.write_known_hosts(home / "known_hosts", wrong_key=True)  # as if the host was reinstalled
    probe = cli(home, user_home, "hosts", "probe", "h2")
    assert probe.returncode == 1
    assert "HOST KEY CHANGED" in probe.stderr and "reinstalled" in probe.stderr
    # the same machine under another name is refused outright (its capacity would count twice)
    twin = cli(home, user_home, *add_args(host, "h2b", "--accept-new-host-key"))
    assert twin.returncode == 2 and "'h2' already reaches" in twin.stderr
    assert cli(home, user_home, "hosts", "rm", "h2").returncode == 0
    again = cli(home, user_home, *add_args(host, "h2", "--accept-new-host-key"))
    assert (
        again.returncode == 1
        and "HOST KEY CHANGED" in again.stderr
        and "--fingerprint" in again.stderr
    )


def test_wrong_user_leaves_nothing_behind(sshbed: SSHBed, home: Path, user_home: Path) -> None:
    host = sshbed(1)[0]
    args = add_args(host, "h2", "--accept-new-host-key")
    args[args.index("--user") + 1] = "nobody"
    out = cli(home, user_home, *args)
    assert out.returncode == 1
    assert "login as nobody" in out.stderr and "authorized_keys" in out.stderr
    assert hosts_json(home, user_home) == []
    assert known_key(home / "known_hosts", host.address, host.port) is None


def test_fake_gpus_and_duplicate_name(sshbed: SSHBed, home: Path, user_home: Path) -> None:
    host = sshbed(1)[0]
    out = cli(
        home, user_home, *add_args(host, "h2", "--accept-new-host-key", "--gpus", "2", "--json")
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["host"]["gpus"] == 2 and data["preflight"]["ok"]
    dup = cli(home, user_home, *add_args(host, "h2", "--accept-new-host-key"))
    assert dup.returncode == 2 and "already exists" in dup.stderr
    probe = json.loads(cli(home, user_home, "hosts", "probe", "h2", "--json").stdout)
    assert [g["fake"] for g in probe["gpus"]] == [True, True]


def test_local_host(home: Path, user_home: Path, tmp_path: Path) -> None:
    out = cli(
        home, user_home, "hosts", "add", "login", "--local", "--root-dir", str(tmp_path / "root")
    )
    assert out.returncode == 0, out.stderr
    assert "this machine" in out.stdout
    sample = json.loads(cli(home, user_home, "hosts", "probe", "login", "--json").stdout)
    assert sample["host"] == "login" and sample["cpus"] >= 1


def test_unreachable_host(home: Path, user_home: Path) -> None:
    out = cli(home, user_home, "hosts", "add", "gone", "--address", "127.0.0.2", "--port", "1")
    assert out.returncode == 1 and "cannot reach 127.0.0.2:1" in out.stderr
    assert hosts_json(home, user_home) == []


def test_ssh_config_alias_end_to_end(sshbed: SSHBed, home: Path, user_home: Path) -> None:
    host = sshbed(1)[0]
    (user_home / ".ssh").mkdir()
    (user_home / ".ssh" / "config").write_text(
        f"Host lab-gpu\n  HostName {host.address}\n  Port {host.port}\n  User {host.user}\n"
        f"  IdentityFile {host.key_path}\n"
    )
    args = ["hosts", "add", "lab", "--address", "lab-gpu", "--root-dir", host.root_dir]
    out = cli(home, user_home, *args, "--accept-new-host-key")
    assert out.returncode == 0, out.stderr
    assert f"{host.address}:{host.port}" in out.stdout
    assert known_key(home / "known_hosts", host.address, host.port) is not None
    probed = cli(home, user_home, "hosts", "probe", "lab", "--json")
    assert probed.returncode == 0, probed.stderr
    assert json.loads(probed.stdout)["host"] == "lab"


def test_probe_of_a_down_host_is_one_line(sshbed: SSHBed, home: Path, user_home: Path) -> None:
    host = sshbed(3)[2]
    assert cli(home, user_home, *add_args(host, "h4", "--accept-new-host-key")).returncode == 0
    host.stop()
    try:
        out = cli(home, user_home, "hosts", "probe", "h4")
    finally:
        host.start()
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "cannot probe h4" in out.stderr
    assert "refused" in out.stderr
