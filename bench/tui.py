"""Console benchmark: time to first frame, RSS after a minute of the demo, refresh cost per tick.

    python bench/tui.py                 # all three (the demo runs 60 s)
    python bench/tui.py --demo-s 10     # a shorter demo
    python bench/tui.py --only tick     # one of: frame, rss, tick
    python bench/tui.py --only tick --busy   # ... with every GPU running a priced job
    python bench/tui.py --only tick --busy --presses 60   # ... timing 60 key presses each way
    python bench/tui.py --only tick --busy --in-process   # ... the console reading itself
    python bench/tui.py --only views --rounds 9   # that busy lab's read models alone: CPU, SQL
    python bench/tui.py --only lab      # the busy lab's overview through `serve --socket`

Each measurement runs the real app headless in a fresh interpreter so imports count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# -- children (run in a fresh interpreter) -----------------------------------------------------


def child_frame(home: str) -> None:
    """Start the console; report when the first frame is painted and when data first shows."""
    import asyncio

    from lepton_tui.app import make_app

    app = make_app(home=home, dispatch=False)
    marks: dict[str, float] = {}

    async def pilot_fn(pilot) -> None:
        import resource

        marks["ready"] = time.time()  # the app is running and has painted its first frame
        use = resource.getrusage(resource.RUSAGE_SELF)
        marks["cpu_s"] = use.ru_utime + use.ru_stime  # CPU time to the first frame (load-proof)
        while getattr(pilot.app.screen, "loads", 0) < 1:
            await asyncio.sleep(0.005)
        await pilot.pause()
        marks["data"] = time.time()
        pilot.app.exit()

    app.run(headless=True, size=(120, 40), auto_pilot=pilot_fn)
    print(json.dumps(marks))


def child_rss(seconds: float) -> None:
    """Run the demo headless for `seconds`, visiting each screen; report RSS."""
    import asyncio

    import psutil

    from lepton_tui.app import make_app

    app = make_app(demo=True)
    out: dict[str, float] = {}

    async def pilot_fn(pilot) -> None:
        start = time.monotonic()
        keys = ["1", "2", "3", "4", "5"]
        i = 0
        while time.monotonic() - start < seconds:
            await asyncio.sleep(min(5.0, seconds / 10))
            await pilot.press(keys[i % len(keys)])
            i += 1
        await pilot.press("1")
        await pilot.pause(1.0)
        out["rss_mb"] = psutil.Process().memory_info().rss / 2**20
        out["demo_steps"] = app.demo_driver.steps
        out["jobs"] = (app.ledger.query_one("SELECT COUNT(*) AS n FROM jobs") or {"n": 0})["n"]
        out["torch_loaded"] = "torch" in sys.modules
        pilot.app.exit()

    app.run(headless=True, size=(120, 40), auto_pilot=pilot_fn)
    print(json.dumps(out))


TICK_S = 2.0  # the console's refresh: the bench's clock moves this much per read


async def key_to_frame(pilot, key: str) -> float:
    """Seconds from a key event reaching the app to the first frame drawn after the focused
    table's cursor moved (`App._display`, which a headless app calls with each drawn update)."""
    import asyncio

    from textual import events

    app = pilot.app
    table = app.focused
    before = table.cursor_coordinate if table is not None else None
    done: list[float] = []
    display = app._display

    def watch(screen, renderable) -> None:
        if renderable is not None and not done and table.cursor_coordinate != before:
            done.append(time.perf_counter())
        display(screen, renderable)

    app._display = watch
    try:
        t0 = time.perf_counter()
        app._driver.send_message(events.Key(key, None))
        while not done and time.perf_counter() - t0 < 10:
            await asyncio.sleep(0.0005)
    finally:
        del app._display  # the class's method again
    return (done[0] if done else time.perf_counter()) - t0


