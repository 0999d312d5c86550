"""`lepton-tui shell` in lab mode: alice's allocation is placed by the lab service (her job runs
as alice with the lab key), then her own ssh logs in to its host as alice, with its GPUs, and the
allocation is released when the session ends. Real users, a real daemon, real sshd hosts."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import Lab, as_user
from tests.lab.test_cli import _cli_as
from tests.lab.test_run_as import _key_line

pytestmark = pytest.mark.slow

PROBE = 'echo "$(id -un) CVD=$CUDA_VISIBLE_DEVICES JOB=$LEPTON_JOB_ID" > "$HOME/shell-probe"'


@pytest.fixture
def alice_ssh(lab_homes: dict[str, Path], user_keys: Any) -> Iterator[Path]:
    """alice's own ssh key (~/.ssh/id_ed25519, hers), authorized for her own logins."""
    info = pwd.getpwnam("alice")
    ssh = lab_homes["alice"] / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    os.chown(ssh, info.pw_uid, info.pw_gid)
    key = ssh / "id_ed25519"
    made = [key, key.with_suffix(".pub"), ssh / "known_hosts", lab_homes["alice"] / "shell-probe"]
    for path in made:
        path.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    for path in made[:2]:
        os.chown(path, info.pw_uid, info.pw_gid)
    user_keys("alice", key.with_suffix(".pub").read_text())
    try:
        yield lab_homes["alice"]
    finally:
        for path in made:
            path.unlink(missing_ok=True)


def _add_gpu_host(lab: Lab, host: Any, name: str) -> None:
    client = lab.client()
    try:
        client.onboard(name, address=host.address, port=host.port, user=host.user,
                       key_path=host.key_path, accept_new_host_key=True, gpus_override=2)  # fmt: skip
    finally:
        client.close()


def test_shell_in_lab_mode_logs_in_as_the_caller_with_the_gpus(
    lab: Lab, lab_bed: Any, user_keys: Any, alice_ssh: Path
) -> None:
    h = lab_bed(1)[0]
    _add_gpu_host(lab, h, "gpu1")
    user_keys("alice", _key_line(lab))  # the lab service may start alice's jobs as alice
    out = as_user("alice", _cli_as(lab.socket, "shell", "--gpus", "1", "--time", "5m",
                                   "--wait", "2m", "--", PROBE))  # fmt: skip
    assert out["code"] == 0, out["out"]
    job_id = int(out["out"].split("job ", 1)[1].split()[0])
    assert f"job {job_id} runs on gpu1" in out["out"]
    assert "session ended, allocation released" in out["out"]
    probe = (alice_ssh / "shell-probe").read_text().split()
    assert probe == ["alice", "CVD=0", f"JOB={job_id}"]
    client = lab.client()
    try:
        job = client.get_job(job_id)
        assert job["user"] == "alice" and job["kind"] == "interactive"
        deadline = time.monotonic() + 30
        while client.get_job(job_id)["state"] != "cancelled":
            assert time.monotonic() < deadline, client.get_job(job_id)
            time.sleep(0.2)
    finally:
        client.close()


def test_shell_without_her_own_key_says_what_to_add(
    lab: Lab, lab_bed: Any, user_keys: Any, lab_homes: dict[str, Path]
) -> None:
    h = lab_bed(1)[0]
    _add_gpu_host(lab, h, "gpu1")
    user_keys("bob", _key_line(lab))  # the lab may start bob's jobs; bob has no key of his own
    out = as_user("bob", _cli_as(lab.socket, "shell", "--gpus", "1", "--time", "5m",
                                 "--wait", "2m", "--", "true"))  # fmt: skip
    assert out["code"] == 255, out["out"]
    assert "ssh could not open the session as bob" in out["out"]
    assert "~/.ssh/authorized_keys on gpu1" in out["out"]
    assert "allocation released" in out["out"]
