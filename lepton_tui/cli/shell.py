"""`lepton-tui shell`: queue an interactive allocation, wait for it, and SSH into it."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from typing import Any

import click

from lepton_tui import paths
from lepton_tui.cli.common import CONTEXT_SETTINGS, fail, printable, service_for
from lepton_tui.cli.jobs import NO_DISPATCHER
from lepton_tui.errors import ValidationError
from lepton_tui.validate import format_duration

POLL_S = 1.0


@click.command(context_settings={**CONTEXT_SETTINGS, "allow_interspersed_args": False})
@click.option("--gpus", default="1", show_default=True, help="Whole GPUs.")
@click.option("--gpu-mem", default=None, help="GPU memory to share one GPU instead: 10G.")
@click.option("--cpus", default="1", show_default=True, help="CPU cores.")
@click.option("--mem", default="4G", show_default=True, help="Memory: 512M, 8G.")
@click.option("--time", "time_", default="1h", show_default=True, help="How long: 30m, 2h.")
@click.option("--project", default=None, help="Project to charge.")
@click.option("--priority", default="0", show_default=True, help="-1000..1000.")
@click.option(
    "--wait", "wait_s", default=None, help="Give up (and cancel) if not placed within this: 10m."
)
@click.option(
    "--print-ssh",
    is_flag=True,
    help="Print the ssh command instead of running it; the allocation stays until `cancel`.",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def shell(
    ctx: click.Context, command: tuple[str, ...], time_: str, wait_s: str | None,
    print_ssh: bool, **opts: Any,
) -> None:  # fmt: skip
    """Hold GPUs for an interactive session and open it over your own SSH.

    Queues an interactive job (the queue marks it [shell]), waits until it is placed, then runs
    `ssh -t` to its host with CUDA_VISIBLE_DEVICES set to its GPUs. The allocation ends when
    the session ends or its time runs out. A COMMAND after -- runs instead of a login shell.

    \b
    Example:
      lepton-tui shell --gpus 1 --time 2h
    """
    from lepton_tui import interactive
    from lepton_tui.validate import parse_duration_s, validate_job

    limit = parse_duration_s(time_, "time")
    patience = None if wait_s is None else parse_duration_s(wait_s, "wait")
    user_command = " ".join(command) if len(command) != 1 else command[0]
    # the user's own values first: `--mem 12Q` is said before anything about the hosts
    validate_job(command=interactive.holder_command(limit), name="shell", time=limit,
                 kind="interactive", notify=False, **opts)  # fmt: skip
    with service_for(ctx) as svc:
        hosts = svc.list_hosts()
        off = [h["name"] for h in hosts if interactive.ssh_refusal(h)]  # Slurm, --local
        if hosts and len(off) == len(hosts):
            raise ValidationError(
                "no host takes a shell session: `shell` opens SSH sessions on SSH hosts only, "
                f"and {', '.join(off)} " + ("is not one" if len(off) == 1 else "are not"),
                interactive.NO_SSH_HINT,
            )
        spec = validate_job(
            command=interactive.holder_command(limit), name="shell", time=limit,
            kind="interactive", notify=False, exclude_host=off, **opts,
        )  # fmt: skip
        job_id = svc.submit(spec)
        click.echo(f"job {job_id} queued: waiting for a host (Ctrl-C cancels it)", err=True)
        if not svc.dispatcher_running():
            click.echo(f"lepton-tui: note: {NO_DISPATCHER}", err=True)
        try:
            job, attempt, host = _wait_placed(svc, job_id, patience)
        except BaseException:
            svc.cancel([job_id])
            raise
        from lepton_tui.client import LabClient

        lab = isinstance(svc, LabClient)  # lab mode: the session logs in as the caller
        login = svc.user if lab else host.get("user")
        try:  # a host added since, where no session can go: said, and the allocation freed
            interactive.check_ssh_host(host)
        except ValidationError:
            svc.cancel([job_id])
            raise
        # lab mode: the service's known_hosts is its own; the key it recorded, checked here
        known = _lab_known_hosts(host) if lab else str(svc.home / paths.KNOWN_HOSTS_FILE)
    remote = interactive.remote_command(
        attempt["gpu_ids"], job_id, interactive.remaining_s(job, time.time()),
        user_command or None,
    )  # fmt: skip
    try:
        argv = interactive.ssh_argv(host, login, remote, tty=sys.stdin.isatty(), known_hosts=known)
    except ValidationError:
        _cancel(ctx, job_id)
        raise
    gpus = ",".join(map(str, attempt["gpu_ids"])) or "none"
    click.echo(
        f"job {job_id} runs on {printable(host['name'])} (GPUs {gpus}, "
        f"{format_duration(interactive.remaining_s(job, time.time()))} left)",
        err=True,
    )
    if print_ssh:
        click.echo(shlex.join(argv))
        return
    try:
        code = _run(argv)
    finally:
        if lab and known:  # the lab's host key, written for this session only
            shutil.rmtree(os.path.dirname(known), ignore_errors=True)
    _cancel(ctx, job_id)
    if code == 255 and lab:  # ssh's own failure (not the session's exit status)
        click.echo(
            f"lepton-tui: note: ssh could not open the session as {printable(str(login))}: the "
            "lab key starts jobs, a session needs your own key in ~/.ssh/authorized_keys on "
            f"{printable(host['name'])}",
            err=True,
        )
    click.echo(f"job {job_id}: session ended, allocation released", err=True)
    sys.exit(code)


def _wait_placed(
    svc: Any, job_id: int, patience: float | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Poll until the job runs: (job, its attempt, its host); fail if it ends first."""
    deadline = None if patience is None else time.monotonic() + patience
    said = None
    while True:
        job = svc.show_job(job_id, 5)
        if job["state"] == "running" and job["attempts"]:
            attempt = job["attempts"][-1]
            return job, attempt, svc.get_host(attempt["host"])
        if job["state"] in ("succeeded", "failed", "cancelled", "timeout"):
            fail(f"job {job_id} ended before it was placed ({job['state']}: {job['reason']})")
        if job["state"] == "queued" and job["reason"] != said:
            said = job["reason"]
            click.echo(f"  {printable(said or 'waiting')}", err=True)
        if deadline is not None and time.monotonic() > deadline:
            raise ValidationError(
                f"job {job_id} was not placed within --wait; it is cancelled",
                "try later or ask for less",
            )
        time.sleep(POLL_S)