def _reader_cpu(app) -> float:
    """CPU seconds the console's reader process has used (0 without one)."""
    import psutil

    pid = getattr(app.source, "pid", None)
    if pid is None:
        return 0.0
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def child_tick(home: str, rounds: int, presses: int = 20, reader: str = "on") -> None:
    """Per tick with 64 hosts x 8 GPUs and 10,000 jobs: the worker's read and the redraw.

    The clock moves on by the console's tick before each read, as in a real console: what a
    refresh re-reads (the recent samples; the money totals every `COST_TOTALS_S`) is what it would
    re-read in a lab. Medians hide the reads that recompute the totals: max and mean show them."""
    import asyncio
    import inspect

    from lepton_tui.app import make_app
    from tests.tui.data import FIXED_NOW

    now = [FIXED_NOW]
    kwargs = {}
    if "reader" in inspect.signature(make_app).parameters:  # a checkout without one reads here
        kwargs["reader"] = reader == "on"
    app = make_app(home=home, clock=lambda: now[0], dispatch=False, refresh_s=3600, **kwargs)
    out: dict[str, float] = {"reader_process": float(bool(kwargs.get("reader")))}

    async def pilot_fn(pilot) -> None:
        while getattr(pilot.app.screen, "loads", 0) < 1:
            await asyncio.sleep(0.01)
        screen = pilot.app.screen
        reads, draws, cpus = [], [], []
        for _ in range(rounds):
            now[0] += TICK_S
            t0 = time.perf_counter()
            c0 = time.thread_time()
            loaded = screen.load()  # what the thread worker does: read and build cells
            cpus.append(time.thread_time() - c0)  # its CPU: what a loaded machine cannot inflate
            t1 = time.perf_counter()
            screen.show(loaded)  # what the event loop does: patch changed cells
            await pilot.pause()  # let the redraw happen
            t2 = time.perf_counter()
            reads.append(t1 - t0)
            draws.append(t2 - t1)
        out["read_ms_median"] = 1000 * statistics.median(reads)
        out["read_ms_mean"] = 1000 * statistics.mean(reads)
        out["read_ms_max"] = 1000 * max(reads)
        out["read_cpu_ms_median"] = 1000 * statistics.median(cpus)
        out["read_cpu_ms_mean"] = 1000 * statistics.mean(cpus)
        ledger = pilot.app.ledger
        counts = []
        for _ in range(10):  # statements per read over 20 s of ticks
            now[0] += TICK_S
            seen: list[str] = []
            ledger.conn.set_trace_callback(seen.append)
            screen.load()
            ledger.conn.set_trace_callback(None)
            counts.append(len(seen))
        out["sql_statements_per_read_median"] = statistics.median(counts)
        out["sql_statements_per_read_max"] = max(counts)
        out["draw_ms_median"] = 1000 * statistics.median(draws)
        out["draw_ms_max"] = 1000 * max(draws)
        data = loaded[0]
        out["queue_rows_shown"] = len(data.queue.rows)
        out["hosts"] = len(data.fleet)
        out["jobs"] = data.queue.matched
        # Responsiveness: a key press (cursor down), from the key reaching the app to the first
        # frame written with the cursor moved; with no refresh running, then with a refresh
        # started in a worker just before each press. (Pilot.press is no measure of this: it
        # waits until the whole process is idle, the worker's read included.)
        idle = [await key_to_frame(pilot, "up" if i % 2 else "down") for i in range(presses)]
        out["key_to_frame_ms_median_idle"] = 1000 * statistics.median(idle)
        out["key_to_frame_ms_max_idle"] = 1000 * max(idle)
        lat = []
        for i in range(presses):
            now[0] += TICK_S
            loads = screen.loads
            screen.reload()
            lat.append(await key_to_frame(pilot, "up" if i % 2 else "down"))
            while screen.loads == loads:  # let the refresh land before the next one
                await asyncio.sleep(0.005)
        # The console's own CPU per refresh (its whole process: with a reader, decoding the push
        # and building cells; without, the read too) and the reader's, over refreshes without keys.
        refreshes, waits = 20, []
        c0, r0 = time.process_time(), _reader_cpu(pilot.app)
        l0 = time.thread_time()  # the event loop's thread: patching, layout, drawing
        for _ in range(refreshes):
            now[0] += TICK_S
            loads = screen.loads
            t0 = time.perf_counter()
            screen.reload()
            while screen.loads == loads:
                await asyncio.sleep(0.005)
            waits.append(time.perf_counter() - t0)  # asked to shown: read, decode, cells, patch
            await pilot.pause()
        out["refresh_shown_ms_median"] = 1000 * statistics.median(waits)
        out["refresh_shown_ms_max"] = 1000 * max(waits)
        out["console_cpu_ms_per_refresh"] = 1000 * (time.process_time() - c0) / refreshes
        out["loop_cpu_ms_per_refresh"] = 1000 * (time.thread_time() - l0) / refreshes
        out["reader_cpu_ms_per_refresh"] = 1000 * (_reader_cpu(pilot.app) - r0) / refreshes
        out["key_to_frame_ms_median_during_refresh"] = 1000 * statistics.median(lat)
        out["key_to_frame_ms_max_during_refresh"] = 1000 * max(lat)
        out["key_to_frame_ms_p90_during_refresh"] = 1000 * statistics.quantiles(lat, n=10)[-1]
        pilot_lat = []
        for _ in range(10):
            now[0] += TICK_S
            screen.reload()
            t0 = time.perf_counter()
            await pilot.press("down")
            pilot_lat.append(time.perf_counter() - t0)
        out["pilot_press_ms_median_during_refresh"] = 1000 * statistics.median(pilot_lat)
        pilot.app.exit()

    app.run(headless=True, size=(120, 40), auto_pilot=pilot_fn)
    print(json.dumps(out))


