"""The ledger: per consumer, which token instance it last received; never a value.

Only the live id and creation time of the token instance a consumer received and a SHA-256
fingerprint of what was written. It lets the planner know the state of write-only consumers
("unverifiable" is a state, not a guess). See DESIGN.md "Ledger and escrow".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from reconciler.state.errors import StateError

# --- ledger ----------------------------------------------------------------------------------

LEDGER_VERSION = 1


@dataclass(frozen=True)
class LedgerRecord:
    """What one consumer last received; never a value."""

    consumer: str  # Consumer.identity
    token: str  # inventory token name
    token_id: str  # live id of the token instance delivered
    token_created_at: str  # ISO time of that instance
    fingerprint: str  # Secret.fingerprint() of the value as written (after the template)
    delivered_at: str  # ISO
    verified: bool  # read back / authenticated after writing

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_RECORD_FIELDS = {f.name: (bool if f.name == "verified" else str) for f in fields(LedgerRecord)}


class Ledger:
    """Mapping consumer identity -> LedgerRecord; JSON (de)serialisable.

    Beside the records, `in_flight` holds what an apply has started and not finished, by token
    name: plain ids and times only (an overlap's old and new live ids, a rotation under way, a
    webhook being recreated), so the next apply after a crash knows what to finish. Saved as an
    optional `in_flight` key; ledgers without one read as before.
    """

    def __init__(self, records: list[LedgerRecord] | None = None,
                 in_flight: dict[str, dict[str, Any]] | None = None) -> None:
        self._records: dict[str, LedgerRecord] = {}
        self.in_flight: dict[str, dict[str, Any]] = dict(in_flight or {})
        for rec in records or ():
            self.record(rec)

    def get(self, consumer: str) -> LedgerRecord | None:
        return self._records.get(consumer)

    def record(self, rec: LedgerRecord) -> None:
        self._records[rec.consumer] = rec

    def forget(self, consumer: str) -> None:
        self._records.pop(consumer, None)

    def records(self) -> list[LedgerRecord]:
        return [self._records[k] for k in sorted(self._records)]

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, consumer: object) -> bool:
        return consumer in self._records

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ledger):
            return NotImplemented
        return self._records == other._records and self.in_flight == other.in_flight

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"version": LEDGER_VERSION, "records": [r.to_json() for r in self.records()]}
        if self.in_flight:
            data["in_flight"] = {k: dict(v) for k, v in sorted(self.in_flight.items())}
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
        ledger = cls()
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise StateError(f"{where}: corrupt ledger: records[{i}] is not an object")
            missing = sorted(set(_RECORD_FIELDS) - set(item))
            if missing:
                raise StateError(f"{where}: corrupt ledger: records[{i}] lacks {', '.join(missing)}")
            for name, typ in _RECORD_FIELDS.items():
                if not isinstance(item[name], typ):
                    raise StateError(
                        f"{where}: corrupt ledger: records[{i}].{name} must be {typ.__name__}"
                    )
            rec = LedgerRecord(**{name: item[name] for name in _RECORD_FIELDS})
            if rec.consumer in ledger:
                raise StateError(f"{where}: corrupt ledger: consumer {rec.consumer!r} recorded twice")
            ledger.record(rec)
        in_flight = data.get("in_flight", {})
        if not isinstance(in_flight, dict) or not all(isinstance(v, dict) for v in in_flight.values()):
            raise StateError(f"{where}: corrupt ledger: 'in_flight' must map token names to objects")
        ledger.in_flight = {str(k): dict(v) for k, v in in_flight.items()}
        return ledger
