"""`dqn-select`'s command line: train it, or measure it (issue 17; see `dqn_select_core`).

    PYTHONPATH=$PWD python3 -m scheduler.dqn_select train --out scheduler/weights/dqn_select.npz
    PYTHONPATH=$PWD python3 -m scheduler.dqn_select eval --weights scheduler/weights/dqn_select.npz

Training needs torch; nothing at run time imports this module (the policy is in
`scheduler/dqn_select_core.py`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("what", choices=("train", "eval"))
    args, rest = ap.parse_known_args(argv)
    if args.what == "train":
        from scheduler.dqn_select_train import main as train_main

        train_main(rest)
    else:
        from scheduler.dqn_select_eval import main as eval_main

        eval_main(rest)


if __name__ == "__main__":
    main()
