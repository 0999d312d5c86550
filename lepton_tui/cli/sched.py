"""Scheduler commands: `plan` (one round as an integer program), `bench` (policies x workloads)
and `policy` (the DQN's installed weights)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from lepton_tui.cli.common import CONTEXT_SETTINGS, echo_json, make_console, printable, user_text
from lepton_tui.cli.sched_args import (
    number_option,
    parse_loads,
    parse_node_shape,
    policy_names,
    time_limit_options,
    trace_options,
)
from lepton_tui.errors import LeptonError, ValidationError

# The largest value a snapshot's numbers may hold: far beyond any real lab, small enough that the
# planner's per-GPU tables and cost sums stay finite (`"gpus": 1e10` once ran out of memory).
_NODE_LIMITS = {"cpus": 1_000_000, "mem_gb": 1_000_000, "mem_mb": 1_000_000_000, "gpus": 4096,
                "gpu_mem_gb": 1_000_000, "gpu_mem_mb": 1_000_000_000,
                "price_per_hour": 1_000_000_000}  # fmt: skip
_JOB_LIMITS = {**_NODE_LIMITS, "est_runtime_s": 1_000_000_000, "submitted_at": 100_000_000_000,
               "priority": 1_000_000_000}  # fmt: skip
_PRICE_LIMIT = 1_000_000_000
_TIME_LIMIT = 100_000_000_000  # Unix seconds, year 5138


def _shown(value: float) -> str:
    if isinstance(value, int) and abs(value) >= 10**15:
        return f"a {len(str(abs(value)))}-digit number"
    return f"{value:g}"


def _check_bounds(obj: Any, where: str, limits: dict[str, int]) -> None:
    """Refuse a number in `obj` whose magnitude is over its limit, naming the field."""
    if not isinstance(obj, dict):
        return  # parse_snapshot says what is wrong with it
    for key, limit in limits.items():
        value = obj.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value) and abs(value) > limit:
            raise ValidationError(
                f"{where}.{key}: {_shown(value)} is out of range (at most {limit:,})",
                field=f"{where}.{key}",
            )


def check_snapshot_numbers(data: Any) -> None:
    """Bounds on a snapshot's numbers; the rest (types, signs, names) is parse_snapshot's."""
    if not isinstance(data, dict):
        return
    _check_bounds(data, "snapshot", {"now": _TIME_LIMIT})
    price_keys = dict.fromkeys(("node_hour", "cpu_hour", "gpu_hour", "gb_hour"), _PRICE_LIMIT)
    _check_bounds(data.get("prices"), "prices", price_keys)
    for group, limits in (("nodes", _NODE_LIMITS), ("jobs", _JOB_LIMITS)):
        items = data.get(group)
        if not isinstance(items, list):
            continue
        for k, item in enumerate(items):
            _check_bounds(item, f"{group}[{k}]", limits)
            if group == "nodes" and isinstance(item, dict):
                _check_bounds(item.get("prices"), f"{group}[{k}].prices", price_keys)


def _money(x: float) -> str:
    return f"${x:,.2f}"


def _units(x: float) -> str:
    return f"{x:g}" if x == int(x) else f"{x:.2f}"


def _cost_weight(text: str) -> float:
    """--cost-weight checked as the `cost_weight` setting is; the default "0" without importing
    the economics (and with it the ledger and sqlite_utils), which `bench` does not need."""
    if text == "0":
        return 0.0
    from lepton_tui.economics.prices import check_cost_weight

    return check_cost_weight(text)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("snapshot", required=False, type=click.Path(dir_okay=False))
@click.option("--example", is_flag=True, help="Plan the worked example of the economics model.")
@click.option(
    "--cost-weight",
    default="0",
    show_default=True,
    help="Weight of hourly cost against allocated resources.",
)
@click.option("--time-limit", default="10", show_default=True, help="Solver time limit, seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(
    snapshot: str | None, example: bool, cost_weight: str, time_limit: str, as_json: bool
) -> None:
    """Place a snapshot's pending jobs on its nodes with the integer-program planner.

    SNAPSHOT is a JSON file with nodes, prices and jobs (see scheduler/snapshot.py). Prints the
    assignment, utilization per resource and the hourly cost.
    """
    from scheduler.ilp import plan_round, send_solver_output_to_stderr
    from scheduler.snapshot import EXAMPLE_SNAPSHOT, SnapshotError, parse_snapshot

    send_solver_output_to_stderr()  # keep stdout clean (JSON) of HiGHS's stray lines
    if example == (snapshot is not None):
        raise ValidationError("give either a snapshot FILE or --example")
    weight = _cost_weight(cost_weight)
    limit = number_option(time_limit, "--time-limit", minimum=0.001, maximum=3600)
    if example:
        data: Any = EXAMPLE_SNAPSHOT
    else:
        path = Path(snapshot or "")
        if not path.is_file():
            raise ValidationError(f"snapshot file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"{path.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
        except UnicodeDecodeError:
            raise ValidationError(f"{path.name}: not UTF-8 text") from None
        except ValueError:  # an integer with thousands of digits
            raise ValidationError(f"{path.name}: a number in it is too long to read") from None
        except RecursionError:
            raise ValidationError(f"{path.name}: JSON nested too deeply") from None
    check_snapshot_numbers(data)
    try:
        view, jobs = parse_snapshot(data)
    except SnapshotError as exc:
        raise ValidationError(str(exc)) from None
    result = plan_round(
        view,
        jobs,
        cost_weight=weight,
        time_limit_s=limit,
        max_jobs=max(200, len(jobs)),
        always_solve=True,
    )
    for job_id, why in result.unschedulable:
        click.echo(
            printable(f"lepton-tui: warning: job {job_id} is unschedulable: {why}"), err=True
        )
    if as_json:
        echo_json(result.as_dict())
        return
    _print_plan(result, {j.id: j for j in jobs})


def _print_plan(result: Any, jobs: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    console = make_console()
    table = Table(title="Assignment", title_justify="left")
    for col in ("job", "node", "GPU ids", "CPU", "GPU", "memory"):
        table.add_column(col, justify="left" if col in ("job", "node", "GPU ids") else "right")
    for p in result.placements:
        r = jobs[p.job_id].request
        gpu = str(r.gpus) if r.gpus else (f"{r.gpu_mem_mb / 1024:g} GB" if r.gpu_mem_mb else "0")
        table.add_row(
            user_text(p.job_id),  # ids and names come from the snapshot file
            user_text(p.node_id),
            Text(",".join(map(str, p.gpu_ids)) or "-"),
            f"{r.cpus:g}",
            gpu,
            f"{r.mem_mb / 1024:g} GB",
        )
    console.print(table)
    for job_id, why in result.unplaced:
        console.print(user_text(f"waiting: {job_id}: {why}"))
    for job_id, why in result.unschedulable:
        console.print(user_text(f"unschedulable: {job_id}: {why}"))
    u = result.utilization
    console.print(
        f"utilization: CPU {_units(u['cpu'][0])}/{_units(u['cpu'][1])}, "
        f"GPU {_units(u['gpu'][0])}/{_units(u['gpu'][1])}, "
        f"memory {_units(u['mem_gb'][0])}/{_units(u['mem_gb'][1])} GB"
    )
    console.print(
        f"cost: {_money(result.cost_per_hour)}/h (idle {_money(result.idle_cost_per_hour)}/h)"
    )
    console.print(
        f"solver: {'HiGHS' if result.method == 'highs' else 'greedy'}, {result.status}, "
        f"gap {result.gap:.2%}, {result.variables} variables, "
        f"{result.solve_s * 1000:.0f} ms"
    )


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--workload",
    default=None,
    help="deeprm, lab, lab-long, hpc or trace (default: trace with --trace, else deeprm).",
)
@click.option(
    "--trace",
    "trace",
    default=None,
    help="Trace file: a .swf file (Standard Workload Format) or a CSV in the Alibaba 2023 pod "
    "list format. Selects the trace workload.",
)
@click.option("--node-list", default=None, help="Trace: sample --nodes nodes from this node CSV.")
@click.option(
    "--nodes",
    default=None,
    help="Number of nodes (default: deeprm, hpc and .swf traces 1; lab 1 per 125 jobs, trace 1 "
    "per 250, at most 8).",
)
@click.option(
    "--node-shape",
    default=None,
    help="Each node's CPUs, memory and GPUs, e.g. 256c,256G,0g (CPU-only) or 64c,512G,8g.",
)
@click.option(
    "--load",
    default="0.9",
    show_default=True,
    help="Offered load, a comma list such as 0.7,0.9,1.1, or 'native' (a trace's own arrival "
    "times).",
)
@click.option("--jobs", default=None, help="Jobs per run (default: 1000; trace 2000).")
@click.option(
    "--start",
    default=None,
    help="Trace: the first job of the window (an index). With --load native, --seeds N replays N "
    "successive windows of --jobs jobs from there.",
)
@click.option(
    "--repeat",
    is_flag=True,
    help="Trace: cycle the trace when --jobs asks for more tasks than it has (each pass "
    "arrives after the last).",
)
@click.option(
    "--policies",
    default=None,
    help="Comma list of policies (default: every policy; `--policies x` lists the names).",
)
@click.option("--seeds", default="1", show_default=True, help="Seeds per policy (0..N-1).")
@click.option(
    "--estimate-sigma",
    default=None,
    help="Spread of the log-normal runtime estimate error (0 = exact; an .swf trace uses its "
    "requested times unless this is given).",
)
@click.option("--cost-weight", default="0", show_default=True, help="Cost weight for every policy.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON row per policy and seed.")
@click.option(
    "--experiment",
    type=click.Choice(["fragmentation"]),
    default=None,
    help="Run a placement experiment instead: fragmentation (FGD, ATC'23) packs --trace (a pod "
    "list) onto --node-list, policies random, dotprod, packing, clustering, bestfit, fgd, lepton.",
)
@click.option("--inflate", default="1.3", show_default=True, help="Experiment: arrivals x GPUs.")
@click.option("--fair-share", is_flag=True, help="Fair share between the workload's users.")
@click.option("--user-gpus", default=None, help="Limit: each user at most N GPUs at once.")
@click.option(
    "--placement",
    type=click.Choice(["fragmentation", "bestfit"]),
    default=None,
    help="Node choice of every heuristic policy (default: each one's own; FIFO best fit).",
)
@click.option(
    "--time-limit-factor",
    default=None,
    help="Give every job a time limit of F times its estimate (killed there, as a user's padded "
    "request would be).",
)
@click.option(
    "--requeue-on-timeout",
    is_flag=True,
    help="With --time-limit-factor: requeue a job at its limit (it resumes from a checkpoint).",
)
@click.option("--max-requeues", default=None, help="Requeues per job at its limit (default 10).")
def bench(
    workload: str | None,
    trace: str | None,
    node_list: str | None,
    nodes: str | None,
    node_shape: str | None,
    load: str,
    jobs: str | None,
    start: str | None,
    repeat: bool,
    policies: str | None,
    seeds: str,
    estimate_sigma: str | None,
    cost_weight: str,
    as_json: bool,
    experiment: str | None,
    inflate: str,
    fair_share: bool = False,
    user_gpus: str | None = None,
    placement: str | None = None,
    time_limit_factor: str | None = None,
    requeue_on_timeout: bool = False,
    max_requeues: str | None = None,
) -> None:
    """Replay a workload under several policies and seeds; print one table of metrics.
    --fair-share and --user-gpus put the shared lab's rules around every policy;
    --time-limit-factor (and --requeue-on-timeout) gives jobs time limits."""
    ctx = click.get_current_context()
    if experiment == "fragmentation":
        _refuse_replay_options(ctx)
        given = ctx.get_parameter_source("policies") != click.core.ParameterSource.DEFAULT
        _bench_fragmentation(trace, node_list, inflate, seeds, policies if given else None, as_json)
        return
    if ctx.get_parameter_source("inflate") != click.core.ParameterSource.DEFAULT:
        raise ValidationError("--inflate applies to --experiment fragmentation only")
    from scheduler.bench import (
        DEFAULT_JOBS,
        WORKLOADS,
        default_nodes,
        is_swf,
        run_bench,
        summarize,
    )
    from scheduler.workloads import TraceError

    if workload is None:
        workload = "trace" if trace is not None else "deeprm"
    if workload not in WORKLOADS:
        raise ValidationError(
            f"--workload must be one of {', '.join(WORKLOADS)}, got {printable(workload[:40])!r}"
        )
    names = policy_names(policies)
    loads = parse_loads(load)
    if None in loads and workload != "trace":
        raise ValidationError("--load native needs a trace (--trace FILE)")
    n_seeds = number_option(seeds, "--seeds", integer=True, minimum=1, maximum=1000)
    opts: dict[str, Any] = {}
    if jobs is not None:
        opts["jobs"] = number_option(jobs, "--jobs", integer=True, minimum=1, maximum=1_000_000)
    if nodes is not None:
        opts["nodes"] = number_option(nodes, "--nodes", integer=True, minimum=1, maximum=10_000)
    elif node_list is None:  # a short run gets a small cluster, so that it queues work
        n_jobs = opts.get("jobs", DEFAULT_JOBS[workload])
        opts["nodes"] = default_nodes(workload, n_jobs, workload == "trace" and is_swf(trace))
    if estimate_sigma is not None:
        opts["estimate_sigma"] = number_option(
            estimate_sigma, "--estimate-sigma", minimum=0, maximum=10
        )
    if node_shape is not None:
        if workload == "deeprm":
            raise ValidationError("--node-shape does not apply to deeprm (its nodes are fixed)")
        opts["node_shape"] = parse_node_shape(node_shape)
    opts.update(trace_options(workload, trace, node_list, node_shape, start, repeat))
    opts.update(time_limit_options(time_limit_factor, requeue_on_timeout, max_requeues))
    weight = _cost_weight(cost_weight)
    if "ilp" in names:
        from scheduler.ilp import send_solver_output_to_stderr

        send_solver_output_to_stderr()
    popts: dict[str, dict[str, Any]] = {
        p: {"cost_weight": weight} for p in names if weight and p != "dqn"
    }
    if placement is not None:  # the heuristics' node choice (scheduler/heuristics.py PLACEMENTS)
        from scheduler.heuristics import HEURISTICS

        for p in names:
            if p in HEURISTICS:
                popts.setdefault(p, {})["placement"] = placement
    lab_rules: dict[str, Any] = {}
    if fair_share:
        lab_rules["fair_share"] = True
    if user_gpus is not None:
        lab_rules["user_gpus"] = number_option(user_gpus, "--user-gpus", integer=True, minimum=1,
                                         maximum=100_000)  # fmt: skip
    rows: list[dict[str, Any]] = []
    try:
        for ld in loads:
            rows += run_bench(workload, names, n_seeds, policy_options=popts, load=ld,
                              lab_rules=lab_rules, **opts)  # fmt: skip
    except TraceError as exc:
        raise ValidationError(str(exc)) from None
    except ValueError as exc:
        raise LeptonError(str(exc)) from None
    _warn_short(rows, trace)
    if as_json:
        echo_json(rows)
        return
    _print_bench(summarize(rows), workload, n_seeds)


def _warn_short(rows: list[dict[str, Any]], trace: str | None) -> None:
    """Say on stderr when a trace window had fewer tasks than --jobs asked for."""
    short = [r for r in rows if r["jobs_asked"] > r["jobs"] + r["dropped"]]
    if short:
        r = min(short, key=lambda r: r["jobs"] + r["dropped"])
        click.echo(
            f"warning: {printable(Path(trace or '').name)} ran out of tasks: --jobs "
            f"{r['jobs_asked']} replayed {r['jobs'] + r['dropped']} (seed {r['seed']}); "
            "add --repeat to cycle the trace",
            err=True,
        )


def _print_bench(summary: list[dict[str, Any]], workload: str, seeds: int) -> None:
    from rich.console import Console
    from rich.table import Table

    # a cluster without GPUs (an HPC trace): show the CPUs' utilization instead
    cpu_only = all(not s["gpu_util_arrivals"] for s in summary)
    util = ("cpu_util", "CPU util", "{:.0%}") if cpu_only else (
        "gpu_util_arrivals", "GPU util", "{:.0%}")  # fmt: skip
    cols = [
        ("avg_bounded_slowdown", "avg bsld", "{:.2f}"),
        ("p95_bounded_slowdown", "p95 bsld", "{:.1f}"),
        ("avg_jct", "avg JCT s", "{:.0f}"),
        ("makespan", "makespan s", "{:.0f}"),
        ("gap_makespan", "vs bound", "{:+.0%}"),
        util,
        ("cost", "cost $", "{:.0f}"),
        ("idle_cost", "idle $", "{:.0f}"),
        ("decision_ms_p50", "ms p50", "{:.2f}"),
        ("decision_ms_p99", "ms p99", "{:.2f}"),
    ]
    table = Table(
        title=f"{workload}, {seeds} seed(s): mean ± std "
        f"({'CPU util' if cpu_only else 'GPU util while jobs arrive'}; cost in $ at the bench's "
        "prices)",
        title_justify="left",
    )
    table.add_column("load", justify="right", no_wrap=True)
    table.add_column("policy", no_wrap=True, min_width=8)
    for _, head, _ in cols:
        table.add_column(head, justify="right")
    for s in summary:
        cells = []
        for key, _, fmt in cols:
            cell = fmt.format(s[key])
            if seeds > 1 and key not in ("decision_ms_p50", "decision_ms_p99"):
                cell += " ± " + fmt.format(s[key + "_std"]).lstrip("+")
            cells.append(cell)
        ld = s["load"]
        table.add_row(ld if isinstance(ld, str) else f"{ld:g}", s["policy"], *cells)
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)  # a pipe or file: never squeeze the table
    console.print(table)


_EXPERIMENT_OPTIONS = frozenset({"trace", "node_list", "inflate", "seeds", "policies", "as_json"})
"""what `--experiment fragmentation` reads; every other bench option is a replay's"""


