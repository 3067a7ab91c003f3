"""What a kind contributes to the scan of the discovery scopes (`reconcile check`, `reconcile discover`).

Capabilities, each an abstract mixin a kind lists in its class line or not (its methods sit at
the end of its class), as those in `reconciler.kinds`:

- `ScannedSource`: a source kind whose live tokens a scope scan lists. It names the lists it
  reads for a scope (`scan_keys`), turns their rows into `ScopeToken`s (`scan_tokens`: live
  token, id family, owner, the inventory YAML that would declare it) and may recognise its
  tokens inside held values (`value_format`).
- `ScannedConsumer`: a consumer kind whose places discover reads: the lists (`scan_keys`) and,
  from their rows, the readable places with the consumer YAML that would declare each, and notes
  for the write-only ones (`places`).
- `ExpiringSource`: a source that declares its own expiry (no live token to read it from).
- `SunsetSource`: a kind its provider is retiring (`sunset`: the cutoff, the inactivity rule and
  the replacement to propose).

Every source kind also says the id space its live ids share (`SourceKind.id_family`: GitLab PATs
and resource access tokens are all rows of one table) and how a report names a source for a
person (`SourceKind.display_name`).

`reconcile check`, `discover` and `scopes` reach kinds only through the functions at the bottom.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, Protocol

from reconciler.inventory.model import Source
from reconciler.kinds import FetchError, ListKey, Lists, all_kinds, source_kind
from reconciler.observed import LiveToken
from reconciler.secret import Secret


@dataclass(frozen=True)
class ScanScope:
    """What a scan knows of one provider's discovery scopes (after the scope lists are read)."""

    provider: str
    provider_kind: str  # "gitlab" | "zendesk"
    users: Mapping[str, str] = field(default_factory=dict)  # user id -> username (credential's user first)
    listed_users: tuple[str, ...] = ()  # ids of the users whose tokens are scanned
    groups: tuple[str, ...] = ()  # group paths, subgroups included
    projects: tuple[str, ...] = ()  # project paths, those of the groups included


def is_own_credential(credential_ids: Mapping[str, str], provider: str, live_id: str, can_be_credential: bool) -> bool:
    """The one rule by which `plan`, `check` and `discover` know a provider's own credential,
    never reported as unmanaged: a token of a kind a credential can be, with the id the provider
    gives for its credential (`credential_ids`: provider -> that id)."""
    return can_be_credential and credential_ids.get(provider) == live_id


@dataclass(frozen=True, kw_only=True)
class ScopeToken:
    """A live token seen in a discovery scope."""

    provider: str
    kind: str  # the source kind it would be declared as
    scope: str  # username, project path, group path, or "" (Zendesk instance)
    live: LiveToken
    family: str  # live ids are unique within (provider, family)
    owner: str | None = None  # the person to mention about it (a PAT's user)
    can_be_credential: bool = False  # a provider credential can be a token of this kind
    declaration: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # inventory `source:` YAML

    @property
    def family_key(self) -> tuple[str, str, str]:
        return (self.provider, self.family, self.live.id)


@dataclass(frozen=True)
class Place:
    """A readable place and the value it holds."""

    provider: str
    label: str  # human: "CI variable KEY (project a/b)"
    consumer: dict[str, Any]  # inventory YAML of the consumer, without its template
    template_key: str  # "value" or "endpoint"
    held: Secret
    template_required: bool = False  # written even when it is the bare `${token}`

    def declaration(self, template: str) -> dict[str, Any]:
        """The consumer YAML for this place holding a token through `template`."""
        consumer = dict(self.consumer)
        if template != "${token}" or self.template_required:
            consumer[self.template_key] = template
        return consumer


class ValueFormat(Protocol):
    """A shape of credential a held value can contain, and how to tell which live token it is."""

    provider_kind: str  # the kind of provider that issues it: a value is only ever sent to one of these

    def token_in(self, text: str) -> str | None:
        """The credential inside `text` (a held value), or None when `text` holds none of this shape."""

    def identify(self, value: Secret, tokens: Sequence[ScopeToken], issuer: Mapping[str, Any]) -> ScopeToken | str:
        """The scanned live token `value` is, or a note (completing "PLACE ...") why it cannot be told.
        `issuer`: the one provider (name -> API) the value may be sent to, or empty: none may."""