# -- parent ------------------------------------------------------------------------------------


def _child(*args: str, timeout: float = 600) -> tuple[dict, float]:
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout,
        cwd=ROOT,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    return json.loads(line), t0


def bench_frame(runs: int) -> dict:
    from tests.tui.data import fill

    firsts, datas, cpus = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        fill(Path(tmp)).close()
        for _ in range(runs):
            marks, t0 = _child("--child", "frame", tmp)
            firsts.append(marks["ready"] - t0)
            datas.append(marks["data"] - t0)
            cpus.append(marks["cpu_s"])
    return {
        "first_frame_s_median": statistics.median(firsts),
        "first_frame_s_max": max(firsts),
        "first_data_s_median": statistics.median(datas),
        "first_frame_cpu_s_median": statistics.median(cpus),
        "load_avg_1min": __import__("os").getloadavg()[0],
        "runs": runs,
    }


def bench_rss(seconds: float) -> dict:
    out, _ = _child("--child", "rss", str(seconds), timeout=seconds + 120)
    out["demo_seconds"] = seconds
    return out


def bench_tick(rounds: int, busy: bool = False, presses: int = 20, reader: bool = True) -> dict:
    """`busy`: every GPU also runs a job (512 running attempts) and a lab electricity price is in
    force, so the cost panel measures live energy and idle power."""
    from lepton_tui.service import Service
    from tests.tui.data import FIXED_NOW, big_fleet, busy_gpus, many_jobs

    with tempfile.TemporaryDirectory() as tmp:
        svc = Service.open(tmp, user="alice", clock=lambda: FIXED_NOW)
        big_fleet(svc.ledger, 64, 8)
        many_jobs(svc.ledger, 10_000)
        running = busy_gpus(svc.ledger) if busy else 0
        svc.close()
        load_before = __import__("os").getloadavg()[0]
        args = [tmp, str(rounds), str(presses), "on" if reader else "off"]
        out, _ = _child("--child", "tick", *args)
    out["running_attempts"] = running
    out["key_presses"] = presses
    out["load_avg_1min_before"] = load_before
    out["load_avg_1min"] = __import__("os").getloadavg()[0]
    return out


def bench_views(rounds: int) -> dict:
    """The busy lab's read models without the app: each piece's thread CPU time (median) and
    SQL statements (SQLite's trace callback, every row of an executemany included)."""
    from lepton_tui import fleet_view, views
    from lepton_tui.service import Service
    from tests.tui.data import FIXED_NOW, big_fleet, busy_gpus, many_jobs

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        svc = Service.open(tmp, user="alice", clock=lambda: FIXED_NOW)
        ledger = svc.ledger
        big_fleet(ledger, 64, 8)
        many_jobs(ledger, 10_000)
        busy_gpus(ledger)
        pieces = {
            "overview": lambda: views.overview(ledger, FIXED_NOW),
            "cost_panel": lambda: views.cost_panel(ledger, FIXED_NOW),
            "fleet": lambda: fleet_view.fleet(ledger, FIXED_NOW),
            "queue_window": lambda: views.queue_window(
                ledger, FIXED_NOW, limit=60, recent_s=views.RECENT_S
            ),
        }
        for name, fn in pieces.items():
            fn()  # warm (the first cost panel also builds the daily roll-up)
            cpus = []
            for _ in range(rounds):
                c0 = time.thread_time()
                fn()
                cpus.append(time.thread_time() - c0)
            seen: list[str] = []
            ledger.conn.set_trace_callback(seen.append)
            fn()
            ledger.conn.set_trace_callback(None)
            out[f"{name}_cpu_ms_median"] = 1000 * statistics.median(cpus)
            out[f"{name}_sql_statements"] = len(seen)
        svc.close()
    return out


