"""`dqn-regime`'s command line: train it, or measure it (issue 17; see `dqn_regime_core`).

    PYTHONPATH=$PWD python3 -m scheduler.dqn_regime train --out scheduler/weights/dqn_regime.npz
    PYTHONPATH=$PWD python3 -m scheduler.dqn_regime eval

Training needs torch; nothing at run time imports this module (the policy is in
`scheduler/dqn_regime_core.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.dqn_regime_eval import main as eval_main
from scheduler.dqn_regime_train import main as train_main
from scheduler.dqn_rollout_core import train_or_eval


def main(argv: Sequence[str] | None = None) -> None:
    train_or_eval(__doc__, train_main, eval_main, argv)


if __name__ == "__main__":
    main()
