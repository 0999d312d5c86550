"""Parsing and validation of everything a user types: sizes, durations, names, job specs.

The CLI and the console's forms share these rules, so a value the form accepts is a value the
command accepts. Every failure is a `ValidationError` naming the field and saying how to fix it.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from lepton_tui.errors import ValidationError

_SIZE_UNITS = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
_SIZE_RE = re.compile(
    r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE | re.ASCII
)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE | re.ASCII)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

MAX_CPUS = 4096.0
MAX_GPUS = 64
MAX_MEM_MB = 64 * 1024 * 1024  # 64 TiB
MAX_GPU_MEM_MB = 1024 * 1024  # 1 TiB per GPU
MAX_TIME_S = 365 * 86400.0
MAX_PRIORITY = 1000
MAX_RETRIES = 100
MAX_COMMAND_BYTES = 256 * 1024
MIN_TIME_S = 1.0
MAX_ID = 2**63 - 1  # SQLite's INTEGER: the largest id a job or attempt can have
_ID_RE = re.compile(r"^\+?[0-9]+$")


def _check_text(value: str, what: str) -> str:
    if "\x00" in value:
        raise ValidationError(f"{what} contains a NUL byte", "remove it", field=what)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{what} is not valid UTF-8 text", "retype it", field=what) from exc
    return value


def parse_size_mb(text: str | int | float, what: str = "size") -> int:
    """Parse `8G`, `512M`, `1.5T`, `2048` (MiB) into whole MiB; raise ValidationError otherwise."""
    if isinstance(text, bool):
        raise ValidationError(f"{what}: expected a size like 8G or 512M", field=what)
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _SIZE_RE.match(_check_text(str(text), what))
        if not match:
            raise ValidationError(
                f"{what} {text!r} is not a size", "write it like 512M, 8G or 1.5T", field=what
            )
        value = float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]
    if not math.isfinite(value) or value <= 0:
        raise ValidationError(f"{what} must be more than zero, got {text!r}", field=what)
    mb = int(math.ceil(value))
    if mb > MAX_MEM_MB:
        raise ValidationError(f"{what} {text!r} is larger than 64T", "ask for less", field=what)
    return mb


def parse_duration_s(text: str | int | float, what: str = "time") -> float:
    """Parse `90s`, `45m`, `2h`, `1d12h`, `1h30m` or plain seconds; raise ValidationError otherwise."""
    if isinstance(text, bool):
        raise ValidationError(f"{what}: expected a duration like 2h", field=what)
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        raw = _check_text(str(text), what).strip()
        if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", raw):
            seconds = float(raw)
        else:
            parts = _DURATION_PART.findall(raw)
            rebuilt = "".join(f"{n}{u}" for n, u in parts)
            if not parts or rebuilt.lower() != re.sub(r"\s+", "", raw).lower():
                raise ValidationError(
                    f"{what} {text!r} is not a duration",
                    "write it like 90s, 45m, 2h or 1d12h",
                    field=what,
                )
            seconds = sum(float(n) * _DURATION_UNITS[u.lower()] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValidationError(f"{what} must be more than zero, got {text!r}", field=what)
    if seconds > MAX_TIME_S:
        raise ValidationError(f"{what} {text!r} is longer than a year", field=what)
    return seconds


def format_duration(seconds: float | None) -> str:
    """Seconds as a short human duration: 45s, 12m, 3h05m, 2d4h."""
    if seconds is None:
        return "-"
    s = int(max(0, round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s < 600 and s % 60 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def format_size_mb(mb: float | None) -> str:
    """MiB as a short size: 512M, 8G, 1.5T."""
    if mb is None:
        return "-"
    if mb >= 1024 * 1024:
        return f"{mb / (1024 * 1024):.3g}T"
    if mb >= 1024:
        return f"{mb / 1024:.3g}G"
    return f"{int(mb)}M"


def parse_number(
    text: Any, what: str, *, minimum: float, maximum: float, integer: bool = False
) -> float:
    """Parse a finite number within [minimum, maximum]."""
    if isinstance(text, bool):
        raise ValidationError(f"{what} must be a number", field=what)
    if not isinstance(text, (int, float)) and not str(text).isascii():
        # float() reads any script's digits ('١٢' is 12): only 0-9 are taken, as everywhere else
        raise ValidationError(
            f"{what} {text!r} is not a number", "write it with the digits 0-9", field=what
        )
    try:
        value = float(str(text).strip()) if not isinstance(text, (int, float)) else float(text)
    except ValueError:
        raise ValidationError(f"{what} {text!r} is not a number", field=what) from None
    if not math.isfinite(value):
        raise ValidationError(f"{what} must be a finite number, got {text!r}", field=what)
    if integer and value != int(value):
        raise ValidationError(f"{what} must be a whole number, got {text!r}", field=what)
    if value < minimum or value > maximum:
        raise ValidationError(
            f"{what} must be between {minimum:g} and {maximum:g}, got {text!r}", field=what
        )
    return int(value) if integer else value


def parse_id(text: Any, what: str = "job id") -> int:
    """A job (or attempt) id: a whole number from 1 to 2**63-1, the most SQLite can hold."""
    if isinstance(text, bool):
        raise ValidationError(f"{what} must be a whole number", field=what)
    if isinstance(text, int):
        value: int | None = text
    else:
        raw = _check_text(str(text), what).strip()
        value = int(raw) if _ID_RE.match(raw) and len(raw) <= 40 else None
    if value is None or not 1 <= value <= MAX_ID:
        raise ValidationError(
            f"{what} must be a whole number from 1 to {MAX_ID}, got {text!r}", field=what
        )
    return value


def check_name(text: str, what: str = "name") -> str:
    """A host, project or lab name: letters, digits, `.`, `_`, `-`; starts alphanumeric; <= 63."""
    _check_text(text, what)
    if not _NAME_RE.match(text):
        raise ValidationError(
            f"{what} {text!r} is not allowed",
            "use letters, digits, '.', '_' or '-' (start with a letter or digit, at most 63)",
            field=what,
        )
    return text


def parse_env(items: list[str] | tuple[str, ...] | dict[str, str]) -> dict[str, str]:
    """`K=V` pairs (or a dict) into a checked environment mapping."""
    pairs = items.items() if isinstance(items, dict) else []
    env: dict[str, str] = {}
    if not isinstance(items, dict):
        parsed = []
        for item in items:
            if "=" not in item:
                raise ValidationError(
                    f"env {item!r} is not K=V", "write it like FOO=bar", field="env"
                )
            key, value = item.split("=", 1)
            parsed.append((key, value))
        pairs = parsed  # type: ignore[assignment]
    for key, value in pairs:
        if not _ENV_KEY_RE.match(key):
            raise ValidationError(f"env name {key!r} is not a valid variable name", field="env")
        if key.startswith("LEPTON_") or key == "CUDA_VISIBLE_DEVICES":
            raise ValidationError(f"env {key} is set by lepton-tui itself", field="env")
        env[key] = _check_text(value, "env")
    return env


@dataclass
class JobSpec:
    """A validated job request, as the ledger stores it."""

    command: str
    name: str | None = None
    cpus: float = 1.0
    mem_mb: int = 1024
    gpus: int = 0
    gpu_mem_mb: int = 0
    time_limit_s: float | None = None
    priority: int = 0
    project: str = "default"
    after: list[int] = field(default_factory=list)
    retries: int = 0
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # -- notifications, requeue at the time limit, job kind (lepton_tui.job_options) --
    notify_on: list[str] | None = None  # None: the user's default
    requeue_on_timeout: bool = False
    max_requeues: int = 10
    signal: str | None = None  # e.g. USR1@120
    kind: str = "batch"  # or interactive (`lepton-tui shell`)
    constraints: dict[str, Any] = field(default_factory=dict)
    """where it may run: `gpu_type`, `labels` (key=value), `hosts`, `exclude` (see `constraints`)"""
    array_index: int | None = None
    """its index in an array or sweep (`LEPTON_ARRAY_INDEX`); None for a lone job"""
    array_limit: int | None = None
    """how many elements of its array may run at once (None: no cap)"""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_job(
    *,
    command: str | list[str],
    name: str | None = None,
    cpus: Any = 1,
    mem: Any = "1G",
    gpus: Any = 0,
    gpu_mem: Any = None,
    time: Any = None,
    priority: Any = 0,
    project: str | None = None,
    after: Any = (),
    retries: Any = 0,
    workdir: str | None = None,
    env: Any = (),
    # -- notifications, requeue at the time limit, job kind (lepton_tui.job_options) --
    notify: Any = None,
    notify_on: Any = None,
    requeue_on_timeout: Any = False,
    max_requeues: Any = None,
    signal: Any = None,
    kind: Any = None,
    gpu_type: str | None = None,
    constraint: Any = (),
    host: Any = (),
    exclude_host: Any = (),
) -> JobSpec:
    """Check every field of a job request; return a JobSpec or raise the first ValidationError."""
    if isinstance(command, (list, tuple)):
        import shlex

        command = (
            " ".join(shlex.quote(_check_text(a, "command")) for a in command)
            if len(command) != 1
            else command[0]
        )
    command = _check_text(command or "", "command")
    if not command.strip():
        raise ValidationError(
            "the command is empty", "give it after --, e.g. -- python train.py", field="command"
        )
    if len(command.encode("utf-8")) > MAX_COMMAND_BYTES:
        raise ValidationError(
            "the command is longer than 256 KiB", "put it in a script", field="command"
        )
    if name is not None and name != "":
        _check_text(name, "name")
        if len(name) > 128 or not name.isprintable():  # no control or bidi characters
            raise ValidationError("name must be printable and at most 128 characters", field="name")
    else:
        name = None
    n_cpus = float(parse_number(cpus, "cpus", minimum=0.001, maximum=MAX_CPUS))
    mem_mb = parse_size_mb(mem, "mem")
    n_gpus = int(parse_number(gpus, "gpus", minimum=0, maximum=MAX_GPUS, integer=True))
    gpu_mem_mb = 0
    if gpu_mem not in (None, "", 0):
        gpu_mem_mb = parse_size_mb(gpu_mem, "gpu-mem")
        if gpu_mem_mb > MAX_GPU_MEM_MB:
            raise ValidationError("gpu-mem is larger than any GPU (1T)", field="gpu-mem")
    if gpu_mem_mb and n_gpus:
        raise ValidationError(
            "give --gpus (whole GPUs) or --gpu-mem (a share of one GPU), not both",
            "whole GPUs come with all their memory",
            field="gpu-mem",
        )
    time_limit = None if time in (None, "") else parse_duration_s(time, "time")
    if time_limit is not None and time_limit < MIN_TIME_S:
        raise ValidationError(
            f"time limit {time!r} is shorter than one second", "give at least 1s", field="time"
        )
    prio = int(
        parse_number(
            priority, "priority", minimum=-MAX_PRIORITY, maximum=MAX_PRIORITY, integer=True
        )
    )
    project = check_name(project, "project") if project else "default"
    deps: list[int] = []
    for item in after or ():
        for part in str(item).replace(",", " ").split():
            deps.append(parse_id(part, "after"))
    n_retries = int(parse_number(retries, "retries", minimum=0, maximum=MAX_RETRIES, integer=True))
    if workdir:
        _check_text(workdir, "workdir")
        if "\n" in workdir or not (workdir.startswith("/") or workdir.startswith("~")):
            raise ValidationError(
                f"workdir {workdir!r} must be an absolute path or start with ~", field="workdir"
            )
    else:
        workdir = None
    from lepton_tui.job_options import check_options

    options = check_options(
        notify=notify, notify_on=notify_on, requeue_on_timeout=requeue_on_timeout,
        max_requeues=max_requeues, signal=signal, kind=kind, time_limit_s=time_limit,
    )  # fmt: skip
    return JobSpec(
        command=command,
        name=name,
        cpus=n_cpus,
        mem_mb=mem_mb,
        gpus=n_gpus,
        gpu_mem_mb=gpu_mem_mb,
        time_limit_s=time_limit,
        priority=prio,
        project=project,
        after=sorted(set(deps)),
        retries=n_retries,
        workdir=workdir,
        env=parse_env(env or ()),
        **options,
        constraints=constraints(gpu_type, constraint, host, exclude_host),
    )


# -- constraints, arrays and sweeps ---------------------------------------------------------------

_LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9_.:/+-]{1,128}$")
_GPU_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,62}$")
_ARRAY_RE = re.compile(r"^\s*([0-9,\-\s]*?)\s*(?:%\s*([0-9]+))?\s*$")
MAX_ARRAY = 10_000


def parse_label(text: str, what: str = "constraint") -> str:
    """`key=value` (letters, digits and `_.-`; values also `:/+`), as hosts' labels keep it."""
    _check_text(str(text), what)
    key, sep, value = str(text).strip().partition("=")
    if not sep or not _LABEL_KEY_RE.match(key) or not _LABEL_VALUE_RE.match(value):
        raise ValidationError(
            f"{what} {text!r} is not key=value",
            "write it like zone=rack2 (letters, digits, '_', '.', '-')",
            field=what,
        )
    return f"{key}={value}"


