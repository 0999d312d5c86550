"""What the CLI prints of user text, and the input it refuses (regressions from a review).

User text (commands, names, events, snapshot ids) is never read as Rich markup and never reaches
a terminal with its control characters; mistyped options never become part of a job's command;
out-of-range ids, snapshot numbers and time limits are one-line bad-input errors (exit 2).
"""

from __future__ import annotations

import json
import shlex
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lepton_tui.cli import cli
from lepton_tui.cli.common import TerminalLogFilter, printable
from lepton_tui.service import Service
from tests.foundation.test_cli import assert_one_line_error, run

CONTROL = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))]


def submit(home: Path, *args: str) -> int:
    res = run(home, "submit", *args)
    assert res.returncode == 0, res.stderr
    return int(res.stdout)


def set_running(home: Path, job_id: int) -> None:
    """Make a job look running (its command then shows in `queue`) without a host."""
    conn = sqlite3.connect(home / "ledger.db")
    with conn:
        conn.execute(
            "UPDATE jobs SET state = 'running', reason = NULL, host = ? WHERE id = ?",
            ("gpu-[b]1\x1b[2J", job_id),
        )
    conn.close()


def add_event(home: Path, job_id: int, message: str) -> None:
    conn = sqlite3.connect(home / "ledger.db")
    with conn:
        conn.execute(
            "INSERT INTO events (at, kind, job_id, message) VALUES (?, 'job.note', ?, ?)",
            (time.time(), job_id, message),
        )
    conn.close()


