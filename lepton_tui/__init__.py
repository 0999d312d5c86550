"""lepton-tui: a console that schedules a small lab's jobs onto its GPU servers and shows their cost."""

__version__ = "0.1.0"
