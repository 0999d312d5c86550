"""`dqn-select`'s command line: train it, or measure it (issue 17; see `dqn_select_core`).

    PYTHONPATH=$PWD python3 -m scheduler.dqn_select train --out scheduler/weights/dqn_select.npz
    PYTHONPATH=$PWD python3 -m scheduler.dqn_select eval --weights scheduler/weights/dqn_select.npz

Training needs torch; nothing at run time imports this module (the policy is in
`scheduler/dqn_select_core.py`).
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.dqn_rollout_core import train_or_eval


def _train(argv: Sequence[str]) -> None:
    from scheduler.dqn_select_train import main as train_main  # torch: only for training

    train_main(argv)


def _eval(argv: Sequence[str]) -> None:
    from scheduler.dqn_select_eval import main as eval_main

    eval_main(argv)


def main(argv: Sequence[str] | None = None) -> None:
    train_or_eval(__doc__ or "", _train, _eval, argv)


if __name__ == "__main__":
    main()
