"""The command line as a user meets it: a real process, real ledger, one-line errors."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lepton_tui.ledger import SCHEMA_VERSION
from lepton_tui.service import Service


def run(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEPTON_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "lepton_tui", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
    )


def assert_one_line_error(res: subprocess.CompletedProcess[str], code: int) -> None:
    assert res.returncode == code, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lepton-tui: error: "), res.stderr


def test_submit_then_queue_json(home: Path) -> None:
    res = run(home, "submit", "--", "echo", "hi")
    assert res.returncode == 0, res.stderr
    job_id = int(res.stdout.strip())
    queue = json.loads(run(home, "queue", "--json").stdout)
    assert [(j["id"], j["state"], j["command"]) for j in queue] == [(job_id, "queued", "echo hi")]
    shown = json.loads(run(home, "show", str(job_id), "--json").stdout)
    assert shown["events"][0]["kind"] == "job.submitted"
    assert set(queue[0]) == {
        "id", "name", "user", "project", "state", "reason", "command", "workdir", "cpus", "mem_mb",
        "gpus", "gpu_mem_mb", "time_limit_s", "priority", "retries", "attempts_used", "host",
        "submitted_at", "started_at", "ended_at", "exit_code",
        "notify_on", "requeue_on_timeout", "max_requeues", "requeues", "signal", "kind",
        "array_id", "array_index", "array_limit", "constraints",
    }  # fmt: skip


def test_submit_all_options(home: Path) -> None:
    res = run(
        home, "submit", "--name", "train", "--cpus", "4", "--mem", "16G", "--gpus", "2",
        "--time", "1d12h", "--priority", "5", "--project", "vision", "--retries", "2",
        "--workdir", "/tmp", "--env", "A=1", "--env", "B=x y", "--json", "--", "python", "-c", "print('$(id)')",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    job = json.loads(res.stdout)
    assert (job["cpus"], job["mem_mb"], job["gpus"], job["time_limit_s"]) == (
        4.0,
        16384,
        2,
        129600.0,
    )
    assert job["command"] == "python -c 'print('\"'\"'$(id)'\"'\"')'"
    run(home, "submit", "--after", str(job["id"]), "--", "true")
    assert json.loads(run(home, "show", "2", "--json").stdout)["after"] == [job["id"]]


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "--mem", "8X", "--", "a"],
        ["submit", "--mem", "-1G", "--", "a"],
        ["submit", "--gpus", "1e9", "--", "a"],
        ["submit", "--gpus", "nan", "--", "a"],
        ["submit", "--gpu-mem", "0", "--", "a"],
        ["submit", "--gpus", "1", "--gpu-mem", "10G", "--", "a"],
        ["submit", "--time", "2x", "--", "a"],
        ["submit", "--time", "-5m", "--", "a"],
        ["submit", "--"],
        ["submit"],
        ["submit", "--", ""],
        ["submit", "--env", "NOEQUALS", "--", "a"],
        ["submit", "--after", "99", "--", "true"],
        ["hosts", "add", "gpu 1", "--address", "h"],
        ["hosts", "add", "a'b", "--address", "h"],
        ["hosts", "add", "h", "--address", "$(id)"],
        ["hosts", "add", "h", "--address", "x;rm -rf /"],
        ["hosts", "add", "h", "--address", "h", "--price-per-hour", "-1"],
        ["queue", "--state", "bogus"],
    ],
)
def test_bad_input_usage_errors(home: Path, args: list[str]) -> None:
    assert_one_line_error(run(home, *args), 2)
    if (home / "ledger.db").exists():  # opened, but nothing written
        assert json.loads(run(home, "queue", "--all", "--json").stdout) == []
        assert json.loads(run(home, "hosts", "ls", "--json").stdout) == []


def test_runtime_errors(svc: Service, home: Path) -> None:
    assert_one_line_error(run(home, "show", "42"), 1)
    assert_one_line_error(run(home, "cancel", "42"), 1)
    assert_one_line_error(run(home, "hosts", "rm", "nope"), 1)


def test_non_utf8_argument(home: Path) -> None:
    env = {**os.environ, "LEPTON_HOME": str(home)}
    res = subprocess.run(
        [sys.executable, "-m", "lepton_tui", "submit", "--project", b"\xff\xfe".decode("utf-8", "surrogateescape"), "--", "a"],
        capture_output=True, env=env,
    )  # fmt: skip
    assert res.returncode == 2 and b"Traceback" not in res.stderr


def test_ledger_not_sqlite(home: Path) -> None:
    (home / "ledger.db").write_text("hello, I am not a database\n" * 20)
    res = run(home, "queue")
    assert_one_line_error(res, 1)
    assert "not an SQLite database" in res.stderr
    assert (home / "ledger.db").read_text().startswith("hello")


def test_ledger_from_newer_schema(home: Path) -> None:
    run(home, "submit", "--", "true")
    conn = sqlite3.connect(home / "ledger.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    res = run(home, "submit", "--", "true")
    assert_one_line_error(res, 1)
    assert "newer lepton-tui" in res.stderr
    conn = sqlite3.connect(home / "ledger.db")
    assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 1


def test_read_only_state_directory(tmp_path: Path) -> None:
    """A state directory on a read-only mount: one clear line, nothing written."""
    state = tmp_path / "ro"
    state.mkdir()
    mounted = subprocess.run(
        ["mount", "-o", "bind,ro", str(state), str(state)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {mounted.stderr.decode().strip()}")
    try:
        res = run(state, "submit", "--", "true")
        assert_one_line_error(res, 1)
        assert "read-only" in res.stderr
        assert list(state.iterdir()) == []
    finally:
        subprocess.run(["umount", str(state)], check=True)


def test_version_and_help(home: Path) -> None:
    assert run(home, "--version").stdout.strip() == "lepton-tui, version 0.1.0"
    assert "submit" in run(home, "--help").stdout


def test_bad_fingerprint_is_refused_before_connecting(home: Path) -> None:
    res = run(home, "hosts", "add", "h3", "--address", "192.0.2.1", "--fingerprint", "nothex")
    assert_one_line_error(res, 2)
    assert "not a SHA256 fingerprint" in res.stderr


def test_a_port_that_is_not_ssh_gives_one_line(home: Path) -> None:
    """paramiko's own traceback from its transport thread must not reach the user."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def hang_up() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    try:
        port = str(server.getsockname()[1])
        res = run(
            home,
            "hosts",
            "add",
            "web",
            "--address",
            "127.0.0.1",
            "--port",
            port,
            "--accept-new-host-key",
        )
    finally:
        server.close()
    assert_one_line_error(res, 1)
    assert "cannot reach" in res.stderr
    assert json.loads(run(home, "hosts", "ls", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--bogus"], "lepton-tui --help"),
        (["--home"], "lepton-tui --help"),
        (["nosuch"], "lepton-tui --help"),
        (["submit", "--gpus"], "lepton-tui submit --help"),
        (["hosts", "add"], "lepton-tui hosts add --help"),
    ],
)
def test_usage_errors_at_every_level_are_one_line(tmp_path: Path, args, where) -> None:
    """Top-level options used to print click's three-line usage block instead."""
    res = run(tmp_path / "home", *args)
    assert_one_line_error(res, 2)
    assert res.stderr.startswith("lepton-tui: error: ") and f"(see `{where}`)" in res.stderr


def test_an_unprintable_character_names_the_terminal_encoding(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(home, "submit", "--name", "café", "--", "true").returncode == 0
    env = {**os.environ, "LEPTON_HOME": str(home), "PYTHONIOENCODING": "ascii"}
    res = subprocess.run([sys.executable, "-m", "lepton_tui", "show", "1"],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert (
        res.returncode == 1 and "UTF-8 locale" in res.stderr and "not valid UTF-8" not in res.stderr
    )
