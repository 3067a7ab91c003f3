"""What `observe` saw: plain, JSON-serialisable data with no client objects and no values.

The planner works on these alone, so it can be tested with objects built by hand. A value a
consumer holds is known here only by its fingerprint (`Secret(value).fingerprint()` of the value
as held, i.e. after the consumer's template, as the ledger records it) and, when it could be
identified, by the live id of the token it contains (`holds_token_id`).

`Observed.digest()` sums a hash of each observation's canonical JSON (an incremental multiset
hash); a saved plan records it so that apply can refuse a plan computed from a live state that
has since changed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from reconciler.state.ledger import LedgerRecord

# Consumer states (what the consumer holds, relative to the current live token):
#   verified      holds the current value (read back and identified, or by the ledger for write-only)
#   asserted      a person asserted it holds the current value (`reconcile adopt --assert-write-only`)
#                 and nothing read contradicts it
#   stale         holds another value (an old token, an unknown value) or, write-only, the ledger
#                 says it received another token
#   unverifiable  write-only (or unidentifiable) and no ledger record says what it holds
#   missing       the place itself does not exist (variable, webhook, installation, setting)
#   error         could not be observed (see `error`)
ConsumerState = Literal["verified", "asserted", "stale", "unverifiable", "missing", "error"]


@dataclass(frozen=True, kw_only=True, slots=True)
class LiveToken:
    """One live credential as a list call returned it (never its value)."""

    id: str  # live id, as a string (GitLab ints, Zendesk ints, triggers)
    name: str  # name, trigger description, API-token description, OAuth client identifier
    where: str  # human location: "project a/b", "user @self", "zendesk-global"
    created_at: datetime | None = None
    expires_at: date | None = None  # a whole date, or a datetime where the provider gives the time
    renewal_expires_at: datetime | None = None  # a refreshable grant: when its refresh token expires
    last_used_at: datetime | None = None
    active: bool = True
    revoked: bool = False
    scopes: tuple[str, ...] = ()
    access_level: int | None = None
    user_id: str | None = None  # GitLab: the (bot) user the token belongs to
    owned: bool | None = None  # triggers: the full token was visible (we own it); else None
    fingerprint: str | None = None  # when the list showed the full value (owned triggers)

    @property
    def usable(self) -> bool:
        return self.active and not self.revoked


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceObservation:
    token: str  # inventory token name
    identity: str  # Source.identity
    current: LiveToken | None = None  # the live token this source names (newest usable, else newest)
    others: tuple[LiveToken, ...] = ()  # other live tokens with the same name (orphans of an overlap)
    details: dict[str, Any] = field(default_factory=dict)  # kind-specific plain facts (client id...)
    error: str | None = None  # could not be observed
    # observed with the current value of this inventory token (its `created_with`), not the
    # provider's credential
    credential: str | None = None
    # a token others are created with: where this run read its current value ("consumer:IDENTITY")
    value_at: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsumerObservation:
    identity: str  # Consumer.identity
    token: str  # inventory token name it is bound to
    state: ConsumerState
    readable: bool  # the place returns its value on read
    exists: bool = True
    live_id: str | None = None  # variable key, hook id, webhook id, installation id
    fingerprint: str | None = None  # of the value as held (after the template, like the ledger's)
    holds_token_id: str | None = None  # live id of the token it holds, when identified
    holds_invalid: bool = False  # the value it holds was refused by the provider (revoked, unknown)
    by_ledger: bool = False  # state decided by the ledger (write-only consumers)
    attributes: dict[str, Any] = field(default_factory=dict)  # managed, non-secret live attributes
    details: dict[str, Any] = field(default_factory=dict)  # kind-specific facts (hook header keys...)
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Observed:
    observed_at: datetime
    sources: dict[str, SourceObservation]  # by token name
    consumers: dict[str, ConsumerObservation]  # by consumer identity
    unmanaged: tuple[LiveToken, ...] = ()  # live tokens seen in the lists and not in the inventory
    unmanaged_kinds: dict[LiveToken, str] = field(default_factory=dict)  # the source kind that saw each one
    requests: int = 0  # HTTP requests made (not part of the digest)

    def to_json(self, *, without: str | None = None) -> dict[str, Any]:
        """The JSON form; `without`: a field name left out wherever it occurs."""
        return {
            "observed_at": to_iso(self.observed_at),
            "sources": {k: _source_data(v, without) for k, v in sorted(self.sources.items())},
            "consumers": {k: _data(v, without) for k, v in sorted(self.consumers.items())},
            "unmanaged": [_data(t, without) for t in sorted(self.unmanaged, key=lambda t: (t.where, t.name, t.id))],
        }

    def digest(self) -> str:
        """What was seen, without the time it was seen at and without `last_used_at` (every use
        moves it, observing included: identifying a value authenticates with it), so a saved plan
        is stale only when something that matters moved: the sha256 of `_digest_sum`."""
        return "sha256:" + hashlib.sha256(self._digest_sum().to_bytes(DIGEST_BYTES, "big")).hexdigest()

    def _digest_sum(self) -> int:
        """The sum of every observation's `_term`, computed once per `Observed` (an int: a cache
        of each observation's hash cost 12 MB at 25,000 consumers)."""
        known: int | None = self.__dict__.get("_digest_sum_of")
        if known is None:
            known = sum(itertools.chain(
                (_term("consumer", identity, consumer) for identity, consumer in self.consumers.items()),
                (_term("source", name, source) for name, source in self.sources.items()),
                (_term("unmanaged", None, live) for live in self.unmanaged))) % DIGEST_MODULUS
            object.__setattr__(self, "_digest_sum_of", known)  # frozen: a cache, not a field
        return known

    def with_consumers(self, changed: Mapping[str, ConsumerObservation], requests: int) -> Observed:
        """This observation with the consumers `changed` observed again; its digest, when this
        one's is known, costs only what changed (the old terms out, the new ones in)."""
        new = replace(self, consumers={**self.consumers, **changed}, requests=requests)
        known: int | None = self.__dict__.get("_digest_sum_of")
        if known is not None:
            delta = sum(_term("consumer", identity, obs) - (_term("consumer", identity, self.consumers[identity])
                                                            if identity in self.consumers else 0)
                        for identity, obs in changed.items())
            object.__setattr__(new, "_digest_sum_of", (known + delta) % DIGEST_MODULUS)
        return new


