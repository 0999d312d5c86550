"""`dqn-select`: candidates from several rules, features, a numpy policy, its CLI and trainer."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scheduler.dqn_select_core import (
    NUM_CANDIDATE,
    NUM_FEATURES,
    RULES,
    SelectPolicy,
    SelectWeightsError,
    Smoothed,
    _key,
    make_rule,
    save_select,
)
from scheduler.environment import run_policy, summarize
from scheduler.mlp import ReluMLP
from scheduler.model import (
    ClusterView,
    Job,
    JobRequest,
    Node,
    NodeView,
    Resources,
    RunningJob,
    Workload,
)
from scheduler.registry import EXPERIMENTAL_POLICIES, POLICY_NAMES, make_policy
from scheduler.workloads import deeprm

REPO = Path(__file__).resolve().parents[2]
N_R = len(RULES)
CTX = N_R + 1 + NUM_CANDIDATE  # first context column


def small_lab() -> Workload:
    """Two 2-GPU nodes; a mix of long and short jobs arriving close together."""
    cap = Resources(8.0, 65_536, 2)
    jobs = []
    for i in range(12):
        g = 1 + (i % 2)
        run = 7200.0 if i % 3 == 0 else 300.0 + 60 * i
        jobs.append(Job(f"j{i}", Resources(2.0, 4096, g), 30.0 * i, run, run))
    return Workload("small-lab", jobs, [Node("a", cap), Node("b", cap)])


def random_layers(seed: int, hidden: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(NUM_FEATURES, hidden)), rng.normal(size=hidden)),
        (rng.normal(size=(hidden, 1)), rng.normal(size=1)),
    ]


def test_features_are_built_from_the_state_and_each_round():
    cap = Resources(8.0, 65_536, 2)
    # node a: one GPU busy with a long job (3 h left); node b empty
    a = NodeView.from_allocations("a", cap, [(Resources(2.0, 4096, 1), (0,))])
    b = NodeView.empty("b", cap)
    running = (RunningJob("r", "a", Resources(2.0, 4096, 1), (0,), 0.0, 1000.0 + 10_800),)
    view = ClusterView((a, b), 1000.0, running)
    pending = [
        JobRequest("long", Resources(2.0, 4096, 2), 20_000.0, submitted_at=0.0),
        JobRequest("short", Resources(2.0, 4096, 1), 60.0, submitted_at=900.0),
    ]
    c = SelectPolicy.with_chooser(lambda c: 0).candidates(view, pending, 1000.0)
    x = c.x
    assert x.shape == (len(c), NUM_FEATURES)
    # every rule proposes exactly one candidate, and its column says so
    assert np.all(x[:, :N_R].sum(axis=0) == 1)
    for r in range(N_R):
        assert x[c.of_rule(r), r] == 1.0
    # waiting is one candidate: the empty round, flagged
    wait = [i for i in range(len(c)) if x[i, N_R] == 1.0]
    assert len(wait) == 1 and c.rounds[wait[0]] == []
    # what each round starts
    for i, placed in enumerate(c.rounds):
        assert x[i, N_R + 1] == pytest.approx(math.log1p(len(placed)) / 3)
        assert x[i, N_R + 2] == pytest.approx(len(placed) / 2)
        started = {p.job_id for p in placed}
        assert x[i, N_R + 1 + 7] == (1.0 if "long" in started else 0.0)  # the oldest job
        assert x[i, N_R + 1 + 8] == (1.0 if "short" in started else 0.0)  # the shortest job
    # the regime, the same on every row
    assert np.all(x[:, CTX:] == x[0, CTX:])
    ctx = x[0, CTX:]
    assert ctx[0] == pytest.approx(math.log1p(2) / 5)  # queue length
    assert ctx[1] == pytest.approx(14.0 / 16.0)  # free CPUs
    assert ctx[2] == pytest.approx(3.0 / 4.0)  # free GPUs
    assert ctx[3] == 1.0  # the cluster has GPUs
    assert ctx[5] == pytest.approx(0.5)  # long jobs queued
    assert ctx[9] == pytest.approx(0.25)  # long jobs running: 1 GPU of 4


def test_waiting_is_offered_only_while_a_job_runs():
    cap = Resources(8.0, 65_536, 2)
    view = ClusterView((NodeView.empty("a", cap),), 0.0, ())
    pending = [JobRequest("j", Resources(2.0, 4096, 1), 60.0)]
    c = SelectPolicy.with_chooser(lambda c: 0).candidates(view, pending, 0.0)
    assert len(c) == 1 and c.rounds[0] and c.x[0, N_R] == 0.0
    # a network that always prefers waiting still finishes every job
    layers = [(np.zeros((NUM_FEATURES, 1)), np.zeros(1))]
    layers[0][0][N_R, 0] = 100.0
    for smooth in (1.0, 0.05):
        pol = SelectPolicy.with_chooser(Smoothed(ReluMLP(layers), smooth))
        res = run_policy(pol, small_lab())
        assert len(res.finished) == 12
        assert pol.picks[-1] > 0  # it did wait where it could


def test_the_candidates_hold_each_rules_own_round():
    """At every decision of a run, each rule's candidate is what that rule alone decides on the
    same state (twins of the rules see the same calls)."""
    twins = [make_rule(r) for r in RULES]
    checked = [0]
    k = [0]

    def choose(c):  # cycle through the rules so the states mix their rounds
        k[0] += 1
        return c.of_rule(k[0] % N_R)

    sel = SelectPolicy.with_chooser(choose)

    class Checker:
        name = "check"

        def decide(self, view, pending, now):
            c = sel.candidates(view, pending, now)
            for r, twin in enumerate(twins):
                assert _key(twin.decide(view, pending, now)) == _key(c.rounds[c.of_rule(r)])
            checked[0] += len(c) > 1
            return list(c.rounds[choose(c)]) if pending else []

        def explain(self, job_id):
            return ""

    res = run_policy(Checker(), deeprm(60, 1.0, 3))
    assert len(res.finished) == 60
    assert checked[0] > 10  # decisions where the rules disagreed


@pytest.mark.parametrize("rule", ["base", "sjf-bf", "f1"])
def test_following_one_rule_is_that_rule(rule):
    wl = small_lab()
    i = RULES.index(rule)
    alone = summarize(run_policy(make_rule(rule), wl)).avg_bsld
    sel = SelectPolicy.with_chooser(lambda c: c.of_rule(i))
    assert summarize(run_policy(sel, wl)).avg_bsld == pytest.approx(alone)
    assert sel.picks[i] == sel.decisions > 0


def test_loads_from_npz_and_decides_deterministically_without_torch(tmp_path):
    path = tmp_path / "w.npz"
    save_select(path, random_layers(0), {"command": "test"})
    code = (
        "import sys, json\n"
        "from scheduler.registry import make_policy\n"
        "from scheduler.environment import run_policy, summarize\n"
        "from scheduler.workloads import deeprm\n"
        "out = []\n"
        "for _ in range(2):\n"
        f"    pol = make_policy('dqn-select', weights={str(path)!r})\n"
        "    r = run_policy(pol, deeprm(50, 1.0, 1))\n"
        "    out.append([summarize(r).avg_bsld, pol.picks.tolist()])\n"
        "print(json.dumps({'runs': out, 'torch': 'torch' in sys.modules}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["torch"] is False
    assert got["runs"][0] == got["runs"][1]
    assert sum(got["runs"][0][1]) > 0


def test_bad_weights_are_refused(tmp_path):
    assert "dqn-select" in EXPERIMENTAL_POLICIES and "dqn-select" not in POLICY_NAMES
    with pytest.raises(SelectWeightsError, match="no weights"):
        SelectPolicy(tmp_path / "none.npz")
    with pytest.raises(ValueError, match="dqn-select"):
        make_policy("dqn-select", weights=tmp_path / "none.npz")
    with pytest.raises(ValueError, match="no cost term"):
        make_policy("dqn-select", cost_weight=0.5)
    bad = tmp_path / "bad.npz"
    layers = random_layers(0)
    layers[0] = (layers[0][0][:-1], layers[0][1])  # one input short
    save_select(bad, layers, {})
    with pytest.raises(SelectWeightsError, match="features"):
        SelectPolicy(bad)
    junk = tmp_path / "junk.npz"
    junk.write_text("not a file of weights")
    with pytest.raises(SelectWeightsError, match="not a dqn-select weights file"):
        SelectPolicy(junk)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scheduler.dqn_select", *args],
                          capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ("train", "--workloads", "0"),
        ("train", "--jobs", "-3"),
        ("train", "--iterations", "x"),
        ("train", "--lr", "nan"),
        ("train", "--out", "w.txt"),
        ("eval", "--seeds", "0"),
        ("eval", "--families", "lab,nope"),
        ("eval", "--weights", "/nonexistent/w.npz"),
        ("eval", "--mix", "base"),
    ],
)
def test_cli_rejects_bad_input_with_one_line(args, tmp_path):
    res = _cli(*args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert "Traceback" not in res.stderr
    assert "error:" in lines[-1]
    assert not (REPO / "w.txt").exists()


def test_tiny_training_run_end_to_end(tmp_path):
    from scheduler.dqn_select_train import main

    out = tmp_path / "sel.npz"
    main(["--workloads", "3", "--jobs", "40", "--iterations", "1", "--epochs", "2",
          "--hidden", "8", "--no-validate", "--out", str(out)])  # fmt: skip
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["history"][0]["labels"] > 0
    assert sum(meta["oracle_wins"].values()) == 3
    pol = SelectPolicy(out)
    assert pol.meta["rules"] == list(RULES)
    res = run_policy(pol, small_lab())
    assert len(res.finished) == 12 and pol.decisions > 0


def test_bench_runs_dqn_select_with_the_shipped_weights():
    res = subprocess.run(
        [sys.executable, "-m", "lepton_tui", "bench", "--workload", "lab-long", "--jobs", "60",
         "--policies", "dqn-select,sjf-bf", "--json"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["policy"] for r in rows] == ["dqn-select", "sjf-bf"]
    assert rows[0]["finished"] == 60
    meta = SelectPolicy().meta
    assert meta["rules"] == list(RULES) and 0 < meta["smooth"] <= 1
    assert "validation" in meta and "command" in meta