def jobs(home: Path) -> list[dict[str, Any]]:
    if not (home / "ledger.db").exists():
        return []  # nothing was ever written (queue refuses a state directory with no ledger)
    res = run(home, "queue", "--all", "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def assert_no_controls(text: str) -> None:
    bad = [c for c in text if c in CONTROL]
    assert not bad, (bad, text)


# -- 1. markup ------------------------------------------------------------------------------------


def test_markup_in_a_command_does_not_break_queue(home: Path) -> None:
    job_id = submit(home, "--", "echo [/bold] [red]hi")
    set_running(home, job_id)
    for args in (["queue"], ["queue", "--all"]):
        res = run(home, *args)
        assert res.returncode == 0, res.stderr
        assert "echo [/bold] [red]hi" in res.stdout
        assert "gpu-[b]1" in res.stdout
    res = run(home, "show", str(job_id))
    assert res.returncode == 0, res.stderr
    assert "echo [/bold] [red]hi" in res.stdout


@pytest.mark.parametrize("name", ["[/x]", "[bold]x[/]", ":thumbs_up: [link=x]y[/link]"])
def test_markup_in_a_name_is_shown_as_typed(home: Path, name: str) -> None:
    job_id = submit(home, "--name", name, "--", "echo", "m")
    res = run(home, "show", str(job_id))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == f"job {job_id} {name}  queued"


def test_markup_in_an_event_is_shown_as_typed(home: Path) -> None:
    job_id = submit(home, "--", "true")
    add_event(home, job_id, "host said [/] [red]boom\x1b]52;c;ZXZpbA==\x07")
    res = run(home, "show", str(job_id))
    assert res.returncode == 0, res.stderr
    assert "host said [/] [red]boom\\x1b]52;c;ZXZpbA==\\x07" in res.stdout
    assert_no_controls(res.stdout)


# -- 2. terminal escapes ----------------------------------------------------------------------------

EVIL = "echo \x1b]0;PWNED\x07\x1b[31mRED\u202egnp.exe\x9b2J\x7f"


def test_escapes_in_a_command_are_shown_not_sent(home: Path) -> None:
    job_id = submit(home, "--", EVIL)
    assert jobs(home)[0]["command"] == EVIL  # stored (and run) exactly as submitted
    set_running(home, job_id)
    for args in (["show", str(job_id)], ["queue"]):
        res = run(home, *args)
        assert res.returncode == 0, res.stderr
        assert_no_controls(res.stdout)
        assert "\u202e" not in res.stdout
    shown = run(home, "show", str(job_id)).stdout
    assert "echo \\x1b]0;PWNED\\x07\\x1b[31mRED\\u202egnp.exe\\x9b2J\\x7f" in shown


@pytest.mark.parametrize("name", ["n\x1b[5m", "n\x9b5m", "n\x7f", "n\u202eexe", "a\nb"])
def test_names_with_control_characters_are_refused(home: Path, name: str) -> None:
    assert_one_line_error(run(home, "submit", "--name", name, "--", "true"), 2)
    assert jobs(home) == []


def test_a_multi_line_command_stays_readable(home: Path) -> None:
    job_id = submit(home, "--", "make\n./run.sh\tfast\r")
    shown = run(home, "show", str(job_id)).stdout
    assert "  command     make\n              ./run.sh" in shown
    assert "\\r" in shown and "\r" not in shown


def test_printable_escapes_every_control_character() -> None:
    for char in CONTROL:
        assert_no_controls(printable(f"a{char}b"))
    assert printable("tab\there\nnl") == "tab\\there\\nnl"
    assert printable("tab\there\nnl", "\t\n") == "tab\there\nnl"
    assert printable("caf\u00e9 \u4e2d\u6587 [b]") == "caf\u00e9 \u4e2d\u6587 [b]"


def test_terminal_log_filter_keeps_colours_only() -> None:
    f = TerminalLogFilter()
    out = f.feed("ok \x1b[1;3")  # a colour cut in two by the chunking
    out += f.feed("1mred\x1b[0m\r50%\n\x1b]0;PWNED\x07\x1b[2J\x1b")
    out += f.feed("[H\ttab")
    out += f.flush()
    assert out == ("ok \x1b[1;31mred\x1b[0m\r50%\n\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[H\ttab\x1b[0m")


def _fake_log(monkeypatch: pytest.MonkeyPatch, chunks: list[str]) -> list[Any]:
    import lepton_tui.logs

    calls: list[Any] = []

    def follow_log(svc: Any, job_id: int, **kwargs: Any) -> Any:
        calls.append((job_id, kwargs))
        yield from chunks

    monkeypatch.setattr(lepton_tui.logs, "follow_log", follow_log)
    return calls


def test_logs_are_raw_into_a_pipe(
    svc: Service, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = ["\x1b[32mgreen\x1b[0m\n", "\x1b]0;t\x07done\n"]
    calls = _fake_log(monkeypatch, chunks)
    res = CliRunner().invoke(cli, ["logs", "7", "--attempt", "2"])
    assert res.exit_code == 0, res.output
    assert res.output == "".join(chunks)  # exactly what the job wrote, colours included
    assert calls == [(7, {"stream": "stdout", "follow": False, "attempt_no": 2})]


def test_logs_on_a_terminal_show_escapes(
    svc: Service, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lepton_tui.cli.jobs

    _fake_log(monkeypatch, ["\x1b[32mgreen\x1b[0m\n", "\x1b]0;t\x07done\n"])
    monkeypatch.setattr(lepton_tui.cli.jobs, "is_terminal", lambda stream: True)
    res = CliRunner().invoke(cli, ["logs", "7"])
    assert res.exit_code == 0, res.output
    assert res.output == "\x1b[32mgreen\x1b[0m\n\\x1b]0;t\\x07done\n\x1b[0m"


# -- 3. options before -- ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--cpu", "4", "--", "python", "x"], "--cpu"),
        (["--project", "econ", "--new"], "--new"),
        (["--gpus", "1", "-x", "--", "true"], "-x"),
    ],
)
def test_an_unknown_option_is_refused(home: Path, args: list[str], named: str) -> None:
    res = run(home, "submit", *args)
    assert_one_line_error(res, 2)
    assert f"no such option: {named}" in res.stderr and "before --" in res.stderr
    assert jobs(home) == []


def test_a_close_option_is_suggested(home: Path) -> None:
    res = run(home, "submit", "--cpu", "4", "--", "python", "x")
    assert "did you mean --cpus" in res.stderr


def test_after_dashdash_everything_is_the_command(home: Path) -> None:
    submit(home, "--cpus", "2", "--", "-weird", "--cpus", "3")
    submit(home, "--", "--", "x")
    submit(home, "--gpus", "1", "python", "train.py", "--lr", "0.1")  # no --: from the first word
    got = [(j["command"], j["cpus"], j["gpus"]) for j in jobs(home)]
    assert got == [
        ("-weird --cpus 3", 2.0, 0),
        ("-- x", 1.0, 0),
        ("python train.py --lr 0.1", 1.0, 1),
    ]


def test_other_usage_errors_are_one_line(home: Path) -> None:
    res = run(home, "queue", "--bogus")
    assert_one_line_error(res, 2)
    assert "--bogus" in res.stderr and "lepton-tui queue --help" in res.stderr


# -- 4. ids ---------------------------------------------------------------------------------------

HUGE = "99999999999999999999999"


@pytest.mark.parametrize(
    "args",
    [
        ["show", HUGE], ["show", "0"], ["show", "-3"], ["show", "abc"], ["cancel", "1", HUGE],
        ["cancel", "0"], ["logs", HUGE], ["logs", "1", "--attempt", HUGE], ["logs", "1", "--attempt", "0"],
        ["submit", "--after", HUGE, "--", "true"], ["submit", "--after", "0", "--", "true"],
        ["submit", "--after", "1e3", "--", "true"], ["submit", "--after", "999", "--", "true"],
    ],
)  # fmt: skip
def test_bad_job_ids_are_bad_input(home: Path, args: list[str]) -> None:
    res = run(home, *args)
    assert_one_line_error(res, 2)
    assert "internal error" not in res.stderr and "e+" not in res.stderr
    assert jobs(home) == []


def test_the_largest_id_is_merely_unknown(svc: Service, home: Path) -> None:
    assert_one_line_error(run(home, "show", str(2**63 - 1)), 1)
    assert_one_line_error(run(home, "show", str(2**63)), 2)
    job_id = submit(home, "--", "true")
    assert run(home, "show", f"+{job_id}").returncode == 0


# -- 5. plan snapshots -------------------------------------------------------------------------------


def _snapshot(tmp_path: Path, text: str) -> str:
    path = tmp_path / "snap.json"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("node", "field"),
    [
        ('"gpus": 1e10', "nodes[0].gpus"),
        ('"gpus": 10000000000', "nodes[0].gpus"),
        ('"gpus": 1, "mem_gb": 1e306', "nodes[0].mem_gb"),
        ('"gpus": 1, "cpus": 1e300', "nodes[0].cpus"),
        ('"gpus": 1, "price_per_hour": 1e300', "nodes[0].price_per_hour"),
        ('"gpus": 1, "prices": {"gpu_hour": 1e300}', "nodes[0].prices.gpu_hour"),
    ],
)
def test_snapshot_numbers_are_bounded(tmp_path: Path, home: Path, node: str, field: str) -> None:
    text = '{"nodes": [{"id": "n", "cpus": 8, "mem_gb": 16, ' + node + '}], "jobs": []}'
    res = run(home, "plan", _snapshot(tmp_path, text))
    assert_one_line_error(res, 2)
    assert field + ":" in res.stderr and "out of range" in res.stderr


