"""The Slurm test bed: a real one-node Slurm cluster (munged, slurmctld, slurmd) on localhost.

`SlurmBed(path)` generates a munge key and a `slurm.conf` in `path` (the node with this machine's
real CPUs and memory from `slurmd -C`, two GRES GPUs on /dev/null and /dev/zero, one partition `debug`,
`proctrack/linuxproc`, `task/none`, `select/cons_tres`, no accounting daemon, free ports, state
and spool directories under `path`, SlurmUser root), starts the three daemons in the foreground
as children of this process, and waits until `sinfo` shows the node idle. Clients find it
through `SLURM_CONF` (`bed.env`). `close()` cancels what still runs and stops every daemon by pid.

With `accounting=True` it also starts MariaDB (a private data directory, a free loopback port,
no grant tables) and slurmdbd, and gives this user the account `lab`: `sacct` and
associations work as on most real clusters.

The session fixtures `slurmbed` and `slurmbed_accounting` (tests/slurm/conftest.py) wrap it;
`bench/slurm.py` uses it without pytest. Without Debian's `slurm-wlm` and `munge` (and for
accounting `slurmdbd` and `mariadb-server`) the fixtures fail, unless LEPTON_ALLOW_NO_SLURM=1
(then they skip).
"""

from __future__ import annotations

import atexit
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PARTITION = "debug"
NODE = "lepton-node"
GPUS = 2
MAX_TIME = "1-00:00:00"  # the partition's time limit: a job asking more is refused
START_TIMEOUT_S = 30.0
DAEMONS = ("munged", "slurmctld", "slurmd")


ACCOUNT = "lab"  # the account the accounting bed gives its user


def find_slurm(accounting: bool = False) -> str | None:
    """None when every program the bed needs is installed, else what is missing (one line)."""
    programs = [*DAEMONS, "sinfo", "sbatch", "squeue", "scontrol", "scancel"]
    if accounting:
        programs += ["slurmdbd", "sacct", "sacctmgr", "mariadbd", "mariadb-install-db"]
    missing = [p for p in programs if _which(p) is None]
    if not missing:
        return None
    need = "slurm-wlm and munge" + (", slurmdbd and mariadb-server" if accounting else "")
    return f"{', '.join(missing)} not found (install Debian's {need})"


