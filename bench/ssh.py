"""SSH benchmark against the loopback sshd test bed (127.0.0.2, .3, .4).

    python bench/ssh.py [--repeat N] [--json] [--lab-users N]     # basics, host-cpu, lab users
    python bench/ssh.py --part host-cpu [--polls 100]
    python bench/ssh.py --part dispatcher --hosts 60 --tick 2 --duration 60 [--one-shot]
    python bench/ssh.py --part sim --hosts 200 --tick 5 --duration 60 [--one-shot]

basics: exec round trips per tick per host (must be 1), probe latency for 1 host and for 3
hosts in parallel, launches per second (one per round trip, and batched), and the cost of one
`exec_command` with and without TCP_NODELAY.
host-cpu: the host's CPU per poll (every process of the sshd instances, the agent included),
one-shot agent (a fresh python3 per poll) against the persistent agent.
dispatcher: the real dispatcher ticking over `--hosts` SSH connections (spread over the three
loopback sshd instances, each its own host in the ledger with its own root, one `sleep` job
running on each): its own CPU (all threads, between ticks too) over `--duration` seconds, the
hosts' CPU, threads alive.
sim: the same over simulated hosts that speak the agent's protocol in-process (persistent
stream or one-shot exec), their own CPU subtracted.
Starts and stops its own sshd instances.

Lab mode (`--lab-users N`, default 4; run as root, 0 skips it): the poll of one host when N users
have live attempts there, each through their own login with the lab key (`dispatch.runas.poll`,
one round trip per user, in parallel), against one user; and 3 hosts x N users. Creates the users
`lepton-bench-1..N` (homes, the lab key in their authorized_keys) and removes them after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inventory import agent_session  # noqa: E402
from inventory import supervisor as sv  # noqa: E402
from inventory.fanout import Ok  # noqa: E402
from inventory.hostspec import HostSpec  # noqa: E402
from inventory.probe import probe, probe_many  # noqa: E402
from inventory.remote import agent as host_agent  # noqa: E402
from inventory.transport import CommandResult, SSHTransport  # noqa: E402
from tests.sshbed import SSHBed, SSHHost  # noqa: E402


def connect(host: SSHHost, **kwargs: object) -> SSHTransport:
    return SSHTransport(host.spec(), Path(host.known_hosts_path), ssh_config=None, **kwargs)  # type: ignore[arg-type]


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm: connection open, caches filled
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "median_ms": round(statistics.median(values) * 1000, 1),
        "p90_ms": round(values[int(0.9 * (len(values) - 1))] * 1000, 1),
    }


def bench(bed: SSHBed, repeat: int) -> dict[str, object]:
    hosts = bed(3)
    transports = {h.name: connect(h) for h in hosts}
    results: dict[str, object] = {}

    # round trips per tick per host
    ticks = 5
    before = {n: t.round_trips for n, t in transports.items()}
    for _ in range(ticks):
        polled = probe_many({h.name: (transports[h.name], h.spec(), []) for h in hosts}, timeout=30)
        assert all(isinstance(r, Ok) for r in polled.values()), polled
    results["round_trips_per_tick_per_host"] = {
        n: (t.round_trips - before[n]) / ticks for n, t in transports.items()
    }

    # probe latency: 1 host, then 3 in parallel
    h2 = hosts[0]
    one = timed(lambda: probe(transports[h2.name], h2.spec(), tokens=[]), repeat)
    three = timed(
        lambda: probe_many({h.name: (transports[h.name], h.spec(), []) for h in hosts}, timeout=30),
        repeat,
    )
    results["probe_1_host"] = ms(one)
    results["probe_3_hosts_parallel"] = ms(three)
    results["probe_ratio_3_to_1"] = round(statistics.median(three) / statistics.median(one), 2)

    # launches per second
    t2 = transports[h2.name]
    n_single = max(5, repeat // 2)
    t0 = time.perf_counter()
    for i in range(n_single):
        sv.launch(t2, h2.spec(), sv.LaunchSpec(900_000 + i, uuid.uuid4().hex[:16], "true"))
    results["launches_per_s_one_per_round_trip"] = round(n_single / (time.perf_counter() - t0), 1)
    n_batch = 50
    batch = [sv.LaunchSpec(910_000 + i, uuid.uuid4().hex[:16], "true") for i in range(n_batch)]
    t0 = time.perf_counter()
    sv.launch_batch(t2, h2.spec(), batch, timeout=60)
    results["launches_per_s_batched_50"] = round(n_batch / (time.perf_counter() - t0), 1)
    many = {
        h.name: (
            transports[h.name],
            h.spec(),
            [sv.LaunchSpec(920_000 + i, uuid.uuid4().hex[:16], "true") for i in range(20)],
        )
        for h in hosts
    }
    t0 = time.perf_counter()
    out = sv.launch_many(many, timeout=60)
    assert all(isinstance(r, Ok) for r in out.values()), out
    results["launches_per_s_3_hosts_x_20"] = round(60 / (time.perf_counter() - t0), 1)

    # exec_command cost, TCP_NODELAY on and off
    for label, nodelay in (("on", True), ("off", False)):
        t = connect(h2, tcp_nodelay=nodelay)
        results[f"exec_true_nodelay_{label}"] = ms(timed(lambda t=t: t.run(["true"]), repeat))
        t.connect()
        raw = t._client.get_transport()  # type: ignore[union-attr]
        # the SSH protocol alone: open and close a channel, no shell started on the host
        results[f"channel_open_nodelay_{label}"] = ms(
            timed(lambda raw=raw: raw.open_session(timeout=10).close(), repeat * 5)
        )
        results[f"probe_nodelay_{label}"] = ms(
            timed(lambda t=t: probe(t, h2.spec(), tokens=[]), repeat)
        )
        t.close()

    # what the login shell costs on this machine (sshd runs `bash -c`, which reads ~/.bashrc)
    shell = timed(
        lambda: subprocess.run(["bash", "-ic", "true"], capture_output=True, check=False), 5
    )
    results["local_bash_ic_true"] = ms(shell)
    for t in transports.values():
        t.close()
    return results


# -- host CPU per poll ------------------------------------------------------------------------


def sshd_cpu_s(hosts: list[SSHHost]) -> float:
    """CPU seconds of every process of the test bed's sshd instances so far, the ended ones
    included (their parents' children times): sshd, its sessions, the agents they ran."""
    total = 0.0
    for h in hosts:
        if h.pid is None:
            continue
        root = psutil.Process(h.pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def bench_host_cpu(bed: SSHBed, polls: int) -> dict[str, object]:
    """Host CPU per poll, one-shot against persistent, on one sshd host."""
    h = bed(1)[0]
    out: dict[str, object] = {"polls": polls}
    for label, persistent in (("one_shot", False), ("persistent", True)):
        t = connect(h, persistent_agent=persistent)
        probe(t, h.spec(), tokens=[])  # connected, agent started (persistent)
        agent_pid = agent_session.session_stats(t)["pid"]
        agent = psutil.Process(agent_pid) if agent_pid else None
        agent0 = sum(agent.cpu_times()[:2]) if agent else 0.0
        cpu0, wall0 = sshd_cpu_s([h]), time.perf_counter()
        for _ in range(polls):
            probe(t, h.spec(), tokens=[])
            time.sleep(0.011)  # a jiffy apart, so the agent's CPU window never has to wait
        host_ms = (sshd_cpu_s([h]) - cpu0) * 1000 / polls
        if agent is not None:  # the agent's own share (the rest is sshd relaying)
            out[f"{label}_agent_process_cpu_ms_per_poll"] = round(
                (sum(agent.cpu_times()[:2]) - agent0) * 1000 / polls, 2
            )
        out[f"{label}_host_cpu_ms_per_poll"] = round(host_ms, 2)
        out[f"{label}_wall_ms_per_poll"] = round(
            ((time.perf_counter() - wall0) / polls - 0.011) * 1000, 2
        )
        out[f"{label}_agent_starts"] = agent_session.session_stats(t)["starts"]
        out[f"{label}_execs"] = t.execs
        t.close()
    return out


# -- the dispatcher over many hosts ----------------------------------------------------------


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _run_dispatcher(
    svc: Any,
    pool: Any,
    n_hosts: int,
    tick_s: float,
    duration_s: float,
    sim_cpu: Callable[[], float],
) -> dict[str, Any]:
    """Warm up until every host runs its job, then tick every `tick_s` for `duration_s`."""
    from lepton_tui.dispatch.loop import Dispatcher

    d = Dispatcher(svc, pool=pool)
    assert d.acquire()
    try:
        for _ in range(30):  # connect, start agents, launch a job per host
            d.tick()
            if svc.job_counts().get("running", 0) >= n_hosts:
                break
            time.sleep(tick_s / 4)
        running = svc.job_counts().get("running", 0)
        threads0 = threading.active_count()
        cpu0, sim0, wall0 = _cpu_s(), sim_cpu(), time.monotonic()
        ticks, tick_cpu, threads = 0, [], set()
        while time.monotonic() - wall0 < duration_s:
            begun, c0, s0 = time.monotonic(), _cpu_s(), sim_cpu()
            d.tick()
            tick_cpu.append((_cpu_s() - c0) - (sim_cpu() - s0))
            ticks += 1
            time.sleep(max(0.0, tick_s - (time.monotonic() - begun)))
            threads.add(threading.active_count())
        wall = time.monotonic() - wall0
        cpu = (_cpu_s() - cpu0) - (sim_cpu() - sim0)
        starts = sum(agent_session.session_stats(t)["starts"] for _, _, t in pool._entries.values())
        pools_made, pool_size = pool.threads.pools_made, pool.threads.size
    finally:
        d.close()
    return {
        "hosts": n_hosts,
        "jobs_running": running,
        "tick_s": tick_s,
        "ticks": ticks,
        "wall_s": round(wall, 1),
        "dispatcher_cpu_percent_of_a_core": round(100 * cpu / wall, 2),
        "cpu_ms_per_tick_median": round(1000 * statistics.median(tick_cpu), 1),
        "cpu_ms_between_ticks_per_s": round(1000 * (cpu - sum(tick_cpu)) / wall, 2),
        "threads_after_warmup": threads0,
        "threads_between_ticks": sorted(threads),
        "agent_starts": starts,
        "fanout_pools_made": pools_made,
        "fanout_pool_size": pool_size,
    }


def _kill_jobs(roots: list[str]) -> None:
    for root in roots:
        for token, st in host_agent.statuses(root, None).items():
            if st["state"] in ("running", "starting"):
                host_agent.op_kill_stale({"root": root, "tokens": [token]})


def bench_dispatcher(
    bed: SSHBed,
    n_hosts: int,
    tick_s: float,
    duration_s: float,
    persistent: bool,
    idle_wake_s: float | None = None,
) -> dict[str, Any]:
    """The dispatcher over `n_hosts` SSH connections to the three loopback sshd hosts."""
    from lepton_tui import paths
    from lepton_tui.dispatch.hostpool import HostPool
    from lepton_tui.service import Service
    from lepton_tui.validate import validate_job

    hosts = bed(3)
    base = Path(tempfile.mkdtemp(prefix="lepton-bench-fleet-"))
    roots = [str(hosts[i % 3].dir / f"fleet{i:03d}") for i in range(n_hosts)]
    try:
        svc = Service.open(base / "home")
        shutil.copy(bed.known_hosts, svc.home / paths.KNOWN_HOSTS_FILE)
        for i in range(n_hosts):
            h = hosts[i % 3]
            svc.add_host(f"n{i:03d}", address=h.address, port=h.port, user=h.user,
                         key_path=h.key_path, root_dir=roots[i],
                         capacity={"cpus": 1, "mem_mb": 1 << 16})  # fmt: skip
        svc.submit_many([validate_job(command="sleep 3600", mem="64M") for _ in range(n_hosts)])
        pool = HostPool(
            svc.home / paths.KNOWN_HOSTS_FILE,
            ssh_config=None,
            persistent_agent=persistent,
            idle_wake_s=idle_wake_s,
        )
        host0 = sshd_cpu_s(hosts)
        out = _run_dispatcher(svc, pool, n_hosts, tick_s, duration_s, lambda: 0.0)
        # the hosts' CPU over warm-up and run, per poll: the host side of the same ticks
        out["host_cpu_ms_per_poll_incl_warmup"] = round(
            (sshd_cpu_s(hosts) - host0) * 1000 / max(1, out["ticks"] * n_hosts), 2
        )
        out["persistent_agent"] = persistent
        out["idle_wake_s"] = idle_wake_s or "keepalive"
        pool.close()
        svc.close()
        return out
    finally:
        _kill_jobs(roots)
        shutil.rmtree(base, ignore_errors=True)


# -- simulated hosts -------------------------------------------------------------------------

_SERVE = re.compile(rb"_lepton_serve\('([0-9a-f]+)'\)")
_MAIN = re.compile(rb"_lepton_main\('([A-Za-z0-9+/=]+)'\)")


class SimHost:
    """A host answering the agent's protocol in-process (persistent stream, or one-shot run):
    attempts are timers, never processes. Its CPU time is counted to be subtracted."""

    cpu_s = 0.0
    _lock = threading.Lock()

    def __init__(self, spec: HostSpec, persistent: bool = True) -> None:
        self.spec = spec
        self.name = spec.name
        self.persistent_agent = persistent
        self.round_trips = 0
        self.attempts: dict[str, float] = {}

    def note_round_trip(self) -> None:
        self.round_trips += 1

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        t0 = time.thread_time()
        op = req["op"]
        if op == "probe":
            result: dict[str, Any] = {
                "host": req["host"], "taken_at": time.time(), "cpus": 64, "cpu_percent": 10.0,
                "load1": 1.0, "mem_total_mb": 512000, "mem_used_mb": 1000,
                "disk_free_mb": 1 << 20, "gpus": [], "gpu_error": None, "boot_id": "sim",
                "attempts": {t: self._status(t) for t in req.get("tokens") or []},
            }  # fmt: skip
        elif op == "launch":
            out = []
            for item in req["launches"]:
                again = item["token"] in self.attempts
                self.attempts.setdefault(item["token"], time.time())
                out.append(
                    {"token": item["token"], "remote_dir": "/sim", "already_launched": again}
                )
            result = {"launches": out}
        elif op == "status":
            result = {"attempts": {t: self._status(t) for t in req.get("tokens") or []}}
        else:
            result = {"results": {t: {"found": True, "killed": 0} for t in req.get("tokens", [])}}
        with SimHost._lock:
            SimHost.cpu_s += time.thread_time() - t0
        return {"ok": True, "result": result}

    def _status(self, token: str) -> dict[str, Any]:
        if token not in self.attempts:
            return {"token": token, "state": "missing"}
        return {"token": token, "state": "running", "started_at": self.attempts[token], "pid": 1}

    def run(
        self, argv: list[str], stdin: bytes | None = None, timeout: float = 30
    ) -> CommandResult:
        import base64

        self.round_trips += 1
        match = _MAIN.search(stdin or b"")
        assert match is not None
        reply = self.answer(json.loads(base64.b64decode(match.group(1))))
        return CommandResult(
            0, b"\n" + agent_session.MARKER + json.dumps(reply).encode() + b"\n", b""
        )

    def open_stream(self, argv: list[str], timeout: float = 30) -> SimStream:
        return SimStream(self)

    def close(self) -> None:
        """Nothing to close."""


class SimStream:
    """The persistent agent's stream to a SimHost: each request line is answered at once."""

    def __init__(self, host: SimHost) -> None:
        self.host = host
        self.lines: deque[bytes] = deque()
        self.alive = True
        self.connection_alive = True
        self.loaded = False
        self.stderr_tail = b""

    def send(self, data: bytes, deadline: float) -> None:
        if not self.loaded:
            match = _SERVE.search(data)
            assert match is not None
            hello = {"hello": {"pid": 1, "version": match.group(1).decode()}}
            self.lines.append(agent_session.MARKER + json.dumps(hello).encode())
            self.loaded = True
            return
        for line in data.splitlines():
            req = json.loads(line)
            reply = {**self.host.answer(req), "id": req["id"]}
            self.lines.append(agent_session.MARKER + json.dumps(reply).encode())

    def read_line(self, deadline: float) -> bytes:
        if not self.lines:
            raise EOFError("no reply")
        return self.lines.popleft()

    def close(self) -> None:
        self.alive = False


def bench_sim(n_hosts: int, tick_s: float, duration_s: float, persistent: bool) -> dict[str, Any]:
    """The dispatcher over `n_hosts` simulated hosts, one long job running on each."""
    from lepton_tui.dispatch.hostpool import HostPool
    from lepton_tui.service import Service
    from lepton_tui.validate import validate_job

    base = Path(tempfile.mkdtemp(prefix="lepton-bench-sim-"))
    try:
        svc = Service.open(base / "home")
        for i in range(n_hosts):
            svc.add_host(f"sim{i:03d}", address=f"10.0.{i // 250}.{i % 250 + 1}",
                         capacity={"cpus": 1, "mem_mb": 65536})  # fmt: skip
        svc.submit_many([validate_job(command="sleep 3600", mem="64M") for _ in range(n_hosts)])
        pool = HostPool(base / "kh", factory=lambda spec: SimHost(spec, persistent))
        out = _run_dispatcher(svc, pool, n_hosts, tick_s, duration_s, lambda: SimHost.cpu_s)
        out["persistent_agent"] = persistent
        pool.close()
        svc.close()
        return out
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _bench_users(n: int) -> list[str]:
    """`lepton-bench-1..n` as real accounts with homes sshd lets log in (as root)."""
    import pwd

    users = [f"lepton-bench-{i}" for i in range(1, n + 1)]
    for user in users:
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-p", "*", user], check=True)
    return users


def _drop_users(users: list[str]) -> None:
    for user in users:
        subprocess.run(["userdel", "-r", user], capture_output=True, check=False)


def bench_lab_users(base: Path, repeat: int, n_users: int) -> dict[str, object]:
    """Per (host, user) polls in lab mode: latency and round trips for 1 and N users a host."""
    import os
    import pwd

    from lepton_tui.dispatch import runas
    from lepton_tui.dispatch.hostpool import HostPool
    from lepton_tui.labkey import authorized_keys_line, ensure_lab_key
    from tests.lab.userbed import UserSSHBed

    if os.geteuid() != 0:
        return {"lab_users": "skipped: run as root (it creates Unix users)"}
    users = _bench_users(n_users)
    bed = UserSSHBed(base / "labbed")
    try:
        hosts = bed(3)
        state = base / "state"
        state.mkdir(mode=0o700)
        key, _ = ensure_lab_key(state)
        line = authorized_keys_line(state)
        for user in users:
            info = pwd.getpwnam(user)
            ssh = Path(info.pw_dir) / ".ssh"
            ssh.mkdir(mode=0o700, exist_ok=True)
            (ssh / "authorized_keys").write_text(line + "\n")
            for path in (ssh, ssh / "authorized_keys"):
                os.chown(path, info.pw_uid, info.pw_gid)
        pool = HostPool(bed.known_hosts, lab_key=key, ssh_config=None)
        rows = [
            {"name": h.name, "address": h.address, "port": h.port, "user": h.user,
             "key_path": h.key_path, "transport": "ssh", "root_dir": "~/.lepton"}
            for h in hosts
        ]  # fmt: skip
        token = {u: uuid.uuid4().hex[:12] for u in users}

        def poll(row: dict[str, object], who: list[str]) -> None:
            runas.poll(pool, row, {u: [token[u]] for u in who}, timeout=30)

        out: dict[str, object] = {}
        for count in sorted({1, n_users}):
            who = users[:count]
            before = pool.round_trips
            poll(rows[0], who)
            out[f"round_trips_1_host_{count}_users"] = pool.round_trips - before
            out[f"poll_1_host_{count}_users"] = ms(timed(lambda w=who: poll(rows[0], w), repeat))

        def all_parallel() -> None:
            from inventory.fanout import fan_out

            fan_out({str(r["name"]): lambda r=r: poll(r, users) for r in rows}, timeout=60)

        before = pool.round_trips
        all_parallel()
        out[f"round_trips_3_hosts_{n_users}_users"] = pool.round_trips - before
        out[f"poll_3_hosts_{n_users}_users_parallel"] = ms(timed(all_parallel, repeat))
        pool.close()
        return out
    finally:
        bed.close()
        _drop_users(users)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part", action="append", choices=["basics", "host-cpu", "dispatcher", "sim"]
    )
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--polls", type=int, default=100, help="host-cpu: polls per mode")
    parser.add_argument("--hosts", type=int, default=60, help="dispatcher/sim: hosts")
    parser.add_argument("--tick", type=float, default=2.0, help="dispatcher/sim: tick, seconds")
    parser.add_argument("--duration", type=float, default=60.0, help="dispatcher/sim: seconds")
    parser.add_argument("--one-shot", action="store_true", help="no persistent agent (before)")
    parser.add_argument(
        "--paramiko-wakeups", action="store_true", help="paramiko's 0.1 s idle wakeups (before)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--lab-users", type=int, default=4, help="lab mode: users a host (0: skip)")
    args = parser.parse_args()
    parts = args.part or ["basics", "host-cpu"]
    results: dict[str, object] = {"cpus": os.cpu_count(), "load1_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="lepton-bench-ssh-") as tmp:
        bed = SSHBed(Path(tmp))
        try:
            if "basics" in parts:
                results.update(bench(bed, args.repeat))
            if "host-cpu" in parts:
                results["host_cpu"] = bench_host_cpu(bed, args.polls)
            if "dispatcher" in parts:
                results["dispatcher"] = bench_dispatcher(
                    bed, args.hosts, args.tick, args.duration, not args.one_shot,
                    0.1 if args.paramiko_wakeups else None,
                )  # fmt: skip
        finally:
            bed.close()
        if "basics" in parts and args.lab_users > 0:
            results.update(bench_lab_users(Path(tmp), args.repeat, args.lab_users))
    if "sim" in parts:
        results["sim"] = bench_sim(args.hosts, args.tick, args.duration, not args.one_shot)
    results["load1_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for key, value in results.items():
        print(f"{key:<38} {value}")


if __name__ == "__main__":
    main()
