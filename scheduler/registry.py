"""Policies by name: the bench and the dispatcher build them here.

`make_policy("backfill", cost_weight=0.5)`; "dqn" is loaded lazily from `scheduler.policy:DQNPolicy`,
"dqn-bf" (experimental: a learned order under EASY backfilling) from `scheduler.dqn_order`,
"dqn-self" (experimental: the DQN's network alone, rollout-trained) from
`scheduler.dqn_rollout_core`, "dqn-select" (experimental: a network that picks among the rounds
several rules propose) from `scheduler.dqn_select_core`, "dqn-regime" (a network deciding alone,
with what the workload is like and what `wfp3` and `f1` would start as input) from
`scheduler.dqn_regime_core`.
"""

from __future__ import annotations

import importlib
from typing import Any

from scheduler.heuristics import HEURISTICS
from scheduler.model import Policy

LEARNED_POLICIES: tuple[str, ...] = ("dqn", "dqn-regime")
"""The offered policies a network decides: `dqn` (SJF within the long-job limit, learned; the one
`train` and `policy install` make and replace) and `dqn-regime` (a network deciding alone,
at most 0.99x the best heuristic on 20 seeds a row no training used, on every family and load:
`docs/benchmarks.md`, "DQN that knows the regime, sixth try")."""

POLICY_NAMES: tuple[str, ...] = (*HEURISTICS, "ilp", *LEARNED_POLICIES)
"""Every policy by name: the one list the CLI, settings and the console offer."""

EXPERIMENTAL_POLICIES: tuple[str, ...] = ("dqn-bf", "dqn-self", "dqn-select")
"""Built by name and accepted by `bench --policies`, but not offered by settings, the console or
the autopilot, and not run by default: they do not meet issue 17's aims (`docs/benchmarks.md`)."""

_LAZY_CLASSES: dict[str, tuple[str, str, str]] = {
    "dqn-bf": ("scheduler.dqn_order", "OrderBackfillPolicy", "OrderWeightsError"),
    "dqn-self": ("scheduler.dqn_rollout_core", "SelfDQNPolicy", "SelfWeightsError"),
    "dqn-select": ("scheduler.dqn_select_core", "SelectPolicy", "SelectWeightsError"),
    "dqn-regime": ("scheduler.dqn_regime_core", "RegimePolicy", "RegimeWeightsError"),
}
"""each policy built from a module imported only when built (the experimental ones and
`dqn-regime`): its module, class, and weights error"""

BENCH_DEFAULT_POLICIES: tuple[str, ...] = POLICY_NAMES
"""What `bench` compares when no --policies are given: all of them, the DQN and the ILP too."""


def bench_choices() -> str:
    """Every name `bench --policies` accepts, for an error message: the policies, then the
    experimental ones (named as such, so a user finds `dqn-self` and the others)."""
    return f"{', '.join(POLICY_NAMES)} (experimental: {', '.join(EXPERIMENTAL_POLICIES)})"


def make_policy(name: str, **options: Any) -> Policy:
    """A fresh policy called `name` with `options`; ValueError for an unknown name, bad options
    or a policy that cannot be loaded."""
    key = name.strip().lower()
    if key in _LAZY_CLASSES:
        module, cls_name, error_name = _LAZY_CLASSES[key]
        mod = importlib.import_module(module)
        try:
            return getattr(mod, cls_name)(**options)
        except getattr(mod, error_name) as exc:
            raise ValueError(f"policy {key!r} is not available: {exc}") from exc
        except TypeError as exc:
            raise ValueError(f"bad options for policy {key!r}: {exc}") from exc
    if key not in POLICY_NAMES:
        raise ValueError(f"unknown policy {name!r}; choose from {bench_choices()}")
    try:
        if key in HEURISTICS:
            return HEURISTICS[key](**options)
        if key == "ilp":
            from scheduler.ilp import ILPPolicy

            return ILPPolicy(**options)
        try:
            cls = importlib.import_module("scheduler.policy").DQNPolicy
        except (ImportError, AttributeError) as exc:
            raise ValueError(
                f"policy 'dqn' is not available: scheduler.policy.DQNPolicy cannot be loaded ({exc})"
            ) from exc
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"bad options for policy {key!r}: {exc}") from exc
