"""No SQL above the storage layer: modules call the ledger's named reads and writes.

The storage layer is `lepton_tui/ledger.py` with its mixins (`ledger_*.py`) and `schema.py` (the
migrations). Everywhere else, a call of `.execute(`, `.query(` or
`.query_one(` on the ledger (or a raw SQLite connection), or an `sqlite3.connect(`, is SQL that
belongs in a named method of a mixin (`ledger_dispatch.py`, `ledger_service.py`,
`ledger_views.py`, `ledger_lab.py`, `ledger_demo.py`, `ledger_econ.py`, `ledger_econ_store.py`).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lepton_tui"

STORAGE = {"ledger.py", "schema.py"}

# Modules still holding SQL: move it into a named ledger method and take the module off this
# list (the list only shrinks; every module is moved now).
NOT_MOVED_YET: set[str] = set()

SQL_CALLS = {"execute", "executemany", "executescript", "query", "query_one"}
# what a ledger or a raw connection is called where it is used
DB_NAMES = {"ledger", "conn", "db", "lab"}


def _receiver(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def sql_calls(source: str, filename: str = "<string>") -> list[str]:
    """`line: call` of each SQL call on a ledger or connection, and each `sqlite3.connect`."""
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name, receiver = node.func.attr, _receiver(node.func.value)
        if (name in SQL_CALLS and receiver in DB_NAMES) or (receiver, name) == (
            "sqlite3",
            "connect",
        ):
            out.append(f"{node.lineno}: {receiver}.{name}")
    return out


def _in_storage(rel: str) -> bool:
    return rel in STORAGE or (rel.startswith("ledger_") and "/" not in rel)


def test_no_sql_outside_the_storage_layer() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if _in_storage(rel) or rel in NOT_MOVED_YET:
            continue
        found += [f"lepton_tui/{rel}:{c}" for c in sql_calls(path.read_text(), str(path))]
    assert found == [], "move this SQL into a named ledger method: " + "; ".join(found)


def test_the_allow_list_names_only_modules_that_still_hold_sql() -> None:
    clean = [rel for rel in sorted(NOT_MOVED_YET) if not sql_calls((PACKAGE / rel).read_text())]
    assert clean == [], f"no SQL left in {clean}: take them off NOT_MOVED_YET"


def test_the_rule_sees_sql_on_a_ledger_and_a_connection() -> None:
    source = (
        "rows = ledger.query('SELECT 1')\n"
        "svc.ledger.execute('DELETE FROM jobs')\n"
        "self.app.ledger.query_one('SELECT 1')\n"
        "conn = sqlite3.connect(path)\n"
        "self.query_one('#form-error')\n"  # a Textual DOM query: not SQL
        "ledger.queued_jobs()\n"
    )
    assert sql_calls(source) == [
        "1: ledger.query", "2: ledger.execute", "3: ledger.query_one", "4: sqlite3.connect",
    ]  # fmt: skip
