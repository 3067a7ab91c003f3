"""The inventory model: what the YAML in `inventory/` declares, as plain typed dataclasses.

Every object keeps the `Position` it was declared at, and `key_pos` maps each of its YAML keys
to the position of that key, so that validation, plan and apply can all cite
`inventory/tokens.yaml:12:5`. Nothing here knows an API or a kind: sources and consumers are
one dataclass per kind, subclasses of `Source` and `Consumer` defined in their kind's module under
`reconciler/kinds/`, so a kind's fields are checked by the type checker and read by name. (This
module must not import the kinds: they import it.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar, Literal

# --- positions -------------------------------------------------------------------------------


@dataclass(frozen=True, order=True, slots=True)
class Position:
    file: str  # as given on the command line joined with the relative path, e.g. inventory/a.yaml
    line: int  # 1-based
    column: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


UNKNOWN = Position("<unknown>", 0, 0)


@dataclass(frozen=True, kw_only=True)
class Located:
    """Base of every model object: where it was declared and where each of its keys is."""

    pos: Position = field(default=UNKNOWN, compare=False, repr=False, kw_only=True)
    # a dict, or as the loader builds it a mapping that makes each Position when it is looked up
    key_pos: Mapping[str, Position] = field(default_factory=dict, compare=False, repr=False, kw_only=True)

    def at(self, key: str) -> Position:
        """Position of `key` in this object, or of the object itself when the key is absent."""
        return self.key_pos.get(key, self.pos)


# --- providers -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GitLabProvider(Located):
    name: str
    url: str  # e.g. https://gitlab.com
    token_env: str  # environment variable that holds the API credential
    title: str | None = None
    kind: ClassVar[str] = "gitlab"

    @property
    def display(self) -> str:
        return self.title or self.name

    @property
    def credential_envs(self) -> tuple[str, ...]:
        return (self.token_env,)


@dataclass(frozen=True, kw_only=True)
class ZendeskProvider(Located):
    name: str
    subdomain: str  # e.g. gitlab -> https://gitlab.zendesk.com
    title: str | None = None  # "Zendesk Global"
    oauth_token_env: str | None = None  # Authorization: Bearer
    email: str | None = None  # with api_token_env: Basic email/token:API_TOKEN
    api_token_env: str | None = None
    domain: str = "zendesk.com"
    kind: ClassVar[str] = "zendesk"

    @property
    def display(self) -> str:
        return self.title or self.name

    @property
    def credential_envs(self) -> tuple[str, ...]:
        return tuple(e for e in (self.oauth_token_env, self.api_token_env) if e)


Provider = GitLabProvider | ZendeskProvider


# --- rotation and policy ---------------------------------------------------------------------


DEFAULT_QUIET_PERIOD = timedelta(days=1)


@dataclass(frozen=True, kw_only=True)
class Rotation(Located):
    """When a token is due. Effective values: token's own `rotation:` over `defaults.rotation`."""

    rotate_before: timedelta | None = None  # rotate when it expires within this
    lifetime: timedelta | None = None  # expires_at = now + lifetime when minting
    max_age: timedelta | None = None  # rotate when older than this
    not_before: date | None = None  # rotate when created before this date (incident lever)
    # a consumer that cannot be verified: "warn" (unset) leaves the token, "rotate" rotates it
    on_unverifiable: Literal["warn", "rotate"] | None = None
    # how long a live token must have gone unused before apply revokes it (an orphan, a token
    # declared absent, an old token kept because it was in use); unset: a day
    quiet_period: timedelta | None = None

    @property
    def quiet(self) -> timedelta:
        """The quiet period in effect."""
        return self.quiet_period if self.quiet_period is not None else DEFAULT_QUIET_PERIOD

    @property
    def rotates_unverifiable(self) -> bool:
        """An unverifiable consumer is reason enough to rotate (default: only a warning)."""
        return self.on_unverifiable == "rotate"

    def merged_over(self, base: Rotation) -> Rotation:
        """This rotation with every unset field taken from `base` (defaults)."""
        return Rotation(
            rotate_before=self.rotate_before if self.rotate_before is not None else base.rotate_before,
            lifetime=self.lifetime if self.lifetime is not None else base.lifetime,
            max_age=self.max_age if self.max_age is not None else base.max_age,
            not_before=self.not_before if self.not_before is not None else base.not_before,
            on_unverifiable=self.on_unverifiable if self.on_unverifiable is not None else base.on_unverifiable,
            quiet_period=self.quiet_period if self.quiet_period is not None else base.quiet_period,
            pos=self.pos,
            key_pos={**base.key_pos, **self.key_pos},
        )


