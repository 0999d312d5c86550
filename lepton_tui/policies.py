"""Installed DQN weights: `lepton-tui policy install FILE` and `lepton-tui policy ls`.

Weights live in the state directory under `policies/NAME.npz`, each with `NAME.json` beside it
(where it came from, its checksum, when it was installed, what it was trained on and how it
scored on the check replay). `policies/active` names the weights the dispatcher's `dqn` policy
runs; without it, the weights shipped with lepton-tui run.

Installing validates first (the file loads as weights of this feature layout, and a short replay
under them finishes every job) and writes nothing when that fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from lepton_tui import paths
from lepton_tui.errors import LeptonError, ValidationError

POLICY_DIR = "policies"
ACTIVE_FILE = "active"
DEFAULT_NAME = "default"
"""The weights shipped with lepton-tui (scheduler/weights/dqn.npz)."""
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CHECK_JOBS, CHECK_NODES, CHECK_SEED = 120, 2, 7
"""The check replay: the lab mix, this many jobs on this many nodes, this seed."""


def policy_dir(home: str | os.PathLike[str] | None) -> Path:
    """Where installed weights live."""
    return paths.state_dir(home) / POLICY_DIR


def active_weights(home: str | os.PathLike[str] | None) -> Path | None:
    """The installed weights the `dqn` policy runs, or None for the shipped ones."""
    d = policy_dir(home)
    try:
        name = (d / ACTIVE_FILE).read_text().strip()
    except OSError:
        return None
    path = d / f"{name}.npz"
    return path if NAME_RE.match(name) and path.is_file() else None


def check_replay(weights: Path | None) -> dict[str, Any]:
    """Replay the check workload under the weights (None: the shipped ones) and backfill; the
    average bounded slowdown of each, and whether every job finished."""
    from scheduler.bench import make_workload
    from scheduler.metrics import compute_metrics
    from scheduler.policy import DQNPolicy
    from scheduler.registry import make_policy
    from scheduler.simulator import Simulator

    wl = make_workload("lab", CHECK_SEED, jobs=CHECK_JOBS, nodes=CHECK_NODES, load=1.0)
    out: dict[str, Any] = {"workload": f"lab, {CHECK_JOBS} jobs, {CHECK_NODES} nodes, load 1.0"}
    for name, policy in (("dqn", DQNPolicy(weights)), ("backfill", make_policy("backfill"))):
        m = compute_metrics(Simulator(wl).run(policy))
        out[name] = round(float(m["avg_bounded_slowdown"]), 4)
        if name == "dqn":
            out["unfinished"] = int(m["unfinished"])
    return out


def _meta(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def install(
    source: str | os.PathLike[str],
    home: str | os.PathLike[str] | None,
    name: str | None = None,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Validate the weights file `source`, copy it in as `name` (default: its file name) and make
    it the active one; the installed entry (as `listing` shows it)."""
    from scheduler.policy import WeightsError, load_weights

    src = Path(source)
    name = name if name is not None else src.stem
    if not NAME_RE.match(name) or name == DEFAULT_NAME:
        raise ValidationError(
            f"policy name {name[:70]!r} is not usable",
            "use letters, digits, '.', '_' or '-' (at most 64), not 'default'; e.g. --name lab-2026",
            field="name",
        )
    if not src.is_file():
        raise ValidationError(f"weights file not found: {str(src)[:200]}", field="file")
    try:
        _net, config, meta = load_weights(src)
    except WeightsError as e:
        raise ValidationError(
            f"not usable weights: {e}", "give an .npz written by `lepton-tui train`", field="file"
        ) from None
    check = check_replay(src)
    if check["unfinished"]:
        raise LeptonError(
            f"{src.name}: {check['unfinished']} jobs of the check replay never finished under "
            "these weights; not installed"
        )
    d = policy_dir(home)
    target = d / f"{name}.npz"
    if target.exists() and not force:
        raise ValidationError(
            f"a policy named {name!r} is installed already",
            "choose another --name, or add --force to replace it",
            field="name",
        )
    data = src.read_bytes()
    entry = {
        "name": name,
        "source": str(src.resolve()),
        "sha256": hashlib.sha256(data).hexdigest(),
        "installed_at": time.time(),
        "trained": {k: meta[k] for k in ("command", "seed", "steps") if k in meta},
        "config": {"k": config.k, "aging_s": config.aging_s, "long_share": config.long_share},
        "teacher_bonus": meta.get("teacher_bonus", 0.0),
        "check": check,
    }
    sidecar = src.with_suffix(".json")
    side = _meta(sidecar) if sidecar.is_file() else {}
    if side.get("command"):
        entry["trained"].setdefault("command", side["command"])
    paths.make_state_dir(paths.state_dir(home))
    d.mkdir(mode=0o700, exist_ok=True)
    _write_atomic(target, data)
    _write_atomic(d / f"{name}.json", (json.dumps(entry, indent=1) + "\n").encode())
    _write_atomic(d / ACTIVE_FILE, (name + "\n").encode())
    return {**entry, "active": True, "path": str(target)}


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def listing(home: str | os.PathLike[str] | None) -> list[dict[str, Any]]:
    """The shipped weights and every installed set, with which one the `dqn` policy runs."""
    from scheduler.policy import DEFAULT_WEIGHTS

    active = active_weights(home)
    shipped = _meta(DEFAULT_WEIGHTS.with_suffix(".json"))
    rows: list[dict[str, Any]] = [
        {
            "name": DEFAULT_NAME,
            "active": active is None,
            "path": str(DEFAULT_WEIGHTS),
            "trained": {"command": shipped.get("command", "")},
            "installed_at": None,
            "check": None,
        }
    ]
    d = policy_dir(home)
    for npz in sorted(d.glob("*.npz")) if d.is_dir() else []:
        entry = _meta(npz.with_suffix(".json"))
        rows.append(
            {
                "name": npz.stem,
                "active": active is not None and npz == active,
                "path": str(npz),
                "trained": entry.get("trained", {}),
                "installed_at": entry.get("installed_at"),
                "check": entry.get("check"),
            }
        )
    return rows


def install_recorded(
    ledger: Any, source: str, home: str | os.PathLike[str] | None, name: str | None,
    actor: str, *, force: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """`install`, as the service does it (after its admin check): a file the service cannot
    read is a clear error, and the install is an event of the ledger."""
    try:
        entry = install(source, home, name, force=force)
    except PermissionError:
        raise ValidationError(
            f"cannot read {str(source)[:200]}",
            "make the file readable by the lab service's account (e.g. chmod 0644, in a "
            "directory it can enter)",
            field="file",
        ) from None
    ledger.event("policy.installed", f"policy {entry['name']} installed", actor=actor)
    return entry
