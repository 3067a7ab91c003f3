"""The store interface every state backend implements, and the lock it hands out.

A store keeps two documents, the ledger and the escrow, and one lock. The apply holds the lock
from before it reads the ledger until after it has written its last record, so two applies never
rotate the same token twice.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.state.errors import StateError
from reconciler.state.ledger import Ledger


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_owner() -> str:
    """Who is applying, for lock messages: the CI job when there is one, else user@host."""
    job = os.environ.get("CI_JOB_URL")
    if job:
        return job
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


@dataclass(frozen=True)
class LockInfo:
    """Who holds a lock. `id` is the lock's own random id (never a credential)."""

    id: str
    owner: str
    created: str  # ISO time the lock was taken

    @classmethod
    def new(cls, owner: str) -> LockInfo:
        return cls(id=str(uuid.uuid4()), owner=owner, created=utc_now())

    def describe(self) -> str:
        return f"held by {self.owner} since {self.created} (lock id {self.id})"

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "owner": self.owner, "created": self.created}


class LockHandle:
    """A held lock; release it (or use it as a context manager) when the apply is done."""

    def __init__(self, store: StateStore, info: LockInfo) -> None:
        self.store = store
        self.info = info
        self.released = False

    @property
    def id(self) -> str:
        return self.info.id

    def release(self) -> None:
        if not self.released:
            self.store._release(self.info)
            self.released = True

    def __enter__(self) -> LockHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"LockHandle({self.store.where}, {self.info.describe()})"


class StateStore(ABC):
    """Ledger, escrow document and lock of one backend. `where` names it in every message."""

    where: str
    poll_interval: float = 0.1  # seconds between lock attempts while waiting

    # --- documents -----------------------------------------------------------------------------

    @abstractmethod
    def load_ledger(self) -> Ledger:
        """The ledger; empty when none was saved yet. StateError when it is corrupt."""

    @abstractmethod
    def save_ledger(self, ledger: Ledger) -> None:
        """Replace the ledger, atomically: a reader sees the old or the new one, never half."""

    @abstractmethod
    def load_escrow_doc(self) -> dict[str, Any] | None:
        """The escrow's stored document (ciphertexts and metadata), None when none was saved."""

    @abstractmethod
    def save_escrow_doc(self, doc: dict[str, Any]) -> None:
        """Replace the escrow document atomically and durably (it may hold the only copy of a
        value that was just minted)."""

    def continue_with(self, old: str | None, new: Any) -> bool:
        """After apply rotated a provider credential in place (`old`, now revoked; `new`, a
        Secret): a store that authenticates with it sends everything from here on with `new`.
        False: this store does not use that credential (the local file store uses none)."""
        return False

    # --- lock ----------------------------------------------------------------------------------

    @abstractmethod
    def _try_lock(self, info: LockInfo) -> LockInfo | None:
        """Take the lock as `info`; None on success, else the current holder."""

    @abstractmethod
    def _release(self, info: LockInfo) -> None:
        """Release the lock `info` holds; StateError if someone else holds it now."""

    @abstractmethod
    def lock_holder(self) -> LockInfo | None:
        """Who holds the lock now, or None when it is free."""

    @abstractmethod
    def force_unlock(self) -> LockInfo | None:
        """Remove the lock whoever holds it (a stale lock after a crash); returns who held it."""

    def acquire(self, owner: str | None = None, wait: float = 0.0) -> LockHandle:
        """Take the lock, waiting up to `wait` seconds for a holder to release it. Raises
        StateError naming the holder and since when if it is still held after that."""
        info = LockInfo.new(owner or default_owner())
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            holder = self._try_lock(info)
            if holder is None:
                return LockHandle(self, info)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waited = f" after waiting {wait:g}s" if wait > 0 else ""
                raise StateError(
                    f"{self.where}: the state is locked{waited}: {holder.describe()}. Another apply "
                    "is running; if none is (a crashed run), remove the lock with "
                    "`reconcile state unlock --force`"
                )
            time.sleep(min(self.poll_interval, remaining))
