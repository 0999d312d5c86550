"""A fake `nvidia-smi` on a test bed host's PATH: GPUs as the test says, outside processes too.

The script answers the two queries lepton's probe makes (`--query-gpu` and
`--query-compute-apps`, CSV without header or units) from a JSON file the test may rewrite while
the host runs. It is put on the host's PATH through the login's `~/.bashrc` (sshd runs the
probe through bash, which reads it), and removed afterwards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCRIPT = r"""#!/usr/bin/env python3
import json, sys
gpus = json.load(open(__file__ + ".json"))
args = " ".join(sys.argv[1:])
if "--query-gpu" in args:
    for i, g in enumerate(gpus):
        print("%d, GPU-fake-%d, %s, %d, %d, %d, 40, 100.0" % (
            i, i, g["name"], g["util"], g["used_mb"], g["total_mb"]))
elif "--query-compute-apps" in args:
    for i, g in enumerate(gpus):
        for pid, mb in g.get("processes", []):
            print("GPU-fake-%d, %d, %d" % (i, pid, mb))
else:
    print("fake nvidia-smi")
"""


def gpu(
    name: str = "NVIDIA A100-SXM4-80GB", *, used_mb: int = 0, util: int = 0,
    total_mb: int = 81920, processes: Sequence[tuple[int, int]] = (),
) -> dict[str, Any]:  # fmt: skip
    """One GPU as the fake reports it."""
    return {"name": name, "used_mb": used_mb, "util": util, "total_mb": total_mb,
            "processes": [list(p) for p in processes]}  # fmt: skip


@contextmanager
def fake_gpus(host: Any, gpus: Sequence[dict[str, Any]]) -> Iterator[Path]:
    """Give test bed `host` these GPUs (its nvidia-smi) for the block; yields the JSON file."""
    bindir = host.dir / "fakebin"
    bindir.mkdir(exist_ok=True)
    smi = bindir / "nvidia-smi"
    smi.write_text(SCRIPT)
    smi.chmod(0o755)
    state = Path(str(smi) + ".json")
    state.write_text(json.dumps(list(gpus)))
    host.home.mkdir(mode=0o700, exist_ok=True)
    bashrc = host.home / ".bashrc"
    before = bashrc.read_text() if bashrc.exists() else None
    bashrc.write_text((before or "") + f'\nexport PATH="{bindir}:$PATH"\n')
    try:
        yield state
    finally:
        if before is None:
            bashrc.unlink()
        else:
            bashrc.write_text(before)
        os.unlink(smi)
        os.unlink(state)
