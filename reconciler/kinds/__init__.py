"""Kinds: one module per source kind and per consumer kind; the only code that knows an API.

The registry maps an inventory `kind:` to its implementation: `source_kind(name)` and
`consumer_kind(name)`. A kind is a `SourceKind` or a `ConsumerKind` plus the capabilities it has
(below), each an abstract mixin listed in the kind's class line (a kind that lists one without
its methods fails when its module is imported). Callers ask for a capability with
`isinstance(kind, Capability)` (or `capable()` where the plan already guarantees it) and never
test a kind by its name. Adding a kind is adding its module (see the registry at the bottom).

## Observation: batched, in rounds

Observation never issues a GET per resource where a list has the data. A kind says which list calls
it needs as `ListKey`s (provider, resource, scope), e.g. `("gitlab-com", "project_triggers",
"group/project")`; `observe.py` deduplicates the keys of the whole inventory, fetches each once
(concurrently, bounded per provider) through the provider helpers' tables (`fetcher_of(provider kind,
resource)`: `_gitlab.FETCHERS`, `_zendesk.FETCHERS`; a GitLab kind adds a list call of its own
with `@_gitlab.fetcher(resource)` in its module), and hands the results (`Lists`) back to the
kinds, which pick their object out of them. `needs()` is called in rounds with what was fetched so
far, so a kind can ask for a detail call that depends on a list (a GitLab hook's detail, only in
`mode: recreate`, because the list omits URL-variable and custom-header keys), or for the current
user before listing its PATs.

Fetchers wrap every credential-bearing field (`value`, `token`, settings, endpoints) in `Secret`
the moment it arrives and drop truncated ones; `observe_*` turns them into fingerprints. A
consumer's `observe` returns a `Reading`: the plain `ConsumerObservation` and, transiently, the
value it holds (`Secret`), so that `observe.py` can identify it through the source kind's
`identify()` (authenticate with it, compare with a list) when the ledger does not already prove
it. The value is dropped after that; observations hold fingerprints only.

## Every source kind (`SourceKind`)

    strategy(source) -> Strategy            overlap | in_place | external | observe_only
    needs(token, lists) / observe(token, lists) / unmanaged(tokens, lists)   observation
    due_reasons(token, live, now) -> [Reason]   planning: reasons of this kind why the token is
        due. For a `Supplied` kind (no live token) they are all its reasons; for the others the
        planner calls it only for a live token that is not revoked, active and unexpired, and
        puts its reasons after the generic ones (expiring, max_age, not_before).
    findings(token, live, now, *, action, strategy, reasons) -> [Finding]   planning: this
        kind's warnings and errors once the token's action and strategy are decided (called for
        every token that is neither absent nor unobservable); the planner fills in `token` and an
        empty `at`.
    job_env(source) -> [(name, purpose, optional)]   `reconcile env`: variables an apply reads
    observed_findings(token, observation) -> [Finding]   planning: this kind's errors about what
        observation found beside its token (a consumer's trigger URL naming another project)
    manual_create(source) -> str            planning: the error text when the plan needs a new
        token that the kind cannot mint for this source
    id_family() -> str | None               reports: the id space its live ids share within a
        provider (PATs and resource access tokens: one table); None when nothing is live
    display_name(source) -> str | None      reports: how a person knows the source (None: by its
        inventory name)
    scope_approval(source, policy) -> str | None   the access request covering its scopes, for plans
    replaces(source) -> str | None          the inventory token whose retiring credential this one
        replaces (revoked by apply once this one's consumers are verified)
    parts(source) -> tuple[str, ...]        the parts of a multi-part credential (`Parts`), which
        consumers take through `${token.PART}`; () for a single value (`${token}`)

Source capabilities (values travel as `Secret`; `api` is the provider handle from
`reconciler.clients`):

    Mintable      mint(api, source, *, expires_at) -> Minted: a new token beside the old one;
                  mintable_for(source) -> bool: whether it can for this source (default True)
    Renewable     renew(api, source, live, *, expires_at) -> Minted: rotate in place (the old
                  value dies at once). Never retried blindly: call with retries off and, after
                  an unclear outcome, `observe` again (by name) first (GitLab reuse detection).
    Revocable     revoke(api, source, live) -> None
    Recoverable   recover(api, source, live) -> Secret | None: the current value read back from
                  the API (owned triggers); the planner offers it when the live token is `owned`
    Verifying     verify_value(api, source, live, value) -> bool | None: the value is `live`
                  (None: cannot tell); apply proves a new value with it before revoking the old
    Identifying   Verifying, and identify(api, source, value, lists) -> Identity | None: which
                  live token a held value is (consumers holding values are then judged by it)
    Refreshable   renewed through an OAuth grant the tool holds (rotated in place: a refresh
                  answers a new value and a new refresh token and kills the old pair).
                  refresh(api, source, refresh_token, *, lifetime, env) -> Grant (GrantRefused when
                  the refresh token is not accepted); client_credentials(api, source, *, lifetime, env) ->
                  Grant | None (None: no fallback declared); live_of(api, source, value) ->
                  LiveToken; initial_refresh_token(source, env) -> Secret | None: one a person
                  supplied; how_to_reauthorise(source) -> str; starts_without_live(source) ->
                  bool: a missing live token is no error (the fallback gets one). Apply keeps each refresh token
                  sealed in the state (`Escrow.keep_grant`) before the new value goes anywhere.
    Creator       as_creator(api, value, token) -> api: a handle of the same provider that
                  authenticates with this token's current value, for the sources created with it
                  (`created_with`); creator_problem(source) -> str | None: why this source cannot
                  create (its rotation would change its user)
    UseRecorded   last_use(live) -> LastUse: when the provider last recorded a use of the live
                  token (observe reads it with the token) and how often it records one; apply
                  revokes a token of such a kind only when it is quiet (reconciler.quiet)
    Supplied      supplied_value(source, env) -> Secret: a person supplies each new value at
                  apply time (ValueError with the message when it is not there); nothing is
                  observed live, so consumers are judged by the ledger alone;
                  how_to_supply(source) -> str: what a person does so that an unattended apply
                  finds the value (apply leaves the token waiting until then)

## Every consumer kind (`ConsumerKind`)

    needs(consumer, lists) / observe(token, consumer, lists) -> Reading
    write(api, consumer, value, observed)   deliver `value` (already rendered through
        `template`), leaving every field the inventory does not manage as it is
    verify(api, consumer, value) -> bool | None   read back: True/False; None when write-only
        (apply then records the write in the ledger as unverified)
    template(consumer) -> str               what the value is rendered through (`${token}`)
    desired_attributes(consumer) -> dict    planning: the non-secret attributes it manages
    findings(consumer, observation, writing) -> [(severity, code, message)]   planning
    declared_url(consumer) -> (key, url) | None   the URL the inventory says the value is sent to
        or in (a webhook endpoint template, a hook's URL), for its source kind to check

Consumer capabilities:

    Creatable          creatable(consumer, observation) -> bool: `write` creates the missing
                       place (default: unless observe marked it `details["creatable"] = False`)
    Readable           read(api, consumer) -> Secret | None: the value held now, as held (apply
                       re-delivers a current value read from a readable consumer)
    ListVerifiable     verify_keys(consumer) -> [ListKey]: the lists `verify_listed(consumer,
                       value, lists)` reads back; apply fetches each once after all of a token's
                       writes ([]: this consumer is verified with `verify`)
    VerifiableAlone    verify_alone(api, consumer, value, observed) -> bool | None: `verify`
                       with one read of this consumer alone (by the id observe found); apply
                       makes it instead of reading the list when the list (`list_page_size`
                       rows a page) has more pages than the token has consumers in it
    AttributeWritable  write_attributes(api, consumer, observed) -> bool: change the managed
                       attributes only (False: not without writing the value)
    Recreatable        recreates(consumer) -> bool: the write deletes the place and creates it
                       again (the plan's consumer action is then `recreate`); copies(consumer)
                       -> str: what the new place is made of, for the plan; listed(consumer, observed, lists): the place as observe read it,
                       passed to `write(..., listed=, before_delete=, after_create=)`, whose
                       `before_delete` receives the readable copy to persist before the delete
                       and `after_create` the new id;
                       recreate_from(api, consumer, saved, value) -> new id: finish a recreate
                       that stopped between the delete and the create

## Scope scans (`reconcile check`, `reconcile discover`)

The capabilities a scan of the discovery scopes reads, with the records they produce, live in
`reconciler.kinds._discovery`:

    ScannedSource      scan_keys(scope, lists) -> [ListKey]; scan_tokens(key, rows, scope, lists)
                       -> [ScopeToken]: the live tokens of a scope; value_format: how its tokens
                       are recognised in held values (None: they are not)
    ScannedConsumer    scan_keys(scope, lists) -> [ListKey]; places(key, rows, lists) -> (places,
                       notes): the readable places of a scope and notes on the write-only ones
    ExpiringSource     declared_expiry(source) -> date | None: the expiry the inventory declares
                       (nothing live to read it from)
    SunsetSource       sunset -> Sunset: its provider is retiring the kind (cutoff, inactivity
                       rule, the replacement to propose)
    DeadlineSource     deadlines(provider, lists, now) -> [Deadline]: live tokens that must change
                       before a date of their provider (`check`: local Zendesk OAuth clients whose
                       tokens never expire, before 2027-04-01)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, TypeVar, cast

from reconciler.inventory.model import Consumer, Diagnostic, Inventory, Policy, Source, Token
from reconciler.observed import ConsumerObservation, LiveToken, SourceObservation
from reconciler.plan_model import Finding, Reason, Severity, TokenAction
from reconciler.secret import Secret

if TYPE_CHECKING:
    from reconciler.inventory.build import Place

Strategy = Literal["overlap", "in_place", "external", "observe_only"]


# The `value` property of the schema fragment of a consumer kind that delivers through a template.
VALUE_TEMPLATE_PROPERTY: dict[str, Any] = {
    "$ref": "#/$defs/template",
    "description": "What the consumer receives: a template in which `${token}` stands for the token value, "
                   "e.g. `Bearer ${token}`. Default `${token}`.",
}

class ListKey(NamedTuple):
    """One list call: `resource` of `scope` at `provider` (deduplicated across the inventory)."""

    provider: str
    resource: str  # a key of the provider's FETCHERS
    scope: str = ""  # project/group path, user id, hook "project:path#id", "" for provider-wide
    # the inventory token whose current value authenticates the call (a source's `created_with`);
    # "" for the provider's own credential
    credential: str = ""


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


# --- source kinds ------------------------------------------------------------------------------


class SourceKind(ABC):
    # The inventory side: the dataclass a `source:` of this kind builds (`from_document`), the
    # JSON-Schema fragment that validates it (`python -m reconciler.inventory.schema_file --write`
    # puts it in the schema file) and the checks the schema cannot express (`check`, run by
    # `reconcile validate`). `schema_order` places the kind in the schema's kind list (and so in
    # the messages and the README); equal orders go by kind name.
    model: type[Source]
    schema: dict[str, Any]
    schema_order: int = 100
    value_alphabet: ClassVar[frozenset[str] | None] = None  # the characters its values are made of

    def from_document(self, fields: dict[str, Any], at: Place) -> Source:
        """The model of a schema-valid `source:` mapping (`fields`: its keys but `kind`, lists as tuples)."""
        return self.model(**fields, **at.where())

    def check(self, token: Token, inv: Inventory, path: str) -> list[Diagnostic]:
        """What the schema cannot say about this kind's source of `token` (at dotted `path`)."""
        return []

    kind: ClassVar[str]
    provider_kind: ClassVar[str | None]
    noun: ClassVar[str] = "token"
    can_be_credential: ClassVar[bool] = False  # a provider's own credential can be a token of this kind

    @abstractmethod
    def strategy(self, source: Source) -> Strategy: ...

    def needs(self, token: Token, lists: Lists) -> list[ListKey]:
        return []

    @abstractmethod
    def observe(self, token: Token, lists: Lists) -> SourceObservation: ...

    def unmanaged(self, tokens: list[Token], lists: Lists) -> list[LiveToken]:
        """Live tokens in the lists this kind fetched that no inventory token names."""
        return []

    # planning hooks (pure) -------------------------------------------------------------------

    def due_reasons(self, token: Token, live: LiveToken | None, now: datetime) -> list[Reason]:
        """This kind's reasons why `token` is due (see the module docstring for when)."""
        return []

    def findings(self, token: Token, live: LiveToken | None, now: datetime, *, action: TokenAction,
                 strategy: Strategy, reasons: tuple[Reason, ...]) -> list[Finding]:
        """This kind's warnings and errors once the action is decided."""
        return []

    def job_env(self, source: Source) -> list[tuple[str, str, bool]]:
        """Environment variables an apply of this source reads besides the provider credential, as
        (name, purpose, optional), for `reconcile env` (a grant's client secret and refresh token)."""
        return []

    def observed_findings(self, token: Token, observation: SourceObservation) -> list[Finding]:
        """This kind's errors about what observation found beside the token (a consumer's URL
        naming another target than the token's own); the planner fills in `token` and an empty `at`."""
        return []

    def manual_create(self, source: Source) -> str:
        """What a person must do when the plan needs a token this kind cannot mint."""
        return f"the {self.noun} cannot be created through the API: create it by hand"

    # reports (check, discover) ---------------------------------------------------------------

    @abstractmethod
    def id_family(self) -> str | None:
        """The id space its live ids share within a provider (GitLab PATs and resource access
        tokens are rows of one table); None for a kind with no live tokens."""

    @abstractmethod
    def display_name(self, source: Source) -> str | None:
        """How a report names `source` for a person; None: by its inventory name."""

    revoke_verb: ClassVar[str] = "revoked"  # what `Revocable.revoke` does, for apply's messages

    def replaces(self, source: Source) -> str | None:
        """The inventory token (of a kind its provider is retiring) this source replaces: apply
        delivers this source's credential to the consumers that moved here, verifies them, and
        only then revokes the replaced one's live credential (`migration`)."""
        return None

    def scope_approval(self, source: Source, policy: Policy) -> str | None:
        """Which approval of `policy` covers this source's scopes, in words for the plan."""
        return None

    def parts(self, source: Source) -> tuple[str, ...]:
        """The parts of this source's credential (`${token.PART}`); () when it is one value."""
        return ()

    @property
    def identifies_values(self) -> bool:
        """`identify()` can tell which live token a held value is."""
        return isinstance(self, Identifying)


