"""`dqn-regime`: the regime it reads, the other rule's pick, a network deciding alone, its
weights, trainer, command line and bench name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scheduler.bench import make_workload
from scheduler.dqn_regime_core import (
    ALT_SHARE,
    INPUTS,
    INPUTS_V2,
    REGIME_NAMES,
    WEIGHTS,
    WEIGHTS_V2,
    WEIGHTS_V3,
    Regime,
    RegimePolicy,
    RegimeWeightsError,
    RulePolicy,
    alt_pick,
    augment,
    base_chooser,
    dense_pick,
    load_regime,
    rule_pick,
    save_regime,
)
from scheduler.dqn_rollout_core import BASE_WEIGHTS, SelfDQNPolicy, no_aging
from scheduler.environment import SchedulingEnv, run_policy, summarize
from scheduler.features import FEATURE_NAMES, TEACHER
from scheduler.heuristics import HEURISTICS
from scheduler.model import JobRequest, Placement, Resources
from scheduler.policy import load_weights
from scheduler.registry import EXPERIMENTAL_POLICIES, POLICY_NAMES, make_policy
from scheduler.workloads import deeprm

REPO = Path(__file__).resolve().parents[2]
ALT = INPUTS.index("alt_choice")
OWN = INPUTS.index("teacher_choice")


def one_hot_layers(column: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """A network whose score is input `column` (so it takes that column's row)."""
    w0 = np.zeros((len(INPUTS), 1), np.float32)
    w0[column, 0] = 1.0
    return [(w0, np.zeros(1, np.float32)), (np.ones((1, 1), np.float32), np.zeros(1, np.float32))]


def job(i: int, est: float, gpus: int = 1, cpus: float = 4, at: float = 0.0) -> JobRequest:
    return JobRequest(f"j{i}", Resources(cpus, 1024, gpus), est, submitted_at=at)


def test_the_regime_is_what_was_seen_of_the_workload():
    reg = Regime()
    pending = [job(0, 600, gpus=1, at=0.0), job(1, 36_000, gpus=8, at=0.0)]
    reg.observe(pending, 0.0, 64.0, True)
    v = dict(zip(REGIME_NAMES, reg.vector.tolist(), strict=True))
    assert v["long_jobs"] == pytest.approx(0.5)
    assert v["long_size"] == pytest.approx(4 * 8 / 64)
    assert v["short_size"] == pytest.approx(4 * 1 / 64)
    assert v["has_gpus"] == 1.0
    # estimated work (1 x 600 + 8 x 36,000 GPU-seconds over 64 GPUs) per second seen (+ 1 h) / 4
    assert v["offered_load"] == pytest.approx((600 + 8 * 36_000) / 64 / 3600 / 4, rel=1e-5)
    # a job seen again is not counted twice; a new one is
    reg.observe([*pending, job(2, 60, gpus=1, at=1800.0)], 1800.0, 64.0, True)
    assert dict(zip(REGIME_NAMES, reg.vector.tolist(), strict=True))["long_jobs"] == pytest.approx(
        1 / 3
    )
    cpu = Regime()
    cpu.observe([job(0, 7200, gpus=0, cpus=128)], 0.0, 256.0, False)
    assert cpu.vector[REGIME_NAMES.index("has_gpus")] == 0.0
    assert cpu.vector[REGIME_NAMES.index("long_size")] == 1.0  # 4 x 0.5, clipped at 1


def test_rule_pick_at_the_base_limit_is_the_rounds_teacher_and_the_other_starts_long_jobs():
    shipped, _, _ = load_weights(BASE_WEIGHTS)
    base = base_chooser(shipped)
    env = SchedulingEnv(make_workload("lab-long", 3, jobs=300, load=0.9), config=no_aging())
    obs, _ = env.reset()
    done, same, steps, differ = False, 0, 0, 0
    il = FEATURE_NAMES.index("is_long")
    after = [FEATURE_NAMES.index("long_cpu_after"), FEATURE_NAMES.index("long_gpu_after")]
    while not done:
        if len(obs) > 1:
            teacher = np.flatnonzero(obs.x[:, TEACHER] > 0)
            pick = rule_pick(obs.x, 0.4)
            if pick is None and obs.wait_allowed:
                pick = len(obs) - 1
            steps += 1
            same += len(teacher) > 0 and pick == int(teacher[0])
            alt = alt_pick(obs.x)
            if alt is not None and len(teacher) and alt != int(teacher[0]):
                differ += 1
                # the other rule starts a long job the base's limit holds back
                assert obs.x[alt, il] == 1.0
                assert 0.4 < obs.x[alt, after].max() <= ALT_SHARE + 1e-6
        obs, _, done, _, _ = env.step(base(obs) if len(obs) > 1 else 0)
    assert same >= 0.9 * steps and differ > 0


def rows(*jobs: tuple[float, float]) -> np.ndarray:
    """Candidate rows of jobs (estimate s, size), one node each, best fit, plus the wait row."""
    x = np.zeros((len(jobs) + 1, len(FEATURE_NAMES)), np.float32)
    for i, (est, size) in enumerate(jobs):
        x[i, FEATURE_NAMES.index("log_est")] = np.log(est / 10.0) / 8.0
        x[i, FEATURE_NAMES.index("job_size")] = size
        x[i, FEATURE_NAMES.index("is_best_fit")] = 1.0
    x[-1, -1] = 1.0
    return x


def test_the_dense_rule_takes_the_least_estimate_per_squared_size():
    # same estimate: the larger job; twice the size is worth up to four times the estimate
    assert dense_pick(rows((600, 0.3), (600, 0.6))) == 1
    assert dense_pick(rows((600, 0.3), (2300, 0.6))) == 1
    assert dense_pick(rows((600, 0.3), (2500, 0.6))) == 0
    assert dense_pick(rows()) is None


def test_a_network_on_the_teacher_column_is_the_base_and_decides_alone():
    """No bonus, no override: the scores alone pick. A network that reads only `teacher_choice`
    is the base (`dqn-self`'s rule); one that reads only `alt_choice` does something else."""
    wl = make_workload("lab-long", 1, jobs=150, load=0.9)
    own = RegimePolicy.from_layers(one_hot_layers(OWN))
    assert own.teacher_bonus == 0.0
    base = summarize(run_policy(SelfDQNPolicy(), wl)).avg_bsld
    assert summarize(run_policy(own, wl)).avg_bsld == pytest.approx(base)
    alt = RegimePolicy.from_layers(one_hot_layers(ALT))
    res = run_policy(alt, wl)
    assert len(res.finished) == 150
    assert summarize(res).avg_bsld != pytest.approx(base)


def test_the_product_offers_it_where_it_offers_a_policy():
    """A lab can pin `dqn-regime`, the autopilot replays it, and the dispatcher builds it with
    the lab's cost weight (the network's own, version 2)."""
    from lepton_tui import autopilot
    from lepton_tui.dispatch.loop import load_policy
    from lepton_tui.settings import _policy

    assert _policy(" DQN-Regime ") == "dqn-regime"
    assert "dqn-regime" in autopilot.candidates()
    pol = load_policy("dqn-regime", cost_weight=0.5)
    assert isinstance(pol, RegimePolicy) and pol.cost_weight == 0.5
    assert pol.weights_path == WEIGHTS_V3 and pol.net.features == INPUTS_V2
    assert pol.cpu_net is not None  # version 2's network, for clusters without GPUs


def test_registry_offers_version_3_and_decides_deterministically_without_torch():
    """`dqn-regime` is offered (settings, the console, the autopilot) and runs `dqn_regime3.npz`."""
    assert "dqn-regime" in POLICY_NAMES and "dqn-regime" not in EXPERIMENTAL_POLICIES
    code = (
        "import sys, json\n"
        "from scheduler.registry import make_policy\n"
        "from scheduler.environment import run_policy, summarize\n"
        "from scheduler.workloads import deeprm\n"
        "pol = make_policy('dqn-regime')\n"
        "out = [summarize(run_policy(make_policy('dqn-regime'), deeprm(60, 1.0, 1))).avg_bsld\n"
        "       for _ in range(2)]\n"
        "print(json.dumps({'runs': out, 'torch': 'torch' in sys.modules,\n"
        "                  'weights': str(pol.weights_path), 'inputs': len(pol.net.features)}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["torch"] is False and got["runs"][0] == got["runs"][1] > 0
    assert got["weights"] == str(WEIGHTS_V3) and got["inputs"] == len(INPUTS_V2)
    meta = RegimePolicy(WEIGHTS).meta
    assert meta["kind"] == "dqn-regime" and "command" in meta and meta["history"]


def test_bad_weights_are_refused(tmp_path):
    with pytest.raises(RegimeWeightsError, match="no such file"):
        RegimePolicy(tmp_path / "none.npz")
    with pytest.raises(ValueError, match="dqn-regime"):
        make_policy("dqn-regime", weights=tmp_path / "none.npz")
    with pytest.raises(RegimeWeightsError, match="not dqn-regime weights"):
        RegimePolicy(BASE_WEIGHTS)  # the shipped DQN's file is another kind
    junk = tmp_path / "junk.npz"
    junk.write_text("not a file of weights")
    with pytest.raises(RegimeWeightsError, match="unreadable"):
        RegimePolicy(junk)
    short = one_hot_layers(OWN)
    short[0] = (short[0][0][:-1], short[0][1])  # one input short
    with pytest.raises(RegimeWeightsError, match="inputs"):
        save_regime(tmp_path / "short.npz", short)
    nan = one_hot_layers(OWN)
    nan[0][0][0, 0] = np.nan
    with pytest.raises(RegimeWeightsError, match="finite"):
        save_regime(tmp_path / "nan.npz", nan)
    assert not (tmp_path / "short.npz").exists() and not (tmp_path / "nan.npz").exists()


def test_tiny_training_run_end_to_end(tmp_path):
    from scheduler.dqn_regime_train import main

    out = tmp_path / "reg.npz"
    main(["--workloads", "3", "--first", "1", "--jobs", "60", "--every", "20", "--epochs", "1",
          "--out", str(out)])  # fmt: skip
    meta = json.loads(out.with_suffix(".json").read_text())
    assert [h["family"] for h in meta["history"]][:2] == ["lab", "lab-long"]
    assert all(h["labels"] > 0 for h in meta["history"])
    pol = RegimePolicy(out)
    assert len(run_policy(pol, deeprm(30, 0.9, 2)).finished) == 30


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scheduler.dqn_regime", *args],
                          capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ("train", "--workloads", "0"),
        ("train", "--margin", "nan"),
        ("train", "--out", "w.txt"),
        ("eval", "--seeds", "0"),
        ("eval", "--weights", "/nonexistent/w.npz"),
        ("eval", "--limits", "0.4,x"),
        ("eval", "--limits", "0"),
        ("eval", "--rules", "--weights", "scheduler/weights/dqn_regime2.npz"),
        ("train", "--version", "2", "--start", "/nonexistent/w.npz", "--out", "w.npz"),
        ("train", "--start", "scheduler/weights/dqn_regime2.npz", "--out", "w.npz"),
    ],
)
def test_cli_rejects_bad_input_with_one_line(args):
    res = _cli(*args)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "error:" in res.stderr.strip().splitlines()[-1]
    assert not (REPO / "w.txt").exists() and not (REPO / "w.npz").exists()


