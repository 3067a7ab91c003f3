"""The plan as data: what apply will do to each token and consumer, and why. No I/O.

`Plan.to_json` (schema `reconciler/plan.schema.json`, `schema_version`) carries the inventory and
observation digests so apply can refuse a stale plan, and never a value; `Plan.from_json` reads a
saved plan back. `declared_at`, `days_left`, `time_left`, `expiry_words` and `days_text` are the small helpers the planner and
the kinds' planning hooks share to word their reasons and findings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from reconciler.inventory.durations import expires_words, format_duration
from reconciler.inventory.model import Located, Position
from reconciler.observed import plain, to_iso

SCHEMA_VERSION = 1

TokenAction = Literal["create", "rotate", "revoke", "none"]
# recreate: the place is deleted and created again (a copy with the value), so its id changes
ConsumerAction = Literal["create", "update", "recreate", "none"]


@dataclass(frozen=True, kw_only=True)
class Reason:
    code: str  # missing, revoked, inactive, expiring, max_age, not_before, scopes, access_level, consumers
    message: str
    at: str  # inventory position it follows from: "inventory/tokens/x.yaml:12"


Severity = Literal["error", "warning"]


@dataclass(frozen=True, kw_only=True)
class Finding:
    severity: Severity
    code: str
    message: str
    at: str = ""
    token: str | None = None
    consumer: str | None = None
    detail: str | None = None  # multi-line text (a YAML proposal)


@dataclass(frozen=True, kw_only=True)
class Change:
    """One attribute a consumer update changes. Never a value: `value` changes show fingerprints."""

    attribute: str
    old: Any
    new: Any


@dataclass(frozen=True, kw_only=True)
class ConsumerPlan:
    identity: str
    kind: str
    label: str
    provider: str
    at: str
    state: str  # verified | asserted | stale | unverifiable | missing | error
    action: ConsumerAction
    why: str  # why the state / the action, one line
    value: Literal["new", "current"] | None = None  # which value a write delivers; None: attributes only
    changes: tuple[Change, ...] = ()
    readable: bool = False
    live_id: str | None = None
    fingerprint: str | None = None  # of what it holds now


@dataclass(frozen=True, kw_only=True)
class TokenPlan:
    name: str
    source_kind: str
    source_identity: str
    provider: str | None
    at: str
    action: TokenAction
    strategy: str | None  # overlap | in_place | external | observe_only
    reasons: tuple[Reason, ...] = ()
    live: dict[str, Any] | None = None  # id, created_at, expires_at, days_left, age_days, last_used_at
    orphans: tuple[str, ...] = ()  # ids of other usable tokens with the same name: revoke after delivery
    recover_from: str | None = None  # where apply reads the current value to re-deliver it
    escrow: str | None = None  # in place: "key" (RECONCILE_ESCROW_KEY) or "consumer:<identity>"
    consumers: tuple[ConsumerPlan, ...] = ()
    findings: tuple[Finding, ...] = ()
    created_with: str | None = None  # the token whose value creates this one (apply does that one first)
    creator_value: str | None = None  # where apply takes that value: minted, escrow, consumer:ID; None: not at hand
    creates: tuple[str, ...] = ()  # the tokens created with this one's value (apply does them after it)
    # the way off a retiring credential: the inventory token this one replaces, what happens to
    # it in words, and the ids of its live credential apply revokes after this token's delivery
    replaces: str | None = None
    migration: str | None = None
    retire: tuple[str, ...] = ()
    approval: str | None = None  # the access request that approved its scopes (policy.approved_scopes)

    @property
    def blocked(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    @property
    def changes(self) -> bool:
        return (self.action != "none" or any(c.action != "none" for c in self.consumers) or bool(self.orphans)
                or bool(self.retire))


@dataclass(frozen=True, kw_only=True)
class Plan:
    generated_at: datetime
    inventory_digest: str
    observed_digest: str
    tokens: tuple[TokenPlan, ...]
    findings: tuple[Finding, ...] = ()  # not tied to one token (unmanaged tokens...)
    targets: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION

    @property
    def has_changes(self) -> bool:
        return any(t.changes for t in self.tokens)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.all_findings() if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.all_findings() if f.severity == "warning"]

    def all_findings(self) -> list[Finding]:
        return [f for t in self.tokens for f in t.findings] + list(self.findings)

    def summary(self) -> dict[str, int]:
        counts = {"create": 0, "rotate": 0, "revoke": 0, "consumer_create": 0, "consumer_update": 0,
                  "consumer_recreate": 0, "verified": 0, "asserted": 0, "unverifiable": 0, "warnings": len(self.warnings),
                  "errors": len(self.errors)}
        for t in self.tokens:
            if t.action != "none":
                counts[t.action] += 1
            for c in t.consumers:
                if c.action != "none":
                    counts[f"consumer_{c.action}"] += 1
                if c.state in ("verified", "asserted", "unverifiable"):
                    counts[c.state] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "generated_at": to_iso(self.generated_at),
            "inventory_digest": self.inventory_digest,
            "observed_digest": self.observed_digest,
            "targets": list(self.targets),
            "has_changes": self.has_changes,
            "summary": self.summary(),
            "tokens": [_token_json(t) for t in self.tokens],
            "findings": [plain(asdict(f)) for f in self.findings],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        """Read a saved plan back (apply PLANFILE). Raises ValueError on another schema version."""
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"plan schema version {data.get('schema_version')!r} is not {SCHEMA_VERSION}")

        def finding(d: dict[str, Any]) -> Finding:
            return Finding(**d)

        tokens = []
        for t in data["tokens"]:
            consumers = tuple(
                ConsumerPlan(**{**c, "changes": tuple(Change(**ch) for ch in c["changes"])}) for c in t["consumers"]
            )
            tokens.append(TokenPlan(**{
                **t,
                "reasons": tuple(Reason(**r) for r in t["reasons"]),
                "orphans": tuple(t["orphans"]),
                "creates": tuple(t.get("creates") or ()),
                "retire": tuple(t.get("retire") or ()),
                "consumers": consumers,
                "findings": tuple(finding(f) for f in t["findings"]),
            }))
        return cls(
            generated_at=datetime.fromisoformat(data["generated_at"].replace("Z", "+00:00")),
            inventory_digest=data["inventory_digest"],
            observed_digest=data["observed_digest"],
            tokens=tuple(tokens),
            findings=tuple(finding(f) for f in data["findings"]),
            targets=tuple(data.get("targets") or ()),
        )


# TokenPlan fields written only when set, so that a plan without them reads as before
_OPTIONAL = ("created_with", "creates", "replaces", "migration", "retire", "approval")


def _token_json(t: TokenPlan) -> dict[str, Any]:
    data: dict[str, Any] = plain(asdict(t))
    for key in _OPTIONAL:
        if not data.get(key):
            data.pop(key, None)
    if t.created_with is None:  # where the creator's value comes from (None: not at hand) only for a created token
        del data["creator_value"]
    return data


def declared_at(obj: Located, key: str | None = None) -> str:
    """The inventory position a reason or finding follows from: "inventory/tokens/x.yaml:12"."""
    pos: Position = obj.at(key) if key else obj.pos
    return f"{pos.file}:{pos.line}" if pos.line else pos.file


def days_left(expires: date, now: datetime) -> int:
    """Whole UTC days from `now` to `expires` (0 on the day itself; for a time, to its UTC date)."""
    day = expires.astimezone(UTC).date() if isinstance(expires, datetime) else expires
    return (day - now.date()).days


def expiry_moment(expires: date) -> datetime:
    """When an expiry takes effect: the time itself, or a whole date's first moment, UTC (a token
    given an expiry date expires at midnight UTC of it)."""
    if isinstance(expires, datetime):
        return expires.astimezone(UTC)
    return datetime(expires.year, expires.month, expires.day, tzinfo=UTC)


def time_left(expires: date, now: datetime) -> timedelta:
    """From `now` to the expiry (negative once past). For a whole date, `time_left <= N days`
    exactly when `days_left <= N`, so whole-day rules read the same either way."""
    return expiry_moment(expires) - now.astimezone(UTC)


def expiry_words(expires: date, now: datetime) -> str:
    """`expires 2026-12-04 (12 days left)` for a whole date (as it always read), `expires in
    18 min` / `expired 3 min ago` (at the time) for an expiry the provider gives to the second."""
    if not isinstance(expires, datetime):
        return f"expires {expires} ({days_left(expires, now)} days left)"
    return f"{expires_words(time_left(expires, now))} (at {to_iso(expires)})"


def days_text(delta: timedelta) -> str:
    """A rotation duration as the inventory spells it (`21d`, `30m`); whole days stay in days."""
    if delta.total_seconds() % 86400 == 0:
        return f"{delta.days}d"
    return format_duration(delta)
