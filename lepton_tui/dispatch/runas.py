"""The dispatcher's remote verbs on one host, each through the connection of the attempt's owner.

In lab mode every job runs as its submitter (`lepton_tui.logins`): a host with live attempts of
alice and bob is polled once as alice (her attempts) and once as bob (his), in parallel, and the
host's utilization comes with either answer; a host with none is polled once through its own
login. Cancels and fencing go through the owner's connection likewise. In personal mode (the
pool has no lab key) every verb is the one call per host it always was.

A user whose login fails (the lab key taken out of `authorized_keys`) does not take the host
down for everyone: that user's attempts read `unreadable` (nothing is concluded from them) and
the failure is handed back for the login record, while the host's state comes from the others,
or from one poll through the host's own login when nobody else could be reached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from inventory import supervisor
from inventory.errors import AuthFailed, CommandTimeout, HostError
from inventory.fanout import Failed, Ok, fan_out
from inventory.supervisor import AttemptStatus
from lepton_tui.rows import AttemptRow


def by_owner(pool: Any, atts: Iterable[AttemptRow]) -> dict[str | None, list[str]]:
    """Tokens grouped by whose connection reaches them (its job's submitter, `owner`; one
    group, None, in personal mode)."""
    out: dict[str | None, list[str]] = {}
    lab = getattr(pool, "lab_key", None) is not None
    for a in atts:
        out.setdefault(a.owner if lab else None, []).append(a.token)
    return out


def _raise(outcome: Failed, name: str) -> None:
    if isinstance(outcome.error, HostError):
        raise outcome.error
    raise CommandTimeout(name, outcome.reason)


def _per_owner(
    name: str, groups: Mapping[str | None, Any], call: Callable[[str | None, Any], Any],
    timeout: float,
) -> dict[str | None, Ok[Any] | Failed]:  # fmt: skip
    """`call(owner, group)` for each owner, in parallel when there are several. A login that is
    not allowed at all (another user's job on a local host) reads as a refused login."""
    from lepton_tui.errors import LeptonError

    def guarded(owner: str | None, group: Any) -> Any:
        try:
            return call(owner, group)
        except LeptonError as exc:
            raise AuthFailed(name, exc.message) from None

    if len(groups) == 1:  # the usual case: no thread hop
        ((owner, group),) = groups.items()
        try:
            return {owner: Ok(guarded(owner, group))}
        except HostError as exc:
            return {owner: Failed(exc.reason, exc)}
    keys = {f"{name} as {owner or '-'}": owner for owner in groups}
    results = fan_out(
        {k: _bind(guarded, owner, groups[owner]) for k, owner in keys.items()}, timeout=timeout
    )
    return {keys[k]: v for k, v in results.items()}


def poll(
    pool: Any, row: Mapping[str, Any], tokens: Mapping[str | None, Sequence[str]],
    timeout: float = 20.0, poll_host: Callable[..., Any] | None = None,
) -> Any:  # fmt: skip
    """One host's Poll (`lepton_tui.dispatch.hostpool.Poll`): one round trip per owner with tokens there,
    one through the host's own login when none has; `poll.login_failures` says whose login
    failed (user -> reason). Raises the host's error when no connection answered. `poll_host`
    (transport, spec, tokens) -> Poll is the dispatcher's seam (hostpool's by default)."""
    if poll_host is None:
        from lepton_tui.dispatch import hostpool

        poll_host = hostpool.poll_host
    probe = poll_host

    groups = {o: list(t) for o, t in tokens.items() if t} or {None: []}

    def one(owner: str | None, toks: list[str]) -> Any:
        spec, transport = pool.get(row, owner)
        return probe(transport, spec, toks)

    results = _per_owner(str(row["name"]), groups, one, timeout)
    oks = [r.value for r in results.values() if isinstance(r, Ok)]
    failed = {o: r for o, r in results.items() if isinstance(r, Failed)}
    refused = {o: r.reason for o, r in failed.items() if isinstance(r.error, AuthFailed) and o}
    if not oks and refused and None not in groups:  # is the host itself up?
        try:
            oks = [one(None, [])]
        except HostError:
            pass
    if not oks:
        _raise(next(iter(failed.values())), str(row["name"]))
    merged = oks[0]
    for other in oks[1:]:
        merged.attempts.update(other.attempts)
    for owner, outcome in failed.items():
        for token in groups[owner]:
            merged.attempts[token] = AttemptStatus(
                token, "unreadable", reason=f"cannot reach the host as {owner}: {outcome.reason}"
            )
    merged.login_failures = refused
    return merged


def cancel(
    pool: Any, row: Mapping[str, Any], tokens: Mapping[str | None, Sequence[str]],
    grace_s: float, timeout: float = 20.0,
) -> dict[str, bool]:  # fmt: skip
    """`supervisor.cancel_batch` through each owner's connection; tokens whose owner could not
    be reached are left out (sent again next tick). Raises when nobody could be reached."""

    def one(owner: str | None, toks: list[str]) -> dict[str, bool]:
        spec, transport = pool.get(row, owner)
        return supervisor.cancel_batch(transport, spec, toks, grace_s=grace_s)

    return _merged(row, tokens, one, timeout)


def kill_stale(
    pool: Any, row: Mapping[str, Any], tokens: Mapping[str | None, Sequence[str]],
    timeout: float = 20.0,
) -> dict[str, int]:  # fmt: skip
    """Fencing (`supervisor.kill_stale_batch`) through each owner's connection."""

    def one(owner: str | None, toks: list[str]) -> dict[str, int]:
        spec, transport = pool.get(row, owner)
        return supervisor.kill_stale_batch(transport, spec, toks)

    return _merged(row, tokens, one, timeout)


def _merged(
    row: Mapping[str, Any], tokens: Mapping[str | None, Sequence[str]],
    one: Callable[[str | None, list[str]], dict[str, Any]], timeout: float,
) -> dict[str, Any]:  # fmt: skip
    groups = {o: list(t) for o, t in tokens.items() if t}
    if not groups:
        return {}
    results = _per_owner(str(row["name"]), groups, one, timeout)
    out: dict[str, Any] = {}
    for outcome in results.values():
        if isinstance(outcome, Ok):
            out.update(outcome.value)
    if not any(isinstance(r, Ok) for r in results.values()):
        _raise(next(r for r in results.values() if isinstance(r, Failed)), str(row["name"]))
    return out


def launch_key(host: str, owner: str | None) -> str:
    """The fan-out key of one (host, owner) launch batch."""
    return host if owner is None else f"{host} as {owner}"


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


def try_login(pool: Any, row: Mapping[str, Any], user: str, timeout: float = 30.0) -> Any:
    """The preflight as `user` through the pooled connection their jobs would use (kept open
    for them); raises HostError when the login fails."""
    from inventory.preflight import preflight

    spec, transport = pool.get(row, user)
    if row.get("slurm_json"):  # a Slurm host: sbatch and the job directory, as the user
        from lepton_tui.dispatch.slurm import login_check

        return login_check({**row, "root_dir": spec.root_dir}, transport, timeout)
    return preflight(transport, spec, timeout=timeout)


def login_groups(
    ctx: Any, hosts: list[dict[str, Any]], placeable: set[str], pending: Sequence[Any],
    now: float,
) -> tuple[list[tuple[frozenset[str], list[Any]]], dict[int, str]]:  # fmt: skip
    """Pending jobs grouped by the placeable hosts their owners can log in to, and the reasons
    of those whose owners can log in to none (`lepton_tui.logins.placement_groups`). Pairs never
    tried, or failed over LOGIN_RETRY_S ago, are tried first, in parallel, and recorded. In
    personal mode: one group, every job, every placeable host."""
    from lepton_tui.logins import (
        login_for,
        login_records,
        pairs_to_try,
        placement_groups,
        record_login,
    )

    if not getattr(ctx.pool, "lab_key", None):
        return [(frozenset(placeable), list(pending))], {}
    by_name = {h["name"]: h for h in hosts}
    records = login_records(ctx.ledger)
    rows = [by_name[n] for n in sorted(placeable)]
    tries = pairs_to_try(rows, {str(j["user"]) for j in pending}, records, now)
    if tries:
        keys = [f"{row['name']} as {user}" for row, user in tries]
        outcomes = fan_out(
            {
                k: _bind(try_login, ctx.pool, row, user)
                for k, (row, user) in zip(keys, tries, strict=True)
            },
            timeout=ctx.timeout_s,
        )
        for key, (row, user) in zip(keys, tries, strict=True):
            outcome = outcomes[key]
            ok = isinstance(outcome, Ok) and bool(outcome.value.ok)
            error = None
            if isinstance(outcome, Failed):
                error = outcome.reason
            elif not ok:
                failed = [c.name for c in outcome.value.checks if c.required and not c.ok]
                error = "failed " + ", ".join(failed)
            how = login_for(row, user, ctx.pool.lab_key).how
            record_login(ctx.ledger, row["name"], user, ok, how=how, error=error, now=now)
        records = login_records(ctx.ledger)
    return placement_groups(pending, by_name, placeable, records)
