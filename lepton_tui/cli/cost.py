"""Economics commands: cost, budget (set/ls/rm), price (set/ls), replay."""

from __future__ import annotations

import csv
import sys
import time
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from lepton_tui.cli.common import (
    CONTEXT_SETTINGS,
    LeptonGroup,
    echo_json,
    make_console,
    printable,
    service_for,
    user_text,
)
from lepton_tui.errors import ValidationError

BY_CHOICES = ("user", "project", "host", "job", "day", "gpu")
# the columns of a price change (`price ls --history`), in the order they are shown
HISTORY_FIELDS = ("price_per_hour", "price_cpu_hour", "price_gpu_hour", "price_gb_hour",
                  "power_price_kwh", "price_node_hour")  # fmt: skip


def _money(amount: float, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def _stamp(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option(
    "--since",
    default=None,
    help="Start: 2026-03-01, 2026-03-01T14:00, today, 7d. Default: this month.",
)
@click.option("--until", default=None, help="End (default: now).")
@click.option(
    "--by", "by", default="user", show_default=True, help="user, project, host, job, day or gpu."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the report as CSV (for spreadsheets).")
@click.option(
    "--waste",
    is_flag=True,
    help="Show idle allocated GPUs, GPUs busy outside lepton, and capacity stranded now "
    "(free, but of no use to the queued jobs).",
)
@click.pass_context
def cost(ctx: click.Context, since: str | None, until: str | None, by: str, as_json: bool,
         as_csv: bool, waste: bool) -> None:  # fmt: skip
    """What the lab's work cost: by user, project, host, job or day, with idle cost.

    Cost = allocation x price in force x time, plus measured GPU energy x electricity price.
    """
    if by not in BY_CHOICES:
        raise ValidationError(f"--by {by!r} is not one of {', '.join(BY_CHOICES)}", field="by")
    if as_json and as_csv:
        raise ValidationError("choose one of --json and --csv")
    if waste:
        # Waste is what burns now: a window, a grouping or CSV would be silently ignored.
        extra = [flag for flag, given in (("--since", since), ("--until", until), ("--csv", as_csv),
                                          ("--by", by != "user")) if given]  # fmt: skip
        if extra:
            raise ValidationError(f"--waste shows what burns now; drop {', '.join(extra)}")
        _print_waste(ctx, as_json)
        return
    with service_for(ctx, read_only=True) as svc:
        data = svc.cost(since, until, by)
    t0, t1, now = data["since"], data["until"], data["now"]
    if by == "gpu":
        _print_gpus(data["gpus"], t0, t1, as_json, as_csv)
        return
    report = data["report"]
    if as_json:
        echo_json(report)
        return
    keys = ("key", "cost", "alloc_cost", "energy_cost", "energy_kwh", "gpu_hours", "cpu_hours",
            "attempts", "idle_cost")  # fmt: skip
    reports = [*report["other_currencies"], report]  # money stays in the currency it was charged
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([*(by if k == "key" else k for k in keys), "currency"])
        for rep in reports:
            for row in [*rep["rows"], rep["total"]]:
                writer.writerow([*(csv_cell(row[k]) for k in keys), rep["currency"]])
        return
    console = make_console()
    for rep in reports:
        _print_report(console, rep, by, max(rep["since"], t0), min(t1, now))


def _print_report(console: Any, report: dict[str, Any], by: str, t0: float, t1: float) -> None:
    """One currency's cost table, with its idle cost."""
    cur = report["currency"]
    console.print(
        Text.assemble(
            (f"Cost by {by}", "bold"),
            f"  {_stamp(t0)} .. {_stamp(t1)}  ",
            user_text(f"({cur})"),
        )
    )
    table = Table(box=None, header_style="bold", pad_edge=False)
    show_idle = by in ("host", "day")
    cols = [by.upper(), "COST", "ENERGY", "GPU-H", "CPU-H", "ATTEMPTS"] + (
        ["IDLE"] if show_idle else []
    )
    for col in cols:
        table.add_column(col, justify="left" if col == by.upper() else "right")
    for row in [*report["rows"], None, report["total"]]:
        if row is None:
            table.add_section()
            continue
        cells = [user_text(row["key"]), user_text(_money(row["cost"], cur)),
                 user_text(_money(row["energy_cost"], cur)), Text(f"{row['gpu_hours']:,.1f}"),
                 Text(f"{row['cpu_hours']:,.1f}"), Text(str(row["attempts"]))]  # fmt: skip
        if show_idle:
            cells.append(user_text(_money(row["idle_cost"], cur)))
        table.add_row(*cells)
    console.print(table)
    console.print(
        Text.assemble(
            "Idle cost (capacity not allocated x price x time): ",
            user_text(_money(report["idle_cost"], cur), "bold"),
        )
    )


def _print_waste(ctx: click.Context, as_json: bool) -> None:
    with service_for(ctx, read_only=True) as svc:
        data = svc.waste()
    if as_json:
        echo_json(data)
        return
    found, stranded = data["findings"], data["stranded"]
    if not found:
        click.echo("No idle allocated GPUs and no GPUs busy outside lepton.")
    for f in found:
        click.echo(printable(f["message"]))  # names processes and users from the hosts
    cur = stranded["currency"]
    if not stranded["hosts"]:
        why = "nothing is queued" if not stranded["queued"] else "the queued jobs fit what is free"
        click.echo(f"No capacity stranded now ({why}).")
        return
    click.echo(
        printable(
            f"Stranded now (free, but of no use to the {stranded['queued']} queued jobs): "
            f"{stranded['gpus']:g} GPUs ({stranded['gpus']:g} GPU-hours an hour), "
            f"{stranded['cpus']:g} CPUs, {stranded['mem_mb'] / 1024:,.1f} GB: "
            f"{_money(stranded['per_hour'], cur)}/h"
        )
    )
    for h in stranded["hosts"]:
        click.echo(
            printable(
                f"  {h['host']}: {h['gpus']:g} GPUs, {h['cpus']:g} CPUs, "
                f"{h['mem_mb'] / 1024:,.1f} GB: {_money(h['per_hour'], cur)}/h"
            )
        )


def _print_gpus(
    rows: list[dict[str, Any]], t0: float, t1: float, as_json: bool, as_csv: bool
) -> None:
    if as_json:
        echo_json({"since": t0, "until": t1, "gpus": rows})
        return
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["host", "gpu", "allocated_pct", "measured_pct"])
        for r in rows:
            writer.writerow(
                [csv_cell(r[k]) for k in ("host", "gpu", "allocated_pct", "measured_pct")]
            )
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("HOST", "GPU", "ALLOCATED", "MEASURED"):
        table.add_column(col)
    for r in rows:
        measured = "-" if r["measured_pct"] is None else f"{r['measured_pct']:.0f}%"
        table.add_row(user_text(r["host"]), user_text(r["gpu"]),
                      Text(f"{r['allocated_pct']:.0f}%"), Text(measured))  # fmt: skip
    make_console().print(table)


# -- budgets ------------------------------------------------------------------------------------


def _scope(project: str | None, user: str | None) -> tuple[str, str]:
    if bool(project) == bool(user):
        raise ValidationError("give exactly one of --project and --user")
    return ("project", project) if project else ("user", user)  # type: ignore[return-value]


@click.group(cls=LeptonGroup, context_settings=CONTEXT_SETTINGS)
def budget() -> None:
    """Monthly budgets per project or user, in money or GPU-hours (warn at 80 %, 100 %)."""


@budget.command("set", context_settings=CONTEXT_SETTINGS)
@click.option("--project", default=None, help="The project the budget is for.")
@click.option("--user", default=None, help="The user the budget is for.")
@click.option("--amount", default=None, help="Money a month (in the lab currency).")
@click.option("--gpu-hours", default=None, help="GPU-hours a month (instead of money).")
@click.option(
    "--hard", is_flag=True, help="Hold new jobs once spent (running jobs are never killed)."
)
@click.option("--new", "new_project", is_flag=True, help="Declare a project that has no jobs yet.")
@click.pass_context
def budget_set(ctx: click.Context, project: str | None, user: str | None, amount: str | None,
               gpu_hours: str | None, hard: bool, new_project: bool) -> None:  # fmt: skip
    """Set the monthly budget of a project or user (admins)."""
    scope, name = _scope(project, user)
    if (amount is None) == (gpu_hours is None):
        raise ValidationError("give exactly one of --amount and --gpu-hours")
    unit, value = ("money", amount) if amount is not None else ("gpu_hours", gpu_hours)
    with service_for(ctx) as svc:
        status = svc.set_budget(scope, name, value, unit, hard=hard, new_project=new_project)
    what = (
        _money(status["amount"], status["currency"] or "")
        if unit == "money"
        else f"{status['amount']:g} GPU-hours"
    )
    click.echo(
        printable(
            f"budget of {scope} {name}: {what} a month{' (hard)' if hard else ''}; "
            f"spent {status['fraction'] * 100:.0f} % so far this month"
        )
    )


@budget.command("ls", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print budgets as JSON.")
@click.pass_context
def budget_ls(ctx: click.Context, as_json: bool) -> None:
    """List budgets with this month's spend."""
    with service_for(ctx, read_only=True) as svc:
        data = svc.budgets()
    statuses, cur = data["budgets"], data["currency"]
    if as_json:
        echo_json(statuses)
        return
    if not statuses:
        click.echo("No budgets. Set one with `lepton-tui budget set --project P --amount 1000`.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("SCOPE", "NAME", "BUDGET", "SPENT", "USED", "HARD", "STATE"):
        table.add_column(col)
    for s in statuses:
        money = s["currency"] or cur  # a budget keeps the currency it was set in

        def fmt(v: float, unit: str = s["unit"], money: str = money) -> str:
            return _money(v, money) if unit == "money" else f"{v:,.1f} GPU-h"

        style = {"over": "red", "warning": "yellow"}.get(s["level"], "")
        table.add_row(user_text(s["scope"]), user_text(s["name"]), user_text(fmt(s["amount"])),
                      user_text(fmt(s["spent"])), Text(f"{s['fraction'] * 100:.0f}%"),
                      Text("yes" if s["hard"] else "no"), user_text(s["level"], style))  # fmt: skip
    make_console().print(table)


@budget.command("rm", context_settings=CONTEXT_SETTINGS)
@click.option("--project", default=None)
@click.option("--user", default=None)
@click.option("--unit", default=None, help="money or gpu_hours (default: both).")
@click.pass_context
def budget_rm(ctx: click.Context, project: str | None, user: str | None, unit: str | None) -> None:
    """Remove the budget of a project or user (admins; held jobs are released)."""
    scope, name = _scope(project, user)
    with service_for(ctx) as svc:
        n = svc.remove_budget(scope, name, unit)
    click.echo(printable(f"removed {n} budget(s) of {scope} {name}"))


# -- prices -------------------------------------------------------------------------------------


@click.group(cls=LeptonGroup, context_settings=CONTEXT_SETTINGS)
def price() -> None:
    """Prices per host or lab default; currency; the cost-aware scheduling weight."""


@price.command("set", context_settings=CONTEXT_SETTINGS)
@click.option("--host", default=None, help="The host (default: the lab-wide default prices).")
@click.option("--per-hour", default=None, help="Flat price of the whole host per hour.")
@click.option("--cpu-hour", default=None, help="Price of a CPU core-hour.")
@click.option("--gpu-hour", default=None, help="Price of a GPU-hour.")
@click.option("--gb-hour", default=None, help="Price of a GB-hour of memory.")
@click.option("--power-kwh", default=None, help="Electricity price per kWh of measured GPU power.")
@click.option(
    "--node-hour",
    default=None,
    help="A Slurm partition's price per node-hour: a job pays nodes Slurm allocated x hours.",
)
@click.option("--lab-default", is_flag=True, help="Drop the host's own prices: it pays the lab's.")
@click.option(
    "--currency",
    default=None,
    help="The lab currency from now on (ISO code: USD, EUR, ...); past costs keep theirs.",
)
@click.option(
    "--cost-weight",
    default=None,
    help="Trade a little wait for lower cost: 0 = fastest (default), higher = cheaper.",
)
@click.pass_context
def price_set(ctx: click.Context, host: str | None, per_hour: str | None, cpu_hour: str | None,
              gpu_hour: str | None, gb_hour: str | None, power_kwh: str | None,
              node_hour: str | None, lab_default: bool, currency: str | None,
              cost_weight: str | None) -> None:  # fmt: skip
    """Set prices from now on (admins; history is kept, past costs do not change)."""
    with service_for(ctx) as svc:
        done = svc.set_prices(host, per_hour=per_hour, cpu_hour=cpu_hour, gpu_hour=gpu_hour,
                              gb_hour=gb_hour, power_kwh=power_kwh, node_hour=node_hour,
                              use_lab_default=lab_default,
                              currency=currency, cost_weight=cost_weight)  # fmt: skip
    if done["currency_set"] is not None:
        click.echo(f"currency: {done['currency_set']}")
    if done["prices_set"]:
        p = done["in_force"]
        now = f" (in force now: {_describe(p, done['currency'])})" if p else ""
        click.echo(printable(f"prices of {host or 'the lab (default)'} set{now}"))
    if done["cost_weight_set"] is not None:
        click.echo(f"cost weight: {done['cost_weight_set']:g}")


def _describe(p: dict[str, Any], cur: str) -> str:
    parts = []
    for key, unit in (("per_hour", "h"), ("cpu_hour", "core-h"), ("gpu_hour", "GPU-h"),
                      ("gb_hour", "GB-h"), ("power_kwh", "kWh"), ("node_hour", "node-h")):  # fmt: skip
        if p.get(key):
            parts.append(f"{p[key]:g}/{unit}")
    return (" + ".join(parts) or "free") + f" {cur}, from the {p['source']}"


@price.command("ls", context_settings=CONTEXT_SETTINGS)
@click.option("--history", is_flag=True, help="Every price change, oldest first.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def price_ls(ctx: click.Context, history: bool, as_json: bool) -> None:
    """The prices in force now per host (and the lab default), or the change history."""
    with service_for(ctx, read_only=True) as svc:
        data = svc.prices(history)
    if as_json:
        echo_json(data)
        return
    rows, cur, weight = data["prices"], data["currency"], data["cost_weight"]
    console = make_console()
    console.print(user_text(f"currency {cur}, cost weight {weight:g}"))
    table = Table(box=None, header_style="bold", pad_edge=False)
    if history:
        cols = ("FROM", "HOST", "PER HOUR", "CORE-H", "GPU-H", "GB-H", "KWH", "NODE-H", "BY")
        for c in cols:
            table.add_column(c)
        for r in rows:
            table.add_row(Text(_stamp(r["effective_from"])), user_text(r["host"] or "(lab)"),
                          *[Text(_num(r.get(f))) for f in HISTORY_FIELDS],
                          user_text(r["set_by"] or "-"))  # fmt: skip
    else:
        for c in ("HOST", "PER HOUR", "CORE-H", "GPU-H", "GB-H", "KWH", "NODE-H", "FROM"):
            table.add_column(c)
        for r in rows:
            table.add_row(user_text(r["host"] or "(lab default)"), Text(_num(r["per_hour"])),
                          Text(_num(r["cpu_hour"])), Text(_num(r["gpu_hour"])),
                          Text(_num(r["gb_hour"])), Text(_num(r["power_kwh"])),
                          Text(_num(r.get("node_hour"))), user_text(r["source"]))  # fmt: skip
    console.print(table)


def _num(v: Any) -> str:
    return "-" if v is None or v == 0 else f"{v:g}"


# -- replay -------------------------------------------------------------------------------------


@click.command(context_settings=CONTEXT_SETTINGS)
@click.option("--since", default=None, help="Replay jobs submitted from this date (default: 30d).")
@click.option("--until", default=None, help="... up to this date (default: now).")
@click.option("--policies", default="fifo,sjf,backfill,dqn", show_default=True,
              help="Comma-separated policy names to compare.")  # fmt: skip
@click.option("--cost-weight", default=None, help="Cost weight for every policy (default: lab's).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.pass_context
def replay(ctx: click.Context, since: str | None, until: str | None, policies: str,
           cost_weight: str | None, as_json: bool) -> None:  # fmt: skip
    """Replay the lab's own history under other policies: wait, slowdown, utilization, cost."""
    from lepton_tui.validate import format_duration

    names = [p.strip() for p in policies.split(",") if p.strip()]
    if not names:
        raise ValidationError("--policies is empty", "e.g. --policies fifo,backfill")
    with service_for(ctx, read_only=True) as svc:
        result = svc.replay(since, until, names, cost_weight)
    if as_json:
        echo_json(result)
        return
    console = make_console()
    skipped = result["skipped"]
    console.print(
        f"[bold]Replay[/] of {result['jobs']} jobs on {result['hosts']} hosts, "
        f"{_stamp(result['since'])} .. {_stamp(result['until'])}"
        + (f"  ({skipped} skipped)" if skipped else "")
    )
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("POLICY", "MEAN WAIT", "P95 WAIT", "MEAN SLOWDOWN", "GPU UTIL", "COST", "MAKESPAN"):
        table.add_column(col, justify="left" if col == "POLICY" else "right")
    # jobs killed at their time limit, and requeues there: shown when the history has any
    limits = any(r.get("timed_out") or r.get("requeues") for r in result["rows"])
    if limits:
        table.add_column("TIMED OUT / REQUEUED", justify="right")

    def num(v: Any) -> float:
        return float("nan") if v is None else float(v)

    for row in result["rows"]:
        table.add_row(user_text(row["policy"]), Text(format_duration(num(row["mean_wait_s"]))),
                      Text(format_duration(num(row["p95_wait_s"]))),
                      Text(f"{num(row['mean_slowdown']):.2f}"),
                      Text(f"{num(row['gpu_util']) * 100:.0f}%"),
                      user_text(_money(num(row["cost"]), result["currency"])),
                      Text(format_duration(num(row["makespan_s"]))),
                      *([Text(f"{row.get('timed_out', 0)} / {row.get('requeues', 0)}")]
                        if limits else []))  # fmt: skip
    console.print(table)
    for note in result["notes"]:
        console.print(user_text(note, "dim"))


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ (a job name, say) gets
    a leading apostrophe, as OWASP advises against formula injection; numbers stay numbers."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
