"""The lab service survives bad clients, many clients, and kill -9."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections import Counter
from typing import Any

import pytest

from lepton_tui.client import LabClient, ServiceUnreachable
from lepton_tui.errors import ValidationError
from lepton_tui.labd import MAX_BODY_BYTES, PROTOCOL, PROTOCOL_HEADER
from tests.lab.conftest import Lab, as_user, client_call


def _send(sock_path: str, data: bytes, *, close_write: bool = True, read: bool = True) -> bytes:
    """Send raw bytes on a fresh connection and return what the service answered."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(20)
        sock.connect(sock_path)
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service stopped reading: its answer is still there to read
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        if not read:
            return b""
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def _post(
    path: str, body: bytes, length: int | None = None, protocol: str = str(PROTOCOL)
) -> bytes:
    n = len(body) if length is None else length
    head = (f"POST {path} HTTP/1.1\r\nHost: lepton\r\n{PROTOCOL_HEADER}: {protocol}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {n}\r\n\r\n")  # fmt: skip
    return head.encode() + body


def test_bad_requests_are_answered_and_the_service_goes_on(lab: Lab) -> None:
    sock = lab.socket
    answers = {
        "garbage": _send(sock, b"\x00\xff GARBAGE \r\n\r\n"),
        "not http json": _send(sock, _post("/v1/call/list_jobs", b"{not json")),
        "array": _send(sock, _post("/v1/call/list_jobs", b"[1, 2]")),
        "bad args": _send(sock, _post("/v1/call/get_job", b'{"args": {"job_id": "x"}}')),
        "unknown arg": _send(sock, _post("/v1/call/list_jobs", b'{"args": {"sql": "DROP"}}')),
        "no route": _send(sock, _post("/v1/call/__init__", b"{}")),
        "truncated": _send(sock, _post("/v1/call/list_jobs", b'{"args": {', length=500)),
        "oversized": _send(sock, _post("/v1/call/list_jobs", b"x" * (MAX_BODY_BYTES + 10))),
        "huge header": _send(sock, b"GET /v1/hello HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n"),
    }
    assert b" 400 " in answers["garbage"].split(b"\r\n")[0]
    assert b"not JSON" in answers["not http json"]
    assert b"must be a JSON object" in answers["array"]
    assert b"bad arguments for get_job" in answers["bad args"]
    assert b"unknown argument 'sql'" in answers["unknown arg"]
    assert b"no such route" in answers["no route"]
    assert b"cut short" in answers["truncated"]
    assert b"over the limit" in answers["oversized"]
    assert b" 431 " in answers["huge header"] or b" 400 " in answers["huge header"]
    assert lab.alive()
    assert LabClient(sock).list_jobs() == []


def test_half_open_clients_do_not_block_others(lab: Lab) -> None:
    idle = []
    for partial in (b"", b"POST /v1/call/list_jobs HTTP/1.1\r\n", _post("/v1/call/x", b"{", 100)):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(lab.socket)
        conn.sendall(partial)
        idle.append(conn)  # held open, never finished
    try:
        # answered while the half-open ones hang (a client timeout shorter than the service's
        # own, so a service that served one connection at a time fails this)
        client = LabClient(lab.socket, timeout=5, retry_delay_s=0)
        assert client.submit(command="true") >= 1
        assert client.list_jobs()
    finally:
        for conn in idle:
            conn.close()
    assert lab.alive()


