"""The console's per-user preferences (the theme), kept in `$XDG_CONFIG_HOME/lepton-tui/`.

A small JSON object, `console.json`: `{"theme": "lepton-light"}`. It belongs to the user, not to
the lab's ledger, so two people sharing a ledger keep their own themes. A missing, unreadable or
malformed file means no preferences (the console still starts); a write replaces the file
atomically, keeping keys this version does not know.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

PREFS_FILE = "console.json"


def prefs_path() -> Path:
    """`$XDG_CONFIG_HOME/lepton-tui/console.json` (XDG's default: `~/.config`)."""
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(xdg) / "lepton-tui" / PREFS_FILE


def load_prefs(path: Path | None = None) -> dict[str, Any]:
    """The saved preferences; `{}` when there are none or the file cannot be read as JSON."""
    path = path or prefs_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_pref(key: str, value: Any, path: Path | None = None) -> Path:
    """Set one preference (write to a temporary file, then rename); raises OSError if it cannot."""
    path = path or prefs_path()
    prefs = load_prefs(path)
    prefs[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".console-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(prefs, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def saved_theme(path: Path | None = None) -> str | None:
    """The theme the user chose last, if any."""
    theme = load_prefs(path).get("theme")
    return theme if isinstance(theme, str) and theme else None
