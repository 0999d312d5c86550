"""Slurm, pure: the commands lepton sends to a Slurm cluster and the parsing of what it answers.

No I/O here (no subprocess, no paramiko): `inventory.slurm_host` runs these commands on the
login node or on a submit node over SSH. Tested on real output of Slurm 22.05 (tests/data/slurm).

- Inventory: `sinfo --json` (Slurm >= 21.08) or sinfo's formatted node records, both into
  `SlurmNode` (`scontrol show node` leaves allocated GPUs out of its TRES on 22.05).
- Submission: `sbatch_argv` + `batch_script` for one attempt (`SubmitSpec`); the job is named
  `lepton-<job>-<token>` and carries `lepton:<job>:<token>` as its comment, so lepton finds its
  jobs again after a crash.
- State: ONE `squeue` for every job of the user (`squeue_argv`, `parse_squeue`), with the exit
  code, start and end; `slurm_status` turns a row (or the end file the batch script writes, for a
  job Slurm has forgotten) into the attempt status the dispatcher knows.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

JOB_PREFIX = "lepton-"
NAME_RE = re.compile(r"lepton-(\d+)-([A-Za-z0-9][A-Za-z0-9_-]{0,63})")
PARTITION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
ACCOUNT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
END_FILE = "exit_code"  # written by the batch script when the command ends
SCRIPT_FILE = "job.sh"

# squeue -O fields, `|` after each; the name (the one field another user's job could fill with
# any text) comes last, so a `|` in a foreign job's name cannot shift the other fields.
# RestartCnt and SubmitTime tell a job Slurm requeued: its restart count rises, and Slurm
# resets its submit time to the moment it requeued it (the end of the run it cut short).
SQUEUE_FIELDS = (
    "JobID", "State", "Reason", "StartTime", "EndTime", "exit_code", "tres-alloc",
    "NodeList", "RestartCnt", "SubmitTime", "Name",
)  # fmt: skip

PENDING_STATES = frozenset(
    {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD"}
)
RUNNING_STATES = frozenset(
    {"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESIZING"}
)
LOST_STATES = frozenset({"NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"})
ENDED_STATES = (
    frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "DEADLINE", "OUT_OF_MEMORY"})
    | LOST_STATES
)
# Nodes that take no new work (sinfo's long state names, lower case, flags stripped).
UNUSABLE_NODE_STATES = frozenset(
    {"down", "drained", "draining", "drain", "fail", "failing", "future", "inval", "invalid",
     "maint", "reboot_issued", "reboot_requested", "power_down", "powered_down", "powering_down",
     "unknown", "not_responding"}
)  # fmt: skip


# Pending reasons that will not pass by waiting: the job asks more than the partition, the
# account or the QOS ever allows (a cluster without EnforcePartLimits queues such jobs).
NEVER_REASONS = frozenset(
    {"PartitionTimeLimit", "PartitionNodeLimit", "BadConstraints", "InvalidAccount",
     "InvalidQOS", "DependencyNeverSatisfied"}
)  # fmt: skip
NEVER_REASON_RE = re.compile(r"(QOS|Assoc)Max\w*PerJob(Limit)?")


def never_runs(reason: str) -> bool:
    """True for a pending reason that means Slurm will never run the job as it was asked."""
    return reason in NEVER_REASONS or bool(NEVER_REASON_RE.fullmatch(reason or ""))


class SlurmParseError(ValueError):
    """Slurm's output was not what this version of lepton understands."""


# -- the cluster: nodes and partitions ---------------------------------------------------------


@dataclass(frozen=True)
class SlurmNode:
    """One node of the cluster as sinfo/scontrol report it."""

    name: str
    state: str  # lower case, e.g. "idle", "mixed", "allocated", "drained"
    cpus: int
    cpus_alloc: int
    mem_mb: int
    mem_alloc_mb: int
    gpus: int
    gpus_alloc: int
    partitions: tuple[str, ...] = ()
    reason: str = ""

    @property
    def usable(self) -> bool:
        """True when the node can take new jobs (not down, drained, failing...)."""
        words = set(re.split(r"[+ ]", self.state.lower()))
        return not (words & UNUSABLE_NODE_STATES) and not self.state.endswith("*")