def test_bench_runs_dqn_regime_by_name_and_by_default():
    res = subprocess.run(
        [sys.executable, "-m", "lepton_tui", "bench", "--workload", "lab-long", "--jobs", "60",
         "--policies", "dqn-regime,sjf-bf", "--json"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["policy"] for r in rows] == ["dqn-regime", "sjf-bf"]
    assert rows[0]["finished"] == 60
    from scheduler.registry import BENCH_DEFAULT_POLICIES

    assert "dqn-regime" in BENCH_DEFAULT_POLICIES


@pytest.mark.parametrize("module", ["dqn_regime", "dqn_rollout", "dqn_select"])
def test_each_commands_help_is_its_own(module, capsys):
    """`python -m scheduler.dqn_X eval -h` shows the evaluation's options, not the two-command
    parser's; no command at all is a one-line usage error."""
    import importlib

    main = importlib.import_module(f"scheduler.{module}").main
    with pytest.raises(SystemExit) as done:
        main(["eval", "-h"])
    assert done.value.code == 0
    assert "--weights" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main([])
    assert done.value.code == 2
    assert "error:" in capsys.readouterr().err.strip().splitlines()[-1]


# -- version 2: the EASY heuristics' picks as inputs (issue 17, fifth try) -----------------------


@pytest.mark.parametrize("kind", ["deeprm", "hpc"])
@pytest.mark.parametrize("rule", ["wfp3", "f1"])
def test_a_followed_heuristic_in_the_round_is_that_heuristic(kind, rule):
    """Where the round's long-job limit does not bind (no long job in deeprm; a short hpc
    window), following the heuristic's plan pick by pick in the round is the heuristic itself."""
    wl = make_workload(kind, 1, jobs=150, load=0.9)
    got = summarize(run_policy(RulePolicy(rule), wl)).avg_bsld
    assert got == pytest.approx(summarize(run_policy(HEURISTICS[rule](), wl)).avg_bsld)
    assert got != pytest.approx(summarize(run_policy(RulePolicy("base"), wl)).avg_bsld)


def test_version_two_reads_the_heuristics_picks_and_the_first_version_still_loads(tmp_path):
    wl = make_workload("hpc", 2, jobs=120, load=0.9)
    w0 = np.zeros((len(INPUTS_V2), 1), np.float32)
    w0[INPUTS_V2.index("wfp3_choice"), 0] = 1.0
    w0[INPUTS_V2.index("teacher_choice"), 0] = 0.5
    layers = [(w0, np.zeros(1, np.float32)), (np.ones((1, 1), np.float32), np.zeros(1, np.float32))]
    path = tmp_path / "v2.npz"
    save_regime(path, layers)
    net, meta = load_regime(path)
    assert meta["inputs"] == list(INPUTS_V2) and net.features == INPUTS_V2
    pol = RegimePolicy(path)
    assert pol.followers is not None and pol.teacher_bonus == 0.0
    follows = summarize(run_policy(pol, wl)).avg_bsld
    # its inputs carry WFP3's pick: it plays differently from the base it otherwise follows
    assert follows != pytest.approx(summarize(run_policy(RulePolicy("base"), wl)).avg_bsld)
    # the first version's weights load as they were: no followers, 39 inputs
    old = RegimePolicy(WEIGHTS)
    assert old.followers is None and old.net.features == INPUTS
    # the columns: the wfp3 and f1 picks sit between dense_choice and the regime's columns
    x = np.zeros((3, len(FEATURE_NAMES)), np.float32)
    x[:2, FEATURE_NAMES.index("log_est")] = [0.5, 0.3]
    x[:2, FEATURE_NAMES.index("log_wait")] = [0.4, 0.1]
    x[:2, FEATURE_NAMES.index("cpu_req_share")] = [0.25, 0.5]
    x[-1, -1] = 1.0
    plans = {"wfp3": [Placement("b", "n0")], "f1": [Placement("gone", "n0"), Placement("a", "n0")]}
    regime = np.full(len(REGIME_NAMES), 0.25, np.float32)
    a = augment(x, regime, INPUTS_V2, plans, ["a", "b"])
    assert a[:, INPUTS_V2.index("wfp3_choice")].tolist() == [0.0, 1.0, 0.0]
    assert a[:, INPUTS_V2.index("f1_choice")].tolist() == [1.0, 0.0, 0.0]
    assert (a[:, INPUTS_V2.index(REGIME_NAMES[0]) :] == 0.25).all()
    # a plan without the rows' jobs is refused, not silently lost
    with pytest.raises(ValueError, match="jobs"):
        augment(x, regime, INPUTS_V2, plans)


def test_tiny_version_two_training_run_compares_five_rules(tmp_path):
    from scheduler.dqn_regime_train import main

    out = tmp_path / "reg2.npz"
    main(["--version", "2", "--workloads", "3", "--first", "1", "--jobs", "60", "--every", "20",
          "--epochs", "1", "--out", str(out)])  # fmt: skip
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["rules"] == ["base", "alt", "dense", "wfp3", "f1"]
    assert all(len(h["chosen"]) == 5 for h in meta["history"])
    assert sum(h["compared"] for h in meta["history"]) > 0
    pol = RegimePolicy(out)
    assert pol.net.features == INPUTS_V2
    assert len(run_policy(pol, deeprm(30, 0.9, 2)).finished) == 30


def test_the_second_versions_weights_load_and_name_their_five_rules():

    pol = RegimePolicy(WEIGHTS_V2)
    assert pol.net.features == INPUTS_V2 and pol.followers is not None
    assert pol.meta["rules"] == ["base", "alt", "dense", "wfp3", "f1"]
    wl = deeprm(60, 1.0, 1)
    runs = [summarize(run_policy(RegimePolicy(WEIGHTS_V2), wl)).avg_bsld for _ in range(2)]
    assert runs[0] == runs[1] > 0


def _fresh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/dqn_fresh_seeds.py", *args],
                          capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ("--per-seed", "hpc:0.8"),
        ("--per-seed", "nope:0.7"),
        ("--weights", "x"),
        ("--seeds", "0"),
        ("--weights", "a=/nonexistent/w.npz"),
        ("--weights", "base=scheduler/weights/dqn_regime.npz"),  # a row field's name
        ("--weights", "f1=scheduler/weights/dqn_regime.npz"),  # a heuristic's name
        ("--weights", "a=scheduler/weights/dqn_regime.npz,a=scheduler/weights/dqn_regime2.npz"),
        ("--table", "/nonexistent/rows.jsonl"),
        ("--per-seed-table", "/nonexistent/rows.jsonl"),
    ],
)
def test_fresh_seeds_bench_rejects_bad_input_with_one_line(args):
    res = _fresh(*args)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "error:" in res.stderr.strip().splitlines()[-1]


