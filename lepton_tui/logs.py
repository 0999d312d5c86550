"""`lepton-tui logs`: a job's stdout or stderr read from its host by byte offset.

Following (`-f`) keeps reading from where the last read ended, so nothing is read twice, until
the attempt has ended and its log is drained. Without `--attempt` it follows the job's latest
attempt, and moves on to a new one when a lost attempt is retried.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal, cast

from inventory import supervisor
from inventory.errors import HostError
from lepton_tui.dispatch import slurm as dispatch_slurm
from lepton_tui.dispatch.hostpool import HostPool
from lepton_tui.errors import LeptonError, NotFound
from lepton_tui.logins import job_owner, lab_key_of

CHUNK_BYTES = 1 << 20
FOLLOW_POLL_S = 0.5
ENDED_ATTEMPT_STATES = frozenset(
    {"succeeded", "failed", "timeout", "cancelled", "lost", "requeued"}
)
ENDED_JOB_STATES = frozenset({"succeeded", "failed", "timeout", "cancelled"})


def _attempt(svc: Any, job_id: int, attempt_no: int | None) -> dict[str, Any] | None:
    attempts = svc.ledger.attempts_for(job_id)
    if attempt_no is None:
        return attempts[-1] if attempts else None
    for a in attempts:
        if a["attempt_no"] == attempt_no:
            return a
    numbers = ", ".join(str(a["attempt_no"]) for a in attempts) or "none yet"
    raise NotFound(f"job {job_id} has no attempt {attempt_no}", f"its attempts: {numbers}")


def follow_log(
    svc: Any,
    job_id: int,
    stream: str = "stdout",
    follow: bool = False,
    attempt_no: int | None = None,
    *,
    pool: HostPool | None = None,
    poll_s: float = FOLLOW_POLL_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """Yield a job's log text as it is read; with `follow`, until the job's attempt ends."""
    if stream not in ("stdout", "stderr"):
        raise LeptonError(f"unknown stream {stream!r}", "use stdout or stderr")
    job = svc.get_job(job_id)  # NotFound for a bad id
    own_pool = pool is None
    pool = pool or HostPool(svc.known_hosts, lab_key=lab_key_of(svc))
    try:
        attempt = _attempt(svc, job["id"], attempt_no)
        while attempt is None:
            state = svc.get_job(job_id)["state"]
            if state in ENDED_JOB_STATES:
                # it ended before it ever ran: there is no log to wait for
                raise LeptonError(f"job {job_id} has no log: it ended ({state}) before it started")
            if not follow:
                raise LeptonError(
                    f"job {job_id} has no log: it has not started ({state})",
                    "follow it with -f to wait for it",
                )
            sleep(poll_s)
            attempt = _attempt(svc, job["id"], attempt_no)
        while True:
            yield from _read_attempt(
                svc, pool, attempt, cast(Literal["stdout", "stderr"], stream), follow, poll_s, sleep
            )
            if not follow or attempt_no is not None:
                return
            # The attempt ended; a requeued job gets a new one: follow it too.
            while True:
                latest = _attempt(svc, job["id"], None)
                if latest is not None and latest["attempt_no"] != attempt["attempt_no"]:
                    same = latest["token"] == attempt["token"]
                    attempt = latest
                    if same:  # a run Slurm requeued, split off while followed: its next run
                        continue  # writes the same files, already read to their end
                    break
                if svc.get_job(job_id)["state"] in ENDED_JOB_STATES:
                    return
                sleep(poll_s)
    finally:
        if own_pool:
            pool.close()


def _read_attempt(
    svc: Any,
    pool: HostPool,
    attempt: dict[str, Any],
    stream: Literal["stdout", "stderr"],
    follow: bool,
    poll_s: float,
    sleep: Callable[[float], None],
) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    offset = 0
    try:
        host = svc.ledger.get_host(attempt["host"])
    except NotFound:
        raise LeptonError(
            f"the host {attempt['host']} of job {attempt['job_id']} was removed; its log is gone"
        ) from None
    spec, transport = pool.get(host, job_owner(svc.ledger, attempt["job_id"]))  # lab: as the owner
    while True:
        # Read the state before the log: an attempt seen ended has written all it will write.
        ended = _attempt_state(svc, attempt["token"]) in ENDED_ATTEMPT_STATES
        try:
            if dispatch_slurm.is_slurm(host):  # the output files the batch job writes
                data, offset = dispatch_slurm.read_log(
                    host, transport, spec.root_dir, attempt, stream, offset, CHUNK_BYTES
                )
            else:
                data, offset = supervisor.read_log(
                    transport,
                    spec,
                    attempt["token"],
                    stream,
                    offset,
                    CHUNK_BYTES,
                )
        except HostError as exc:
            if follow and not ended:
                sleep(poll_s)  # the host may come back; the dispatcher decides when it is down
                continue
            if follow and ended:
                return  # a lost attempt on a dead host: the caller moves on to the retry
            raise LeptonError(f"cannot read the log from {attempt['host']}: {exc.reason}") from None
        if data:
            text = decoder.decode(data)
            if text:
                yield text
            if len(data) == CHUNK_BYTES:
                continue
        if not follow or ended:
            tail = decoder.decode(b"", final=True)
            if tail:
                yield tail
            return
        sleep(poll_s)


def _attempt_state(svc: Any, token: str) -> str:
    return svc.ledger.attempt_state(token) or "lost"


def stderr_bytes(svc: Any, job_id: int, attempt_no: int | None = None) -> int:
    """How many bytes the job's attempt (the latest by default) wrote to stderr; 0 when it has
    not started, or its host cannot say."""
    try:
        attempt = _attempt(svc, job_id, attempt_no)
    except LeptonError:
        return 0
    if attempt is None:
        return 0
    pool = HostPool(svc.known_hosts, lab_key=lab_key_of(svc))
    try:
        owner = job_owner(svc.ledger, attempt["job_id"])
        spec, transport = pool.get(svc.ledger.get_host(attempt["host"]), owner)
        return supervisor.log_size(transport, spec, attempt["token"], "stderr")
    except (HostError, LeptonError):
        return 0
    finally:
        pool.close()
