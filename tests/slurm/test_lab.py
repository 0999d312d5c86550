"""Slurm hosts in lab mode: each job is submitted, runs and is cancelled as its submitter, on a
real Slurm cluster whose users (alice, bob) are real Unix users reaching the submit node over the
loopback sshd with the lab key; and Slurm's pending reason as the job's queue reason.

The lab's cluster is a bed of its own (module scope): the shared bed's directory is private to
the test runner (0700, under pytest's private temporary directory), and the lab's users must
read its slurm.conf and reach its munge socket, as on a real cluster."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lepton_tui import paths
from lepton_tui.cli.jobs import queue_lines
from lepton_tui.dispatch.hostpool import HostPool
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.dispatch.slurm_admin import onboard_slurm
from lepton_tui.labkey import authorized_keys_line, ensure_lab_key
from lepton_tui.logs import follow_log
from lepton_tui.service import Service
from lepton_tui.validate import JobSpec
from tests.dispatch.helpers import TERMINAL, tick_until
from tests.slurm.helpers import wait_for
from tests.slurmbed import PARTITION, SlurmBed, find_slurm

USERS = ("alice", "bob")


@pytest.fixture(scope="module")
def lab_slurm() -> Iterator[SlurmBed]:
    """A Slurm bed the lab's users can use: its directory, slurm.conf and munge socket
    reachable by every user (the keys and state stay private to the bed's daemons)."""
    missing = find_slurm()
    if missing:
        if os.environ.get("LEPTON_ALLOW_NO_SLURM") == "1":
            pytest.skip(f"Slurm is missing: {missing}")
        pytest.fail(f"Slurm is missing: {missing}")
    if os.geteuid() != 0:
        pytest.skip("lab-mode tests create Unix users: run them as root (as CI does)")
    base = Path(tempfile.mkdtemp(prefix="lepton-slurmlab-", dir="/tmp"))
    bed = SlurmBed(base / "bed")
    try:
        bed.start()  # munged checks its directories are private when it starts; then open them
        for path in (base, bed.base, bed.munge_socket.parent):
            os.chmod(path, 0o755)
        yield bed
    finally:
        for user in USERS:
            bed.client("scancel", "--user", user)
        bed.close()
        shutil.rmtree(base, ignore_errors=True)


def _service(home: Path, user: str) -> Service:
    return Service.open(home, user=user)


def _submit(home: Path, user: str, command: str, **kw: Any) -> int:
    svc = _service(home, user)
    try:
        return svc.submit(JobSpec(command=command, **{"cpus": 1, "mem_mb": 64, **kw}))
    finally:
        svc.close()


@pytest.fixture
def slurm_lab(
    lab_slurm: SlurmBed, lab_bed: Any, lab_homes: dict[str, Path], user_keys: Any, tmp_path: Path
) -> Iterator[tuple[Service, Dispatcher, SlurmBed]]:
    """A lab's ledger and dispatcher (the lab key in its state directory, so the pool runs
    each job as its owner) with the cluster added as a Slurm host over the loopback sshd; alice
    and bob have the lab key in their authorized_keys."""
    home = tmp_path / "state"
    svc = Service.open(home)
    key, _ = ensure_lab_key(svc.home)
    line = authorized_keys_line(svc.home)
    for user in USERS:
        user_keys(user, line)
    ssh = lab_bed(1)[0]
    shutil.copy(ssh.known_hosts_path, svc.home / paths.KNOWN_HOSTS_FILE)
    done = onboard_slurm(
        svc, "cluster", partition=PARTITION, slurm_conf=str(lab_slurm.conf),
        address=ssh.address, port=ssh.port, user=ssh.user, key_path=ssh.key_path,
        root_dir="~/.lepton-slurm",
    )  # fmt: skip
    assert done.ok
    pool = HostPool(svc.home / paths.KNOWN_HOSTS_FILE, lab_key=key)
    d = Dispatcher(svc, pool=pool, tick_s=0.2)
    try:
        yield svc, d, lab_slurm
    finally:
        pool.close()
        svc.close()


def _state(svc: Service, job: int) -> str:
    return str(svc.ledger.get_job(job)["state"])


def _slurm_id(svc: Service, job: int) -> str:
    (att,) = svc.ledger.attempts_for(job)
    return str(att["slurm_job_id"] or "")


def _slurm_user(bed: SlurmBed, slurm_id: str) -> str:
    """Who Slurm itself says the job belongs to (squeue's %u)."""
    out = bed.client("squeue", "--noheader", "--states=all", "--jobs", slurm_id, "-o", "%u")
    return out.stdout.strip()


def test_each_slurm_job_is_submitted_and_runs_as_its_submitter(
    slurm_lab: tuple[Service, Dispatcher, SlurmBed], lab_homes: dict[str, Path]
) -> None:
    svc, d, bed = slurm_lab
    cmd = "id -un; echo $HOME; sleep 3"
    jobs = {user: _submit(svc.home, user, cmd) for user in USERS}
    tick_until(d, lambda: all(_slurm_id(svc, j) for j in jobs.values()), timeout=60)
    for user, job in jobs.items():
        assert _slurm_user(bed, _slurm_id(svc, job)) == user
    # a tick with both users' jobs in Slurm: ONE round trip, on the host's own login
    host = svc.ledger.get_host("cluster")
    logins = [d.slurm.get(host), *(d.slurm.get(host, u) for u in USERS)]
    before = [sh.transport.round_trips for sh in logins]
    d.tick()
    assert [sh.transport.round_trips - b for sh, b in zip(logins, before, strict=True)] == [
        1, 0, 0,
    ]  # fmt: skip
    tick_until(d, lambda: all(_state(svc, j) in TERMINAL for j in jobs.values()), timeout=90)
    for user, job in jobs.items():
        assert _state(svc, job) == "succeeded", svc.ledger.get_job(job)
        assert _slurm_user(bed, _slurm_id(svc, job)) == user  # still shown (MinJobAge)
        # the output, read back through the owner's login, says who ran it
        out = "".join(follow_log(svc, job, "stdout", pool=d.pool))
        assert out == f"{user}\n{lab_homes[user]}\n"
        # the job's directory lives under the owner's root (their home), owned by them
        (att,) = svc.ledger.attempts_for(job)
        (job_dir,) = (lab_homes[user] / ".lepton-slurm" / "slurm").glob(f"{job}-{att['token']}")
        uid = pwd.getpwnam(user).pw_uid
        assert job_dir.stat().st_uid == uid
        assert (job_dir / "stdout").stat().st_uid == uid
    # sbatch went through each owner's login, never the host's own
    assert d.slurm.get(host).commands["sbatch"] == 0
    assert all(d.slurm.get(host, user).commands["sbatch"] >= 1 for user in USERS)
    # and the poll stayed one round trip per tick on the host's own login: squeue once each
    assert d.slurm.get(host).commands["squeue"] >= 2
    assert all(d.slurm.get(host, user).commands["squeue"] == 0 for user in USERS)


def test_bob_cancels_his_slurm_job_through_his_own_login(
    slurm_lab: tuple[Service, Dispatcher, SlurmBed],
) -> None:
    svc, d, bed = slurm_lab
    job = _submit(svc.home, "bob", "sleep 300")
    tick_until(d, lambda: _state(svc, job) == "running", timeout=60)
    sid = _slurm_id(svc, job)
    bob = _service(svc.home, "bob")
    try:
        bob.cancel([job])
    finally:
        bob.close()
    tick_until(d, lambda: _state(svc, job) in TERMINAL, timeout=60)
    assert _state(svc, job) == "cancelled"
    assert "JobState=CANCELLED" in bed.client("scontrol", "show", "job", sid).stdout
    host = svc.ledger.get_host("cluster")
    assert d.slurm.get(host, "bob").commands["scancel"] == 1
    assert d.slurm.get(host).commands["scancel"] == 0
    # slurmctld saw the kill request come from bob's uid
    uid = pwd.getpwnam("bob").pw_uid
    log = (bed.base / "log" / "slurmctld.log").read_text(errors="replace")
    assert f"JobId={sid} uid {uid}" in log


def test_the_end_files_of_a_job_slurm_forgot_are_read_through_its_owners_login(
    slurm_lab: tuple[Service, Dispatcher, SlurmBed], lab_homes: dict[str, Path]
) -> None:
    """A job Slurm no longer shows (past MinJobAge) ends from the file its batch script left in
    its owner's directory: read as the owner, the host's own login never looks there."""
    svc, d, bed = slurm_lab
    job = _submit(svc.home, "alice", "sleep 4; exit 7")
    tick_until(d, lambda: _slurm_id(svc, job), timeout=60)
    (att,) = svc.ledger.attempts_for(job)
    # as if Slurm had forgotten it: squeue no longer shows it under lepton's name
    r = bed.client("scontrol", "update", f"JobId={att['slurm_job_id']}", "JobName=renamed")
    assert r.returncode == 0, r.stderr
    end = lab_homes["alice"] / ".lepton-slurm" / "slurm" / f"{job}-{att['token']}" / "exit_code"
    wait_for(end.exists, timeout=60)
    host = svc.ledger.get_host("cluster")
    own, alice = d.slurm.get(host), d.slurm.get(host, "alice")
    trips = (own.transport.round_trips, alice.transport.round_trips)
    poll = d.slurm.poll(host, [att["token"]])
    st = poll.attempts[att["token"]]
    assert (st.state, st.exit_code) == ("done", 7), st
    # one round trip on the host's own login (the squeue), one as alice (her files)
    assert (own.transport.round_trips, alice.transport.round_trips) == (trips[0] + 1, trips[1] + 1)


def test_a_job_pending_in_slurm_shows_slurms_reason(
    slurm: SlurmBed, svc: Service, tmp_path: Path
) -> None:
    """A job Slurm holds (here: its dependency is still running) shows squeue's reason while it
    waits there, and loses it once Slurm runs it."""
    from tests.slurm.test_dispatch import add_cluster, submit

    add_cluster(svc, slurm, tmp_path / "lepton")
    d = Dispatcher(svc, tick_s=0.2)
    try:
        first = submit(svc, "sleep 6")
        then = submit(svc, "echo after", after=[first])
        tick_until(d, lambda: _slurm_id(svc, first) and svc.ledger.attempts_for(then), timeout=60)
        tick_until(
            d, lambda: svc.ledger.get_job(then)["reason"] == "pending in Slurm (Dependency)",
            timeout=30,
        )  # fmt: skip
        assert _state(svc, then) == "starting"
        (line,) = [x for x in queue_lines([svc.ledger.get_job(then)], svc.ledger.clock())
                   if x.lstrip().startswith(str(then))]  # fmt: skip
        assert line.rstrip().endswith("pending in Slurm (Dependency)"), line
        tick_until(d, lambda: _state(svc, then) in ("running", *TERMINAL), timeout=60)
        assert svc.ledger.get_job(then)["reason"] is None
        tick_until(d, lambda: _state(svc, then) in TERMINAL, timeout=60)
        assert _state(svc, then) == "succeeded"
    finally:
        d.pool.close()


def test_through_the_lab_service_an_admin_adds_the_cluster_and_alices_job_runs_as_alice(
    lab: Any, lab_slurm: SlurmBed, lab_bed: Any, user_keys: Any, lab_homes: dict[str, Path]
) -> None:
    """The real daemon (`serve --socket`): root, an admin, adds the Slurm host over the socket
    (`hosts add NAME --slurm`); alice, a client, submits; Slurm runs her job as her."""
    from lepton_tui.errors import ValidationError
    from tests.lab.conftest import as_user, client_call

    ssh = lab_bed(1)[0]
    admin = lab.client()
    try:
        # on the login node itself it would submit every job as the service account: refused
        with pytest.raises(ValidationError, match="--local host in lab mode"):
            admin.onboard_slurm("here", partition=PARTITION, slurm_conf=str(lab_slurm.conf))
        done = admin.onboard_slurm(
            "cluster", address=ssh.address, port=ssh.port, user=ssh.user,
            key_path=ssh.key_path, accept_new_host_key=True, partition=PARTITION,
            slurm_conf=str(lab_slurm.conf), root_dir="~/.lepton-slurm",
        )  # fmt: skip
        assert done.ok and done.host["name"] == "cluster", done.lines
        got = admin.check_login("cluster", "alice")  # no key yet: she cannot submit there
        assert not got["ok"] and got["how"] == "lab key", got
        user_keys("alice", admin.lab_key())
        got = admin.check_login("cluster", "alice")  # `hosts check cluster --user alice`
        assert got["ok"], got
        assert any(line.startswith("sbatch ") and " ok " in line for line in got["lines"]), got
        assert any(line.startswith("job dir ") and str(lab_homes["alice"]) in line
                   for line in got["lines"]), got  # fmt: skip
        job = as_user("alice", client_call(lab.socket, "submit", command="id -un", cpus=1,
                                           mem="64M"))  # fmt: skip

        def ended() -> bool:
            return admin.get_job(job)["state"] in TERMINAL

        wait_for(ended, timeout=90)
        row = admin.get_job(job)
        assert (row["state"], row["host"]) == ("succeeded", "cluster"), row
        (att,) = admin.show_job(job)["attempts"]
        assert _slurm_user(lab_slurm, str(att["slurm_job_id"])) == "alice"
        out = lab_homes["alice"] / ".lepton-slurm" / "slurm" / f"{job}-{att['token']}" / "stdout"
        assert out.read_text() == "alice\n"
    finally:
        admin.close()


def test_a_sudo_slurm_host_submits_as_the_owner_through_the_documented_rule(
    lab_slurm: SlurmBed, lab_bed: Any, lab_homes: dict[str, Path], user_keys: Any, tmp_path: Path
) -> None:
    """`run_as = sudo`: the service logs in as the host's own login (labadmin, with the lab
    key) and runs the Slurm helper as alice with README's sudoers rule; alice has no key."""
    if shutil.which("sudo") is None:
        pytest.skip("sudo is not installed (Debian's sudo package)")
    svc = Service.open(tmp_path / "state")
    key, _ = ensure_lab_key(svc.home)
    user_keys("labadmin", authorized_keys_line(svc.home))
    ssh = lab_bed(1)[0]
    shutil.copy(ssh.known_hosts_path, svc.home / paths.KNOWN_HOSTS_FILE)
    rule = Path(f"/etc/sudoers.d/lepton-slurmtest-{os.getpid()}")
    rule.write_text("labadmin ALL=(alice) NOPASSWD: /usr/bin/python3 -I -S -\n")  # README's rule
    rule.chmod(0o440)
    pool = HostPool(svc.home / paths.KNOWN_HOSTS_FILE, lab_key=key)
    d = Dispatcher(svc, pool=pool, tick_s=0.2)
    try:
        done = onboard_slurm(
            svc, "cluster", partition=PARTITION, slurm_conf=str(lab_slurm.conf),
            address=ssh.address, port=ssh.port, user="labadmin", key_path=str(key),
            root_dir="~/.lepton-slurm",
        )  # fmt: skip
        assert done.ok, done.lines
        svc.ledger.update("hosts", done.host["id"], {"run_as": "sudo"})
        job = _submit(svc.home, "alice", "id -un; echo $HOME")
        tick_until(d, lambda: _state(svc, job) in TERMINAL, timeout=90)
        assert _state(svc, job) == "succeeded", svc.ledger.get_job(job)
        assert _slurm_user(lab_slurm, _slurm_id(svc, job)) == "alice"
        out = "".join(follow_log(svc, job, "stdout", pool=d.pool))
        assert out == f"alice\n{lab_homes['alice']}\n"
    finally:
        rule.unlink()
        pool.close()
        svc.close()
