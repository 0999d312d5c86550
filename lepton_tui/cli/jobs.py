"""Job commands: submit, queue, show, cancel, logs."""

from __future__ import annotations

import json
import shutil
import sys
import time
from typing import Any

import click

from lepton_tui.cli.common import (
    CONTEXT_SETTINGS,
    AsciiNumber,
    TerminalLogFilter,
    echo_json,
    fail,
    make_console,
    printable,
    service_for,
    user_text,
)
from lepton_tui.cli.listing import (
    RESET,
    YELLOW,
    is_terminal,
    table_lines,
    use_color,
    write_json_array,
    write_lines,
)
from lepton_tui.errors import NotFound, ValidationError
from lepton_tui.request_text import short_request
from lepton_tui.schema import FAILED_JOB_STATES
from lepton_tui.validate import JobSpec, expand_jobs, format_duration, parse_id

# The stable JSON shape of a job (documented in README.md, "JSON output").
JOB_JSON_FIELDS = (
    "id", "name", "user", "project", "state", "reason", "command", "workdir",
    "cpus", "mem_mb", "gpus", "gpu_mem_mb", "time_limit_s", "priority", "retries",
    "attempts_used", "host", "submitted_at", "started_at", "ended_at", "exit_code",
    # notifications, requeue at the time limit, job kind (lepton_tui.job_options)
    "notify_on", "requeue_on_timeout", "max_requeues", "requeues", "signal", "kind",
    "array_id", "array_index", "array_limit", "constraints",
)  # fmt: skip


NO_DISPATCHER = "no dispatcher is running: open the console or `lepton-tui serve`"


