"""The lab's rules around one placement round of the dispatcher: constraints, outside GPU use,
limits, array caps and fair share.

The dispatcher's place step calls, in order:
  `rules = PlaceRules.prepare(ledger, pending, hosts, now)`: jobs a constraint, limit or array cap
      holds come out of `rules.pending`, each with its reason in `rules.reasons`;
  `rules.view(view)`: the cluster view with outside GPU use taken away;
  `rules.request(job, base)`: what the policy sees of a job: its allowed hosts, and its priority
      raised by its fair-share factor;
  `rules.admit(placed)`: the policy's placements, less those that together would pass a limit or
      an array's cap (they wait with that reason);
  `rules.waiting(job, reason)`: a waiting job's reason, naming fair share when it holds it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from lepton_tui import constraints as cons
from lepton_tui.cluster_view import host_capacity, job_resources
from lepton_tui.ledger import Ledger
from lepton_tui.sharing import lab_standings, limits
from scheduler.fairshare import AheadIndex, FairShare, Limits
from scheduler.model import ClusterView, JobRequest, fits_empty

ACTIVE = ("starting", "running")


class PlaceRules:
    """One round's rules (see the module's docstring)."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []
        self.reasons: dict[int, str] = {}
        self.allowed: dict[int, frozenset[str]] = {}
        self.outside: dict[str, tuple[tuple[int, ...], tuple[bool, ...]]] = {}
        self.limits = Limits()
        self.fair: FairShare | None = None
        self.requests: dict[int, JobRequest] = {}
        self._ahead: AheadIndex | None = None  # built on the first `waiting` without placements

    @classmethod
    def prepare(
        cls,
        ledger: Ledger,
        pending: Sequence[dict[str, Any]],
        hosts: Sequence[Mapping[str, Any]],
        now: float,
    ) -> PlaceRules:
        """The round's rules for these pending jobs (ordered as the dispatcher read them)."""
        self = cls()
        active = ledger.active_usage()
        self.outside = cons.outside_use(ledger, hosts, active, now)
        self.limits = Limits(limits(ledger))
        for a in active:
            self.limits.count(a["user"], a["project"], job_resources(a))
            if a["array_id"] is not None:
                self.limits.count_array(int(a["array_id"]))
        usable = [h for h in hosts if h.get("admin_state") != "draining"]
        for job in pending:
            job_id = int(job["id"])
            c = cons.job_constraints(job)
            if c:
                ok = cons.allowed_hosts(usable, c) or set()
                req = job_resources(job)
                fit = {
                    h["name"]
                    for h in usable
                    if h["name"] in ok and (not h.get("cpus") or fits_empty(req, host_capacity(h)))
                }
                if not fit:
                    why: str
                    if ok:
                        why = ("unschedulable: the hosts that meet its constraints "
                               f"({', '.join(sorted(ok))}) are too small for it")  # fmt: skip
                    elif cons.allowed_hosts(hosts, c):
                        drained = ", ".join(sorted(cons.allowed_hosts(hosts, c) or ()))
                        why = (
                            f"waiting: the hosts that meet its constraints ({drained}) are draining"
                        )
                    else:
                        why = cons.unmet_reason(usable, c)
                    self.reasons[job_id] = why
                    continue
                self.allowed[job_id] = frozenset(fit)
            held = self.limits.blocks(job["user"], job["project"], job_resources(job), _array(job))
            if held is not None:
                self.reasons[job_id] = held
                continue
            self.pending.append(job)
        config, standing = lab_standings(ledger, now, reuse=True)
        if config.weight:
            self.fair = FairShare(standing, config.weight)
        return self

    def view(self, view: ClusterView) -> ClusterView:
        """`view` with each GPU's outside use taken away."""
        if not self.outside:
            return view
        nodes = tuple(
            n.with_outside_use(*self.outside[n.id]) if n.id in self.outside else n
            for n in view.nodes
        )
        return replace(view, nodes=nodes)

    def request(self, job: Mapping[str, Any], base: JobRequest) -> JobRequest:
        """What the policy sees of `job`: its allowed hosts and fair-share priority."""
        out = base
        allowed = self.allowed.get(int(job["id"]))
        if allowed is not None:
            out = replace(out, hosts=allowed)
        if self.fair is not None:
            out = self.fair.apply(out)
        self.requests[int(job["id"])] = out
        self._ahead = None
        return out

    def admit(self, placed: list[tuple[dict[str, Any], Any]]) -> list[tuple[dict[str, Any], Any]]:
        """The placements that together pass no limit and no array cap, in the policy's order;
        the others wait, their reason in `reasons`."""
        out = []
        for job, p in placed:
            req = job_resources(job)
            allowed = self.allowed.get(int(job["id"]))
            if allowed is not None and p.node_id not in allowed:
                self.reasons[int(job["id"])] = "waiting for a host that meets its constraints"
                continue
            why = self.limits.blocks(job["user"], job["project"], req, _array(job))
            if why is not None:
                self.reasons[int(job["id"])] = why
                continue
            self.limits.count(job["user"], job["project"], req)
            if job.get("array_id") is not None:
                self.limits.count_array(int(job["array_id"]))
            out.append((job, p))
        return out

    def waiting(self, job: Mapping[str, Any], reason: str, placed: Iterable[Any] = ()) -> str:
        """`reason`, with fair share named when jobs of users with a higher factor go first."""
        if self.fair is None:
            return reason
        mine = self.requests.get(int(job["id"]))
        if mine is None:
            return reason
        others = [self.requests[i] for i in placed if i in self.requests]
        if others:
            held = self.fair.held_back(mine, others)
        else:  # every queued job of a higher priority: one index for the whole queue
            if self._ahead is None:
                self._ahead = AheadIndex(self.fair, list(self.requests.values()))
            held = self._ahead.held_back(mine)
        return f"{reason}; {held}" if held else reason

    def outside_note(self, node_id: str) -> str:
        """`GPU 0 busy outside lepton` text for a host, or ""."""
        if node_id not in self.outside:
            return ""
        mbs, hot = self.outside[node_id]
        gpus = [str(g) for g in range(len(mbs)) if mbs[g] or hot[g]]
        return f"GPU {', '.join(gpus)} of {node_id} in use outside lepton" if gpus else ""


def _array(job: Mapping[str, Any]) -> tuple[int, int] | None:
    if job.get("array_id") is None or not job.get("array_limit"):
        return None
    return int(job["array_id"]), int(job["array_limit"])