def test_fresh_seeds_bench_merges_a_networks_rows_with_a_full_run_and_scores_drift(tmp_path):
    """`--only-nets` rows merge with a full run's rows of the same workloads (`--table`), and
    `--drift` scores one seed set's best heuristic on the next."""
    cell = [[2.0, 3.0, 0.5]]
    full = {"family": "lab", "load": 0.7, "seeds": [8, 8], "nets": ["old"], "old": [2.2, 3, 0.5],
            "base": [2.4, 3, 0.5], "heur": {"sjf": [2.0, 3, 0.5], "f1": [2.5, 3, 0.5]},
            "per_seed": {"old": cell, "base": cell, "sjf": cell, "f1": cell}, "best": "sjf",
            "cpu_s": 1.0}  # fmt: skip
    nets = {"family": "lab", "load": 0.7, "seeds": [8, 8], "nets": ["new"], "new": [1.8, 3, 0.5],
            "heur": {}, "per_seed": {"new": cell}, "cpu_s": 1.0}  # fmt: skip
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps(full) + "\n")
    b.write_text(json.dumps(nets) + "\n")
    res = _fresh("--table", str(a), str(b), "--net", "new")
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if line.startswith("| lab |"))
    assert "**0.90**" in row and "(sjf)" in row  # 1.8 over sjf's 2.0
    other = {**full, "seeds": [3, 3], "heur": {"sjf": [3.0, 3, 0.5], "f1": [2.4, 3, 0.5]}}
    c = tmp_path / "c.jsonl"
    c.write_text(json.dumps(other) + "\n")
    res = _fresh("--drift", str(a), str(c))
    assert res.returncode == 0, res.stderr
    assert "sjf: 1.25 (f1)" in res.stdout  # sjf, best on a, is 3.0 / 2.4 on c


