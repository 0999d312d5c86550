"""A Slurm cluster as a host: its commands run on the login node itself (LocalTransport) or on
a submit node over SSH (SSHTransport), always through the stdlib-only helper
`remote/slurm_helper.py`, one exec per batch: a tick's poll is ONE round trip that runs ONE
squeue (and sinfo for the free capacity) however many jobs lepton has there.

Attempt files live in `<root_dir>/slurm/<job>-<token>/` on the cluster's shared filesystem:
`job.sh`, `stdout`, `stderr`, `slurm_job_id` (written right after sbatch answered), and
`exit_code` (written by the batch script when the command ends).
"""

from __future__ import annotations

import base64
import functools
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inventory import slurm
from inventory.errors import HostUnreachable, RemoteError
from inventory.slurm import PartitionView, SlurmNode, SlurmTarget, SubmitSpec
from inventory.transport import LocalTransport, Transport

HELPER_PATH = Path(__file__).with_name("remote") / "slurm_helper.py"
MARKER = b"@@LEPTON-SLURM-REPLY@@"
# Words in a failing command's stderr that mean "the controller is not there": a host problem.
_UNREACHABLE = ("Unable to contact slurm controller", "Socket timed out", "Connection refused",
                "Zero Bytes were transmitted", "Transport endpoint")  # fmt: skip


@functools.cache
def helper_source() -> str:
    """The helper program's text (sent with every call; nothing is installed on the cluster)."""
    return HELPER_PATH.read_text()


@dataclass(frozen=True)
class Submitted:
    """sbatch took the attempt (or Slurm already had it: `existing`)."""

    slurm_id: str
    job_dir: str
    existing: bool = False


@dataclass(frozen=True)
class Refused:
    """Slurm refused the job itself (too large for the partition, bad account...): final."""

    reason: str


@dataclass(frozen=True)
class Retry:
    """Submission failed for a reason that may pass (controller down, filesystem): try again."""

    reason: str


@dataclass(frozen=True)
class SlurmPoll:
    """One tick's look at the cluster: the partition as a pool and each asked attempt's status."""

    partition: PartitionView
    statuses: dict[str, dict[str, Any]]  # token -> AttemptStatus fields
    jobs: dict[str, slurm.SlurmJob]  # token -> squeue row (lepton's jobs only)
    # other users' attempts Slurm no longer shows: their files are read through their login
    unread: frozenset[str] = frozenset()
    # the partition's pending jobs that are not lepton's (None: the listing failed)
    others: slurm.OthersPending | None = None


