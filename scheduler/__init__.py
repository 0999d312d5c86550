"""Pure scheduling code: model, simulator, workloads, heuristics, ILP, DQN policy."""
