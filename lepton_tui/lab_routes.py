"""The lab service's routes: each `POST /v1/call/<method>` name with the `Service` method it
calls, and the converters that check what a client sent before the service sees it.

Nothing from the socket is trusted: a job spec is validated again (`spec_from_wire`), arguments
are converted to the types the service takes, and every permission is decided by `service.py`
(these routes only call it). The server and its handler are `lepton_tui.labd`; `client.py`
offers the same calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from typing import Any

from lepton_tui.errors import ValidationError
from lepton_tui.service import Service
from lepton_tui.validate import JobSpec, parse_number, validate_job

# -- the calls --------------------------------------------------------------------------------

_SPEC_FIELDS = {f.name for f in fields(JobSpec)}


def spec_from_wire(raw: Any) -> JobSpec:
    """A job spec a client sent, validated again here: nothing from the socket is trusted."""
    if not isinstance(raw, dict):
        raise ValidationError("the job spec must be a JSON object")
    unknown = sorted(set(raw) - _SPEC_FIELDS)
    if unknown:
        raise ValidationError(f"unknown job field {unknown[0]!r}")
    if "command" not in raw:
        raise ValidationError("the job spec has no command", field="command")
    gpu_mem = int(raw.get("gpu_mem_mb") or 0)
    return validate_job(
        command=str(raw["command"]),
        name=raw.get("name"),
        cpus=raw.get("cpus", 1),
        mem=f"{int(raw.get('mem_mb', 1024))}M",
        gpus=raw.get("gpus", 0),
        gpu_mem=f"{gpu_mem}M" if gpu_mem else None,
        time=raw.get("time_limit_s"),
        priority=raw.get("priority", 0),
        project=raw.get("project"),
        after=[int(a) for a in raw.get("after") or ()],
        retries=raw.get("retries", 0),
        workdir=raw.get("workdir"),
        env=dict(raw.get("env") or {}),
        # -- notifications, requeue at the time limit, job kind (lepton_tui.job_options) --
        notify_on=raw.get("notify_on"),
        notify=None if raw.get("notify_on") is None else bool(raw.get("notify_on")),
        requeue_on_timeout=bool(raw.get("requeue_on_timeout")),
        max_requeues=raw.get("max_requeues") if raw.get("requeue_on_timeout") else None,
        signal=raw.get("signal"),
        kind=raw.get("kind"),
        **_placement_from_wire(raw),
    )


def _placement_from_wire(raw: dict[str, Any]) -> dict[str, Any]:
    """Constraints as `validate_job` takes them (checked there again)."""
    c = raw.get("constraints") or {}
    if not isinstance(c, dict):
        raise ValidationError("constraints must be a JSON object")
    return {"gpu_type": c.get("gpu_type"), "constraint": list(c.get("labels") or ()),
            "host": list(c.get("hosts") or ()), "exclude_host": list(c.get("exclude") or ())}  # fmt: skip


def _array_from_wire(raw: Any, spec: JobSpec) -> JobSpec:
    """An array element's index and cap, checked."""
    index, limit = raw.get("array_index"), raw.get("array_limit")
    if index is not None:
        spec.array_index = int(parse_number(index, "array index", minimum=0, maximum=10**9,
                                            integer=True))  # fmt: skip
        if limit is not None:
            spec.array_limit = int(parse_number(limit, "array limit", minimum=1, maximum=10**9,
                                                integer=True))  # fmt: skip
    return spec


def _submit(svc: Service, spec: Any, key: str | None = None) -> list[int]:
    specs = spec if isinstance(spec, list) else [spec]
    if not specs or len(specs) > 1000:
        raise ValidationError("submit 1 to 1000 jobs at a time")
    if key is not None and (not isinstance(key, str) or not 8 <= len(key) <= 64):
        raise ValidationError("the submit key must be 8 to 64 characters")
    return svc.submit_many([_array_from_wire(s, spec_from_wire(s)) for s in specs], key=key)


def _cancel(svc: Service, job_ids: Any) -> list[dict[str, Any]]:
    return [asdict(r) for r in svc.cancel([int(j) for j in job_ids])]


def _set_setting(svc: Service, key: str, value: Any) -> Any:
    from lepton_tui.settings import parse_setting

    parsed = parse_setting(str(key), value if isinstance(value, str) else json.dumps(value))
    svc.set_setting(str(key), parsed)
    return parsed


def whoami(svc: Service) -> dict[str, Any]:
    ident = svc.identity
    assert ident is not None
    return {"user": ident.user, "uid": ident.uid, "gid": ident.gid,
            "groups": sorted(ident.groups), "admin": svc.is_admin()}  # fmt: skip


_HOST_ARGS = {"address", "port", "user", "key_path", "local", "price_per_hour", "root_dir",
              "gpus_override"}  # fmt: skip