@dataclass(frozen=True)
class PartitionView:
    """The partition as a pool: totals over usable nodes, what is allocated, the largest node."""

    name: str
    nodes: tuple[SlurmNode, ...]
    cpus: int
    mem_mb: int
    gpus: int
    cpus_alloc: int
    mem_alloc_mb: int
    gpus_alloc: int
    largest: tuple[
        int, int, int
    ]  # (cpus, mem_mb, gpus) of its largest node in any state, per field

    def too_large(self, cpus: float, mem_mb: int, gpus: int) -> str | None:
        """Why a one-node job this size can never run here (None if some node could hold it)."""
        want = (math.ceil(cpus), int(mem_mb), int(gpus))
        if not self.nodes or all(w <= have for w, have in zip(want, self.largest, strict=True)):
            return None
        return (
            f"larger than any node of partition {self.name} (it asks {want[0]} CPUs, "
            f"{want[1]} MiB, {want[2]} GPUs; the largest node has {self.largest[0]} CPUs, "
            f"{self.largest[1]} MiB, {self.largest[2]} GPUs)"
        )

    @property
    def summary(self) -> str:
        """One line: nodes by state and the totals."""
        states: dict[str, int] = {}
        for n in self.nodes:
            states[n.state] = states.get(n.state, 0) + 1
        by_state = ", ".join(f"{c} {s}" for s, c in sorted(states.items()))
        return (
            f"{len(self.nodes)} node(s) ({by_state}): {self.cpus} CPUs, "
            f"{self.mem_mb // 1024} GiB, {self.gpus} GPUs usable"
        )


def partition_view(nodes: Iterable[SlurmNode], partition: str) -> PartitionView:
    """The nodes of `partition` summed into a pool (only usable nodes count towards capacity)."""
    members = tuple(n for n in nodes if partition in n.partitions)
    usable = [n for n in members if n.usable]
    return PartitionView(
        name=partition,
        nodes=members,
        cpus=sum(n.cpus for n in usable),
        mem_mb=sum(n.mem_mb for n in usable),
        gpus=sum(n.gpus for n in usable),
        cpus_alloc=sum(n.cpus_alloc for n in usable),
        mem_alloc_mb=sum(n.mem_alloc_mb for n in usable),
        gpus_alloc=sum(n.gpus_alloc for n in usable),
        largest=(
            max((n.cpus for n in members), default=0),
            max((n.mem_mb for n in members), default=0),
            max((n.gpus for n in members), default=0),
        ),
    )


def gres_gpus(gres: str) -> int:
    """GPUs in a GRES string: `gpu:2`, `gpu:a100:4(S:0-1)`, `gpu:a100:2,gpu:v100:1` -> 2, 4, 3."""
    total = 0
    for item in re.split(r",(?![^()]*\))", gres or ""):
        parts = re.sub(r"\(.*\)", "", item.strip()).split(":")
        if parts[0] != "gpu" or len(parts) < 2:
            continue
        count = parts[-1].strip()
        if count.isdigit():
            total += int(count)
        elif len(parts) == 2:  # "gpu:a100" with no count means one
            total += 1
    return total


def tres(text: str) -> dict[str, str]:
    """A TRES string (`cpu=2,mem=24105M,gres/gpu=1`) as a dict."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        key, sep, value = item.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def mem_mb(text: str | int | float | None) -> int:
    """A Slurm memory size (`64M`, `2G`, `1.5T`, `512K`, plain megabytes) in MiB."""
    if text is None or text == "":
        return 0
    if isinstance(text, (int, float)):
        return int(text)
    m = re.fullmatch(r"([\d.]+)([KMGTP]?)", text.strip().upper())
    if not m:
        raise SlurmParseError(f"unreadable memory size {text!r}")
    factor = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}[m.group(2)]
    return int(float(m.group(1)) * factor)


def tres_resources(text: str) -> tuple[int, int, int | None]:
    """(cpus, mem_mb, gpus) from a TRES string. GPUs are None where the string has no
    `gres/gpu` key: Slurm lists GPUs in tres-alloc/AllocTRES only where the cluster's
    AccountingStorageTRES names `gres/gpu` (not the default), so its absence says nothing."""
    t = tres(text)
    gpus = int(t["gres/gpu"] or 0) if "gres/gpu" in t else None
    return int(t.get("cpu", "0") or 0), mem_mb(t.get("mem", "0")), gpus


def _json_number(value: Any) -> int:
    """A number from Slurm's JSON (plain, or v0.0.39+'s {"set": true, "number": N})."""
    if isinstance(value, Mapping):
        return int(value.get("number") or 0) if value.get("set", True) else 0
    return int(value or 0)


def parse_nodes_json(text: str) -> list[SlurmNode]:
    """Nodes from `sinfo --json` (Slurm 21.08 and later)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SlurmParseError(f"sinfo --json did not return JSON: {exc}") from None
    errors = [e for e in data.get("errors") or [] if e]
    if errors and not data.get("nodes"):
        first = errors[0]
        raise SlurmParseError(str(first.get("error") if isinstance(first, Mapping) else first))
    nodes = []
    for n in data.get("nodes") or []:
        state = n.get("state")
        if isinstance(state, list):  # 23.02+: a list of flags
            state = "+".join(state)
        flags = [f for f in n.get("state_flags") or [] if isinstance(f, str)]
        state_text = "+".join([str(state or "unknown"), *flags]).lower()
        alloc_gpus = gres_gpus(n.get("gres_used") or "")
        if not alloc_gpus:
            alloc_gpus = tres_resources(n.get("tres_used") or "")[2] or 0
        nodes.append(
            SlurmNode(
                name=str(n["name"]),
                state=state_text,
                cpus=_json_number(n.get("cpus")),
                cpus_alloc=_json_number(n.get("alloc_cpus")),
                mem_mb=_json_number(n.get("real_memory")),
                mem_alloc_mb=_json_number(n.get("alloc_memory")),
                gpus=gres_gpus(n.get("gres") or ""),
                gpus_alloc=alloc_gpus,
                partitions=tuple(n.get("partitions") or ()),
                reason=str(n.get("reason") or ""),
            )
        )
    return nodes


