"""Many writers at once, and a writer killed mid-batch: the ledger stays whole."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from lepton_tui.ledger import open_ledger

WRITER = textwrap.dedent(
    """
    import sys
    from lepton_tui.service import Service
    from lepton_tui.validate import validate_job
    home, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    svc = Service.open(home, user=f"user{tag}")
    print("ready", flush=True)
    for i in range(count):
        svc.submit(validate_job(command=f"echo {tag}-{i}", project=f"p{tag}", cpus=1 + i % 4))
    """
)


def test_eight_processes_submit_2000_jobs(tmp_path: Path) -> None:
    home = tmp_path / "state"
    open_ledger(home / "ledger.db").close()  # create the schema once, as the first user would
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(home), str(n), "250"], stderr=subprocess.PIPE
        )
        for n in range(8)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()
    ledger = open_ledger(home / "ledger.db")
    jobs = ledger.query("SELECT id, command, user FROM jobs")
    assert len(jobs) == 2000
    assert len({j["id"] for j in jobs}) == 2000
    assert {j["command"] for j in jobs} == {f"echo {n}-{i}" for n in range(8) for i in range(250)}
    submitted = ledger.query("SELECT job_id FROM events WHERE kind = 'job.submitted'")
    assert sorted(e["job_id"] for e in submitted) == sorted(j["id"] for j in jobs)
    assert ledger.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


BATCH_WRITER = textwrap.dedent(
    """
    import sys
    from lepton_tui.service import Service
    from lepton_tui.validate import validate_job
    svc = Service.open(sys.argv[1], user="crash")
    print("ready", flush=True)
    n = 0
    while True:  # batches of 20 jobs, each batch one transaction, until killed
        svc.submit_many([validate_job(command=f"echo batch{n}-{i}", after=[]) for i in range(20)])
        n += 1
    """
)


def test_sigkill_mid_batch_leaves_whole_batches(tmp_path: Path) -> None:
    home = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-c", BATCH_WRITER, str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 60
    count = 0
    while count < 200 and time.monotonic() < deadline:  # let it write some batches first
        time.sleep(0.05)
        try:
            conn = sqlite3.connect(home / "ledger.db", timeout=30)
            count = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
            conn.close()
        except sqlite3.OperationalError:
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    ledger = open_ledger(home / "ledger.db")
    assert ledger.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = ledger.query("SELECT id, command FROM jobs ORDER BY id")
    assert len(rows) >= 200
    assert len(rows) % 20 == 0  # each batch whole or absent
    batches: dict[str, int] = {}
    for row in rows:
        batch = row["command"].split()[1].split("-")[0]
        batches[batch] = batches.get(batch, 0) + 1
    assert set(batches.values()) == {20}
    events = ledger.query("SELECT COUNT(*) AS n FROM events WHERE kind = 'job.submitted'")[0]["n"]
    assert events == len(rows)