class Mintable(ABC):
    """A new token can be created beside the old one."""

    @abstractmethod
    def mint(self, api: Any, source: Source, *, expires_at: date | None) -> Minted: ...

    def mintable_for(self, source: Source) -> bool:
        """Whether this source's token can be minted (e.g. only by an admin: `strategy: overlap`)."""
        return True


class Renewable(ABC):
    """Rotated in place: the old value dies at once."""

    @abstractmethod
    def renew(self, api: Any, source: Source, live: LiveToken, *, expires_at: date | None) -> Minted: ...


class Revocable(ABC):
    @abstractmethod
    def revoke(self, api: Any, source: Source, live: LiveToken) -> None: ...


class Recoverable(ABC):
    """The API shows the current value of an `owned` live token again."""

    @abstractmethod
    def recover(self, api: Any, source: Source, live: LiveToken) -> Secret | None: ...


class Verifying(ABC):
    """A new value can be proven to be a live token before the old one is revoked. `api` is
    always the handle of the source's own provider."""

    @abstractmethod
    def verify_value(self, api: Any, source: Source, live: LiveToken, value: Secret) -> bool | None:
        """Whether `value` is the live token `live`; None when the kind cannot tell."""


class Identifying(Verifying):
    """A value can be matched to a live token (authenticate with it, or compare with a list).
    `api` is always the handle of the source's own provider, a trusted one: a value read from a
    consumer is never sent anywhere else (reconciler.trust)."""

    @abstractmethod
    def identify(self, api: Any, source: Source, value: Secret, lists: Lists) -> Identity | None:
        """Which live token `value` is, or None when it cannot be told."""


