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


def test_price_set_node_hour_is_for_a_slurm_partition_and_positive(
    slurm: SlurmBed, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    add = lepton(home, "hosts", "add", "cluster", "--slurm", "--slurm-conf", str(slurm.conf),
                 "--root-dir", str(tmp_path / "jobs"))  # fmt: skip
    assert add.returncode == 0, add.stderr
    box = lepton(home, "hosts", "add", "box", "--address", "192.0.2.7", "--no-connect")
    assert box.returncode == 0, box.stderr

    def price_rows() -> int:
        with sqlite3.connect(home / "ledger.db") as conn:
            return int(conn.execute("SELECT COUNT(*) FROM prices").fetchone()[0])

    cases = [
        (("--host", "cluster", "--node-hour", "-1"), "price per node-hour"),
        (("--host", "cluster", "--node-hour", "0"), "the price per node-hour must be more than 0"),
        (("--host", "cluster", "--node-hour", "lots"), "price per node-hour"),
        (("--host", "box", "--node-hour", "2"), "host 'box' is not a Slurm partition"),
        (("--node-hour", "2"), "a price per node-hour applies to a Slurm partition"),
        (("--host", "cluster", "--node-hour", "2", "--gpu-hour", "1"), "not both"),
        (("--host", "cluster", "--node-hour", "0", "--currency", "EUR"), "more than 0"),
    ]
    for args, said in cases:
        r = lepton(home, "price", "set", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert said in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) <= 2, r.stderr  # the error and its hint
        assert price_rows() == 0, args
    assert json.loads(lepton(home, "price", "ls", "--json").stdout)["currency"] == "USD"
    ok = lepton(home, "price", "set", "--host", "cluster", "--node-hour", "2.5")
    assert ok.returncode == 0, ok.stderr
    assert "2.5/node-h" in ok.stdout and price_rows() == 1
    rows = json.loads(lepton(home, "price", "ls", "--json").stdout)["prices"]
    assert [r["node_hour"] for r in rows if r["host"] == "cluster"] == [2.5]
    # switching to per-resource prices drops the node-hour price (charged one way only)
    lepton(home, "price", "set", "--host", "cluster", "--cpu-hour", "1")
    rows = json.loads(lepton(home, "price", "ls", "--json").stdout)["prices"]
    assert [(r["node_hour"], r["cpu_hour"]) for r in rows if r["host"] == "cluster"] == [(0, 1)]