class SlurmHost:
    """One Slurm partition reached through `transport`. Thread-safe counters, no other state
    but the resolved root directory and the Slurm version (asked once)."""

    def __init__(
        self, name: str, transport: Transport, target: SlurmTarget, root_dir: str = "~/.lepton"
    ) -> None:
        self.name = name
        self.transport = transport
        self.target = target
        self.root_dir = root_dir
        self.commands: Counter[str] = Counter()  # Slurm commands run, by program
        self._lock = threading.Lock()
        self._root: str | None = None
        self._version: tuple[int, int] | None = None
        self.last_partition: PartitionView | None = None
        self.prefer_json = True
        self.use_sacct = target.accounting  # None: ask the cluster once

    # -- one round trip ------------------------------------------------------------------------
    def call(self, op: str, timeout: float = 60, **args: Any) -> Any:
        """Run helper operation `op` in ONE exec; raise HostError subclasses on failure."""
        request = {"op": op, "env": self.target.env(), **args}
        encoded = base64.b64encode(json.dumps(request).encode()).decode("ascii")
        program = f"{helper_source()}\n_lepton_slurm_main({encoded!r})\n".encode()
        # on the login node itself, this very interpreter (no PATH look-up, no pyenv shim)
        python = sys.executable if isinstance(self.transport, LocalTransport) else "python3"
        result = self.transport.run([python, "-I", "-S", "-"], stdin=program, timeout=timeout)
        _, found, reply = result.stdout.rpartition(MARKER)
        if not found:
            err = result.stderr.decode("utf-8", "replace").strip()
            if result.rc == 127:
                raise RemoteError(self.name, "python3 is not installed on the submit node")
            last = err.splitlines()[-1] if err else f"exit status {result.rc}"
            raise RemoteError(self.name, f"the Slurm helper failed: {last}")
        try:
            decoded = json.loads(reply.decode("utf-8"))
        except ValueError as exc:
            raise RemoteError(self.name, f"unreadable reply from the Slurm helper: {exc}") from exc
        with self._lock:
            self.commands.update(decoded.get("ran") or [])
        if not decoded.get("ok"):
            error = str(decoded.get("error"))
            if any(w in error for w in _UNREACHABLE):
                raise HostUnreachable(self.name, f"Slurm controller unreachable: {error}")
            raise RemoteError(self.name, f"{op} failed: {error}")
        return decoded["result"]

    def run(self, *commands: Sequence[str], timeout: float = 60) -> list[dict[str, Any]]:
        """Several Slurm commands in one round trip; each gives rc, out, err."""
        return list(
            self.call("run", timeout=timeout, commands=[{"argv": list(c)} for c in commands])
        )

    # -- facts asked once ------------------------------------------------------------------------
    def root(self) -> str:
        """The root directory with `~` expanded on the cluster (asked once)."""
        if self._root is None:
            self._root = str(self.call("resolve", path=self.root_dir)["path"]).rstrip("/")
        return self._root

    def job_dir(self, job_id: int, token: str) -> str:
        """The attempt's directory on the cluster's shared filesystem (absolute)."""
        return f"{self.root()}/slurm/{int(job_id)}-{slurm.check_token(token)}"

    def version(self) -> tuple[int, int]:
        """(major, minor) of the cluster's Slurm, from `sbatch --version` (asked once)."""
        if self._version is None:
            r = self.run(["sbatch", "--version"])[0]
            if r["rc"] != 0:
                raise RemoteError(self.name, f"sbatch --version failed: {slurm.one_line(r['err'])}")
            self._version = slurm.slurm_version(r["out"])
        return self._version

    def nodes_argv(self) -> list[str]:
        """sinfo --json where this Slurm has it (and `prefer_json`), else sinfo's formatted
        node records."""
        if self.prefer_json and slurm.has_json(self.version()):
            return ["sinfo", "--json"]
        return slurm.sinfo_nodes_argv()

    def parse_nodes(self, argv: Sequence[str], out: str) -> list[SlurmNode]:
        """Nodes from the output of `nodes_argv()` (JSON or formatted)."""
        if "--json" in argv:
            return slurm.parse_nodes_json(out)
        return slurm.parse_nodes_text(out)

    # -- inventory and the tick ------------------------------------------------------------------
    def inventory(self) -> PartitionView:
        """The partition's nodes, states, CPUs, memory and GPUs (one round trip)."""
        argv = self.nodes_argv()
        r = self.run(argv)[0]
        if r["rc"] != 0:
            raise self._failed(argv[0], r)
        view = slurm.partition_view(self.parse_nodes(argv, r["out"]), self.target.partition)
        self.last_partition = view
        return view

    def accounting(self) -> bool:
        """Whether the cluster runs accounting (slurmdbd): then the tick asks sacct (asked once,
        from `scontrol show config`; set `use_sacct` to decide instead)."""
        if self.use_sacct is None:
            r = self.run(["scontrol", "show", "config"])[0]
            if r["rc"] != 0:
                raise self._failed("scontrol show config", r)
            self.use_sacct = slurm.accounting_runs(slurm.parse_config(r["out"]))
        return self.use_sacct

    def poll(
        self,
        attempts: Mapping[str, int],
        timeout: float = 60,
        since: float | None = None,
        *,
        users: Sequence[str] | None = None,
        foreign: Collection[str] = (),
        slurm_ids: Mapping[str, str] | None = None,
    ) -> SlurmPoll:
        """ONE round trip: the status of every job of the user (one squeue; or one sacct where
        accounting runs, with one squeue more only when an asked attempt is not in it yet), the
        partition's nodes, the partition's pending jobs that are not lepton's (one squeue,
        counted as `squeue:pending`), and the files of asked attempts neither shows. `attempts`: token ->
        lepton job id; `since`: when the oldest of them was created (for sacct's window).
        The nodes come from sinfo's formatted records here, not --json: the same facts, at a
        third of the cost on 22.05 (docs/benchmarks.md, "Slurm").

        Lab mode: `users`, the submitters whose jobs to list (Slurm shows every user's jobs
        unless PrivateData hides them); `foreign`, the tokens of other users' attempts, whose
        directories this login cannot read: those neither command shows come back in `unread`
        (no status), and a refused one is left for its owner to cancel. `slurm_ids`: token ->
        the Slurm job id sbatch gave, where known (sacct looks those up by id when its window
        misses them)."""
        nodes_argv = slurm.sinfo_nodes_argv()
        asked = {
            token: {
                "name": slurm.job_name(job_id, token),
                "dir": None if token in foreign else self.job_dir(job_id, token),
                "slurm_id": (slurm_ids or {}).get(token),
            }
            for token, job_id in attempts.items()
        }
        now = time.time()
        args: dict[str, Any] = {"status": slurm.squeue_argv(users)}
        if self.accounting():
            window = now - (since if since is not None else now) + 600
            args = {"status": slurm.sacct_argv(window, users),
                    "fallback": slurm.squeue_argv(users),
                    "lookup": slurm.sacct_jobs_argv(users)}  # fmt: skip
        args["pending"] = slurm.pending_argv(self.target.partition)
        reply = self.call("poll", timeout=timeout, attempts=asked, nodes=nodes_argv, **args)
        nodes = reply.get("nodes")
        if nodes is None or nodes["rc"] != 0:
            raise self._failed(nodes_argv[0], nodes or {"rc": 1, "err": "no answer"})
        view = slurm.partition_view(self.parse_nodes(nodes_argv, nodes["out"]),
                                    self.target.partition)  # fmt: skip
        self.last_partition = view
        if "fallback" in args:
            jobs = slurm.parse_sacct(reply["status"])
            for token, job in slurm.parse_sacct(reply.get("lookup") or "").items():
                jobs.setdefault(token, job)
            for token, job in slurm.parse_squeue(reply.get("fallback") or "").items():
                jobs.setdefault(token, job)
        else:
            jobs = slurm.parse_squeue(reply["status"])
        statuses = {}
        unread = set()
        for token in attempts:
            if token in foreign and token not in jobs:
                unread.add(token)
                continue
            files = reply["files"].get(token)
            end = slurm.EndFiles(**files) if files is not None else None
            statuses[token] = slurm.slurm_status(jobs.get(token), end, now)
        refused = [str(st["slurm_id"]) for t, st in statuses.items()
                   if st.get("refused") and t not in foreign]  # fmt: skip
        if refused:  # pending for ever as asked: take it out of Slurm's queue before saying so
            self.cancel(refused)
        pending = reply.get("pending")
        others = None  # a failed listing says nothing: the pool is seen as it is
        if pending is not None and pending["rc"] == 0:
            others = slurm.parse_pending(pending["out"], {str(a["name"]) for a in asked.values()})
        return SlurmPoll(view, statuses, jobs, frozenset(unread), others)

    def end_files(self, attempts: Mapping[str, int], timeout: float = 60) -> dict[str, Any]:
        """The statuses of attempts Slurm no longer shows, from the files their batch scripts
        left (ONE round trip): lab mode reads other users' through their own login."""
        if not attempts:
            return {}
        dirs = {token: self.job_dir(job_id, token) for token, job_id in attempts.items()}
        reply = self.call("files", timeout=timeout, dirs=dirs)
        now = time.time()
        return {
            token: slurm.slurm_status(None, slurm.EndFiles(**reply[token]), now)
            for token in attempts
            if token in reply
        }

    # -- verbs -------------------------------------------------------------------------------------
    def submit(
        self, specs: Sequence[SubmitSpec], guard: bool = False, timeout: float = 120
    ) -> dict[str, Submitted | Refused | Retry]:
        """sbatch each attempt (one round trip for all). With `guard` (a submission that may
        already have happened: after a crash), an attempt Slurm already has is not sent again."""
        if not specs:
            return {}
        items = [
            {"name": s.name, "dir": s.job_dir, "script": slurm.batch_script(s),
             "argv": slurm.sbatch_argv(self.target, s)}
            for s in specs
        ]  # fmt: skip
        try:
            results = self.call("submit", timeout=timeout, items=items, guard=guard)
        except RemoteError as exc:
            return {s.token: Retry(exc.reason) for s in specs}
        out: dict[str, Submitted | Refused | Retry] = {}
        for s, r in zip(specs, results, strict=True):
            if "error" in r:  # the attempt's directory could not be written
                out[s.token] = Retry(str(r["error"]))
            elif "slurm_id" in r:
                out[s.token] = Submitted(str(r["slurm_id"]), s.job_dir, existing=True)
            elif r["rc"] == 0:
                try:
                    out[s.token] = Submitted(slurm.parse_sbatch(r["out"]), s.job_dir)
                except slurm.SlurmParseError as exc:
                    out[s.token] = Retry(str(exc))
            elif slurm.sbatch_refused(r["err"]):
                out[s.token] = Refused(f"Slurm refused it: {slurm.one_line(r['err'])}")
            else:
                out[s.token] = Retry(f"sbatch failed: {slurm.one_line(r['err']) or r['rc']}")
        return out

    def cancel(self, slurm_ids: Sequence[str]) -> None:
        """scancel the given Slurm jobs, one command for all (ended ones are no error)."""
        if not slurm_ids:
            return
        r = self.run(slurm.scancel_argv(slurm_ids))[0]
        if r["rc"] != 0 and "Invalid job id" not in r["err"]:
            raise self._failed("scancel", r)

    def read_log(
        self, job_id: int, token: str, stream: str, offset: int, max_bytes: int = 1 << 20
    ) -> tuple[bytes, int]:
        """Up to `max_bytes` of an attempt's stdout or stderr from `offset` (one round trip)."""
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"unknown stream {stream!r}")
        path = f"{self.job_dir(job_id, token)}/{stream}"
        reply = self.call("read", path=path, offset=int(offset), max=int(max_bytes))
        return base64.b64decode(reply["data"]), int(reply["offset"])

    # -- preflight ---------------------------------------------------------------------------------
    def preflight(self) -> list[tuple[bool, str]]:
        """The checks `hosts add --slurm` prints, one line each: sinfo, sbatch --version, the
        partition, the job directory, accounting and (where it runs) the user's association."""
        t = self.target
        cmds: list[list[str]] = [
            ["sinfo", "--version"], ["sbatch", "--version"],
            ["scontrol", "show", "partition", t.partition, "--oneliner"],
            ["scontrol", "show", "config"],
        ]  # fmt: skip
        try:
            r = self.run(*cmds)
        except (RemoteError, HostUnreachable) as exc:
            return [(False, f"Slurm helper: {exc.reason}")]
        lines: list[tuple[bool, str]] = []
        sinfo, sbatch, part, config = r
        lines.append(
            (True, f"sinfo: {sinfo['out'].strip()}")
            if sinfo["rc"] == 0
            else (
                False,
                f"sinfo: {slurm.one_line(sinfo['err']) or 'not found'}; is Slurm "
                "installed on this node and on PATH?",
            )  # fmt: skip
        )
        lines.append(
            (True, f"sbatch: {sbatch['out'].strip()}")
            if sbatch["rc"] == 0
            else (False, f"sbatch: {slurm.one_line(sbatch['err']) or 'not found'}")
        )
        info = slurm.parse_partition(part["out"]) if part["rc"] == 0 else {}
        if not info:
            why = slurm.one_line(part["err"] or part["out"]) or "no such partition"
            lines.append((False, f"partition {t.partition}: {why}; `sinfo -s` lists them"))
        else:
            try:
                view = self.inventory()
                size = view.summary
            except (RemoteError, HostUnreachable, slurm.SlurmParseError) as exc:
                size = f"nodes unreadable ({exc})"
            state = info.get("State", "?")
            lines.append(
                (state == "UP",
                 f"partition {t.partition}: {state}, MaxTime {info.get('MaxTime', '?')}, {size}")
            )  # fmt: skip
        try:
            d = self.call("check_dir", path=f"{self.root_dir.rstrip('/')}/slurm")
            lines.append(
                (False, f"job directory {d['path']}: {d['error']}; pick another --root-dir")
                if "error" in d
                else (True, f"job directory {d['path']}: writable, {d['free_mb']} MiB free "
                      "(compute nodes must share it)")
            )  # fmt: skip
        except (RemoteError, HostUnreachable) as exc:
            lines.append((False, f"job directory: {exc.reason}"))
        cfg = slurm.parse_config(config["out"]) if config["rc"] == 0 else {}
        if cfg:
            self.use_sacct = slurm.accounting_runs(cfg)
        if not slurm.accounting_runs(cfg):
            lines.append(
                (True, f"accounting: none (ended jobs are read from squeue while MinJobAge "
                 f"{cfg.get('MinJobAge', '?')} keeps them, then from the files jobs leave)")
            )  # fmt: skip
            if t.account:
                lines.append((False, f"account {t.account}: no accounting to check it against; "
                              "drop --account"))  # fmt: skip
        else:
            lines.append((True, f"accounting: {cfg.get('AccountingStorageType')}"))
            lines.append(self._association())
        return lines

    def _association(self) -> tuple[bool, str]:
        t = self.target
        argv = ["sacctmgr", "--noheader", "--parsable2", "show", "associations",
                "where", "user=" + self._whoami(), "format=Account,Partition,QOS"]  # fmt: skip
        r = self.run(argv)[0]
        if r["rc"] != 0:
            return False, f"association: {slurm.one_line(r['err'])}"
        rows = [line.split("|") for line in r["out"].splitlines() if line.strip()]
        fits = [
            row for row in rows
            if (not t.account or row[0] == t.account)
            and (len(row) < 2 or not row[1] or row[1] == t.partition)
            and (not t.qos or len(row) < 3 or t.qos in row[2].split(","))
        ]  # fmt: skip
        if fits:
            return True, f"association: account {fits[0][0]} may use {t.partition}"
        accounts = sorted({row[0] for row in rows}) or ["none"]
        return False, (
            f"association: none for account {t.account or '(default)'} on {t.partition}"
            f"{' with QOS ' + t.qos if t.qos else ''}; your accounts: {', '.join(accounts)}"
        )

    def _whoami(self) -> str:
        r = self.run(["id", "-un"])[0]
        return r["out"].strip() or "root"

    def _failed(self, what: str, r: Mapping[str, Any]) -> Exception:
        err = slurm.one_line(str(r.get("err", ""))) or f"exit status {r.get('rc')}"
        if any(w in err for w in _UNREACHABLE):
            return HostUnreachable(self.name, f"{what}: {err}")
        return RemoteError(self.name, f"{what} failed: {err}")
