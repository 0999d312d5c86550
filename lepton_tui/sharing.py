"""Fair share and limits in the ledger: shares and limits as admins set them, each user's and
project's decayed usage from the attempts, and the standings `share ls` prints.

The rules themselves are pure, in `scheduler.fairshare`; this module only reads and writes the
ledger. Usage is GPU-hours and CPU-hours weighted by the lab's default prices (`price set`;
1 per GPU-hour and 0.1 per CPU-hour when the lab has none), each moment decayed with the
half-life setting `fairshare_half_life_s` (7 days by default).
"""

from __future__ import annotations

import math
import weakref
from typing import Any

from lepton_tui.economics.budgets import known_user
from lepton_tui.errors import NotFound, ValidationError
from lepton_tui.ledger import Ledger
from lepton_tui.validate import check_name, parse_number
from scheduler.fairshare import (
    DEFAULT_HALF_LIFE_S,
    DEFAULT_WEIGHT,
    Limit,
    ShareConfig,
    Standing,
    standings,
)

SCOPES = ("user", "project")
MAX_SHARES = 1_000_000.0
HALF_LIVES_KEPT = 10.0  # usage older than this many half-lives weighs under 0.1 %: not read


def _check_scope(scope: str, name: str, every: bool = False) -> tuple[str, str]:
    if scope not in SCOPES:
        raise ValidationError(f"scope {scope!r} is not user or project", field="scope")
    if every and name == "*":  # a limit for each one without its own
        return scope, name
    if scope == "user":
        if (
            not name
            or len(name) > 64
            or not name.replace("-", "").replace("_", "").replace(".", "").isalnum()
        ):
            raise ValidationError(f"user {name!r} is not a user name", field="user")
        return scope, name
    return scope, check_name(name, "project")


def _check_user_known(ledger: Ledger, scope: str, name: str, has_rule: bool) -> None:
    """Refuse a new share or limit for a user with no account here and no job in the ledger: a
    misspelt name would otherwise hold a rule that nobody ever meets. A user who already has
    one may still change it (and reset or clear it, after the account is gone)."""
    if scope == "user" and name != "*" and not has_rule and not known_user(ledger, name):
        raise ValidationError(
            f"no user {name!r}: no account on this machine and no job in the ledger",
            "check the spelling; `getent passwd NAME` shows an account",
            field="user",
        )


def share_config(ledger: Ledger, now: float | None = None) -> ShareConfig:
    """The lab's fair-share settings, shares and usage weights, from the ledger."""
    from lepton_tui.economics.prices import lab_prices_at

    users: dict[str, float] = {}
    projects: dict[str, float] = {}
    for r in ledger.share_rows():
        (users if r["scope"] == "user" else projects)[r["name"]] = float(r["shares"])
    prices = lab_prices_at(ledger, now)
    gpu_w, cpu_w = float(prices.gpu_hour or 0), float(prices.cpu_hour or 0)
    if gpu_w <= 0 and cpu_w <= 0:
        gpu_w, cpu_w = 1.0, 0.1
    return ShareConfig(
        user_shares=users,
        project_shares=projects,
        half_life_s=float(ledger.get_setting("fairshare_half_life_s", DEFAULT_HALF_LIFE_S)),
        weight=float(ledger.get_setting("fairshare_weight", DEFAULT_WEIGHT)),
        gpu_hour=gpu_w,
        cpu_hour=cpu_w,
    )


