"""One round trip to a host's agent: the stdlib-only `remote/agent.py` over `python3 -`."""

from __future__ import annotations

import base64
import json
from typing import Any

from inventory.agent_session import session_for
from inventory.errors import RemoteError
from inventory.hostspec import HostSpec
from inventory.remote import agent_source
from inventory.transport import Transport

MARKER = b"@@LEPTON-REPLY@@"


def agent_call(
    transport: Transport, spec: HostSpec, op: str, timeout: float = 30, **args: Any
) -> Any:
    """Run agent operation `op` on the host in ONE round trip: a request line to the
    connection's persistent agent (inventory.agent_session), or, where that cannot run, one
    exec of a fresh agent with the request as data in its stdin."""
    request = {"op": op, "root": spec.root_dir, "host": spec.name, **args}
    session = session_for(transport)
    if session is not None:
        answer = session.call(request, timeout)
        if answer is not None:
            return _result(spec, op, answer)
    encoded = base64.b64encode(json.dumps(request).encode()).decode("ascii")
    program = f"{agent_source()}\n_lepton_main({encoded!r})\n".encode()
    # -I -S: no site packages, no PYTHON* variables: faster start, and a user's environment
    # cannot change what the agent imports.
    result = transport.run(["python3", "-I", "-S", "-"], stdin=program, timeout=timeout)
    _, found, reply = result.stdout.rpartition(MARKER)
    if not found:
        err = result.stderr.decode("utf-8", "replace").strip()
        if result.rc == 127 or "python3: command not found" in err or "No such file" in err:
            raise RemoteError(spec.name, "python3 is not installed on the host (or not on PATH)")
        last = err.splitlines()[-1] if err else f"exit status {result.rc}"
        raise RemoteError(spec.name, f"the host agent failed: {last}")
    try:
        decoded = json.loads(reply.decode("utf-8"))
    except ValueError as exc:
        raise RemoteError(spec.name, f"unreadable reply from the host agent: {exc}") from exc
    return _result(spec, op, decoded)


def _result(spec: HostSpec, op: str, decoded: dict[str, Any]) -> Any:
    if not decoded.get("ok"):
        raise RemoteError(spec.name, f"{op} failed on the host: {decoded.get('error')}")
    return decoded["result"]
