"""Host commands: add (onboarding over SSH), probe, ls, rm, drain, resume; and, for lab mode,
check (can a user's jobs run there), run-as (the lab key or sudo) and logins."""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import click
from rich.table import Table

from lepton_tui.cli.common import (
    CONTEXT_SETTINGS,
    AsciiNumber,
    LeptonGroup,
    echo_json,
    make_console,
    printable,
    service_for,
    user_text,
)
from lepton_tui.errors import ValidationError
from lepton_tui.validate import format_size_mb

HOST_JSON_FIELDS = (
    "name", "address", "port", "user", "transport", "state", "admin_state", "cpus", "mem_mb",
    "gpus", "gpu_mem_mb", "gpu_model", "price_per_hour", "host_key_fingerprint", "last_seen",
    "last_error", "labels", "outside_gpus",
)  # fmt: skip


def host_json(host: dict[str, Any]) -> dict[str, Any]:
    """A host as the stable JSON object `hosts ls --json` prints (`slurm`: its partition,
    account, QOS, for a Slurm host)."""
    out = {k: host.get(k) for k in HOST_JSON_FIELDS}
    if host.get("slurm_json"):
        out["slurm"] = json.loads(host["slurm_json"])
    return out


@click.group(cls=LeptonGroup, context_settings=CONTEXT_SETTINGS)
def hosts() -> None:
    """Add, list, drain and remove the servers jobs run on."""


