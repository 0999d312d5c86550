"""`lepton-tui train`: train the DQN scheduling policy in the simulator (needs torch)."""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click

from lepton_tui.cli.common import CONTEXT_SETTINGS, AsciiNumber, echo_json, service_for
from lepton_tui.errors import LeptonError, ValidationError

WORKLOADS = ("deeprm", "lab", "trace")
TRAIN_SHARE = 0.6
"""The trace's first 60 % of tasks (by submission time) train; the rest is held out."""


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--workload",
    "workloads",
    multiple=True,
    type=click.Choice(WORKLOADS),
    help="Workload kinds to train on (repeatable; default: all three, trace only with --trace).",
)
@click.option(
    "--trace",
    "trace_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Pod list CSV in the Alibaba 2023 format; its first 60 % trains.",
)
@click.option(
    "--from-ledger",
    is_flag=True,
    help="Train on this lab's own job history (arrivals, requests, real runtimes).",
)
@click.option(
    "--steps",
    type=AsciiNumber(click.IntRange(min=100)),
    default=50_000,
    show_default=True,
    help="Environment steps in all (teacher demonstrations included).",
)
@click.option(
    "--seed", type=AsciiNumber(click.INT), default=1, show_default=True, help="Seed of everything."
)
@click.option(
    "--jobs",
    type=AsciiNumber(click.IntRange(min=10)),
    default=200,
    show_default=True,
    help="Jobs per training episode.",
)
@click.option(
    "--eval-every",
    type=AsciiNumber(click.IntRange(min=0)),
    default=None,
    help="Steps between evaluations against the heuristics (default: steps / 5).",
)
@click.option(
    "--aging",
    "aging_h",
    type=AsciiNumber(click.FloatRange(min=0)),
    default=12.0,
    show_default=True,
    help="Hours waited per priority level (the policy's guard rails and the teacher); 0: none.",
)
@click.option(
    "--long-share",
    type=AsciiNumber(click.FloatRange(min=0, max=1)),
    default=0.4,
    show_default=True,
    help="The teacher's limit: jobs estimated over an hour may hold at most this share of the "
    "CPUs and of the GPUs; 0: plain SJF.",
)
@click.option(
    "--threads",
    type=AsciiNumber(click.IntRange(min=1)),
    default=1,
    show_default=True,
    help="Torch threads.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="dqn.npz",
    show_default=True,
    help="Weights file to write (a .json sidecar goes beside it).",
)
@click.option(
    "--cost-weight",
    default="0",
    show_default=True,
    help="Weigh cost: the reward also charges this times the money of idle capacity (the "
    "nodes' prices; synthetic workloads at the bench's), and checkpoints are chosen on "
    "slowdown plus this times cost per job. 0: slowdown only.",
)
@click.option(
    "--fair-share",
    "fair_share",
    type=AsciiNumber(click.FloatRange(min=0, max=1)),
    default=0.5,
    show_default=True,
    help="Share of the training episodes run under the lab's fair share (each job's factor is "
    "a feature of the network); 0: none.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the training summary as JSON.")