def _kv_line(line: str) -> dict[str, str]:
    """`Key=value Key2=value two` (scontrol -o) as a dict; a value runs to the next ` Key=`."""
    out: dict[str, str] = {}
    for m in re.finditer(r"(?:^|\s)([A-Za-z][A-Za-z0-9_/:]*)=(.*?)(?=\s+[A-Za-z][A-Za-z0-9_/:]*=|$)",
                         line.strip()):  # fmt: skip
        out[m.group(1)] = m.group(2).strip()
    return out


SINFO_NODE_FIELDS = (
    "NodeList", "StateLong", "CPUsState", "Memory", "AllocMem", "Gres", "GresUsed",
    "Partition", "Reason",
)  # fmt: skip


def sinfo_nodes_argv() -> list[str]:
    """sinfo's node records as `|`-separated fields (any Slurm version; the reason, free text,
    comes last)."""
    return ["sinfo", "--Node", "--noheader",
            "--Format=" + ",".join(f"{f}:|" for f in SINFO_NODE_FIELDS)]  # fmt: skip


def parse_nodes_text(text: str) -> list[SlurmNode]:
    """Nodes from `sinfo_nodes_argv()` (one line per node and partition, merged by node)."""
    nodes: dict[str, SlurmNode] = {}
    n = len(SINFO_NODE_FIELDS)
    for line in text.splitlines():
        parts = line.split("|", n - 1)
        if len(parts) < n or not parts[0].strip():
            continue
        try:
            alloc, _idle, _other, total = (int(x) for x in parts[2].split("/"))
            node = SlurmNode(
                name=parts[0].strip(),
                state=parts[1].strip().lower(),
                cpus=total,
                cpus_alloc=alloc,
                mem_mb=mem_mb(parts[3].strip()),
                mem_alloc_mb=mem_mb(parts[4].strip()),
                gpus=gres_gpus(parts[5].strip()),
                gpus_alloc=gres_gpus(parts[6].strip()),
                partitions=(parts[7].strip().rstrip("*"),),
                reason=parts[8].rstrip().rstrip("|").strip(),
            )
        except ValueError as exc:
            raise SlurmParseError(f"unreadable sinfo node line {line!r}: {exc}") from None
        old = nodes.get(node.name)
        if old is not None:
            node = SlurmNode(**{**old.__dict__, "partitions": old.partitions + node.partitions})
        nodes[node.name] = node
    return list(nodes.values())


def slurm_version(text: str) -> tuple[int, int]:
    """(major, minor) from `sbatch --version` (`slurm 23.02.1`, `slurm-wlm 22.05.8`)."""
    m = re.search(r"(\d+)\.(\d+)(?:\.\d+)?", text or "")
    if not m:
        raise SlurmParseError(f"unreadable Slurm version {text.strip()!r}")
    return int(m.group(1)), int(m.group(2))


def has_json(version: tuple[int, int]) -> bool:
    """Whether sinfo/squeue take `--json` (Slurm 21.08 and later)."""
    return version >= (21, 8)