def test_fresh_seeds_tables_refuse_rows_they_cannot_read(tmp_path):
    """`--net` a network the rows do not hold, or `--per-seed-table` on rows of the networks
    alone: one line, exit 2, not a numpy traceback."""
    nets = {"family": "lab", "load": 0.7, "seeds": [8, 8], "nets": ["new"], "new": [1.8, 3, 0.5],
            "heur": {}, "per_seed": {"new": [[2.0, 3.0, 0.5]]}, "cpu_s": 1.0}  # fmt: skip
    rows = tmp_path / "n.jsonl"
    rows.write_text(json.dumps(nets) + "\n")
    for args in (("--table", str(rows), "--net", "nosuch"), ("--per-seed-table", str(rows))):
        res = _fresh(*args)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert "error:" in res.stderr.strip().splitlines()[-1]


def test_fresh_seeds_per_seed_takes_a_load_written_either_way():
    """`hpc:0.70` is load 0.7 (the loads are numbers, not strings)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fresh", REPO / "bench" / "dqn_fresh_seeds.py")
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    assert fresh.parse_per_seed("hpc:0.70,lab-long:1.1") == [("hpc", 0.7), ("lab-long", 1.1)]
    with pytest.raises(ValueError, match="load 0.7, 0.9 or 1.1"):
        fresh.parse_per_seed("hpc:0.8")


def test_the_first_versions_weights_still_decide_as_shipped():
    """`dqn_regime.npz` as issue 17's fourth try measured it: a pinned result on one small
    workload, so the second version's changes to the shared code cannot move the first."""
    wl = make_workload("hpc", 3, jobs=300, load=0.7)
    got = summarize(run_policy(RegimePolicy(WEIGHTS), wl)).avg_bsld
    assert got == pytest.approx(138.0662196842574, rel=1e-9)


@pytest.mark.parametrize(
    ("kind", "seed", "load", "pinned"),
    [("hpc", 3, 0.7, 431.1557890339893), ("lab-long", 2, 0.9, 2.3917040701869747)],
)
def test_the_second_versions_weights_still_decide_as_shipped(kind, seed, load, pinned):
    """`dqn_regime2.npz` as issue 17's fifth try shipped it (numbers measured before the rows
    were tied to their jobs by identity): one node (hpc) and eight of one shape (lab-long)."""

    wl = make_workload(kind, seed, jobs=300, load=load)
    got = summarize(run_policy(RegimePolicy(WEIGHTS_V2), wl)).avg_bsld
    assert got == pytest.approx(pinned, rel=1e-9)


def test_the_recorded_training_command_leaves_out_options_not_given():
    """A weights file's `command` can be run again: `--start None` would look for a file."""
    import argparse

    from scheduler.dqn_order_train import command_line

    args = argparse.Namespace(workloads=2, start=None, out=Path("w.npz"))
    assert command_line("scheduler.dqn_regime train", args) == (
        "python -m scheduler.dqn_regime train --workloads 2 --out w.npz"
    )
