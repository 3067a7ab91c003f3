"""The store interface every state backend implements, and the lock it hands out.

A store keeps two documents, the ledger and the escrow, and one lock. The apply holds the lock
from before it reads the ledger until after it has written its last record, so two applies never
rotate the same token twice.

A lock names its holder (host, PID, the CI job when there is one) and carries a lease: it is
valid until `expires`, and the holder renews it from a background thread every third of
`LEASE_SECONDS` for as long as it holds it (the main thread may sit in a long request or at the
confirmation prompt, so renewing only between tokens could let a live apply's lease run out). A
lock whose holder is provably gone (same host and PID space, its PID no longer exists: containers
that share a host name have different PID namespaces, told apart) or whose lease ran out
(the holder was killed, or its machine vanished) is taken over by the next apply, with a message
naming the old holder; any other lock is respected.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.state.errors import StateError
from reconciler.state.ledger import Ledger

LEASE_SECONDS = 300.0  # a lock not renewed for this long is taken over


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def process_gone(pid: int) -> bool:
    """No process `pid` exists on this host (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists, owned by someone else
        return False
    return False


def process_space() -> str:
    """Which PIDs are comparable with ours: this boot of the kernel and our PID namespace (two
    containers may share a host name, never a PID namespace). "" where Linux's /proc is absent."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()[:8]
        return f"{boot}-{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def default_owner() -> str:
    """Who is applying, for lock messages: the CI job when there is one, else user@host."""
    job = os.environ.get("CI_JOB_URL")
    if job:
        return job
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


@dataclass(frozen=True)
class LockInfo:
    """Who holds a lock. `id` is the lock's own random id (never a credential); `host`, `pid` and
    `job` (CI_JOB_URL) name the holder's process, `expires` ends its lease ("" when unknown)."""

    id: str
    owner: str
    created: str  # ISO time the lock was taken
    host: str = ""
    pid: int = 0
    space: str = ""  # process_space() of the holder
    job: str = ""
    expires: str = ""

    @classmethod
    def new(cls, owner: str, lease: float = LEASE_SECONDS) -> LockInfo:
        return cls(id=str(uuid.uuid4()), owner=owner, created=utc_now(), host=socket.gethostname(),
                   pid=os.getpid(), space=process_space(), job=os.environ.get("CI_JOB_URL", ""), expires=_iso_in(lease))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockInfo:
        """A lock record; KeyError/TypeError/ValueError when it is not one. Records written before
        locks had holders and leases have only id, owner and created."""
        return cls(id=str(data["id"]), owner=str(data["owner"]), created=str(data["created"]),
                   host=str(data.get("host") or ""), pid=int(data.get("pid") or 0), space=str(data.get("space") or ""),
                   job=str(data.get("job") or ""),
                   expires=str(data.get("expires") or ""))

    def renewed(self, lease: float = LEASE_SECONDS) -> LockInfo:
        return replace(self, expires=_iso_in(lease))

    def stale_reason(self) -> str | None:
        """Why this lock's holder is provably not running any more, or None (respect the lock)."""
        expires = _parse_iso(self.expires) if self.expires else None
        if expires is not None and expires < datetime.now(UTC):
            return f"its lease ran out at {self.expires}"
        if self.pid > 0 and self.same_process_space() and process_gone(self.pid):
            return f"its process {self.pid} on this host ({self.host}) no longer exists"
        return None

    def same_process_space(self) -> bool:
        """Its PID means the same process here: same host name and PID space."""
        return bool(self.host) and self.host == socket.gethostname() and self.space == process_space()

    def describe(self) -> str:
        where = [f"job {self.job}"] if self.job else []
        where += [f"pid {self.pid} on {self.host}"] if self.pid and self.host else []
        where += [f"lease until {self.expires}"] if self.expires else []
        extra = f"; {', '.join(where)}" if where else ""
        return f"held by {self.owner} since {self.created} (lock id {self.id}{extra})"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "owner": self.owner, "created": self.created}
        if self.host:
            data.update(host=self.host, pid=self.pid, space=self.space)
        if self.job:
            data["job"] = self.job
        if self.expires:
            data["expires"] = self.expires
        return data