def parse_config(text: str) -> dict[str, str]:
    """`scontrol show config` as a dict (`AccountingStorageType`, `MinJobAge`, ...)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            out[key.strip()] = value.strip()
    return out


def accounting_runs(config: Mapping[str, str]) -> bool:
    """True when the cluster keeps accounting (slurmdbd): sacct and associations work."""
    kind = config.get("AccountingStorageType", "accounting_storage/none")
    return kind not in ("", "accounting_storage/none", "(null)")


def parse_partition(text: str) -> dict[str, str]:
    """`scontrol show partition NAME -o` as a dict (empty when there is no such partition)."""
    for line in text.splitlines():
        if line.startswith("PartitionName="):
            return _kv_line(line)
    return {}


def slurm_time(seconds: float) -> str:
    """A time limit for `sbatch --time`: D-HH:MM:SS, rounded up to the minute (Slurm's unit)."""
    minutes = max(1, math.ceil(seconds / 60))
    d, rest = divmod(minutes * 60, 86400)
    h, rest = divmod(rest, 3600)
    return f"{d}-{h:02d}:{rest // 60:02d}:00"


# -- submission ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmTarget:
    """Where lepton submits: partition, account and QOS, and SLURM_CONF where it is not the
    default (a second cluster reachable from the same login node, or the test bed);
    `accounting`: whether the cluster ran slurmdbd when it was added (None: ask it)."""

    partition: str
    account: str | None = None
    qos: str | None = None
    slurm_conf: str | None = None
    accounting: bool | None = None

    def __post_init__(self) -> None:
        if not PARTITION_RE.fullmatch(self.partition or ""):
            raise ValueError(f"invalid partition {self.partition!r}: letters, digits, '_.-'")
        for what, value in (("account", self.account), ("qos", self.qos)):
            if value is not None and not ACCOUNT_RE.fullmatch(value):
                raise ValueError(f"invalid {what} {value!r}: letters, digits, '_.-'")
        if self.slurm_conf is not None and not re.fullmatch(r"/[A-Za-z0-9._+/-]+",
                                                            self.slurm_conf):  # fmt: skip
            raise ValueError(f"invalid slurm.conf path {self.slurm_conf!r}: an absolute path")

    def to_json(self) -> str:
        """The settings as the `slurm_json` column keeps them (unset ones left out)."""
        return json.dumps({k: v for k, v in self.__dict__.items() if v is not None})

    @classmethod
    def from_json(cls, text: str | None) -> SlurmTarget:
        """The settings from a `slurm_json` column (checked again)."""
        data = json.loads(text or "{}")
        keys = ("partition", "account", "qos", "slurm_conf", "accounting")
        return cls(**{k: data.get(k) for k in keys})

    def env(self) -> dict[str, str]:
        """Environment for every Slurm command (times as Unix seconds, the cluster's config)."""
        env = {"SLURM_TIME_FORMAT": "%s"}
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        return env


@dataclass(frozen=True)
class SubmitSpec:
    """One attempt to submit: the job's request, command, env and where its files go."""

    job_id: int
    token: str
    command: str
    job_dir: str  # absolute, on the cluster's shared filesystem
    cpus: float = 1.0
    mem_mb: int = 1024
    gpus: int = 0
    gpu_mem_mb: int = 0
    time_limit_s: float | None = None
    workdir: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    after: Sequence[str] = ()  # Slurm job ids this one runs after (afterok)
    signal: str | None = None  # "USR1@120": sent that long before the time limit (--signal)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", self.token):
            raise ValueError(f"invalid attempt token {self.token!r}")
        if not self.job_dir.startswith("/"):
            raise ValueError(f"the job directory must be absolute, not {self.job_dir!r}")
        for key in self.env:
            if not ENV_NAME_RE.fullmatch(key):
                raise ValueError(f"invalid environment variable name {key!r}")
        for dep in self.after:
            if not str(dep).isdigit():
                raise ValueError(f"invalid Slurm job id {dep!r}")

    @property
    def name(self) -> str:
        """The Slurm job name (`lepton-<job>-<token>`)."""
        return job_name(self.job_id, self.token)

    @property
    def gpus_wanted(self) -> int:
        """Whole GPUs for Slurm: a job that shares a GPU by memory takes one whole GPU there."""
        return self.gpus or (1 if self.gpu_mem_mb else 0)


def job_name(job_id: int, token: str) -> str:
    """The Slurm job name of an attempt (how lepton finds it again)."""
    return f"{JOB_PREFIX}{job_id}-{token}"


def job_comment(job_id: int, token: str) -> str:
    """The Slurm comment of an attempt (lepton's ids, for people reading squeue)."""
    return f"lepton:{job_id}:{token}"


def sbatch_argv(target: SlurmTarget, spec: SubmitSpec) -> list[str]:
    """The sbatch command line for one attempt (the script path last)."""
    argv = [
        "sbatch", "--parsable", f"--job-name={spec.name}",
        f"--comment={job_comment(spec.job_id, spec.token)}", f"--partition={target.partition}",
        "--nodes=1", "--ntasks=1", f"--cpus-per-task={max(1, math.ceil(spec.cpus))}",
        f"--mem={max(1, int(spec.mem_mb))}M",
        f"--output={spec.job_dir}/stdout", f"--error={spec.job_dir}/stderr",
        f"--chdir={spec.workdir or spec.job_dir}", "--export=ALL", "--kill-on-invalid-dep=yes",
        # a run Slurm requeues writes after the earlier runs' output, never over it
        "--open-mode=append",
    ]  # fmt: skip
    if target.account:
        argv.append(f"--account={target.account}")
    if target.qos:
        argv.append(f"--qos={target.qos}")
    if spec.gpus_wanted:
        argv.append(f"--gres=gpu:{spec.gpus_wanted}")
    if spec.time_limit_s:
        argv.append(f"--time={slurm_time(spec.time_limit_s)}")
    if spec.after:
        argv.append("--dependency=afterok:" + ":".join(str(d) for d in spec.after))
    if spec.signal and re.fullmatch(r"[A-Z0-9]+@[0-9]+", spec.signal):
        argv.append(f"--signal=B:{spec.signal}")  # to the batch shell, which passes it on
    argv.append(f"{spec.job_dir}/{SCRIPT_FILE}")
    return argv


def batch_script(spec: SubmitSpec) -> str:
    """The batch script: the job's env, its command under bash, then its exit code written
    atomically to `exit_code` (read when Slurm has already forgotten the job)."""
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        f"# lepton job {spec.job_id}, attempt {spec.token}",
        f"export LEPTON_JOB_ID={q(str(spec.job_id))}",
        f"export LEPTON_ATTEMPT={q(spec.token)}",
        f"export LEPTON_ATTEMPT_DIR={q(spec.job_dir)}",
    ]
    lines += [f"export {k}={q(str(v))}" for k, v in sorted(spec.env.items())]
    # a run Slurm requeued may have written its code: this run's end must not be read from it
    lines.append(f"rm -f {q(spec.job_dir + '/' + END_FILE)}")
    lines.append(f"date +%s > {q(spec.job_dir + '/started_at')}")
    if spec.signal and re.fullmatch(r"[A-Z0-9]+@[0-9]+", spec.signal):
        # Slurm signals the batch shell (B:): pass it on to the job, and wait out the trap
        name = spec.signal.split("@")[0]
        lines += [
            f"bash -c {q(spec.command)} &",
            "child=$!",
            f"trap 'kill -{name} $child 2>/dev/null' {name}",
            'while kill -0 "$child" 2>/dev/null; do wait "$child"; done',
            'wait "$child"',
        ]
    else:
        lines.append(f"bash -c {q(spec.command)}")
    lines += [
        "rc=$?",
        f"printf '%s\\n' \"$rc\" > {q(spec.job_dir + '/' + END_FILE + '.tmp')} && "
        f"mv -f {q(spec.job_dir + '/' + END_FILE + '.tmp')} {q(spec.job_dir + '/' + END_FILE)}",
        'exit "$rc"',
        "",
    ]
    return "\n".join(lines)


