"""The CLI starts light and lists long: what each command imports, `queue --json` as one array
however long, the pager only on a terminal.

Speed itself lives in `bench/cli.py`; here only what can be counted: the modules a command loads
(in a fresh process, through `sys.modules`), the jobs written, whether a pager ran.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lepton_tui.service import Service

HEAVY = {"numpy", "scipy", "textual", "sqlite_utils", "torch", "paramiko"}


def modules_loaded(home: Path, *args: str) -> set[str]:
    """The top-level packages `lepton-tui ARGS` has imported when it exits (exit code 0)."""
    code = (
        "import sys, json, runpy, atexit\n"
        "atexit.register(lambda: sys.__stderr__.write('\\nMODULES ' + json.dumps("
        "sorted({m.split('.')[0] for m in sys.modules})) + '\\n'))\n"
        f"sys.argv = ['lepton-tui', *{list(args)!r}]\n"
        "runpy.run_module('lepton_tui', run_name='__main__')\n"
    )
    env = {**os.environ, "LEPTON_HOME": str(home)}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert "Traceback" not in res.stderr, res.stderr
    line = [x for x in res.stderr.splitlines() if x.startswith("MODULES ")][-1]
    return set(json.loads(line.removeprefix("MODULES ")))


def fill(svc: Service, count: int) -> list[int]:
    """`count` queued jobs, in one transaction."""
    return svc.submit_many(
        [svc_spec(i) for i in range(count)]  # a spec per job: different commands
    )


def svc_spec(i: int):
    from lepton_tui.validate import validate_job

    return validate_job(command=f"python train.py --seed {i}", gpus=i % 3)


@pytest.mark.parametrize(
    ("args", "banned"),
    [
        (["--version"], HEAVY | {"rich", "click"}),  # answered before click loads
        (["queue"], HEAVY | {"rich"}),
        (["queue", "--json"], HEAVY | {"rich"}),
        (["submit", "--", "true"], HEAVY | {"rich"}),
        (["show", "1"], HEAVY),
    ],
)
def test_commands_that_do_not_schedule_import_no_numpy_scipy_or_textual(
    svc: Service, home: Path, args: list[str], banned: set[str]
) -> None:
    fill(svc, 3)
    loaded = modules_loaded(home, *args)
    assert "lepton_tui" in loaded
    assert not loaded & banned


def test_queue_json_on_many_jobs_is_one_array(svc: Service, home: Path) -> None:
    ids = fill(svc, 2500)
    env = {**os.environ, "LEPTON_HOME": str(home)}
    cmd = [sys.executable, "-m", "lepton_tui", "queue", "--json", "--limit", "5000"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    jobs = json.loads(res.stdout)
    assert sorted(j["id"] for j in jobs) == ids
    assert jobs == json.loads(json.dumps(
        [{k: j[k] for k in jobs[0]} for j in svc.list_jobs(limit=5000)]
    ))  # fmt: skip
    empty = subprocess.run([*cmd, "--user", "nobody"], capture_output=True, text=True, env=env)
    assert json.loads(empty.stdout) == []


def _pager_script(tmp_path: Path) -> tuple[str, Path]:
    """A pager that records that it ran and what it got, then shows it."""
    marker = tmp_path / "paged.txt"
    script = tmp_path / "pager.sh"
    script.write_text(f"#!/bin/sh\ntee {marker}\n")
    script.chmod(0o755)
    return str(script), marker


def _run_on_terminal(cmd: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `cmd` with a pseudo-terminal as its stdout; its exit code and what it showed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: every writer has exited
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=30), out.decode(errors="replace")


def test_a_pager_only_on_a_terminal(svc: Service, home: Path, tmp_path: Path) -> None:
    fill(svc, 40)
    pager, marker = _pager_script(tmp_path)
    env = {**os.environ, "LEPTON_HOME": str(home), "PAGER": f"{pager} --a-flag", "LINES": "20"}
    env.pop("LEPTON_PAGER", None)
    cmd = [sys.executable, "-m", "lepton_tui", "queue"]
    piped = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert piped.returncode == 0 and len(piped.stdout.splitlines()) == 41
    assert not marker.exists()  # into a pipe: written as it is
    code, shown = _run_on_terminal(cmd, env)
    assert code == 0 and "\n40  root" in shown
    assert len(marker.read_text().splitlines()) == 41  # longer than the screen: paged
    marker.unlink()
    code, shown = _run_on_terminal([*cmd, "--limit", "5"], env)
    assert code == 0 and "showing 5 of 40" in shown
    assert not marker.exists()  # fits the screen: no pager
    code, shown = _run_on_terminal([*cmd, "--no-pager"], env)
    assert code == 0 and "\n40  root" in shown and not marker.exists()


def test_queue_on_a_terminal_cuts_only_the_last_column(svc: Service, home: Path) -> None:
    job_id = svc.submit(command="echo " + "x" * 300, project="vision")
    with svc.ledger.tx():  # running: the queue shows its command (a queued job's reason)
        svc.ledger.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (job_id,))
    env = {**os.environ, "LEPTON_HOME": str(home), "COLUMNS": "100", "LINES": "40"}
    code, shown = _run_on_terminal([sys.executable, "-m", "lepton_tui", "queue"], env)
    lines = [x for x in shown.replace("\x1b[1m", "").replace("\x1b[0m", "").splitlines() if x]
    assert code == 0 and max(len(x.rstrip("\r")) for x in lines) == 100
    assert "vision" in lines[1] and lines[1].rstrip("\r").endswith("\u2026")
    piped = subprocess.run([sys.executable, "-m", "lepton_tui", "queue"], capture_output=True,
                           text=True, env=env, timeout=60)  # fmt: skip
    assert "x" * 300 in piped.stdout  # a script reads the whole command
    assert "\x1b" not in piped.stdout
    code, plain = _run_on_terminal(
        [sys.executable, "-m", "lepton_tui", "queue"], {**env, "NO_COLOR": "1"}
    )
    assert code == 0 and "\x1b" not in plain
    assert max(len(x.rstrip("\r")) for x in plain.splitlines()) == 100  # cut all the same