def _host_args(options: dict[str, Any], extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    unknown = set(options) - _HOST_ARGS - extra
    if unknown:
        raise ValidationError(f"unknown host field {sorted(unknown)[0]!r}")
    return options


def _add_host(svc: Service, name: str, fingerprint: Any = None, **options: Any) -> dict[str, Any]:
    """`hosts add --no-connect`: record the host only, its key pinned by `fingerprint`; it logs
    in as `hosts add` would (the lab key, as --user, by default the admin)."""
    from lepton_tui.logins import lab_onboard_args
    from lepton_tui.onboarding import normalize_fingerprint

    if fingerprint is not None and not isinstance(fingerprint, str):
        raise ValidationError("the fingerprint must be text", field="fingerprint")
    pinned = normalize_fingerprint(fingerprint) if fingerprint else None
    args = _host_args(options)
    args = lab_onboard_args(svc, args)  # service.py refuses a non-admin, and a --local host
    return svc.add_host(str(name), same_machine_ok=False,
                        host_key=(None, pinned) if pinned else None, **args)  # fmt: skip


def _onboard(svc: Service, name: str, **options: Any) -> dict[str, Any]:
    """`hosts add`: the service connects (its own keys and known_hosts), checks and stores."""
    lines: list[str] = []
    args = _host_args(options, frozenset({"accept_new_host_key", "fingerprint"}))
    from lepton_tui.logins import lab_onboard_args, record_onboarded

    args = lab_onboard_args(svc, args)  # the lab key, as --user (default: the admin)
    done = svc.onboard(str(name), echo=lines.append, **args)
    record_onboarded(svc, done.host)
    return {"host": done.host, "preflight": done.preflight.to_dict(), "lines": lines}


CALLS: dict[str, Callable[..., Any]] = {
    "whoami": whoami,
    "submit": _submit,
    "cancel": _cancel,
    "get_job": lambda svc, job_id: svc.get_job(int(job_id)),
    "show_job": lambda svc, job_id, events=50: svc.show_job(int(job_id), int(events)),
    "list_jobs": lambda svc, **kw: svc.list_jobs(**kw),
    "job_counts": lambda svc: svc.job_counts(),
    "count_jobs": lambda svc, **kw: svc.count_jobs(**kw),
    "stderr_bytes": lambda svc, job_id, attempt_no=None: svc.stderr_bytes(
        int(job_id), None if attempt_no is None else int(attempt_no)
    ),
    "list_hosts": lambda svc: svc.list_hosts(),
    "get_host": lambda svc, name: svc.get_host(str(name)),
    "add_host": _add_host,
    "onboard": _onboard,
    "remove_host": lambda svc, name, force=False: svc.remove_host(str(name), bool(force)),
    "set_draining": lambda svc, name, draining: svc.set_draining(str(name), bool(draining)),
    "settings": lambda svc: svc.settings(),
    "set_setting": _set_setting,
    "events": lambda svc, **kw: svc.events(**kw),
    "budget_warnings": lambda svc: svc.budget_warnings(),
    "lab_key": lambda svc: svc.lab_key(),
    "last_host_event": lambda svc, name, kind: svc.last_host_event(str(name), str(kind)),
    # -- notifications (lepton_tui.notify) --
    "notify_prefs": lambda svc: svc.notify_prefs(),
    "set_notify_prefs": lambda svc, notify_on=None, email=None, webhook=None: svc.set_notify_prefs(
        notify_on, email, webhook
    ),  # fmt: skip
    "notifications": lambda svc, limit=50: svc.notifications(int(limit)),
}

# -- economics: reports for everyone; prices, currency, cost weight and budgets (service.py says
# who may write them) -------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A date or name a client sent: text or nothing."""
    if value is None or isinstance(value, str):
        return value
    raise ValidationError(f"expected text, not {type(value).__name__}")


def _set_prices(svc: Service, host: Any = None, **options: Any) -> dict[str, Any]:
    return svc.set_prices(_text(host), **options)


def _replay(svc: Service, since: Any = None, until: Any = None, policies: Any = None,
            cost_weight: Any = None) -> dict[str, Any]:  # fmt: skip
    names = ["fifo", "sjf", "backfill", "dqn"] if policies is None else policies
    if not isinstance(names, list) or not all(isinstance(p, str) for p in names):
        raise ValidationError("policies must be a list of names")
    return svc.replay(_text(since), _text(until), names, cost_weight)


CALLS.update(
    {
        "cost": lambda svc, since=None, until=None, by="user": svc.cost(
            _text(since), _text(until), str(by)
        ),
        "waste": lambda svc: svc.waste(),
        "prices": lambda svc, history=False: svc.prices(bool(history)),
        "set_prices": _set_prices,
        "set_currency": lambda svc, code: svc.set_currency(str(code)),
        "set_cost_weight": lambda svc, weight: svc.set_cost_weight(weight),
        "budgets": lambda svc: svc.budgets(),
        "set_budget": lambda svc, scope, name, amount, unit="money", hard=False, new_project=False: (
            svc.set_budget(
                str(scope),
                str(name),
                amount,
                str(unit),
                hard=bool(hard),
                new_project=bool(new_project),
            )  # fmt: skip
        ),
        "remove_budget": lambda svc, scope, name, unit=None: svc.remove_budget(
            str(scope), str(name), _text(unit)
        ),
        "replay": _replay,
        "probe_host": lambda svc, name, timeout=30.0: svc.probe_host(str(name), timeout),
    }
)

# -- lab mode's logins (jobs run as their submitter; lepton_tui.logins) --
CALLS.update({
    "check_login": lambda svc, name, user=None: svc.check_login(
        str(name), None if user is None else str(user)
    ),
    "set_run_as": lambda svc, name, mode: svc.set_run_as(str(name), str(mode)),
    "logins": lambda svc, user=None: svc.logins(None if user is None else str(user)),
})  # fmt: skip
# -- Slurm hosts (lepton_tui.dispatch.slurm): `hosts add NAME --slurm` by an admin --
_SLURM_ARGS = frozenset({"accept_new_host_key", "fingerprint", "partition", "account", "qos",
                         "slurm_conf"})  # fmt: skip


def _onboard_slurm(svc: Service, name: str, **options: Any) -> dict[str, Any]:
    """The service checks the partition (over SSH with the lab key as the admin, as `hosts
    add`, or on this node) and stores it; its preflight lines come back."""
    from lepton_tui.logins import lab_onboard_args, record_onboarded

    args = dict(_host_args(options, _SLURM_ARGS))
    args.pop("gpus_override", None)
    local = not args.get("address")
    args.pop("local", None)  # without an address Slurm's commands run on this node
    if not local:
        args = lab_onboard_args(svc, args)  # the lab key, as --user (default: the admin)
    lines: list[str] = []
    done = svc.onboard_slurm(str(name), echo=lines.append, **args)
    if not local:
        record_onboarded(svc, done.host)
    return {"host": done.host, "lines": lines,
            "checks": [[ok, line] for ok, line in done.lines]}  # fmt: skip


CALLS["onboard_slurm"] = _onboard_slurm
# -- the DQN's weights (service.py decides who may install) --
CALLS.update({
    "policies": lambda svc: svc.policies(),
    "install_policy": lambda svc, source, name=None, force=False: svc.install_policy(
        str(source), None if name is None else str(name), force=bool(force)
    ),
})  # fmt: skip


# -- the console's live views (engineer `console`) --


def _console_view(svc: Service, view: str, args: dict[str, Any] | None = None) -> Any:
    """One read of a console screen (what a console that cannot watch reads each tick)."""
    from lepton_tui.screen_data import read_view, to_wire

    return to_wire(read_view(svc, str(view), time.time(), args or {}))


CALLS["console_view"] = _console_view


# shared lab (issue 19): fair share, limits, host labels, arrays
CALLS.update({
    "share_list": lambda svc: svc.share_list(),
    "share_set": lambda svc, scope, name, shares=None: svc.share_set(str(scope), str(name), shares),
    "limit_list": lambda svc: svc.limit_list(),
    "limit_set": lambda svc, scope, name, gpus=None, cpus=None, jobs=None, clear=False:
        svc.limit_set(str(scope), str(name), gpus=gpus, cpus=cpus, jobs=jobs, clear=bool(clear)),
    "label_host": lambda svc, name, add=(), remove=(): svc.label_host(
        str(name), [str(x) for x in add], [str(x) for x in remove]
    ),
    "resolve_jobs": lambda svc, ref, live=False: svc.resolve_jobs(str(ref), bool(live)),
})  # fmt: skip
# -- the policy autopilot (service.py decides who may run a round) --
CALLS["autopilot_round"] = lambda svc: svc.autopilot_round()
# -- reads a CLI command made on the ledger itself (issue 16's audit): the autopilot's state,
# `train --from-ledger`'s history --
CALLS["autopilot_summary"] = lambda svc: svc.autopilot_summary()
CALLS["training_history"] = lambda svc: svc.training_history()

_LIST_JOBS_ARGS = {"all_states", "user", "project", "states", "limit", "offset"}
_COUNT_JOBS_ARGS = {"all_states", "user", "project", "states"}
_EVENTS_ARGS = {"limit", "job_id", "user", "since"}

# the calls taking `**kwargs` through to the service: their argument names are checked here
ALLOWED_ARGS = {"list_jobs": _LIST_JOBS_ARGS, "count_jobs": _COUNT_JOBS_ARGS,
                "events": _EVENTS_ARGS}  # fmt: skip
