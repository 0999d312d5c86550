"""SSHTransport and LocalTransport against a real sshd: quoting, keys, auth, outages."""

from __future__ import annotations

import sys
from pathlib import Path

import paramiko
import pytest

from inventory.errors import (
    AuthFailed,
    CommandTimeout,
    HostKeyChanged,
    HostKeyUnknown,
    HostUnreachable,
)
from inventory.hostkeys import (
    accept_host_key,
    fetch_host_key,
    fingerprint,
    user_known_hosts_vouches,
)
from inventory.transport import LocalTransport, SSHTransport, make_transport, resolve
from tests.inventory.conftest import connect
from tests.sshbed import SSHBed, SSHHost

pytestmark = pytest.mark.ssh

NASTY = ["'$(id)'", "`id`", "; rm -rf /nonexistent", "a\nb", "héllo ✓", "$HOME", "*", "", "-n"]


def test_argv_reaches_the_host_literally(t2: SSHTransport) -> None:
    result = t2.run(["printf", "%s\\0", *NASTY])
    assert result.rc == 0, result.stderr
    assert result.stdout.split(b"\0")[:-1] == [w.encode() for w in NASTY]


def test_stdin_exit_code_and_stderr(t2: SSHTransport) -> None:
    result = t2.run(["sh", "-c", "cat; echo oops >&2; exit 7"], stdin=b"x" * 300_000)
    assert result.rc == 7
    assert result.stdout == b"x" * 300_000
    assert result.stderr == b"oops\n"


def test_one_pooled_connection_and_round_trips_counted(t2: SSHTransport) -> None:
    for _ in range(3):
        assert t2.run(["true"]).rc == 0
    assert t2.connects == 1
    assert t2.round_trips == 3


def test_command_timeout(t2: SSHTransport) -> None:
    with pytest.raises(CommandTimeout, match="within 0.5s"):
        t2.run(["sleep", "5"], timeout=0.5)
    assert t2.run(["echo", "ok"]).stdout == b"ok\n"  # the connection is still usable


def test_tcp_nodelay_is_set(t2: SSHTransport) -> None:
    import socket

    t2.connect()
    sock = t2._client.get_transport().sock  # type: ignore[union-attr]
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert t2._client.get_transport().packetizer._Packetizer__keepalive_interval == 15  # type: ignore[union-attr]


def test_unknown_host_key_is_refused(h2: SSHHost, tmp_path: Path) -> None:
    empty = h2.write_known_hosts(tmp_path / "kh", trusted=False)
    t = connect(h2, empty)
    with pytest.raises(HostKeyUnknown) as info:
        t.run(["true"])
    _, expected_fp, _ = fetch_host_key(h2.address, h2.port, 5)
    assert info.value.fingerprint == expected_fp
    assert expected_fp in str(info.value) and "--accept-new-host-key" in str(info.value)
    assert empty.read_text() == ""  # nothing was added behind the user's back


def test_changed_host_key_is_refused(h2: SSHHost, tmp_path: Path) -> None:
    wrong = h2.write_known_hosts(tmp_path / "kh", wrong_key=True)
    t = connect(h2, wrong)
    with pytest.raises(HostKeyChanged) as info:
        t.run(["true"])
    message = str(info.value)
    assert "HOST KEY CHANGED" in message and "reinstalled" in message
    _, got_fp, _ = fetch_host_key(h2.address, h2.port, 5)
    assert info.value.got == got_fp and info.value.expected != got_fp


def test_fetch_and_accept_host_key(h2: SSHHost, tmp_path: Path) -> None:
    key_type, fp, key = fetch_host_key(h2.address, h2.port, 5)
    assert key_type == "ssh-ed25519"
    # the same fingerprint ssh-keygen prints for the host key file
    import subprocess

    out = subprocess.run(
        ["ssh-keygen", "-lf", f"{h2.host_key_path}.pub"], capture_output=True, text=True, check=True
    ).stdout
    assert fp in out
    kh = tmp_path / "state" / "known_hosts"
    accept_host_key(kh, h2.address, h2.port, key)
    assert oct(kh.stat().st_mode & 0o777) == "0o600"
    t = connect(h2, kh)
    assert t.run(["echo", "hi"]).stdout == b"hi\n"
    t.close()


def test_user_known_hosts_vouches(h2: SSHHost, tmp_path: Path) -> None:
    _, _, key = fetch_host_key(h2.address, h2.port, 5)
    good = h2.write_known_hosts(tmp_path / "good")
    wrong = h2.write_known_hosts(tmp_path / "wrong", wrong_key=True)
    assert user_known_hosts_vouches(h2.address, h2.port, key, good)
    assert not user_known_hosts_vouches(h2.address, h2.port, key, wrong)
    assert not user_known_hosts_vouches(h2.address, h2.port, key, tmp_path / "absent")
    # hashed entries (ssh-keygen -H) vouch too
    import subprocess

    subprocess.run(["ssh-keygen", "-H", "-f", str(good)], capture_output=True, check=True)
    assert "|1|" in good.read_text()
    assert user_known_hosts_vouches(h2.address, h2.port, key, good)


def test_wrong_user_clear_message(h2: SSHHost) -> None:
    t = SSHTransport(h2.spec(user="nobody"), Path(h2.known_hosts_path), ssh_config=None)
    with pytest.raises(AuthFailed, match="login as nobody .* refused; check the user"):
        t.run(["true"])