@dataclass(frozen=True, kw_only=True)
class Policy(Located):
    max_lifetime: timedelta | None = None
    allowed_scopes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # source kind -> scopes
    max_access_level: int | None = None  # project/group tokens: highest access level allowed
    # Zendesk provider -> OAuth client identifier -> the scope sets access requests approved
    approved_scopes: dict[str, dict[str, tuple[ScopeApproval, ...]]] = field(default_factory=dict)


@dataclass(frozen=True)
class ScopeApproval:
    """A scope set an access request approved (the runbook's gate: no unapproved scope)."""

    scopes: tuple[str, ...]
    access_request: str  # its URL

    def covers(self, scopes: tuple[str, ...]) -> bool:
        return set(scopes) <= set(self.scopes)


@dataclass(frozen=True, kw_only=True)
class StateConfig(Located):
    """Where the ledger, escrow and lock live."""

    backend: Literal["local", "gitlab"] = "local"
    path: str = ".reconcile"  # local backend: directory
    provider: str | None = None  # gitlab backend: Terraform-state endpoint of this project
    project: str | None = None
    name: str = "reconcile"  # state name on the Terraform-state endpoint
    escrow_key_env: str = "RECONCILE_ESCROW_KEY"


@dataclass(frozen=True, kw_only=True)
class GitLabDiscoveryScope(Located):
    provider: str
    users: tuple[str, ...] = ()  # PATs of these usernames
    groups: tuple[str, ...] = ()  # access tokens, triggers, variables and hooks in these groups
    projects: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ZendeskDiscoveryScope(Located):
    provider: str


@dataclass(frozen=True, kw_only=True)
class Discovery(Located):
    gitlab: tuple[GitLabDiscoveryScope, ...] = ()
    zendesk: tuple[ZendeskDiscoveryScope, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CheckConfig(Located):
    """The weekly report's GitLab issue (`reconcile check --issue`)."""

    within: timedelta = timedelta(days=21)
    issue_title: str = "Tokens expiring soon"
    issue_label: str = "token-checker"


# --- sources ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Source(Located):
    kind: ClassVar[str]
    provider: str | None
    # another token of the inventory whose value this one is created (and observed, revoked) with
    created_with: str | None = None

    @property
    def identity(self) -> str:
        """Stable key of the live object this source names (ledger key, dedup key)."""
        raise NotImplementedError


# --- consumers -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Consumer(Located):
    kind: ClassVar[str]
    provider: str
    value: str = "${token}"  # template of what the consumer receives

    @property
    def identity(self) -> str:
        """Stable key of the place this consumer writes to: the ledger key, and two consumers
        with the same identity are one place bound twice (an error)."""
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Short human name for plans and messages."""
        return self.identity


# --- tokens and the whole inventory ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Token(Located):
    name: str  # the key under `tokens:`
    source: Source
    consumers: tuple[Consumer, ...] = ()
    rotation: Rotation = field(default_factory=Rotation)  # effective: already merged over defaults
    description: str | None = None
    owner: str | None = None  # "@support-ops": mentioned in the weekly issue
    state: Literal["present", "absent"] = "present"


@dataclass(frozen=True, kw_only=True)
class Diagnostic:
    """A validation finding. Printed as `FILE:LINE:COL: KEY: message`."""

    pos: Position
    key: str  # dotted path, e.g. tokens.sync-trigger.source.provider
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "warning: "
        return f"{self.pos}: {self.key}: {prefix}{self.message}"


def finding(obj: Located, key: str, path: str, message: str, *, warning: bool = False) -> Diagnostic:
    """A diagnostic about `key` of `obj`, which sits at dotted `path` in the document; key "" is
    the object itself."""
    return Diagnostic(
        pos=obj.at(key),
        key=f"{path}.{key}" if key else path,
        message=message,
        severity="warning" if warning else "error",
    )


@dataclass(frozen=True, kw_only=True)
class Inventory:
    providers: dict[str, Provider]
    tokens: dict[str, Token]
    defaults: Rotation = field(default_factory=Rotation)
    policy: Policy = field(default_factory=Policy)
    state: StateConfig = field(default_factory=StateConfig)
    discovery: Discovery = field(default_factory=Discovery)
    check: CheckConfig = field(default_factory=CheckConfig)
    digest: str = ""  # sha256 of the inventory's files; a saved plan records it
    warnings: tuple[Diagnostic, ...] = ()

    def consumers(self) -> list[tuple[Token, Consumer]]:
        return [(t, c) for t in self.tokens.values() for c in t.consumers]

    def provider(self, name: str) -> Provider:
        return self.providers[name]


def describe(obj: Any) -> str:
    """One-line human name of a model object for messages."""
    if isinstance(obj, Token):
        return f"token {obj.name}"
    if isinstance(obj, Consumer):
        return obj.label
    return repr(obj)
