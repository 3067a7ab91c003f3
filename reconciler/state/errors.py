"""The one error type of the state layer."""

from __future__ import annotations

from reconciler.errors import ReconcileError


class StateError(ReconcileError):
    """A state problem (corrupt file, wrong escrow key, lock held...). Messages name the file or
    backend and never contain a secret value."""
