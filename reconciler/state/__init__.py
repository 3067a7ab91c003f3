"""State: the ledger (which value each consumer last received), the escrow (values minted but not
yet delivered everywhere, encrypted) and the lock (one apply at a time), behind one store
interface with a local and a GitLab backend.

    store = open_store(inventory.state, inventory.providers, os.environ)
    with store.acquire(owner, wait=60):
        ledger = store.load_ledger()
        escrow = open_escrow(store, inventory.state, os.environ)
        ...
        store.save_ledger(ledger)
"""

from __future__ import annotations

from reconciler.state.errors import StateError
from reconciler.state.escrow import (
    Escrow,
    EscrowEntry,
    EscrowPending,
    escrow_available,
    escrow_key,
    generate_key,
    open_escrow,
    parse_key,
)
from reconciler.state.factory import open_store
from reconciler.state.ledger import InFlight, Ledger, LedgerRecord
from reconciler.state.local import LocalStore
from reconciler.state.store import LockHandle, LockInfo, StateStore

__all__ = [
    "Escrow",
    "EscrowEntry",
    "EscrowPending",
    "InFlight",
    "Ledger",
    "LedgerRecord",
    "LocalStore",
    "LockHandle",
    "LockInfo",
    "StateError",
    "StateStore",
    "escrow_available",
    "escrow_key",
    "generate_key",
    "open_escrow",
    "open_store",
    "parse_key",
]


def __getattr__(name: str):
    # GitLabStore imports python-gitlab: only when asked for
    if name == "GitLabStore":
        from reconciler.state.gitlab import GitLabStore

        return GitLabStore
    raise AttributeError(name)
