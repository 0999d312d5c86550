"""Notification benchmark: what the dispatcher's notification worker costs per round.

    python bench/notifications.py                 # 5,000 jobs
    python bench/notifications.py --jobs 20000

On a fresh ledger (synchronous=FULL, as always), N jobs submitted with --notify end together;
times the round that turns their endings into notification rows, an idle round (nothing new:
what the worker pays every second), and the claim-send-record of 200 rows with a sender that
does nothing (the ledger's share of a send: three durable commits). Prints one table.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from lepton_tui import notify  # noqa: E402
from lepton_tui.service import Service  # noqa: E402
from lepton_tui.validate import validate_job  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()
    svc = Service.open(Path(tempfile.mkdtemp(prefix="lepton-bench-notify-")))
    svc.set_setting("notify_command", "true")
    ledger = svc.ledger
    ids = svc.submit_many([validate_job(command="true", notify=True) for _ in range(args.jobs)])
    while notify.collect(ledger) or ledger.query_one(
        "SELECT 1 AS x FROM notify_cursor WHERE event_id < (SELECT MAX(id) FROM events)"
    ):
        pass  # the submits: nothing to tell
    with ledger.tx():
        for job_id in ids:
            ledger.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (job_id,))
            ledger.transition_job(job_id, "succeeded")
    rows = []
    made, rounds, begun = 0, 0, time.perf_counter()
    ledger.queries = 0
    while True:
        n = notify.collect(ledger)
        rounds += 1
        if not n:
            break
        made += n
    spent = time.perf_counter() - begun
    rows.append((f"collect {made:,} endings ({rounds} rounds)", spent, ledger.queries))
    ledger.queries = 0
    begun = time.perf_counter()
    for _ in range(100):
        notify.collect(ledger)
    rows.append(("idle round (nothing new), each", (time.perf_counter() - begun) / 100,
                 ledger.queries // 100))  # fmt: skip
    sent, ledger.queries, begun = 0, 0, time.perf_counter()
    while sent < 200:
        sent += notify.deliver_due(ledger, "bench", lambda channel, target, body: None)
    spent = time.perf_counter() - begun
    rows.append(("claim, send (no-op), record: each", spent / sent, ledger.queries // sent))
    print("| step | ms | statements |\n|---|---|---|")
    for what, seconds, statements in rows:
        print(f"| {what} | {seconds * 1000:.3f} | {statements:,} |")
    svc.close()


if __name__ == "__main__":
    main()
