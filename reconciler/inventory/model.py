"""The inventory model: what the YAML in `inventory/` declares, as plain typed dataclasses.

Every object keeps the `Position` it was declared at, and `key_pos` maps each of its YAML keys
to the position of that key, so that validation, plan and apply can all cite
`inventory/tokens.yaml:12:5`. Nothing here knows an API; the kinds under `reconciler/kinds/`
do. Sources and consumers are one dataclass per kind, so a kind's fields are checked by the type
checker and read by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar, Literal

# --- positions -------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
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
    key_pos: dict[str, Position] = field(default_factory=dict, compare=False, repr=False, kw_only=True)

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


@dataclass(frozen=True, kw_only=True)
class Rotation(Located):
    """When a token is due. Effective values: token's own `rotation:` over `defaults.rotation`."""

    rotate_before: timedelta | None = None  # rotate when it expires within this
    lifetime: timedelta | None = None  # expires_at = now + lifetime when minting
    max_age: timedelta | None = None  # rotate when older than this
    not_before: date | None = None  # rotate when created before this date (incident lever)

    def merged_over(self, base: Rotation) -> Rotation:
        """This rotation with every unset field taken from `base` (defaults)."""
        return Rotation(
            rotate_before=self.rotate_before if self.rotate_before is not None else base.rotate_before,
            lifetime=self.lifetime if self.lifetime is not None else base.lifetime,
            max_age=self.max_age if self.max_age is not None else base.max_age,
            not_before=self.not_before if self.not_before is not None else base.not_before,
            pos=self.pos,
            key_pos={**base.key_pos, **self.key_pos},
        )


