"""Dispatcher benchmark: real jobs through loopback sshd hosts, and the loop's cost at 64 hosts.

Part 1 (`--jobs`, default 500): short jobs (`sleep 0.1`) through the three loopback sshd hosts of
the test bed: jobs per minute, ticks per second, SSH round trips per tick (all ticks, and ticks
that launch nothing), the dispatcher's own CPU time per tick.

Part 2 (`--sim-hosts`, default 64): the same dispatcher over simulated hosts: an in-process
transport answers the host agent's protocol (probe, launch, status) from a table of timers, so
what is measured is the dispatcher's own work per tick (ledger, view, policy, fan-out), with the
simulator's CPU time subtracted.

    python bench/dispatch.py                 # both parts
    python bench/dispatch.py --jobs 0        # only the simulated hosts
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inventory.hostspec import HostSpec  # noqa: E402
from inventory.transport import CommandResult  # noqa: E402
from lepton_tui import paths  # noqa: E402
from lepton_tui.dispatch.hostpool import HostPool  # noqa: E402
from lepton_tui.dispatch.loop import Dispatcher  # noqa: E402
from lepton_tui.service import Service  # noqa: E402
from lepton_tui.validate import validate_job  # noqa: E402

MARKER = b"@@LEPTON-REPLY@@"
_REQUEST_RE = re.compile(rb"_lepton_main\('([A-Za-z0-9+/=]+)'\)")
TERMINAL = {"succeeded", "failed", "cancelled", "timeout"}


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- simulated hosts -----------------------------------------------------------------------------


class SimTransport:
    """A host that answers the agent protocol in-process: attempts are timers, never processes."""

    cpu_s = 0.0  # thread CPU time spent inside all SimTransports (subtracted from the dispatcher)
    _lock = threading.Lock()

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self.round_trips = 0
        self.attempts: dict[str, tuple[float, float]] = {}  # token -> (started, duration)

    def run(
        self, argv: list[str], stdin: bytes | None = None, timeout: float = 30
    ) -> CommandResult:
        """Decode the agent request and reply like the agent would."""
        t0 = time.thread_time()
        self.round_trips += 1
        match = _REQUEST_RE.search(stdin or b"")
        if match is None:
            return CommandResult(2, b"", b"not an agent request")
        req = json.loads(base64.b64decode(match.group(1)))
        result = getattr(self, "op_" + req["op"])(req)
        out = b"\n" + MARKER + json.dumps({"ok": True, "result": result}).encode() + b"\n"
        with SimTransport._lock:
            SimTransport.cpu_s += time.thread_time() - t0
        return CommandResult(0, out, b"")

    def close(self) -> None:
        """Nothing to close."""

    def _status(self, token: str) -> dict[str, Any]:
        st: dict[str, Any] = {"token": token, "state": "missing"}
        if token in self.attempts:
            started, duration = self.attempts[token]
            now = time.time()
            if now < started + duration:
                st.update(state="running", started_at=started, pid=1)
            else:
                st.update(
                    state="done", exit_code=0, started_at=started, ended_at=started + duration
                )
        return st

    def op_probe(self, req: dict[str, Any]) -> dict[str, Any]:
        n = req.get("gpus_override") or 0
        gpus = [{"index": i, "uuid": f"sim-{i}", "name": "sim GPU", "util_percent": 50.0,
                 "mem_used_mb": 1000, "mem_total_mb": 80000, "temperature_c": 50,
                 "power_w": 300.0, "processes": [], "fake": True} for i in range(n)]  # fmt: skip
        return {"host": req["host"], "taken_at": time.time(), "cpus": 64, "cpu_percent": 10.0,
                "load1": 1.0, "mem_total_mb": 512000, "mem_used_mb": 1000, "disk_free_mb": 1 << 20,
                "gpus": gpus, "gpu_error": None, "boot_id": "sim",
                "attempts": {t: self._status(t) for t in req.get("tokens") or []}}  # fmt: skip

    def op_launch(self, req: dict[str, Any]) -> dict[str, Any]:
        out = []
        for item in req["launches"]:
            token = item["token"]
            again = token in self.attempts
            if not again:
                m = re.search(r"sleep ([0-9.]+)", item["command"])
                self.attempts[token] = (time.time(), float(m.group(1)) if m else 0.0)
            out.append({"token": token, "remote_dir": f"/sim/{token}", "already_launched": again})
        return {"launches": out}

    def op_status(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"attempts": {t: self._status(t) for t in req.get("tokens") or []}}

    def op_cancel(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"found": req["token"] in self.attempts}

    def op_kill_stale(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"found": True, "killed": 0}


# -- the two parts ----------------------------------------------------------------------------------


def _drive(d: Dispatcher, svc: Service, tick_s: float, timeout: float) -> dict[str, Any]:
    """Tick (every `tick_s`) until every job ended; per-tick CPU, round trips and wall time."""
    ticks: list[dict[str, float]] = []
    t0 = time.monotonic()
    while True:
        counts = svc.job_counts()
        if set(counts) <= TERMINAL:
            break
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"not done after {timeout}s: {counts}")
        begun = time.monotonic()
        cpu0, sim0, launches0 = _cpu_s(), SimTransport.cpu_s, d.stats.launches
        result = d.tick()
        ticks.append({
            "wall_s": time.monotonic() - begun,
            "cpu_s": (_cpu_s() - cpu0) - (SimTransport.cpu_s - sim0),
            "round_trips": result.round_trips, "polled": result.polled,
            "launched": d.stats.launches - launches0,
        })  # fmt: skip
        time.sleep(max(0.0, tick_s - (time.monotonic() - begun)))
    wall = time.monotonic() - t0
    steady = [t for t in ticks if not t["launched"]]
    return {
        "wall_s": round(wall, 2),
        "ticks": len(ticks),
        "ticks_per_s": round(len(ticks) / wall, 2),
        "round_trips_per_tick": round(statistics.mean(t["round_trips"] for t in ticks), 2),
        "round_trips_per_host_idle_tick": round(
            statistics.mean(t["round_trips"] / t["polled"] for t in steady), 2
        ) if steady else None,
        "cpu_ms_per_tick_mean": round(1000 * statistics.mean(t["cpu_s"] for t in ticks), 1),
        "cpu_ms_per_tick_median": round(1000 * statistics.median(t["cpu_s"] for t in ticks), 1),
        "wall_ms_per_tick_median": round(1000 * statistics.median(t["wall_s"] for t in ticks), 1),
        "outcomes": svc.job_counts(),
        # wall time per phase per tick; "place" includes "launch"
        "phase_ms_per_tick": {k: round(1000 * v / len(ticks), 1)
                              for k, v in sorted(d.stats.phase_s.items())},
    }  # fmt: skip


def bench_sshd(jobs: int, tick_s: float, cpus: int, policy: str) -> dict[str, Any]:
    """`jobs` x `sleep 0.1` through three loopback sshd hosts."""
    from tests.sshbed import SSHBed

    base = Path(tempfile.mkdtemp(prefix="lepton-bench-"))
    bed = SSHBed(base / "bed")
    try:
        hosts = bed(3)
        svc = Service.open(base / "home")
        svc.set_setting("policy", policy)
        shutil.copy(bed.known_hosts, svc.home / paths.KNOWN_HOSTS_FILE)
        for h in hosts:
            svc.add_host(h.name, address=h.address, port=h.port, user=h.user,
                         key_path=h.key_path, root_dir=h.root_dir,
                         capacity={"cpus": cpus, "mem_mb": 1 << 20})  # fmt: skip
        svc.submit_many([validate_job(command="sleep 0.1", mem="64M") for _ in range(jobs)])
        d = Dispatcher(svc)
        assert d.acquire()
        try:
            out = _drive(d, svc, tick_s, timeout=1800)
        finally:
            d.close()
        out["jobs_per_min"] = round(jobs / out["wall_s"] * 60, 1)
        out.update(hosts=3, jobs=jobs, slots_per_host=cpus, tick_s=tick_s, policy=policy)
        svc.close()
        return out
    finally:
        bed.close()
        shutil.rmtree(base, ignore_errors=True)


def bench_sim(n_hosts: int, jobs: int, tick_s: float, policy: str) -> dict[str, Any]:
    """`jobs` jobs over `n_hosts` simulated hosts (8 CPUs, 4 GPUs each)."""
    base = Path(tempfile.mkdtemp(prefix="lepton-bench-sim-"))
    try:
        svc = Service.open(base / "home")
        svc.set_setting("policy", policy)
        for i in range(n_hosts):
            svc.add_host(f"sim{i:03d}", address=f"10.0.{i // 250}.{i % 250 + 1}",
                         gpus_override=4, capacity={"cpus": 8, "mem_mb": 65536})  # fmt: skip
        specs = [
            validate_job(command=f"sleep {1 + (k % 5)}", cpus=1 + k % 4, mem="4G", gpus=k % 3 // 2)
            for k in range(jobs)
        ]
        svc.submit_many(specs)
        d = Dispatcher(svc, pool=HostPool(base / "kh", factory=SimTransport))
        assert d.acquire()
        try:
            out = _drive(d, svc, tick_s, timeout=1800)
        finally:
            d.close()
        out["jobs_per_min"] = round(jobs / out["wall_s"] * 60, 1)
        out.update(hosts=n_hosts, jobs=jobs, tick_s=tick_s, policy=policy)
        svc.close()
        return out
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=500, help="jobs through the sshd hosts (0: skip)")
    ap.add_argument("--slots", type=int, default=8, help="CPU slots per sshd host")
    ap.add_argument("--tick", type=float, default=0.2, help="tick period, seconds")
    ap.add_argument("--sim-hosts", type=int, default=64, help="simulated hosts (0: skip)")
    ap.add_argument("--sim-jobs", type=int, default=2000, help="jobs over the simulated hosts")
    ap.add_argument("--policy", default="backfill", help="scheduler policy (the `policy` setting)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load1_before": os.getloadavg()[0]}
    if args.jobs:
        results["sshd"] = bench_sshd(args.jobs, args.tick, args.slots, args.policy)
    if args.sim_hosts:
        results["sim"] = bench_sim(args.sim_hosts, args.sim_jobs, args.tick, args.policy)
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return
    print(f"machine: {results['cpus']} CPUs, load {results['load1_before']:.1f} at start")
    for key, title in (("sshd", "loopback sshd hosts"), ("sim", "simulated hosts")):
        if key in results:
            r = results[key]
            print(f"{title}: {r['hosts']} hosts, {r['jobs']} jobs in {r['wall_s']} s")
            for k in sorted(r):
                if k not in ("hosts", "jobs", "wall_s"):
                    print(f"  {k:32} {r[k]}")


if __name__ == "__main__":
    main()