def usage(
    ledger: Ledger, config: ShareConfig, now: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Each user's and project's decayed usage at `now` (running attempts count up to now),
    summed in SQL: one row per user and project, whatever the number of attempts."""
    k = math.log(2.0) / config.half_life_s
    params = {
        "now": now, "k": k, "since": now - HALF_LIVES_KEPT * config.half_life_s,
        "gw": config.gpu_hour / 3600.0, "cw": config.cpu_hour / 3600.0,
    }  # fmt: skip
    rows = ledger.decayed_usage(params)
    users: dict[str, float] = {}
    projects: dict[str, float] = {}
    for r in rows:
        amount = max(0.0, float(r["amount"] or 0.0))
        users[r["user"]] = users.get(r["user"], 0.0) + amount
        projects[r["project"]] = projects.get(r["project"], 0.0) + amount
    return users, projects


# The dispatcher's usage, reused for a while: summing every attempt of the last weeks costs
# ~0.2 s per 50,000 attempts, and a few seconds change a usage decayed over days by nothing.
USAGE_REUSE_S = 30.0
_usage_memo: weakref.WeakKeyDictionary[Ledger, tuple[float, Any, Any, Any]] = (
    weakref.WeakKeyDictionary()
)


def _usage_reused(
    ledger: Ledger, config: ShareConfig, now: float
) -> tuple[dict[str, float], dict[str, float]]:
    """`usage`, computed again when an attempt started or ended (or after USAGE_REUSE_S), else
    the last sum decayed to `now`."""
    mark = ledger.usage_mark()
    key = (config, mark)
    hit = _usage_memo.get(ledger)
    if hit is not None and hit[1] == key and 0 <= now - hit[0] < USAGE_REUSE_S:
        f = 0.5 ** ((now - hit[0]) / config.half_life_s)
        return ({k: v * f for k, v in hit[2].items()}, {k: v * f for k, v in hit[3].items()})
    users, projects = usage(ledger, config, now)
    _usage_memo[ledger] = (now, key, users, projects)
    return users, projects


def lab_standings(
    ledger: Ledger, now: float | None = None, *, reuse: bool = False
) -> tuple[ShareConfig, list[Standing]]:
    """The config and every user's and project's standing: those with usage, shares set, or
    jobs waiting. `reuse` (the dispatcher's rounds): usage summed at most every 30 s."""
    now = ledger.clock() if now is None else now
    config = share_config(ledger, now)
    users, projects = (_usage_reused if reuse else usage)(ledger, config, now)
    waiting = ledger.queued_owners()
    active_users = {r["user"] for r in waiting} | set(config.user_shares)
    active_projects = {r["project"] for r in waiting} | set(config.project_shares)
    return config, standings(users, projects, config, active_users, active_projects)


def standings_json(ledger: Ledger, now: float | None = None) -> list[dict[str, Any]]:
    """`share ls --json`: one object per user and project."""
    config, rows = lab_standings(ledger, now)
    return [
        {
            "scope": s.kind, "name": s.name, "usage": round(s.usage, 6), "shares": s.shares,
            "factor": round(s.factor, 6), "half_life_s": config.half_life_s,
        }
        for s in rows
    ]  # fmt: skip


def set_shares(ledger: Ledger, scope: str, name: str, shares: Any, by: str) -> dict[str, Any]:
    """Set (or with `shares` None, reset to the default 1) a user's or project's shares."""
    scope, name = _check_scope(scope, name)
    value = (
        None
        if shares is None
        else float(parse_number(shares, "shares", minimum=0, maximum=MAX_SHARES))
    )
    had = any(r["scope"] == scope and r["name"] == name for r in ledger.share_rows())
    _check_user_known(ledger, scope, name, had)  # before the write lock: NSS may be slow
    with ledger.tx():
        if value is None:
            ledger.delete_share(scope, name)
            value = 1.0
        else:
            ledger.save_share(scope, name, value, by)
        ledger.event("share.set", f"{scope} {name}: {value:g} shares (by {by})", actor=by,
                     data={"scope": scope, "name": name, "shares": value})  # fmt: skip
    return {"scope": scope, "name": name, "shares": value}


def limits(ledger: Ledger) -> list[Limit]:
    """Every limit in force."""
    return [
        Limit(
            r["scope"],
            r["name"],
            None if r["gpus"] is None else int(r["gpus"]),
            None if r["cpus"] is None else float(r["cpus"]),
            None if r["jobs"] is None else int(r["jobs"]),
        )  # fmt: skip
        for r in ledger.limit_rows()
    ]


def limits_json(ledger: Ledger) -> list[dict[str, Any]]:
    """`limit ls --json`: one object per user or project with a limit."""
    return [
        {"scope": lim.kind, "name": lim.name, "gpus": lim.gpus, "cpus": lim.cpus, "jobs": lim.jobs}
        for lim in limits(ledger)
    ]


def set_limit(
    ledger: Ledger, scope: str, name: str, by: str, *, gpus: Any = None, cpus: Any = None,
    jobs: Any = None, clear: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Set a user's or project's limits (the ones given; `clear` removes them all); name `*`
    sets them for each user or project without limits of its own."""
    scope, name = _check_scope(scope, name, every=True)
    values = {
        "gpus": None if gpus is None else int(parse_number(gpus, "gpus", minimum=0,
                                                           maximum=100_000, integer=True)),
        "cpus": None if cpus is None else float(parse_number(cpus, "cpus", minimum=0,
                                                             maximum=10_000_000)),
        "jobs": None if jobs is None else int(parse_number(jobs, "jobs", minimum=0,
                                                           maximum=10_000_000, integer=True)),
    }  # fmt: skip
    if not clear and all(v is None for v in values.values()):
        raise ValidationError(
            "give at least one of --gpus, --cpus, --jobs", "or --clear to remove the limits"
        )
    _check_user_known(ledger, scope, name, ledger.limit_row(scope, name) is not None)
    with ledger.tx():
        row = ledger.limit_row(scope, name)
        if clear:
            if row is None:
                raise NotFound(f"{scope} {name} has no limits")
            ledger.delete_limit(scope, name)
            ledger.event("limit.cleared", f"{scope} {name}: limits removed (by {by})", actor=by,
                         data={"scope": scope, "name": name})  # fmt: skip
            return {"scope": scope, "name": name, "gpus": None, "cpus": None, "jobs": None}
        merged = {k: (values[k] if values[k] is not None else (row or {}).get(k)) for k in values}
        ledger.save_limit(scope, name, merged, by)
        text = ", ".join(f"{k} {v:g}" for k, v in merged.items() if v is not None)
        ledger.event("limit.set", f"{scope} {name}: at most {text} at once (by {by})", actor=by,
                     data={"scope": scope, "name": name, **merged})  # fmt: skip
    return {"scope": scope, "name": name, **merged}


def format_usage(value: float) -> str:
    """Usage in the lab's weighting, short."""
    if not math.isfinite(value):
        return "-"
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def lab_policy(ledger: Ledger, policy: Any) -> Any:
    """`policy` with the lab's fair share and limits around it, for the simulator (replay)."""
    from scheduler.fairshare import SharedLabPolicy

    config = share_config(ledger)
    found = limits(ledger)
    if not config.weight and not found:
        return policy
    return SharedLabPolicy(policy, config, found)
