"""Job commands: submit, queue, show, cancel, logs."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lepton_tui.cli.common import CONTEXT_SETTINGS, echo_json, fail, service_for
from lepton_tui.validate import format_duration, format_size_mb, validate_job

# The stable JSON shape of a job (documented in README.md, "JSON output").
JOB_JSON_FIELDS = (
    "id", "name", "user", "project", "state", "reason", "command", "workdir",
    "cpus", "mem_mb", "gpus", "gpu_mem_mb", "time_limit_s", "priority", "retries",
    "attempts_used", "host", "submitted_at", "started_at", "ended_at", "exit_code",
)  # fmt: skip


def job_json(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the stable JSON object that `queue --json` and `show --json` print."""
    return {k: job.get(k) for k in JOB_JSON_FIELDS}


def request_text(job: dict[str, Any]) -> str:
    """`4c 16G 2g` style summary of what a job asks for."""
    text = f"{job['cpus']:g}c {format_size_mb(job['mem_mb'])}"
    if job["gpus"]:
        text += f" {job['gpus']}g"
    if job.get("gpu_mem_mb"):
        text += f" {format_size_mb(job['gpu_mem_mb'])}gm"
    return text


@click.command(context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True})
@click.option("--name", help="A short name for the job.")
@click.option("--cpus", default="1", show_default=True, help="CPU cores.")
@click.option("--mem", default="1G", show_default=True, help="Memory: 512M, 8G, 1.5T.")
@click.option("--gpus", default="0", show_default=True, help="Whole GPUs.")
@click.option("--gpu-mem", default=None, help="GPU memory to share one GPU instead: 10G.")
@click.option("--time", "time_", default=None, help="Time limit: 90s, 2h, 1d12h.")
@click.option("--priority", default="0", show_default=True, help="-1000..1000; higher runs first.")
@click.option("--project", default=None, help="Project to charge (default: 'default').")
@click.option("--after", multiple=True, help="Run after job ID succeeded (repeatable).")
@click.option("--retries", default="0", show_default=True, help="Requeues allowed if a host fails.")
@click.option("--workdir", default=None, help="Directory on the host to run in.")
@click.option("--env", multiple=True, help="K=V environment variable (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def submit(
    ctx: click.Context, command: tuple[str, ...], as_json: bool, time_: str | None, **opts: Any
) -> None:
    """Queue COMMAND (after --) with the resources it needs; print the new job id.

    \b
    Example:
      lepton-tui submit --gpus 1 --mem 16G --time 2h --project vision -- python train.py
    """
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        fail("no command given; put it after --, e.g. `lepton-tui submit -- python train.py`", 2)
    spec = validate_job(command=list(command), time=time_, **opts)
    with service_for(ctx) as svc:
        job_id = svc.submit(spec)
        if as_json:
            echo_json(job_json(svc.get_job(job_id)))
        else:
            click.echo(job_id)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--all", "all_states", is_flag=True, help="Include ended jobs.")
