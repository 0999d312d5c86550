"""Slurm benchmark: the dispatcher's tick with 1,000 of lepton's jobs in a real Slurm cluster.

    python bench/slurm.py [--jobs 1000] [--ticks 10] [--accounting] [--ssh] [--json]

Starts the one-node test bed (tests/slurmbed.py: munged, slurmctld, slurmd on localhost), adds
it as a Slurm host of a fresh ledger, queues `--jobs` jobs (a thousandth of a CPU each for
lepton's pool, so all of them go to Slurm; Slurm gives each a whole CPU, so most wait in its
queue) and ticks until every one is submitted. Then it measures `--ticks` ticks with all of them
in Slurm: wall time, the poll phase, Slurm commands and round trips per tick, and the one
squeue (with `--accounting`: slurmdbd on MariaDB, and the tick's one sacct) on its own. With
`--ssh` the Slurm commands run on a "submit node" reached over a real sshd (tests/sshbed.py,
127.0.0.2) instead of on the login node. Stops the beds at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inventory import slurm  # noqa: E402
from lepton_tui.dispatch.loop import Dispatcher  # noqa: E402
from lepton_tui.dispatch.slurm_admin import onboard_slurm  # noqa: E402
from lepton_tui.service import Service  # noqa: E402
from lepton_tui.validate import JobSpec  # noqa: E402
from tests.slurmbed import PARTITION, SlurmBed  # noqa: E402


def median_ms(values: list[float]) -> float:
    """The median in milliseconds, one decimal."""
    return round(statistics.median(values) * 1000, 1)


def bench(
    base: Path, jobs: int, ticks: int, accounting: bool = False, ssh: bool = False
) -> dict[str, object]:
    """Start a bed under `base`, put `jobs` jobs in Slurm, time `ticks` ticks; the figures."""
    bed = SlurmBed(base / "bed", accounting=accounting)
    t0 = time.perf_counter()
    bed.start()
    out: dict[str, object] = {"bed_start_s": round(time.perf_counter() - t0, 2)}
    out["slurm"] = bed.client("sbatch", "--version").stdout.strip()
    try:
        home = base / "home"
        home.mkdir()
        svc = Service.open(home)
        svc.ledger.set_setting("policy", "fifo")
        conn: dict[str, object] = {}
        if ssh:
            from lepton_tui import paths
            from tests.sshbed import SSHBed

            sshbed = SSHBed(base / "ssh")
            (submit_node,) = sshbed(1)
            shutil.copy(submit_node.known_hosts_path, home / paths.KNOWN_HOSTS_FILE)
            conn = {"address": submit_node.address, "port": submit_node.port,
                    "user": submit_node.user, "key_path": submit_node.key_path}  # fmt: skip
        out["via"] = "ssh" if ssh else "login node"
        host = onboard_slurm(
            svc, "cluster", partition=PARTITION, slurm_conf=str(bed.conf),
            root_dir=str(base / "lepton"), **conn,  # type: ignore[arg-type]
        ).host  # fmt: skip
        svc.submit_many([JobSpec(command="sleep 3600", cpus=0.001, mem_mb=8) for _ in range(jobs)])
        d = Dispatcher(svc)
        t0 = time.perf_counter()
        submit_ticks = 0
        while True:
            d.tick()
            submit_ticks += 1
            left = svc.ledger.query_one(
                "SELECT COUNT(*) AS n FROM attempts WHERE slurm_job_id IS NULL"
            )
            queued = svc.job_counts().get("queued", 0)
            if not queued and left and left["n"] == 0:
                break
        out["submit_all_s"] = round(time.perf_counter() - t0, 1)
        out["submit_ticks"] = submit_ticks
        sh = d.slurm.get(host)
        walls, polls, squeues, saccts, trips = [], [], [], [], []
        for _ in range(ticks):
            before_poll = d.stats.phase_s.get("poll", 0.0)
            sq, sa, rt = sh.commands["squeue"], sh.commands["sacct"], d.pool.round_trips
            t0 = time.perf_counter()
            d.tick()
            walls.append(time.perf_counter() - t0)
            polls.append(d.stats.phase_s["poll"] - before_poll)
            squeues.append(sh.commands["squeue"] - sq)
            saccts.append(sh.commands["sacct"] - sa)
            trips.append(d.pool.round_trips - rt)
        in_slurm = sh.poll({}).jobs
        states: dict[str, int] = {}
        for j in in_slurm.values():
            states[j.state] = states.get(j.state, 0) + 1
        alone, sinfo, noop, adapter, sacct = [], [], [], [], []
        asked = {
            r["token"]: int(r["job_id"])
            for r in svc.ledger.query("SELECT token, job_id FROM attempts")
        }
        for _ in range(ticks):
            commands = [(slurm.squeue_argv(), alone), (slurm.sinfo_nodes_argv(), sinfo)]
            if accounting:
                commands.append((slurm.sacct_argv(3600), sacct))
            for argv, into in commands:
                t0 = time.perf_counter()
                bed.client(*argv, timeout=60)
                into.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sh.call("resolve", path="~")  # the helper's own cost: one exec, no Slurm command
            noop.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sh.poll(asked)  # the adapter alone: exec, squeue, sinfo, parsing, no ledger
            adapter.append(time.perf_counter() - t0)
        out.update(
            jobs_in_slurm=len(in_slurm),
            slurm_states=states,
            tick_ms=median_ms(walls),
            tick_max_ms=round(max(walls) * 1000, 1),
            poll_phase_ms=median_ms(polls),
            adapter_poll_ms=median_ms(adapter),
            helper_exec_ms=median_ms(noop),
            squeue_alone_ms=median_ms(alone),
            sinfo_alone_ms=median_ms(sinfo),
            sacct_alone_ms=median_ms(sacct) if sacct else None,
            squeue_per_tick=sorted(set(squeues)),
            sacct_per_tick=sorted(set(saccts)),
            round_trips_per_tick=sorted(set(trips)),
            dispatcher_cpu_s_per_tick=round(d.stats.cpu_s / d.stats.ticks, 3),
        )
        d.pool.close()
        svc.close()
    finally:
        bed.close()
        if ssh:
            sshbed.close()
    return out


def main() -> int:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--accounting", action="store_true", help="with slurmdbd: sacct")
    parser.add_argument("--ssh", action="store_true", help="submit node over a real sshd")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lepton-bench-slurm-") as tmp:
        result = bench(Path(tmp), args.jobs, args.ticks, args.accounting, args.ssh)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:<28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
