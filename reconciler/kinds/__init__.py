"""Kinds: one module per source kind and per consumer kind; the only code that knows an API.

The registry maps an inventory `kind:` to its implementation: `source_kind(name)` and
`consumer_kind(name)`. Adding a kind is one module, one schema entry and one line here.

## Observation (issue 5): batched, in rounds

Observation never issues a GET per resource where a list has the data. A kind says which list
calls it needs as `ListKey`s (provider, resource, scope), e.g. `("gitlab-com", "project_triggers",
"group/project")`; `observe.py` deduplicates the keys of the whole inventory, fetches each once
(concurrently, bounded per provider) through the provider helpers `_gitlab.FETCHERS` /
`_zendesk.FETCHERS`, and hands the results (`Lists`) back to the kinds, which pick their object
out of them. `needs()` is called in rounds with what was fetched so far, so a kind can ask for a
detail call that depends on a list (a GitLab hook's detail, only in `mode: recreate`, because the
list omits URL-variable and custom-header keys), or for the current user before listing its PATs.

Fetchers wrap every credential-bearing field (`value`, `token`, settings, endpoints) in `Secret`
the moment it arrives and drop truncated ones; `observe_*` turns them into fingerprints. A
consumer's `observe` returns a `Reading`: the plain `ConsumerObservation` and, transiently, the
value it holds (`Secret`), so that `observe.py` can identify it through the source kind's
`identify()` (authenticate with it, compare with a list) when the ledger does not already prove
it. The value is dropped after that; observations hold fingerprints only.

## Apply (issue 6): the methods apply calls

Every method takes the provider API handle from `reconciler.clients` (`GitLabApi`/`ZendeskApi`)
and model objects; values travel as `Secret`, revealed only inside the method at the write.

Sources:
    mint(api, source, *, expires_at) -> Minted          create a new token beside the old one
    renew(api, source, live, *, expires_at) -> Minted   rotate in place (old one dies at once).
        Never retried blindly: call with retries off and, after an unclear outcome, `observe`
        again (look the token up by name) before doing anything else (GitLab reuse detection).
    revoke(api, source, live) -> None                   revoke/delete a live token
    recover(api, source, live) -> Secret | None         read the current value back if the API
        shows it (owned triggers); None otherwise
    verify_value(api, source, live, value) -> bool | None  the value is that live token
        (authenticate with it / compare); None when that cannot be told without a side effect
    identify(api, source, value, lists) -> Identity     which live token a value is

Consumers:
    write(api, consumer, value, observed) -> None       deliver `value` (already rendered through
        the consumer's template), creating the place when `can_create`; leave every field the
        inventory does not manage as it is (PATCH, partial PUT)
    verify(api, consumer, value) -> bool | None         read back where readable: True/False;
        None when write-only (apply then records the write in the ledger as unverified)
    verify_keys(consumer) -> list[ListKey]              the lists `verify_listed` reads; apply
        fetches each once after all of a token's writes, for all its consumers there ([]: the
        kind verifies one consumer at a time with `verify`)
    verify_listed(consumer, value, lists) -> bool | None  `verify` from those lists
    read(api, consumer) -> Secret | None                the value held now, where readable (apply
        re-delivers a current value found in a readable consumer)
    write_attributes(api, consumer, observed) -> bool   change managed attributes only

Implementations the sandbox tests of issue 5 do not exercise raise `NotImplementedError` with the
API call to make in their docstring; issue 6 completes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar, Literal, NamedTuple

from reconciler.inventory.model import Consumer, Source, Token
from reconciler.observed import ConsumerObservation, LiveToken, SourceObservation
from reconciler.secret import Secret

Strategy = Literal["overlap", "in_place", "external", "observe_only"]


class ListKey(NamedTuple):
    """One list call: `resource` of `scope` at `provider` (deduplicated across the inventory)."""

    provider: str
    resource: str  # a key of the provider's FETCHERS
    scope: str = ""  # project/group path, user id, hook "project:path#id", "" for provider-wide


class FetchError(NamedTuple):
    """A list call that failed for this scope only (404 project, 403): not fatal for the plan."""

    status: int
    message: str


Lists = Mapping[ListKey, Any]  # ListKey -> fetched data (list/dict), or FetchError


@dataclass(frozen=True)
class Reading:
    """A consumer observation plus, transiently, the value it holds (never stored)."""

    observation: ConsumerObservation
    held: Secret | None = None  # the value as held (after the template)
    token_value: Secret | None = None  # the token extracted from it via the template


@dataclass(frozen=True)
class Identity:
    """What `identify` found a value to be: a live token id, or refused by the provider."""

    token_id: str | None
    invalid: bool = False  # the provider refused it (revoked, expired, unknown)


@dataclass(frozen=True)
class Minted:
    """A token just minted or renewed: its live record and its value (once)."""

    live: LiveToken
    value: Secret


class SourceKind:
    kind: ClassVar[str]
    provider_kind: ClassVar[str | None]
    can_mint: ClassVar[bool] = False  # a new token can be created beside the old one
    can_renew: ClassVar[bool] = False  # rotate in place
    has_scopes: ClassVar[bool] = False
    has_access_level: ClassVar[bool] = False
    identifies_values: ClassVar[bool] = False  # identify() can tell which token a value is
    noun: ClassVar[str] = "token"

    def strategy(self, source: Source) -> Strategy:
        raise NotImplementedError

    def needs(self, token: Token, lists: Lists) -> list[ListKey]:
        return []

    def observe(self, token: Token, lists: Lists) -> SourceObservation:
        raise NotImplementedError

    def identify(self, api: Any, source: Source, value: Secret, lists: Lists) -> Identity | None:
        """Which live token `value` is, or None when it cannot be told."""
        return None

    def unmanaged(self, tokens: list[Token], lists: Lists) -> list[LiveToken]:
        """Live tokens in the lists this kind fetched that no inventory token names."""
        return []

    # apply (issue 6) ----------------------------------------------------------------------

    def mint(self, api: Any, source: Source, *, expires_at: date | None) -> Minted:
        raise NotImplementedError(f"{self.kind}: mint is not available")

    def renew(self, api: Any, source: Source, live: LiveToken, *, expires_at: date | None) -> Minted:
        raise NotImplementedError(f"{self.kind}: renew is not available")

    def revoke(self, api: Any, source: Source, live: LiveToken) -> None:
        raise NotImplementedError(f"{self.kind}: revoke is not available")

    def recover(self, api: Any, source: Source, live: LiveToken) -> Secret | None:
        return None

    def verify_value(self, api: Any, source: Source, live: LiveToken, value: Secret) -> bool | None:
        """Whether `value` is the live token `live` (authenticate with it, or compare with what
        the API shows); None when the kind cannot tell without a side effect."""
        return None


class ConsumerKind:
    kind: ClassVar[str]
    provider_kind: ClassVar[str]
    can_create: ClassVar[bool] = False  # apply can create the place when it is missing

    def needs(self, consumer: Consumer, lists: Lists) -> list[ListKey]:
        raise NotImplementedError

    def observe(self, token: Token, consumer: Consumer, lists: Lists) -> Reading:
        raise NotImplementedError

    def desired_attributes(self, consumer: Consumer) -> dict[str, Any]:
        """The non-secret attributes the inventory manages, compared with the observation's."""
        return {}

    def findings(self, consumer: Consumer, observation: ConsumerObservation, writing: bool) -> list[tuple[str, str, str]]:
        """Kind-specific problems as (severity, code, message); `writing`: a write is planned."""
        return []

    # apply (issue 6) ----------------------------------------------------------------------

    def write(self, api: Any, consumer: Consumer, value: Secret, observed: ConsumerObservation) -> None:
        raise NotImplementedError(f"{self.kind}: write is not available")

    def verify(self, api: Any, consumer: Consumer, value: Secret) -> bool | None:
        raise NotImplementedError(f"{self.kind}: verify is not available")

    def read(self, api: Any, consumer: Consumer) -> Secret | None:
        """The value the consumer holds now (as held, after the template), when readable."""
        return None

    def verify_keys(self, consumer: Consumer) -> list[ListKey]:
        """The list calls `verify_listed` reads back from; [] when `verify` reads per consumer
        (or needs no read: write-only kinds)."""
        return []

    def verify_listed(self, consumer: Consumer, value: Secret, lists: Lists) -> bool | None:
        """`verify` from lists fetched after the writes (one list per scope serves every consumer
        of the token there, instead of one GET each). Raises when the list could not be read."""
        raise NotImplementedError(f"{self.kind}: verify_listed is not available")

    def write_attributes(self, api: Any, consumer: Consumer, observed: ConsumerObservation) -> bool:
        """Update only the managed attributes, leaving the value as it is. False when the kind
        cannot do that without writing the value."""
        return False