def constraints(
    gpu_type: str | None, labels: Any = (), hosts: Any = (), exclude: Any = ()
) -> dict[str, Any]:
    """The checked placement constraints of a job (empty when it has none)."""
    out: dict[str, Any] = {}
    if gpu_type:
        _check_text(gpu_type, "gpu-type")
        if not _GPU_TYPE_RE.match(gpu_type.strip()):
            raise ValidationError(
                f"gpu-type {gpu_type!r} is not a GPU model name", "write it like A100 or H100",
                field="gpu-type",
            )  # fmt: skip
        out["gpu_type"] = gpu_type.strip()
    if isinstance(labels, str):
        labels = [labels]
    found = sorted({parse_label(x) for x in labels or ()})
    if found:
        out["labels"] = found
    for key, items, what in (("hosts", hosts, "host"), ("exclude", exclude, "exclude-host")):
        if isinstance(items, str):
            items = [items]
        names = sorted({check_name(str(x).strip(), what) for x in items or ()})
        if names:
            out[key] = names
    both = set(out.get("hosts", ())) & set(out.get("exclude", ()))
    if both:
        raise ValidationError(
            f"host {sorted(both)[0]} is both required (--host) and excluded (--exclude-host)",
            field="host",
        )
    return out


def parse_array(text: str) -> tuple[list[int], int | None]:
    """`0-15%4`, `1,3,5`, `0-9` into (indices, at most this many at once or None)."""
    raw = _check_text(str(text), "array")
    match = _ARRAY_RE.match(raw)
    hint = "write it like 0-15, 1,3,5 or 0-15%4 (at most 4 at once)"
    if not match:
        raise ValidationError(f"array {text!r} is not a range", hint, field="array")
    indices: set[int] = set()
    for part in match.group(1).split(",") if match.group(1).strip() else ():
        part = part.strip()
        lo, dash, hi = part.partition("-")
        if not lo.strip().isdigit() or (dash and not hi.strip().isdigit()):
            raise ValidationError(f"array {text!r} is not a range", hint, field="array")
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a:
            raise ValidationError(
                f"array range {part!r} ends before it starts", hint, field="array"
            )
        if b - a + 1 + len(indices) > MAX_ARRAY:
            raise ValidationError(
                f"array {text!r} has more than {MAX_ARRAY} elements", field="array"
            )
        indices.update(range(a, b + 1))
    limit = None
    if match.group(2) is not None:
        limit = int(match.group(2))
        if limit < 1:
            raise ValidationError("array %N must be at least 1", hint, field="array")
    if not indices and limit is None:
        raise ValidationError(f"array {text!r} is not a range", hint, field="array")
    return sorted(indices), limit


