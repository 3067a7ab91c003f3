"""The ledger: per consumer, which token instance it last received; never a value.

Only the live id and creation time of the token instance a consumer received and a SHA-256
fingerprint of what was written. It lets the planner know the state of write-only consumers
("unverifiable" is a state, not a guess). Each record says how it was established: `delivered`
(apply wrote the value), `verified` (`reconcile adopt` read the value back and its provider
identified it as the live token) or `asserted` (a person told `reconcile adopt` that a place
nothing can read holds the live token), when (`delivered_at`) and by which command. Beside the records it keeps the in-flight records:
what an apply started and has not finished, so the next apply after a crash finishes it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar, Literal

from reconciler.state.errors import StateError

# --- ledger ----------------------------------------------------------------------------------

LEDGER_VERSION = 1

Established = Literal["delivered", "verified", "asserted"]


@dataclass(frozen=True, slots=True)  # slots: a ledger holds a record per consumer (50,000 and more)
class LedgerRecord:
    """What one consumer last received; never a value."""

    consumer: str  # Consumer.identity
    token: str  # inventory token name
    token_id: str  # live id of the token instance delivered
    token_created_at: str  # ISO time of that instance
    fingerprint: str  # Secret.fingerprint() of the value as held (after the template); "" when never read
    delivered_at: str  # ISO: when the record was established (the delivery, or the adoption)
    verified: bool  # read back / authenticated (after writing, or by adopt)
    established: Established = "delivered"
    established_by: str = "reconcile apply"  # the command that made the record

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# Records written before `established` existed were all made by apply: the defaults.
_OPTIONAL_FIELDS = {"established", "established_by"}
_RECORD_FIELDS = {f.name: (bool if f.name == "verified" else str) for f in fields(LedgerRecord)}
ESTABLISHED = ("delivered", "verified", "asserted")

# --- in-flight records -------------------------------------------------------------------------

Operation = Literal["overlap", "rotate"]
HookCopy = Mapping[str, Any]  # a webhook as its API listed it, saved before a recreate deletes it


@dataclass(frozen=True)
class InFlight:
    """What an apply started for one token and has not finished: ids and times, never a value.

    `op` "overlap": a new token is minted beside the live ones, `old_ids`, which are revoked once
    every consumer has the new one. `op` "rotate": `old_id` is rotated in place (a rotation whose
    answer is lost leaves the consumers with a revoked value). `new_id`: the instance minted or
    rotated to, once its answer arrived. `recreating`: per consumer identity, the copy of a
    webhook saved before a recreate deleted it, until it is created again. Records written before
    the version field existed have the shape of version 1 and read as such.
    """

    VERSION: ClassVar[int] = 1

    op: Operation | None = None
    old_ids: tuple[str, ...] = ()
    old_id: str | None = None
    new_id: str | None = None
    started_at: str | None = None
    recreating: Mapping[str, HookCopy] = field(default_factory=dict)

    # -- the steps of an apply, each a new record ----------------------------------------------

    def overlapping(self, old_ids: Iterable[str], started_at: str) -> InFlight:
        """A mint beside `old_ids` is about to be sent."""
        return replace(self, op="overlap", old_ids=tuple(sorted(old_ids)), started_at=started_at, new_id=None)

    def rotating(self, old_id: str, started_at: str) -> InFlight:
        """A rotation of `old_id` in place is about to be sent."""
        return replace(self, op="rotate", old_id=old_id, started_at=started_at, new_id=None)

    def rotating_again(self, old_id: str) -> InFlight:
        """The successor `old_id` of a rotation whose answer was lost is rotated once more."""
        return replace(self, old_id=old_id)

    def minted(self, new_id: str) -> InFlight:
        return replace(self, new_id=new_id)

    def keeping(self, identity: str, copy: HookCopy) -> InFlight:
        """A webhook is about to be deleted for a recreate: its copy, until it is created again."""
        return replace(self, recreating={**self.recreating, identity: dict(copy)})

    def recreated(self, identity: str) -> InFlight:
        return replace(self, recreating={k: v for k, v in self.recreating.items() if k != identity})

    # -- storage ------------------------------------------------------------------------------

    def for_storage(self) -> dict[str, Any]:
        """The JSON object kept in the ledger: only the fields that are set, and the version."""
        data: dict[str, Any] = {"version": self.VERSION}
        if self.op is not None:
            data["op"] = self.op
        if self.old_ids:
            data["old_ids"] = list(self.old_ids)
        for name in ("old_id", "new_id", "started_at"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.recreating:
            data["recreating"] = {k: dict(v) for k, v in sorted(self.recreating.items())}
        return data

    @classmethod
    def from_storage(cls, data: Any, where: str) -> InFlight:
        """The record from its JSON object. `where` names the ledger and the token in the
        StateError raised for a corrupt record or one written by a newer release."""
        if not isinstance(data, dict):
            raise StateError(f"{where}: corrupt: expected an object, got {type(data).__name__}")
        _check_version(data.get("version", 1), cls.VERSION, where)
        unknown = sorted(set(data) - _IN_FLIGHT_KEYS)
        if unknown:
            raise StateError(f"{where}: corrupt: unknown field(s) {', '.join(map(repr, unknown))}")
        op = data.get("op")
        if op not in (None, "overlap", "rotate"):
            raise StateError(f"{where}: corrupt: 'op' must be \"overlap\" or \"rotate\", got {op!r}")
        old_ids = data.get("old_ids", [])
        if not isinstance(old_ids, list) or not all(_is_id(i) for i in old_ids):
            raise StateError(f"{where}: corrupt: 'old_ids' must be a list of ids (text or numbers)")
        return cls(
            op=op,
            old_ids=tuple(str(i) for i in old_ids),
            old_id=_optional_id(data, "old_id", where),
            new_id=_optional_id(data, "new_id", where),
            started_at=_optional_text(data, "started_at", where),
            recreating=_hook_copies(data.get("recreating", {}), where),
        )


_IN_FLIGHT_KEYS = {"version", "op", "old_ids", "old_id", "new_id", "started_at", "recreating"}


@dataclass(frozen=True)
class KeptUntilQuiet:
    """A live token apply did not revoke because it was in use, or a use could not be excluded
    (reconciler.quiet): the next apply revokes it once it is quiet. An id, times and the reason,
    never a value."""

    VERSION: ClassVar[int] = 1

    token_id: str
    kept_at: str  # ISO: when apply kept it
    why: str  # the reason apply gave
    last_used_at: str | None = None  # ISO: the last use its provider recorded then

    def for_storage(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": self.VERSION, "token_id": self.token_id, "kept_at": self.kept_at,
                                "why": self.why}
        if self.last_used_at is not None:
            data["last_used_at"] = self.last_used_at
        return data

    @classmethod
    def from_storage(cls, data: Any, where: str) -> KeptUntilQuiet:
        if not isinstance(data, dict):
            raise StateError(f"{where}: corrupt: expected an object, got {type(data).__name__}")
        _check_version(data.get("version", 1), cls.VERSION, where)
        unknown = sorted(set(data) - {"version", "token_id", "kept_at", "why", "last_used_at"})
        if unknown:
            raise StateError(f"{where}: corrupt: unknown field(s) {', '.join(map(repr, unknown))}")
        token_id = _optional_id(data, "token_id", where)
        kept_at, why = _optional_text(data, "kept_at", where), _optional_text(data, "why", where)
        if token_id is None or kept_at is None or why is None:
            raise StateError(f"{where}: corrupt: 'token_id', 'kept_at' and 'why' are required")
        return cls(token_id=token_id, kept_at=kept_at, why=why,
                   last_used_at=_optional_text(data, "last_used_at", where))


def _check_version(version: Any, current: int, where: str) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StateError(f"{where}: corrupt: 'version' must be a positive integer, got {version!r}")
    if version > current:
        raise StateError(f"{where}: written by a newer release of reconcile (record version {version}, this "
                         f"release reads up to {current}): upgrade reconcile to finish the interrupted apply")


def _is_id(value: Any) -> bool:
    # live ids are written as text; a number is the same id
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _optional_id(data: dict[str, Any], name: str, where: str) -> str | None:
    value = data.get(name)
    if value is None or _is_id(value):
        return None if value is None else str(value)
    raise StateError(f"{where}: corrupt: {name!r} must be an id (text or a number), got {type(value).__name__}")


def _optional_text(data: dict[str, Any], name: str, where: str) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise StateError(f"{where}: corrupt: {name!r} must be text, got {type(value).__name__}")


def _hook_copies(value: Any, where: str) -> dict[str, HookCopy]:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise StateError(f"{where}: corrupt: 'recreating' must map consumer identities to objects")
    return {str(k): dict(v) for k, v in value.items()}


# --- the ledger ----------------------------------------------------------------------------------


class Ledger:
    """Mapping consumer identity -> LedgerRecord; JSON (de)serialisable.

    `in_flight` maps a token name to its InFlight record while an apply's work on it is
    unfinished. `kept` maps a token name to the live tokens of it apply kept until quiet, by id.
    Both are saved as optional keys (`in_flight`, `kept`); ledgers without them read as before.
    """

    def __init__(self, records: list[LedgerRecord] | None = None,
                 in_flight: Mapping[str, InFlight] | None = None,
                 kept: Mapping[str, Mapping[str, KeptUntilQuiet]] | None = None) -> None:
        self._records: dict[str, LedgerRecord] = {}
        self.in_flight: dict[str, InFlight] = dict(in_flight or {})
        self.kept: dict[str, dict[str, KeptUntilQuiet]] = {k: dict(v) for k, v in (kept or {}).items()}
        # what changed since `mark_saved()`: a store appends only that (a journal), so saving
        # after each of N consumer writes costs O(N) in all, not O(N x estate)
        self._changed: set[str] = set()
        self._flights_saved: dict[str, InFlight] = {}
        self._kept_saved: dict[str, dict[str, KeptUntilQuiet]] = {}
        self._mutex = threading.RLock()  # apply records from several threads
        for rec in records or ():
            self.record(rec)

    def get(self, consumer: str) -> LedgerRecord | None:
        return self._records.get(consumer)

    def record(self, rec: LedgerRecord) -> None:
        with self._mutex:
            self._records[rec.consumer] = rec
            self._changed.add(rec.consumer)

    def forget(self, consumer: str) -> None:
        with self._mutex:
            self._records.pop(consumer, None)
            self._changed.add(consumer)

    @property
    def mutex(self) -> threading.RLock:
        """Held while the ledger is changed or serialised from more than one thread."""
        return self._mutex

    # -- the journal: changes since the last save -------------------------------------------------

    def changes(self) -> dict[str, Any] | None:
        """The changes since `mark_saved()` as one JSON object (a journal entry), None when none:
        `records` maps consumer identities to their record (null: forgotten), `in_flight` token
        names to their in-flight record (null: finished), `kept` token names to the live tokens
        apply keeps until quiet (null: none any more)."""
        with self._mutex:
            flights: dict[str, dict[str, Any] | None] = {
                name: flight.for_storage() for name, flight in self.in_flight.items()
                if self._flights_saved.get(name) != flight}
            flights.update({name: None for name in self._flights_saved if name not in self.in_flight})
            kept: dict[str, dict[str, Any] | None] = {
                name: _kept_json(ids) for name, ids in self.kept.items() if self._kept_saved.get(name) != ids}
            kept.update({name: None for name in self._kept_saved if name not in self.kept})
            if not self._changed and not flights and not kept:
                return None
            records = {c: (self._records[c].to_json() if c in self._records else None) for c in sorted(self._changed)}
            entry = {"records": records, "in_flight": dict(sorted(flights.items()))}
            return {**entry, "kept": dict(sorted(kept.items()))} if kept else entry

    def mark_saved(self) -> None:
        """Everything as it is now is saved: `changes()` starts again from here."""
        with self._mutex:
            self._changed.clear()
            self._flights_saved = dict(self.in_flight)
            self._kept_saved = {name: dict(ids) for name, ids in self.kept.items()}

    def replay(self, entry: Any, where: str) -> None:
        """Apply one journal entry (`changes()` output). Entries are idempotent: replaying one
        over a ledger that already holds it changes nothing."""
        if not isinstance(entry, dict) or not isinstance(entry.get("records", {}), dict) \
                or not isinstance(entry.get("in_flight", {}), dict):
            raise StateError(f"{where}: corrupt journal entry: expected an object of 'records' and 'in_flight'")
        for consumer, item in entry.get("records", {}).items():
            if item is None:
                self.forget(str(consumer))
                continue
            rec = _record(item, f"{where}: corrupt journal entry: record of {consumer!r}")
            if rec.consumer != consumer:
                raise StateError(f"{where}: corrupt journal entry: record of {consumer!r} names {rec.consumer!r}")
            self.record(rec)
        for token, data in entry.get("in_flight", {}).items():
            if data is None:
                self.in_flight.pop(str(token), None)
            else:
                self.in_flight[str(token)] = InFlight.from_storage(data, f"{where}: in-flight record of token {token!r}")
        kept = entry.get("kept", {})
        if not isinstance(kept, dict):
            raise StateError(f"{where}: corrupt journal entry: 'kept' must be an object")
        for token, ids in kept.items():
            if ids is None:
                self.kept.pop(str(token), None)
            else:
                self.kept.update(_kept({token: ids}, where))

    def records(self) -> list[LedgerRecord]:
        return [self._records[k] for k in sorted(self._records)]

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, consumer: object) -> bool:
        return consumer in self._records

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ledger):
            return NotImplemented
        return self._records == other._records and self.in_flight == other.in_flight and self.kept == other.kept

    def keep(self, token: str, kept: KeptUntilQuiet) -> None:
        """Record that apply kept the live token `kept.token_id` of `token` until quiet."""
        with self._mutex:
            self.kept[token] = {**self.kept.get(token, {}), kept.token_id: kept}

    def release(self, token: str, token_id: str) -> None:
        """Forget a kept token (revoked, or gone)."""
        with self._mutex:
            ids = {i: k for i, k in self.kept.get(token, {}).items() if i != token_id}
            if ids:
                self.kept[token] = ids
            else:
                self.kept.pop(token, None)

    def to_json(self) -> dict[str, Any]:
        with self._mutex:
            data: dict[str, Any] = {"version": LEDGER_VERSION, "records": [r.to_json() for r in self.records()]}
            if self.in_flight:
                data["in_flight"] = {k: v.for_storage() for k, v in sorted(self.in_flight.items())}
            if self.kept:
                data["kept"] = {token: _kept_json(ids) for token, ids in sorted(self.kept.items())}
            return data

    @classmethod
    def from_json(cls, data: Any, where: str = "ledger") -> Ledger:
        """Build a ledger from `to_json()` output; `where` names the file/backend in errors."""
        if not isinstance(data, dict):
            raise StateError(f"{where}: corrupt ledger: expected a JSON object, got {type(data).__name__}")
        version = data.get("version")
        if version != LEDGER_VERSION:
            raise StateError(f"{where}: unsupported ledger version {version!r} (expected {LEDGER_VERSION})")
        raw = data.get("records")
        if not isinstance(raw, list):
            raise StateError(f"{where}: corrupt ledger: 'records' must be a list")
        ledger = cls(in_flight=_in_flight(data.get("in_flight", {}), where), kept=_kept(data.get("kept", {}), where))
        for i, item in enumerate(raw):
            rec = _record(item, f"{where}: corrupt ledger: records[{i}]")
            if rec.consumer in ledger:
                raise StateError(f"{where}: corrupt ledger: consumer {rec.consumer!r} recorded twice")
            ledger.record(rec)
        ledger.mark_saved()
        return ledger


def _kept_json(ids: Mapping[str, KeptUntilQuiet]) -> dict[str, Any]:
    return {i: k.for_storage() for i, k in sorted(ids.items())}


def _record(item: Any, where: str) -> LedgerRecord:
    if not isinstance(item, dict):
        raise StateError(f"{where} is not an object")
    missing = sorted(set(_RECORD_FIELDS) - _OPTIONAL_FIELDS - set(item))
    if missing:
        raise StateError(f"{where} lacks {', '.join(missing)}")
    present = [name for name in _RECORD_FIELDS if name in item]
    for name in present:
        if not isinstance(item[name], _RECORD_FIELDS[name]):
            raise StateError(f"{where}.{name} must be {_RECORD_FIELDS[name].__name__}")
    if item.get("established", "delivered") not in ESTABLISHED:
        raise StateError(f"{where}.established must be one of {', '.join(ESTABLISHED)}")
    # every field but the consumer repeats across the records of a token (its name, id, creation,
    # the value's fingerprint...): one string object each, not one per record read
    shared: dict[str, Any] = {name: item[name] if name == "consumer" or not isinstance(item[name], str)
                              else sys.intern(item[name]) for name in present}
    return LedgerRecord(**shared)


def _in_flight(raw: Any, where: str) -> dict[str, InFlight]:
    if not isinstance(raw, dict):
        raise StateError(f"{where}: corrupt ledger: 'in_flight' must map token names to objects")
    return {str(token): InFlight.from_storage(data, f"{where}: in-flight record of token {token!r}")
            for token, data in raw.items()}


def _kept(raw: Any, where: str) -> dict[str, dict[str, KeptUntilQuiet]]:
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise StateError(f"{where}: corrupt ledger: 'kept' must map token names to objects")
    return {str(token): {str(i): KeptUntilQuiet.from_storage(data, f"{where}: kept record #{i} of token {token!r}")
                         for i, data in ids.items()}
            for token, ids in raw.items()}