@dataclass(frozen=True)
class Grant:
    """What an OAuth grant answered: the new access token and, from a refresh, the refresh
    token that replaces the one just spent (None from a `client_credentials` grant)."""

    access_token: Secret
    refresh_token: Secret | None


class GrantRefused(Exception):
    """The provider refused the grant. `spent`: it said the refresh token itself is no use
    (unknown, spent, revoked or expired: OAuth's `invalid_grant`, RFC 6749 section 5.2); any other
    refusal (the client's authentication, a parameter, a missing secret) says nothing about the
    refresh token, which may still be good."""

    def __init__(self, message: str, *, spent: bool = False) -> None:
        super().__init__(message)
        self.spent = spent


class Refreshable(ABC):
    """Renewed through an OAuth grant the tool holds: each refresh spends the refresh token and
    answers a new access token and a new refresh token (the old pair dies at once)."""

    @abstractmethod
    def refresh(self, api: Any, source: Source, refresh_token: Secret, *, lifetime: timedelta | None,
                env: Mapping[str, str]) -> Grant:
        """A new pair for `refresh_token`; GrantRefused when the provider does not accept it.
        `env`: the job's environment (a confidential client's secret is read from it)."""

    @abstractmethod
    def client_credentials(self, api: Any, source: Source, *, lifetime: timedelta | None,
                           env: Mapping[str, str]) -> Grant | None:
        """A token without a refresh token, where the source declares that fallback; else None."""

    @abstractmethod
    def live_of(self, api: Any, source: Source, value: Secret) -> LiveToken:
        """The live record (id, creation, expiries) of a just-granted access token."""

    @abstractmethod
    def initial_refresh_token(self, source: Source, env: Mapping[str, str]) -> Secret | None:
        """A refresh token a person supplied (from an authorization), None when there is none."""

    @abstractmethod
    def how_to_reauthorise(self, source: Source) -> str:
        """What a person does when the grant is lost (refresh token refused or never supplied)."""

    def starts_without_live(self, source: Source) -> bool:
        """A token can be had with no live one to refresh (a `client_credentials` fallback)."""
        return False


