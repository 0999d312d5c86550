"""The work of queueing and cancelling jobs, once `service.py` has said the caller may.

Nothing here decides who may do what: `Service.submit_many` and `Service.cancel` check the caller
(a submit key's owner, a job's owner or an admin) and then call these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lepton_tui import job_options
from lepton_tui.errors import IllegalTransition
from lepton_tui.ledger import TERMINAL_JOB_STATES, Ledger
from lepton_tui.validate import JobSpec


def unfit_reason(ledger: Ledger, spec: JobSpec) -> str | None:
    """`unschedulable: fits no host (needs 1 GPUs, ...)` when no host, even empty, could run
    `spec`; None when one could, and when that is not known yet (no hosts, or one whose
    capacity was never probed)."""
    from lepton_tui.cluster_view import host_capacity, job_resources, unschedulable_reason
    from scheduler.model import fits_empty

    hosts = ledger.hosts()
    if spec.constraints:
        from lepton_tui.constraints import allowed_hosts, unmet_reason

        if hosts and not allowed_hosts(hosts, spec.constraints):
            return unmet_reason(hosts, spec.constraints)
        hosts = [h for h in hosts if h["name"] in (allowed_hosts(hosts, spec.constraints) or ())]
    if not hosts or any(not h.get("cpus") for h in hosts):
        return None
    req = job_resources(spec.to_dict())
    if any(fits_empty(req, host_capacity(h)) for h in hosts):
        return None
    return unschedulable_reason(req, hosts)


def queue_jobs(ledger: Ledger, user: str, specs: Sequence[JobSpec]) -> list[int]:
    """Add validated jobs for `user`, inside the caller's transaction: their ids. An array's
    elements (`array_index` set) share the first element's id as their array id; a job that
    fits no host gets the reason why."""
    ids = []
    array_id: int | None = None
    for spec in specs:
        row: dict[str, Any] = spec.to_dict()
        if spec.array_index is not None:  # the job's own index, set by lepton
            row["env"] = {**row["env"], "LEPTON_ARRAY_INDEX": str(spec.array_index)}
        job_id = ledger.add_job(row, user)
        if spec.array_index is not None:
            array_id = job_id if array_id is None else array_id
        if spec.constraints or spec.array_index is not None:
            ledger.set_job_rules(
                job_id, spec.constraints, array_id if spec.array_index is not None else None,
                spec.array_index, spec.array_limit,
            )  # fmt: skip
        job_options.store(ledger, job_id, row, user)  # notify, requeue, kind
        reason = unfit_reason(ledger, spec)
        if reason:
            ledger.set_job_reason(job_id, reason)
        ids.append(job_id)
    return ids


def cancel_job(ledger: Ledger, job: dict[str, Any], actor: str) -> tuple[bool, str] | None:
    """Cancel one job: a queued one at once, a running one through `cancelling`. Whether that
    went and what to say; None when the job moved under us (the dispatcher started it)."""
    state = job["state"]
    if state in TERMINAL_JOB_STATES:
        return False, f"job {job['id']} already ended ({state})"
    if state == "cancelling":
        return True, f"job {job['id']} is already being cancelled"
    target = "cancelled" if state == "queued" else "cancelling"
    try:
        ledger.transition_job(
            job["id"], target, reason=f"cancelled by {actor}", actor=actor, expect=state
        )
    except IllegalTransition:
        return None
    verb = "cancelled" if target == "cancelled" else "cancelling (the host will stop it)"
    return True, f"job {job['id']} {verb}"


def no_element(ledger: Ledger, job_id: int, index: int) -> tuple[str, str]:
    """Why `ID.INDEX` names no job, and where to look: no such job, a job that is no array, or
    an array without that element."""
    ledger.get_job(job_id)  # NotFound: `job 999 does not exist`
    if not ledger.array_members(job_id):
        return f"job {job_id} is not an array, so it has no element {index}", (
            f"give its id alone: `lepton-tui show {job_id}`"
        )
    return f"array {job_id} has no element {index}", f"see `lepton-tui show {job_id}`"
