"""The shared lab's rules in the real dispatcher, over real SSH: GPUs used outside lepton (a fake
`nvidia-smi` on the host's PATH), constraints, fair share between two users, limits, arrays."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.errors import PermissionDenied, ValidationError
from lepton_tui.service import Service
from tests.dispatch.helpers import TERMINAL, add_bed_hosts, tick_until
from tests.share.fakegpu import fake_gpus, gpu


@pytest.fixture
def dispatcher(svc: Service):
    d = Dispatcher(svc)
    assert d.acquire()
    yield d
    d.close()


def as_user(svc: Service, user: str) -> Service:
    """The same ledger, another submitting user (personal mode: the ledger's user field)."""
    return Service(svc.ledger, svc.home, user=user)


def ended(svc: Service, *ids: int) -> bool:
    return all(svc.get_job(i)["state"] in TERMINAL for i in ids)


def stop_all(svc: Service, d: Dispatcher) -> None:
    """Cancel what is left and tick until every job has ended."""
    live = [j["id"] for j in svc.list_jobs() if j["state"] not in TERMINAL]
    svc.cancel(live)
    tick_until(d, lambda: ended(svc, *live), timeout=60)


def test_a_gpu_used_outside_lepton_gets_only_its_free_memory(svc, sshbed, tmp_path, dispatcher):
    host = sshbed(1)[0]
    busy = gpu(used_mb=70000, util=100, processes=[(4242, 70000)])
    with fake_gpus(host, [busy, gpu()]):
        add_bed_hosts(svc, [host], root=tmp_path)
        dispatcher.tick()  # the probe finds both GPUs
        assert svc.get_host(host.name)["gpus"] == 2
        [row] = svc.list_hosts()
        assert row["outside_gpus"] == [{"gpu": 0, "outside_mb": 70000, "busy": True}]
        first = svc.submit(command="sleep 60", gpu_mem="70G", mem="128M")
        second = svc.submit(command="sleep 60", gpu_mem="70G", mem="128M")
        tick_until(dispatcher, lambda: svc.get_job(first)["state"] == "running")
        dispatcher.tick()
        # GPU 0 has 11,920 MiB really free: the first share goes to GPU 1, the second waits
        assert svc.ledger.attempts_for(first)[0]["gpu_ids"] == [1]
        job = svc.get_job(second)
        assert job["state"] == "queued" and "GPU" in job["reason"], job["reason"]
        whole = svc.submit(command="sleep 60", gpus=1, mem="128M")
        dispatcher.tick()
        dispatcher.tick()
        assert svc.get_job(whole)["state"] == "queued"  # GPU 0 is not free as a whole GPU
        stop_all(svc, dispatcher)


def test_constraints_place_and_hold_with_the_unmet_one_named(svc, sshbed, tmp_path, dispatcher):
    gpu_host, cpu_host = sshbed(2)
    with fake_gpus(gpu_host, [gpu("NVIDIA A100-SXM4-80GB")]):
        add_bed_hosts(svc, [gpu_host, cpu_host], root=tmp_path)
        dispatcher.tick()
        h100 = svc.submit(command="true", gpus=1, gpu_type="H100", mem="128M")
        assert svc.get_job(h100)["reason"] == "unschedulable: no host meets gpu-type=H100"
        a100 = svc.submit(command="true", gpus=1, gpu_type="A100", mem="128M")
        zone = svc.submit(command="true", constraint=["zone=r2"], mem="128M")
        assert svc.get_job(zone)["reason"] == "unschedulable: no host meets constraint zone=r2"
        pinned = [svc.submit(command="true", host=[cpu_host.name], mem="128M") for _ in range(3)]
        avoid = [
            svc.submit(command="true", exclude_host=[cpu_host.name], mem="128M") for _ in range(3)
        ]
        with pytest.raises(PermissionDenied):
            as_user(svc, "alice").label_host(cpu_host.name, ["zone=r2"])
        tick_until(dispatcher, lambda: ended(svc, a100, *pinned, *avoid))
        assert svc.get_job(a100)["host"] == gpu_host.name
        assert {svc.get_job(j)["host"] for j in pinned} == {cpu_host.name}
        assert {svc.get_job(j)["host"] for j in avoid} == {gpu_host.name}
        dispatcher.tick()
        assert svc.get_job(zone)["state"] == "queued"
        assert "zone=r2" in svc.get_job(zone)["reason"]
        assert svc.get_job(h100)["reason"] == "unschedulable: no host meets gpu-type=H100"
        svc.label_host(cpu_host.name, ["zone=r2"])  # an admin labels the host: it runs there
        tick_until(dispatcher, lambda: ended(svc, zone))
        assert svc.get_job(zone)["host"] == cpu_host.name
        stop_all(svc, dispatcher)


def test_bobs_one_job_starts_before_alices_third(svc, sshbed, tmp_path, dispatcher):
    host = sshbed(1)[0]
    add_bed_hosts(svc, [host], root=tmp_path, cpus=1)  # room for one job at a time
    alice, bob = as_user(svc, "alice"), as_user(svc, "bob")
    dispatcher.tick()
    mine = [alice.submit(command="sleep 0.3", cpus=1, mem="128M") for _ in range(6)]
    svc.ledger.clock = lambda base=svc.ledger.clock: base() + 1.0  # bob: a second later
    tick_until(dispatcher, lambda: svc.get_job(mine[0])["state"] != "queued")
    theirs = bob.submit(command="sleep 0.3", cpus=1, mem="128M")
    tick_until(dispatcher, lambda: svc.get_job(mine[1])["state"] == "queued"
               and "fair share" in (svc.get_job(mine[1])["reason"] or ""))  # fmt: skip
    tick_until(dispatcher, lambda: ended(svc, *mine, theirs), timeout=120)
    started = {j: svc.get_job(j)["started_at"] for j in [*mine, theirs]}
    assert started[theirs] < started[mine[2]]
    assert started[theirs] < started[mine[1]]  # right after alice's first
    shares = {(r["scope"], r["name"]): r for r in svc.share_list()}
    assert shares[("user", "alice")]["usage"] > shares[("user", "bob")]["usage"] > 0


def test_each_limit_holds_with_its_reason(svc, sshbed, tmp_path, dispatcher):
    host = sshbed(1)[0]
    add_bed_hosts(svc, [host], root=tmp_path, gpus={host.name: 4}, cpus=16, mem_mb=16384)
    with pytest.raises(ValidationError, match="no account on this machine"):
        svc.limit_set("user", "alcie-no-such", gpus=1)  # no account, no job: a misspelt name
    alice, bob, carol = (as_user(svc, u) for u in ("alice", "bob", "carol"))
    a = [alice.submit(command="sleep 60", gpus=1, mem="128M") for _ in range(2)]
    b = [bob.submit(command="sleep 60", project="vision", mem="128M") for _ in range(2)]
    c = [carol.submit(command="sleep 60", cpus=2, mem="128M") for _ in range(2)]
    with pytest.raises(PermissionDenied):  # the dispatcher has not ticked: nothing started
        as_user(svc, "alice").limit_set("user", "alice", gpus=8)
    svc.limit_set("user", "alice", gpus=1)
    svc.limit_set("project", "vision", jobs=1)
    svc.limit_set("user", "carol", cpus=3)
    free = svc.submit(command="sleep 60", gpus=2, mem="128M")  # no limit: runs beside them
    tick_until(dispatcher, lambda: svc.get_job(free)["state"] == "running")
    dispatcher.tick()
    for jobs, words in (
        (a, "held by limit: user alice may hold 1 GPUs at once"),
        (b, "held by limit: project vision may run 1 jobs at once"),
        (c, "held by limit: user carol may hold 3 CPUs at once"),
    ):
        states = sorted(svc.get_job(j)["state"] for j in jobs)
        assert states == ["queued", "running"], (words, states)
        [held] = [svc.get_job(j) for j in jobs if svc.get_job(j)["state"] == "queued"]
        assert held["reason"].startswith(words), held["reason"]
    svc.limit_set("user", "alice", clear=True)
    tick_until(dispatcher, lambda: all(svc.get_job(j)["state"] == "running" for j in a))
    stop_all(svc, dispatcher)


def test_an_array_of_16_capped_at_4_never_runs_more_than_4(svc, sshbed, tmp_path, dispatcher):
    from lepton_tui.validate import expand_jobs

    host = sshbed(1)[0]
    add_bed_hosts(svc, [host], root=tmp_path, cpus=16, mem_mb=16384)
    specs = expand_jobs(['echo "index=$LEPTON_ARRAY_INDEX"; sleep 0.4'], "0-15%4", (),
                          cpus=1, mem="64M")  # fmt: skip
    ids = svc.submit_many(specs)
    assert svc.resolve_jobs(str(ids[0])) == ids
    assert svc.resolve_jobs(f"{ids[0]}.5") == [ids[5]]
    most = 0

    def done() -> bool:
        nonlocal most
        live = [j for j in ids if svc.get_job(j)["state"] in ("starting", "running")]
        most = max(most, len(live))
        assert len(live) <= 4
        return ended(svc, *ids)

    tick_until(dispatcher, done, timeout=180, pause=0.05)
    assert most == 4
    spans = []
    for index, job_id in enumerate(ids):
        job = svc.get_job(job_id)
        assert job["state"] == "succeeded" and job["array_index"] == index
        [att] = svc.ledger.attempts_for(job_id)
        out = (Path(att["remote_dir"]) / "stdout").read_text()
        assert out.strip() == f"index={index}"
        spans.append((att["started_at"], att["ended_at"]))
    for t, _ in spans:  # as the ledger recorded them, never more than 4 at once
        assert sum(1 for s, e in spans if s <= t < e) <= 4
