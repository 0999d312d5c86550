"""A Slurm cluster as a kind of host: the dispatcher's verbs (poll, launch, cancel, fence, logs)
for a host row whose `slurm_json` names a partition.

Lepton decides which queued jobs go to the partition (the policy sees it as one pool: its usable
nodes' CPUs and memory less what other users hold there, its GPUs, and for placing only, less
what other users' jobs waiting in its queue claim: `with_claims`); Slurm places them. The
dispatcher calls these where it would call `inventory.supervisor` for an SSH host:

- `SlurmHosts.poll(host, tokens)` -> a `Poll` (ONE round trip, ONE squeue or sacct, however
  many jobs): pending in Slurm reads `starting`, running `running`, ended `done` with exit code
  and Slurm's start and end;
- `SlurmHosts.launch(hosts, starts, relaunch)`: sbatch every intent (the `starting` attempt is
  committed first); a relaunch (an intent the cluster never showed, e.g. after a crash between
  intent and sbatch) first looks for the job by name and submits only if Slurm does not have
  it; a job Slurm refuses fails with Slurm's reason; the attempt stays `starting` until Slurm
  runs it;
- `SlurmHosts.chain(...)`: queued jobs whose dependencies all run in Slurm on one host are
  submitted there with `--dependency=afterok:`;
- `SlurmHosts.cancel(host, tokens)` / `kill_stale(host, tokens)`: one scancel for all;
- `read_log(...)`: the attempt's output files, by offset.

Adding and probing a Slurm host is `lepton_tui.dispatch.slurm_admin`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import secrets
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from inventory.errors import AuthFailed, HostError
from inventory.fanout import Failed, Ok, fan_out
from inventory.slurm import OthersPending, PartitionView, SlurmTarget, SubmitSpec
from inventory.slurm import one_line as slurm_one_line
from inventory.slurm_host import Refused, Retry, SlurmHost, SlurmPoll, Submitted
from inventory.supervisor import AttemptStatus
from lepton_tui.dispatch import outcome
from lepton_tui.dispatch.hostpool import GpuState, HostPool, Poll
from lepton_tui.dispatch.slurm_requeue import run_of, slurm_token
from lepton_tui.errors import IllegalTransition, LeptonError
from lepton_tui.job_options import restart_env
from lepton_tui.ledger import Ledger
from lepton_tui.logins import host_login, record_login
from lepton_tui.rows import ActiveAttempt
from scheduler.model import ClusterView, Resources

log = logging.getLogger("lepton_tui.dispatcher")

SBATCH_S = 0.2  # time allowed per sbatch in a submission batch, on top of the poll timeout
MAX_SUBMIT_TRIES = 5  # sbatch failures in a row (not refusals) before a job fails
PENDING_PREFIX = "pending in Slurm"  # the reason of an attempt waiting in Slurm's queue


def is_slurm(host: Mapping[str, Any] | None) -> bool:
    """True for a host row that is a Slurm partition."""
    return bool(host and host.get("slurm_json"))


def target_of(host: Mapping[str, Any]) -> SlurmTarget:
    """The partition, account, QOS and SLURM_CONF of a Slurm host row."""
    try:
        return SlurmTarget.from_json(host.get("slurm_json"))
    except (ValueError, TypeError) as exc:
        raise LeptonError(f"host {host.get('name')!r}: bad Slurm settings: {exc}") from None


class SlurmHosts:
    """One `SlurmHost` per Slurm host row and login, on the pool's transports: the host's own
    (the poll, personal mode) and, in lab mode, each submitter's (sbatch, scancel, their files;
    `HostPool.get(row, owner)`: the lab key or sudo)."""

    def __init__(self, pool: HostPool, ledger: Ledger) -> None:
        self.pool = pool
        self.ledger = ledger
        self._hosts: dict[tuple[str, str], tuple[Any, SlurmHost]] = {}
        self._lock = threading.Lock()

    @property
    def lab(self) -> bool:
        """Lab mode: every job runs as its submitter."""
        return getattr(self.pool, "lab_key", None) is not None

    def login_of(self, host: Mapping[str, Any], owner: str | None) -> str | None:
        """Whose login runs `owner`'s Slurm jobs on `host`: None for the host's own."""
        if not self.lab or owner is None or owner == host_login(host):
            return None
        return owner

    def get(self, host: Mapping[str, Any], owner: str | None = None) -> SlurmHost:
        """The adapter for a host row and the submitter `owner` (lab mode; None, or personal
        mode: the host's own login), rebuilt when its transport or settings change."""
        owner = self.login_of(host, owner)
        spec, transport = self.pool.get(host, owner)
        key = (id(transport), host.get("slurm_json"), spec.root_dir)
        with self._lock:
            entry = self._hosts.get((host["name"], owner or ""))
            if entry is None or entry[0] != key:
                entry = (key, SlurmHost(host["name"], transport, target_of(host), spec.root_dir))
                self._hosts[(host["name"], owner or "")] = entry
            return entry[1]

    def owners(self, host: Mapping[str, Any], tokens: Sequence[str]) -> dict[str, str | None]:
        """token -> whose login reaches its attempt (None: the host's own)."""
        if not self.lab:
            return dict.fromkeys(tokens)
        users = attempt_owners(self.ledger, tokens)
        return {t: self.login_of(host, users.get(t)) for t in tokens}

    # -- the tick ------------------------------------------------------------------------------
    def poll(self, host: Mapping[str, Any], tokens: Sequence[str], timeout: float = 60) -> Poll:
        """The partition as one pool and the status of each asked attempt, in one round trip
        through the host's own login. In lab mode that one squeue (or sacct) lists the jobs of
        every submitter with attempts there (`--users`); only the end files of other users'
        jobs Slurm no longer shows are read through those users' logins (one round trip per
        such user, in parallel, and only then), since their directories are theirs alone."""
        sh = self.get(host)
        rows = self.ledger.attempt_refs(tokens)
        ids = {t: job for t, (job, _, _) in rows.items()}
        since = min((created for _, _, created in rows.values()), default=None)
        owners = self.owners(host, list(ids))
        foreign = {t for t, o in owners.items() if o is not None}
        users = sorted({host_login(host), *(o for o in owners.values() if o)}) if foreign else None
        known = {t: str(sid) for t, (_, sid, _) in rows.items() if sid}
        sp = sh.poll(ids, timeout=timeout, since=since, users=users, foreign=foreign,
                     slurm_ids=known)  # fmt: skip
        statuses = dict(sp.statuses)
        login_failures: dict[str, str] = {}
        if sp.unread:
            statuses.update(self._read_foreign(host, sp.unread, ids, owners, timeout,
                                               login_failures))  # fmt: skip
        refused: dict[str, list[str]] = {}
        for t, st in statuses.items():
            if st.get("refused") and owners.get(t):
                refused.setdefault(str(owners[t]), []).append(str(st["slurm_id"]))
        for owner, refused_ids in refused.items():  # taken out of Slurm's queue by their submitter
            try:
                self.get(host, owner).cancel(refused_ids)
            except (HostError, LeptonError) as exc:
                log.warning("scancel on %s as %s failed: %s", host["name"], owner, exc)
        return partition_poll(host["name"], self.ledger.clock(), sp, statuses, ids, tokens,
                              login_failures)  # fmt: skip

    def _read_foreign(
        self, host: Mapping[str, Any], unread: Collection[str], ids: Mapping[str, int],
        owners: Mapping[str, str | None], timeout: float, failures: dict[str, str],
    ) -> dict[str, dict[str, Any]]:  # fmt: skip
        """The end files of other users' attempts Slurm no longer shows, through each owner's
        login, in parallel; an owner who cannot be reached leaves theirs `unreadable`."""
        by_owner: dict[str, dict[str, int]] = {}
        for t in unread:
            by_owner.setdefault(str(owners[t]), {})[t] = ids[t]
        calls = {
            owner: _bind(self._end_files, host, owner, atts, timeout)
            for owner, atts in by_owner.items()
        }
        out: dict[str, dict[str, Any]] = {}
        for owner, answer in fan_out(calls, timeout=timeout + 5).items():
            if isinstance(answer, Ok):
                out.update(answer.value)
                continue
            if isinstance(answer, Failed) and isinstance(answer.error, AuthFailed):
                failures[owner] = answer.reason
            for t in by_owner[owner]:
                out[t] = {
                    "state": "unreadable",
                    "reason": f"cannot reach {host['name']} as {owner}: {answer.reason}",
                }
        return out

    def _end_files(
        self, host: Mapping[str, Any], owner: str, atts: Mapping[str, int], timeout: float
    ) -> dict[str, dict[str, Any]]:
        try:
            sh = self.get(host, owner)
        except LeptonError as exc:  # not allowed at all (lepton_tui.logins.NotReachable)
            raise AuthFailed(str(host["name"]), exc.message) from None
        return sh.end_files(atts, timeout=timeout)

    def launch(
        self,
        hosts: Mapping[str, Mapping[str, Any]],
        starts: Sequence[ActiveAttempt],
        relaunch: bool,
        timeout: float = 120,
    ) -> int:
        """sbatch `starting` attempts (their intents are committed), one round trip per Slurm
        host, in parallel; record each job's Slurm id, fail the ones Slurm refuses. Returns how
        many Slurm took. Attempts stay `starting` until squeue shows them running."""
        by_host: dict[tuple[str, str | None], list[tuple[ActiveAttempt, SubmitSpec]]] = {}
        for a in starts:
            host = hosts.get(a.host)
            if host is None:
                continue
            if self.ledger.job_state(a.job_id) == "cancelling":  # cancelled while starting
                change = outcome.cancelled_before_start("it reached Slurm")
                with contextlib.suppress(IllegalTransition):
                    self.ledger.transition_attempt(
                        a.token, change.attempt, job_state=change.job, reason=change.reason
                    )
                continue
            owner = self.login_of(host, a.owner)  # lab mode: sbatch as the submitter
            try:
                sh = self.get(host, owner)
                spec = SubmitSpec(
                    job_id=a.job_id, token=a.token, command=a.job.command,
                    job_dir=sh.job_dir(a.job_id, a.token), cpus=float(a.cpus or 1),
                    mem_mb=int(a.mem_mb or 1024), gpus=a.gpus, gpu_mem_mb=a.gpu_mem_mb,
                    time_limit_s=a.job.time_limit_s, workdir=a.job.workdir, env=dict(a.job.env),
                    after=self.ledger.slurm_after(a.job_id, a.host),
                )  # fmt: skip
                # `--requeue-on-timeout`'s restart count, `--signal` as Slurm's own
                spec = dataclasses.replace(
                    spec, env={**spec.env, **restart_env(a.job)}, signal=a.job.signal
                )
            except ValueError as exc:
                _give_up(self.ledger, a, f"cannot submit to Slurm: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001 - the host is unreachable: next tick
                log.warning("Slurm host %s: %s", a.host, exc)
                continue
            part = self.get(host).last_partition  # from this tick's poll
            too_large = part.too_large(spec.cpus, spec.mem_mb, spec.gpus_wanted) if part else None
            if too_large:  # a pool of small nodes can hold it in sum, no node alone
                _give_up(self.ledger, a, f"Slurm cannot run it: {too_large}")
                continue
            by_host.setdefault((a.host, owner), []).append((a, spec))
        if not by_host:
            return 0
        # each sbatch is an RPC to slurmctld: give a large batch the time it needs
        timeout += SBATCH_S * max(len(items) for items in by_host.values())
        keys = {launch_key(name, owner): (name, owner) for name, owner in by_host}
        calls: dict[str, Callable[[], dict[str, Submitted | Refused | Retry]]] = {
            key: _bind(self.get(hosts[name], owner).submit, [s for _, s in by_host[name, owner]],
                       relaunch, timeout)
            for key, (name, owner) in keys.items()
        }  # fmt: skip
        results = fan_out(calls, timeout=timeout + 5)
        taken = 0
        for key, answer in results.items():
            name, owner = keys[key]
            if not isinstance(answer, Ok):
                log.warning("sbatch on %s failed (will retry): %s", key, answer.reason)
                if owner and isinstance(answer.error, AuthFailed):  # placed on a stale record
                    record_login(self.ledger, name, owner, False, how="sbatch",
                                 error=answer.reason)  # fmt: skip
                continue
            items = by_host[name, owner]
            retry = [(a, r.reason) for a, s in items
                     if isinstance(r := answer.value.get(s.token), Retry)]  # fmt: skip
            self._count_failures(retry)
            with self.ledger.tx():
                for a, spec in items:
                    res = answer.value.get(spec.token)
                    if isinstance(res, Submitted):
                        self.ledger.mark_submitted(spec.token, res.job_dir, res.slurm_id)
                        self.ledger.event(
                            "attempt.submitted",
                            f"job {a.job_id} submitted to Slurm on {name} as job "
                            f"{res.slurm_id}" + (" (found there after a restart)"
                                                 if res.existing else ""),
                            job_id=a.job_id, host=name, actor="dispatcher",
                            data={"token": spec.token, "slurm_job_id": res.slurm_id},
                        )  # fmt: skip
                        taken += 1
                    elif isinstance(res, Refused):
                        _give_up(self.ledger, a, res.reason)
        return taken

    def _count_failures(self, failed: Sequence[tuple[ActiveAttempt, str]]) -> None:
        """A submission sbatch failed without refusing the job (it may pass): counted in the
        ledger (across restarts); the attempt is submitted again next tick, and after
        MAX_SUBMIT_TRIES failures in a row its job fails with the last reason."""
        with self.ledger.tx():
            for a, why in failed:
                tries = self.ledger.count_launch_failure(a.token)
                log.warning("submitting job %s failed (%d): %s", a.job_id, tries, why)
                if tries >= MAX_SUBMIT_TRIES:
                    _give_up(self.ledger, a, f"submission failed {tries} times: {why}")

    def chain(
        self,
        hosts: Sequence[Mapping[str, Any]],
        placeable: set[str],
        reasons: Mapping[int, str],
        holds: Mapping[int, str],
    ) -> set[int]:
        """Submit queued jobs whose unmet dependencies all run (or wait) in Slurm on one host to
        that host now, with `--dependency=afterok:` on them: Slurm starts each when its
        dependencies succeed (and, `--kill-on-invalid-dep`, cancels it if one fails). Returns
        the ids of the jobs submitted (no longer waiting here)."""
        waiting = [j for j, why in reasons.items() if why.startswith("waiting for dependency")]
        if not waiting:
            return set()
        slurm_hosts = {
            h["name"]: h for h in hosts
            if is_slurm(h) and h["name"] in placeable and h.get("admin_state") != "draining"
        }  # fmt: skip
        if not slurm_hosts:
            return set()
        rows = self.ledger.dependency_places(waiting)
        where: dict[int, set[str | None]] = {}
        for r in rows:
            if r["state"] == "succeeded":
                continue
            ok = r["host"] in slurm_hosts and r["slurm_job_id"]
            where.setdefault(int(r["job_id"]), set()).add(r["host"] if ok else None)
        starts: list[ActiveAttempt] = []
        for job_id, places in where.items():
            if None in places or len(places) != 1 or job_id in holds:
                continue
            (host,) = places
            token = secrets.token_hex(6)
            try:
                self.ledger.start_attempt(job_id, str(host), token, [], policy="slurm-afterok")
            except IllegalTransition:  # cancelled since
                continue
            start = self.ledger.active_attempt(token)
            if start is not None:
                starts.append(start)
        if starts:
            self.launch(slurm_hosts, starts, relaunch=False)
        return {a.job_id for a in starts}

    def cancel(self, host: Mapping[str, Any], tokens: Sequence[str]) -> list[str]:
        """scancel the attempts' Slurm jobs (one scancel per login); the tokens handled."""
        return self._scancel(host, tokens)

    def kill_stale(self, host: Mapping[str, Any], tokens: Sequence[str]) -> dict[str, int]:
        """Fencing: scancel what Slurm may still run of lost attempts; per token, 1."""
        return dict.fromkeys(self._scancel(host, tokens), 1)

    def _scancel(self, host: Mapping[str, Any], tokens: Sequence[str]) -> list[str]:
        """scancel through each submitter's login (lab mode: scancel of another user's job
        needs that user or a Slurm operator), one scancel per login; the tokens handled.
        Raises when no login could cancel."""
        if not tokens:
            return []
        rows = self.ledger.attempt_refs(tokens)
        owners = self.owners(host, list(tokens))
        groups: dict[str | None, list[str]] = {}
        for t in tokens:
            groups.setdefault(owners.get(t), []).append(t)
        done: list[str] = []
        error: Exception | None = None
        for owner, toks in groups.items():
            try:
                sh = self.get(host, owner)
                known = [str(rows[t][1]) for t in toks if t in rows and rows[t][1]]
                unknown = {t: rows[t][0] for t in toks if t in rows and not rows[t][1]}
                if unknown:  # submitted but never recorded (a crash after sbatch): by name
                    found = sh.poll(unknown).jobs
                    known += [found[t].slurm_id for t in unknown if t in found]
                sh.cancel(known)
            except (HostError, LeptonError) as exc:
                log.warning("scancel on %s as %s failed: %s", host["name"], owner or "-", exc)
                error = exc
                continue
            done += toks
        if not done and error is not None:
            raise error
        return done


def partition_poll(
    name: str, taken_at: float, sp: SlurmPoll, statuses: Mapping[str, Mapping[str, Any]],
    ids: Mapping[str, int], tokens: Sequence[str], login_failures: dict[str, str],
) -> Poll:  # fmt: skip
    """The `Poll` of one `SlurmPoll`: the partition's capacity less what other users' jobs hold
    there (lepton's own running jobs are the ledger's attempts). Other users' pending jobs do
    NOT shrink it: that capacity is recorded (`hosts.cpus`, prices per CPU, replay) and their
    claims would make it 0 on a busy partition; they are in `slurm_pending`, which only the
    placement view takes away (`with_claims`)."""
    part = sp.partition
    mine_cpus = sum(j.cpus for j in sp.jobs.values() if j.state == "RUNNING")
    mine_mem = sum(j.mem_mb for j in sp.jobs.values() if j.state == "RUNNING")
    others_cpus = max(0, part.cpus_alloc - mine_cpus)
    others_mem = max(0, part.mem_alloc_mb - mine_mem)
    gpus = [
        GpuState(index=i, util_percent=100.0 if i < part.gpus_alloc else 0.0)
        for i in range(part.gpus)
    ]
    attempts = {
        token: AttemptStatus.from_dict({"token": token, **st})
        for token, st in statuses.items()
        if token in ids
    }
    for token in tokens:  # an attempt the ledger no longer has: nothing to say
        attempts.setdefault(token, AttemptStatus(token, "missing"))
    return Poll(
        host=name,
        taken_at=taken_at,
        cpus=max(0, part.cpus - others_cpus),
        cpu_percent=100.0 * part.cpus_alloc / part.cpus if part.cpus else None,
        mem_total_mb=max(0, part.mem_mb - others_mem),
        mem_used_mb=float(part.mem_alloc_mb),
        gpus=gpus,
        attempts=attempts,
        login_failures=login_failures,
        nodes=node_records(part),
        slurm_nodes={t: j.node_count for t, j in sp.jobs.items() if t in ids and j.node_count},
        slurm_alloc={t: j.allocated for t, j in sp.jobs.items() if t in ids and j.allocated},
        slurm_pending=None if sp.others is None else pending_record(part, sp.others),
        slurm_runs={t: run_of(j) for t, j in sp.jobs.items() if t in ids},
    )


def with_claims(view: ClusterView, hosts: Sequence[Mapping[str, Any]]) -> ClusterView:
    """The placement view with what other users' jobs waiting in each Slurm partition's own
    queue for room claim (`slurm_pending`: Slurm starts them before a job submitted now) taken
    from that partition's free CPUs, memory and GPUs, floored at 0. Only the policy sees this;
    the recorded capacity stays the partition's."""
    claims: dict[str, dict[str, Any]] = {}
    for h in hosts:
        if not is_slurm(h) or not h.get("slurm_pending"):
            continue
        try:
            q = json.loads(h["slurm_pending"])
        except ValueError:
            continue
        if isinstance(q, dict) and q.get("ahead"):
            claims[str(h["name"])] = q
    if not claims:
        return view
    nodes = []
    for n in view.nodes:
        q = claims.get(n.id)
        if q is None:
            nodes.append(n)
            continue
        cut = min(len(n.free_gpu_ids), max(0, int(q.get("gpus") or 0)))
        taken = n.free_gpu_ids[len(n.free_gpu_ids) - cut :]
        mems = tuple(0 if g in taken else m for g, m in enumerate(n.gpu_free_mem_mb))
        free = Resources(
            max(0.0, n.free.cpus - float(q.get("cpus") or 0)),
            max(0, n.free.mem_mb - int(q.get("mem_mb") or 0)),
            len(n.free_gpu_ids) - cut,
            max(0, n.free.gpu_mem_mb - (sum(n.gpu_free_mem_mb) - sum(mems))),
        )
        kept = n.free_gpu_ids[: len(n.free_gpu_ids) - cut]
        nodes.append(dataclasses.replace(n, free=free, free_gpu_ids=kept, gpu_free_mem_mb=mems))
    return dataclasses.replace(view, nodes=tuple(nodes))


def read_log(
    host: Mapping[str, Any],
    transport: Any,
    root_dir: str,
    attempt: Mapping[str, Any],
    stream: str,
    offset: int,
    max_bytes: int,
) -> tuple[bytes, int]:
    """Up to `max_bytes` of a Slurm attempt's output file from `offset`."""
    sh = SlurmHost(host["name"], transport, target_of(host), root_dir)
    token = slurm_token(attempt["token"])  # every run of a job Slurm requeued: its files
    return sh.read_log(int(attempt["job_id"]), token, stream, offset, max_bytes)


def node_records(part: PartitionView) -> list[dict[str, Any]]:
    """The partition's nodes as the ledger keeps them for the fleet panel's expandable row."""
    return [
        {"name": n.name, "state": n.state, "cpus": n.cpus, "cpus_alloc": n.cpus_alloc,
         "mem_mb": n.mem_mb, "mem_alloc_mb": n.mem_alloc_mb, "gpus": n.gpus,
         "gpus_alloc": n.gpus_alloc, "reason": "" if n.reason == "none" else n.reason}
        for n in part.nodes
    ]  # fmt: skip


def pending_record(part: PartitionView, others: OthersPending) -> dict[str, Any]:
    """The partition's queue as the ledger keeps it (the fleet row, the queue's reasons): other
    users' pending jobs, those waiting for room (`ahead`) and what they ask, and the
    partition's free capacity before their claims."""
    return {
        "jobs": others.jobs, "ahead": others.ahead, "cpus": others.cpus,
        "mem_mb": others.mem_mb, "gpus": others.gpus,
        "free_cpus": max(0, part.cpus - part.cpus_alloc),
        "free_mem_mb": max(0, part.mem_mb - part.mem_alloc_mb),
        "free_gpus": max(0, part.gpus - part.gpus_alloc),
    }  # fmt: skip


WAITING_FOR_ROOM = ("waiting for GPUs", "waiting for CPUs or memory", "unschedulable: fits no")


def others_ahead(
    hosts: Sequence[Mapping[str, Any]], jobs: Sequence[Mapping[str, Any]], reasons: dict[int, str]
) -> None:
    """Say so when other users' pending jobs are why a queued job is kept: it waits for room,
    and it would fit a Slurm partition's free capacity but for what those jobs claim.
    Rewrites `reasons` in place: `Slurm partition P: N jobs of other users wait ahead`."""
    queues = []
    for h in hosts:
        if not is_slurm(h) or not h.get("slurm_pending") or h.get("admin_state") == "draining":
            continue
        q = json.loads(h["slurm_pending"])
        if q.get("ahead"):
            queues.append((target_of(h).partition, q))
    if not queues:
        return
    for job in jobs:
        why = reasons.get(int(job["id"]), "")
        if not why.startswith(WAITING_FOR_ROOM):
            continue
        cpus, mem = float(job.get("cpus") or 0), int(job.get("mem_mb") or 0)
        gpus = int(job.get("gpus") or 0) or (1 if job.get("gpu_mem_mb") else 0)
        for partition, q in queues:
            if cpus <= q["free_cpus"] and mem <= q["free_mem_mb"] and gpus <= q["free_gpus"]:
                n = int(q["ahead"])
                reasons[int(job["id"])] = (
                    f"Slurm partition {partition}: {n} job{'s' if n != 1 else ''} of other "
                    f"users wait{'s' if n == 1 else ''} ahead"
                )
                break


def _give_up(ledger: Ledger, a: ActiveAttempt, why: str) -> None:
    """An attempt Slurm will never run: fail it and its job (cancelled if a cancel was asked)."""
    change = outcome.gave_up(ledger.job_state(a.job_id), why)
    with contextlib.suppress(IllegalTransition):
        ledger.transition_attempt(
            a.token, change.attempt, job_state=change.job, reason=change.reason
        )


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


def launch_key(host: str, owner: str | None) -> str:
    """The fan-out key of one (host, submitter) sbatch batch."""
    return host if owner is None else f"{host} as {owner}"


def attempt_owners(ledger: Ledger, tokens: Sequence[str]) -> dict[str, str]:
    """token -> the user who queued its job (`Ledger.attempt_owners`: safe from the
    dispatcher's fan-out threads)."""
    return ledger.attempt_owners(tokens)


def login_check(row: Mapping[str, Any], transport: Any, timeout: float = 30) -> Any:
    """Whether a user's login can submit to a Slurm host (lab mode's `hosts check --user` and
    the dispatcher's first try of a (host, user) pair): sbatch answers, and the job directory
    under the user's root can be written. A `Preflight` (one line per check)."""
    from inventory.preflight import Check, Preflight
    from lepton_tui.dispatch.hostpool import spec_from_row

    spec = spec_from_row(row)
    sh = SlurmHost(str(row["name"]), transport, target_of(row), spec.root_dir)
    checks: list[Check] = []
    try:
        (r,) = sh.run(["sbatch", "--version"], timeout=timeout)
        checks.append(
            Check("sbatch", True, r["out"].strip())
            if r["rc"] == 0
            else Check("sbatch", False, slurm_one_line(r["err"]) or f"exit status {r['rc']}")
        )
        d = sh.call("check_dir", timeout=timeout, path=f"{spec.root_dir.rstrip('/')}/slurm")
        checks.append(
            Check("job dir", False, f"{d['path']}: {d['error']}")
            if "error" in d
            else Check("job dir", True, f"{d['path']}: writable")
        )
    except HostError as exc:
        if not checks:
            raise
        checks.append(Check("job dir", False, exc.reason))
    return Preflight(str(row["name"]), checks)


def note_pending(ledger: Ledger, job_id: int, st: AttemptStatus) -> None:
    """A job whose attempt waits in Slurm's queue shows Slurm's pending reason (squeue's %r:
    `Resources`, `Priority`, `QOSMaxJobsPerUserLimit`...) as its own reason while it waits,
    and loses it once Slurm runs it (no event: reasons change every tick)."""
    if st.state == "starting" and (st.reason or "").startswith(PENDING_PREFIX):
        ledger.note_slurm_pending(job_id, str(st.reason))
    elif st.state != "starting":
        ledger.clear_slurm_pending(job_id, PENDING_PREFIX)
