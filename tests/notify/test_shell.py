"""`lepton-tui shell`: the allocation queued, waited for and reached with the user's own ssh,
against the real sshd test bed (non-interactively: a command instead of a login shell)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from lepton_tui import interactive
from lepton_tui.dispatch.hostpool import HostPool
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.errors import ValidationError
from lepton_tui.service import Service
from tests.clirun import lepton
from tests.dispatch.helpers import add_bed_hosts, wait_until

PROBE = 'echo "CVD=$CUDA_VISIBLE_DEVICES JOB=$LEPTON_JOB_ID I=$LEPTON_INTERACTIVE"'


def test_remote_command_quotes_and_bounds_the_session() -> None:
    remote = interactive.remote_command([1, 3], 7, 125.9, "echo 'a b'; rm -rf $HOME")
    assert remote.startswith(
        "export CUDA_VISIBLE_DEVICES=1,3 LEPTON_JOB_ID=7 LEPTON_INTERACTIVE=1;"
    )
    assert "timeout --foreground -k 10 125 " in remote
    assert shlex.quote("echo 'a b'; rm -rf $HOME") in remote  # one quoted word, never spliced
    assert interactive.remote_command([], 7, 60).endswith('"${SHELL:-/bin/sh}" -l')


def test_ssh_argv(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("k")
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    host = {"name": "g1", "transport": "ssh", "address": "10.0.0.5", "port": 2222,
            "key_path": str(key)}  # fmt: skip
    argv = interactive.ssh_argv(host, "alice", "R", tty=True, known_hosts=str(kh))
    assert argv == ["ssh", "-t", "-p", "2222", "-i", str(key), "-o",
                    f"UserKnownHostsFile=~/.ssh/known_hosts {kh}", "alice@10.0.0.5", "R"]  # fmt: skip
    unreadable = {**host, "key_path": str(tmp_path / "lab_key_not_mine")}
    assert "-i" not in interactive.ssh_argv(unreadable, None, "R", tty=False)
    with pytest.raises(ValidationError):
        interactive.ssh_argv({"name": "l", "transport": "local"}, None, "R", tty=False)


@pytest.fixture
def bed_lab(svc: Service, sshbed, tmp_path: Path):
    """One test bed host with two (declared) GPUs, and a dispatcher ticking in a thread."""
    hosts = sshbed(1)
    add_bed_hosts(svc, hosts, root=tmp_path / "roots", gpus={hosts[0].name: 2})
    d = Dispatcher(svc, pool=HostPool(svc.known_hosts, backoff_max=1.0), tick_s=0.2)
    handle = d.start_in_thread()
    assert handle.dispatching
    yield svc
    handle.stop()
    d.pool.close()


def _job(home: Path, job_id: int) -> dict:
    return json.loads(lepton(home, "show", str(job_id), "--json").stdout)


def test_shell_waits_connects_with_the_gpus_and_releases(bed_lab: Service, home: Path) -> None:
    res = lepton(home, "shell", "--gpus", "1", "--time", "5m", "--", PROBE)
    assert res.returncode == 0, res.stderr
    job_id = int(res.stderr.split("job ", 1)[1].split()[0])
    assert f"CVD=0 JOB={job_id} I=1" in res.stdout
    assert "session ended, allocation released" in res.stderr
    job = _job(home, job_id)
    assert job["kind"] == "interactive"
    wait_until(lambda: _job(home, job_id)["state"] == "cancelled", timeout=30)


def test_print_ssh_keeps_the_allocation_and_the_queue_marks_it(
    bed_lab: Service, home: Path
) -> None:
    res = lepton(home, "shell", "--gpus", "2", "--time", "5m", "--print-ssh", "--", PROBE)
    assert res.returncode == 0, res.stderr
    job_id = int(res.stderr.split("job ", 1)[1].split()[0])
    argv = shlex.split(res.stdout.strip())
    assert argv[0] == "ssh" and "-t" not in argv  # no terminal here: no -t
    queue = lepton(home, "queue", columns=200).stdout
    assert "[shell]" in queue
    # the printed command, run as a user would (non-interactively), reaches the allocation
    ran = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert ran.returncode == 0, ran.stderr
    assert f"CVD=0,1 JOB={job_id} I=1" in ran.stdout
    assert _job(home, job_id)["state"] == "running"  # until cancelled
    assert lepton(home, "cancel", str(job_id)).returncode == 0


def test_shell_refuses_bad_input_and_queues_nothing(home: Path) -> None:
    res = lepton(home, "shell", "--gpus", "x")
    assert res.returncode == 2 and "gpus" in res.stderr
    res = lepton(home, "shell", "--time", "soon")
    assert res.returncode == 2 and "not a duration" in res.stderr
    assert (
        not (home / "ledger.db").exists()
        or json.loads(lepton(home, "queue", "--all", "--json").stdout) == []
    )


def test_shell_gives_up_after_wait_and_cancels_its_job(home: Path) -> None:
    res = lepton(home, "shell", "--gpus", "1", "--time", "5m", "--wait", "2s")
    assert res.returncode == 2 and "not placed within --wait" in res.stderr, res.stderr
    assert "no dispatcher is running" in res.stderr
    (job,) = json.loads(lepton(home, "queue", "--all", "--json").stdout)
    assert job["kind"] == "interactive" and job["state"] == "cancelled"


def test_known_hosts_line_keeps_only_the_recorded_key(tmp_path: Path) -> None:
    """Lab mode: the key the host shows (ssh-keyscan) is kept only if its fingerprint is the
    one the lab service checked when the host was added."""
    keys = []
    for name in ("right", "wrong"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(tmp_path / name)], check=True)  # fmt: skip
        keys.append((tmp_path / f"{name}.pub").read_text().split()[:2])
    fp = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "right.pub")], check=True,
                        capture_output=True, text=True).stdout.split()[1]  # fmt: skip
    scanned = "".join(f"[10.0.0.5]:2222 {kind} {blob}\n" for kind, blob in keys)
    host = {"name": "g1", "address": "10.0.0.5", "port": 2222, "host_key_fingerprint": fp}
    assert (
        interactive.known_hosts_line(host, scanned) == f"[10.0.0.5]:2222 {keys[0][0]} {keys[0][1]}"
    )
    assert interactive.known_hosts_line(host, scanned.splitlines()[1]) is None  # another key
    assert interactive.known_hosts_line({**host, "port": 22}, scanned).startswith("10.0.0.5 ")
    assert interactive.known_hosts_line({**host, "host_key_fingerprint": None}, scanned) is None


def test_shell_refuses_a_slurm_host() -> None:
    slurm = {"name": "cluster", "transport": "ssh", "address": "login.hpc", "slurm_json": "{}"}
    with pytest.raises(ValidationError, match="Slurm partition") as refused:
        interactive.ssh_argv(slurm, "alice", "R", tty=False)
    assert "srun --pty" in str(refused.value.hint)


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [("--mem", "12Q", "mem '12Q' is not a size"), ("--gpus", "-1", "gpus must be between 0")],
)
def test_shell_checks_its_values_before_the_hosts(
    svc: Service, home: Path, tmp_path: Path, option: str, value: str, says: str
) -> None:
    """On a fleet with no SSH host, `shell --mem 12Q` once said only that no host takes a
    shell: fixing that, the user then learned the size was bad. The value is said first."""
    from tests.dispatch.helpers import add_local_hosts

    add_local_hosts(svc, tmp_path, 1)
    res = lepton(home, "shell", option, value)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith(f"lepton-tui: error: {says}"), res.stderr
    assert svc.ledger.query_one("SELECT COUNT(*) AS n FROM jobs")["n"] == 0
    res = lepton(home, "shell")  # good values: then the hosts are what is wrong
    assert res.returncode == 2 and "no host takes a shell session" in res.stderr
