"""Stdlib-only programs that run on the hosts: `agent.py` (sent over stdin) and `wrapper.py`."""

import functools
from pathlib import Path

AGENT_PATH = Path(__file__).with_name("agent.py")
WRAPPER_PATH = Path(__file__).with_name("wrapper.py")


@functools.cache
def agent_source() -> str:
    """The agent program's text (sent on every call; hosts keep nothing installed)."""
    return AGENT_PATH.read_text()


@functools.cache
def wrapper_source() -> str:
    """The attempt wrapper's text, written into each attempt directory at launch."""
    return WRAPPER_PATH.read_text()