class Creator(ABC):
    """Its value authenticates to its provider's API as a user, so another source can name it as
    the credential it is created with (`created_with`): what that source creates belongs to this
    token's user, not to the person whose credential the provider holds."""

    @abstractmethod
    def as_creator(self, api: Any, value: Secret, token: str) -> Any:
        """A handle like `api` (the token's own provider) that authenticates with `value`, the
        current value of the inventory token `token`."""

    def creator_problem(self, source: Source) -> str | None:
        """Why this source cannot be a creator, or None. A rotation that gives the token another
        user would leave what the old user created to a user whose last token is revoked."""
        return None


@dataclass(frozen=True)
class LastUse:
    """What a provider says of a live token's use: the last use it recorded (None: none) and how
    often it records one (`every`: a use within that time after the recorded one is not recorded,
    so the token may have been used until `latest` without a trace)."""

    at: datetime | None
    every: timedelta = timedelta(0)

    @property
    def latest(self) -> datetime | None:
        """The latest moment the token may have been used, as far as the provider can tell."""
        return None if self.at is None else self.at + self.every


class UseRecorded(ABC):
    """The provider records when each live token was last used: apply revokes one only when it
    is quiet (no use after the new value reached its last consumer, or within the rotation's
    `quiet_period`), whatever kind replaces it."""

    @abstractmethod
    def last_use(self, live: LiveToken) -> LastUse:
        """The last use the provider recorded of `live` (as observe read it) and its granularity."""

    def use_keys(self, token: Token) -> list[ListKey] | None:
        """The list calls whose answer says when the token's instances were last used: read
        again before a revoke, while the token's other lists (ids that do not change within a
        run) are taken from this run's observation. None: every list it needs is read again."""
        return None


