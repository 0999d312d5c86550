"""Host errors: each says which host failed and, in one line, what to check."""

from __future__ import annotations


class HostError(Exception):
    """A host could not do what was asked; `reason` is one line that says what to check."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class HostUnreachable(HostError):
    """No connection: refused, timed out, DNS, or the connection dropped mid-call."""


class CommandTimeout(HostUnreachable):
    """The connection was up but a command did not finish within its timeout."""


class HostKeyUnknown(HostError):
    """The host's key is not in lepton's known_hosts; it must be accepted explicitly."""

    def __init__(self, host: str, fingerprint: str, key_type: str = "") -> None:
        super().__init__(
            host,
            f"host key {key_type} {fingerprint} is not trusted yet; check it against the host "
            "(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and accept it with "
            "--accept-new-host-key or --fingerprint",
        )
        self.fingerprint = fingerprint
        self.key_type = key_type


class HostKeyChanged(HostError):
    """The host presented a different key from the one accepted at onboarding."""

    def __init__(self, host: str, expected: str, got: str) -> None:
        super().__init__(
            host,
            f"HOST KEY CHANGED: expected {expected}, got {got}; refusing to connect. Check whether "
            "the host was reinstalled or its address now points elsewhere; if the new key is right "
            "(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on its console), `lepton-tui hosts rm` it "
            f"and add it again with --fingerprint {got}",
        )
        self.expected = expected
        self.got = got


class AuthFailed(HostError):
    """The server refused the user or key (or the key could not be read)."""


class RemoteError(HostError):
    """Connected, but the remote side failed (python3 missing, bad output, refused request)."""
