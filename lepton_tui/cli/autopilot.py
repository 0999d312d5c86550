"""`lepton-tui autopilot`: the policy in force, why, and the league table; `autopilot run` runs a
round now (admins)."""

from __future__ import annotations

import math
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
    service_for,
    user_text,
)


def _print(state: dict[str, Any]) -> None:
    from lepton_tui import autopilot as ap

    console = make_console()
    how = "pinned" if state["pinned"] else "auto"
    console.print(Text.assemble(("policy ", "bold"), user_text(state["policy"]), f" ({how})"))
    console.print(Text.assemble(("why    ", "bold"), user_text(state["why"])))
    last = state["last_round"]
    if last is None:
        console.print(Text("no autopilot round yet (`lepton-tui autopilot run` runs one)"))
        return
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last["at"]))
    console.print(
        Text(
            f"last round {when}: {last['jobs']} job(s) replayed in {last['took_s']:.2f} s; "
            f"one every {ap.span(state['period_s'])}, over the last {ap.span(state['window_s'])}"
        )  # fmt: skip
    )
    if not last["table"]:
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("#", "POLICY", "OBJECTIVE", "AVG BSLD", "COST", "MEAN WAIT", "FINISHED"):
        table.add_column(col, justify="left" if col == "POLICY" else "right")
    for i, s in enumerate(last["table"], 1):
        mark = " *" if s["policy"] == last["policy"] else ""
        table.add_row(str(i), user_text(s["policy"] + mark), _num(s["objective"]),
                      _num(s["avg_bounded_slowdown"]), _num(s["cost"]),
                      _num(s["mean_wait_s"], "{:.0f} s"), str(s["finished"]))  # fmt: skip
    console.print(table)
    for note in last["notes"]:
        console.print(user_text(f"note: {note}", "dim"))


def _num(v: Any, fmt: str = "{:.3f}") -> str:
    return "-" if v is None or not math.isfinite(v) else fmt.format(v)


@click.group(cls=LeptonGroup, invoke_without_command=True, context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print it as a JSON object.")
@click.pass_context
def autopilot(ctx: click.Context, as_json: bool) -> None:
    """The policy autopilot: which policy runs, why, and the league table behind it.

    With `settings set policy auto` (the default) the dispatcher's autopilot replays the lab's
    recent history under every policy but the ILP every `autopilot_period_s` and runs the best;
    `settings set policy NAME` pins NAME.
    """
    if ctx.invoked_subcommand is None:
        with service_for(ctx, read_only=True) as svc:
            state = svc.autopilot_summary()  # in lab mode, the service reads it
        echo_json(state) if as_json else _print(state)


@autopilot.command("run", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as a JSON object.")
@click.pass_context
def run(ctx: click.Context, as_json: bool) -> None:
    """Run a round now (admins): replay, choose, record (a pinned policy still runs)."""
    with service_for(ctx) as svc:
        state = svc.autopilot_round()  # service.py decides who may
    echo_json(state) if as_json else _print(state)
