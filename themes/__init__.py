"""Textual themes and stylesheets of the console.

`THEMES` are registered on the app at start; `CSS_PATHS` are the app-wide `.tcss` files, loaded in
order (variables and layout first, then panels, then modals).
"""

from __future__ import annotations

from pathlib import Path, PurePath

from textual.theme import Theme

HERE = Path(__file__).parent
CSS_PATHS: list[str | PurePath] = [HERE / "app.tcss", HERE / "panels.tcss", HERE / "modals.tcss"]

LEPTON = Theme(
    name="lepton",
    primary="#3fb8af",  # teal: the lab's own colour
    secondary="#7f9cf5",
    accent="#f6ad55",  # amber for money
    warning="#f6ad55",
    error="#f56565",
    success="#68d391",
    foreground="#e2e8f0",
    background="#11161d",
    surface="#18202a",
    panel="#1f2a36",
    dark=True,
    variables={"footer-key-foreground": "#3fb8af", "block-cursor-text-style": "bold"},
)

LEPTON_DARK = Theme(
    name="lepton-dark",
    primary="#58a6ff",
    secondary="#a371f7",
    accent="#d29922",
    warning="#d29922",
    error="#f85149",
    success="#3fb950",
    foreground="#c9d1d9",
    background="#0d1117",
    surface="#161b22",
    panel="#21262d",
    dark=True,
)

LEPTON_LIGHT = Theme(
    name="lepton-light",
    primary="#0b7a75",
    secondary="#4c51bf",
    accent="#b7791f",
    warning="#b7791f",
    error="#c53030",
    success="#2f855a",
    foreground="#1a202c",
    background="#f7fafc",
    surface="#edf2f7",
    panel="#e2e8f0",
    dark=False,
)

THEMES = [LEPTON, LEPTON_DARK, LEPTON_LIGHT]
DEFAULT_THEME = "lepton"
# What `t` cycles through: the project's own, then the dark and light ones.
CYCLE = ["lepton", "lepton-dark", "lepton-light"]