@dataclass(frozen=True, kw_only=True)
class Policy(Located):
    max_lifetime: timedelta | None = None
    allowed_scopes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # source kind -> scopes
    max_access_level: int | None = None  # project/group tokens: highest access level allowed


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

    @property
    def identity(self) -> str:
        """Stable key of the live object this source names (ledger key, dedup key)."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class GitLabPersonalAccessToken(Source):
    name: str  # the token's name on GitLab
    scopes: tuple[str, ...]
    user: str | None = None  # username; None means the user of the provider credential
    strategy: Literal["in_place", "overlap"] = "in_place"  # overlap: admins on self-managed only
    kind: ClassVar[str] = "gitlab_personal_access_token"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.user or '@self'}:{self.name}"


@dataclass(frozen=True, kw_only=True)
class GitLabProjectAccessToken(Source):
    project: str  # full path, e.g. gitlab-com/support/sync, or numeric id as a string
    name: str
    scopes: tuple[str, ...]
    access_level: int = 40
    strategy: Literal["in_place", "overlap"] = "in_place"
    kind: ClassVar[str] = "gitlab_project_access_token"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.project}:{self.name}"


@dataclass(frozen=True, kw_only=True)
class GitLabGroupAccessToken(Source):
    group: str
    name: str
    scopes: tuple[str, ...]
    access_level: int = 40
    strategy: Literal["in_place", "overlap"] = "in_place"
    kind: ClassVar[str] = "gitlab_group_access_token"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.group}:{self.name}"


@dataclass(frozen=True, kw_only=True)
class GitLabPipelineTrigger(Source):
    project: str
    description: str  # identifies the trigger: "Zendesk Global - GitLab Ticket Sync"
    kind: ClassVar[str] = "gitlab_pipeline_trigger"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.project}:{self.description}"


@dataclass(frozen=True, kw_only=True)
class ZendeskOAuthToken(Source):
    client: str  # the OAuth client's identifier (unique per account)
    scopes: tuple[str, ...]
    kind: ClassVar[str] = "zendesk_oauth_token"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.client}:{' '.join(sorted(self.scopes))}"


@dataclass(frozen=True, kw_only=True)
class ZendeskOAuthClientSecret(Source):
    client: str  # identifier
    kind: ClassVar[str] = "zendesk_oauth_client_secret"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.client}"


@dataclass(frozen=True, kw_only=True)
class ZendeskApiToken(Source):
    description: str  # identifies the token in GET /api/v2/api_tokens
    kind: ClassVar[str] = "zendesk_api_token"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.description}"


@dataclass(frozen=True, kw_only=True)
class ExternalSource(Source):
    """A credential no API can mint: a person supplies the new value at apply time."""

    value_env: str | None = None  # read the new value from this environment variable
    value_file: str | None = None  # or from this file
    expires_at: date | None = None  # when known, so check can warn
    kind: ClassVar[str] = "external"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.value_env or self.value_file}"


SOURCE_KINDS: dict[str, type[Source]] = {
    cls.kind: cls
    for cls in (
        GitLabPersonalAccessToken,
        GitLabProjectAccessToken,
        GitLabGroupAccessToken,
        GitLabPipelineTrigger,
        ZendeskOAuthToken,
        ZendeskOAuthClientSecret,
        ZendeskApiToken,
        ExternalSource,
    )
}

# Which provider kind each source kind needs (None: no provider).
SOURCE_PROVIDER_KIND: dict[str, str | None] = {
    "gitlab_personal_access_token": "gitlab",
    "gitlab_project_access_token": "gitlab",
    "gitlab_group_access_token": "gitlab",
    "gitlab_pipeline_trigger": "gitlab",
    "zendesk_oauth_token": "zendesk",
    "zendesk_oauth_client_secret": "zendesk",
    "zendesk_api_token": "zendesk",
    "external": None,
}


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


@dataclass(frozen=True, kw_only=True)
class GitLabCiVariable(Consumer):
    key: str
    project: str | None = None  # exactly one of project, group, instance
    group: str | None = None
    instance: bool = False
    environment_scope: str = "*"
    # Attributes the inventory manages when set; None means "leave as it is".
    masked: bool | None = None
    protected: bool | None = None
    hidden: bool | None = None  # only settable at creation (GitLab: masked_and_hidden)
    raw: bool | None = None
    variable_type: Literal["env_var", "file"] | None = None
    description: str | None = None
    kind: ClassVar[str] = "gitlab_ci_variable"

    @property
    def scope(self) -> str:
        if self.project is not None:
            return f"project:{self.project}"
        if self.group is not None:
            return f"group:{self.group}"
        return "instance"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.scope}:{self.key}:{self.environment_scope}"

    @property
    def label(self) -> str:
        return f"CI variable {self.key} ({self.scope}, scope {self.environment_scope})"


@dataclass(frozen=True, kw_only=True)
class WebhookSecretField:
    """Where in a GitLab webhook the value goes."""

    field: Literal["token", "url_variable", "custom_header"] = "token"
    name: str | None = None  # key of the URL variable or custom header


@dataclass(frozen=True, kw_only=True)
class GitLabWebhook(Consumer):
    hook: str  # name of the hook, its URL, or its numeric id as a string
    project: str | None = None  # exactly one of project, group
    group: str | None = None
    target: WebhookSecretField = field(default_factory=WebhookSecretField)
    mode: Literal["recreate", "update"] = "update"
    # Values of the other URL variables / custom headers, which a recreate must re-supply
    # because GitLab never returns them. Plain, non-secret values only.
    url_variables: dict[str, str] = field(default_factory=dict)
    custom_headers: dict[str, str] = field(default_factory=dict)
    kind: ClassVar[str] = "gitlab_webhook"

    @property
    def scope(self) -> str:
        return f"project:{self.project}" if self.project is not None else f"group:{self.group}"

    @property
    def identity(self) -> str:
        where = self.target.field if self.target.field == "token" else f"{self.target.field}:{self.target.name}"
        return f"{self.kind}:{self.provider}:{self.scope}:{self.hook}:{where}"

    @property
    def label(self) -> str:
        return f"webhook {self.hook!r} ({self.scope}, {self.target.field}{'' if self.target.name is None else ' ' + self.target.name})"


@dataclass(frozen=True, kw_only=True)
class ZendeskAppSetting(Consumer):
    app: str  # the installation's name (settings.name)
    setting: str
    kind: ClassVar[str] = "zendesk_app_setting"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.app}:{self.setting}"

    @property
    def label(self) -> str:
        return f"app {self.app!r} setting {self.setting}"


@dataclass(frozen=True, kw_only=True)
class ZendeskWebhookAuth:
    type: Literal["bearer_token", "basic_auth", "api_key"]
    username: str | None = None  # basic_auth: the value is the password
    header: str | None = None  # api_key: header name; the value is the key


@dataclass(frozen=True, kw_only=True)
class ZendeskWebhook(Consumer):
    webhook: str  # name, or the 26-character id
    endpoint: str | None = None  # URL template with ${token} when the value goes in the URL
    authentication: ZendeskWebhookAuth | None = None  # when the value is the credential
    kind: ClassVar[str] = "zendesk_webhook"

    @property
    def identity(self) -> str:
        where = "endpoint" if self.endpoint is not None else "authentication"
        return f"{self.kind}:{self.provider}:{self.webhook}:{where}"

    @property
    def label(self) -> str:
        return f"Zendesk webhook {self.webhook!r} ({'endpoint' if self.endpoint is not None else 'authentication'})"


CONSUMER_KINDS: dict[str, type[Consumer]] = {
    cls.kind: cls for cls in (GitLabCiVariable, GitLabWebhook, ZendeskAppSetting, ZendeskWebhook)
}

CONSUMER_PROVIDER_KIND: dict[str, str] = {
    "gitlab_ci_variable": "gitlab",
    "gitlab_webhook": "gitlab",
    "zendesk_app_setting": "zendesk",
    "zendesk_webhook": "zendesk",
}


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
