"""Chaos: a job stream through real loopback sshd hosts under seeded random faults, then the
invariants that must hold whatever happened.

The dispatcher runs as `lepton-tui serve` in a child process. Faults, drawn from one seeded
generator, in a shuffled round so that every kind comes up:

- `kill9`: the dispatcher killed with SIGKILL (started again a moment later);
- `sigstop`: the dispatcher stopped with SIGSTOP, then SIGCONT (sometimes longer than the grace:
  a dispatcher slower than the grace must not mark healthy hosts down);
- `sshd_short` / `sshd_long`: a host's sshd stopped (its sessions dropped) for less than the
  grace / for more than it (the host is declared down, its jobs lost on a presumption);
- `cut_sessions`: a host's open SSH sessions killed (the pooled connection drops mid-call);
- `kill_wrapper` / `kill_job`: a running attempt's wrapper, or its job's process group, killed;
- `cancel`: a live job cancelled, as a user would;
- `partition_after_lost_answer`: right after the dispatcher lost a launch's answer, that host's
  sshd stopped for longer than the grace (the launch ran; will the job run twice?).

Inside the dispatcher (`--serve-child`, the real `serve` command with a fault layer over the
launch call), each launch round really runs on its hosts, then with probability `--lose-p` a
host's answer is lost (a dropped connection) and with `--die-p` the dispatcher kills itself
with SIGKILL between the launch and its record.

Each job appends `start TOKEN` to a file of its own when it starts and `end TOKEN CODE` just
before it exits, so the checks count real starts and read real exit codes. At the end, with
every fault undone and the queue drained: no job lost (every job ended), no job with
`--retries 0` started twice, every exit code in the ledger the one its process exited with, no
cancelled job (and nothing at all) left running, no traceback in the dispatcher's log, and
`PRAGMA integrity_check` ok.

    python bench/chaos.py --seed 1 --duration 600 --jobs 600
    python bench/chaos.py --seed 7 --duration 35 --jobs 40 --grace 3     # about the suite's run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PARENT_FAULTS = (
    "kill9", "sigstop", "sshd_short", "sshd_long", "cut_sessions", "kill_wrapper", "kill_job",
    "cancel",
)  # fmt: skip
TERMINAL = {"succeeded", "failed", "cancelled", "timeout"}
LOST_ANSWER_WAIT_S = 1.0


@dataclass
class ChaosConfig:
    """One chaos run."""

    seed: int = 1
    duration_s: float = 120.0  # how long jobs arrive and faults strike
    jobs: int = 120  # jobs submitted over the first 70 % of the duration
    hosts: int = 3  # loopback sshd hosts (1 to 3)
    cpus: int = 4  # CPU slots per host
    grace_s: float = 4.0  # host_grace_s
    tick_s: float = 0.5
    fault_every_s: tuple[float, float] = (1.0, 3.0)  # the gap between two faults
    lose_p: float = 0.15  # per host and launch round: the launch's answer is lost
    die_p: float = 0.03  # per launch round: the dispatcher dies between launch and record
    partition_p: float = 0.5  # after a lost answer: its host cut off for longer than the grace
    drain_s: float = 180.0  # how long the queue may take to drain once the faults stop


@dataclass
class Report:
    """What happened and what broke."""

    config: dict[str, Any]
    wall_s: float = 0.0
    jobs: int = 0
    states: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    starts: int = 0  # real starts of jobs on the hosts
    restarted_jobs: int = 0  # jobs (with retries) started more than once
    hosts_down: int = 0
    amended_jobs: int = 0
    amended_attempts: int = 0
    fenced: int = 0
    violations: list[str] = field(default_factory=list)

    def table(self) -> str:
        """The figures as a Markdown table."""
        rows = [
            ("jobs", f"{self.jobs} ({', '.join(f'{k} {v}' for k, v in sorted(self.states.items()))})"),
            ("attempts", str(self.attempts)),
            ("real starts on the hosts", str(self.starts)),
            ("jobs with retries started more than once", str(self.restarted_jobs)),
            ("faults", f"{sum(self.faults.values())} ("
             + ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) + ")"),
            ("hosts declared down", str(self.hosts_down)),
            ("jobs amended by a host's truth", str(self.amended_jobs)),
            ("attempts amended", str(self.amended_attempts)),
            ("stale copies fenced", str(self.fenced)),
            ("wall time", f"{self.wall_s:.0f} s"),
            ("invariants broken", str(len(self.violations))),
        ]  # fmt: skip
        out = ["| measure | result |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in rows]
        return "\n".join(out)


# -- the dispatcher child ---------------------------------------------------------------------


def serve_child(home: str, seed: int, lose_p: float, die_p: float, tick_s: float) -> None:
    """`lepton-tui serve` with a fault layer over the launch call: the launch runs on its
    hosts, then an answer is lost, or this process dies before recording it."""
    from inventory import supervisor
    from inventory.errors import HostUnreachable
    from inventory.fanout import Failed

    rng = random.Random(seed)
    real = supervisor.launch_many

    def launch_many(targets: Any, timeout: float = 30) -> Any:
        results = real(targets, timeout)
        if rng.random() < die_p:
            print("CHAOS die_after_launch", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        out: dict[str, Any] = {}
        for host, result in results.items():
            if result.ok and rng.random() < lose_p:
                print(f"CHAOS lost_answer {host}", file=sys.stderr, flush=True)
                why = "connection lost during a command (chaos)"
                out[host] = Failed(why, HostUnreachable(host, why))
                # as long as a slow network takes to say so: the chaos driver may cut the host
                # off meanwhile (the lost answer, then the host unreachable past the grace)
                time.sleep(LOST_ANSWER_WAIT_S)
            else:
                out[host] = result
        return out

    supervisor.launch_many = launch_many  # type: ignore[assignment]
    sys.argv = ["lepton-tui", "--home", home, "serve", "--tick", str(tick_s), "-v"]
    from lepton_tui.cli import main

    main()


class Child:
    """The dispatcher process: started, killed, stopped, continued."""

    def __init__(self, home: Path, log: Path, cfg: ChaosConfig, rng: random.Random) -> None:
        self.home, self.log, self.cfg, self.rng = home, log, cfg, rng
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = False

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        argv = [
            sys.executable, str(Path(__file__).resolve()), "--serve-child", str(self.home),
            "--child-seed", str(self.rng.randrange(1 << 30)), "--lose-p", str(self.cfg.lose_p),
            "--die-p", str(self.cfg.die_p), "--tick", str(self.cfg.tick_s),
        ]  # fmt: skip
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env
            )
        self.stopped = False

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive:
            assert self.proc is not None
            os.kill(self.proc.pid, sig)
            self.stopped = sig == signal.SIGSTOP or (self.stopped and sig != signal.SIGCONT)

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Restorer:
    """Undoes faults on time from a thread of its own: the driver may itself wait on the
    ledger while the dispatcher it stopped holds the write lock (it is the one to continue it)."""

    def __init__(self, begun: float) -> None:
        self.begun = begun
        self.items: list[tuple[float, str, Callable[[], None]]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="chaos-restorer", daemon=True)
        self.thread.start()

    def add(self, at: float, kind: str, undo: Callable[[], None]) -> None:
        """Run `undo` at `at` seconds into the run."""
        with self.lock:
            self.items.append((at, kind, undo))

    def pending(self, kind: str) -> bool:
        with self.lock:
            return any(k == kind for _, k, _ in self.items)

    def _take(self, until: float) -> list[Callable[[], None]]:
        with self.lock:
            due = sorted((i for i in self.items if i[0] <= until), key=lambda i: i[0])
            self.items = [i for i in self.items if i[0] > until]
        return [undo for _, _, undo in due]

    def _loop(self) -> None:
        while not self.stop.wait(0.05):
            for undo in self._take(time.monotonic() - self.begun):
                undo()

    def finish(self) -> None:
        """Stop the thread and undo everything left now."""
        self.stop.set()
        self.thread.join()
        for undo in self._take(float("inf")):
            undo()


# -- jobs -------------------------------------------------------------------------------------


@dataclass
class JobPlan:
    index: int
    retries: int
    code: int
    sleep_s: float
    job_id: int | None = None


def _command(runs: Path, plan: JobPlan) -> str:
    out = runs / f"{plan.index}.log"
    return (
        f'echo "start $LEPTON_ATTEMPT" >> {out}; sleep {plan.sleep_s}; '
        f'echo "end $LEPTON_ATTEMPT {plan.code}" >> {out}; exit {plan.code}'
    )


def _read_runs(path: Path) -> tuple[list[str], dict[str, int]]:
    """The tokens that started, and the exit code each ended with, from a job's run file."""
    starts, ends = [], {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "start":
                starts.append(parts[1])
            elif len(parts) == 3 and parts[0] == "end":
                ends[parts[1]] = int(parts[2])
    return starts, ends


# -- processes on the hosts -------------------------------------------------------------------


def _leftovers(base: Path, tokens: set[str]) -> list[tuple[int, str]]:
    """Processes still running of this run: jobs (by their LEPTON_ATTEMPT) and wrappers."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            if stat[stat.rindex(b")") + 2 :].split()[0] in (b"Z", b"X"):
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        token = next(
            (e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"LEPTON_ATTEMPT=")), None
        )
        if (token and token in tokens) or (str(base) in cmd and "wrapper.py" in cmd):
            found.append((int(name), cmd[:120]))
    return found


# -- the run ----------------------------------------------------------------------------------


def run(cfg: ChaosConfig, workdir: Path, say: Callable[[str], None] = print) -> Report:
    """One chaos run in `workdir`; the report lists every invariant broken."""
    from lepton_tui import paths
    from lepton_tui.service import Service
    from tests.sshbed import SSHBed

    rng = random.Random(cfg.seed)
    workdir.mkdir(parents=True, exist_ok=True)
    home, runs, log = workdir / "home", workdir / "runs", workdir / "serve.log"
    home.mkdir(mode=0o700)
    runs.mkdir()
    bed = SSHBed(workdir / "bed")
    hosts = bed(cfg.hosts)
    svc = Service.open(home)
    child = Child(home, log, cfg, rng)
    report = Report(config=asdict(cfg))
    faults: Counter[str] = Counter()
    begun = time.monotonic()
    restores = Restorer(begun)
    try:
        (home / paths.KNOWN_HOSTS_FILE).write_bytes(Path(bed.known_hosts).read_bytes())
        for h in hosts:
            svc.add_host(
                h.name, address=h.address, port=h.port, user=h.user, key_path=h.key_path,
                root_dir=str(workdir / "roots" / h.name),
                capacity={"cpus": cfg.cpus, "mem_mb": 8192},
            )  # fmt: skip
        svc.set_setting("host_grace_s", cfg.grace_s)
        svc.set_setting("cancel_grace_s", 2.0)
        svc.set_setting("policy", "backfill")
        plans = [
            JobPlan(i, rng.choice([0, 0, 1]), rng.choice([0, 0, 0, 1, 3]),
                    rng.choice([0.2, 0.5, 1.0, 2.0, 4.0]))
            for i in range(cfg.jobs)
        ]  # fmt: skip
        arrive = sorted(rng.uniform(0, 0.7 * cfg.duration_s) for _ in plans)
        child.start()
        out_hosts: set[str] = set()
        kinds: list[str] = []
        next_fault = rng.uniform(*cfg.fault_every_s)
        submitted = retries = seen = 0
        while (now := time.monotonic() - begun) < cfg.duration_s:
            while submitted < len(plans) and arrive[submitted] <= now:
                p = plans[submitted]
                p.job_id = svc.submit(command=_command(runs, p), retries=p.retries, cpus=1)
                submitted += 1
            if not child.alive and not restores.pending("restart"):
                # it killed itself between a launch and its record: start it again
                restores.add(now + rng.uniform(0.2, 1.0), "restart", child.start)
            seen, lost_on = _lost_answers(log, seen)
            for name in lost_on:  # a lost answer, then its host cut off past the grace
                host = next((h for h in hosts if h.name == name), None)
                if host is None or name in out_hosts or rng.random() >= cfg.partition_p:
                    continue
                what = _sshd_out(host, rng.uniform(1.6, 2.6) * cfg.grace_s, out_hosts,
                                 restores, now)  # fmt: skip
                faults["partition_after_lost_answer"] += 1
                say(f"{now:6.1f}s fault partition_after_lost_answer: {what}")
            if now >= next_fault:
                next_fault = now + rng.uniform(*cfg.fault_every_s)
                if not kinds:
                    kinds = list(PARENT_FAULTS)
                    rng.shuffle(kinds)
                kind = kinds.pop()
                done = _strike(kind, cfg, rng, svc, child, hosts, out_hosts, restores, now)
                if done:
                    faults[kind] += 1
                    say(f"{now:6.1f}s fault {kind}: {done}")
                    retries = 0
                elif retries < 20:  # nothing to strike now (no running job, ...): soon again
                    retries += 1
                    kinds.append(kind)
                    next_fault = now + 0.25
                else:
                    retries = 0
            time.sleep(0.05)
        while submitted < len(plans):  # a short duration: the rest arrive now
            p = plans[submitted]
            p.job_id = svc.submit(command=_command(runs, p), retries=p.retries, cpus=1)
            submitted += 1
        say(f"faults stop after {time.monotonic() - begun:.0f}s; undoing them and draining")
        restores.finish()
        bed(cfg.hosts)
        if not child.alive:
            child.start()
        child.signal(signal.SIGCONT)
        _drain(svc, child, cfg, say)
        child.stop()
        report.wall_s = time.monotonic() - begun
        time.sleep(3.0)  # the cancel helpers' KILL after cancel_grace_s
        _check(svc, plans, runs, workdir, log, report)
    finally:
        restores.finish()
        child.stop()
        svc.close()
        bed.close()
    text = log.read_text(errors="replace") if log.exists() else ""
    faults["lost_answer"] = text.count("CHAOS lost_answer")
    faults["die_after_launch"] = text.count("CHAOS die_after_launch")
    report.faults = dict(faults)
    return report


def _strike(
    kind: str,
    cfg: ChaosConfig,
    rng: random.Random,
    svc: Any,
    child: Child,
    hosts: list[Any],
    out_hosts: set[str],
    restores: Restorer,
    now: float,
) -> str | None:
    """Strike one fault; what was done (None when it did not apply now)."""
    if kind == "kill9" and child.alive and not child.stopped:
        child.signal(signal.SIGKILL)
        assert child.proc is not None
        child.proc.wait()
        restores.add(now + rng.uniform(0.2, 2.0), "restart", child.start)
        return "dispatcher killed"
    if kind == "sigstop" and child.alive and not child.stopped:
        pause = rng.uniform(0.5, 1.8) * cfg.grace_s
        child.signal(signal.SIGSTOP)
        restores.add(now + pause, "cont", lambda: child.signal(signal.SIGCONT))
        return f"dispatcher stopped for {pause:.1f}s"
    if kind in ("sshd_short", "sshd_long", "cut_sessions"):
        free = [h for h in hosts if h.name not in out_hosts]
        if not free:
            return None
        host = rng.choice(free)
        if kind == "cut_sessions":
            return f"{host.name}: {host.kill_sessions()} session(s) cut"
        span = rng.uniform(0.2, 0.7) if kind == "sshd_short" else rng.uniform(1.6, 2.6)
        return _sshd_out(host, span * cfg.grace_s, out_hosts, restores, now)
    if kind in ("kill_wrapper", "kill_job"):
        running = svc.ledger.query(
            "SELECT remote_dir, job_id FROM attempts WHERE state = 'running' AND remote_dir "
            "IS NOT NULL"
        )
        rng.shuffle(running)
        for a in running:
            try:
                info = json.loads((Path(a["remote_dir"]) / "wrapper.json").read_text())
                if kind == "kill_wrapper":
                    os.kill(int(info["pid"]), signal.SIGKILL)
                else:
                    os.killpg(int(info["job_pid"]), signal.SIGKILL)
            except (OSError, ValueError, KeyError):
                continue
            return f"job {a['job_id']}: {kind.split('_')[1]} killed"
        return None
    if kind == "cancel":
        live = svc.ledger.query(
            "SELECT id FROM jobs WHERE state IN ('queued', 'starting', 'running') ORDER BY id"
        )
        if not live:
            return None
        job_id = rng.choice(live)["id"]
        svc.cancel([job_id])
        return f"job {job_id} cancelled"
    return None


def _sshd_out(
    host: Any,
    out_s: float,
    out_hosts: set[str],
    restores: Restorer,
    now: float,
) -> str:
    """Stop a host's sshd (its sessions dropped) for `out_s` seconds."""
    host.stop()
    out_hosts.add(host.name)

    def back() -> None:
        host.start()
        out_hosts.discard(host.name)

    restores.add(now + out_s, "sshd", back)
    return f"{host.name} sshd down for {out_s:.1f}s"


def _lost_answers(log: Path, seen: int) -> tuple[int, list[str]]:
    """Hosts whose launch answer the dispatcher lost since byte `seen` of its log."""
    try:
        with open(log, "rb") as f:
            f.seek(seen)
            data = f.read()
    except OSError:
        return seen, []
    end = data.rfind(b"\n") + 1
    hosts = [
        line.split()[-1].decode()
        for line in data[:end].splitlines()
        if line.startswith(b"CHAOS lost_answer ")
    ]
    return seen + end, hosts


def _drain(svc: Any, child: Child, cfg: ChaosConfig, say: Callable[[str], None]) -> None:
    """Wait until every job ended and no lost attempt is left unfenced (hosts all back)."""
    deadline = time.monotonic() + cfg.drain_s
    while time.monotonic() < deadline:
        if not child.alive:  # it may die between launch and record during the drain too
            child.start()
        live = svc.ledger.query_one(
            "SELECT COUNT(*) AS n FROM jobs WHERE state NOT IN "
            "('succeeded', 'failed', 'cancelled', 'timeout')"
        )["n"]
        unfenced = svc.ledger.query_one(
            "SELECT COUNT(*) AS n FROM attempts WHERE state = 'lost' AND fenced_at IS NULL"
        )["n"]
        if not live and not unfenced:
            return
        time.sleep(0.5)
    say(f"drain timed out after {cfg.drain_s:.0f}s")


def _attempt_dir(workdir: Path, a: dict[str, Any]) -> Path:
    """An attempt's directory on its host (known even when its launch answer was lost)."""
    return workdir / "roots" / a["host"] / "jobs" / f"{a['job_id']}-{a['token']}"


def _check(
    svc: Any, plans: list[JobPlan], runs: Path, workdir: Path, log: Path, report: Report
) -> None:
    """The invariants, into `report.violations`, and the figures."""
    bad = report.violations
    jobs = {j["id"]: j for j in svc.ledger.query("SELECT * FROM jobs")}
    attempts = svc.ledger.query("SELECT * FROM attempts ORDER BY id")
    by_job: dict[int, list[dict[str, Any]]] = {}
    for a in attempts:
        by_job.setdefault(a["job_id"], []).append(a)
    report.jobs, report.attempts = len(jobs), len(attempts)
    report.states = dict(Counter(j["state"] for j in jobs.values()))
    tokens = {a["token"] for a in attempts}
    for p in plans:
        job = jobs.get(p.job_id or -1)
        if job is None:
            bad.append(f"job #{p.index} (id {p.job_id}) is missing from the ledger")
            continue
        if job["state"] not in TERMINAL:
            bad.append(f"job {job['id']} never ended: {job['state']} ({job['reason']})")
        starts, ends = _read_runs(runs / f"{p.index}.log")
        report.starts += len(starts)
        if len(starts) > 1:
            if p.retries == 0:
                bad.append(f"job {job['id']} (--retries 0) started {len(starts)} times")
            else:
                report.restarted_jobs += 1
        for a in by_job.get(job["id"], []):
            code = a["exit_code"]
            if code is None:
                continue
            real = ends.get(a["token"])
            if real is not None and code != real:
                bad.append(f"job {job['id']} attempt {a['attempt_no']}: ledger exit code {code}, "
                           f"its process exited {real}")  # fmt: skip
            if real is None and code < 124 and a["state"] != "cancelled":
                bad.append(f"job {job['id']} attempt {a['attempt_no']}: exit code {code} in the "
                           "ledger, but its process never reached its end")  # fmt: skip
        if job["state"] == "succeeded" and (job["exit_code"] != 0 or 0 not in ends.values()):
            bad.append(f"job {job['id']} succeeded without a process that exited 0")
        if job["state"] in ("failed", "timeout") and job["exit_code"] is not None:
            if job["exit_code"] == 0:
                bad.append(f"job {job['id']} is {job['state']} with exit code 0")
        # the host recorded the last attempt's exit 0 (its wrapper saw it) while the ledger
        # keeps the job failed: the truth lost (a job whose wrapper was killed cannot be known
        # to have exited 0: nothing on the host says so)
        mine = by_job.get(job["id"], [])
        latest = mine[-1] if mine else None
        if latest and job["state"] == "failed":
            recorded = _attempt_dir(workdir, latest) / "exit_code"
            if recorded.exists() and recorded.read_text().strip() == "0":
                bad.append(f"job {job['id']} is failed, but its host recorded exit code 0")
    for pid, cmd in _leftovers(workdir, tokens):
        bad.append(f"still running after the end: pid {pid}: {cmd}")
    text = log.read_text(errors="replace") if log.exists() else ""
    if "Traceback" in text:
        first = text[text.index("Traceback") :].splitlines()[:12]
        bad.append("traceback in the dispatcher's log: " + " | ".join(first))
    conn = sqlite3.connect(svc.ledger.path)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    if check != "ok":
        bad.append(f"integrity_check: {check}")
    count = {
        k: svc.ledger.query_one("SELECT COUNT(*) AS n FROM events WHERE kind = ?", (k,))["n"]
        for k in ("host.down", "job.amended", "attempt.amended", "attempt.fenced")
    }
    report.hosts_down = count["host.down"]
    report.amended_jobs = count["job.amended"]
    report.amended_attempts = count["attempt.amended"]
    report.fenced = count["attempt.fenced"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of faults")
    parser.add_argument("--jobs", type=int, default=120)
    parser.add_argument("--hosts", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument("--grace", type=float, default=4.0, help="host_grace_s")
    parser.add_argument("--tick", type=float, default=0.5)
    parser.add_argument("--lose-p", type=float, default=0.15)
    parser.add_argument("--die-p", type=float, default=0.03)
    parser.add_argument("--workdir", help="keep everything here (default: a temporary dir)")
    parser.add_argument("--json", help="write the report here as JSON")
    parser.add_argument("--serve-child", metavar="HOME", help=argparse.SUPPRESS)
    parser.add_argument("--child-seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_child:
        serve_child(args.serve_child, args.child_seed, args.lose_p, args.die_p, args.tick)
        return
    cfg = ChaosConfig(
        seed=args.seed, duration_s=args.duration, jobs=args.jobs, hosts=args.hosts,
        grace_s=args.grace, tick_s=args.tick, lose_p=args.lose_p, die_p=args.die_p,
    )  # fmt: skip
    if args.workdir:
        report = run(cfg, Path(args.workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="lepton-chaos-") as tmp:
            report = run(cfg, Path(tmp))
    print(report.table())
    for v in report.violations:
        print("VIOLATION:", v)
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(report), indent=2))
    sys.exit(1 if report.violations else 0)


if __name__ == "__main__":
    main()