# The digest is an additive multiset hash (AdHASH: M. Bellare and D. Micciancio, "A New Paradigm
# for Collision-free Hashing: Incrementality at Reduced Cost", EUROCRYPT 1997): the sum, modulo
# 2**2048, of one hash per observation. Order does not matter (every term names its identity),
# and a changed observation moves the sum by its own terms alone. The modulus is that large
# because a sum modulo 2**256 of thousands of terms falls to the generalized birthday attack
# (D. Wagner, "A Generalized Birthday Problem", CRYPTO 2002).
DIGEST_BYTES = 256
DIGEST_MODULUS = 1 << (8 * DIGEST_BYTES)


def _term(section: str, key: str | None, obs: Any) -> int:
    """One observation's term: SHAKE-256, stretched to the modulus, of its section, its key and
    its canonical JSON."""
    canonical = _canonical(obs, _source_data if section == "source" else _data)
    text = f"{section}:{json.dumps(key)}:{canonical}".encode()  # the quoted key ends unambiguously
    return int.from_bytes(hashlib.shake_256(text).digest(DIGEST_BYTES), "big")


def _canonical(obs: Any, data: Any) -> str:
    """The canonical JSON of one observation without `last_used_at`."""
    return json.dumps(data(obs, "last_used_at"), sort_keys=True, separators=(",", ":"))


def _source_data(obs: SourceObservation, without: str | None) -> dict[str, Any]:
    """A source observation's JSON; the `created_with` fields only where they are set (so the
    digest of an inventory without `created_with` is what it was before they existed)."""
    out: dict[str, Any] = _data(obs, without)
    for key in ("credential", "value_at"):
        if out.get(key, "") is None:
            del out[key]
    return out


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _data(value: Any, without: str | None = None) -> Any:
    """`plain(asdict(value))` in one pass, leaving out the key `without` at every level
    (`asdict` deep-copies everything before `plain` walks it again: most of a digest's time)."""
    if type(value) in _SCALARS:  # most values: checked first, it is most of a digest's time
        return value
    names = _FIELD_NAMES.get(type(value))
    if names is None and is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[type(value)] = tuple(f.name for f in fields(value))
    if names is not None:
        return {n: _data(getattr(value, n), without) for n in names if n != without}
    if isinstance(value, dict):
        return {str(k): _data(v, without) for k, v in value.items() if k != without}
    if isinstance(value, list | tuple):
        return [_data(v, without) for v in value]
    if isinstance(value, datetime | date):
        return to_iso(value)
    return value


def record_is_of(record: LedgerRecord | None, live: LiveToken | None) -> bool:
    """A ledger record names the live instance `live`: the same id and, where `live` has a
    creation time, the same one (to the second, as apply records it). An OAuth client keeps its
    id when its secret is regenerated; only the time tells the new secret from the old."""
    return record is not None and is_instance(str(record.token_id), record.token_created_at, live)


def is_instance(token_id: str, created_at: str, live: LiveToken | None) -> bool:
    """`live` is the instance with this id and this creation (or, for an OAuth client's secret,
    last update) time, compared to the second; by id alone when the API shows no time."""
    if live is None or token_id != live.id:
        return False
    if live.created_at is None:
        return True
    try:
        recorded = parse_time(created_at)
    except ValueError:
        return False
    return recorded is not None and recorded.replace(microsecond=0) == live.created_at.replace(microsecond=0)


def to_iso(value: datetime | date) -> str:
    """A time as UTC ISO 8601 with `Z` (a date as YYYY-MM-DD): the form of every JSON we write."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def plain(value: Any) -> Any:
    """`value` (dataclass dicts, tuples, times) as JSON-ready data: str keys, lists, ISO times."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return to_iso(value)
    return value


def parse_time(value: object) -> datetime | None:
    """An API timestamp (ISO 8601, `Z` or offset) as an aware UTC datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_date(value: object) -> date | None:
    """An API date (`2026-12-01`, or a timestamp whose UTC date is taken)."""
    if value in (None, ""):
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = str(value)
    if len(text) == 10:
        return date.fromisoformat(text)
    moment = parse_time(text)
    return moment.date() if moment else None
