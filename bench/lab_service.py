"""Lab service benchmark: requests per second through the Unix socket, and the console's refresh
cost over it.

    python bench/lab_service.py                      # 1, 8 and 32 clients, 2,000 requests each kind
    python bench/lab_service.py --clients 8 --requests 5000
    python bench/lab_service.py --busy --tick 3600 --clients   # the console only, a busy lab

Starts a real `lepton-tui serve --socket` on a fresh state directory (no hosts, so the dispatcher
only ticks), fills the queue with 200 jobs, then runs N client threads, each with its own
keep-alive `LabClient`, and times three kinds of request: `whoami` (the protocol's floor: one
round trip, one settings read), `list_jobs` (the queue, 200 rows as JSON) and `submit` (one write
transaction, synchronous=FULL). Prints one table row per kind and client count.

Then the console's refresh over the socket (`--console-s`, 0 skips it): once the service is quiet
(its first ticks done), its CPU over that long without a client, then with one console's `watch`
stream of the overview at the console's 2 s tick: pushes, the service's CPU per push (the
difference, per push), the console's CPU to decode one (`screen_data.from_wire`), a push's size,
and one `console_view` call (what a console that cannot watch reads per tick). `--busy` seeds the
busy lab of `bench/tui.py` first (64 hosts x 8 GPUs, down so nothing is polled, every GPU held,
10,000 queued jobs); there `--tick 3600` keeps the dispatcher's own ticks (about a second of CPU
each on that lab) out of the windows.
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


def start_service(root: Path, busy: bool = False, tick: float = 2.0) -> subprocess.Popen[bytes]:
    """A lab service on `root/lab.sock`, listening when this returns."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "LEPTON_SOCKET": ""}
    sock = root / "lab.sock"
    if busy:
        seed_busy_lab(root / "state")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lepton_tui", "--home", str(root / "state"), "serve",
         "--socket", str(sock), "--tick", str(tick)],
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


def seed_busy_lab(state: Path) -> None:
    """bench/tui.py's busy lab in `state`, its hosts down (nothing to poll: no SSH noise)."""
    from lepton_tui.service import Service
    from tests.tui.data import FIXED_NOW, big_fleet, busy_gpus, many_jobs

    svc = Service.open(state, clock=lambda: FIXED_NOW)
    try:
        big_fleet(svc.ledger, 64, 8)
        many_jobs(svc.ledger, 10_000)
        busy_gpus(svc.ledger)
        svc.ledger.execute("UPDATE hosts SET state = 'down'")
    finally:
        svc.close()


def _cpu(proc: object) -> float:
    times = proc.cpu_times()  # type: ignore[attr-defined]
    return float(times.user + times.system)


def settle(pid: int, quiet_for_s: float = 16.0, window_s: float = 2.0, quiet_s: float = 0.05,
           limit_s: float = 300) -> float:  # fmt: skip
    """Wait until the service has spent under `quiet_s` CPU seconds in each `window_s` for
    `quiet_for_s` on end (its start-up reconciliation, which waits on unreachable hosts for up
    to their connect timeout before it computes, and its first ticks done); return how long
    that took."""
    import psutil

    served, started, quiet = psutil.Process(pid), time.monotonic(), 0.0
    while quiet < quiet_for_s and time.monotonic() - started < limit_s:
        before = _cpu(served)
        time.sleep(window_s)
        quiet = quiet + window_s if _cpu(served) - before < quiet_s else 0.0
    return time.monotonic() - started


def console_refresh(sock: str, pid: int, watch_s: float, calls: int = 5) -> dict[str, float]:
    """One console's `watch` of the overview against the service's quiet CPU (see the module)."""
    import json
    import statistics

    import psutil

    from lepton_tui.client import watch_view
    from lepton_tui.screen_data import VIEW_TYPES, from_wire

    out: dict[str, float] = {"settle_s": settle(pid)}
    client = LabClient(sock)
    walls = []
    for _ in range(calls):
        t0 = time.perf_counter()
        client.call("console_view", view="overview", args={})
        walls.append(time.perf_counter() - t0)
    client.close()
    out["console_view_call_ms"] = 1000 * statistics.median(walls)
    settle(pid, quiet_for_s=4.0)  # the calls above done
    served = psutil.Process(pid)
    c0 = _cpu(served)
    time.sleep(watch_s)
    idle = _cpu(served) - c0
    stream = watch_view(sock, "overview", {}, 2.0)
    pushes, decodes, size = 0, [], 0
    c0, t0 = _cpu(served), time.monotonic()
    for item in stream:
        d0 = time.thread_time()
        from_wire(VIEW_TYPES["overview"], item)
        decodes.append(time.thread_time() - d0)
        size = len(json.dumps(item))
        pushes += 1
        if time.monotonic() - t0 >= watch_s:
            break
    busy = _cpu(served) - c0
    stream.close()
    out.update(watch_s=watch_s, pushes=pushes, push_kb=size / 1000, service_idle_cpu_s=idle,
               service_watch_cpu_s=busy, service_cpu_ms_per_push=1000 * (busy - idle) / pushes,
               decode_cpu_ms=1000 * statistics.median(decodes))  # fmt: skip
    return out


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
    parser.add_argument("--console-s", type=float, default=20.0,
                        help="seconds of a console's watch stream (0: skip)")  # fmt: skip
    parser.add_argument("--busy", action="store_true", help="seed bench/tui.py's busy lab")
    parser.add_argument("--tick", type=float, default=2.0, help="the service's dispatch tick")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lepton-bench-socket-"))
    proc = start_service(root, args.busy, args.tick)
    sock = str(root / "lab.sock")
    try:
        if not args.busy:
            seed = LabClient(sock)
            for i in range(200):
                seed.submit(command=f"echo seed-{i}")
            seed.close()
        if args.clients:
            print("| request | clients | requests/s |")
            print("|---|---|---|")
        for kind in ("whoami", "list_jobs", "submit"):
            for clients in args.clients:
                requests = args.requests if kind != "list_jobs" else args.requests // 4
                rate = run(sock, kind, clients, requests)
                print(f"| {kind} | {clients} | {rate:,.0f} |", flush=True)
        if args.console_s > 0:
            got = console_refresh(sock, proc.pid, args.console_s)
            print("\n| console over the socket | value |\n|---|---|")
            for key, value in got.items():
                print(f"| {key} | {value:,.2f} |", flush=True)
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
