"""Typed rows of the ledger: jobs and attempts as the dispatcher reads them (frozen).

`from_row` takes a row of the ledger (a mapping of its columns) and ignores columns it does not
know, so a new migration's column breaks nothing here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _json_list(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        value = json.loads(value or "[]")
    return tuple(int(g) for g in value or ())


def _json_env(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        value = json.loads(value or "{}")
    return {str(k): str(v) for k, v in (value or {}).items()}


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class JobRow:
    """What the dispatcher reads of a job beside its attempt: its state, spec and retries."""

    id: int
    state: str
    command: str
    workdir: str | None
    env: dict[str, str]
    time_limit_s: float | None
    retries: int
    attempts_used: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JobRow:
        return cls(
            id=int(row["id"]), state=str(row["state"]), command=str(row["command"]),
            workdir=row.get("workdir") or None, env=_json_env(row.get("env")),
            time_limit_s=_float(row.get("time_limit_s")), retries=int(row.get("retries") or 0),
            attempts_used=int(row.get("attempts_used") or 0),
        )  # fmt: skip


@dataclass(frozen=True)
class AttemptRow:
    """One attempt (one launch of a job on a host) as the ledger holds it."""

    id: int
    job_id: int
    attempt_no: int
    host: str
    token: str
    state: str
    gpu_ids: tuple[int, ...]
    cpus: float
    mem_mb: int
    gpus: int
    gpu_mem_mb: int
    created_at: float
    remote_dir: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    fenced_at: float | None = None
    missing_since: float | None = None  # since when its host has not shown its directory
    launch_failures: int = 0
    cancel_sent_at: float | None = None
    launch_sent_at: float | None = None  # when its launch went out (it may have run since)
    presumed: bool = False  # lost while its host did not answer: its fate unknown
    slurm_job_id: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AttemptRow:
        return cls(
            id=int(row["id"]), job_id=int(row["job_id"]), attempt_no=int(row["attempt_no"]),
            host=str(row["host"]), token=str(row["token"]), state=str(row["state"]),
            gpu_ids=_json_list(row.get("gpu_ids")), cpus=float(row.get("cpus") or 0),
            mem_mb=int(row.get("mem_mb") or 0), gpus=int(row.get("gpus") or 0),
            gpu_mem_mb=int(row.get("gpu_mem_mb") or 0),
            created_at=float(row.get("created_at") or 0.0),
            remote_dir=row.get("remote_dir"), started_at=_float(row.get("started_at")),
            ended_at=_float(row.get("ended_at")), fenced_at=_float(row.get("fenced_at")),
            missing_since=_float(row.get("missing_since")),
            launch_failures=int(row.get("launch_failures") or 0),
            cancel_sent_at=_float(row.get("cancel_sent_at")),
            launch_sent_at=_float(row.get("launch_sent_at")),
            presumed=bool(row.get("presumed")), slurm_job_id=row.get("slurm_job_id"),
        )  # fmt: skip


@dataclass(frozen=True)
class ActiveAttempt(AttemptRow):
    """A `starting` or `running` attempt with its job (as read at the start of a tick)."""

    job: JobRow = field(kw_only=True)