class LockHandle:
    """A held lock; release it (or use it as a context manager) when the apply is done. While it
    is held a daemon thread renews its lease (`renew_every` seconds; 0: never)."""

    def __init__(self, store: StateStore, info: LockInfo, *, taken_over: str | None = None,
                 renew_every: float = 0.0) -> None:
        self.store = store
        self.info = info
        self.released = False
        self.taken_over = taken_over  # the message when a stale lock was taken over
        self.renew_error: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        if renew_every > 0:
            self._renewer = threading.Thread(target=self._keep_renewing, args=(renew_every,),
                                             name="reconcile-lock-lease", daemon=True)
            self._renewer.start()

    @property
    def id(self) -> str:
        return self.info.id

    def renew(self) -> None:
        self.info = self.info.renewed(self.store.lease)
        self.store._renew(self.info)

    def _keep_renewing(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.renew()
                self.renew_error = None
            except StateError as err:  # tried again next period; the lease has room for misses
                self.renew_error = str(err)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=30)
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
    lease: float = LEASE_SECONDS
    # what a person runs to remove this store's lock; the CLI names the --sandbox state exactly
    unlock_command: str = "reconcile state unlock --force"

    # --- documents -----------------------------------------------------------------------------

    @abstractmethod
    def load_ledger(self) -> Ledger:
        """The ledger; empty when none was saved yet. StateError when it is corrupt."""

    @abstractmethod
    def save_ledger(self, ledger: Ledger, *, durable: bool = True) -> None:
        """Save the ledger, atomically: a reader sees the old or the new one, never half. A store
        may save only what changed since the ledger it loaded or saved last (`Ledger.changes`).
        `durable`: on stable storage when this returns (what an apply needs before a mint, a
        delete or a revoke); otherwise the store may keep it until the next durable save or
        `compact_ledger` (a consumer's record after its write: a crash before then leaves the
        token's in-flight record and escrow, and the next apply writes that consumer again)."""

    def compact_ledger(self, ledger: Ledger) -> None:
        """The end of a session: the whole ledger saved durably in its compact form."""
        self.save_ledger(ledger)

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

    def _new_lock(self, owner: str) -> LockInfo:
        return LockInfo.new(owner, self.lease)

    @abstractmethod
    def _try_lock(self, info: LockInfo) -> LockInfo | None:
        """Take the lock as `info`; None on success, else the current holder."""

    @abstractmethod
    def _release(self, info: LockInfo) -> None:
        """Release the lock `info` holds; StateError if someone else holds it now."""

    @abstractmethod
    def _renew(self, info: LockInfo) -> None:
        """Extend the lease of the lock `info` holds (its `expires` is the new end)."""

    @abstractmethod
    def _take_over(self, stale: LockInfo, info: LockInfo) -> bool:
        """Remove the lock if `stale` still holds it and take it as `info`; False when someone
        else holds it by now."""

    @abstractmethod
    def lock_holder(self) -> LockInfo | None:
        """Who holds the lock now, or None when it is free."""

    @abstractmethod
    def force_unlock(self) -> LockInfo | None:
        """Remove the lock whoever holds it (a stale lock after a crash); returns who held it."""

    def acquire(self, owner: str | None = None, wait: float = 0.0,
                stop: Callable[[], bool] | None = None) -> LockHandle:
        """Take the lock, waiting up to `wait` seconds for a holder to release it (`stop()` true
        ends the wait at once). A holder provably gone is taken over (`LockHandle.taken_over`
        says whose lock it was). Raises StateError naming the holder and since when if it is
        still held after that."""
        info = self._new_lock(owner or default_owner())
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            holder = self._try_lock(info)
            if holder is None:
                return LockHandle(self, info, renew_every=self.lease / 3)
            reason = holder.stale_reason()
            if reason and self._take_over(holder, info):
                message = f"{self.where}: took over the lock {holder.describe()}: {reason}"
                return LockHandle(self, info, taken_over=message, renew_every=self.lease / 3)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (stop is not None and stop()):
                waited = f" after waiting {wait:g}s" if wait > 0 else ""
                raise StateError(
                    f"{self.where}: the state is locked{waited}: {holder.describe()}. Another apply "
                    f"is running; if none is (a crashed run on another machine), remove the lock with "
                    f"`{self.unlock_command}`"
                )
            time.sleep(min(self.poll_interval, remaining))
