"""Weights whose metadata is not usable: `load_weights` says what is wrong (`WeightsError`), and
`lepton-tui policy install` refuses the file in one line (exit 2), installing nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from lepton_tui.cli import cli
from scheduler.features import FEATURE_NAMES, NUM_FEATURES
from scheduler.mlp import write_npz
from scheduler.policy import WeightsError, load_weights


def _write(path: Path, meta: Any, n: int = NUM_FEATURES) -> Path:
    rng = np.random.default_rng(0)
    layers = [(rng.normal(0, 0.3, (n, 8)), np.zeros(8)), (rng.normal(0, 0.3, (8, 1)), np.zeros(1))]
    write_npz(path, layers, meta)
    return path


GOOD = {"feature_version": 5, "features": list(FEATURE_NAMES)}

DUPLICATE = {**GOOD, "features": [FEATURE_NAMES[0], *FEATURE_NAMES[:-1]]}


def test_a_feature_named_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=f"{FEATURE_NAMES[0]}.*more than once"):
        load_weights(_write(tmp_path / "dup.npz", DUPLICATE))
    load_weights(_write(tmp_path / "good.npz", GOOD))  # the same file, each named once, loads


def _install(home: Path, path: Path):  # noqa: ANN202
    return CliRunner().invoke(cli, ["--home", str(home), "policy", "install", str(path)])


BAD_CONFIG = {
    "meta-not-an-object": ([1, 2], "metadata"),
    "k-not-a-number": ({**GOOD, "k": "x"}, "'k'"),
    "k-infinite": ({**GOOD, "k": float("inf")}, "'k'"),
    "aging-not-a-number": ({**GOOD, "aging_s": "x"}, "'aging_s'"),
    "share-not-a-number": ({**GOOD, "long_share": [0.4]}, "'long_share'"),
    "bonus-not-a-number": ({**GOOD, "teacher_bonus": "high"}, "'teacher_bonus'"),
    "unknown-teacher-placement": ({**GOOD, "teacher_placement": "bogus"}, "bogus"),
}


@pytest.mark.parametrize(("meta", "error"), BAD_CONFIG.values(), ids=BAD_CONFIG.keys())
def test_round_config_meta_that_is_not_usable_is_refused(
    tmp_path: Path, meta: Any, error: str
) -> None:
    with pytest.raises(WeightsError, match=error):
        load_weights(_write(tmp_path / "bad.npz", meta))


@pytest.mark.parametrize(
    "meta",
    [DUPLICATE, *(m for m, _ in BAD_CONFIG.values())],
    ids=["duplicate-feature", *BAD_CONFIG],
)
def test_install_refuses_bad_meta_in_one_line(home: Path, tmp_path: Path, meta: Any) -> None:
    before = CliRunner().invoke(cli, ["--home", str(home), "policy", "ls"]).output
    result = _install(home, _write(tmp_path / "bad.npz", meta))
    assert result.exit_code == 2, result.output
    assert "not usable weights" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not list(home.rglob("bad.npz"))  # nothing copied in
    assert CliRunner().invoke(cli, ["--home", str(home), "policy", "ls"]).output == before
