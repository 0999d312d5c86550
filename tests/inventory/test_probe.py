"""Probing: one round trip per host, the sample's shape, fake GPUs, the local host, fan-out."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from inventory import supervisor as sv
from inventory.fanout import Failed, Ok
from inventory.hostspec import HostSpec
from inventory.probe import HostSample, probe, probe_many
from inventory.transport import LocalTransport, SSHTransport
from tests.inventory.conftest import connect
from tests.sshbed import SSHBed, SSHHost

pytestmark = pytest.mark.ssh


def test_probe_is_one_round_trip(t2: SSHTransport, h2: SSHHost) -> None:
    before = t2.round_trips
    sample = probe(t2, h2.spec(), tokens=[])
    assert t2.round_trips == before + 1
    assert sample.host == "h2"
    assert sample.cpus == os.cpu_count()
    total = psutil.virtual_memory().total // (1 << 20)
    assert abs(sample.mem_total_mb - total) <= 1
    assert 0 < sample.mem_used_mb < sample.mem_total_mb
    assert 0.0 <= sample.cpu_percent <= 100.0
    assert sample.load1 >= 0 and sample.disk_free_mb and sample.disk_free_mb > 0
    assert isinstance(sample.gpus, list)  # empty on a machine without nvidia-smi, and no error
    if not any(Path(p, "nvidia-smi").exists() for p in os.environ["PATH"].split(os.pathsep)):
        assert sample.gpus == [] and sample.gpu_error is None
    assert sample.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def test_probe_includes_attempts(t2: SSHTransport, h2: SSHHost) -> None:
    spec = h2.spec()
    sv.launch(t2, spec, sv.LaunchSpec(30, "probetok", "sleep 0.2"))
    sample = probe(t2, spec, tokens=["probetok", "absent"])
    assert sample.attempts["probetok"].state in ("running", "done")
    assert sample.attempts["absent"].state == "missing"
    every = probe(t2, spec, tokens=None)
    assert "probetok" in every.attempts and "absent" not in every.attempts


def test_fake_gpus(t2: SSHTransport, h2: SSHHost) -> None:
    sample = probe(t2, h2.spec(gpus_override=4), tokens=[])
    assert [g.index for g in sample.gpus] == [0, 1, 2, 3]
    assert all(g.fake and g.util_percent is None for g in sample.gpus)
    assert len({g.uuid for g in sample.gpus}) == 4


def test_sample_json_round_trip(t2: SSHTransport, h2: SSHHost) -> None:
    sv.launch(t2, h2.spec(), sv.LaunchSpec(31, "jsontok", "true"))
    sample = probe(t2, h2.spec(gpus_override=2), tokens=["jsontok"])
    again = HostSample.from_json(sample.to_json())
    assert again == sample


def test_local_host_in_process(tmp_path: Path) -> None:
    spec = HostSpec("login", None, transport="local", root_dir=str(tmp_path))
    t = LocalTransport()
    sv.launch(t, spec, sv.LaunchSpec(32, "localtok", "true"))
    before = t.round_trips
    sample = probe(t, spec, tokens=["localtok"])
    assert t.round_trips == before  # psutil and NVML in-process, no subprocess
    assert sample.cpus == psutil.cpu_count()
    assert sample.attempts["localtok"].state in ("running", "done")
    assert isinstance(sample.gpus, list)
    fake = probe(
        t, HostSpec("login", None, transport="local", root_dir=str(tmp_path), gpus_override=2)
    )
    assert [g.fake for g in fake.gpus] == [True, True]


def test_one_round_trip_per_host_per_tick(sshbed: SSHBed) -> None:
    hosts = sshbed(3)
    transports = {h.name: connect(h) for h in hosts}
    for _tick in range(3):
        before = {n: t.round_trips for n, t in transports.items()}
        results = probe_many(
            {h.name: (transports[h.name], h.spec(), []) for h in hosts}, timeout=20
        )
        assert all(isinstance(r, Ok) for r in results.values()), results
        assert {n: t.round_trips - before[n] for n, t in transports.items()} == {
            h.name: 1 for h in hosts
        }
    for t in transports.values():
        t.close()


def test_probe_many_reports_a_down_host(sshbed: SSHBed) -> None:
    hosts = sshbed(3)
    down = hosts[1]
    transports = {h.name: connect(h) for h in hosts}
    down.stop()
    try:
        results = probe_many(
            {h.name: (transports[h.name], h.spec(), None) for h in hosts}, timeout=10
        )
    finally:
        down.start()
    assert isinstance(results["h2"], Ok) and isinstance(results["h4"], Ok)
    failed = results["h3"]
    assert isinstance(failed, Failed) and "h3" not in failed.reason and "refused" in failed.reason
    for t in transports.values():
        t.close()


def test_a_hung_host_is_bounded_by_the_timeout(sshbed: SSHBed) -> None:
    hosts = sshbed(3)
    hung = hosts[2]
    transports = {h.name: connect(h) for h in hosts}
    for h in hosts:
        transports[h.name].connect()
    hung.freeze()
    try:
        results = probe_many({h.name: (transports[h.name], h.spec(), []) for h in hosts}, timeout=3)
    finally:
        hung.thaw()
    assert isinstance(results["h2"], Ok) and isinstance(results["h3"], Ok)
    failed = results["h4"]
    assert isinstance(failed, Failed) and "within 3s" in failed.reason
    # once the host answers again, the same transport works
    assert probe(transports["h4"], hung.spec(), tokens=[]).host == "h4"
    for t in transports.values():
        t.close()
