"""`queue` and `queue --all` under --limit: live jobs first, then the most recently ended."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from lepton_tui.service import Service
from tests.clirun import lepton


def _ledger_with_history(svc: Service, home: Path) -> dict[str, list[int]]:
    """5 ended jobs (the lowest ids, ended in the order 3, 1, 5, 2, 4), 3 queued, 2 running."""
    ids = [svc.submit(command=f"job {i}") for i in range(10)]
    ended, queued, running = ids[:5], ids[5:8], ids[8:]
    conn = sqlite3.connect(home / "ledger.db")
    with conn:
        for at, job_id in zip((20, 40, 10, 50, 30), ended, strict=True):
            conn.execute(
                "UPDATE jobs SET state = 'succeeded', ended_at = submitted_at + ? WHERE id = ?",
                (at, job_id),
            )
        for job_id in running:
            conn.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (job_id,))
    conn.close()
    return {"ended": ended, "queued": queued, "running": running}


def _ids(home: Path, *args: str) -> list[int]:
    res = lepton(home, "queue", *args, "--json")
    assert res.returncode == 0, res.stderr
    return [j["id"] for j in json.loads(res.stdout)]


def test_a_limit_keeps_live_jobs_then_the_latest_ended(svc: Service, home: Path) -> None:
    jobs = _ledger_with_history(svc, home)
    live = jobs["running"] + jobs["queued"]
    assert _ids(home, "--all", "--limit", "3") == live[:3]  # never the 3 oldest, ended jobs
    e = jobs["ended"]
    assert _ids(home, "--all", "--limit", "7") == [*live, e[3], e[1]]
    assert _ids(home, "--all") == [*live, e[3], e[1], e[4], e[0], e[2]]
    assert _ids(home, "--limit", "2") == jobs["running"]  # running before the lower-id queued


def test_a_cut_list_says_how_much_it_shows(svc: Service, home: Path) -> None:
    _ledger_with_history(svc, home)
    res = lepton(home, "queue", "--all", "--limit", "4")
    assert res.returncode == 0, res.stderr
    assert "showing 4 of 10 jobs" in res.stdout
    res = lepton(home, "queue", "--limit", "4")
    assert "showing 4 of 5 jobs not yet ended" in res.stdout
    res = lepton(home, "queue")
    assert "showing" not in res.stdout