@pytest.mark.parametrize(
    "text",
    [
        '{"nodes": [{"cpus": 8, "mem_gb": 16, "gpus": %s}], "jobs": []}' % ("9" * 5000),
        "[" * 100_000 + "]" * 100_000,
        '{"nodes": [{"cpus": 8, "mem_gb": 16}], "jobs": [{"est_runtime_s": 1e300}]}',
    ],
    ids=["5000-digit-int", "nested-100000-deep", "runtime-1e300"],  # short: ids go into env
)
def test_unreadable_snapshots_are_bad_input(tmp_path: Path, home: Path, text: str) -> None:
    assert_one_line_error(run(home, "plan", _snapshot(tmp_path, text)), 2)


def test_snapshot_ids_are_shown_as_typed(tmp_path: Path, home: Path) -> None:
    snap = {
        "nodes": [{"id": "[red]n\x1b]0;X\x07", "cpus": 8, "mem_gb": 16, "gpus": 2}],
        "jobs": [{"id": "[/x]", "cpus": 1, "mem_gb": 1}, {"id": "big\x1b[2J", "cpus": 100}],
    }
    res = run(home, "plan", _snapshot(tmp_path, json.dumps(snap)))
    assert res.returncode == 0, res.stderr
    assert "[/x]" in res.stdout and "[red]n\\x1b]0;X\\x07" in res.stdout
    assert "unschedulable: big\\x1b[2J" in res.stdout and "big\\x1b[2J" in res.stderr
    assert_no_controls(res.stdout + res.stderr.replace("\n", ""))


