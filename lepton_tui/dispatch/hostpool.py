"""Host specs and pooled transports built from ledger host rows.

The dispatcher, `lepton-tui logs` and the console share one `HostPool` per process, so each host
keeps one SSH connection. A row's connection fields changing (address, port, user, key, root dir)
replaces that host's transport. `poll` is the dispatcher's one round trip per host per tick.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inventory.fanout import FanOut
from inventory.hostspec import HostSpec, InvalidSpec
from inventory.transport import Transport, make_transport
from lepton_tui.errors import LeptonError
from lepton_tui.logins import SudoTransport, login_for

IDLE_CLOSE_S = 600.0  # a connection nobody asked for this long is closed (reopened on demand)
SPEC_FIELDS = (
    "address", "port", "user", "key_path", "transport", "root_dir", "gpus_override", "slurm_json",
)  # fmt: skip


def spec_from_row(row: Mapping[str, Any]) -> HostSpec:
    """The HostSpec of a ledger host row (raises LeptonError naming the bad field)."""
    try:
        return HostSpec(
            name=row["name"],
            address=row.get("address") or None,
            port=int(row.get("port") or 22),
            user=row.get("user") or None,
            key_path=row.get("key_path") or None,
            transport=row.get("transport") or "ssh",
            root_dir=row.get("root_dir") or "~/.lepton",
            gpus_override=row.get("gpus_override"),
        )
    except InvalidSpec as exc:
        raise LeptonError(f"host {row.get('name')!r}: {exc}") from None


@dataclass
class GpuState:
    """One GPU as a poll saw it."""

    index: int
    util_percent: float | None = None
    mem_used_mb: float | None = None
    mem_total_mb: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    name: str = ""


@dataclass
class Poll:
    """One host's poll: utilization and the status of the attempts asked about."""

    host: str
    taken_at: float
    cpus: int = 0
    cpu_percent: float | None = None
    load1: float | None = None
    mem_total_mb: float = 0
    mem_used_mb: float | None = None
    gpus: list[GpuState] = field(default_factory=list)
    attempts: dict[str, Any] = field(default_factory=dict)  # token -> AttemptStatus
    login_failures: dict[str, str] = field(default_factory=dict)  # lab mode: user -> why
    # a Slurm partition's nodes, one dict each (`dispatch.slurm.node_records`): the fleet panel
    nodes: list[dict[str, Any]] | None = None
    # a Slurm attempt's allocated node count (token -> nodes), for a price per node-hour
    slurm_nodes: dict[str, int] = field(default_factory=dict)
    # what Slurm allocated to a Slurm attempt (token -> cpus, mem_mb, gpus): the cost side's
    slurm_alloc: dict[str, tuple[float, int, int | None]] = field(default_factory=dict)
    # a Slurm partition's pending jobs of other users (`dispatch.slurm.pending_record`)
    slurm_pending: dict[str, Any] | None = None
    # each Slurm attempt's run as its squeue/sacct row says it (`slurm_requeue.SlurmRun`):
    # how a job Slurm requeued is told apart, so each of its runs is charged
    slurm_runs: dict[str, Any] = field(default_factory=dict)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def poll_from_sample(sample: Any) -> Poll:
    """Normalise a probe's HostSample (object or the agent's dict) into a Poll."""
    from inventory.supervisor import AttemptStatus

    gpus = [
        GpuState(
            index=int(_get(g, "index", i)),
            util_percent=_get(g, "util_percent"),
            mem_used_mb=_get(g, "mem_used_mb"),
            mem_total_mb=_get(g, "mem_total_mb"),
            temperature_c=_get(g, "temperature_c"),
            power_w=_get(g, "power_w"),
            name=str(_get(g, "name", "") or ""),
        )
        for i, g in enumerate(_get(sample, "gpus", None) or [])
    ]
    attempts = {}
    for token, st in (_get(sample, "attempts", None) or {}).items():
        attempts[token] = AttemptStatus.from_dict(st) if isinstance(st, Mapping) else st
    return Poll(
        host=str(_get(sample, "host", "")),
        taken_at=float(_get(sample, "taken_at", 0.0) or 0.0),
        cpus=int(_get(sample, "cpus", 0) or 0),
        cpu_percent=_get(sample, "cpu_percent"),
        load1=_get(sample, "load1"),
        mem_total_mb=float(_get(sample, "mem_total_mb", 0) or 0),
        mem_used_mb=_get(sample, "mem_used_mb"),
        gpus=gpus,
        attempts=attempts,
    )


