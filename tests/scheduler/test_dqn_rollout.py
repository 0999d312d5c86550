"""`dqn-self`: rollout labels, a deterministic trainer, and a network that decides alone."""

from __future__ import annotations

import numpy as np
import pytest

from scheduler.dqn_rollout_core import (
    BASE_WEIGHTS,
    SelfDQNPolicy,
    SelfWeightsError,
    base_action,
    copy_env,
    no_aging,
    rollout_label,
    rollout_values,
)
from scheduler.environment import SchedulingEnv
from scheduler.features import NUM_FEATURES, TEACHER
from scheduler.model import ClusterView, Job, JobRequest, Node, NodeView, Resources, Workload
from scheduler.policy import DQNPolicy, QNetwork, load_weights, save_weights
from scheduler.registry import EXPERIMENTAL_POLICIES, POLICY_NAMES, make_policy
from scheduler.workloads import deeprm


def one_slot() -> Workload:
    """One 1-CPU node; a 3-hour job and a 10-second job arrive together: only one can run."""
    cpu = Resources(1.0, 1024, 0)
    jobs = [
        Job("long", cpu, 0.0, 10_800.0, 10_800.0),
        Job("short", cpu, 0.0, 10.0, 10.0),
    ]
    return Workload("one-slot", jobs, [Node("n0", Resources(1.0, 4096, 0))])


def rows_by_job(env: SchedulingEnv) -> dict[str, int]:
    assert env.obs is not None and env.round is not None
    return {env.round.window[int(j)].id: i for i, j in enumerate(env.obs.jobs[:-1].tolist())}


@pytest.fixture(scope="module")
def base():
    net, _, _ = load_weights(BASE_WEIGHTS)
    return base_action(net)


def test_rollout_label_picks_the_clearly_better_action(base):
    env = SchedulingEnv(one_slot(), config=no_aging())
    env.reset()
    rows = rows_by_job(env)
    # the first candidate tried stands for the base's pick: the label leaves it only if another
    # is better, whichever comes first
    for tried in ([rows["long"], rows["short"]], [rows["short"], rows["long"]]):
        label, v = rollout_label(env, tried, base)
        assert label == rows["short"]
    v = dict(
        zip(
            ("long", "short"), rollout_values(env, [rows["long"], rows["short"]], base), strict=True
        )
    )
    # short first: the long job waits 10 s (slowdown ~1); long first: the short one waits 3 h
    assert v["short"] > v["long"] + 100


def test_rollout_is_exact_and_leaves_the_environment_alone(base):
    wl = deeprm(60, seed=3, load=0.9)
    env = SchedulingEnv(wl, config=no_aging())
    obs, _ = env.reset()
    for _ in range(25):
        obs, _, done, _, _ = env.step(base(obs))
        assert not done
    before = env.episode_return
    a = base(obs)
    (value,) = rollout_values(env, [a], base)
    copy_env(env)  # copies do not touch the original either
    done = False
    while not done:
        obs, _, done, _, _ = env.step(base(obs))
    assert value == pytest.approx(env.episode_return - before, rel=1e-9, abs=1e-12)


def test_trainer_is_deterministic_for_a_seed(tmp_path):
    from scheduler.dqn_rollout_train import main as train

    outs = []
    for name in ("a", "b", "c"):
        out = tmp_path / f"{name}.npz"
        seed = 2 if name == "c" else 1
        train(["--workloads", "1", "--jobs", "40", "--iterations", "1", "--every", "4",
               "--epochs", "2", "--no-validate", "--seed", str(seed), "--out", str(out)])  # fmt: skip
        outs.append(load_weights(out))
    (net_a, cfg_a, meta_a), (net_b, _, _), (net_c, _, _) = outs
    assert meta_a["teacher_bonus"] == 0.0 and cfg_a.aging_s >= 1e12
    for (wa, ba), (wb, bb) in zip(net_a.layers, net_b.layers, strict=True):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(ba, bb)
    # the seed matters (which steps are labelled), so the equality above is not vacuous
    assert any(
        not np.array_equal(wa, wc)
        for (wa, _), (wc, _) in zip(net_a.layers, net_c.layers, strict=True)
    )


