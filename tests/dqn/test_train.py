"""`lepton-tui train --steps 2000` as a smoke test, and same-seed determinism of the agent."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from lepton_tui.cli import cli  # noqa: E402
from scheduler.agent import TrainConfig, WorkloadMix, make_network, train  # noqa: E402
from scheduler.features import Round  # noqa: E402
from scheduler.policy import DQNPolicy, load_weights  # noqa: E402
from scheduler.simulator import Simulator  # noqa: E402
from scheduler.workloads import deeprm  # noqa: E402
from tests.dqn.test_features_env import random_view  # noqa: E402


def test_train_command_smoke(tmp_path):
    out = tmp_path / "w.npz"
    res = CliRunner().invoke(
        cli,
        [
            "train",
            "--workload",
            "deeprm",
            "--steps",
            "2000",
            "--jobs",
            "30",
            "--seed",
            "3",
            "--aging",
            "6",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert out.exists() and out.stat().st_size < 1_000_000
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["seed"] == 3 and side["steps"] == 2000 and side["history"]
    assert side["history"][0]["phase"] == "imitation"
    # the numpy policy loads it and schedules a workload to the end
    pol = DQNPolicy(out)
    assert not pol.is_fallback
    assert pol.config.aging_s == 6 * 3600.0  # the aging it was trained with travels with it
    wl = deeprm(50, load=1.0, seed=4, num_nodes=2)
    assert len(Simulator(wl).run(pol).finished) == 50
    # numpy and torch give the same scores with these weights
    net, _, _ = load_weights(out)
    tnet = make_network(net.layers[0][0].shape[1])
    linears = [m for m in tnet if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for m, (w, b) in zip(linears, net.layers, strict=True):
            m.weight.copy_(torch.as_tensor(w.T))
            m.bias.copy_(torch.as_tensor(b))
    view, pending = random_view(np.random.default_rng(2))
    x = Round(view, pending, view.now).candidates().x
    with torch.no_grad():
        expect = tnet(torch.as_tensor(x)).squeeze(-1).numpy()
    assert np.abs(net.scores(x) - expect).max() < 1e-5


def test_train_rejects_bad_input(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["train", "--workload", "trace", "--out", str(tmp_path / "w.npz")])
    assert res.exit_code == 2 and "needs --trace" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(cli, ["train", "--out", str(tmp_path / "w.bin")])
    assert res.exit_code == 2 and "--out must end in .npz" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("name,cpu_milli\nx,1\n")
    res = runner.invoke(cli, ["train", "--trace", str(bad), "--out", str(tmp_path / "w.npz")])
    assert res.exit_code == 2 and "missing column" in res.output
    for aging in ("nan", "inf", "-1"):
        res = runner.invoke(cli, ["train", "--aging", aging, "--out", str(tmp_path / "w.npz")])
        assert res.exit_code == 2 and "--aging" in res.output, aging
        assert "Traceback" not in res.output
    assert not (tmp_path / "w.npz").exists()


def test_same_seed_same_weights(tmp_path):
    cfg = TrainConfig(seed=5, total_steps=500, eval_every=0, batch_size=16)
    mix = WorkloadMix(kinds=("deeprm",), jobs=20)
    a = train(cfg, mix, [], tmp_path / "a.npz")["network"]
    b = train(cfg, mix, [], tmp_path / "b.npz")["network"]
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    c = train(
        TrainConfig(seed=6, total_steps=500, eval_every=0, batch_size=16),
        mix,
        [],
        tmp_path / "c.npz",
    )["network"]
    assert any(
        not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True)
    )


def test_a_small_validation_gain_does_not_leave_the_teacher():
    from scheduler.agent import choose_blend

    tried = [(0.02, 0.976), (0.1, 0.98), (1000.0, 0.999)]
    # the network alone validated 2.5 % better than following SJF: not enough, follow SJF
    assert choose_blend(0.975, tried, 0.05) == (0.999, 1000.0)
    # 10 % better: ship the network
    assert choose_blend(0.899, tried, 0.05) == (0.899, 0.0)
    # a blend clearly better than both
    assert choose_blend(0.99, [(0.1, 0.85), (1000.0, 1.0)], 0.05) == (0.85, 0.1)
    # no threshold: the lowest ratio wins as before
    assert choose_blend(0.975, tried, 0.0) == (0.975, 0.0)


def test_double_dqn_loss_by_hand():
    from scheduler.agent import Batch, double_dqn_loss

    cfg = TrainConfig(gamma=0.5, margin=0.5, margin_weight=2.0)
    online = torch.nn.Linear(2, 1, bias=False)
    target = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        online.weight.copy_(torch.tensor([[1.0, 0.0]]))  # Q = first feature
        target.weight.copy_(torch.tensor([[0.0, 1.0]]))  # Q' = second feature

    def batch(demo: int) -> Batch:
        x = torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])  # Q = 1, 3
        nx = torch.tensor([[[2.0, 10.0], [5.0, 7.0]]])  # online picks row 1, target scores it 7
        ones = torch.ones((1, 2), dtype=torch.bool)
        t = torch.tensor
        return Batch(x, ones, t([0]), t([1.0]), t([0.0]), nx, ones, t([demo]))

    before = [p.clone() for p in online.parameters()]
    # Double DQN: target 1 + 0.5 * 7 = 4.5 for Q(a=0) = 1; Huber of 3.5 is 3.0
    assert double_dqn_loss(online, target, batch(-1), cfg).item() == pytest.approx(3.0)
    # a demonstration of action 0: margin max(1 + 0, 3 + 0.5) - 1 = 2.5, weighted 2
    assert double_dqn_loss(online, target, batch(0), cfg).item() == pytest.approx(3.0 + 5.0)
    assert double_dqn_loss(online, target, batch(1), cfg, use_td=False).item() == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, online.parameters(), strict=True))


def test_cost_weight_charges_idle_capacity_in_the_reward():
    from scheduler.agent import objective, with_prices
    from scheduler.environment import SchedulingEnv

    wl = deeprm(40, load=0.5, seed=8, num_nodes=2)
    assert all(n.price_per_hour == 0 for n in wl.nodes)
    priced = with_prices(wl)
    assert all(n.price_per_hour > 0 for n in priced.nodes) and with_prices(priced) is priced

    def play(weight: float) -> tuple[float, list[int]]:
        env = SchedulingEnv(priced, cost_weight=weight)
        env.reset()
        actions, done = [], False
        while not done:
            a = env.teacher_action()
            actions.append(a)
            _, _, done, _, _ = env.step(a)
        return env.episode_return, actions

    plain, acts = play(0.0)
    costly, acts_w = play(1.0)
    assert acts == acts_w and costly < plain  # same play, idle capacity charged
    result = Simulator(priced).run(DQNPolicy())
    assert objective(result, 1.0) > objective(result, 0.0)


def test_train_cost_weight_is_recorded(tmp_path):
    out = tmp_path / "c.npz"
    args = ["train", "--workload", "deeprm", "--steps", "300", "--jobs", "20", "--out", str(out)]
    res = CliRunner().invoke(cli, [*args, "--cost-weight", "2", "--json"])
    assert res.exit_code == 0, res.output
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["cost_weight"] == 2.0 and side["config"]["cost_weight"] == 2.0
    assert load_weights(out)[2]["cost_weight"] == 2.0
    bad = CliRunner().invoke(cli, [*args[:-1], str(tmp_path / "d.npz"), "--cost-weight", "-1"])
    assert bad.exit_code == 2 and "cost weight" in bad.output
    assert not (tmp_path / "d.npz").exists()
