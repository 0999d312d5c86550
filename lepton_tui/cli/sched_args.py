"""The checks of the scheduler commands' options (`plan`, `bench`): numbers, node shapes, loads,
policy names and a trace's options, each refused with a one-line error that says how to fix it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lepton_tui.cli.common import printable
from lepton_tui.errors import ValidationError


def number_option(
    text: str,
    name: str,
    *,
    integer: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Any:
    """An option's text as a number in bounds (`integer`: a whole one), or a ValidationError
    naming the option."""
    shown = repr(text) if len(text) <= 40 else repr(text[:40]) + f"... ({len(text):,} characters)"
    try:
        if not text.isascii():  # int() and float() also read other scripts' digits ('١٢' is 12)
            raise ValueError(text)
        value: float = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ValidationError(f"{name} must be {kind}, got {shown}", field=name) from None
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        raise ValidationError(f"{name} must be >= {minimum:g}, got {shown}", field=name)
    if maximum is not None and value > maximum:
        raise ValidationError(f"{name} must be <= {maximum:,g}, got {shown}", field=name)
    return value


def parse_node_shape(text: str) -> Any:
    """'256c,256G,0g' (CPUs, memory in GB, GPUs; an optional fourth item 'NGpg' gives each GPU's
    memory, default 80 GB) as Resources; ValidationError saying the format otherwise."""
    from scheduler.model import Resources

    units = {"c": "cpus", "G": "mem", "g": "gpus", "Gpg": "gpu_mem"}
    got: dict[str, float] = {}
    fmt = "write it as CPUs, memory and GPUs, e.g. 256c,256G,0g (or 64c,512G,8g,80Gpg)"
    for item in text.split(","):
        item = item.strip()
        unit = next((u for u in ("Gpg", "c", "G", "g") if item.endswith(u)), None)
        number = item[: -len(unit)] if unit else ""
        if unit is None or units[unit] in got or not number.isascii():
            raise ValidationError(f"--node-shape {printable(text[:40])!r}: {fmt}")
        got[units[unit]] = number_option(number, "--node-shape", minimum=0, maximum=1_000_000)
    if not {"cpus", "mem", "gpus"} <= got.keys():
        raise ValidationError(f"--node-shape {printable(text[:40])!r}: {fmt}")
    if got["gpus"] != int(got["gpus"]) or got["gpus"] > 4096:
        raise ValidationError("--node-shape: the GPU count must be a whole number up to 4096")
    if got["cpus"] <= 0:
        raise ValidationError("--node-shape: a node needs at least one CPU")
    gpus = int(got["gpus"])
    per_gpu_mb = int(got.get("gpu_mem", 80) * 1024)
    return Resources(float(got["cpus"]), int(got["mem"] * 1024), gpus, gpus * per_gpu_mb)


def parse_loads(text: str) -> list[float | None]:
    """--load: numbers and 'native' (None: the trace's own arrival times)."""
    out: list[float | None] = []
    for x in text.split(","):
        x = x.strip()
        if not x:
            continue
        out.append(
            None
            if x.lower() == "native"
            else number_option(x, "--load", minimum=0.001, maximum=100)
        )
    if not out:
        raise ValidationError("--load is empty")
    return out


def policy_names(policies: str | None) -> list[str]:
    """`--policies` as checked names (default: the bench's policies)."""
    from scheduler.registry import (
        BENCH_DEFAULT_POLICIES,
        EXPERIMENTAL_POLICIES,
        POLICY_NAMES,
        bench_choices,
    )

    names = [p.strip().lower() for p in (policies or ",".join(BENCH_DEFAULT_POLICIES)).split(",")]
    names = [p for p in names if p]
    if not names:
        raise ValidationError("--policies is empty")
    for p in names:
        if p not in POLICY_NAMES and p not in EXPERIMENTAL_POLICIES:
            raise ValidationError(
                f"unknown policy {printable(p[:40])!r}; choose from {bench_choices()}"
            )
    return names


def trace_options(workload: str, trace: str | None, node_list: str | None,
                   node_shape: str | None, start: str | None, repeat: bool) -> dict[str, Any]:  # fmt: skip
    """`run_bench`'s trace options (--trace, --node-list, --start, --repeat), checked."""
    opts: dict[str, Any] = {}
    if (start is not None or repeat) and workload != "trace":
        flag = "--start picks a window of" if start is not None else "--repeat cycles"
        raise ValidationError(f"{flag} a trace (--trace FILE)")
    if start is not None:
        opts["start"] = number_option(
            start, "--start", integer=True, minimum=0, maximum=100_000_000
        )
    if repeat:
        opts["repeat"] = True
    if workload != "trace":
        if trace is not None or node_list is not None:
            raise ValidationError(
                f"--trace and --node-list go with the trace workload, not {workload}"
            )
        return opts
    if trace is None:
        raise ValidationError("--workload trace needs --trace FILE (.swf or .csv)")
    if not Path(trace).is_file():
        raise ValidationError(f"trace file not found: {printable(trace[:200])}")
    opts["trace"] = trace
    if node_list is not None:
        if not Path(node_list).is_file():
            raise ValidationError(f"node list not found: {printable(node_list[:200])}")
        if node_shape is not None:
            raise ValidationError("give either --node-list or --node-shape, not both")
        opts["node_list"] = node_list
    return opts


def time_limit_options(
    factor: str | None, requeue: bool, max_requeues: str | None
) -> dict[str, Any]:
    """`run_bench`'s time limit options (--time-limit-factor, --requeue-on-timeout,
    --max-requeues), checked."""
    if factor is None:
        if requeue or max_requeues is not None:
            flag = "--requeue-on-timeout" if requeue else "--max-requeues"
            raise ValidationError(f"{flag} needs time limits: add --time-limit-factor F")
        return {}
    try:
        given = float(factor) if factor.isascii() else math.nan
    except ValueError:
        given = math.nan
    if not (given > 0 and math.isfinite(given)):  # NaN and words too
        raise ValidationError(
            f"--time-limit-factor must be a positive number (a job's limit is F times its "
            f"estimate), got {printable(factor[:40])!r}",
            field="--time-limit-factor",
        )
    opts: dict[str, Any] = {
        "time_limit_factor": number_option(
            factor, "--time-limit-factor", minimum=0, maximum=1_000_000
        )
    }
    if max_requeues is not None:
        if not requeue:
            raise ValidationError("--max-requeues goes with --requeue-on-timeout")
        opts["max_requeues"] = number_option(
            max_requeues, "--max-requeues", integer=True, minimum=0, maximum=10_000
        )
    if requeue:
        opts["requeue_on_timeout"] = True
    return opts
