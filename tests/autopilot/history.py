"""A lab's recorded history, written into a ledger the way the dispatcher writes it: hosts, jobs
(time limit = the estimate), attempts with their start and end."""

from __future__ import annotations

from lepton_tui.ledger import Ledger
from tests.economics.helpers import T0, Clock, run_attempt

H = 3600.0


def record(ledger: Ledger, clock: Clock, policy: str, jobs: int = 80, seed: int = 3,
           load: float = 0.95, start: float = T0) -> None:  # fmt: skip
    """Run the lab mix under `policy` in the simulator from `start` and record what happened."""
    from scheduler.registry import make_policy
    from scheduler.simulator import Simulator
    from scheduler.workloads import lab_mix

    wl = lab_mix(jobs, load, seed, nodes=3)
    result = Simulator(wl).run(make_policy(policy))
    with ledger.tx():
        for n in wl.nodes:
            c = n.capacity
            ledger.insert("hosts", {"name": n.id, "transport": "ssh", "address": "10.0.0.1",
                                    "state": "up", "admin_state": "active", "cpus": c.cpus,
                                    "mem_mb": c.mem_mb, "gpus": c.gpus,
                                    "gpu_mem_mb": c.gpu_mem_mb, "added_at": start})  # fmt: skip
    ids = {}
    for job in sorted(wl.jobs, key=lambda j: (j.submit_s, str(j.id))):
        r = job.request
        spec = {"command": "true", "project": job.project or "default", "cpus": r.cpus,
                "mem_mb": r.mem_mb, "gpus": r.gpus, "gpu_mem_mb": r.gpu_mem_mb,
                "time_limit_s": job.est_runtime_s, "priority": int(job.priority)}  # fmt: skip
        with ledger.tx():
            ids[job.id] = ledger.add_job(spec, job.user or "alice", at=start + job.submit_s)
    for att in sorted(result.attempts, key=lambda a: a.start_s):
        run_attempt(ledger, clock, ids[att.job_id], att.node_id, start + att.start_s,
                    start + att.end_s, gpu_ids=att.gpu_ids)  # fmt: skip
