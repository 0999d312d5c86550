"""The errors that reach users: each carries one clear line and an exit code."""

from __future__ import annotations


class LeptonError(Exception):
    """A runtime failure the user can act on; the CLI prints it as one line and exits 1."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ValidationError(LeptonError):
    """Bad input: the CLI exits 2 (usage), forms show it inline. Nothing was written."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, field: str | None = None) -> None:
        super().__init__(message, hint)
        self.field = field


class NotFound(LeptonError):
    """A job, host or setting that does not exist."""


class PermissionDenied(LeptonError):
    """The caller may not do this (for example cancel another user's job without being admin)."""


class LedgerError(LeptonError):
    """The ledger cannot be opened or written (not SQLite, newer schema, read-only directory)."""


class IllegalTransition(LeptonError):
    """A job or attempt state change the state machine forbids; nothing was written."""
