"""A lab service that dies after its answer's headers, before the whole body: the client says
the service cannot be reached (as for any other drop), not "sent a bad answer" (a flake of the
kill -9 burst test: one thread gave up on the generic error and the test timed out)."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from lepton_tui.client import LabClient, ServiceUnreachable
from lepton_tui.errors import LeptonError
from lepton_tui.labd import PROTOCOL


def _serve(path: Path, body_for_call: bytes, declared: int, stop: threading.Event) -> None:
    """Answer `hello` whole; answer each call with `declared` as its Content-Length but only
    `body_for_call`, then close: a service killed mid-answer."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(4)
    srv.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = srv.accept()
        except TimeoutError:
            continue
        with conn:
            while True:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    request += chunk
                if not request:
                    break
                head, _, rest = request.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
                while len(rest) < length:
                    rest += conn.recv(65536)
                if head.startswith(b"GET /v1/hello"):
                    body = json.dumps({"protocol": PROTOCOL, "you": {"user": "x"}}).encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))  # fmt: skip
                    continue
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                             % (declared, body_for_call))  # fmt: skip
                break  # and close: the rest of the answer never comes
    srv.close()


@pytest.fixture
def cut_service(tmp_path: Path):
    path = tmp_path / "lab.sock"
    stop = threading.Event()
    body = json.dumps({"result": [1]}).encode()
    thread = threading.Thread(target=_serve, args=(path, body[:4], len(body), stop))
    thread.start()
    yield path
    stop.set()
    thread.join(5)


def test_an_answer_cut_short_is_the_service_unreachable(cut_service: Path) -> None:
    client = LabClient(str(cut_service), timeout=5, retry_delay_s=0)
    with pytest.raises(ServiceUnreachable, match="cannot reach the lab service"):
        client.call("list_jobs")
    client.close()


def test_a_whole_answer_that_is_not_json_is_still_a_bad_answer(tmp_path: Path) -> None:
    path = tmp_path / "lab.sock"
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(path, b"not json", 8, stop))
    thread.start()
    try:
        client = LabClient(str(path), timeout=5, retry_delay_s=0)
        with pytest.raises(LeptonError, match="sent a bad answer") as err:
            client.call("list_jobs")
        assert not isinstance(err.value, ServiceUnreachable)
        client.close()
    finally:
        stop.set()
        thread.join(5)