class Supplied(ABC):
    """A person supplies each new value at apply time; there is no live token to observe."""

    @abstractmethod
    def supplied_value(self, source: Source, env: Mapping[str, str]) -> Secret:
        """The value supplied now; ValueError (its message for people) when it is not there."""

    def supplied_env(self, source: Source) -> str | None:
        """The environment variable an apply reads the value from, when it comes from one
        (`reconcile env` lists it for CI); None when it comes from elsewhere (a file)."""
        return None

    @abstractmethod
    def how_to_supply(self, source: Source) -> str:
        """What a person does so that the next unattended apply (CI) finds the value, e.g. "set X
        as a masked, protected CI/CD variable, then run the pipeline"."""


# --- consumer kinds ----------------------------------------------------------------------------


class ConsumerKind(ABC):
    # The inventory side, as for SourceKind.
    model: type[Consumer]
    schema: dict[str, Any]
    schema_order: int = 100

    def from_document(self, fields: dict[str, Any], at: Place) -> Consumer:
        """The model of a schema-valid consumer mapping (`fields`: its keys but `kind`, lists as tuples)."""
        return self.model(**fields, **at.where())

    def check(self, token: Token, consumer: Consumer, inv: Inventory, path: str) -> list[Diagnostic]:
        """What the schema cannot say about `consumer` (at dotted `path`), beyond its template."""
        return []

    kind: ClassVar[str]
    provider_kind: ClassVar[str]

    @abstractmethod
    def needs(self, consumer: Consumer, lists: Lists) -> list[ListKey]: ...

    @abstractmethod
    def observe(self, token: Token, consumer: Consumer, lists: Lists) -> Reading: ...

    @abstractmethod
    def write(self, api: Any, consumer: Consumer, value: Secret, observed: ConsumerObservation) -> None: ...

    @abstractmethod
    def verify(self, api: Any, consumer: Consumer, value: Secret) -> bool | None: ...

    def template(self, consumer: Consumer) -> str:
        """What the value is rendered through before it is written (`Bearer ${token}`, a URL)."""
        return consumer.value

    def place(self, consumer: Consumer) -> str:
        """The object a write of `consumer` reads and puts back: apply writes consumers of one
        place one at a time and others at once. Its own identity unless several consumers share
        one object (the secrets of one webhook, the settings of one app installation)."""
        return consumer.identity

    # planning hooks (pure) -------------------------------------------------------------------

    def desired_attributes(self, consumer: Consumer) -> dict[str, Any]:
        """The non-secret attributes the inventory manages, compared with the observation's."""
        return {}

    def findings(self, consumer: Consumer, observation: ConsumerObservation, writing: bool) -> list[tuple[Severity, str, str]]:
        """Kind-specific problems as (severity, code, message); `writing`: a write is planned."""
        return []

    def declared_url(self, consumer: Consumer) -> tuple[str, str] | None:
        """(key, URL) when the inventory names the URL this consumer sends the value to or in (a
        template: `${token}` stands for the value), so that the source kind can check it names the
        token's own target; None otherwise."""
        return None

    # reads only a planned write needs (reconciler.pipeline) --------------------------------------

    def write_needs(self, consumer: Consumer, observation: ConsumerObservation) -> list[ListKey]:
        """The calls the plan needs before it can say a write of this consumer is safe, beyond
        what `needs` observes for every consumer: made only for the consumers the plan writes."""
        return []

    def observe_write(self, consumer: Consumer, observation: ConsumerObservation, lists: Lists) -> ConsumerObservation:
        """`observation` completed with what the calls of `write_needs` returned."""
        return observation


