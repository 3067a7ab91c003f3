"""The local state backend: a directory (default `.reconcile/`) with ledger.json, escrow.json and
a lock file.

Every document write goes to a temporary file in the same directory, is fsynced and renamed over
the old one, so a crash leaves the old or the new document, never half of one. The lock file is
created complete and atomically with a hard link, so a reader never sees an empty lock.

The ledger is saved after every consumer write of an apply; rewriting the whole file each time
costs O(estate) per save. So a save of the ledger this store loaded (or saved whole) last
appends only what changed to `ledger.journal`, one JSON line per save (fsynced when durable),
and `compact_ledger` (at the end of an apply, or once the journal outgrows the ledger) writes
ledger.json whole and removes the journal. Loading replays the journal over ledger.json. Entries
are idempotent, so a crash between the rename and the removal replays them harmlessly; a last
line without its newline is a save cut short by a crash (its caller never went on) and is
ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from reconciler.state.errors import StateError
from reconciler.state.ledger import Ledger
from reconciler.state.store import LockInfo, StateStore

LEDGER_FILE = "ledger.json"
JOURNAL_FILE = "ledger.journal"
ESCROW_FILE = "escrow.json"
LOCK_FILE = "lock"


class LocalStore(StateStore):
    poll_interval = 0.05

    def __init__(self, directory: str | os.PathLike[str] = ".reconcile") -> None:
        self.dir = Path(directory)
        self.where = f"local state {self.dir}/"
        self.unlock_command = f"reconcile state unlock --force --state-dir {self.dir}"
        self._journaled: Ledger | None = None  # the ledger ledger.json + the journal hold
        self._journal_lines = 0

    @property
    def ledger_path(self) -> Path:
        return self.dir / LEDGER_FILE

    @property
    def escrow_path(self) -> Path:
        return self.dir / ESCROW_FILE

    @property
    def lock_path(self) -> Path:
        return self.dir / LOCK_FILE

    # --- documents -----------------------------------------------------------------------------

    @property
    def journal_path(self) -> Path:
        return self.dir / JOURNAL_FILE

    def load_ledger(self) -> Ledger:
        data = self._read_json(self.ledger_path, "ledger")
        ledger = Ledger() if data is None else Ledger.from_json(data, where=str(self.ledger_path))
        self._journal_lines = self._replay_journal(ledger)
        ledger.mark_saved()
        self._journaled = ledger
        return ledger

    def _replay_journal(self, ledger: Ledger) -> int:
        try:
            raw = self.journal_path.read_bytes()
        except FileNotFoundError:
            return 0
        except OSError as err:
            raise StateError(f"{self.journal_path}: cannot read the ledger journal: {err.strerror}") from None
        lines = raw.split(b"\n")
        complete = lines[:-1]  # the last piece has no newline: empty, or a save cut short by a crash
        if lines[-1]:
            self._cut_journal(len(raw) - len(lines[-1]))  # the next append starts on a line of its own
        for number, line in enumerate(complete, start=1):
            where = f"{self.journal_path}: line {number}"
            try:
                entry = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise StateError(f"{where}: corrupt ledger journal: not valid JSON "
                                 f"({getattr(err, 'msg', type(err).__name__)})") from None
            ledger.replay(entry, where)
        return len(complete)

    def save_ledger(self, ledger: Ledger, *, durable: bool = True) -> None:
        if ledger is not self._journaled:
            self.compact_ledger(ledger)
            return
        with ledger.mutex:
            entry = ledger.changes()
            if entry is None:
                if durable:
                    self._fsync_journal()
                return
            if self._journal_lines > max(1000, len(ledger)):  # amortised: the journal never outgrows the ledger by much
                self.compact_ledger(ledger)
                return
            self._append_journal(entry, durable)
            ledger.mark_saved()

    def compact_ledger(self, ledger: Ledger) -> None:
        with ledger.mutex:
            self._write_json(self.ledger_path, ledger.to_json())
            ledger.mark_saved()
            try:
                self.journal_path.unlink()
            except FileNotFoundError:
                pass
            except OSError as err:
                raise StateError(f"{self.journal_path}: cannot remove the ledger journal: {err.strerror}") from None
            self._journaled, self._journal_lines = ledger, 0

    def _append_journal(self, entry: dict[str, Any], durable: bool) -> None:
        self._ensure_dir()
        line = (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode()
        try:
            created = not self.journal_path.exists()
            fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                self._fsync_dir()
        except OSError as err:
            raise StateError(f"{self.journal_path}: cannot write: {err.strerror}") from None
        self._journal_lines += 1

    def _cut_journal(self, size: int) -> None:
        try:
            os.truncate(self.journal_path, size)
        except OSError as err:
            raise StateError(f"{self.journal_path}: cannot repair the ledger journal: {err.strerror}") from None

    def _fsync_journal(self) -> None:
        try:
            fd = os.open(self.journal_path, os.O_RDONLY)
        except FileNotFoundError:
            return
        except OSError as err:
            raise StateError(f"{self.journal_path}: cannot write: {err.strerror}") from None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def load_escrow_doc(self) -> dict[str, Any] | None:
        data = self._read_json(self.escrow_path, "escrow")
        if data is not None and not isinstance(data, dict):
            raise StateError(f"{self.escrow_path}: corrupt escrow: expected a JSON object")
        return data

    def save_escrow_doc(self, doc: dict[str, Any]) -> None:
        self._write_json(self.escrow_path, doc)

    def _read_json(self, path: Path, what: str) -> Any:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as err:
            raise StateError(f"{path}: cannot read the {what}: {type(err).__name__}") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            # err.msg and the position only: the text itself is never quoted
            raise StateError(
                f"{path}: corrupt {what}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})"
            ) from None

    def _ensure_dir(self) -> None:
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as err:
            raise StateError(f"{self.where}: cannot create the state directory: {err.strerror}") from None

    def _write_json(self, path: Path, data: Any) -> None:
        self._ensure_dir()
        payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
        try:
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(payload)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._fsync_dir()
        except OSError as err:
            raise StateError(f"{path}: cannot write: {err.strerror}") from None

    def _fsync_dir(self) -> None:
        # the rename is durable only once the directory entry is on disk
        with contextlib.suppress(OSError):
            fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # --- lock ----------------------------------------------------------------------------------

    def _try_lock(self, info: LockInfo) -> LockInfo | None:
        try:
            return self._link_lock(info)
        except OSError as err:
            raise StateError(f"{self.lock_path}: cannot take the lock: {err.strerror}") from None

    def _link_lock(self, info: LockInfo) -> LockInfo | None:
        self._ensure_dir()
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".lock.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(info.to_json(), f)
                f.flush()
                os.fsync(f.fileno())
            for _ in range(3):
                try:
                    os.link(tmp, self.lock_path)  # atomic: fails when the lock exists
                    break
                except FileExistsError:
                    holder = self.lock_holder()
                    if holder is not None:
                        return holder
                    # released between our attempt and the read: try again at once
            else:
                return LockInfo(id="?", owner="another process (the lock is contended)", created="?")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self._fsync_dir()
        return None

    def _release(self, info: LockInfo) -> None:
        holder = self.lock_holder()
        if holder is None:
            return  # already removed, e.g. by `unlock --force`
        if holder.id != info.id:
            raise StateError(f"{self.lock_path}: cannot release: the lock is now {holder.describe()}")
        try:
            self.lock_path.unlink()
        except FileNotFoundError:
            pass
        except OSError as err:
            raise StateError(f"{self.lock_path}: cannot release the lock: {err.strerror}") from None

    def lock_holder(self) -> LockInfo | None:
        try:
            data = json.loads(self.lock_path.read_text(encoding="utf-8"))
            return LockInfo.from_json(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return LockInfo(id="?", owner=f"unknown (unreadable lock file {self.lock_path})", created="?")

    def _renew(self, info: LockInfo) -> None:
        """Rewrite the lock file with `info` (same id, later lease) while it is still ours.

        In place, through a handle on the file we read: a replace would create the lock again
        after `unlock --force` removed it, and take it back from whoever acquired it since. Once
        the file is unlinked our handle writes to nothing anyone reads. One write of the whole
        document (the same length but for the lease) keeps a reader from seeing it half written."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR)
        except FileNotFoundError:
            raise StateError(f"{self.lock_path}: cannot renew the lease: the lock is no longer ours") from None
        except OSError as err:
            raise StateError(f"{self.lock_path}: cannot renew the lease: {err.strerror}") from None
        with os.fdopen(fd, "r+b") as f:
            try:
                held = LockInfo.from_json(json.loads(f.read().decode("utf-8")))
            except (ValueError, KeyError, TypeError, AttributeError):
                held = None
            if held is None or held.id != info.id:
                raise StateError(f"{self.lock_path}: cannot renew the lease: the lock is no longer ours")
            try:
                body = json.dumps(info.to_json()).encode("utf-8")
                os.pwrite(f.fileno(), body, 0)
                f.truncate(len(body))
                os.fsync(f.fileno())
            except OSError as err:
                raise StateError(f"{self.lock_path}: cannot renew the lease: {err.strerror}") from None

    def _take_over(self, stale: LockInfo, info: LockInfo) -> bool:
        """Move the lock file aside (atomic), and drop it only when it is still `stale`'s: a lock
        taken meanwhile by a live apply is put back."""
        aside = self.dir / f".lock.{info.id}.stale"
        try:
            os.rename(self.lock_path, aside)
        except FileNotFoundError:
            return self._try_lock(info) is None
        except OSError as err:
            raise StateError(f"{self.lock_path}: cannot take over the lock: {err.strerror}") from None
        try:
            moved = json.loads(aside.read_text(encoding="utf-8"))
            ours_to_drop = isinstance(moved, dict) and str(moved.get("id")) == stale.id
        except (OSError, ValueError):
            ours_to_drop = stale.id == "?"  # the unreadable file we judged
        if not ours_to_drop:
            with contextlib.suppress(OSError):
                os.link(aside, self.lock_path)  # put it back, unless yet another lock exists
        with contextlib.suppress(OSError):
            os.unlink(aside)
        return ours_to_drop and self._try_lock(info) is None

    def force_unlock(self) -> LockInfo | None:
        holder = self.lock_holder()
        try:
            self.lock_path.unlink()
        except FileNotFoundError:
            pass
        except OSError as err:
            raise StateError(f"{self.lock_path}: cannot remove the lock: {err.strerror}") from None
        return holder
