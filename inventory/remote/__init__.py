"""Stdlib-only programs that run on the hosts: `agent.py` (sent over stdin) and `wrapper.py`."""

from pathlib import Path

AGENT_PATH = Path(__file__).with_name("agent.py")
WRAPPER_PATH = Path(__file__).with_name("wrapper.py")