class Creatable:
    """`write` creates the place when it is missing."""

    def creatable(self, consumer: Consumer, observation: ConsumerObservation) -> bool:
        """Whether this missing place can be created: not when observe marked it
        `details["creatable"] = False` (its parent, e.g. an app installation, is missing too)."""
        return bool(observation.details.get("creatable", True))


class Readable(ABC):
    @abstractmethod
    def read(self, api: Any, consumer: Consumer) -> Secret | None:
        """The value the consumer holds now (as held, after the template), when readable."""


class ListVerifiable(ABC):
    """Read back from lists fetched after the writes: one list per scope serves every consumer of
    the token there, instead of one GET each."""

    @abstractmethod
    def verify_keys(self, consumer: Consumer) -> list[ListKey]:
        """The list calls `verify_listed` reads; [] when this consumer is verified with `verify`
        (or needs no read: write-only)."""

    @abstractmethod
    def verify_listed(self, consumer: Consumer, value: Secret, lists: Lists) -> bool | None:
        """`verify` from those lists. Raises when the list could not be read."""


class VerifiableAlone(ABC):
    """A list-verified consumer that one read of its own also verifies: cheaper than its list when
    the list has more pages than the token has consumers in it (a Zendesk instance's hundreds of
    webhooks, a popular project's variables)."""

    list_page_size: ClassVar[int]  # rows a page of the lists `verify_keys` names

    @abstractmethod
    def verify_alone(self, api: Any, consumer: Consumer, value: Secret, observed: ConsumerObservation) -> bool | None:
        """`verify_listed` from one read of this consumer (the place observe found,
        `observed.live_id`). Raises when it could not be read."""


