"""Tests of the DQN policy: features, environment, numpy runtime, training."""
