"""The remote programs are stdlib-only and parse as old Python. (That inventory/ never imports
scheduler, lepton_tui or textual is the import contract in pyproject.toml.)"""

from __future__ import annotations

import sys


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
