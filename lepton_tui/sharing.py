"""Fair share and limits in the ledger: shares and limits as admins set them, each user's and
project's decayed usage from the attempts, and the standings `share ls` prints.

The rules themselves are pure, in `scheduler.fairshare`; this module only reads and writes the
ledger. Usage is GPU-hours and CPU-hours weighted by the lab's default prices (`price set`;
1 per GPU-hour and 0.1 per CPU-hour when the lab has none), each moment decayed with the
half-life setting `fairshare_half_life_s` (7 days by default).
"""

from __future__ import annotations

import math
from typing import Any

from lepton_tui.errors import NotFound, ValidationError
from lepton_tui.ledger import Ledger
from lepton_tui.validate import check_name, parse_number
from scheduler.fairshare import (
    DEFAULT_HALF_LIFE_S,
    DEFAULT_WEIGHT,
    Limit,
    ShareConfig,
    Standing,
    decayed_amount,
    standings,
    usage_rate,
)
from scheduler.model import Resources

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


def share_config(ledger: Ledger, now: float | None = None) -> ShareConfig:
    """The lab's fair-share settings, shares and usage weights, from the ledger."""
    from lepton_tui.economics_prices import lab_prices_at

    users: dict[str, float] = {}
    projects: dict[str, float] = {}
    for r in ledger.query("SELECT scope, name, shares FROM shares"):
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
    """Each user's and project's decayed usage at `now` (running attempts count up to now)."""
    per_gpu = {
        h["name"]: (int(h["gpu_mem_mb"] or 0) // int(h["gpus"]) if h["gpus"] else 0)
        for h in ledger.query("SELECT name, gpus, gpu_mem_mb FROM hosts")
    }
    since = now - HALF_LIVES_KEPT * config.half_life_s
    rows = ledger.query(
        "SELECT j.user, j.project, a.host, a.cpus, a.gpus, a.gpu_mem_mb, a.started_at, "
        "a.ended_at FROM attempts a JOIN jobs j ON j.id = a.job_id "
        "WHERE a.started_at IS NOT NULL AND (a.ended_at IS NULL OR a.ended_at >= ?)",
        (since,),
    )
    users: dict[str, float] = {}
    projects: dict[str, float] = {}
    for r in rows:
        req = Resources(float(r["cpus"] or 0), 0, int(r["gpus"] or 0), int(r["gpu_mem_mb"] or 0))
        rate = usage_rate(req, per_gpu.get(r["host"], 0), config)
        end = float(r["ended_at"]) if r["ended_at"] is not None else now
        amount = decayed_amount(rate, float(r["started_at"]), end, now, config.half_life_s)
        users[r["user"]] = users.get(r["user"], 0.0) + amount
        projects[r["project"]] = projects.get(r["project"], 0.0) + amount
    return users, projects


def lab_standings(ledger: Ledger, now: float | None = None) -> tuple[ShareConfig, list[Standing]]:
    """The config and every user's and project's standing: those with usage, shares set, or
    jobs waiting."""
    now = ledger.clock() if now is None else now
    config = share_config(ledger, now)
    users, projects = usage(ledger, config, now)
    waiting = ledger.query("SELECT DISTINCT user, project FROM jobs WHERE state = 'queued'")
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
    with ledger.tx():
        if shares is None:
            ledger.execute("DELETE FROM shares WHERE scope = ? AND name = ?", (scope, name))
            value = 1.0
        else:
            value = float(parse_number(shares, "shares", minimum=0, maximum=MAX_SHARES))
            ledger.execute(
                "INSERT INTO shares (scope, name, shares, set_by, set_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (scope, name) DO UPDATE SET shares = excluded.shares, "
                "set_by = excluded.set_by, set_at = excluded.set_at",
                (scope, name, value, by, ledger.clock()),
            )
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
        for r in ledger.query("SELECT * FROM limits ORDER BY scope DESC, name")
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
    with ledger.tx():
        row = ledger.query_one("SELECT * FROM limits WHERE scope = ? AND name = ?", (scope, name))
        if clear:
            if row is None:
                raise NotFound(f"{scope} {name} has no limits")
            ledger.execute("DELETE FROM limits WHERE scope = ? AND name = ?", (scope, name))
            ledger.event("limit.cleared", f"{scope} {name}: limits removed (by {by})", actor=by,
                         data={"scope": scope, "name": name})  # fmt: skip
            return {"scope": scope, "name": name, "gpus": None, "cpus": None, "jobs": None}
        merged = {k: (values[k] if values[k] is not None else (row or {}).get(k)) for k in values}
        ledger.execute(
            "INSERT INTO limits (scope, name, gpus, cpus, jobs, set_by, set_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, name) DO UPDATE SET "
            "gpus = excluded.gpus, cpus = excluded.cpus, jobs = excluded.jobs, "
            "set_by = excluded.set_by, set_at = excluded.set_at",
            (scope, name, merged["gpus"], merged["cpus"], merged["jobs"], by, ledger.clock()),
        )
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
