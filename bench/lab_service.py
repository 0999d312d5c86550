"""Lab service benchmark: requests per second through the Unix socket.

    python bench/lab_service.py                      # 1, 8 and 32 clients, 2,000 requests each kind
    python bench/lab_service.py --clients 8 --requests 5000

Starts a real `lepton-tui serve --socket` on a fresh state directory (no hosts, so the dispatcher
only ticks), fills the queue with 200 jobs, then runs N client threads, each with its own
keep-alive `LabClient`, and times three kinds of request: `whoami` (the protocol's floor: one
round trip, one settings read), `list_jobs` (the queue, 200 rows as JSON) and `submit` (one write
transaction, synchronous=FULL). Prints one table row per kind and client count.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file is named socket.py: its own folder must not shadow the standard library's socket
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from lepton_tui.client import LabClient  # noqa: E402


def start_service(root: Path) -> subprocess.Popen[bytes]:
    """A lab service on `root/lab.sock`, listening when this returns."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "LEPTON_SOCKET": ""}
    sock = root / "lab.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lepton_tui", "--home", str(root / "state"), "serve",
         "--socket", str(sock), "--tick", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(600):
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(sock))
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the lab service did not start")


def run(sock: str, kind: str, clients: int, requests: int) -> float:
    """Requests per second of `kind` from `clients` threads, `requests` in all."""
    per_client = max(1, requests // clients)
    barrier = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        client = LabClient(sock)
        client.hello()
        barrier.wait()
        try:
            for i in range(per_client):
                if kind == "whoami":
                    client.call("whoami")
                elif kind == "list_jobs":
                    client.list_jobs()
                else:
                    client.submit(command=f"echo bench-{n}-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{kind}: {errors[0]!r}")
    return per_client * clients / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lepton-bench-socket-"))
    proc = start_service(root)
    sock = str(root / "lab.sock")
    try:
        seed = LabClient(sock)
        for i in range(200):
            seed.submit(command=f"echo seed-{i}")
        seed.close()
        print("| request | clients | requests/s |")
        print("|---|---|---|")
        for kind in ("whoami", "list_jobs", "submit"):
            for clients in args.clients:
                requests = args.requests if kind != "list_jobs" else args.requests // 4
                rate = run(sock, kind, clients, requests)
                print(f"| {kind} | {clients} | {rate:,.0f} |", flush=True)
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