def parse_sweeps(items: Any) -> list[tuple[str, list[str]]]:
    """`lr=1e-3,1e-4` items into [(name, values)], in the order given."""
    out: list[tuple[str, list[str]]] = []
    for item in items or ():
        name, sep, values = _check_text(str(item), "sweep").partition("=")
        name = name.strip()
        vals = [v.strip() for v in values.split(",")]
        if not sep or not _ENV_KEY_RE.match(name) or not all(vals):
            raise ValidationError(
                f"sweep {item!r} is not NAME=V1,V2,...", "write it like lr=1e-3,1e-4",
                field="sweep",
            )  # fmt: skip
        if any(n == name for n, _ in out):
            raise ValidationError(f"sweep {name} is given twice", field="sweep")
        out.append((name, vals))
    return out


def sweep_commands(command: list[str], sweeps: list[tuple[str, list[str]]]) -> list[list[str]]:
    """The command once per point of the sweeps' cross product, `{name}` replaced by its value
    (a command given as one string gets each value shell-quoted; separate words are quoted
    whole when the job is queued)."""
    import itertools
    import shlex

    joined = " ".join(command)
    for name, _ in sweeps:
        if "{" + name + "}" not in joined:
            raise ValidationError(
                f"sweep {name} does not appear in the command",
                f"write {{{name}}} where its value goes",
                field="sweep",
            )
    total = 1
    for _, vals in sweeps:
        total *= len(vals)
    if total > MAX_ARRAY:
        raise ValidationError(f"the sweep has more than {MAX_ARRAY} points", field="sweep")
    out = []
    for point in itertools.product(*(vals for _, vals in sweeps)):
        words = []
        for word in command:
            for (name, _), value in zip(sweeps, point, strict=True):
                value = shlex.quote(value) if len(command) == 1 else value
                word = word.replace("{" + name + "}", value)
            words.append(word)
        out.append(words)
    return out


def expand_jobs(command: list[str], array: str | None, sweeps: Any, **opts: Any) -> list[JobSpec]:
    """One checked spec, or one per array index or sweep point (the sweep's cross product,
    each point's values put in place of `{NAME}` and quoted), each with its index."""
    sweep = parse_sweeps(sweeps)
    commands = sweep_commands(command, sweep) if sweep else [command]
    limit = None
    if array is not None:
        if sweep:
            indices, limit = parse_array(array)
            if indices and len(indices) != len(commands):
                raise ValidationError(
                    f"--array gives {len(indices)} elements, the sweep {len(commands)}",
                    "with --sweep, give only the cap: --array %4",
                    field="array",
                )
            indices = list(range(len(commands)))
        else:
            indices, limit = parse_array(array)
            if not indices:
                raise ValidationError(
                    f"array {array!r} names no index", "write it like 0-15%4", field="array"
                )
            commands = [command] * len(indices)
    else:
        indices = list(range(len(commands)))
    specs = [validate_job(command=c, **opts) for c in commands]
    if array is None and not sweep:
        return specs
    for spec, index in zip(specs, indices, strict=True):
        spec.array_index = index
        spec.array_limit = limit
    return specs