def parse_sbatch(stdout: str) -> str:
    """The job id from `sbatch --parsable` (`123` or `123;cluster`)."""
    first = (stdout or "").strip().splitlines()[-1:] or [""]
    job_id = first[0].split(";")[0].strip()
    if not job_id.isdigit():
        raise SlurmParseError(f"sbatch printed no job id: {stdout.strip()!r}")
    return job_id


# sbatch failures that say the request itself is wrong (submitting it again cannot help)
_REFUSALS = (
    "Requested node configuration is not available",
    "Requested time limit is invalid",
    "Memory specification can not be satisfied",
    "Invalid generic resource",
    "Invalid partition name specified",
    "Invalid account or account/partition combination",
    "Invalid qos specification",
    "Job violates accounting/QOS policy",
    "More processors requested than permitted",
    "Node count specification invalid",
    "Invalid Trackable RESource (TRES) specification",
    "Job dependency problem",
)


def sbatch_refused(stderr: str) -> bool:
    """True when sbatch refused the job itself (not a controller that is down or busy)."""
    return any(r.lower() in (stderr or "").lower() for r in _REFUSALS)


def one_line(text: str) -> str:
    """The last meaningful line of a command's stderr, for a one-line reason."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# -- state ---------------------------------------------------------------------------------------


def squeue_argv(users: Sequence[str] | None = None) -> list[str]:
    """ONE squeue for every job of the user, ended ones too (while MinJobAge keeps them); with
    `users` (lab mode: the submitters with jobs there), every job of those users."""
    who = f"--users={users_arg(users)}" if users else "--me"
    return ["squeue", who, "--noheader", "--states=all",
            "--Format=" + ",".join(f"{f}:|" for f in SQUEUE_FIELDS)]  # fmt: skip


def users_arg(users: Sequence[str]) -> str:
    """A comma-separated user list for squeue/sacct (each a valid login name)."""
    for u in users:
        if not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", u, re.IGNORECASE):
            raise ValueError(f"invalid user name {u!r}")
    return ",".join(sorted(set(users)))


@dataclass(frozen=True)
class SlurmJob:
    """One of lepton's jobs as squeue reports it."""

    slurm_id: str
    job_id: int
    token: str
    state: str
    reason: str
    start: float | None
    end: float | None
    exit_status: int | None  # raw wait status (exit code << 8 | signal)
    cpus: int = 0
    mem_mb: int = 0
    gpus: int | None = None  # None: Slurm's TRES string does not say (no gres/gpu TRES)
    nodes: str = ""
    restarts: int | None = None  # times Slurm requeued it (squeue; None: sacct, or not said)
    submitted: float | None = None  # its submit time: Slurm resets it when it requeues the job

    @property
    def node_count(self) -> int:
        """How many nodes Slurm allocated to it (the hosts its NodeList names; 0 while none)."""
        return hostlist_count(self.nodes)

    @property
    def allocated(self) -> tuple[int, int, int | None] | None:
        """(cpus, mem_mb, gpus) Slurm allocated to it (squeue's tres-alloc, sacct's AllocTRES),
        once it ran; None while it waits (squeue shows a pending job's request there) or where
        Slurm says nothing. The GPUs are None where the TRES string does not count them (a
        cluster that does not account `gres/gpu`): the request stands for them."""
        if self.state in PENDING_STATES or self.start is None or self.cpus <= 0:
            return None
        return self.cpus, self.mem_mb, self.gpus

    @property
    def exit_code(self) -> int | None:
        """The shell's view of the raw status: the code, or 128 + the signal."""
        if self.exit_status is None:
            return None
        sig = self.exit_status & 0x7F
        return 128 + sig if sig else (self.exit_status >> 8) & 0xFF


