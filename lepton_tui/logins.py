"""Lab mode: every job runs as the user who queued it, on every host.

The lab service holds the lab's SSH key (`lepton_tui.labkey`). A job of user U on host H runs
through the connection of (H, U):
- U is the host's own login (the `user` it was added with, else the service account): the host's
  connection, as in personal mode;
- the host's `run_as` is `key` (the default): log in as U with the lab key, which U has added to
  `~U/.ssh/authorized_keys`;
- `run_as` is `sudo`: the host's own connection, each command run as `sudo -n -H -u U -- ...`
  (the sudoers rule is in README's "Lab mode");
- a `local` host runs jobs only as the service account itself (it would run anyone's job as the
  service account): add the login node over SSH.

Attempt directories live in U's `root_dir` on the host: a `~` root is U's home there; an absolute
root gets U's name appended (`/scratch/lepton/alice`), so users never share a directory.

Whether (H, U) works is kept in `host_logins` (migration 10): `hosts check H --user U` records it,
an admin's `hosts add` over the socket records the admin's own, and the dispatcher tries pairs it
has not seen before it places U's jobs, then an unreachable pair again every `LOGIN_RETRY_S`.
Placement only considers the hosts U can be reached on.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inventory.hostspec import USER_RE
from inventory.transport import CommandResult, Transport
from lepton_tui.errors import LeptonError, ValidationError

LOGIN_RETRY_S = 120.0  # how often an unreachable (host, user) pair is tried again
RUN_AS_MODES = ("key", "sudo")
_LOGIN_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}", re.IGNORECASE)


class NotReachable(LeptonError):
    """A user's jobs cannot run on a host (no login, a local host in lab mode)."""


def service_user() -> str:
    """The account the lab service (this process) runs as."""
    from lepton_tui.identity import user_name

    return user_name(os.getuid())


def host_login(row: Mapping[str, Any]) -> str:
    """Who the host's own connection logs in as: its `user`, else the service account."""
    return str(row.get("user") or service_user())


def run_as(row: Mapping[str, Any]) -> str:
    """How the host starts other users' jobs: `key` (the lab key, as the user) or `sudo`."""
    return str(row.get("run_as") or "key")


def user_root_dir(root_dir: str | None, user: str) -> str:
    """Where `user`'s attempt directories live on a host whose root is `root_dir`."""
    root = root_dir or "~/.lepton"
    if root == "~" or root.startswith("~/"):
        return root  # expanded on the host, as the user: the user's own home
    return f"{root.rstrip('/')}/{user}"


def check_login_name(user: str) -> str:
    """`user` if it is a valid login name, else ValidationError."""
    if not isinstance(user, str) or not _LOGIN_RE.fullmatch(user) or not USER_RE.fullmatch(user):
        raise ValidationError(f"user {user!r} is not a valid login name", field="user")
    return user


@dataclass(frozen=True)
class Login:
    """How to reach (host, user): the row to connect with, and the user to `sudo` to (or None)."""

    row: dict[str, Any]
    user: str  # whom the job runs as
    sudo_user: str | None = None
    how: str = "host login"  # or "lab key", "sudo"


def login_for(row: Mapping[str, Any], owner: str | None, lab_key: Path | str | None) -> Login:
    """The connection that runs `owner`'s jobs on the host of `row` (personal mode, `lab_key`
    None: always the host's own). Raises NotReachable for another user on a local host."""
    row = dict(row)
    if lab_key is None or owner is None or owner == host_login(row):
        return Login(row, owner or host_login(row))
    check_login_name(owner)
    if (row.get("transport") or "ssh") == "local":
        raise NotReachable(
            f"the local host {row['name']} runs jobs only as the service account "
            f"({service_user()}), not as {owner}",
            "add the login node over SSH: `lepton-tui hosts add NAME --address localhost`",
        )
    root = user_root_dir(row.get("root_dir"), owner)
    if run_as(row) == "sudo":
        return Login({**row, "root_dir": root}, owner, sudo_user=owner, how="sudo")
    row = {**row, "user": owner, "key_path": str(lab_key), "root_dir": root}
    return Login(row, owner, how="lab key")