def job_json(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the stable JSON object that `queue --json` and `show --json` print."""
    out = {k: job.get(k) for k in JOB_JSON_FIELDS}
    c = out.get("constraints")
    out["constraints"] = json.loads(c) if isinstance(c, str) else (c or None)  # null: none
    return out


def request_text(job: dict[str, Any]) -> str:
    """`4c 16G 2gpu` style summary of what a job asks for (as the console writes it)."""
    return short_request(job["cpus"], job["mem_mb"], job["gpus"], job.get("gpu_mem_mb") or 0)


class SubmitCommand(click.Command):
    """`submit`: options first, then the job's command, verbatim.

    Everything after `--` (or from the first word that is not an option) is the command, even
    words that start with `-`. An unknown option before it is refused, never folded into the
    command: `submit --cpu 4 -- python x` must not queue `--cpu 4 python x` on one CPU.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            close = sorted(exc.possibilities or ())
            names = ", ".join(close[:-1]) + " or " + close[-1] if len(close) > 1 else "".join(close)
            guess = f" (did you mean {names}?)" if close else ""
            raise ValidationError(
                f"no such option: {exc.option_name}{guess}",
                "options go before --, the command after it: `lepton-tui submit [OPTIONS] -- COMMAND`",
                field="command",
            ) from None


@click.command(
    cls=SubmitCommand, context_settings={**CONTEXT_SETTINGS, "allow_interspersed_args": False}
)
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
# -- notifications and requeue at the time limit (lepton_tui.job_options) --
@click.option(
    "--notify/--no-notify",
    default=None,
    help="Tell me when it ends, fails, times out or is held (default: `notify set`).",
)
@click.option("--notify-on", default=None, help="Only on these: end,fail,timeout,hold.")
@click.option(
    "--requeue-on-timeout",
    is_flag=True,
    help="Requeue it at its time limit (it checkpoints; LEPTON_RESTART_COUNT says).",
)
@click.option("--max-requeues", default=None, help="Requeues at most (default 10).")
@click.option("--signal", default=None, help="SIGNAL@SECONDS before the limit, e.g. USR1@120.")
# --
@click.option("--gpu-type", default=None, help="Only hosts with this GPU model: A100, H100.")
@click.option("--constraint", multiple=True, help="Only hosts labelled key=value (repeatable).")
@click.option("--host", multiple=True, help="Only this host (repeatable: any of them).")
@click.option("--exclude-host", multiple=True, help="Never this host (repeatable).")
@click.option("--array", default=None, help="An array: 0-15, 1,3,5; 0-15%4 runs 4 at once.")
@click.option(
    "--sweep", multiple=True, help="NAME=V1,V2: one job per value, {NAME} in the command."
)
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def submit(
    ctx: click.Context, command: tuple[str, ...], as_json: bool, time_: str | None, **opts: Any
) -> None:
    """Queue COMMAND (after --) with the resources it needs; print the new job id.

    Options come first; everything after -- is the command, as typed.

    \b
    Example:
      lepton-tui submit --gpus 1 --mem 16G --time 2h --project vision -- python train.py
    """
    if not command:
        fail("no command given; put it after --, e.g. `lepton-tui submit -- python train.py`", 2)
    array, sweep = opts.pop("array"), opts.pop("sweep")
    specs = expand_jobs(list(command), array, sweep, time=time_, **opts)
    spec = specs[0]
    if len(specs) > 1 or spec.array_index is not None:
        _submit_array(ctx, specs, as_json)
        return
    ended: list[tuple[int, str]] = []  # --after jobs that can no longer succeed
    with service_for(ctx) as svc:
        for dep in spec.after:  # an unknown --after is bad input (exit 2), like any other
            try:
                state = svc.get_job(dep)["state"]
            except NotFound:
                raise ValidationError(
                    f"job {dep} (to run after) does not exist",
                    "see `lepton-tui queue --all`",
                    field="after",
                ) from None
            if state in FAILED_JOB_STATES:
                ended.append((dep, state))
        job_id = svc.submit(spec)
        job = svc.get_job(job_id)
        dispatching = as_json or svc.dispatcher_running()
    if as_json:
        echo_json(job_json(job))
    else:
        click.echo(job_id)
    if (job["reason"] or "").startswith("unschedulable"):  # queued, but no host has what it needs
        click.echo(
            f"lepton-tui: warning: job {job_id} is {printable(job['reason'])}; it stays queued "
            "until such a host is added",
            err=True,
        )
    for dep, state in ended:  # queued all the same, as sbatch does: the dispatcher cancels it
        click.echo(
            f"lepton-tui: warning: job {dep} (to run after) already ended {state}, so job "
            f"{job_id} will be cancelled without running; `lepton-tui cancel {job_id}` and "
            f"submit again without --after {dep} to run it anyway",
            err=True,
        )
    if not dispatching:
        click.echo(f"lepton-tui: note: {NO_DISPATCHER}", err=True)


def _submit_array(ctx: click.Context, specs: list[JobSpec], as_json: bool) -> None:
    """Queue an array (or a sweep) in one transaction; print its id (its first job's)."""
    with service_for(ctx) as svc:
        ids = svc.submit_many(specs)
        jobs = [svc.get_job(i) for i in ids[:1]] if not as_json else [svc.get_job(i) for i in ids]
        dispatching = as_json or svc.dispatcher_running()
    if as_json:
        echo_json([job_json(j) for j in jobs])
    else:
        click.echo(ids[0])
        limit = specs[0].array_limit
        cap = f", at most {limit} at once" if limit else ""
        click.echo(f"array {ids[0]}: {len(ids)} jobs ({ids[0]}.INDEX for one){cap}", err=True)
    reason = jobs[0]["reason"] or ""
    if reason.startswith("unschedulable"):
        click.echo(f"lepton-tui: warning: array {ids[0]} is {printable(reason)}; it stays queued "
                   "until such a host is added", err=True)  # fmt: skip
    if not dispatching:
        click.echo(f"lepton-tui: note: {NO_DISPATCHER}", err=True)


QUEUE_HEADERS = ("ID", "USER", "PROJECT", "STATE", "REQUEST", "HOST", "AGE", "REASON / COMMAND")


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--all", "all_states", is_flag=True, help="Include ended jobs.")
@click.option("--user", default=None, help="Only this user's jobs.")
@click.option("--project", default=None, help="Only this project's jobs.")
@click.option("--state", "states", multiple=True, help="Only jobs in this state (repeatable).")
@click.option(
    "--limit", default=1000, show_default=True, type=AsciiNumber(click.IntRange(1, 1_000_000))
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of jobs.")
@click.option("--no-pager", is_flag=True, help="Never page a long list on a terminal.")
@click.option("--expand", is_flag=True, help="One row per array element (ID.INDEX).")
@click.pass_context
def queue(ctx: click.Context, all_states: bool, user: str | None, project: str | None,
          states: tuple[str, ...], limit: int, as_json: bool, no_pager: bool,
          expand: bool) -> None:  # fmt: skip
    """List jobs not yet ended (running first, then queued), with why each queued one waits.

    With --all, ended jobs follow, the most recently ended first; --limit keeps the first N.
    On a terminal a list longer than the screen goes through $PAGER (less)."""
    filters: dict[str, Any] = {
        "all_states": all_states, "user": user, "project": project, "states": states or None,
    }  # fmt: skip
    with service_for(ctx, read_only=True) as svc:
        if as_json:  # written as it is read: 100,000 jobs are never all held
            write_json_array(job_json(j) for j in svc.iter_jobs(**filters, limit=limit))
            return
        jobs = svc.list_jobs(**filters, limit=limit)
        total = svc.count_jobs(**filters) if len(jobs) == limit else len(jobs)
        warnings = _budget_warnings(svc)
        dispatching = svc.dispatcher_running()
    color = use_color(sys.stdout)
    lines = [(f"{YELLOW}budget:{RESET} " if color else "budget: ") + printable(w) for w in warnings]
    if not jobs:
        lines.append("No jobs. Queue one with `lepton-tui submit -- COMMAND`.")
    else:
        width = shutil.get_terminal_size().columns if is_terminal(sys.stdout) else None
        lines.extend(queue_lines(jobs, time.time(), color=color, width=width, expand=expand))
    if total > len(jobs):
        what = "jobs" if all_states or states else "jobs not yet ended"
        lines.append(f"showing {len(jobs):,} of {total:,} {what} (--limit N to see more)")
    write_lines(lines, page=not no_pager)
    if not dispatching and any(j["state"] == "queued" for j in jobs):  # a note, not a row
        click.echo(f"lepton-tui: note: {NO_DISPATCHER}", err=True)


def queue_lines(
    jobs: list[dict[str, Any]], now: float, *, color: bool = False, width: int | None = None,
    expand: bool = False,
) -> list[str]:  # fmt: skip
    """The queue table as lines: live jobs first (running, then queued), then the most recently
    ended; with a `width` (a terminal's) the last column is cut to fit it. An array is one row
    (`ID[N]`, its states counted) unless `expand`, then one row per element (`ID.INDEX`)."""
    rows = []
    arrays: dict[int, list[dict[str, Any]]] = {}
    for job in jobs:
        if job.get("array_id") is not None and not expand:
            arrays.setdefault(int(job["array_id"]), []).append(job)
    shown: set[int] = set()
    for job in jobs:
        array_id = job.get("array_id")
        if array_id is not None and not expand:
            if array_id in shown:
                continue
            shown.add(array_id)
            rows.append(array_row(arrays[array_id], now))
            continue
        # a job waiting in a Slurm queue (starting) shows Slurm's pending reason, as queued ones
        waits = job["state"] in ("queued", "starting") and job["reason"]
        detail = job["reason"] if waits else job["command"]
        if job.get("kind") == "interactive":  # `lepton-tui shell`: told apart
            detail = f"[shell] {detail}"
        ident = str(job["id"]) if array_id is None else f"{array_id}.{job['array_index']}"
        rows.append((
            ident, printable(job["user"]), printable(job["project"]), job["state"],
            request_text(job), printable(job["host"] or "-"),
            format_duration(now - job["submitted_at"]), printable(detail or ""),
        ))  # fmt: skip
    return list(table_lines(QUEUE_HEADERS, rows, width=width, color=color))


def array_row(elements: list[dict[str, Any]], now: float) -> tuple[str, ...]:
    """One queue row for an array's elements: `ID[N]`, its states counted, the first reason."""
    first = elements[0]
    counts: dict[str, int] = {}
    for e in elements:
        counts[e["state"]] = counts.get(e["state"], 0) + 1
    states = ", ".join(f"{n} {state}" for state, n in counts.items())
    hosts = sorted({e["host"] for e in elements if e["host"]})
    waiting = next((e["reason"] for e in elements if e["state"] == "queued" and e["reason"]), "")
    cap = f" %{first['array_limit']}" if first.get("array_limit") else ""
    detail = f"array of {len(elements)}{cap}: {states}" + (f"; {waiting}" if waiting else "")
    return (
        f"{first['array_id']}[{len(elements)}]", printable(first["user"]),
        printable(first["project"]), first["state"], request_text(first),
        printable(",".join(hosts) if hosts else "-"),
        format_duration(now - first["submitted_at"]), printable(detail),
    )  # fmt: skip


def _budget_warnings(svc: Any) -> list[str]:
    """Budget warnings (80 % and 100 %), from the service (local or the lab's)."""
    return list(svc.budget_warnings())


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job, attempts and events as JSON.")
@click.pass_context
def show(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Show a job (ID, or ID.INDEX for one element of an array): its spec, attempts and
    events. ID of an array shows its elements."""
    with service_for(ctx, read_only=True) as svc:
        ids = svc.resolve_jobs(job_id)
        if len(ids) > 1:
            elements = [svc.get_job(i) for i in ids]
        else:
            job = svc.show_job(ids[0])
    if len(ids) > 1:
        _show_array(elements, as_json)
        return
    if as_json:
        out = job_json(job)
        out["env"] = job["env"]
        out["after"] = job["after"]
        out["attempts"] = job["attempts"]
        out["events"] = job["events"]
        echo_json(out)
        return
    from rich.text import Text

    console = make_console()
    header = Text.assemble((f"job {job['id']}", "bold"), " ", user_text(job["name"] or ""))
    console.print(header.append("  ").append(job["state"], "bold"))
    indent = " " * 14
    rows = [
        ("user", job["user"]), ("project", job["project"]),
        # a multi-line shell script stays multi-line, its lines under each other
        ("command", printable(job["command"], "\t\n").replace("\n", "\n" + indent)),
        ("request", request_text(job)), ("time limit", format_duration(job["time_limit_s"])),
        ("priority", job["priority"]), ("attempts", attempts_text(job)),
        ("after", ", ".join(map(str, job["after"])) or "-"), ("workdir", job["workdir"] or "~"),
        ("env", json.dumps(job["env"]) if job["env"] else "-"), ("host", job["host"] or "-"),
        ("exit code", "-" if job["exit_code"] is None else job["exit_code"]),
        ("reason", job["reason"] or "-"),
    ]  # fmt: skip
    if job.get("array_id") is not None:
        rows.insert(2, ("array", f"{job['array_id']}.{job['array_index']}"))
    if job.get("constraints"):
        from lepton_tui.constraints import describe, job_constraints

        rows.insert(4, ("constraints", describe(job_constraints(job))))
    rows += _option_rows(job)
    for key, value in rows:
        console.print(
            Text(f"  {key:<11} ").append_text(user_text(value, multiline=key == "command"))
        )
    if job["attempts"]:
        from lepton_tui.economics.prices import allocated_text

        console.print("[bold]attempts[/]")
        for a in job["attempts"]:
            gpus = ",".join(map(str, a["gpu_ids"])) or "-"
            line = (
                f"  #{a['attempt_no']} {a['host']} gpus={gpus} {a['state']} exit={a['exit_code']} "
                f"{a['reason'] or ''}"
            )
            console.print(user_text(line))
            if allocated := allocated_text(a):  # charged by it: a request Slurm rounded up
                console.print(user_text(f"     {allocated}"))
    console.print("[bold]events[/]")
    for e in job["events"]:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"]))
        console.print(Text(f"  {stamp}  ").append_text(user_text(e["message"])))


def _option_rows(job: dict[str, Any]) -> list[tuple[str, Any]]:
    """`show`'s lines for notifications, requeue at the time limit and the job's kind."""
    rows: list[tuple[str, Any]] = [("notify", job.get("notify_on") or "-")]
    if job.get("requeue_on_timeout"):
        rows.append(("requeue", f"at the time limit: {job.get('requeues') or 0} of "
                                f"{job.get('max_requeues')} so far"))  # fmt: skip
    if job.get("signal"):
        rows.append(("signal", f"{job['signal']} (SIGNAL@seconds before the limit)"))
    if job.get("kind") == "interactive":
        rows.append(("kind", "interactive (lepton-tui shell)"))
    return rows


def _show_array(elements: list[dict[str, Any]], as_json: bool) -> None:
    """`show ID` of an array: its elements, one line each (or a JSON list)."""
    if as_json:
        echo_json([job_json(e) for e in elements])
        return
    first = elements[0]
    cap = f", at most {first['array_limit']} at once" if first.get("array_limit") else ""
    click.echo(f"array {first['array_id']}: {len(elements)} jobs{cap}")
    for e in elements:
        what = e["reason"] if e["state"] == "queued" else (e["host"] or "")
        click.echo(printable(
            f"  {e['array_id']}.{e['array_index']}  job {e['id']}  {e['state']}  {what or ''}"
        ))  # fmt: skip


def attempts_text(job: dict[str, Any]) -> str:
    """`2 (1 retry allowed)`: attempts made so far, and how many requeues the job may have."""
    retries = int(job["retries"] or 0)
    allowed = "no retries" if retries == 0 else f"{retries} retr{'y' if retries == 1 else 'ies'}"
    return f"{job['attempts_used'] or 0} ({allowed} allowed)"


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("job_ids", nargs=-1, required=True)
@click.pass_context
def cancel(ctx: click.Context, job_ids: tuple[str, ...]) -> None:
    """Cancel jobs (queued ones at once; running ones are stopped on their host). ID of an
    array cancels all of it; ID.INDEX one element."""
    for j in job_ids:  # every id well-formed before anything is cancelled
        parse_id(j.partition(".")[0])
    missing: list[str] = []  # ids that name nothing: said, as cancel's own refusals are
    with service_for(ctx) as svc:
        ids: list[int] = []
        for j in job_ids:
            try:
                ids += svc.resolve_jobs(j, live=True)
            except NotFound as exc:
                missing.append(str(exc))
        results = svc.cancel(ids)
    failed = bool(missing)
    for message in missing:
        click.echo(f"lepton-tui: error: {printable(message)}", err=True)
    for r in results:
        if r.ok:
            click.echo(printable(r.message))
        else:
            failed = True
            click.echo(f"lepton-tui: error: {printable(r.message)}", err=True)
    if failed:
        ctx.exit(1)


@click.command(context_settings=CONTEXT_SETTINGS)
@click.argument("job_id")
@click.option("--stderr", "stream", flag_value="stderr", help="Show standard error.")
@click.option(
    "--stdout", "stream", flag_value="stdout", default=True, help="Show standard output (default)."
)
@click.option(
    "-f", "--follow", is_flag=True, help="Keep printing as the job writes, until it ends."
)
@click.option("--attempt", default=None, help="Attempt number (default: the latest).")
@click.pass_context
def logs(ctx: click.Context, job_id: str, stream: str, follow: bool, attempt: str | None) -> None:
    """Print a job's log from its host, read by byte offset (follow with -f).

    Into a pipe or a file the log is written exactly as the job wrote it. On a terminal, colours,
    newlines, tabs and carriage returns pass, and any other control character or escape
    sequence is shown as a visible escape such as \\x1b (pipe through `cat` for the raw text).
    """
    attempt_no = None if attempt is None else parse_id(attempt, "attempt")
    job_no = _one_job(ctx, job_id)
    out = sys.stdout
    term = TerminalLogFilter() if is_terminal(out) else None
    try:
        with service_for(ctx, read_only=True) as svc:
            chunks = svc.read_log(job_no, stream=stream, follow=follow, attempt_no=attempt_no)
            for chunk in chunks:
                # color=True: never let click strip the job's escape sequences from a pipe
                click.echo(term.feed(chunk) if term else chunk, nl=False, color=True)
    finally:
        if term:
            click.echo(term.flush(), nl=False, color=True)
    if stream == "stdout":
        _hint_stderr(ctx, job_no, attempt_no)


def _hint_stderr(ctx: click.Context, job_no: int, attempt_no: int | None) -> None:
    """One line on stderr when the job's stderr has something: where errors usually are."""
    with service_for(ctx, read_only=True) as svc:
        size = svc.stderr_bytes(job_no, attempt_no)
    if size:
        attempt = "" if attempt_no is None else f" --attempt {attempt_no}"
        unit = "byte" if size == 1 else "bytes"
        click.echo(f"stderr has {size} {unit}: logs {job_no} --stderr{attempt}", err=True)


def _one_job(ctx: click.Context, ref: str) -> int:
    """The job `ref` (ID or ID.INDEX) names; an array's ID alone is refused (which element?)."""
    if "." not in ref:
        job_no = parse_id(ref)
        with service_for(ctx, read_only=True) as svc:
            ids = svc.resolve_jobs(ref)
        if len(ids) > 1:
            raise ValidationError(
                f"job {job_no} is an array of {len(ids)}",
                f"give one element: {job_no}.INDEX (see `lepton-tui show {job_no}`)",
                field="job",
            )
        return job_no
    parse_id(ref.partition(".")[0])
    with service_for(ctx, read_only=True) as svc:
        return svc.resolve_jobs(ref)[0]