class ScannedSource(ABC):
    """A source kind whose live tokens a scope scan lists."""

    provider_kind: ClassVar[str | None]
    value_format: ClassVar[ValueFormat | None] = None  # None: its tokens are not told from held values

    @abstractmethod
    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]: ...

    @abstractmethod
    def scan_tokens(self, key: ListKey, rows: list[dict[str, Any]], scope: ScanScope,
                    lists: Lists) -> list[ScopeToken]: ...


class ScannedConsumer(ABC):
    """A consumer kind whose places discover reads."""

    provider_kind: ClassVar[str]

    @abstractmethod
    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]: ...

    @abstractmethod
    def places(self, key: ListKey, rows: list[dict[str, Any]], lists: Lists) -> tuple[list[Place], list[str]]: ...


class ExpiringSource(ABC):
    """A source that declares its expiry (nothing live to read it from)."""

    @abstractmethod
    def declared_expiry(self, source: Source) -> date | None: ...


@dataclass(frozen=True)
class Sunset:
    """A kind its provider is retiring."""

    cutoff: date  # every remaining token stops working
    inactivity_days: int | None  # unused this long: deactivated
    why_kept: str  # why apply cannot renew it: "Zendesk API tokens can no longer be created"
    replaced_by: str  # what replaces it: "an OAuth token"
    replacement: Callable[[str, str], str]  # (provider, live name) -> inventory YAML that replaces it
    proposal_code: str  # the plan finding whose detail proposes the replacement of an inventory token


class SunsetSource(ABC):
    """A kind its provider is retiring."""

    @property
    @abstractmethod
    def sunset(self) -> Sunset: ...


@dataclass(frozen=True)
class Deadline:
    """Live tokens that must change before a provider's date (e.g. a Zendesk OAuth client whose
    tokens never expire, before expiring tokens are enforced): one per client, or whatever groups them."""

    provider: str
    thing: str  # what must change: "OAuth client"
    name: str  # how a person knows it ("sync-app")
    key: str  # stable, for the check issue: "zendesk-global:oauth_client:12"
    cutoff: date
    count: int  # the live tokens concerned
    what: str  # the facts line: "3 tokens that never expire; expiring tokens required from"
    todo: str  # what to do before the cutoff


class DeadlineSource(ABC):
    """A kind whose provider changes the rules for some of its live tokens on a date."""

    @abstractmethod
    def deadlines(self, provider: str, lists: Lists, now: datetime) -> list[Deadline]:
        """The deadlines still ahead at `now` among the lists fetched for `provider` (none when
        its lists were not fetched)."""


def deadline_sources() -> list[DeadlineSource]:
    return [k for k in all_kinds()[0] if isinstance(k, DeadlineSource)]


def listed(lists: Lists, key: ListKey) -> Any:
    """A fetched list's data; None when it failed or was not fetched."""
    value = lists.get(key)
    return None if isinstance(value, FetchError) else value


def shown(tokens: Sequence[ScopeToken], fingerprint: str) -> ScopeToken | None:
    """The scanned token whose value the list showed in full (owned triggers) with this fingerprint."""
    return next((t for t in tokens if t.live.fingerprint == fingerprint), None)


# --- the registry, as the scan sees it ---------------------------------------------------------


def scanned_sources() -> list[ScannedSource]:
    return [k for k in all_kinds()[0] if isinstance(k, ScannedSource)]


def scanned_consumers() -> list[ScannedConsumer]:
    return [k for k in all_kinds()[1] if isinstance(k, ScannedConsumer)]


def value_formats() -> list[ValueFormat]:
    """The credential shapes discover looks for in held values, each once, in registry order."""
    found: list[ValueFormat] = []
    for kind in scanned_sources():
        if kind.value_format is not None and not any(f is kind.value_format for f in found):
            found.append(kind.value_format)
    return found


def id_family(kind: str) -> str | None:
    """The id space a source kind's live ids belong to; None for a kind with no live tokens."""
    return source_kind(kind).id_family()


def display_name(source: Source) -> str | None:
    return source_kind(source.kind).display_name(source)


def declared_expiry(source: Source) -> date | None:
    impl = source_kind(source.kind)
    return impl.declared_expiry(source) if isinstance(impl, ExpiringSource) else None


def sunset(kind: str) -> Sunset | None:
    impl = source_kind(kind)
    return impl.sunset if isinstance(impl, SunsetSource) else None


def observed_live(kind: str) -> bool:
    """Whether a live token is looked for (a kind without a provider has none)."""
    return source_kind(kind).provider_kind is not None