def poll_host(transport: Transport, spec: HostSpec, tokens: Sequence[str]) -> Poll:
    """Utilization and attempt status of one host in one round trip (no GPU processes: a poll
    records none, and listing them costs the host a second `nvidia-smi`)."""
    from inventory.probe import probe

    sample = probe(transport, spec, tokens=list(tokens), processes=False)
    poll = poll_from_sample(sample)
    poll.host = spec.name
    return poll


def ssh_options(row: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Transport options for an SSH host's row: its vetted key fingerprint pins its host key (a
    host added with --no-connect --fingerprint is trusted on its first connection)."""
    return {**options, "pinned_fingerprint": row.get("host_key_fingerprint")}


class HostPool:
    """One transport per host and login user, rebuilt when the host's row changes. Thread-safe."""

    def __init__(
        self,
        known_hosts: Path | str,
        *,
        factory: Callable[[HostSpec], Transport] | None = None,
        lab_key: Path | str | None = None,
        **transport_options: Any,
    ) -> None:
        self.known_hosts = Path(known_hosts)
        # lab mode: each job runs as its owner, logged in with the lab key (lepton_tui.logins)
        self.lab_key = lab_key
        self.factory = factory  # for benchmarks: simulated hosts
        self.transport_options = transport_options
        self._entries: dict[tuple[str, str], tuple[tuple[Any, ...], HostSpec, Transport]] = {}
        self._sudo: dict[tuple[str, str, int], Transport] = {}
        self._used: dict[tuple[str, str], float] = {}  # when each connection was last handed out
        self._lock = threading.Lock()
        self._closed_trips = 0
        # the fan-out threads of whoever holds this pool (the dispatcher): one pool for its
        # lifetime, sized to the fleet, instead of one per call
        self.threads = FanOut("hosts")

    def get(self, row: Mapping[str, Any], owner: str | None = None) -> tuple[HostSpec, Transport]:
        """The spec and (pooled) transport for a host row; with `owner` in lab mode (a lab key),
        the connection that runs that user's jobs there (`lepton_tui.logins.login_for`): one per
        (host, login user), a `sudo` host's wrapped around the host's own."""
        login = login_for(row, owner, self.lab_key)
        if login.sudo_user is not None:
            _, base = self.get(row)
            with self._lock:
                sudo_key = (row["name"], login.sudo_user, id(base))
                wrapped = self._sudo.get(sudo_key)
                if wrapped is None:
                    wrapped = self._sudo[sudo_key] = SudoTransport(base, login.sudo_user)
            return spec_from_row(login.row), wrapped
        row = login.row
        key = tuple(row.get(f) for f in SPEC_FIELDS)
        name = (row["name"], row.get("user") or "")
        with self._lock:
            self._used[name] = time.monotonic()
            entry = self._entries.get(name)
            if entry is not None and entry[0] == key:
                return entry[1], entry[2]
            spec = spec_from_row(row)
            if self.factory is not None:
                transport = self.factory(spec)
            else:
                options = (
                    ssh_options(row, self.transport_options) if spec.transport == "ssh" else {}
                )
                transport = make_transport(spec, self.known_hosts, **options)
            if entry is not None:
                self._closed_trips += entry[2].round_trips
                entry[2].close()
            self._entries[name] = (key, spec, transport)
            return spec, transport

    def forget(self, keep: Sequence[str]) -> None:
        """Close the transports of hosts not in `keep` (removed from the ledger), and those
        unused for IDLE_CLOSE_S (a user's login on a host where their jobs have ended)."""
        idle_before = time.monotonic() - IDLE_CLOSE_S
        with self._lock:
            for name in [
                n for n in self._entries
                if n[0] not in set(keep) or self._used.get(n, 0.0) < idle_before
            ]:  # fmt: skip
                self._used.pop(name, None)
                _, _, transport = self._entries.pop(name)
                self._closed_trips += transport.round_trips
                transport.close()
            live = {id(e[2]) for e in self._entries.values()}
            self._sudo = {k: v for k, v in self._sudo.items() if k[2] in live}

    @property
    def round_trips(self) -> int:
        """Exec round trips made by every transport this pool has held."""
        with self._lock:
            return self._closed_trips + sum(e[2].round_trips for e in self._entries.values())

    def close(self) -> None:
        """Close every connection and let the fan-out threads go."""
        self.forget(())
        self.threads.close()
