"""`dqn-regime`'s trainer and `dqn-self`'s share one rollout (`play_out`)."""

from __future__ import annotations

from scheduler.bench import make_workload
from scheduler.dqn_regime_core import base_chooser
from scheduler.dqn_rollout_core import BASE_WEIGHTS, no_aging, play_out, rollout_values
from scheduler.environment import SchedulingEnv
from scheduler.policy import load_weights


def base():
    shipped, _, _ = load_weights(BASE_WEIGHTS)
    return base_chooser(shipped)


def test_rollout_values_are_play_outs_of_the_base():
    """The self-trained DQN's rollouts and the regime trainer's share `play_out`."""
    env = SchedulingEnv(make_workload("lab-long", 1, jobs=60, load=0.9), config=no_aging())
    choose = base()
    obs, _ = env.reset()
    actions = list(range(min(3, len(obs) - 1)))
    got = rollout_values(env, actions, choose, horizon=20)
    want = [play_out(env, a, lambda o, _e: choose(o), 20) for a in actions]
    assert got.tolist() == want