def _lab_known_hosts(host: dict[str, Any]) -> str | None:
    """A private known_hosts file (0600, in a 0700 directory) holding the host key the lab
    service recorded for `host`, as the host shows it now; None (ssh then asks, or fails without
    a terminal) when the host shows none that matches. `--print-ssh` leaves it for its command."""
    import tempfile

    from lepton_tui import interactive

    try:
        scan = subprocess.run(interactive.keyscan_argv(host), capture_output=True, text=True,
                              timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = interactive.known_hosts_line(host, scan.stdout)
    if line is None:
        click.echo(
            f"lepton-tui: note: {printable(host['name'])} shows no host key with the fingerprint "
            f"the lab recorded ({printable(str(host.get('host_key_fingerprint')))}); "
            "ssh will check it against your own known_hosts",
            err=True,
        )
        return None
    folder = tempfile.mkdtemp(prefix="lepton-shell-")
    path = os.path.join(folder, "known_hosts")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(line + "\n")
    return path


def _run(argv: list[str]) -> int:
    """Run ssh in the foreground until it ends (Ctrl-C belongs to the session, not to us)."""
    try:
        proc = subprocess.Popen(argv)
    except OSError as exc:
        click.echo(f"lepton-tui: error: cannot run {argv[0]}: {exc}", err=True)
        return 127
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def _cancel(ctx: click.Context, job_id: int) -> None:
    with service_for(ctx) as svc:
        svc.cancel([job_id])
