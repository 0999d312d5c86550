"""The shared lab's commands as a user runs them: share, limit, hosts label, submit's
constraints, arrays and sweeps, ID.INDEX; bad input is one line and exit 2, nothing written."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

from tests.clirun import lepton


def _ok(home: Path, *args: str) -> str:
    r = lepton(home, *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _bad(home: Path, *args: str, code: int = 2) -> str:
    r = lepton(home, *args)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) <= 2, r.stderr
    return r.stderr


def test_array_sweep_and_constraints_through_the_cli(home: Path) -> None:
    _ok(home, "hosts", "add", "h1", "--local", "--no-connect")
    first = int(_ok(home, "submit", "--array", "0-15%4", "--", "echo", "$LEPTON_ARRAY_INDEX"))
    rows = json.loads(_ok(home, "queue", "--json"))
    assert [(r["array_id"], r["array_index"], r["array_limit"]) for r in rows] == [
        (first, i, 4) for i in range(16)
    ]
    table = _ok(home, "queue")
    assert f"{first}[16]" in table and "array of 16 %4: 16 queued" in table
    assert f"{first}.15" in _ok(home, "queue", "--expand")
    shown = json.loads(_ok(home, "show", f"{first}.3", "--json"))
    assert shown["id"] == first + 3 and shown["env"] == {"LEPTON_ARRAY_INDEX": "3"}
    assert len(json.loads(_ok(home, "show", str(first), "--json"))) == 16
    assert "is an array of 16" in _bad(home, "logs", str(first))
    sweep = json.loads(_ok(home, "submit", "--json", "--sweep", "lr=1e-3,1e-4", "--sweep",
                           "bs=32,64", "--", "python", "train.py", "--lr", "{lr}", "--bs", "{bs}"))  # fmt: skip
    assert [j["command"] for j in sweep] == [
        f"python train.py --lr {lr} --bs {bs}" for lr in ("1e-3", "1e-4") for bs in (32, 64)
    ]
    assert "job" in _ok(home, "cancel", f"{first}.2")
    assert _ok(home, "cancel", str(first)).count("cancelled") == 15
    job = json.loads(_ok(home, "submit", "--json", "--gpu-type", "A100", "--constraint",
                         "zone=r2", "--exclude-host", "h9", "--", "true"))  # fmt: skip
    assert job["constraints"] == {"exclude": ["h9"], "gpu_type": "A100", "labels": ["zone=r2"]}
    assert job["reason"] == "unschedulable: no host meets gpu-type=A100"
    before = _ok(home, "queue", "--json", "--all")
    for args in (
        ("--array", "5-1"), ("--array", "0-3%0"), ("--constraint", "zone"),
        ("--host", "a", "--exclude-host", "a"), ("--sweep", "lr"), ("--sweep", "x=1,2"),
        ("--gpu-type", "A100;rm -rf"),
    ):  # fmt: skip
        _bad(home, "submit", *args, "--", "true")
    assert _ok(home, "queue", "--json", "--all") == before  # nothing written


def test_share_limit_and_label_commands(home: Path) -> None:
    _ok(home, "hosts", "add", "h1", "--local", "--no-connect")
    me = getpass.getuser()  # a user with an account: a misspelt one is refused below
    assert "2 shares" in _ok(home, "share", "set", "--user", me, "--shares", "2")
    _ok(home, "share", "set", "--project", "vision", "--shares", "3")
    rows = {(r["scope"], r["name"]): r for r in json.loads(_ok(home, "share", "ls", "--json"))}
    assert rows[("user", me)]["shares"] == 2 and rows[("user", me)]["factor"] == 1.0
    assert rows[("project", "vision")]["shares"] == 3
    _ok(home, "limit", "set", "--user", me, "--gpus", "4")
    _ok(home, "limit", "set", "--user", me, "--jobs", "10")
    _ok(home, "limit", "set", "--user", "*", "--gpus", "2")
    limits = json.loads(_ok(home, "limit", "ls", "--json"))
    assert {"scope": "user", "name": me, "gpus": 4, "cpus": None, "jobs": 10} in limits
    assert {"scope": "user", "name": "*", "gpus": 2, "cpus": None, "jobs": None} in limits
    _ok(home, "limit", "set", "--user", me, "--clear")
    assert len(json.loads(_ok(home, "limit", "ls", "--json"))) == 1
    assert json.loads(_ok(home, "hosts", "label", "h1", "zone=r2", "rack=4", "--json")) == [
        "zone=r2", "rack=4",
    ]  # fmt: skip
    assert json.loads(_ok(home, "hosts", "label", "h1", "zone=r3", "--rm", "rack", "--json")) == [
        "zone=r3"
    ]
    assert json.loads(_ok(home, "hosts", "ls", "--json"))[0]["labels"] == ["zone=r3"]
    before = _ok(home, "limit", "ls", "--json")
    for args in (
        ("limit", "set", "--user", me), ("limit", "set", "--gpus", "1"),
        ("limit", "set", "--user", "a", "--project", "p", "--gpus", "1"),
        ("limit", "set", "--user", me, "--gpus", "-1"),
        ("share", "set", "--user", me, "--shares", "lots"),
        ("hosts", "label", "h1", "novalue"),
        ("limit", "set", "--user", "no-such-user-x", "--gpus", "1"),
        ("share", "set", "--user", "no-such-user-x", "--shares", "2"),
    ):  # fmt: skip
        _bad(home, *args)
    assert "no account on this machine" in _bad(home, "share", "set", "--user", "alcie",
                                                "--reset")  # fmt: skip
    _bad(home, "hosts", "label", "nohost", "a=b", code=1)
    assert _ok(home, "limit", "ls", "--json") == before