class SudoTransport:
    """Runs each command as another user through `sudo -n -H -u USER --` over the host's own
    connection (the `run_as = sudo` hosts). Every word reaches the remote shell quoted (the
    inner transport joins the argv with `shlex.join`); `-n` fails at once where a password
    would be asked. Round trips are counted by the inner transport."""

    def __init__(self, inner: Transport, user: str) -> None:
        self.inner = inner
        self.user = check_login_name(user)
        self.name = getattr(inner, "name", "")
        self.round_trips = 0  # counted once, by the inner transport

    def run(
        self, argv: list[str], stdin: bytes | None = None, timeout: float = 30
    ) -> CommandResult:
        """Run `argv` as the user (no shell of our own: sudo execs it). sudo's own refusal
        (`sudo: a password is required`, an unknown user) raises AuthFailed: the command
        never ran, as with a refused SSH login."""
        from inventory.errors import AuthFailed

        result = self.inner.run(sudo_argv(self.user, argv), stdin=stdin, timeout=timeout)
        if result.rc == 1 and result.stderr.startswith(b"sudo: ") and not result.stdout:
            said = result.stderr.decode("utf-8", "replace").strip().splitlines()[0]
            raise AuthFailed(self.name, f"sudo -u {self.user} refused: {said}")
        return result

    def close(self) -> None:
        """The inner connection is the host's own: the pool closes it."""


def sudo_argv(user: str, argv: Sequence[str]) -> list[str]:
    """`argv` as `user` through non-interactive sudo, with the user's HOME."""
    return ["sudo", "-n", "-H", "-u", check_login_name(user), "--", *argv]


def lab_key_of(svc: Any) -> Path | None:
    """The lab key when `svc` serves a lab (a caller the kernel named), else None."""
    from lepton_tui.labkey import KEY_FILE

    if getattr(svc, "identity", None) is None:
        return None
    key = Path(svc.home) / KEY_FILE
    return key if key.exists() else None


def job_owner(ledger: Any, job_id: int) -> str | None:
    """Who queued job `job_id` (whom its attempts run as in lab mode)."""
    row = ledger.job_owner(job_id)
    return str(row["user"]) if row else None


# -- the record of who can be reached where -------------------------------------------------


def record_login(
    ledger: Any,
    host: str,
    user: str,
    ok: bool,
    *,
    how: str,
    error: str | None = None,
    actor: str = "dispatcher",
    now: float | None = None,
) -> None:
    """Store whether `user` can be reached on `host` (an event when that changes)."""
    now = ledger.clock() if now is None else now
    with ledger.tx():
        before = ledger.host_login(host, user)
        ledger.save_host_login(host, user, ok, now, how, (error or "")[:500] or None)
        if before is None or bool(before["ok"]) != ok:
            said = "can" if ok else "cannot"
            ledger.event(
                "login.ok" if ok else "login.failed",
                f"{user} {said} be reached on {host} ({how})" + (f": {error}" if error else ""),
                host=host, actor=actor, data={"user": user, "how": how},
            )  # fmt: skip