def hostlist_count(text: str) -> int:
    """How many hosts a Slurm hostlist names: `c1`, `c[1-3,7]`, `a[1-2]b[1-2]`, `c1,g[01-04]`
    -> 1, 4, 4, 5 (empty, `None assigned` or `(null)`: 0)."""
    text = (text or "").strip()
    if not text or text.startswith(("None", "(null)")):
        return 0
    total = 0
    for item in re.split(r",(?![^\[]*\])", text):
        if not item.strip():
            continue
        count = 1
        for group in re.findall(r"\[([^\]]*)\]", item):
            n = 0
            for part in group.split(","):
                lo, sep, hi = part.partition("-")
                n += int(hi) - int(lo) + 1 if sep and lo.isdigit() and hi.isdigit() else 1
            count *= max(1, n)
        total += count
    return total


def _epoch(text: str) -> float | None:
    text = text.strip()
    return float(text) if text.isdigit() and int(text) > 0 else None


def _fields(line: str, n: int, added: int) -> list[str] | None:
    """A `|`-separated record of `n` fields, the last one (the name) taking any `|` left; a
    record from before the `added` fields just ahead of the name were asked (recorded output)
    gets them empty. None: not a record."""
    parts = line.split("|", n - 1)
    if len(parts) >= n:
        return parts
    parts = line.split("|", n - 1 - added)
    if len(parts) < n - added:
        return None
    return [*parts[: n - 1 - added], *([""] * added), parts[-1]]


def parse_squeue(text: str) -> dict[str, SlurmJob]:
    """lepton's jobs in `squeue_argv`'s output, by attempt token; other jobs are skipped."""
    jobs: dict[str, SlurmJob] = {}
    n = len(SQUEUE_FIELDS)
    for line in text.splitlines():
        parts = _fields(line, n, 2)
        if parts is None:
            continue
        name = parts[-1].rstrip("|").strip()
        m = NAME_RE.fullmatch(name)
        if not m or not parts[0].strip().isdigit():
            continue
        cpus, mem, gpus = tres_resources(parts[6])
        status = parts[5].strip()
        job = SlurmJob(
            slurm_id=parts[0].strip(),
            job_id=int(m.group(1)),
            token=m.group(2),
            state=parts[1].strip().split()[0].rstrip("+") if parts[1].strip() else "UNKNOWN",
            reason=parts[2].strip(),
            start=_epoch(parts[3]),
            end=_epoch(parts[4]),
            exit_status=int(status) if status.isdigit() else None,
            cpus=cpus,
            mem_mb=mem,
            gpus=gpus,
            nodes=parts[7].strip(),
            restarts=int(parts[8].strip()) if parts[8].strip().isdigit() else None,
            submitted=_epoch(parts[9]),
        )
        old = jobs.get(job.token)
        if old is None or int(job.slurm_id) > int(old.slurm_id):  # a requeue keeps the newest
            jobs[job.token] = job
    return jobs


# The partition's own queue: other users' pending jobs (`pending_argv`), what they ask; the
# name last, as in SQUEUE_FIELDS.
PENDING_FIELDS = (
    "JobID", "UserName", "Reason", "NumCPUs", "MinMemory", "tres-per-node", "tres-per-job",
    "tres-alloc", "Name",
)  # fmt: skip
# Pending reasons of a job that waits only for room (Slurm starts it as soon as its resources
# free up, ahead of anything submitted later): such a job claims the partition's free capacity
# first. Not BeginTime, Dependency, held, or a limit of its own account/QOS.
WAITING_FOR_ROOM = frozenset({"Resources", "Priority"})