class AttributeWritable(ABC):
    @abstractmethod
    def write_attributes(self, api: Any, consumer: Consumer, observed: ConsumerObservation) -> bool:
        """Update only the managed attributes, leaving the value as it is. False when that cannot
        be done without writing the value."""


class Recreatable(ABC):
    """A write that may delete the place and create it again (the value cannot be set in place)."""

    @abstractmethod
    def recreates(self, consumer: Consumer) -> bool:
        """This consumer's write deletes and creates the place."""

    @abstractmethod
    def copies(self, consumer: Consumer) -> str:
        """What the place created again is made of (and what it loses), in words for the plan."""

    @abstractmethod
    def listed(self, consumer: Consumer, observed: ConsumerObservation, lists: Lists) -> dict[str, Any] | None:
        """The place as observe read it this run (None: `write` reads it itself)."""

    @abstractmethod
    def write(self, api: Any, consumer: Consumer, value: Secret, observed: ConsumerObservation, *,
              before_delete: Callable[[dict[str, Any]], None] | None = None,
              listed: dict[str, Any] | None = None, after_create: Callable[[str], None] | None = None) -> None:
        """Deliver `value` (as `ConsumerKind.write`); `after_create` receives the new id of a
        place it created again."""

    @abstractmethod
    def recreate_from(self, api: Any, consumer: Consumer, saved: Mapping[str, Any], value: Secret | None) -> str:
        """Create the place again from the copy `before_delete` received; the new id."""


C = TypeVar("C")


