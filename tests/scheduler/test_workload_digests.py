"""The workload builders give the same jobs for the same seed as before they were vectorised.

The digests were recorded from the builders at the merge head `cf27232` (one numpy call per
draw) before `lab_mix` was rewritten: every job's request, submit time, true and estimated
runtime (exact float reprs), priority, user, project and kind, the nodes, and the info dict.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from scheduler.bench import make_workload
from scheduler.model import Prices, Resources, Workload
from scheduler.workloads import lab_mix


def digest(wl: Workload) -> str:
    h = hashlib.sha256()
    for part in (
        wl.name,
        wl.jobs,
        wl.nodes,
        wl.dropped,
        wl.estimate_exact,
        sorted(wl.info.items()),
    ):
        h.update(repr(part).encode())
    return h.hexdigest()[:16]


SMALL = Resources(32.0, 131072, 4, 4 * 40960)
CPU_ONLY = Resources(32.0, 131072, 0, 0)
NO_SHARES = Resources(48.0, 196608, 2, 0)

RECORDED: list[tuple[str, int, dict[str, Any], str]] = [
    ("lab", 0, {"jobs": 1500, "nodes": 8}, "11cceb39f7141182"),
    ("lab", 1, {"jobs": 1500, "nodes": 8}, "541f73728cc17d59"),
    ("lab", 7, {"jobs": 1500, "nodes": 8}, "0ffd0ace817f2b54"),
    ("lab", 42, {"jobs": 1500, "nodes": 8}, "5dea3b7c7b3a7b68"),
    ("lab-long", 0, {"jobs": 1500, "nodes": 8}, "153fc18d680cd077"),
    ("lab-long", 1, {"jobs": 1500, "nodes": 8}, "ab1249271bcfaeb6"),
    ("lab-long", 7, {"jobs": 1500, "nodes": 8}, "341def39e5e5d5d4"),
    ("lab-long", 42, {"jobs": 1500, "nodes": 8}, "f1798cf23cbe8e3a"),
    ("deeprm", 0, {"jobs": 1500, "nodes": 8}, "37b7af80014d8745"),
    ("deeprm", 1, {"jobs": 1500, "nodes": 8}, "0b76e76a64df525a"),
    ("deeprm", 7, {"jobs": 1500, "nodes": 8}, "e160131166a1e62f"),
    ("deeprm", 42, {"jobs": 1500, "nodes": 8}, "84197081b3774483"),
    ("hpc", 0, {"jobs": 1500, "nodes": 8}, "ca684e6656c3511d"),
    ("hpc", 1, {"jobs": 1500, "nodes": 8}, "65ddcf92a06db4b1"),
    ("hpc", 7, {"jobs": 1500, "nodes": 8}, "c17def36dd90b499"),
    ("hpc", 42, {"jobs": 1500, "nodes": 8}, "779e07e67bb925af"),
    ("lab", 0, {"jobs": 10000, "nodes": 16}, "c9850a03c831521f"),
    ("lab", 3, {"jobs": 300, "nodes": 4, "load": 1.3, "estimate_sigma": 0.0}, "f019ea3432151fb4"),
    (
        "lab-long",
        5,
        {"jobs": 700, "nodes": 2, "load": 0.5, "estimate_sigma": 1.0},
        "74268593473331c4",
    ),
    ("lab", 2, {"jobs": 400, "nodes": 2, "node_shape": SMALL}, "edd0102a7012ad8f"),
    ("lab", 9, {"jobs": 200, "nodes": 3, "node_shape": CPU_ONLY}, "cb23b6a839b252ed"),
    ("lab-long", 4, {"jobs": 333, "nodes": 2, "node_shape": NO_SHARES}, "7dbed5a9322d8f4d"),
]

EXPECTED_DIRECT = "17b5d12e9bd2f558"


@pytest.mark.parametrize(("kind", "seed", "options", "expected"), RECORDED)
def test_same_seed_same_workload(
    kind: str, seed: int, options: dict[str, Any], expected: str
) -> None:
    assert digest(make_workload(kind, seed, **options)) == expected


def test_lab_mix_direct_with_prices() -> None:
    wl = lab_mix(500, 0.8, 11, nodes=3, prices=Prices(cpu_hour=0.1, gpu_hour=3.0, gb_hour=0.0))
    assert digest(wl) == EXPECTED_DIRECT


def test_digest_sees_one_changed_draw() -> None:
    wl = make_workload("lab", 0, jobs=300, nodes=4)
    before = digest(wl)
    job = wl.jobs[123]
    wl.jobs[123] = type(job)(
        job.id, job.request, job.submit_s, job.runtime_s, job.est_runtime_s * (1 + 1e-15),
        job.priority, job.user, job.project, job.kind,
    )  # fmt: skip
    assert digest(wl) != before