@dataclass(frozen=True)
class OthersPending:
    """The partition's pending jobs that are not lepton's: how many, and of them the `ahead`
    ones (waiting for Resources/Priority) with what they ask in sum."""

    jobs: int = 0
    ahead: int = 0
    cpus: int = 0
    mem_mb: int = 0
    gpus: int = 0


def pending_argv(partition: str) -> list[str]:
    """ONE squeue for the partition's pending jobs, every user's (the poll's own attempts are
    skipped by name when parsed)."""
    if not PARTITION_RE.fullmatch(partition or ""):
        raise ValueError(f"invalid partition {partition!r}")
    return ["squeue", f"--partition={partition}", "--states=PENDING", "--noheader",
            "--Format=" + ",".join(f"{f}:|" for f in PENDING_FIELDS)]  # fmt: skip


def _tres_gpus(text: str) -> int:
    """GPUs in squeue's tres-per-node/tres-per-job (`gres:gpu:2`, `gres/gpu:a100:1`)."""
    text = (text or "").strip()
    if text in ("", "N/A", "(null)"):
        return 0
    items = [re.sub(r"^(tres|gres)[:/]", "", item.strip()) for item in text.split(",")]
    return gres_gpus(",".join(items))


def parse_pending(text: str, own: Collection[str] = ()) -> OthersPending:
    """Other users' pending jobs from `pending_argv`'s output. Skipped by name: `own`, the names
    of this poll's asked attempts (in lab mode every lab user's active attempts on the host).
    Any other job named like lepton's (a colleague's personal ledger, another lab's) is
    someone else's and claims the partition like any job."""
    jobs = ahead = cpus = mem = gpus = 0
    n = len(PENDING_FIELDS)
    for line in text.splitlines():
        parts = line.split("|", n - 1)
        if len(parts) < n or not parts[0].strip():
            continue
        if parts[-1].rstrip().rstrip("|").strip() in own:
            continue
        jobs += 1
        if parts[2].strip() not in WAITING_FOR_ROOM:
            continue
        ahead += 1
        with contextlib.suppress(ValueError, SlurmParseError):
            cpus += int(parts[3].strip() or 0)
            # the job's whole memory: a pending job's tres-alloc is its request, per job;
            # MinMemory is per node, or per CPU under --mem-per-cpu (and says nothing of which)
            mem += tres_resources(parts[7])[1] or mem_mb(parts[4].strip() or "0")
        gpus += max(_tres_gpus(parts[5]), _tres_gpus(parts[6]))
    return OthersPending(jobs, ahead, cpus, mem, gpus)


SACCT_FIELDS = (
    "JobIDRaw", "State", "Reason", "Start", "End", "ExitCode", "AllocTRES", "NodeList",
    "Submit", "JobName",
)  # fmt: skip


def sacct_argv(since_s: float, users: Sequence[str] | None = None) -> list[str]:
    """ONE sacct for every job of the user that was in any state in the last `since_s`
    seconds (the oldest attempt asked about, and a margin): where accounting runs. With
    `users`, those users' jobs (lab mode)."""
    who = [f"--user={users_arg(users)}"] if users else []
    return ["sacct", "--noheader", "--parsable2", "--allocations", *who,
            f"--starttime=now-{max(60, math.ceil(since_s))}",
            "--format=" + ",".join(SACCT_FIELDS)]  # fmt: skip


def sacct_jobs_argv(users: Sequence[str] | None = None) -> list[str]:
    """sacct for named jobs, whatever their time (the Slurm ids are appended as `--jobs=`):
    a job that was never eligible (waiting on a dependency) and was cancelled has no time
    slurmdbd selects by, so `sacct_argv`'s window never shows it."""
    who = [f"--user={users_arg(users)}"] if users else []
    return ["sacct", "--noheader", "--parsable2", "--allocations", *who,
            "--format=" + ",".join(SACCT_FIELDS)]  # fmt: skip


def parse_sacct(text: str) -> dict[str, SlurmJob]:
    """lepton's jobs in `sacct_argv`'s output, by attempt token (as `parse_squeue`)."""
    jobs: dict[str, SlurmJob] = {}
    n = len(SACCT_FIELDS)
    for line in text.splitlines():
        parts = _fields(line, n, 1)
        if parts is None or not parts[0].strip().isdigit():
            continue
        m = NAME_RE.fullmatch(parts[-1].strip())
        if not m:
            continue
        code, _, sig = parts[5].strip().partition(":")
        status = None
        if code.isdigit():
            status = (int(code) << 8) | (int(sig) & 0x7F if sig.isdigit() else 0)
        cpus, mem, gpus = tres_resources(parts[6])
        job = SlurmJob(
            slurm_id=parts[0].strip(),
            job_id=int(m.group(1)),
            token=m.group(2),
            state=(parts[1].split() or ["UNKNOWN"])[0].rstrip("+"),  # "CANCELLED by 0"
            reason=parts[2].strip(),
            start=_epoch(parts[3]),
            end=_epoch(parts[4]),
            exit_status=status,
            cpus=cpus,
            mem_mb=mem,
            gpus=gpus,
            nodes=parts[7].strip() if parts[7].strip() != "None assigned" else "",
            submitted=_epoch(parts[8]),  # no restart count: sacct has none
        )
        old = jobs.get(job.token)
        if old is None or int(job.slurm_id) > int(old.slurm_id):
            jobs[job.token] = job
    return jobs


