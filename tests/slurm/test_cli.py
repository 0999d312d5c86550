"""`lepton-tui hosts add --slurm` and `hosts probe` as a user runs them, on the real bed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.clirun import lepton
from tests.slurmbed import GPUS, NODE, PARTITION, SlurmBed


def hosts_in(home: Path) -> list[str]:
    with sqlite3.connect(home / "ledger.db") as conn:
        return [r[0] for r in conn.execute("SELECT name FROM hosts")]


def test_hosts_add_slurm_prints_the_preflight_and_stores_the_partition(
    slurm: SlurmBed, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    add = lepton(home, "hosts", "add", "cluster", "--slurm", "--slurm-conf", str(slurm.conf),
                 "--root-dir", str(tmp_path / "jobs"))  # fmt: skip
    assert add.returncode == 0, add.stderr
    lines = add.stdout.splitlines()
    assert lines[0] == f"ok   partition: {PARTITION} (the cluster's default)"
    assert [line.split(":")[0] for line in lines[1:6]] == [
        "ok   sinfo", "ok   sbatch", f"ok   partition {PARTITION}",
        f"ok   job directory {tmp_path / 'jobs' / 'slurm'}", "ok   accounting",
    ]  # fmt: skip
    assert lines[-1].startswith(f"added Slurm host cluster: {slurm.cpus} CPUs")
    listed = lepton(home, "hosts", "ls").stdout.splitlines()
    assert listed[1].split()[:3] == ["cluster", f"slurm:{PARTITION}@local", "unknown"]
    (host,) = json.loads(lepton(home, "hosts", "ls", "--json").stdout)
    assert host["slurm"] == {
        "partition": PARTITION, "slurm_conf": str(slurm.conf), "accounting": False,
    }  # fmt: skip
    assert (host["transport"], host["gpus"]) == ("local", GPUS)
    probe = json.loads(lepton(home, "hosts", "probe", "cluster", "--json").stdout)
    assert [n["name"] for n in probe["nodes"]] == [NODE]
    assert (probe["partition"], probe["gpus"]) == (PARTITION, GPUS)


def test_bad_slurm_options_are_one_line_errors_and_write_nothing(
    slurm: SlurmBed, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    conf = ("--slurm-conf", str(slurm.conf))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases = [
        (("--partition", "debug"), 2, "--partition, --account, --qos and --slurm-conf need --slurm"),
        (("--slurm", "--partition", "a;b", *conf), 2, "invalid partition 'a;b'"),
        (("--slurm", "--partition", "nosuch", *conf), 1,
         "partition nosuch: Partition nosuch not found; `sinfo -s` lists them"),
        (("--slurm", "--account", "lab", *conf), 1,
         "account lab: no accounting to check it against; drop --account"),
        (("--slurm", "--root-dir", str(blocker / "below"), *conf), 1,
         f"job directory {blocker / 'below' / 'slurm'}: [Errno 20] Not a directory"),
    ]  # fmt: skip
    for args, rc, message in cases:
        r = lepton(home, "hosts", "add", "cluster", *args)
        assert r.returncode == rc, (args, r.stderr)
        assert message in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (home / "ledger.db").exists() or hosts_in(home) == []
