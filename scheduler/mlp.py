"""The numpy side of the learned policies: a ReLU MLP and its `.npz` file.

Both networks (`policy.QNetwork` over candidate rows, `dqn_order.MLP` over queued jobs) are the
same computation, `x @ W + b` with ReLU between layers and one score per row, stored the same way
(`w0, b0, w1, ...` and a JSON `meta` array); each keeps only its own shape checks and error type.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

Layers = Sequence[tuple[np.ndarray, np.ndarray]]


class ReluMLP:
    """ReLU hidden layers and one output per row, in float32."""

    def __init__(self, layers: Layers) -> None:
        self.layers = [(np.asarray(w, np.float32), np.asarray(b, np.float32)) for w, b in layers]

    def scores(self, x: np.ndarray) -> np.ndarray:
        """The score of each row of `x` -> (n,)."""
        h = np.asarray(x, np.float32)
        last = len(self.layers) - 1
        for k, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if k < last:
                np.maximum(h, 0.0, out=h)
        return h[:, 0]


def write_npz(path: str | Path, layers: Layers, info: dict) -> None:
    """Write the layers (W as in x @ W + b) and `info` (as JSON) to `path`, atomically."""
    arrays: dict[str, np.ndarray] = {}
    for k, (w, b) in enumerate(layers):
        arrays[f"w{k}"] = np.asarray(w, np.float32)
        arrays[f"b{k}"] = np.asarray(b, np.float32)
    arrays["meta"] = np.frombuffer(json.dumps(info).encode(), dtype=np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)


def read_npz(path: str | Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict]:
    """The layers and metadata of a file `write_npz` wrote. Raises FileNotFoundError, or
    OSError/ValueError/KeyError/EOFError for a file that is not one."""
    with np.load(Path(path), allow_pickle=False) as data:
        meta = json.loads(bytes(data["meta"]).decode()) if "meta" in data else {}
        n = sum(1 for k in data.files if k.startswith("w"))
        layers = [(data[f"w{k}"], data[f"b{k}"]) for k in range(n)]
    return layers, meta