@hosts.command("add", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--address", default=None, help="Host name or IP address to SSH to.")
@click.option("--port", default="22", show_default=True, help="SSH port.")
@click.option("--user", default=None, help="SSH login (default: from ~/.ssh/config or yours).")
@click.option("--key", "key_path", default=None, help="Private key file (else the ssh agent).")
@click.option("--local", is_flag=True, help="This machine itself (no SSH).")
@click.option(
    "--price-per-hour", default=None, help="What an hour of this host costs, in the lab's currency."
)
@click.option(
    "--accept-new-host-key", is_flag=True, help="Trust the host key shown (never a changed one)."
)
@click.option(
    "--fingerprint",
    default=None,
    metavar="SHA256:...",
    help="Trust the host key only if it has this fingerprint.",
)
@click.option(
    "--root-dir", default=None, help="Where attempt directories live on the host [~/.lepton]."
)
@click.option(
    "--gpus", "gpus_override", default=None, hidden=True, help="Report N fake GPUs (tests)."
)
@click.option(
    "--no-connect", is_flag=True, help="Only record the host: no key check, no preflight."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the stored host and preflight as JSON."
)
@click.option(
    "--slurm", is_flag=True, help="A Slurm partition (on this node, or --address a submit node)."
)
@click.option("--partition", default=None, help="Slurm partition [the cluster's default].")
@click.option("--account", default=None, help="Slurm account to charge (--slurm).")
@click.option("--qos", default=None, help="Slurm QOS (--slurm).")
@click.option("--slurm-conf", default=None, help="SLURM_CONF for this cluster (--slurm).")
@click.pass_context
def add(
    ctx: click.Context,
    name: str,
    no_connect: bool,
    as_json: bool,
    accept_new_host_key: bool,
    fingerprint: str | None,
    **opts: Any,
) -> None:
    """Connect to a host, check it (preflight), and store it with its capacity.

    The host key is shown as a SHA256 fingerprint and trusted only with --accept-new-host-key,
    a matching --fingerprint, or when your own ~/.ssh/known_hosts already holds it.
    With --slurm the host is a Slurm partition: lepton picks the jobs, Slurm places them.
    """
    slurm_opts = {k: opts.pop(k) for k in ("slurm", "partition", "account", "qos", "slurm_conf")}
    if slurm_opts.pop("slurm"):
        _add_slurm(ctx, name, as_json, accept_new_host_key, fingerprint, slurm_opts, opts)
        return
    if any(v is not None for v in slurm_opts.values()):
        raise click.UsageError("--partition, --account, --qos and --slurm-conf need --slurm")
    if no_connect:
        _add_unchecked(ctx, name, as_json, accept_new_host_key, fingerprint, opts)
        return

    def say(line: str) -> None:  # preflight lines carry what the host reported
        if not as_json:
            click.echo(printable(line))

    with service_for(ctx) as svc:
        done = svc.onboard(
            name, accept_new_host_key=accept_new_host_key, fingerprint=fingerprint,
            echo=say, **opts,
        )  # fmt: skip
    h = done.host
    if as_json:
        echo_json({"host": host_json(h), "preflight": done.preflight.to_dict()})
        return
    gpus = f"{h['gpus']} x {h['gpu_model']}" if h["gpus"] else "no GPU"
    click.echo(
        printable(
            f"added host {h['name']}: {h['cpus'] or 0:g} CPUs, "
            f"{format_size_mb(h['mem_mb'] or 0)}, {gpus}"
        )
    )


def _add_unchecked(
    ctx: click.Context,
    name: str,
    as_json: bool,
    accept_new_host_key: bool,
    fingerprint: str | None,
    opts: dict[str, Any],
) -> None:
    """`hosts add --no-connect`: record the host without connecting. Its host key is pinned by
    --fingerprint (checked on the first connection), else it is not trusted until it is."""
    from lepton_tui.onboarding import normalize_fingerprint

    if accept_new_host_key:
        raise ValidationError(
            "--no-connect sees no host key to accept",
            "pin it with --fingerprint SHA256:... (from `ssh-keygen -lf` of the host's key)",
            field="fingerprint",
        )
    pinned = normalize_fingerprint(fingerprint) if fingerprint else None
    if pinned and opts.get("local"):
        raise ValidationError("a --local host has no host key; drop --fingerprint")
    with service_for(ctx) as svc:
        host = svc.add_host(
            name, same_machine_ok=False, host_key=(None, pinned) if pinned else None, **opts
        )
    if as_json:
        echo_json({"host": host_json(host), "preflight": None})
        return
    click.echo(f"added host {host['name']} ({host['transport']}, not checked)")
    if host["transport"] != "ssh":
        return
    if pinned:
        click.echo(f"its host key will be trusted if it has the fingerprint {pinned}")
    else:
        click.echo(
            "its host key is not trusted yet, so it stays down: `hosts rm` it and add it again "
            "with --fingerprint SHA256:... (pins the key without connecting), or without "
            "--no-connect"
        )


def _add_slurm(
    ctx: click.Context,
    name: str,
    as_json: bool,
    accept_new_host_key: bool,
    fingerprint: str | None,
    slurm_opts: dict[str, Any],
    opts: dict[str, Any],
) -> None:
    """`hosts add NAME --slurm ...`: check the partition and store it as a host."""
    from lepton_tui.dispatch.slurm_admin import onboard_slurm

    if opts.pop("gpus_override") is not None:
        raise click.UsageError("--gpus does not apply to a Slurm host")
    opts.pop("local")  # without --address, Slurm's commands run on this node anyway

    def say(line: str) -> None:
        if not as_json:
            click.echo(printable(line))

    with service_for(ctx) as svc:
        add = getattr(svc, "onboard_slurm", None)  # lab mode: the service checks and stores
        if add is None:
            add = functools.partial(onboard_slurm, svc)
        done = add(
            name, accept_new_host_key=accept_new_host_key, fingerprint=fingerprint,
            echo=say, **slurm_opts, **opts,
        )  # fmt: skip
    h = done.host
    if as_json:
        lines = [{"ok": ok, "line": line} for ok, line in done.lines]
        echo_json({"host": host_json(h), "preflight": lines})
        return
    click.echo(
        printable(
            f"added Slurm host {h['name']}: {h['cpus'] or 0:g} CPUs, "
            f"{format_size_mb(h['mem_mb'] or 0)}, {h['gpus'] or 0} GPUs"
        )
    )


@hosts.command("probe", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the sample as JSON.")
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=AsciiNumber(click.FloatRange(min=0.1, max=3600)),
    help="Seconds to wait for the host.",
)
@click.pass_context
def probe_cmd(ctx: click.Context, name: str, as_json: bool, timeout: float) -> None:
    """Sample a host now: CPU, memory, disk, GPUs and its running attempts."""
    from inventory.probe import HostSample

    with service_for(ctx, read_only=True) as svc:
        got = svc.probe_host(name, timeout)
    if as_json:
        echo_json(got["sample"])
        return
    if got["kind"] == "slurm":  # a Slurm partition: its nodes, from sinfo
        for line in got["lines"]:
            click.echo(printable(line))
        return
    sample = HostSample.from_dict(got["sample"])
    for line in sample_lines(sample):
        click.echo(printable(line))


def _why_not_placeable(svc: Any, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Per host that takes no new jobs: why (the last error of a down host, or the reason the
    dispatcher drained it, e.g. launches failing there)."""
    out: dict[str, str] = {}
    for h in rows:
        if h["state"] == "down" and h.get("last_error"):
            out[h["name"]] = str(h["last_error"])[:120]
        elif h["admin_state"] == "draining":
            ev = svc.last_host_event(h["name"], "host.drain")
            if ev and ev["actor"] == "dispatcher" and ev["data"]:
                reason = json.loads(ev["data"]).get("reason") or ""
                out[h["name"]] = f"launches fail: {reason}"[:120]
            elif ev:
                out[h["name"]] = f"drained by {ev['actor']}"
    return out


def _num(value: float | None, unit: str = "", fmt: str = "g") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


def sample_lines(sample: Any) -> list[str]:
    """A probe sample as short human lines."""
    lines = [
        f"{'host':<9} {sample.host}",
        f"{'cpu':<9} {sample.cpus} CPUs, {sample.cpu_percent:.1f}% busy, load {sample.load1:g}",
        f"{'memory':<9} {format_size_mb(sample.mem_used_mb)} used of "
        f"{format_size_mb(sample.mem_total_mb)}",
        f"{'disk':<9} "
        + ("-" if sample.disk_free_mb is None else f"{format_size_mb(sample.disk_free_mb)} free"),
    ]
    if not sample.gpus:
        why = f" ({sample.gpu_error})" if sample.gpu_error else ""
        lines.append(f"{'gpus':<9} none{why}")
    for g in sample.gpus:
        procs = ", ".join(
            f"{pid}" + ("" if mem is None else f" ({mem:g} MiB)") for pid, mem in g.processes
        )
        lines.append(
            f"{'gpu ' + str(g.index):<9} {g.name}{' (fake)' if g.fake else ''}: "
            f"util {_num(g.util_percent, '%')}, mem {_num(g.mem_used_mb)}/{_num(g.mem_total_mb)} MiB, "
            f"{_num(g.temperature_c, ' C')}, {_num(g.power_w, ' W')}"
            + (f", processes {procs}" if procs else "")
        )
    for token, st in sorted(sample.attempts.items()):
        code = "" if st.exit_code is None else f" exit {st.exit_code}"
        lines.append(f"{'attempt':<9} {token} {st.state}{code}")
    return lines


@hosts.command("ls", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of hosts.")
@click.pass_context
def ls(ctx: click.Context, as_json: bool) -> None:
    """List hosts with their state and capacity."""
    from lepton_tui.client import LabClient

    with service_for(ctx, read_only=True) as svc:
        rows = svc.list_hosts()
        currency = str(svc.settings().get("currency") or "USD")
        why = _why_not_placeable(svc, rows)
        lab = isinstance(svc, LabClient)  # the lab service takes no --local host
    if as_json:
        echo_json([host_json(h) for h in rows])
        return
    console = make_console()
    if not rows:
        console.print(
            "No hosts yet. An admin adds one with `lepton-tui hosts add NAME --address ADDR` "
            "(the login node too: --address localhost)."
            if lab
            else "No hosts yet. Add this machine with `lepton-tui hosts add NAME --local`."
        )
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    columns = ["NAME", "ADDRESS", "STATE", "CPUS", "MEM", "GPUS", f"{currency}/H"]
    for col in columns + (["WHY"] if why else []):
        table.add_column(col)
    for h in rows:
        state = "draining" if h["admin_state"] == "draining" else h["state"]
        where = "local" if h["transport"] == "local" else f"{h['address']}:{h['port']}"
        if h.get("slurm_json"):  # a Slurm partition, and where its commands run
            where = f"slurm:{json.loads(h['slurm_json']).get('partition')}@{where}"
        price = "-" if h["price_per_hour"] is None else f"{h['price_per_hour']:.2f}"
        gpus = (
            f"{h['gpus']}x {h['gpu_model']}"
            if h["gpus"] and h["gpu_model"]
            else str(h["gpus"] or 0)
        )
        if h.get("outside_gpus"):  # GPUs used by processes lepton did not start
            gpus += " (outside use: GPU " + ",".join(str(g["gpu"]) for g in h["outside_gpus"]) + ")"
        cells = [h["name"], where, state, f"{h['cpus'] or 0:g}", format_size_mb(h["mem_mb"] or 0)]
        row = [user_text(c) for c in cells] + [user_text(gpus), user_text(price)]
        if why:
            row.append(user_text(why.get(h["name"], "")))
        table.add_row(*row)
    console.print(table)


@hosts.command("rm", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove even while jobs run there.")
@click.pass_context
def rm(ctx: click.Context, name: str, force: bool) -> None:
    """Remove a host."""
    with service_for(ctx) as svc:
        svc.remove_host(name, force=force)
    click.echo(f"removed host {name}")


@hosts.command("drain", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.pass_context
def drain(ctx: click.Context, name: str) -> None:
    """Let running jobs finish and place nothing new on NAME."""
    with service_for(ctx) as svc:
        svc.set_draining(name, True)
    click.echo(f"host {name} draining")


@hosts.command("resume", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.pass_context
def resume(ctx: click.Context, name: str) -> None:
    """Place jobs on NAME again."""
    with service_for(ctx) as svc:
        svc.set_draining(name, False)
    click.echo(f"host {name} resumed")


@hosts.command("check", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--user", default=None, help="Whose login to check (default: yours; admins: any).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def check(ctx: click.Context, name: str, user: str | None, as_json: bool) -> None:
    """Can USER's jobs run on NAME? Logs in as USER the way the lab service starts their jobs
    (the lab key, or sudo where the host is set up so), runs the preflight and records the
    answer; placement only considers hosts where a job's submitter can be reached. Exits 1 when
    the login fails."""
    with service_for(ctx) as svc:
        out = svc.check_login(name, user)
    if as_json:
        echo_json(out)
    else:
        for line in out.get("lines") or ():
            click.echo(printable(line))
        if out["ok"]:
            click.echo(printable(f"{out['user']} can run jobs on {name} ({out['how']})"))
        else:
            click.echo(printable(f"{out['user']} cannot run jobs on {name}: {out['error']}"))
            if out["how"] == "lab key":
                click.echo(
                    printable(
                        f"add the line from `lepton-tui keys show` to "
                        f"~{out['user']}/.ssh/authorized_keys, then check again"
                    )
                )
    if not out["ok"]:
        ctx.exit(1)


@hosts.command("run-as", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.argument("mode", type=click.Choice(["key", "sudo"]))
@click.pass_context
def run_as_cmd(ctx: click.Context, name: str, mode: str) -> None:
    """How NAME starts other users' jobs in lab mode: `key` (log in as the user with the lab
    key, the default) or `sudo` (log in as the host's own login and `sudo -n -u USER`; see the
    sudoers rule in README's Lab mode)."""
    with service_for(ctx) as svc:
        svc.set_run_as(name, mode)
    click.echo(f"host {name} starts other users' jobs with {mode}")


@hosts.command("logins", context_settings=CONTEXT_SETTINGS)
@click.option("--user", default=None, help="Whose logins (default: yours; admins: any).")
@click.option("--all", "all_users", is_flag=True, help="Every user's (admins).")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@click.pass_context
def logins_cmd(ctx: click.Context, user: str | None, all_users: bool, as_json: bool) -> None:
    """Where a user's jobs can run (lab mode): each host the lab service tried to reach them on,
    whether it could, when and how. `hosts check` adds or refreshes a record."""
    if user and all_users:
        raise click.UsageError("give --user or --all, not both")
    with service_for(ctx) as svc:
        rows = svc.logins("*" if all_users else user)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no logins tried yet: `lepton-tui hosts check HOST` tries yours")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("HOST", "USER", "LOGIN", "HOW", "CHECKED", "ERROR"):
        table.add_column(col)
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(r["checked_at"])))
        cells = [r["host"], r["user"], "ok" if r["ok"] else "FAIL", r["how"] or "", when,
                 r["error"] or ""]  # fmt: skip
        table.add_row(*[user_text(c) for c in cells])
    make_console().print(table)


# `hosts label` lives with the shared lab's other rules
from lepton_tui.cli.share import label as _label  # noqa: E402

hosts.add_command(_label)