def anti_teacher(tmp_path, bonus: float):
    """Weights whose network scores the teacher's pick lowest, saved with `bonus` as the
    teacher bonus in their metadata."""
    w = np.zeros((NUM_FEATURES, 1), np.float32)
    w[TEACHER, 0] = -1.0
    path = tmp_path / "anti.npz"
    save_weights(path, [(w, np.zeros(1, np.float32))], no_aging(), {"teacher_bonus": bonus})
    return path


def decide_first(policy) -> str:
    node = NodeView.empty("a", Resources(4.0, 8192, 0))
    view = ClusterView((node,), 1000.0)
    short = JobRequest("short", Resources(4.0, 1024, 0), 60.0, submitted_at=0.0)
    long_ = JobRequest("long", Resources(4.0, 1024, 0), 600.0, submitted_at=500.0)
    (p,) = policy.decide(view, [short, long_], 1000.0)
    return p.job_id


def test_dqn_self_decides_with_no_teacher_bonus(tmp_path):
    path = anti_teacher(tmp_path, bonus=1000.0)
    # with the bonus applied (the shipped `dqn`'s way) the teacher, SJF, wins ...
    assert decide_first(DQNPolicy(path)) == "short"
    # ... dqn-self ignores it: the network alone, which ranks the teacher's pick last
    pol = make_policy("dqn-self", weights=path)
    assert isinstance(pol, SelfDQNPolicy) and pol.teacher_bonus == 0.0
    assert decide_first(pol) == "long"
    net, cfg, _ = load_weights(path)
    assert decide_first(SelfDQNPolicy.from_network(net, cfg)) == "long"
    with pytest.raises(ValueError, match="no teacher bonus"):
        SelfDQNPolicy.from_network(QNetwork(net.layers), cfg, teacher_bonus=1000.0)


def test_dqn_self_is_experimental_and_refuses_missing_weights(tmp_path):
    assert "dqn-self" in EXPERIMENTAL_POLICIES and "dqn-self" not in POLICY_NAMES
    with pytest.raises(SelfWeightsError, match="no such file"):
        SelfDQNPolicy(tmp_path / "none.npz")
    with pytest.raises(ValueError, match="dqn-self"):
        make_policy("dqn-self", weights=tmp_path / "none.npz")


def test_bench_runs_dqn_self_with_the_shipped_weights():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    res = subprocess.run(
        [sys.executable, "-m", "lepton_tui", "bench", "--workload", "lab-long", "--jobs", "60",
         "--policies", "dqn-self,sjf-bf", "--json"],
        capture_output=True, text=True, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
        timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["policy"] for r in rows] == ["dqn-self", "sjf-bf"]
    assert rows[0]["finished"] == 60
    meta = SelfDQNPolicy().meta
    assert meta["teacher_bonus"] == 0.0 and meta["aging_s"] >= 1e12


def test_eval_with_unusable_weights_is_a_one_line_error(tmp_path, capsys):
    from scheduler.dqn_rollout import main

    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--weights", str(tmp_path / "none.npz"), "--families", "deeprm"])
    assert exit_.value.code == 2
    out = capsys.readouterr()
    assert out.out == "" and len(out.err.strip().splitlines()) == 1
    assert "none.npz: no such file" in out.err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["train", "--every", "0"], "--every: 0 must be a finite number >= 1"),
        (["train", "--iterations", "0"], "--iterations: 0 must be"),
        (["train", "--lr", "nan"], "--lr: nan must be"),
        (["train", "--min-gain", "-1"], "--min-gain: -1 must be"),
        (["eval", "--seeds", "0"], "--seeds: 0 must be"),
        (["eval", "--top", "x"], "--top: 'x' is not int"),
    ],
)
def test_counts_that_would_divide_by_zero_or_do_nothing_are_refused(argv, says, capsys):
    from scheduler.dqn_rollout import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