@click.pass_context
def train(
    ctx: click.Context,
    workloads: tuple[str, ...],
    trace_path: str | None,
    from_ledger: bool,
    steps: int,
    seed: int,
    jobs: int,
    eval_every: int | None,
    aging_h: float,
    long_share: float,
    threads: int,
    out: str,
    cost_weight: str,
    fair_share: float,
    as_json: bool,
) -> None:
    """Train the DQN policy: imitate SJF (with its long-job limit), then Double DQN; keep the
    best checkpoint."""
    try:
        import torch
    except ImportError:
        raise LeptonError("training needs torch: pip install 'lepton-tui[train]'") from None
    from scheduler.agent import TrainConfig
    from scheduler.agent import train as run_training

    weight = _check_options(aging_h, long_share, cost_weight)
    out_path = Path(out)
    if out_path.suffix != ".npz":
        raise ValidationError("--out must end in .npz", field="out")
    kinds = tuple(dict.fromkeys(workloads)) or (
        ("deeprm", "lab", "trace") if trace_path else ("deeprm", "lab")
    )
    if "trace" in kinds and not trace_path:
        raise ValidationError("--workload trace needs --trace FILE", field="trace")
    ledger = None
    if from_ledger:  # the lab's history: through the lab service in lab mode
        with service_for(ctx, read_only=True) as svc:
            ledger = (svc.training_history(),)
    source, eval_set, data, held_out = _training_data(
        kinds, trace_path, ledger, jobs, steps, weight, fair_share
    )
    torch.set_num_threads(threads)
    config = TrainConfig(
        seed=seed,
        total_steps=steps,
        aging_s=aging_h * 3600.0 if aging_h else None,
        long_share=long_share or None,
        eval_every=eval_every if eval_every is not None else max(1, steps // 5),
        cost_weight=weight,
    )
    command = (
        "lepton-tui train " + " ".join(shlex.quote(a) for a in sys.argv[2:])
        if (len(sys.argv) > 1 and sys.argv[1] == "train")
        else "lepton-tui train"
    )
    meta = {"command": command, "seed": seed, "cost_weight": weight}
    started = time.perf_counter()
    result = _run_with_progress(run_training, config, source, eval_set, out_path, meta)
    summary = {
        "command": command,
        "seed": seed,
        "steps": steps,
        "cost_weight": weight,
        "data": data,
        "held_out": {
            "seeds": "workload seeds 0-999 (training draws from 10,000 up)",
            "trace_tasks": held_out,
        },
        "validation": [f"{wl.name}:{len(wl.jobs)} jobs" for wl in eval_set],
        "best": result["best"],
        "history": result["history"],
        "episodes": result["episodes"],
        "imitation_accuracy": result.get("imitation_accuracy"),
        "elapsed_s": round(time.perf_counter() - started, 1),
        "config": result["config"],
        "weights": str(out_path),
        "weights_bytes": out_path.stat().st_size,
    }
    _write_sidecar(out_path, summary)
    if as_json:
        echo_json(summary)
    else:
        b = result["best"]
        click.echo(
            f"wrote {out_path} ({summary['weights_bytes']} bytes) and "
            f"{out_path.with_suffix('.json').name}: best checkpoint at step {b.get('step')} "
            f"({b.get('phase')}), validation slowdown "
            f"{b.get('ratio_to_best', float('nan')):.3f} x the best heuristic, "
            f"{summary['elapsed_s']:.0f} s"
        )


def _check_options(aging_h: float, long_share: float, cost_weight: str) -> float:
    """Refuse non-finite --aging and --long-share; the --cost-weight as a number."""
    if not math.isfinite(aging_h):
        raise ValidationError(
            f"--aging must be a number of hours, got {aging_h}",
            "e.g. --aging 12; 0 turns aging off",
            field="aging",
        )
    if not math.isfinite(long_share):
        raise ValidationError(
            f"--long-share must be a share between 0 and 1, got {long_share}",
            "e.g. --long-share 0.4; 0 turns the limit off",
            field="long-share",
        )
    from lepton_tui.economics.prices import check_cost_weight

    return check_cost_weight(cost_weight)


def _training_data(
    kinds: tuple[str, ...],
    trace_path: str | None,
    ledger: tuple[dict[str, Any]] | None,
    jobs: int,
    steps: int,
    cost_weight: float,
    fair_share: float = 0.0,
) -> tuple[Any, list, dict[str, Any], int]:
    """(episode source, validation workloads, what the data was, held-out trace tasks): the
    lab's history when `ledger` is given (holding `Service.training_history`), else the synthetic
    mix and the trace's first 60 %; priced workloads when `cost_weight` > 0."""
    from scheduler import workloads as w
    from scheduler.agent import WorkloadMix, ledger_mix, with_prices

    tasks: list = []
    if trace_path:
        try:
            tasks = w.load_trace(trace_path)
        except w.TraceError as e:
            raise ValidationError(str(e), field="trace") from None
        except OSError as e:
            raise ValidationError(
                f"cannot read {trace_path}: {e.strerror}", field="trace"
            ) from None
    split = int(len(tasks) * TRAIN_SHARE)
    train_tasks = tasks[:split]
    data: dict[str, Any] = {"kinds": list(kinds), "jobs_per_episode": jobs}
    priced = cost_weight > 0
    if ledger is not None:
        history = history_workload(ledger[0])
        if priced:
            history = with_prices(history)
        data = {"ledger": True, "jobs": len(history.jobs), "nodes": len(history.nodes)}
        return ledger_mix([history]), [history], data, len(tasks) - split
    source = WorkloadMix(
        kinds=kinds,
        jobs=jobs,
        trace_tasks=train_tasks if "trace" in kinds else [],
        priced=priced,
        fair_share=fair_share,
    )
    data["fair_share_episodes"] = fair_share
    eval_set = validation_set(kinds, train_tasks, small=steps < 10_000)
    if priced:
        eval_set = [with_prices(wl) for wl in eval_set]
    if trace_path:
        data.update(
            trace=str(trace_path),
            trace_tasks=len(tasks),
            trace_train_tasks=f"[0, {split})",
            trace_held_out=f"[{split}, {len(tasks)})",
        )
    return source, eval_set, data, len(tasks) - split


def _write_sidecar(out_path: Path, summary: dict[str, Any]) -> None:
    """The training summary beside the weights, keeping an evaluation of the same command."""
    sidecar = out_path.with_suffix(".json")
    previous = {}
    if sidecar.exists():
        try:
            previous = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            previous = {}
    if "evaluation" in previous and previous.get("command") == summary["command"]:
        summary["evaluation"] = previous["evaluation"]
    sidecar.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")


def _run_with_progress(run_training, config, source, eval_set, out_path, meta) -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("training", total=config.total_steps, note="")

        def progress(step: int, info: dict) -> None:
            note = ""
            if "eval" in info:
                ev = info["eval"]
                note = f"eval@{ev['step']}: {ev['ratio_to_best']:.3f} x best heuristic"
                if not console.is_terminal:
                    click.echo(f"step {step}: {note} ({ev['phase']})", err=True)
            bar.update(task, completed=step, description=info.get("phase", "training"))
            if note:
                bar.update(task, note=note)

        return run_training(config, source, eval_set, out_path, progress, meta)


def validation_set(kinds: tuple[str, ...], train_tasks: list, small: bool = False) -> list:
    """Workloads the periodic evaluation uses: validation seeds (900+), apart from training's
    (10,000+) and the evaluation table's (0-4); trace windows from the training part only.

    At the evaluation table's sizes (deeprm 500 jobs on 1 node, lab 500 on 8 nodes, trace 1,000
    on 8 nodes) and loads 0.9 and 1.1, two of each for lab and trace: checkpoints chosen on six
    300-job workloads looked 3-6 % better than SJF there and were 2-38 % worse held out.
    `small` (short runs): one load, 60 jobs each."""
    from scheduler import workloads as w

    if small:
        out = []
        if "deeprm" in kinds:
            out.append(w.deeprm(60, load=1.0, seed=900, num_nodes=2))
        if "lab" in kinds:
            out.append(w.lab_mix(60, 1.1, 910, nodes=4))
        if "trace" in kinds and train_tasks:
            start = max(0, len(train_tasks) - 61)
            out.append(
                w.trace_workload(train_tasks, jobs=60, start=start, load=1.0, seed=920, nodes=4)
            )
        return out
    out = []
    for v, load in enumerate((0.9, 1.1)):
        for r in range(2):
            if "lab" in kinds:
                out.append(w.lab_mix(500, load, 930 + 2 * v + r, nodes=8, estimate_sigma=0.5))
            if "trace" in kinds and train_tasks:
                n = min(1000, len(train_tasks))
                start = max(0, len(train_tasks) - n - (2 * v + r) * 700)
                out.append(
                    w.trace_workload(
                        train_tasks,
                        jobs=n,
                        start=start,
                        load=load,
                        seed=940 + 2 * v + r,
                        nodes=8,
                        estimate_sigma=0.5,
                    )
                )
        if "deeprm" in kinds:
            out.append(w.deeprm(500, load=load, seed=950 + v, num_nodes=1))
    return out


def ledger_workload(home: str | None):
    """The history of the ledger in `home` as a workload (`history_workload`)."""
    from lepton_tui.service import Service

    svc = Service.open(home)
    try:
        return history_workload(svc.training_history())
    finally:
        svc.close()


def history_workload(history: dict[str, Any]):
    """The lab's own history (`Service.training_history`) as a workload: each job that ran to
    the end, arriving when it was submitted, with its request and its real runtime (last
    finished attempt); hosts as nodes."""
    from lepton_tui.cluster_view import DEFAULT_EST_RUNTIME_S
    from scheduler.model import Job, Node, Resources, Workload

    rows, hosts = history["runs"], history["hosts"]
    if not hosts:
        raise LeptonError("--from-ledger: no host with a known capacity in the ledger")
    by_job: dict[int, dict] = {}
    for r in rows:
        by_job[r["id"]] = r  # the last finished attempt wins
    if len(by_job) < 10:
        raise LeptonError(
            f"--from-ledger: only {len(by_job)} finished jobs in the ledger; need at least 10"
        )
    nodes = [
        Node(
            h["name"],
            Resources(
                float(h["cpus"]),
                int(h["mem_mb"] or 0),
                int(h["gpus"] or 0),
                int(h["gpu_mem_mb"] or 0),
            ),
        )
        for h in hosts
    ]
    jobs = []
    for r in by_job.values():
        runtime = float(r["ended_at"] - r["started_at"])
        gpus = int(r["gpus"] or 0)
        req = Resources(
            float(r["cpus"] or 0),
            int(r["mem_mb"] or 0),
            gpus,
            0 if gpus else int(r["gpu_mem_mb"] or 0),
        )
        # what the dispatcher knew: the time limit, else its default estimate (not the runtime)
        est = float(r["time_limit_s"] or DEFAULT_EST_RUNTIME_S)
        jobs.append(
            Job(
                r["id"],
                req,
                float(r["submitted_at"]),
                runtime,
                est,
                float(r["priority"] or 0),
                r["user"] or "",
                r["project"] or "",
            )
        )
    return Workload("ledger", jobs, nodes, [], False, {})