def bench_lab(rounds: int, watch_s: float = 20.0) -> dict:
    """The busy lab behind a real `serve --socket`: one `console_view` call of the overview (what
    a console that cannot watch reads per tick), its size, and a `watch` stream at a 2 s tick:
    pushes, the service's CPU per push (at most: its whole process CPU over the stream, beside its
    CPU over as long without one), and the console's CPU to decode a push."""
    import os
    import socket

    import psutil

    from lepton_tui.client import LabClient, watch_view
    from lepton_tui.screen_data import VIEW_TYPES, from_wire
    from lepton_tui.service import Service
    from tests.tui.data import FIXED_NOW, big_fleet, busy_gpus, many_jobs

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        state, sock = Path(tmp) / "state", str(Path(tmp) / "lab.sock")
        svc = Service.open(state, user="alice", clock=lambda: FIXED_NOW)
        big_fleet(svc.ledger, 64, 8)
        many_jobs(svc.ledger, 10_000)
        busy_gpus(svc.ledger)
        svc.ledger.execute("UPDATE hosts SET state = 'down'")  # nothing to poll: no SSH noise
        svc.close()
        env = {k: v for k, v in os.environ.items() if k not in ("LEPTON_SOCKET", "LEPTON_HOME")}
        env["PYTHONPATH"] = str(ROOT)
        proc = subprocess.Popen(
            [sys.executable, "-m", "lepton_tui", "--home", str(state), "serve", "--socket", sock,
             "--tick", "3600"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with socket.socket(socket.AF_UNIX) as probe:
                        probe.connect(sock)
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("the lab service did not start") from None
                    time.sleep(0.1)
            client = LabClient(sock)
            client.call("console_view", view="overview", args={})  # warm: the roll-up
            calls, decodes = [], []
            for _ in range(rounds):
                t0 = time.perf_counter()
                data = client.call("console_view", view="overview", args={})
                calls.append(time.perf_counter() - t0)
                c0 = time.thread_time()
                from_wire(VIEW_TYPES["overview"], data)
                decodes.append(time.thread_time() - c0)
            out["view_call_ms_median"] = 1000 * statistics.median(calls)
            out["view_bytes"] = len(json.dumps(data))
            out["decode_cpu_ms_median"] = 1000 * statistics.median(decodes)
            client.close()
            served = psutil.Process(proc.pid)

            def cpu() -> float:
                t = served.cpu_times()
                return t.user + t.system

            c0 = cpu()
            time.sleep(watch_s)
            idle = cpu() - c0
            stream = watch_view(sock, "overview", {}, 2.0)
            pushes, c0, t0 = 0, cpu(), time.monotonic()
            for _ in stream:
                pushes += 1
                if time.monotonic() - t0 >= watch_s:
                    break
            busy = cpu() - c0
            stream.close()
            out["watch_pushes"] = pushes
            out["watch_s"] = watch_s
            out["service_cpu_s_idle"] = idle
            out["service_cpu_s_watching"] = busy
            # an upper bound: the service's whole CPU while streaming, background work included
            out["service_cpu_ms_per_push_at_most"] = 1000 * busy / max(1, pushes)
        finally:
            proc.terminate()
            proc.wait(15)
    return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind = sys.argv[2]
        if kind == "frame":
            child_frame(sys.argv[3])
        elif kind == "rss":
            child_rss(float(sys.argv[3]))
        else:
            child_tick(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), *sys.argv[6:7])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["frame", "rss", "tick", "views", "lab"])
    ap.add_argument("--demo-s", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--busy", action="store_true", help="tick: every GPU runs a job, priced")
    ap.add_argument("--presses", type=int, default=20, help="tick: key presses timed, each way")
    ap.add_argument(
        "--in-process", action="store_true", help="tick: the console reads itself (no reader)"
    )
    args = ap.parse_args()
    results = {}
    if args.only in (None, "frame"):
        results["frame"] = bench_frame(args.runs)
    if args.only in (None, "tick"):
        results["tick"] = bench_tick(args.rounds, args.busy, args.presses, not args.in_process)
    if args.only in (None, "rss"):
        results["rss"] = bench_rss(args.demo_s)
    if args.only == "views":  # the busy lab's read models alone (no app)
        results["views"] = bench_views(args.rounds)
    if args.only == "lab":  # the busy lab through a real lab service
        results["lab"] = bench_lab(args.rounds)
    print(json.dumps(results, indent=2, default=lambda v: round(v, 4)))


if __name__ == "__main__":
    main()
