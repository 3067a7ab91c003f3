"""The root of every error a user can fix: a clear message, an exit code, never a traceback.

Each layer keeps its own subclass (StateError, ProviderError, SessionError, InventoryError, ...)
so callers can still tell them apart; the command line handles the root once.
"""

from __future__ import annotations

EXIT_ERROR = 1


class ReconcileError(Exception):
    """A problem the user fixes. `str()` is the message: one line naming the file, variable or
    provider at fault, never a secret value. `exit_code` is what the command exits with."""

    exit_code: int = EXIT_ERROR

    @property
    def user_message(self) -> str:
        """What the command line prints on stderr."""
        return f"error: {self}"


class DiagnosticsError(ReconcileError):
    """An error whose message is its own report (one diagnostic per line, each naming file, line
    and key): printed as it is, without the `error:` prefix."""

    @property
    def user_message(self) -> str:
        return str(self)
