"""The one API both faces use: validation, permissions, and every change to the ledger.

The console and the CLI never write the ledger directly; they call a `Service`. The caller is the
OS user; admins are root, the ledger's owner (whoever created it) and members of the Unix group
named by the `admin_group` setting.

In lab mode (`lepton-tui serve --socket`) the daemon builds one `Service` per request with the
caller's `Identity` as the kernel gave it (`SO_PEERCRED`); admins are then root, the service
account (the daemon's own uid) and members of `admin_group`. Other users' jobs are visible, their
environment and logs only to their owner and admins.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_tui import host_admin, job_changes, notify_prefs, paths, webhook_hosts
from lepton_tui.errors import NotFound, PermissionDenied, ValidationError
from lepton_tui.identity import Identity
from lepton_tui.ledger import TERMINAL_JOB_STATES, Ledger, open_ledger
from lepton_tui.local_state import check_state_exists, current_user, dispatcher_running
from lepton_tui.validate import JobSpec, parse_number, validate_job

DEFAULT_ADMIN_GROUP = "lepton-admin"
# a webhook URL (or a notify command holding a token) works as a password: admins only see it
SECRET_SETTINGS, HIDDEN = ("notify_webhook", "notify_command"), "(set; only admins see it)"


@dataclass
class CancelResult:
    """What happened to one job of a cancel request."""

    job_id: int
    ok: bool
    message: str


class Service:
    """Validated, permission-checked operations on one ledger."""

    def __init__(
        self,
        ledger: Ledger,
        home: Path,
        user: str | None = None,
        *,
        identity: Identity | None = None,
    ) -> None:
        self.ledger = ledger
        self.home = home
        # a caller the kernel named (lab mode) is that user, whatever `user` says
        self.identity = identity
        self.user = identity.user if identity is not None else (user or current_user())
        self.ledger.claim_owner(self.user)

    @classmethod
    def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        *,
        user: str | None = None,
        clock: Callable[[], float] | None = None,
        create: bool = True,
    ) -> Service:
        """Open the service on a state directory: created if needed, unless `create` is false (a
        read-only command), which refuses a missing directory or ledger rather than make one."""
        state = paths.state_dir(home)
        if not create:
            check_state_exists(state)
        ledger = (
            open_ledger(state / paths.LEDGER_FILE, clock)
            if clock
            else open_ledger(state / paths.LEDGER_FILE)
        )
        return cls(ledger, state, user)

    def close(self) -> None:
        self.ledger.close()

    @property
    def known_hosts(self) -> Path:
        return self.home / paths.KNOWN_HOSTS_FILE

    def lab_key(self) -> str:
        """The lab key's `authorized_keys` line (public: anyone may read it)."""
        from lepton_tui.labkey import authorized_keys_line

        return authorized_keys_line(self.home)

    def dispatcher_running(self) -> bool:
        """Whether a dispatcher (a console or `serve`) holds this ledger's lock right now."""
        return dispatcher_running(self.home)

    # -- permissions ---------------------------------------------------------------------------

    def is_admin(self, user: str | None = None) -> bool:
        """Root, the ledger's owner, or a member of the admin group."""
        group = self.ledger.get_setting("admin_group", DEFAULT_ADMIN_GROUP)
        if user is None and self.identity is not None:
            # lab mode: root, the service account (this process's uid), the admin group
            ident = self.identity
            return ident.uid == 0 or ident.uid == os.getuid() or ident.in_group(group)
        user = user or self.user
        if user == "root" or user == self.ledger.get_setting("owner"):
            return True
        try:
            info = grp.getgrnam(group)
        except KeyError:
            return False
        if user in info.gr_mem:
            return True
        try:
            return pwd.getpwnam(user).pw_gid == info.gr_gid
        except KeyError:
            return False

    def require_admin(self, what: str) -> None:
        if not self.is_admin():
            group = self.ledger.get_setting("admin_group", DEFAULT_ADMIN_GROUP)
            raise PermissionDenied(
                f"only admins may {what}", f"ask an admin, or join the Unix group {group!r}"
            )

    # -- jobs ----------------------------------------------------------------------------------

    def submit(self, spec: JobSpec | None = None, **raw: Any) -> int:
        """Queue one job; `raw` fields are validated as the CLI would. Returns the job id."""
        return self.submit_many([spec or validate_job(**raw)])[0]

    def submit_many(self, specs: Sequence[JobSpec], key: str | None = None) -> list[int]:
        """Queue several validated jobs in one transaction (all or none). A job that fits no
        host is queued all the same (a host may be added), with a reason that says what no
        host has.

        `key`, a client's unique name for this request, makes a retried submit (the connection
        dropped before the answer came) return the jobs of the first instead of queueing twice."""
        with self.ledger.tx():
            if key is not None:
                row = self.ledger.submit_key(key)
                if row is not None:
                    if row["user"] != self.user:
                        raise ValidationError("that submit key belongs to another user")
                    return [int(i) for i in json.loads(row["job_ids"])]
            ids = job_changes.queue_jobs(self.ledger, self.user, specs)
            if key is not None:
                self.ledger.record_submit_key(key, self.user, ids)
            return ids

    def unfit_reason(self, spec: JobSpec) -> str | None:
        """Why no host could ever run `spec` (`job_changes.unfit_reason`); None if one could."""
        return job_changes.unfit_reason(self.ledger, spec)

    def cancel(self, job_ids: Iterable[int]) -> list[CancelResult]:
        """Cancel jobs: queued ones at once, running ones through `cancelling`. One result each."""
        results = []
        admin = self.is_admin()
        for job_id in job_ids:
            try:
                job = self.ledger.get_job(int(job_id))
            except NotFound as exc:
                results.append(CancelResult(int(job_id), False, str(exc)))
                continue
            if job["user"] != self.user and not admin:
                msg = (
                    f"job {job['id']} belongs to {job['user']}; only they or an admin may cancel it"
                )
                results.append(CancelResult(job["id"], False, msg))
                continue
            outcome = job_changes.cancel_job(self.ledger, job, self.user)
            if outcome is None:
                # It moved under us (the dispatcher started it); try once more from its new state.
                results.extend(self.cancel([job["id"]]))
                continue
            results.append(CancelResult(job["id"], *outcome))
        return results

    def may_see_private(self, job: dict[str, Any]) -> bool:
        """Whether the caller may read a job's environment and logs: its owner or an admin."""
        return job["user"] == self.user or self.is_admin()

    def get_job(self, job_id: int) -> dict[str, Any]:
        """A job; another user's environment is hidden (`env` None, `env_hidden` True)."""
        job = self.ledger.get_job(int(job_id))
        if not self.may_see_private(job):
            job["env"] = None
            job["env_hidden"] = True
        return job

    def read_log(self, job_id: int, stream: str = "stdout", follow: bool = False,
                 attempt_no: int | None = None, **options: Any) -> Iterator[str]:  # fmt: skip
        """A job's log as it is read from its host (owner and admins only)."""
        from lepton_tui.logs import follow_log

        job = self.ledger.job_owner(int(job_id))
        if job is not None and not self.may_see_private(job):  # no such job: follow_log says so
            raise PermissionDenied(
                f"job {job['id']} belongs to {job['user']}; only they or an admin may read its logs"
            )
        return follow_log(self, int(job_id), stream=stream, follow=follow, attempt_no=attempt_no,
                          **options)  # fmt: skip

    def stderr_bytes(self, job_id: int, attempt_no: int | None = None) -> int:
        """How many bytes a job's attempt wrote to stderr (owner and admins only; 0 for others,
        and when the host cannot say)."""
        from lepton_tui.logs import stderr_bytes

        job = self.ledger.job_owner(int(job_id))
        if job is None or not self.may_see_private(job):
            return 0
        return stderr_bytes(self, int(job_id), attempt_no)

    def show_job(self, job_id: int, events: int = 50) -> dict[str, Any]:
        """A job with its attempts and latest events."""
        job = self.get_job(job_id)
        job["attempts"] = self.ledger.attempts_for(job["id"])
        job["events"] = self.ledger.job_events(job["id"], events)
        return job

    def list_jobs(self, **filters: Any) -> list[dict[str, Any]]:
        """The jobs `iter_jobs` reads, as a list."""
        return list(self.iter_jobs(**filters))

    def iter_jobs(self, *, all_states: bool = False, user: str | None = None,
                  project: str | None = None, states: Sequence[str] | None = None,
                  limit: int | None = 1000, offset: int = 0) -> Iterator[dict[str, Any]]:  # fmt: skip
        """Jobs, by default only those not ended (queued, starting, running, cancelling), read
        row by row (a long listing is written as it is read, never held whole).

        Live jobs come first (running, cancelling, starting, then queued; higher priority, then
        older, first), then ended ones, the most recently ended first: a `limit` keeps what is
        happening now and drops the oldest history."""
        admin: bool | None = None
        for job in self.ledger.iter_job_rows(all_states=all_states, user=user, project=project,
                                             states=states, limit=limit, offset=offset):  # fmt: skip
            if job["user"] != self.user:
                admin = self.is_admin() if admin is None else admin
                if not admin:
                    job["env"] = None  # another user's environment: owner and admins only
                    job["env_hidden"] = True
            yield job

    def count_jobs(self, *, all_states: bool = False, user: str | None = None,
                   project: str | None = None, states: Sequence[str] | None = None) -> int:  # fmt: skip
        """How many jobs `list_jobs` with the same filters would list without a limit."""
        return self.ledger.count_job_rows(all_states=all_states, user=user, project=project,
                                          states=states)  # fmt: skip

    def job_counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        return self.ledger.job_counts()

    # -- hosts ---------------------------------------------------------------------------------

    def add_host(self, name: str, *, address: str | None = None, port: int = 22,
                 user: str | None = None, key_path: str | None = None, local: bool = False,
                 price_per_hour: float | None = None, root_dir: str | None = None,
                 gpus_override: int | None = None, capacity: dict[str, Any] | None = None,
                 host_key: tuple[str | None, str] | None = None, labels: Sequence[str] = (),
                 same_machine_ok: bool = True) -> dict[str, Any]:  # fmt: skip
        """Record a host (no connection is made here; onboarding does that first).

        `same_machine_ok=False` (the CLI and the console) refuses a second host that reaches the
        same machine; tests and benchmarks set up one machine under several names on purpose."""
        values = self.check_new_host(
            name, address=address, port=port, user=user, key_path=key_path, local=local,
            price_per_hour=price_per_hour, root_dir=root_dir, gpus_override=gpus_override,
            same_machine_ok=same_machine_ok,
        )  # fmt: skip
        return host_admin.record_host(
            self.ledger, self.user, values, capacity=capacity, host_key=host_key, labels=labels
        )

    def onboard(self, name: str, *, echo: Callable[[str], None] = lambda line: None,
                **options: Any) -> Any:  # fmt: skip
        """Connect to a new host, check it and store it (admins; see `onboarding.onboard`)."""
        from lepton_tui.onboarding import onboard

        self.require_admin("add hosts")  # before the service connects anywhere for anyone
        return onboard(self, name, echo=echo, **options)

    def onboard_slurm(self, name: str, *, echo: Callable[[str], None] = lambda line: None,
                      **options: Any) -> Any:  # fmt: skip
        """Check a Slurm partition and store it as a host (admins; `dispatch.slurm_admin`)."""
        from lepton_tui.dispatch.slurm_admin import onboard_slurm

        self.require_admin("add hosts")  # before the service connects anywhere for anyone
        return onboard_slurm(self, name, echo=echo, **options)

    def check_new_host(
        self, name: str, *, same_machine_ok: bool = False, **fields: Any
    ) -> dict[str, Any]:
        """An admin adding a host whose fields are valid, whose name is free and (unless
        `same_machine_ok`) that no other host already reaches: its values."""
        self.require_admin("add hosts")
        if self.identity is not None and fields.get("local"):
            raise ValidationError(
                "a --local host in lab mode would run every job as the service account",
                "add the login node over SSH: hosts add NAME --address localhost",
                field="local",
            )
        values = self.check_host_fields(name, **fields)
        host_admin.check_host_free(self.ledger, values, same_machine_ok)
        return values

    def check_host_fields(self, name: str, *, address: str | None, port: Any = 22,
                          user: str | None = None, key_path: str | None = None, local: bool = False,
                          price_per_hour: Any = None, root_dir: str | None = None,
                          gpus_override: Any = None) -> dict[str, Any]:  # fmt: skip
        """Validate a host's fields (shared by the CLI and the add-host form)."""
        return host_admin.check_host_fields(
            name, address=address, port=port, user=user, key_path=key_path, local=local,
            price_per_hour=price_per_hour, root_dir=root_dir, gpus_override=gpus_override,
        )  # fmt: skip

    # -- the DQN's weights (lepton_tui.policies) ----------------------------------------------

    def policies(self) -> list[dict[str, Any]]:
        """The shipped and installed DQN weights, and which one `dqn` runs."""
        from lepton_tui.policies import listing

        return listing(self.home)

    def install_policy(
        self, source: str, name: str | None = None, *, force: bool = False
    ) -> dict[str, Any]:
        """Check a weights file and make it the one `dqn` runs (admins only: it changes how
        every job of the lab is placed). In lab mode the file is read by the service."""
        from lepton_tui.policies import install_recorded

        self.require_admin("install a policy")
        return install_recorded(self.ledger, source, self.home, name, self.user, force=force)

    # -- lab mode's logins: jobs run as their submitter (lepton_tui.logins) --------------------

    def check_login(self, name: str, user: str | None = None) -> dict[str, Any]:
        """`hosts check NAME --user U`: can U's jobs run there? (users: their own; admins: any)"""
        from lepton_tui.logins import check_login

        if self.identity is not None and user not in (None, self.user) and not self.is_admin():
            raise PermissionDenied(f"only admins may check another user's login ({user})",
                                   f"check your own: `lepton-tui hosts check {name}`")  # fmt: skip
        return check_login(self, name, user)

    def set_run_as(self, name: str, mode: str) -> dict[str, Any]:
        """How a host starts other users' jobs: `key` (the lab key) or `sudo` (admins)."""
        from lepton_tui.logins import set_run_as

        self.require_admin("change how hosts run jobs")
        return set_run_as(self, name, mode)

    def logins(self, user: str | None = None) -> list[dict[str, Any]]:
        """Which hosts a user (default: the caller; admins: any, or "*") can be reached on."""
        from lepton_tui.logins import logins_of

        if user not in (None, self.user) and not self.is_admin():
            raise PermissionDenied("only admins may list other users' logins")
        return logins_of(self, user)

    def list_hosts(self) -> list[dict[str, Any]]:
        """Every host; `outside_gpus` lists its GPUs used by processes lepton did not start."""
        return host_admin.hosts_with_outside_gpus(self.ledger)

    def get_host(self, name: str) -> dict[str, Any]:
        return self.ledger.get_host(name)

    def remove_host(self, name: str, force: bool = False) -> None:
        """Remove a host; refused while jobs run there unless `force` (they are then lost)."""
        self.require_admin("remove hosts")
        host_admin.remove_host(self.ledger, self.user, name, force)

    def set_draining(self, name: str, draining: bool) -> dict[str, Any]:
        """Drain (finish running jobs, place nothing new) or resume a host."""
        self.require_admin("drain or resume hosts")
        return host_admin.set_draining(self.ledger, self.user, name, draining)

    # -- settings ------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The lab's settings; a secret one's value (SECRET_SETTINGS) only for admins."""
        values = self.ledger.settings()
        if not self.is_admin():
            values.update({k: HIDDEN for k in SECRET_SETTINGS if values.get(k)})
        return values

    def set_setting(self, key: str, value: Any) -> None:
        self.require_admin("change settings")
        if key == "notify_command" and self.identity and self.identity.uid not in (0, os.getuid()):
            raise PermissionDenied("in lab mode only root sets notify_command: it runs as the service "
                                   "account, which holds the lab key", "ask root")  # fmt: skip
        if key == "notify_webhook":  # the lab service would POST there: only where allowed
            webhook_hosts.allow(value, self.settings())
        self.ledger.set_setting(key, value, actor=self.user)

    def events(self, limit: int = 100, job_id: int | None = None, *, user: str | None = None,
               since: float | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """The audit trail, newest first: by job, by acting user, since a time (a secret
        setting's value only for admins)."""
        rows = self.ledger.events_by(limit, job_id, user, since)
        if not self.is_admin():
            for e in rows:
                key = e["message"][4:].partition(" = ")[0] if e["kind"] == "setting" else None
                if key in SECRET_SETTINGS:
                    e["message"] = f"set {key} = {HIDDEN}"
        return rows

    # -- notifications (lepton_tui.notify) -------------------------------------------------------

    def notify_prefs(self) -> dict[str, Any]:
        """The caller's notification defaults: events for jobs submitted without --notify,
        and their own email address and webhook (None: the lab's, if any)."""
        return notify_prefs.prefs_of(self.ledger, self.user)

    def set_notify_prefs(
        self, notify_on: Any = None, email: str | None = None, webhook: str | None = None
    ) -> dict[str, Any]:
        """Change the caller's own defaults (theirs to give): None keeps a field, "" clears it."""
        webhook_hosts.allow(webhook, self.settings())
        return notify_prefs.set_prefs(self.ledger, self.user, notify_on, email, webhook)

    def notifications(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest notifications of the caller's jobs (an admin's: everyone's)."""
        from lepton_tui.notify import since

        return since(self.ledger, None if self.is_admin() else self.user, int(limit))

    def budget_warnings(self) -> list[str]:
        """The budget warnings in force (80 % and 100 %), as lines; the cost engine is loaded
        only when budgets exist."""
        if not self.ledger.has_budgets():
            return []
        from lepton_tui.economics.budgets import budget_warnings

        return [
            w.message if hasattr(w, "message") else str(w) for w in budget_warnings(self.ledger)
        ]

    def last_host_event(self, name: str, kind: str) -> dict[str, Any] | None:
        """The latest event of `kind` about host `name` (who drained it, and why)."""
        return self.ledger.last_host_event(name, kind)

    # -- economics: reports for everyone; prices, currency, cost weight and budgets for admins --

    def cost(self, since: str | None = None, until: str | None = None, by: str = "user") -> Any:
        """A cost report over a window typed as text (`economics.api.cost_data`)."""
        from lepton_tui.economics.api import cost_data

        return cost_data(self.ledger, since, until, by)

    def waste(self) -> dict[str, Any]:
        """Idle allocated GPUs, GPUs busy outside lepton, capacity the queue cannot use."""
        from lepton_tui.economics.api import waste_data

        return waste_data(self.ledger)

    def prices(self, history: bool = False) -> dict[str, Any]:
        """The prices in force (or their history), the currency and the cost weight."""
        from lepton_tui.economics.api import price_list

        return price_list(self.ledger, bool(history))

    def set_prices(self, host: str | None = None, **options: Any) -> dict[str, Any]:
        """Set prices, currency and cost weight from now on, all or none (admins only)."""
        from lepton_tui.economics.api import set_lab_prices

        self.require_admin("set prices")
        return set_lab_prices(self.ledger, self.user, host, **options)

    def set_currency(self, code: str) -> str:
        """Set the lab currency from now on (admins only)."""
        return str(self.set_prices(currency=code)["currency_set"])

    def set_cost_weight(self, weight: Any) -> float:
        """Set the cost-aware scheduling weight (admins only)."""
        return float(self.set_prices(cost_weight=weight)["cost_weight_set"])

    def budgets(self) -> dict[str, Any]:
        """Every budget with this month's spend, and the lab currency."""
        from lepton_tui.economics.api import budget_list

        return budget_list(self.ledger)

    def set_budget(self, scope: str, name: str, amount: Any, unit: str = "money", *,
                   hard: bool = False, new_project: bool = False) -> dict[str, Any]:  # fmt: skip
        """Create or replace a monthly budget (admins only)."""
        from lepton_tui.economics.api import budget_set

        self.require_admin("set budgets")
        return budget_set(self.ledger, self.user, scope, name, amount, unit, hard=hard,
                          new_project=new_project)  # fmt: skip

    def remove_budget(self, scope: str, name: str, unit: str | None = None) -> int:
        """Remove a budget (admins only); returns how many were removed."""
        from lepton_tui.economics.api import budget_remove

        self.require_admin("remove budgets")
        return budget_remove(self.ledger, self.user, scope, name, unit)

    def replay(self, since: str | None = None, until: str | None = None,
               policies: Sequence[str] = ("fifo", "sjf", "backfill", "dqn"),
               cost_weight: Any = None) -> dict[str, Any]:  # fmt: skip
        """The lab's own history re-run under other policies, beside what really happened."""
        from lepton_tui.economics.api import replay_data

        return replay_data(self.ledger, since, until, list(policies), cost_weight)

    def probe_host(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        """Sample a host now (`host_probe.probe_host`)."""
        from lepton_tui.host_probe import probe_host

        timeout = float(parse_number(timeout, "timeout", minimum=0.1, maximum=3600))
        return probe_host(self.ledger, self.known_hosts, str(name), timeout)

    # -- the policy autopilot (lepton_tui.autopilot) --

    def autopilot_summary(self) -> dict[str, Any]:
        """Which policy runs and why, and the last round's league table (anyone may read it)."""
        from lepton_tui import autopilot as ap

        return ap.summary(self.ledger)

    def training_history(self) -> dict[str, Any]:
        """What `train --from-ledger` learns from: finished runs (requests, times, no command or
        environment) and the hosts of known size; anyone may read it, as `replay` does."""
        return {"runs": self.ledger.finished_runs(), "hosts": self.ledger.sized_hosts()}

    def autopilot_round(self) -> dict[str, Any]:
        """Run an autopilot round now (admins): replay, choose, record; then its summary."""
        from lepton_tui import autopilot as ap

        self.require_admin("run an autopilot round")
        ap.run_round(self.ledger, actor=self.user)
        return ap.summary(self.ledger)

    # -- shared lab: fair share, limits, labels, arrays (issue 19) ---------------------------

    def share_list(self) -> list[dict[str, Any]]:
        """Every user's and project's usage, shares and fair-share factor."""
        from lepton_tui.sharing import standings_json

        return standings_json(self.ledger)

    def share_set(self, scope: str, name: str, shares: Any) -> dict[str, Any]:
        """Set a user's or project's shares (None: back to the default, 1). Admins only."""
        from lepton_tui.sharing import set_shares

        self.require_admin("set shares")
        return set_shares(self.ledger, scope, name, shares, self.user)

    def limit_list(self) -> list[dict[str, Any]]:
        """Every limit in force."""
        from lepton_tui.sharing import limits_json

        return limits_json(self.ledger)

    def limit_set(self, scope: str, name: str, *, gpus: Any = None, cpus: Any = None,
                  jobs: Any = None, clear: bool = False) -> dict[str, Any]:  # fmt: skip
        """Cap what a user or project holds at once. Admins only."""
        from lepton_tui.sharing import set_limit

        self.require_admin("set limits")
        return set_limit(self.ledger, scope, name, self.user, gpus=gpus, cpus=cpus, jobs=jobs,
                         clear=clear)  # fmt: skip

    def label_host(self, name: str, add: Sequence[str] = (), remove: Sequence[str] = ()
                   ) -> dict[str, Any]:  # fmt: skip
        """Add `key=value` labels to a host (a new value replaces the key's old one) and remove
        labels by `key` or `key=value`. Admins only."""
        self.require_admin("label hosts")
        return host_admin.relabel_host(self.ledger, self.user, name, add, remove)

    def resolve_jobs(self, ref: str, live: bool = False) -> list[int]:
        """The jobs `ref` names: `ID` (a whole array when ID is an array's; with `live`, its
        elements not yet ended), `ID.INDEX` (one element of array ID)."""
        from lepton_tui.validate import parse_id

        text = str(ref).strip()
        head, dot, index = text.partition(".")
        job_id = parse_id(head)
        if dot:
            if not index.isdigit() or not index.isascii():
                raise ValidationError(
                    f"job {ref!r} is not ID or ID.INDEX", "write it like 12 or 12.3", field="job"
                )
            element = self.ledger.array_element(job_id, int(index))
            if element is None:
                raise NotFound(*job_changes.no_element(self.ledger, job_id, int(index)))
            return [element]
        rows = self.ledger.array_members(job_id)
        if rows and live:
            rows = [r for r in rows if r["state"] not in TERMINAL_JOB_STATES] or rows[:1]
        return [int(r["id"]) for r in rows] or [job_id]