def test_wrong_key_clear_message(h2: SSHHost, tmp_path: Path) -> None:
    import subprocess

    other = tmp_path / "otherkey"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    t = SSHTransport(h2.spec(key_path=str(other)), Path(h2.known_hosts_path), ssh_config=None)
    with pytest.raises(AuthFailed, match="authorized_keys"):
        t.run(["true"])
    missing = SSHTransport(
        h2.spec(key_path=str(tmp_path / "nokey")), Path(h2.known_hosts_path), ssh_config=None
    )
    with pytest.raises(AuthFailed, match="cannot read key file"):
        missing.run(["true"])


def test_encrypted_key_says_use_the_agent(
    h2: SSHHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)

    key = tmp_path / "enc"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(key)], check=True
    )
    t = SSHTransport(h2.spec(key_path=str(key)), Path(h2.known_hosts_path), ssh_config=None)
    with pytest.raises(AuthFailed, match="encrypted; load it into ssh-agent"):
        t.run(["true"])


def test_nothing_listening_fails_fast(h2: SSHHost) -> None:
    t = SSHTransport(h2.spec(port=1), Path(h2.known_hosts_path), ssh_config=None, connect_timeout=5)
    with pytest.raises(HostUnreachable, match="refused"):
        t.run(["true"])
    with pytest.raises(HostUnreachable, match="retrying in"):
        t.run(["true"])  # inside the backoff window: fails at once with the last reason


def test_ssh_config_is_honoured(h2: SSHHost, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host lab-gpu\n  HostName {h2.address}\n  Port {h2.port}\n  User {h2.user}\n"
        f"  IdentityFile {h2.key_path}\n"
    )
    spec = h2.spec(address="lab-gpu", port=22, user=None, key_path=None)
    r = resolve(spec, config)
    assert (r.hostname, r.port, r.user, r.key_files) == (
        h2.address,
        h2.port,
        h2.user,
        (h2.key_path,),
    )
    t = SSHTransport(spec, Path(h2.known_hosts_path), ssh_config=config)
    assert t.run(["echo", "via config"]).stdout == b"via config\n"
    t.close()


def test_proxy_command(h2: SSHHost, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    relay = (
        f"{sys.executable} -c \"import socket,sys,threading;s=socket.create_connection(('%h',%p));"
        "threading.Thread(target=lambda:[sys.stdout.buffer.write(b) or sys.stdout.flush() for b in "
        "iter(lambda:s.recv(65536),b'')],daemon=True).start();[s.sendall(b) for b in "
        "iter(lambda:sys.stdin.buffer.read1(65536),b'')]\""
    )
    config.write_text(f"Host {h2.address}\n  ProxyCommand {relay}\n")
    r = resolve(h2.spec(), config)
    assert r.proxy_command and str(h2.port) in r.proxy_command
    t = SSHTransport(h2.spec(), Path(h2.known_hosts_path), ssh_config=config)
    assert t.run(["echo", "proxied"]).stdout == b"proxied\n"
    t.close()


def test_sshd_down_then_back(sshbed: SSHBed) -> None:
    host = sshbed(3)[2]
    t = connect(host, backoff_initial=0.05, backoff_max=0.2)
    assert t.run(["true"]).rc == 0
    host.stop()
    try:
        with pytest.raises(HostUnreachable) as info:
            t.run(["true"], timeout=5)
        assert "refused" in info.value.reason or "connection lost" in info.value.reason
        with pytest.raises(HostUnreachable):
            t.run(["true"], timeout=5)
    finally:
        host.start()
    import time

    deadline = time.monotonic() + 10
    while True:  # the backoff is at most 0.2 s here
        try:
            assert t.run(["echo", "back"]).stdout == b"back\n"
            break
        except HostUnreachable:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert t.connects == 2
    t.close()


def test_connection_cut_is_replaced(h2: SSHHost) -> None:
    t = connect(h2)
    assert t.run(["true"]).rc == 0
    assert h2.kill_sessions() >= 1
    import time

    deadline = time.monotonic() + 5
    while t.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert t.run(["echo", "again"]).stdout == b"again\n"
    assert t.connects == 2
    t.close()


def test_local_transport() -> None:
    t = LocalTransport()
    assert t.run(["printf", "%s", "'$(id)'"]).stdout == b"'$(id)'"
    assert t.run(["cat"], stdin=b"abc").stdout == b"abc"
    assert t.run(["definitely-not-a-program-xyz"]).rc == 127
    with pytest.raises(CommandTimeout):
        t.run(["sleep", "5"], timeout=0.2)
    assert t.round_trips == 4


def test_make_transport(h2: SSHHost) -> None:
    from inventory.hostspec import HostSpec

    assert isinstance(
        make_transport(HostSpec("login", None, transport="local"), Path("x")), LocalTransport
    )
    assert isinstance(make_transport(h2.spec(), Path(h2.known_hosts_path)), SSHTransport)


def test_fingerprint_matches_openssh_format() -> None:
    key = paramiko.Ed25519Key.from_private_key_file  # noqa: F841 - type exists
    import base64
    import hashlib

    pub = paramiko.RSAKey.generate(1024)
    fp = fingerprint(pub)
    assert fp.startswith("SHA256:") and "=" not in fp
    assert fp == "SHA256:" + base64.b64encode(
        hashlib.sha256(pub.asbytes()).digest()
    ).decode().rstrip("=")