def _refuse_replay_options(ctx: click.Context) -> None:
    """A replay option given with `--experiment fragmentation` (which packs pods once, with no
    arrivals, limits or users) is refused instead of silently ignored."""
    for param in ctx.command.params:
        name = param.name or ""
        if name in _EXPERIMENT_OPTIONS or name == "experiment":
            continue
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            flag = max(getattr(param, "opts", [f"--{name}"]), key=len)
            raise ValidationError(
                f"{flag} does not apply to --experiment fragmentation (it packs --trace onto "
                "--node-list once; it takes --inflate, --seeds, --policies and --json): drop it"
            )


def _bench_fragmentation(
    trace: str | None,
    node_list: str | None,
    inflate: str,
    seeds: str,
    policies: str | None,
    as_json: bool,
) -> None:
    """The FGD experiment (scheduler/packing.py): unallocated GPU share per policy and seed."""
    from scheduler.packing import PAPER, POLICIES, PackingError, run_experiment, summarize

    if trace is None or node_list is None:
        raise ValidationError(
            "--experiment fragmentation needs --trace POD_CSV and --node-list CSV"
        )
    for path, what in ((trace, "trace"), (node_list, "node list")):
        if not Path(path).is_file():
            raise ValidationError(f"{what} file not found: {path}")
    ratio = number_option(inflate, "--inflate", minimum=0.01, maximum=100)
    n_seeds = number_option(seeds, "--seeds", integer=True, minimum=1, maximum=1000)
    names = list(POLICIES)
    if policies is not None:
        names = [p.strip().lower() for p in policies.split(",") if p.strip()]
        bad = [p for p in names if p not in POLICIES]
        if not names or bad:
            raise ValidationError(
                f"unknown policy {(bad or [''])[0]!r}; choose from {', '.join(POLICIES)}"
            )
    try:
        rows = run_experiment(node_list, trace, names, n_seeds, ratio)
    except PackingError as exc:
        raise ValidationError(str(exc)) from None
    if as_json:
        echo_json(rows)
        return
    from rich.table import Table

    table = Table(
        title=f"Unallocated GPU share at {ratio:.0%} arrivals, seeds 42-{41 + n_seeds}",
        title_justify="left",
    )
    for col in ("policy", "mean %", "std", "paper % (default list)"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for s in summarize(rows):
        paper = PAPER.get(s["policy"])
        table.add_row(
            s["policy"], f"{s['mean']:.2f}", f"{s['std']:.2f}", f"{paper:.2f}" if paper else "-"
        )
    make_console().print(table)


@click.group(context_settings=CONTEXT_SETTINGS)
def policy() -> None:
    """The DQN policy's weights: which run, and installing retrained ones."""


@policy.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.pass_context
def policy_ls(ctx: click.Context, as_json: bool) -> None:
    """List the shipped and installed weights: which one `dqn` runs, trained on what, scoring
    what on the check replay (average bounded slowdown beside backfill's)."""
    from lepton_tui.cli.common import service_for

    with service_for(ctx) as svc:
        rows = svc.policies()
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        check = r["check"]
        score = (
            f"check: dqn {check['dqn']:.3f} vs backfill {check['backfill']:.3f} avg bsld"
            if check
            else "check: -"
        )
        trained = (r["trained"] or {}).get("command") or "-"
        mark = "*" if r["active"] else " "
        click.echo(f"{mark} {printable(r['name'])}  {score}  trained: {printable(trained)}")


@policy.command("install")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", default=None, help="Name to install it under (default: the file's name).")
@click.option("--force", is_flag=True, help="Replace an installed policy of the same name.")
@click.option("--json", "as_json", is_flag=True, help="Print the installed entry as JSON.")
@click.pass_context
def policy_install(
    ctx: click.Context, file: str, name: str | None, force: bool, as_json: bool
) -> None:
    """Validate a weights file (from `lepton-tui train`), copy it into the state directory and
    make it the weights the `dqn` policy runs."""
    from lepton_tui.cli.common import service_for

    with service_for(ctx) as svc:
        entry = svc.install_policy(file, name, force=force)
    if as_json:
        echo_json(entry)
        return
    check = entry["check"]
    click.echo(
        f"installed {printable(entry['name'])} ({entry['path']}); the dqn policy runs it now. "
        f"Check replay: avg bounded slowdown {check['dqn']:.3f} (backfill {check['backfill']:.3f})"
    )
