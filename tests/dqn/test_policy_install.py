"""`lepton-tui policy install FILE` and `policy ls`: validated weights copied into the state
directory, listed with their metadata, and run by the dispatcher's `dqn` policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from lepton_tui.cli import cli
from lepton_tui.dispatch.loop import Dispatcher
from lepton_tui.service import Service
from scheduler.features import DEFAULT_CONFIG, NUM_FEATURES
from scheduler.policy import DEFAULT_WEIGHTS, save_weights


def _cli(home: Path, *args: str):  # noqa: ANN202
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def _weights(path: Path, features: int = NUM_FEATURES, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    layers = [
        (rng.normal(0, 0.3, (features, 8)), np.zeros(8)),
        (rng.normal(0, 0.3, (8, 1)), np.zeros(1)),
    ]
    save_weights(path, layers, DEFAULT_CONFIG, {"command": "lepton-tui train --seed 3", "seed": 3})
    return path


def test_install_validates_copies_and_lists_the_weights(home: Path, tmp_path: Path) -> None:
    ls = json.loads(_cli(home, "policy", "ls", "--json").output)
    assert [(r["name"], r["active"]) for r in ls] == [("default", True)]
    src = _weights(tmp_path / "mine.npz")
    res = _cli(home, "policy", "install", str(src), "--name", "lab-1", "--json")
    assert res.exit_code == 0, res.output
    entry = json.loads(res.output)
    installed = home / "policies" / "lab-1.npz"
    assert Path(entry["path"]) == installed and installed.read_bytes() == src.read_bytes()
    assert entry["check"]["unfinished"] == 0 and entry["check"]["backfill"] >= 1.0
    src.unlink()  # the installed copy stands alone
    ls = json.loads(_cli(home, "policy", "ls", "--json").output)
    assert [(r["name"], r["active"]) for r in ls] == [("default", False), ("lab-1", True)]
    assert ls[1]["trained"]["command"] == "lepton-tui train --seed 3"
    assert ls[1]["check"] == entry["check"]
    text = _cli(home, "policy", "ls").output
    assert "* lab-1  check: dqn" in text and "  default" in text
    # the same name again needs --force
    again = _cli(home, "policy", "install", str(_weights(tmp_path / "b.npz", seed=1)), "--name",
                 "lab-1")  # fmt: skip
    assert again.exit_code == 2 and "--force" in again.output
    forced = _cli(home, "policy", "install", str(tmp_path / "b.npz"), "--name", "lab-1", "--force")
    assert forced.exit_code == 0, forced.output
    assert installed.read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_the_dispatcher_runs_the_installed_weights(home: Path, tmp_path: Path) -> None:
    svc = Service.open(str(home))
    try:
        svc.set_setting("policy", "dqn")
        d = Dispatcher(svc, tick_s=0.2)
        try:
            assert d.policy().weights_path == DEFAULT_WEIGHTS
            src = _weights(tmp_path / "next.npz")
            assert _cli(home, "policy", "install", str(src)).exit_code == 0
            pol = d.policy()
            assert pol.weights_path == home / "policies" / "next.npz" and not pol.is_fallback
        finally:
            d.pool.close()
    finally:
        svc.close()


def test_bad_weights_are_refused_and_nothing_is_written(home: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not an npz")
    wrong = _weights(tmp_path / "wrong.npz", features=NUM_FEATURES - 1)
    cases = [
        ([str(junk)], "not usable weights"),
        ([str(wrong)], "does not match"),
        ([str(tmp_path / "missing.npz")], "weights file not found"),
        ([str(DEFAULT_WEIGHTS), "--name", "default"], "is not usable"),
        ([str(DEFAULT_WEIGHTS), "--name", "../x"], "is not usable"),
    ]
    for args, text in cases:
        res = _cli(home, "policy", "install", *args)
        assert res.exit_code == 2 and text in res.output, (args, res.output)
        assert len(res.output.strip().splitlines()) == 1
    assert not (home / "policies").exists()


def test_only_an_admin_installs_a_policy(home: Path, tmp_path: Path) -> None:
    """It changes how every job of the lab is placed: service.py refuses a non-admin, and
    nothing is installed."""
    from lepton_tui.errors import PermissionDenied

    Service.open(str(home)).close()  # root made the ledger: its owner
    svc = Service.open(str(home), user="alice")
    try:
        src = _weights(tmp_path / "mine.npz")
        try:
            svc.install_policy(str(src), "lab-1")
        except PermissionDenied as exc:
            assert "only admins may install a policy" in exc.message
        else:
            raise AssertionError("a non-admin installed a policy")
        assert not (home / "policies" / "lab-1.npz").exists()
        assert [r["name"] for r in svc.policies()] == ["default"]
    finally:
        svc.close()