def login_records(ledger: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Every (host, user) record."""
    return {(r["host"], r["user"]): r for r in ledger.host_logins()}


def can_run(
    row: Mapping[str, Any], user: str, records: Mapping[tuple[str, str], Mapping[str, Any]]
) -> bool:
    """Whether `user`'s jobs may be placed on the host of `row` (lab mode)."""
    if (row.get("transport") or "ssh") == "local":
        return user == service_user()
    if user == host_login(row):
        return True  # the host's own login
    rec = _current_record(row, user, records)
    return bool(rec and rec["ok"])


def _current_record(
    row: Mapping[str, Any], user: str, records: Mapping[tuple[str, str], Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The (host, user) record, unless it was made the other way (the lab key, or sudo) than
    the host now runs jobs: a check that began before `hosts run-as` changed it says nothing
    of the new way, so the pair counts as never tried."""
    rec = records.get((row["name"], user))
    if rec is None:
        return None
    now_how = "sudo" if run_as(row) == "sudo" else "lab key"
    return rec if rec.get("how") in (None, now_how) else None


def pairs_to_try(
    hosts: Iterable[Mapping[str, Any]],
    users: Iterable[str],
    records: Mapping[tuple[str, str], Mapping[str, Any]],
    now: float,
    retry_s: float = LOGIN_RETRY_S,
) -> list[tuple[dict[str, Any], str]]:
    """(host row, user) pairs to try now: never tried, or failed over `retry_s` ago."""
    out = []
    for row in hosts:
        if (row.get("transport") or "ssh") == "local":
            continue
        for user in sorted(set(users)):
            if user == host_login(row):
                continue
            rec = _current_record(row, user, records)
            if rec is None or (not rec["ok"] and now - float(rec["checked_at"]) >= retry_s):
                out.append((dict(row), user))
    return out


def unreachable_reason(user: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """Why none of the hosts `rows` takes `user`'s job: what to do about it, per kind of host."""
    by_key = [r["name"] for r in rows if (r.get("transport") or "ssh") != "local"
              and run_as(r) == "key"]  # fmt: skip
    by_sudo = [r["name"] for r in rows if (r.get("transport") or "ssh") != "local"
               and run_as(r) == "sudo"]  # fmt: skip
    local = [r["name"] for r in rows if (r.get("transport") or "ssh") == "local"]
    parts = []
    if by_key:
        parts.append(
            f"{user} cannot log in to {', '.join(by_key)} with the lab key: add the line from "
            f"`lepton-tui keys show` to ~{user}/.ssh/authorized_keys"
        )
    if by_sudo:
        parts.append(
            f"the lab service cannot start jobs as {user} on {', '.join(by_sudo)} with sudo: "
            "ask an admin to check the sudoers rule (README, Lab mode)"
        )
    if local:
        parts.append(
            f"{', '.join(local)} runs jobs only as the service account: an admin adds the "
            "login node over SSH"
        )
    return "; ".join(parts) or f"no host can run {user}'s jobs"


# -- trying a login -------------------------------------------------------------------------


def try_login(login: Login, transport: Transport, timeout: float = 30) -> Any:
    """The preflight as the login's user (raises HostError when the login fails)."""
    from inventory.preflight import preflight
    from lepton_tui.dispatch.hostpool import spec_from_row

    if login.row.get("slurm_json"):  # a Slurm host: sbatch and the job directory, as the user
        from lepton_tui.dispatch.slurm import login_check

        return login_check(login.row, transport, timeout)
    return preflight(transport, spec_from_row(login.row), timeout=timeout)


def open_login(login: Login, known_hosts: Path, connect_timeout: float = 10) -> Transport:
    """A fresh (unpooled) transport for `login` (the caller closes it)."""
    from inventory.transport import make_transport
    from lepton_tui.dispatch.hostpool import spec_from_row, ssh_options

    spec = spec_from_row(login.row)
    options: dict[str, Any] = {}
    if spec.transport == "ssh":
        options = ssh_options(login.row, {"connect_timeout": connect_timeout})
    inner = make_transport(spec, known_hosts, **options)
    return SudoTransport(inner, login.sudo_user) if login.sudo_user else inner


def check_login(
    svc: Any, name: str, user: str | None = None, timeout: float = 30
) -> dict[str, Any]:
    """`hosts check NAME --user U`: run the preflight on the host as U the way U's jobs would
    run there (the lab key, sudo, or the host's own login), record it, and say what happened.
    Users check themselves; admins anyone."""
    from inventory.errors import HostError
    from lepton_tui.labkey import KEY_FILE

    row = svc.ledger.get_host(name)  # NotFound for a bad name
    lab = svc.identity is not None
    user = check_login_name(user) if user else (svc.user if lab else host_login(row))
    if not lab and user != host_login(row):
        raise ValidationError(
            f"in personal mode every job on {name} runs as {host_login(row)}; --user is for "
            "lab mode (`serve --socket`)",
            f"drop --user, or use --user {host_login(row)}",
            field="user",
        )
    key = Path(svc.home) / KEY_FILE if lab else None
    if key is not None and not key.exists():
        raise LeptonError("this lab service has no lab key", "restart `lepton-tui serve --socket`")
    try:
        login = login_for(row, user, key)
    except NotReachable as exc:
        return {"host": name, "user": user, "ok": False, "how": "local", "error": exc.message,
                "lines": [exc.message]}  # fmt: skip
    how = login.how
    transport = open_login(login, svc.known_hosts, connect_timeout=min(timeout, 10))
    lines: list[str] = []
    error = None
    begun = time.monotonic()
    try:
        pf = try_login(login, transport, timeout)
        lines = pf.lines()
        ok = pf.ok
        if not ok:
            error = "failed " + ", ".join(c.name for c in pf.checks if c.required and not c.ok)
    except HostError as exc:
        ok, error = False, exc.reason
        lines = [f"{'connected':<11} FAIL  {exc.reason}"]
    finally:
        transport.close()
    if lab:
        record_login(svc.ledger, name, user, ok, how=how, error=error, actor=svc.user)
    return {"host": name, "user": user, "ok": ok, "how": how, "error": error, "lines": lines,
            "took_s": round(time.monotonic() - begun, 3)}  # fmt: skip


def set_run_as(svc: Any, name: str, mode: str) -> dict[str, Any]:
    """How a host starts other users' jobs: `key` or `sudo` (`Service.set_run_as`: admins)."""
    if mode not in RUN_AS_MODES:
        raise ValidationError(f"run_as {mode!r} is not one of {', '.join(RUN_AS_MODES)}")
    row = svc.ledger.get_host(name)
    if (row.get("transport") or "ssh") == "local":
        raise ValidationError(f"{name} is a local host: it runs jobs as the service account")
    with svc.ledger.tx():
        svc.ledger.set_run_as(name, mode)  # and forgets what was learnt the other way
        svc.ledger.event(
            "host.run_as", f"host {name} starts other users' jobs with {mode}", host=name,
            actor=svc.user, data={"run_as": mode},
        )  # fmt: skip
    return svc.ledger.get_host(name)


def logins_of(svc: Any, user: str | None = None) -> list[dict[str, Any]]:
    """The (host, user) records, one user's (default: the caller's) unless the caller is an
    admin asking for all (`user` "*")."""
    user = user or svc.user  # another user's, or "*": `Service.logins` allowed it (admins)
    return svc.ledger.host_logins(None if user == "*" else user)


def lab_onboard_args(svc: Any, args: dict[str, Any]) -> dict[str, Any]:
    """An admin's `hosts add` over the socket: the preflight logs in with the lab key (unless
    `--key` names another) as `--user`, by default the admin's own name."""
    from lepton_tui.labkey import KEY_FILE

    out = dict(args)
    if out.get("local"):
        return out  # refused by check_new_host, with its own message
    if not out.get("user"):
        out["user"] = svc.user
    if not out.get("key_path"):
        key = Path(svc.home) / KEY_FILE
        if not key.exists():
            raise LeptonError("this lab service has no lab key", "restart `serve --socket`")
        out["key_path"] = str(key)
    return out


def record_onboarded(svc: Any, host: Mapping[str, Any]) -> None:
    """The login `hosts add` just proved works, kept as the host's first (host, user) record."""
    record_login(
        svc.ledger, str(host["name"]), host_login(host), True, how="hosts add", actor=svc.user
    )


def placement_groups(
    pending: Sequence[Mapping[str, Any]],
    rows: Mapping[str, Mapping[str, Any]],
    placeable: Iterable[str],
    records: Mapping[tuple[str, str], Mapping[str, Any]],
) -> tuple[list[tuple[frozenset[str], list[Any]]], dict[int, str]]:
    """Queued jobs grouped by the placeable hosts their owners can run on (groups in the order
    of their first job, jobs in queue order), and the queue reason of each job whose owner can
    run on none of them. With every user reachable everywhere: one group, every job."""
    placeable = sorted(placeable)
    allowed: dict[str, frozenset[str]] = {}
    groups: dict[frozenset[str], list[Any]] = {}
    reasons: dict[int, str] = {}
    for job in pending:
        user = str(job["user"])
        if user not in allowed:
            allowed[user] = frozenset(n for n in placeable if can_run(rows[n], user, records))
        hosts = allowed[user]
        if not hosts and placeable:
            reasons[int(job["id"])] = unreachable_reason(user, [rows[n] for n in placeable])
            continue
        groups.setdefault(hosts if placeable else frozenset(), []).append(job)
    return list(groups.items()), reasons
