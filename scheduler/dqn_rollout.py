"""`dqn-self`'s command line: train it, or measure it (issue 17; see `dqn_rollout_core`).

    PYTHONPATH=$PWD python3 -m scheduler.dqn_rollout train --out scheduler/weights/dqn_self.npz
    PYTHONPATH=$PWD python3 -m scheduler.dqn_rollout eval --weights scheduler/weights/dqn_self.npz

Training needs torch; nothing at run time imports this module (the policy is in
`scheduler/dqn_rollout_core.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.dqn_rollout_core import train_or_eval
from scheduler.dqn_rollout_eval import main as eval_main
from scheduler.dqn_rollout_train import main as train_main


def main(argv: Sequence[str] | None = None) -> None:
    train_or_eval(__doc__, train_main, eval_main, argv)


if __name__ == "__main__":
    main()