def test_fifty_concurrent_clients(lab: Lab) -> None:
    results: dict[int, Any] = {}
    start = threading.Barrier(50)

    def one(n: int) -> None:
        client = LabClient(lab.socket)
        try:
            start.wait(30)
            job = client.submit(command=f"echo client-{n}")
            results[n] = (job, len(client.list_jobs()), client.get_job(job)["command"])
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[n] = exc
        finally:
            client.close()

    threads = [threading.Thread(target=one, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = {n: r for n, r in results.items() if isinstance(r, Exception)}
    assert not errors, errors
    assert len(results) == 50
    assert len({r[0] for r in results.values()}) == 50
    assert all(r[2] == f"echo client-{n}" for n, r in results.items())
    assert lab.alive()


def test_kill9_mid_burst_loses_and_duplicates_no_job(lab: Lab) -> None:
    acked: list[tuple[str, int]] = []
    failures: list[str] = []
    after_restart: Counter[int] = Counter()
    restarted = threading.Event()
    stop = threading.Event()
    lock = threading.Lock()

    def burst(n: int) -> None:
        client = LabClient(lab.socket, timeout=20, retry_delay_s=0.2)
        i = 0
        while not stop.is_set():
            command = f"echo burst-{n}-{i}"
            i += 1
            try:
                job = client.submit(command=command)
            except ServiceUnreachable as exc:
                with lock:
                    failures.append(str(exc))
                time.sleep(0.05)
                continue
            with lock:
                acked.append((command, job))
                if restarted.is_set():
                    after_restart[n] += 1
        client.close()

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        _wait(lambda: len(acked) >= 40)
        lab.kill9()  # mid-burst: requests in flight on every thread
        before = len(acked)
        time.sleep(0.5)
        lab.start()  # as systemd's Restart=always would
        restarted.set()
        _wait(lambda: all(after_restart[n] >= 3 for n in range(8)))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert before >= 40 and failures, "the kill happened mid-burst"
    ledger = sqlite3.connect(str(lab.state / "ledger.db"))
    rows = ledger.execute("SELECT id, command FROM jobs").fetchall()
    by_id = dict(rows)
    for command, job in acked:
        assert by_id.get(job) == command  # every job that got an id is there, as submitted
    counts = Counter(command for _, command in rows)
    assert not [c for c, k in counts.items() if k > 1], "a job was queued twice"
    assert len({job for _, job in acked}) == len(acked)


def test_daemon_down_is_one_clear_error(lab: Lab) -> None:
    lab.stop()
    client = LabClient(lab.socket, retry_delay_s=0)
    with pytest.raises(ServiceUnreachable) as err:
        client.list_jobs()
    assert str(err.value).startswith(f"cannot reach the lab service at {lab.socket}: ")
    assert "is `lepton-tui serve --socket` running?" in str(err.value)


def test_a_client_reconnects_after_the_service_restarts(lab: Lab) -> None:
    client = LabClient(lab.socket, retry_delay_s=0)
    first = client.submit(command="true")
    lab.stop()
    lab.start()
    assert client.submit(command="true") == first + 1  # same client object, new connection
    assert as_user("alice", client_call(lab.socket, "list_jobs"))  # and anyone else's


def test_a_bad_spec_is_refused_by_the_service_itself(lab: Lab) -> None:
    client = LabClient(lab.socket)
    with pytest.raises(ValidationError, match="cpus"):
        client.call("submit", spec=[{"command": "true", "cpus": -4}])
    with pytest.raises(ValidationError, match="empty"):
        client.call("submit", spec=[{"command": "   "}])
    assert client.list_jobs(all_states=True) == []


def _wait(cond: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def _open_follow(sock_path: str, job: int) -> tuple[socket.socket, bytes]:
    """Start `logs -f` on a raw connection; return it and the status line."""
    body = f'{{"args": {{"job_id": {job}, "follow": true}}}}'.encode()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(20)
    conn.connect(sock_path)
    conn.sendall(_post("/v1/logs", body))
    head = b""
    while b"\r\n" not in head:
        head += conn.recv(1)
    return conn, head


def test_followers_are_bounded_and_freed_when_they_leave(lab: Lab) -> None:
    from lepton_tui.labd import MAX_STREAMS

    client = LabClient(lab.socket, timeout=5)
    job = client.submit(command="true")  # no hosts: it stays queued, its followers wait
    followers = [_open_follow(lab.socket, job) for _ in range(MAX_STREAMS)]
    assert all(b" 200 " in head for _, head in followers)
    extra, head = _open_follow(lab.socket, job)
    assert b" 409 " in head
    rest = b""
    while not rest.endswith(b"}}"):  # the headers, then the JSON error
        rest += extra.recv(4096)
    assert b"already streaming" in rest
    extra.close()
    assert client.list_jobs()  # calls still get a worker
    for conn, _ in followers:
        conn.close()  # Ctrl-C on every `logs -f`
    # the service notices at its next look and frees them: new followers get in again
    again: list[socket.socket] = []
    deadline = time.monotonic() + 30
    while len(again) < MAX_STREAMS:
        assert time.monotonic() < deadline, f"only {len(again)} followers got back in"
        conn, head = _open_follow(lab.socket, job)
        if b" 200 " in head:
            again.append(conn)
        else:
            conn.close()
            time.sleep(0.1)
    for conn in again:
        conn.close()
    assert lab.alive()


def test_idle_kept_alive_clients_give_their_workers_back(lab: Lab) -> None:
    from lepton_tui.labd import WORKERS

    # more clients than workers, each keeping its connection open after a call (a console
    # between refreshes): a client past the pool gets a worker once one of them idles out,
    # well within its 6 s timeout (the service's request timeout, 10 s, would be too late)
    idle = [LabClient(lab.socket, timeout=6, retry_delay_s=0) for _ in range(WORKERS + 4)]
    for client in idle:
        assert client.call("whoami")["user"] == "root"
    # and each idle one's next call goes through on a new connection
    assert all(client.call("whoami")["uid"] == 0 for client in idle[:4])
    for client in idle:
        client.close()
