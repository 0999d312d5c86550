"""inventory/ stands alone: it never imports scheduler, lepton_tui or textual."""

from __future__ import annotations

import subprocess
import sys


def test_inventory_imports_nothing_above_it() -> None:
    code = (
        "import sys, inventory.transport, inventory.probe, inventory.supervisor, "
        "inventory.hostkeys, inventory.fanout, inventory.preflight;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('scheduler', 'lepton_tui', 'textual', 'torch'));"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_remote_programs_are_stdlib_only() -> None:
    import ast

    from inventory.remote import AGENT_PATH, WRAPPER_PATH

    stdlib = set(sys.stdlib_module_names)
    for path in (AGENT_PATH, WRAPPER_PATH):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] in stdlib, (path.name, name)


def test_remote_programs_parse_as_old_python() -> None:
    """Hosts may have an old python3: the agent must at least run far enough to say so."""
    import ast

    from inventory.remote import AGENT_PATH, WRAPPER_PATH

    for path in (AGENT_PATH, WRAPPER_PATH):
        ast.parse(path.read_text(), feature_version=(3, 6))