def _which(program: str) -> str | None:
    for candidate in (shutil.which(program), f"/usr/sbin/{program}", f"/usr/bin/{program}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_hardware() -> dict[str, int]:
    """This machine as slurmd sees it (`slurmd -C`): CPUs, sockets, cores, threads, memory."""
    out = subprocess.run(
        [_which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, check=True
    ).stdout
    found = dict(re.findall(r"(\w+)=(\S+)", out.splitlines()[0]))
    keys = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory")
    return {k: int(found[k]) for k in keys}


class SlurmBed:
    """One real Slurm cluster on localhost: `env` reaches it, `close()` stops it."""

    def __init__(self, base: Path, *, min_job_age_s: int = 600, accounting: bool = False) -> None:
        missing = find_slurm(accounting)
        if missing:
            raise FileNotFoundError(missing)
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o700)
        self.min_job_age_s = min_job_age_s
        self.accounting = accounting  # slurmdbd on a private MariaDB, account `lab`
        self.conf = self.base / "slurm.conf"
        self.munge_socket = self.base / "munge" / "munge.socket"
        self.hardware = node_hardware()
        self.user = getpass.getuser()
        self._procs: dict[str, subprocess.Popen] = {}
        self.started_in_s: float | None = None
        self._write_config()
        atexit.register(self.close)  # even if the session's finalizer never runs

    # -- configuration -----------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        """What a Slurm client needs to reach this cluster (merge into os.environ)."""
        return {"SLURM_CONF": str(self.conf)}

    @property
    def cpus(self) -> int:
        """The node's CPUs (this machine's)."""
        return self.hardware["CPUs"]

    @property
    def mem_mb(self) -> int:
        """The node's memory in MiB (this machine's, as slurmd counts it)."""
        return self.hardware["RealMemory"]

    def _write_config(self) -> None:
        b = self.base
        for d in ("munge", "state", "spool", "log", "jobs", "db"):
            (b / d).mkdir(mode=0o700, exist_ok=True)
        key = b / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        hw = self.hardware
        host = socket.gethostname().split(".")[0]
        ctld_port, slurmd_port = _free_port(), _free_port()
        self.db_port, self.dbd_port = _free_port(), _free_port()
        lines = [
            "ClusterName=leptonbed",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            f"SlurmUser={self.user}",
            f"SlurmdUser={self.user}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={b / 'state'}",
            f"SlurmdSpoolDir={b / 'spool'}",
            f"SlurmctldPidFile={b / 'slurmctld.pid'}",
            f"SlurmdPidFile={b / 'slurmd.pid'}",
            f"SlurmctldLogFile={b / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={b / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "JobAcctGatherType=jobacct_gather/none",
            *(
                [
                    "AccountingStorageType=accounting_storage/slurmdbd",
                    "AccountingStorageHost=127.0.0.1",
                    f"AccountingStoragePort={self.dbd_port}",
                    # for slurmdbd connections this names the munge socket (not AuthInfo)
                    f"AccountingStoragePass={self.munge_socket}",
                    "AccountingStorageEnforce=associations",
                    "AccountingStorageTRES=gres/gpu",
                ]
                if self.accounting
                else ["AccountingStorageType=accounting_storage/none"]
            ),
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "ReturnToService=2",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=2",
            # ended jobs stay visible to squeue/scontrol this long (no accounting here)
            f"MinJobAge={self.min_job_age_s}",
            "MaxJobCount=20000",
            "EnforcePartLimits=ALL",  # sbatch refuses a job over the partition's limits
            "DefMemPerCPU=256",  # a job without --mem must not hold the whole node
            "KillWait=5",
            "InactiveLimit=0",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            # a client call to a stopped controller gives up after about MessageTimeout - 1 s
            # (9 s at the default 10): the tests that stop slurmctld wait for each of them
            "MessageTimeout=5",
            "GresTypes=gpu",
            (
                f"NodeName={NODE} NodeHostname={host} NodeAddr=127.0.0.1 CPUs={hw['CPUs']} "
                f"Boards={hw['Boards']} SocketsPerBoard={hw['SocketsPerBoard']} "
                f"CoresPerSocket={hw['CoresPerSocket']} ThreadsPerCore={hw['ThreadsPerCore']} "
                f"RealMemory={hw['RealMemory']} Gres=gpu:{GPUS} State=UNKNOWN"
            ),
            f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime={MAX_TIME} State=UP",
            "",
        ]
        self.conf.write_text("\n".join(lines))
        if self.accounting:  # slurmdbd reads slurmdbd.conf beside slurm.conf, mode 0600
            dbd = b / "slurmdbd.conf"
            dbd.write_text("\n".join([
                "AuthType=auth/munge", f"AuthInfo=socket={self.munge_socket}",
                f"DbdHost={host}", "DbdAddr=127.0.0.1", f"DbdPort={self.dbd_port}",
                f"SlurmUser={self.user}", "StorageType=accounting_storage/mysql",
                "StorageHost=127.0.0.1", f"StoragePort={self.db_port}", "StorageUser=root",
                "StorageLoc=slurm_acct_db", f"PidFile={b / 'slurmdbd.pid'}",
                f"LogFile={b / 'log' / 'slurmdbd.log'}", "",
            ]))  # fmt: skip
            os.chmod(dbd, 0o600)
        # two "GPUs" on harmless character devices: Slurm counts and allocates them, and with
        # task/none binds nothing (a gpu GRES without File= is reported as 0 by slurmd)
        (b / "gres.conf").write_text(f"NodeName={NODE} Name=gpu File=/dev/null,/dev/zero\n")

    # -- daemons -----------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.base / "log" / f"{name}.out", "ab")  # noqa: SIM115 - kept by Popen
        env = {**os.environ, **self.env}
        # cwd: the spool directory, which the job step daemons inherit (how `close` finds them)
        self._procs[name] = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            start_new_session=True, cwd=self.base / "spool",
        )  # fmt: skip
        log.close()

    def start(self) -> None:
        """Start munged, slurmctld and slurmd (each not already running); wait until idle."""
        begun = time.monotonic()
        b = self.base
        if not self.running("munged"):
            self._spawn("munged", [
                _which("munged") or "munged", "-F", "-f", f"--key-file={b / 'munge' / 'munge.key'}",
                f"--socket={self.munge_socket}", f"--pid-file={b / 'munge' / 'munged.pid'}",
                f"--log-file={b / 'log' / 'munged.log'}", f"--seed-file={b / 'munge' / 'seed'}",
            ])  # fmt: skip
            self._wait(lambda: self.munge_socket.exists(), "munged", "its socket")
        if self.accounting:
            self._start_accounting()
        if not self.running("slurmctld"):
            self.start_slurmctld()
        if not self.running("slurmd"):
            self._spawn("slurmd", [_which("slurmd") or "slurmd", "-D", "-f", str(self.conf),
                                   "-N", NODE])  # fmt: skip
        self._wait(self.node_idle, "slurmd", f"node {NODE} idle in sinfo")
        self.started_in_s = time.monotonic() - begun

    def _start_accounting(self) -> None:
        """MariaDB on a free port (no grant tables: loopback only, this bed's own data) and
        slurmdbd; the cluster, account `lab` and this user's association on first start."""
        b = self.base
        first = not (b / "db" / "mysql").exists()
        if first:
            r = subprocess.run(
                [_which("mariadb-install-db") or "mariadb-install-db", "--no-defaults",
                 f"--user={self.user}", f"--datadir={b / 'db'}", "--skip-test-db",
                 "--auth-root-authentication-method=normal"],
                capture_output=True, text=True, check=False, cwd=b,
            )  # fmt: skip
            if r.returncode != 0:
                raise RuntimeError(f"mariadb-install-db failed: {r.stderr.strip()[-500:]}")
        if not self.running("mariadbd"):
            sock = b / "mysql.sock"
            self._spawn("mariadbd", [
                _which("mariadbd") or "mariadbd", "--no-defaults", f"--user={self.user}",
                f"--datadir={b / 'db'}", f"--socket={sock}", f"--port={self.db_port}",
                "--bind-address=127.0.0.1", f"--pid-file={b / 'mysql.pid'}",
                "--skip-grant-tables", "--innodb-buffer-pool-size=16M",
                f"--log-error={b / 'log' / 'mariadbd.log'}",
            ])  # fmt: skip
            self._wait(sock.exists, "mariadbd", "its socket")
        if not self.running("slurmdbd"):
            self._spawn("slurmdbd", [_which("slurmdbd") or "slurmdbd", "-D"])
            self._wait(self._dbd_up, "slurmdbd", "an answer to `sacctmgr show cluster`")
        if first:
            for args in (
                ["add", "cluster", "leptonbed"],
                ["add", "account", ACCOUNT, "Cluster=leptonbed"],
                ["add", "user", self.user, f"Account={ACCOUNT}", f"DefaultAccount={ACCOUNT}"],
            ):
                r = self.client("sacctmgr", "--immediate", *args, timeout=30)
                if r.returncode != 0:
                    raise RuntimeError(f"sacctmgr {' '.join(args)}: {r.stderr.strip()}")

    def _dbd_up(self) -> bool:
        try:
            return (
                self.client("sacctmgr", "--noheader", "show", "cluster", timeout=5).returncode == 0
            )
        except subprocess.TimeoutExpired:
            return False

    def start_slurmctld(self, wait: bool = True) -> None:
        """Start slurmctld; it recovers jobs from its state directory."""
        self._spawn("slurmctld", [_which("slurmctld") or "slurmctld", "-D", "-f", str(self.conf)])
        if wait:
            self._wait(self.controller_up, "slurmctld", "an answer to `scontrol ping`")

    def stop_slurmctld(self) -> None:
        """Stop slurmctld only (jobs keep running under slurmd)."""
        self._stop("slurmctld")

    def running(self, name: str) -> bool:
        """Whether the bed's daemon `name` runs."""
        proc = self._procs.get(name)
        return proc is not None and proc.poll() is None

    def client(self, *argv: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command against this cluster."""
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **self.env}, check=False,
        )  # fmt: skip

    def controller_up(self) -> bool:
        """Whether slurmctld answers `scontrol ping`."""
        try:
            out = self.client("scontrol", "ping", timeout=5).stdout
        except subprocess.TimeoutExpired:
            return False
        return " is UP" in out

    def node_idle(self) -> bool:
        """Whether sinfo shows the node idle."""
        try:
            out = self.client("sinfo", "-h", "-N", "-o", "%N %t", timeout=5).stdout.split()
        except subprocess.TimeoutExpired:
            return False
        return out[:2] == [NODE, "idle"]

    def _wait(self, ready, name: str, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready():
                return
            proc = self._procs.get(name)
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.1)
        logs = []
        for f in (f"{name}.log", f"{name}.out"):
            path = self.base / "log" / f
            if path.exists():
                logs.append(path.read_text(errors="replace").strip()[-1500:])
        self.close()
        raise RuntimeError(f"{name} did not come up (waited for {what}): {' | '.join(logs)}")

    def cancel_all(self, wait_s: float = 0.0) -> None:
        """scancel every job of this cluster (best effort); wait up to `wait_s` for them to end."""
        if not self.running("slurmctld"):
            return
        try:
            self.client("scancel", "--user", self.user, timeout=10)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                out = self.client("squeue", "--noheader", "--format=%i", timeout=10).stdout
                if not out.strip():
                    break
                time.sleep(0.2)
        except subprocess.TimeoutExpired:
            pass

    def _stop(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _stepds(self) -> list[int]:
        """Pids of this bed's slurmstepd processes (they outlive slurmd) and their jobs: the
        step daemons run in the spool directory slurmd was started in."""
        import psutil

        pids = []
        spool = str(self.base / "spool")
        for proc in psutil.process_iter(["name", "cwd"]):
            try:
                if (proc.info["name"] or "").startswith("slurmstepd") and proc.info["cwd"] == spool:
                    pids += [c.pid for c in proc.children(recursive=True)] + [proc.pid]
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return pids

    def close(self) -> None:
        """Cancel every job, stop every daemon by pid, kill this bed's leftover slurmstepds."""
        if not self._procs:
            return
        self.cancel_all(wait_s=10.0)
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            self._stop(name)
        for pid in self._stepds():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


__all__ = [
    "ACCOUNT",
    "GPUS",
    "MAX_TIME",
    "NODE",
    "PARTITION",
    "SlurmBed",
    "find_slurm",
    "node_hardware",
]