def read_back(lists: Lists, key: ListKey) -> Any:
    """The data of a list fetched for verification; raises (LookupError) when it failed."""
    data = lists.get(key)
    if isinstance(data, FetchError):
        raise LookupError(f"reading back failed: {data.message}")
    if data is None:
        raise LookupError("not read back")
    return data


def extract(template: str, held: Secret | None) -> Secret | None:
    """The token inside a value rendered through `template` (`Bearer ${token}`, a URL), or None
    when the held value does not have the template's shape."""
    if held is None or "${token}" not in template:
        return None
    prefix, _, suffix = template.partition("${token}")
    text = held.reveal()
    if len(text) < len(prefix) + len(suffix) + 1 or not text.startswith(prefix) or not text.endswith(suffix):
        return None
    return Secret(text[len(prefix) : len(text) - len(suffix)])


_SOURCES: dict[str, SourceKind] = {}
_CONSUMERS: dict[str, ConsumerKind] = {}


def source_kind(name: str) -> SourceKind:
    _load()
    return _SOURCES[name]


def consumer_kind(name: str) -> ConsumerKind:
    _load()
    return _CONSUMERS[name]


def all_kinds() -> tuple[list[SourceKind], list[ConsumerKind]]:
    """Every registered source kind and consumer kind, in registration order."""
    _load()
    return list(_SOURCES.values()), list(_CONSUMERS.values())


def noun(kind: str) -> str:
    """What people call a source kind's credential ("pipeline trigger"); the kind name if unknown."""
    _load()
    found = _SOURCES.get(kind)
    return found.noun if found is not None else kind


def _load() -> None:
    if _SOURCES:
        return
    from reconciler.kinds import (
        external,
        gitlab_access_token,
        gitlab_ci_variable,
        gitlab_personal_access_token,
        gitlab_pipeline_trigger,
        gitlab_webhook,
        zendesk_api_token,
        zendesk_app_setting,
        zendesk_oauth_client_secret,
        zendesk_oauth_token,
        zendesk_webhook,
    )

    for impl in (
        gitlab_personal_access_token.KIND,
        gitlab_access_token.PROJECT_KIND,
        gitlab_access_token.GROUP_KIND,
        gitlab_pipeline_trigger.KIND,
        zendesk_oauth_token.KIND,
        zendesk_oauth_client_secret.KIND,
        zendesk_api_token.KIND,
        external.KIND,
    ):
        _SOURCES[impl.kind] = impl
    for cimpl in (gitlab_ci_variable.KIND, gitlab_webhook.KIND, zendesk_app_setting.KIND, zendesk_webhook.KIND):
        _CONSUMERS[cimpl.kind] = cimpl