@click.option("--user", default=None, help="Only this user's jobs.")
@click.option("--project", default=None, help="Only this project's jobs.")
@click.option("--state", "states", multiple=True, help="Only jobs in this state (repeatable).")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of jobs.")
@click.pass_context
def queue(ctx: click.Context, all_states: bool, user: str | None, project: str | None,
          states: tuple[str, ...], limit: int, as_json: bool) -> None:  # fmt: skip
    """List jobs not yet ended (running first, then queued), with why each queued one waits."""
    with service_for(ctx) as svc:
        jobs = svc.list_jobs(
            all_states=all_states, user=user, project=project, states=states or None, limit=limit
        )
        warnings = _budget_warnings(svc)
    if as_json:
        echo_json([job_json(j) for j in jobs])
        return
    console = Console()
    for line in warnings:
        console.print(f"[yellow]budget:[/] {line}")
    if not jobs:
        console.print("No jobs. Queue one with `lepton-tui submit -- COMMAND`.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("ID", "USER", "PROJECT", "STATE", "REQUEST", "HOST", "AGE", "REASON / COMMAND"):
        table.add_column(col, no_wrap=col != "REASON / COMMAND", overflow="ellipsis")
    now = time.time()
    order = {"running": 0, "cancelling": 1, "starting": 2, "queued": 3}
    for job in sorted(jobs, key=lambda j: (order.get(j["state"], 4), -j["priority"], j["id"])):
        detail = job["reason"] if job["state"] == "queued" and job["reason"] else job["command"]
        table.add_row(
            str(job["id"]), job["user"], job["project"], job["state"], request_text(job),
            job["host"] or "-", format_duration(now - job["submitted_at"]), detail or "",
        )  # fmt: skip
    console.print(table)


def _budget_warnings(svc: Any) -> list[str]:
    """Budget warnings (80 % and 100 %), when the economics module is there."""
    try:
        from lepton_tui.economics import budget_warnings
    except ImportError:
        return []
    return [w.message if hasattr(w, "message") else str(w) for w in budget_warnings(svc.ledger)]


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the job, attempts and events as JSON.")
@click.pass_context
def show(ctx: click.Context, job_id: int, as_json: bool) -> None:
    """Show a job: its spec, attempts and events."""
    with service_for(ctx) as svc:
        job = svc.show_job(job_id)
    if as_json:
        out = job_json(job)
        out["env"] = job["env"]
        out["after"] = job["after"]
        out["attempts"] = job["attempts"]
        out["events"] = job["events"]
        echo_json(out)
        return
    console = Console()
    console.print(f"[bold]job {job['id']}[/] {job['name'] or ''}  [b]{job['state']}[/]")
    rows = [
        ("user", job["user"]), ("project", job["project"]), ("command", job["command"]),
        ("request", request_text(job)), ("time limit", format_duration(job["time_limit_s"])),
        ("priority", job["priority"]), ("retries", f"{job['attempts_used']} used of {job['retries'] + 1}"),
        ("after", ", ".join(map(str, job["after"])) or "-"), ("workdir", job["workdir"] or "~"),
        ("env", json.dumps(job["env"]) if job["env"] else "-"), ("host", job["host"] or "-"),
        ("exit code", "-" if job["exit_code"] is None else job["exit_code"]),
        ("reason", job["reason"] or "-"),
    ]  # fmt: skip
    for key, value in rows:
        console.print(f"  {key:<11} {value}", highlight=False, markup=False)
    if job["attempts"]:
        console.print("[bold]attempts[/]")
        for a in job["attempts"]:
            gpus = ",".join(map(str, a["gpu_ids"])) or "-"
            console.print(
                f"  #{a['attempt_no']} {a['host']} gpus={gpus} {a['state']} exit={a['exit_code']} "
                f"{a['reason'] or ''}",
                markup=False,
            )
    console.print("[bold]events[/]")
    for e in job["events"]:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"]))
        console.print(f"  {stamp}  {e['message']}", markup=False, highlight=False)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("job_ids", nargs=-1, type=int, required=True)
@click.pass_context
def cancel(ctx: click.Context, job_ids: tuple[int, ...]) -> None:
    """Cancel jobs (queued ones at once; running ones are stopped on their host)."""
    with service_for(ctx) as svc:
        results = svc.cancel(job_ids)
    failed = False
    for r in results:
        if r.ok:
            click.echo(r.message)
        else:
            failed = True
            click.echo(f"lepton-tui: error: {r.message}", err=True)
    if failed:
        ctx.exit(1)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("job_id", type=int)
@click.option("--stderr", "stream", flag_value="stderr", help="Show standard error.")
@click.option(
    "--stdout", "stream", flag_value="stdout", default=True, help="Show standard output (default)."
)
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing as the job writes, until it ends."
)
@click.option("--attempt", type=int, default=None, help="Attempt number (default: the latest).")
@click.pass_context
def logs(ctx: click.Context, job_id: int, stream: str, follow: bool, attempt: int | None) -> None:
    """Print a job's log from its host, read by byte offset (follow with -f)."""
    from lepton_tui.logs import follow_log

    with service_for(ctx) as svc:
        for chunk in follow_log(svc, job_id, stream=stream, follow=follow, attempt_no=attempt):
            click.echo(chunk, nl=False)