def capable(kind: object, capability: Callable[..., C]) -> C:
    """`kind` as having `capability` (one of the capability classes above), which the plan
    already guarantees; NotImplementedError when it does not (a plan made for another inventory).
    Typed as a callable because mypy refuses an abstract class where a `type[C]` is expected."""
    if isinstance(kind, capability):  # type: ignore[arg-type]
        return cast(C, kind)
    name = capability.__name__ if isinstance(capability, type) else str(capability)
    raise NotImplementedError(f"{type(kind).__name__} is not {name}")


def fetcher_of(provider_kind: str, resource: str) -> Callable[[Any, str], Any]:
    """The list call of `resource` (a ListKey's) at a provider of `provider_kind`, from the
    provider helpers' FETCHERS; KeyError when there is none."""
    from reconciler.kinds import _gitlab, _zendesk

    return {"gitlab": _gitlab.FETCHERS, "zendesk": _zendesk.FETCHERS}[provider_kind][resource]


def read_back(lists: Lists, key: ListKey) -> Any:
    """The data of a list fetched for verification; raises (LookupError) when it failed."""
    data = lists.get(key)
    if isinstance(data, FetchError):
        raise LookupError(f"reading back failed: {data.message}")
    if data is None:
        raise LookupError("not read back")
    return data


def holds_whole_value(template: str) -> bool:
    """A value rendered through `template` contains the whole token (`${token}`), so the token can
    be read back out of it; not so for a template naming parts (`${token.secret}`)."""
    return "${token}" in template


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


# --- the registry: every public module of this package is a kind module, and every SourceKind or
# ConsumerKind instance at its top level is registered under its `kind`. Adding a kind is adding
# its module.

_SOURCES: dict[str, SourceKind] = {}
_CONSUMERS: dict[str, ConsumerKind] = {}


def source_kind(name: str) -> SourceKind:
    """The source kind called `name`; KeyError when there is none."""
    return _registry()[0][name]


def consumer_kind(name: str) -> ConsumerKind:
    """The consumer kind called `name`; KeyError when there is none."""
    return _registry()[1][name]


def source_kinds() -> list[SourceKind]:
    """Every source kind, in schema order."""
    return list(_registry()[0].values())


def consumer_kinds() -> list[ConsumerKind]:
    """Every consumer kind, in schema order."""
    return list(_registry()[1].values())


def all_kinds() -> tuple[list[SourceKind], list[ConsumerKind]]:
    """Every registered source kind and consumer kind, in registration order."""
    _load()
    return list(_SOURCES.values()), list(_CONSUMERS.values())


def noun(kind: str) -> str:
    """What people call a source kind's credential ("pipeline trigger"); the kind name if unknown."""
    found = _registry()[0].get(kind)
    return found.noun if found is not None else kind


def _registry() -> tuple[dict[str, SourceKind], dict[str, ConsumerKind]]:
    if not _SOURCES:
        _load()
    return _SOURCES, _CONSUMERS


def _load() -> None:
    """Import every public module of the package and register the kinds found at its top level."""
    import importlib
    import pkgutil

    sources: list[SourceKind] = []
    consumers: list[ConsumerKind] = []
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue  # provider helpers, not kinds
        found = vars(importlib.import_module(f"{__name__}.{module.name}")).values()
        sources += [k for k in found if isinstance(k, SourceKind)]
        consumers += [k for k in found if isinstance(k, ConsumerKind)]
    _CONSUMERS.update(_by_kind(consumers))
    _SOURCES.update(_by_kind(sources))  # last: a filled _SOURCES means the registry is loaded


def _by_kind(kinds: list[Any]) -> dict[str, Any]:
    """`kind` -> instance, in schema order. An instance imported into another module is found
    there too: the same one; two instances with one name are a mistake."""
    unique = list({id(k): k for k in kinds}.values())
    ordered = sorted(unique, key=lambda k: (k.schema_order, k.kind))
    names = [k.kind for k in ordered]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise RuntimeError(f"kind defined twice: {', '.join(duplicated)}")
    return {k.kind: k for k in ordered}
