"""Hosts: SSH and local transports, probing, remote job supervision. Never imports scheduler or lepton_tui.

- `hostspec`: HostSpec (how to reach a host; every field whitelisted).
- `transport`: Transport protocol, LocalTransport, SSHTransport (pooled paramiko), make_transport.
- `hostkeys`: fetch a host key, its SHA256 fingerprint, explicit trust in lepton's known_hosts.
- `probe`: HostSample/GpuSample in one round trip per host (in-process for the local host).
- `supervisor`: LaunchSpec, launch/launch_batch/launch_many, status, cancel/cancel_batch, read_log,
  kill_stale/kill_stale_batch.
- `preflight`: the onboarding checks, one line each, and the discovered capacity.
- `fanout`: fan_out(calls, timeout) -> {host: Ok(value) | Failed(reason)}; FanOut, one pool kept
  for a caller's lifetime (the dispatcher's), sized to the fleet.
- `agent_session`: the persistent host agent, one python3 per connection fed requests over its
  exec channel (`remote_call.agent_call` uses it, one-shot where it cannot run).
- `remote/agent.py`, `remote/wrapper.py`: the stdlib-only programs that run on the hosts.
"""

import logging as _logging

# paramiko logs a handshake failure with a traceback from its transport thread; with no handler
# configured Python would print that on stderr (over the console's screen, after the CLI's one
# line). Every such failure already reaches the caller as a HostError with a clear reason.
_logging.getLogger("paramiko").addHandler(_logging.NullHandler())
