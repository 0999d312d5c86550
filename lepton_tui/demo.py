"""`lepton-tui --demo`: the console over a simulated busy lab.

A thread steps the scheduler's event-driven simulator (the lab mix on 8 GPU hosts, the backfill
policy) in sped-up time and mirrors it into a temporary ledger: hosts, jobs, attempts, samples and
decisions, through the same ledger calls the dispatcher uses. The console then reads that ledger
exactly as it reads a real one. Nothing outside the temporary directory is touched.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import uuid
from typing import Any

from lepton_tui.errors import LeptonError

log = logging.getLogger(__name__)

DEMO_NODES = 8
DEMO_JOBS = 1500
DEMO_PRICE_PER_GPU_HOUR = 2.5
SAMPLE_EVERY_S = 10.0  # simulated seconds between samples
KEEP_SAMPLES_S = 900.0
WARMUP_S = 3 * 3600.0  # simulated history before the first frame, so the lab is busy at once


class DemoDriver:
    """Runs the simulation in a thread; `clock()` is the demo's sped-up time."""

    def __init__(
        self,
        speed: float = 30.0,
        seed: int = 7,
        *,
        nodes: int = DEMO_NODES,
        jobs: int = DEMO_JOBS,
        policy: str = "backfill",
        load: float = 1.5,
    ) -> None:
        self.speed = float(speed)
        self.seed = seed
        self.nodes = nodes
        self.jobs = jobs
        self.policy_name = policy
        self.load = load
        self.start_wall = time.time()
        self._m0 = time.monotonic()
        self.epoch = self.start_wall - WARMUP_S  # ledger time of simulated time zero
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writing = threading.local()
        self.svc: Any = None
        self.ready = threading.Event()  # set once the warm-up history is written
        self.error: str | None = None
        self.steps = 0
        self._rng = random.Random(seed)
        self._ids: dict[Any, int] = {}  # simulator job id -> ledger job id
        self._tokens: dict[Any, str] = {}  # simulator job id -> running attempt token
        self._last_sample = -math.inf

    # -- time ----------------------------------------------------------------------------------

    def clock(self) -> float:
        """Demo time: wall time at start plus elapsed time times `speed`.

        While the simulation thread writes, the ledger's clock is the simulated event's time, so
        events carry the time they happened in the simulation."""
        at = getattr(self._writing, "at", None)
        if at is not None:
            return at
        return self.start_wall + (time.monotonic() - self._m0) * self.speed

    # -- life cycle ----------------------------------------------------------------------------

    def attach(self, svc: Any) -> None:
        """Use this service's (temporary) ledger."""
        self.svc = svc

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lepton-demo", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # -- the simulation ------------------------------------------------------------------------

    def _build(self) -> tuple[Any, Any, Any]:
        from scheduler.registry import make_policy
        from scheduler.simulator import Simulator
        from scheduler.workloads import LAB_NODE, lab_mix

        workload = lab_mix(
            self.jobs,
            load=self.load,
            seed=self.seed,
            nodes=self.nodes,
            prices=DEMO_PRICE_PER_GPU_HOUR * LAB_NODE.gpus,
        )
        return workload, Simulator(workload), make_policy(self.policy_name)

    def _run(self) -> None:
        try:
            workload, sim, policy = self._build()
            self._setup(workload)
            while not self._stop.is_set():
                target = self.clock() - self.epoch
                self._catch_up(sim, policy, target)
                self.ready.set()
                self._stop.wait(0.25)
        except Exception as exc:  # noqa: BLE001 - the console shows the demo stopped, no traceback
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("demo stopped")
            self.ready.set()

    def _setup(self, workload: Any) -> None:
        ledger = self.svc.ledger
        with ledger.tx():
            ledger.seed_demo_settings({"lab_name": "demo-lab", "policy": self.policy_name})
            for i, node in enumerate(workload.nodes):
                cap = node.capacity
                ledger.seed_demo_host(
                    {
                        "name": node.id, "address": f"10.0.0.{10 + i}",
                        "port": 22, "user": "lab", "transport": "ssh", "state": "up",
                        "admin_state": "active", "cpus": cap.cpus, "mem_mb": cap.mem_mb,
                        "gpus": cap.gpus, "gpu_mem_mb": cap.gpu_mem_mb, "gpu_model": "A100 80GB",
                        "price_per_hour": node.price_per_hour, "added_at": self.epoch,
                        "added_by": "demo", "last_seen": self.epoch, "labels": "[]",
                        "host_key_type": "ssh-ed25519",
                        "host_key_fingerprint": "SHA256:demo-" + node.id,
                    },
                    node.price_per_hour,
                    self.epoch,
                )  # fmt: skip
                ledger.event("host.added", f"host {node.id} added (demo)", host=node.id,
                             actor="demo", at=self.epoch)  # fmt: skip

    def _next_event_time(self, sim: Any) -> float | None:
        events = getattr(sim, "_events", None)
        return events[0][0] if events else None

    def _catch_up(self, sim: Any, policy: Any, target: float) -> None:
        """Apply every simulated event up to `target` seconds, mirroring each into the ledger."""
        # One transaction per batch of events: the warm-up's hundreds of events cost one fsync.
        with self.svc.ledger.tx():
            self._events_until(sim, policy, target)
        self._sample_until(sim, target)

    def _events_until(self, sim: Any, policy: Any, target: float) -> None:
        while not self._stop.is_set():
            t = self._next_event_time(sim)
            if t is None or t > target:
                break
            self._sample_until(sim, t)
            before = set(sim.running_ids())
            sim.advance()
            self._writing.at = self.epoch + sim.now
            try:
                self._mirror_ends(sim, before)
                self._mirror_arrivals(sim)
                if sim.worth_deciding():
                    self._decide(sim, policy)
            finally:
                self._writing.at = None
            self.steps += 1

    def _mirror_arrivals(self, sim: Any) -> None:
        ledger = self.svc.ledger
        new = [r for r in sim.pending() if r.id not in self._ids]
        if not new:
            return
        with ledger.tx():
            for r in new:
                job = sim.job(r.id)
                spec = {
                    "name": f"{job.kind}-{r.id}",
                    "command": _command(job.kind, r.id),
                    "cpus": r.request.cpus,
                    "mem_mb": r.request.mem_mb,
                    "gpus": r.request.gpus,
                    "gpu_mem_mb": r.request.gpu_mem_mb,
                    "time_limit_s": max(3600.0, math.ceil(job.est_runtime_s * 2 / 3600) * 3600),
                    "priority": int(r.priority),
                    "project": r.project,
                }
                self._ids[r.id] = ledger.add_job(spec, r.user, at=self.epoch + r.submitted_at)

    def _mirror_ends(self, sim: Any, before: set[Any]) -> None:
        ledger = self.svc.ledger
        for sim_id in before - set(sim.running_ids()):
            token = self._tokens.pop(sim_id, None)
            if token is None:
                continue
            cancelled = ledger.job_state(self._ids[sim_id]) == "cancelling"
            try:
                ledger.transition_attempt(
                    token,
                    "cancelled" if cancelled else "succeeded",
                    job_state="cancelled" if cancelled else "succeeded",
                    actor="demo",
                    exit_code=None if cancelled else 0,
                    job_fields={"exit_code": None if cancelled else 0},
                )
            except LeptonError:
                continue

    def _decide(self, sim: Any, policy: Any) -> None:
        ledger = self.svc.ledger
        live = ledger.queued_job_ids()
        pending = [r for r in sim.pending() if self._ids.get(r.id) in live]
        if not pending:
            return
        placements = policy.decide(sim.view(), pending, sim.now)
        sim.apply(placements)
        placed = {p.job_id for p in placements}
        now = self.epoch + sim.now
        with ledger.tx():
            for p in placements:
                token = uuid.uuid4().hex[:16]
                job_id = self._ids[p.job_id]
                ledger.start_attempt(job_id, p.node_id, token, p.gpu_ids, policy=policy.name,
                                     actor="demo")  # fmt: skip
                ledger.transition_attempt(token, "running", job_state="running", actor="demo",
                                          started_at=now, job_fields={"started_at": now})  # fmt: skip
                self._tokens[p.job_id] = token
                ledger.record_decision(now, policy.name, job_id, p.node_id,
                                       policy.explain(p.job_id))  # fmt: skip
            for r in pending[:8]:
                if r.id in placed:
                    continue
                why = policy.explain(r.id) or "waiting for room"
                ledger.set_job_reason(self._ids[r.id], why)
                ledger.record_decision(now, policy.name, self._ids[r.id], None, why)

    # -- samples -------------------------------------------------------------------------------

    def _sample_until(self, sim: Any, t: float) -> None:
        """Write host and GPU samples every SAMPLE_EVERY_S up to simulated time `t`."""
        first = max(self._last_sample + SAMPLE_EVERY_S, t - KEEP_SAMPLES_S)
        if first > t:
            return
        ledger = self.svc.ledger
        view = sim.view()
        stamps = []
        s = first
        while s <= t:
            stamps.append(s)
            s += SAMPLE_EVERY_S
        with ledger.tx():
            for s in stamps:
                at = self.epoch + s
                for node in view.nodes:
                    self._sample_node(node, at)
                ledger.mark_up_hosts_seen(at)
            ledger.drop_samples_before(self.epoch + t - KEEP_SAMPLES_S)
        self._last_sample = stamps[-1]

    def _sample_node(self, node: Any, at: float) -> None:
        rng = self._rng
        cap, free = node.capacity, node.free
        cpu_share = 1 - free.cpus / cap.cpus if cap.cpus else 0
        mem_share = 1 - free.mem_mb / cap.mem_mb if cap.mem_mb else 0
        self.svc.ledger.insert_samples([{
            "host": node.id, "gpu_index": -1, "at": at, "resolution": 0,
            "cpu_percent": min(100.0, 3 + 90 * cpu_share + rng.uniform(-3, 3)),
            "mem_used_mb": cap.mem_mb * min(1.0, 0.04 + 0.8 * mem_share),
            "mem_total_mb": cap.mem_mb, "load1": cap.cpus * cpu_share * rng.uniform(0.8, 1.1),
        }])  # fmt: skip
        per_gpu = cap.gpu_mem_mb // cap.gpus if cap.gpus else 0
        for g in range(cap.gpus):
            whole = g not in node.free_gpu_ids
            free_mem = node.gpu_free_mem_mb[g] if g < len(node.gpu_free_mem_mb) else per_gpu
            used_share = 1 - free_mem / per_gpu if per_gpu else 0
            if whole:
                util = rng.uniform(72, 99)
                mem = per_gpu * rng.uniform(0.55, 0.95)
            elif used_share > 0:
                util = rng.uniform(10, 45)
                mem = per_gpu * used_share * rng.uniform(0.6, 1.0)
            else:
                util = rng.uniform(0, 2)
                mem = per_gpu * 0.005
            self.svc.ledger.insert_samples([{
                "host": node.id, "gpu_index": g, "at": at, "resolution": 0,
                "util_percent": util, "gpu_mem_used_mb": mem, "gpu_mem_total_mb": per_gpu,
                "temperature_c": 33 + util * 0.45 + rng.uniform(-1, 1),
                "power_w": 60 + util * 3.3 + rng.uniform(-5, 5),
            }])  # fmt: skip


def _command(kind: str, sim_id: Any) -> str:
    return {
        "train": f"python train.py --config configs/run{sim_id}.yaml",
        "notebook": "jupyter lab --no-browser --port 0",
        "sweep": f"python sweep.py --trial {sim_id}",
        "cpu": f"python preprocess.py --shard {sim_id}",
    }.get(kind, f"python job.py {sim_id}")