@dataclass(frozen=True)
class EndFiles:
    """What an attempt directory holds for a job squeue no longer shows."""

    exists: bool
    slurm_id: str | None = None
    exit_code: int | None = None
    started_at: float | None = None
    ended_at: float | None = None  # the end file's mtime


def slurm_status(
    job: SlurmJob | None, files: EndFiles | None, now: float | None = None
) -> dict[str, Any]:
    """The attempt status (the dispatcher's AttemptStatus fields) from squeue's row, else from
    the files in the attempt directory.

    Pending in Slurm -> "starting" (submitted, waiting for Slurm to place it), unless the
    reason says it never will (`never_runs`): then "done", failed, `refused` (to be cancelled
    there), holding nothing from `now`; running ->
    "running"; ended -> "done" with the exit code (the end file's, else Slurm's); a node
    failure or preemption -> "lost" (lepton's retries apply); not in squeue but the directory
    says sbatch took it -> "done" from the end file, else "lost" (Slurm forgot a job that was
    cancelled or killed before its end); nothing anywhere -> "missing" (submit again).
    """
    if job is not None:
        out: dict[str, Any] = {"slurm_id": job.slurm_id, "reason": job.reason}
        if job.state in PENDING_STATES and never_runs(job.reason):
            return {**out, "state": "done", "exit_code": None, "refused": True,
                    "started_at": now, "ended_at": now,
                    "reason": f"Slurm will never run it as asked: {job.reason}"}  # fmt: skip
        if job.state in PENDING_STATES:
            said = f" ({job.reason})" if job.reason and job.reason != "None" else ""
            return {**out, "state": "starting", "reason": f"pending in Slurm{said}"}
        if job.state in RUNNING_STATES:
            return {**out, "state": "running", "started_at": job.start}
        if job.state in LOST_STATES:
            return {**out, "state": "lost", "started_at": job.start, "ended_at": job.end,
                    "reason": f"Slurm ended it: {job.state.lower()}"}  # fmt: skip
        code = files.exit_code if files and files.exit_code is not None else job.exit_code
        out.update(state="done", started_at=job.start, ended_at=job.end, exit_code=code)
        if job.state == "CANCELLED" and job.reason == "DependencyNeverSatisfied":
            out.update(cancelled=True, reason="a job it runs after did not succeed")
        elif job.state == "CANCELLED":
            out.update(cancelled=True, reason="cancelled in Slurm")
        elif job.state in ("TIMEOUT", "DEADLINE"):
            out.update(timed_out=True, reason="time limit reached (Slurm)")
            out["exit_code"] = code if code not in (None, 0) else 124
        elif job.state == "OUT_OF_MEMORY":
            out.update(reason="out of memory (Slurm)")
            out["exit_code"] = code if code not in (None, 0) else 137
        elif job.state == "FAILED":
            out["reason"] = None if code else f"failed in Slurm ({job.reason})"
            if not code:
                out["exit_code"] = 1
        else:
            out["reason"] = None
        if job.start is None:  # ended before it ever ran (cancelled while pending): held
            out["started_at"] = job.end  # nothing, costs nothing
        return out
    if files is not None and files.exit_code is not None:
        return {"state": "done", "exit_code": files.exit_code, "started_at": files.started_at,
                "ended_at": files.ended_at, "slurm_id": files.slurm_id}  # fmt: skip
    if files is not None and files.slurm_id:
        return {"state": "lost", "slurm_id": files.slurm_id, "started_at": files.started_at,
                "reason": f"Slurm no longer knows job {files.slurm_id} and it left no exit code "
                "(cancelled or killed there)"}  # fmt: skip
    return {"state": "missing"}


def scancel_argv(slurm_ids: Sequence[str]) -> list[str]:
    """ONE scancel for many jobs."""
    ids = [str(i) for i in slurm_ids]
    if not all(i.isdigit() for i in ids):
        raise ValueError(f"invalid Slurm job ids {ids!r}")
    return ["scancel", *ids]


def check_token(token: str) -> str:
    """`token` if it is a valid attempt token (it names files and the Slurm job), else raise."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", token or ""):
        raise ValueError(f"invalid attempt token {token!r}")
    return token