# -- 6. time limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0.0001", "0.5s", "0.9"])
def test_time_limits_under_a_second_are_refused(home: Path, limit: str) -> None:
    res = run(home, "submit", "--time", limit, "--", "true")
    assert_one_line_error(res, 2)
    assert "at least 1s" in res.stderr
    assert jobs(home) == []


def test_a_one_second_limit_is_fine(home: Path) -> None:
    submit(home, "--time", "1s", "--", "true")
    assert jobs(home)[0]["time_limit_s"] == 1.0


# -- 7. attempts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retries", "used", "line"),
    [
        ("0", 0, "attempts    0 (no retries allowed)"),
        ("1", 1, "attempts    1 (1 retry allowed)"),
        ("3", 2, "attempts    2 (3 retries allowed)"),
    ],
)
def test_show_reads_attempts_naturally(home: Path, retries: str, used: int, line: str) -> None:
    job_id = submit(home, "--retries", retries, "--", "true")
    conn = sqlite3.connect(home / "ledger.db")
    with conn:
        conn.execute("UPDATE jobs SET attempts_used = ? WHERE id = ?", (used, job_id))
    conn.close()
    shown = run(home, "show", str(job_id)).stdout
    assert f"  {line}\n" in shown and "retries" not in shown.replace("retries allowed", "")


def _closed(home: Path, redirect: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`lepton-tui ARGS` started by a shell with `redirect` (`2>&-`, `>&-`): Python starts with
    that fd closed, as from a cron line; the other streams are pipes."""
    words = [sys.executable, "-m", "lepton_tui", "--home", str(home), *args]
    line = " ".join(shlex.quote(w) for w in words)
    return subprocess.run(["sh", "-c", f"{line} {redirect}"], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_a_closed_stderr_does_not_fail_the_command(home: Path) -> None:
    r = _closed(home, "2>&-", "submit", "--", "true")  # its note would go to stderr
    assert r.returncode == 0 and r.stdout.strip() == "1", (r.returncode, r.stdout)
    r = _closed(home, "2>&- 0<&-", "queue")
    assert r.returncode == 0 and "waiting for the scheduler" in r.stdout


def test_a_closed_stdout_runs_nothing_and_says_so(home: Path) -> None:
    first = submit(home, "--", "true")
    for args in (("submit", "--", "true"), ("hosts", "ls"), ("cancel", str(first))):
        r = _closed(home, ">&-", *args)
        assert r.returncode == 1 and "standard output is closed" in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    rows = json.loads(run(home, "queue", "--json").stdout)
    assert [(row["id"], row["state"]) for row in rows] == [(first, "queued")]  # nothing ran
    r = _closed(home, ">&-", "serve", "--once")  # prints nothing on stdout: it runs
    assert r.returncode == 0 and "standard output" not in r.stderr, r.stderr
