"""SSH benchmark against the loopback sshd test bed (127.0.0.2, .3, .4).

    python bench/ssh.py [--repeat N] [--json] [--lab-users N]

Measures: exec round trips per tick per host (must be 1), probe latency for 1 host and for 3
hosts in parallel, launches per second (one per round trip, and batched), and the cost of one
`exec_command` with and without TCP_NODELAY. Starts and stops its own sshd instances.

Lab mode (`--lab-users N`, default 4; run as root, 0 skips it): the poll of one host when N users
have live attempts there, each through their own login with the lab key (`dispatch.runas.poll`,
one round trip per user, in parallel), against one user; and 3 hosts x N users. Creates the users
`lepton-bench-1..N` (homes, the lab key in their authorized_keys) and removes them after.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inventory import supervisor as sv  # noqa: E402
from inventory.fanout import Ok  # noqa: E402
from inventory.probe import probe, probe_many  # noqa: E402
from inventory.transport import SSHTransport  # noqa: E402
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
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--lab-users", type=int, default=4, help="lab mode: users a host (0: skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lepton-bench-ssh-") as tmp:
        bed = SSHBed(Path(tmp))
        try:
            results = bench(bed, args.repeat)
        finally:
            bed.close()
        if args.lab_users > 0:
            results.update(bench_lab_users(Path(tmp), args.repeat, args.lab_users))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for key, value in results.items():
        print(f"{key:<38} {value}")


if __name__ == "__main__":
    main()
