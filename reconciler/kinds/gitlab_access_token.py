"""Source kinds `gitlab_project_access_token` and `gitlab_group_access_token`.

Observe: one `GET /{projects,groups}/:id/access_tokens` per project/group, pages followed; the
token is the one whose name matches. Renewal follows the source's `strategy`: `in_place` rotates
(`POST .../access_tokens/:id/rotate`, the old value dies at once); `overlap` creates a new token
beside the old one (`POST .../access_tokens`, which creates a new bot user: the plan says so) and
revokes the old one after delivery. A scope or access-level change needs a new token (rotate
copies both). Identify a held value: authenticate with it (`GET /personal_access_tokens/self`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from reconciler.inventory.model import Diagnostic, Inventory, Source, Token, finding
from reconciler.kinds import (
    ListKey,
    Lists,
    Mintable,
    Minted,
    Renewable,
    Revocable,
    SourceKind,
    Strategy,
)
from reconciler.kinds import _credentials_inventory as credentials_inventory
from reconciler.kinds._discovery import ScannedSource, ScanScope, ScopeToken
from reconciler.kinds._gitlab import (
    CREATED_WITH_PROPERTY,
    GITLAB_TOKEN_FAMILY,
    GITLAB_TOKENS,
    PROVIDER_PROPERTY,
    TOKEN_ALPHABET,
    AuthenticatesAsItself,
    RecordsLastUse,
    drift_reasons,
    live_token,
    pick,
    rows,
    token_scope_findings,
)
from reconciler.observed import LiveToken, SourceObservation
from reconciler.plan_model import Finding, Reason, TokenAction, declared_at
from reconciler.secret import Secret

if TYPE_CHECKING:
    pass


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


def _resource_schema(resource: str, example_path: str, example_scope: str) -> dict[str, Any]:
    """The schema definition of a `resource` ("project" or "group") access token source:
    $defs/source_gitlab_<resource>_access_token. The two differ only in the resource's key."""
    kind = f"gitlab_{resource}_access_token"
    return {
        "type": "object",
        "description": f"A GitLab {resource} access token.",
        "properties": {
            "kind": {"const": kind, "description": f"`{kind}`."},
            "provider": PROVIDER_PROPERTY,
            resource: {
                "type": "string",
                "description": f"Full path of the {resource}, e.g. `{example_path}`, or its numeric id.",
                "minLength": 1,
            },
            "name": {"type": "string", "description": "The token's name on GitLab.", "minLength": 1},
            "scopes": {"$ref": "#/$defs/gitlab_scopes", "description": f"Scopes of the token, e.g. `[{example_scope}]`."},
            "access_level": {
                "$ref": "#/$defs/access_level",
                "description": "Role of the token's bot user; default 40 (maintainer).",
            },
            "strategy": {
                "enum": ["in_place", "overlap"],
                "description": "`in_place` (default: rotate) or `overlap` (create a new token beside the old, deliver, then revoke: a new bot user each time).",
            },
            "created_with": CREATED_WITH_PROPERTY,
        },
        "additionalProperties": False,
        "required": ["kind", "provider", resource, "name", "scopes"],
    }


PROJECT_SCHEMA = _resource_schema("project", "gitlab-com/support/sync", "api")
GROUP_SCHEMA = _resource_schema("group", "gitlab-com/support", "read_api")


ResourceAccessToken = GitLabProjectAccessToken | GitLabGroupAccessToken


def _resource_token(source: Source) -> ResourceAccessToken:
    assert isinstance(source, GitLabProjectAccessToken | GitLabGroupAccessToken)
    return source


class ResourceAccessTokenKind(SourceKind, Mintable, Renewable, Revocable, AuthenticatesAsItself, RecordsLastUse, ScannedSource):
    value_alphabet = TOKEN_ALPHABET
    can_be_credential = True

    def __init__(self, kind: str, resource: str, model: type[ResourceAccessToken], schema: dict[str, Any],
                 schema_order: int) -> None:
        self.kind = kind  # type: ignore[misc]
        self.resource = resource  # "project" | "group"
        self.model = model
        self.schema = schema
        self.schema_order = schema_order
        self.provider_kind = "gitlab"  # type: ignore[misc]
        self.noun = f"{resource} access token"  # type: ignore[misc]

    def check(self, token: Token, inv: Inventory, path: str) -> list[Diagnostic]:
        source = _resource_token(token.source)
        found = token_scope_findings(source, source.scopes, path, inv)
        limit = inv.policy.max_access_level
        if limit is not None and source.access_level > limit:
            found.append(finding(source, "access_level", path,
                                 f"access_level {source.access_level} exceeds policy.max_access_level {limit}"))
        return found

    def _scope(self, source: Source) -> str:
        token = _resource_token(source)
        return token.project if isinstance(token, GitLabProjectAccessToken) else token.group

    def _key(self, source: Source) -> ListKey:
        return ListKey(str(source.provider), f"{self.resource}_access_tokens", self._scope(source))

    def strategy(self, source: Source) -> Strategy:
        return _resource_token(source).strategy

    def creator_problem(self, source: Source) -> str | None:
        """Rotation in place keeps the token's bot user (the rotate API issues the new token to the
        same user: https://docs.gitlab.com/api/project_access_tokens/#rotate-a-project-access-token),
        so what it created stays owned by a live user. Overlap makes a new bot user each time and
        revokes the old one's token, after which the old bot is removed from the resource and
        blocked (its records going to the Ghost user until GitLab 17.9:
        https://gitlab.com/gitlab-org/gitlab/-/merge_requests/43373; kept since then:
        https://gitlab.com/gitlab-org/gitlab/-/merge_requests/178587). A pipeline trigger works
        only while its owner may create builds in the project (`Ci::Trigger#can_access_project?`
        in GitLab's app/models/ci/trigger.rb) and is deleted with its owner, so it would die."""
        if _resource_token(source).strategy == "overlap":
            return ("it rotates by overlap, which makes a new bot user each time and revokes the old one's "
                    "token, so what the old bot user created stops working: use strategy: in_place (rotation "
                    "keeps the bot user)")
        return None

    def needs(self, token: Token, lists: Lists) -> list[ListKey]:
        return [self._key(token.source)]

    def observe(self, token: Token, lists: Lists) -> SourceObservation:
        source = _resource_token(token.source)
        data, error = rows(lists, self._key(source))
        if error:
            return SourceObservation(token=token.name, identity=source.identity, error=error)
        where = f"{self.resource} {self._scope(source)}"
        matches = [live_token(r, where) for r in data or () if r.get("name") == source.name]
        current, others = pick(matches)
        return SourceObservation(token=token.name, identity=source.identity, current=current, others=others)


    # planning ---------------------------------------------------------------------------------

    def due_reasons(self, token: Token, live: LiveToken | None, now: datetime) -> list[Reason]:
        src = token.source
        assert isinstance(src, GitLabProjectAccessToken | GitLabGroupAccessToken) and live is not None
        return drift_reasons(src, live, src.scopes, src.access_level)

    def findings(self, token: Token, live: LiveToken | None, now: datetime, *, action: TokenAction,
                 strategy: Strategy, reasons: tuple[Reason, ...]) -> list[Finding]:
        if action == "none" or strategy != "overlap":
            return []
        return [Finding(severity="warning", code="new_bot_user", at=declared_at(token.source),
                        message=f"{token.name}: creating a new {self.noun} creates a new bot user on GitLab (a "
                                f"member of the {self.resource}); the old one goes when the old token is revoked")]

    def unmanaged(self, tokens: list[Token], lists: Lists) -> list[LiveToken]:
        named = {(self._key(t.source), _resource_token(t.source).name) for t in tokens if isinstance(t.source, self.model)}
        found = []
        for key, data in lists.items():
            if key.resource == f"{self.resource}_access_tokens" and isinstance(data, list):
                for row in data:
                    live = live_token(row, f"{key.provider}: {self.resource} {key.scope}")
                    if live.usable and (key, live.name) not in named:
                        found.append(live)
        return found

    # apply ------------------------------------------------------------------------------------

    def _manager(self, api: Any, source: Source) -> Any:
        parent = api.gl.projects if self.resource == "project" else api.gl.groups
        return parent.get(self._scope(source), lazy=True).access_tokens

    def mint(self, api: Any, source: Source, *, expires_at: date | None) -> Minted:
        """`POST .../access_tokens` (201) with name, scopes, access_level, expires_at."""
        token = _resource_token(source)
        data: dict[str, Any] = {"name": token.name, "scopes": list(token.scopes), "access_level": token.access_level}
        if expires_at:
            data["expires_at"] = expires_at.isoformat()
        row = self._manager(api, source).create(data, retry_transient_errors=False).asdict()
        value = Secret(row.pop("token"))
        return Minted(live=live_token(row, f"{self.resource} {self._scope(source)}"), value=value)

    def renew(self, api: Any, source: Source, live: LiveToken, *, expires_at: date | None) -> Minted:
        """`POST .../access_tokens/:id/rotate` (200), retries off (reuse detection)."""
        kwargs: dict[str, Any] = {"expires_at": expires_at.isoformat()} if expires_at else {}
        row = dict(self._manager(api, source).rotate(int(live.id), retry_transient_errors=False, **kwargs))
        value = Secret(row.pop("token"))
        return Minted(live=live_token(row, live.where), value=value)

    def revoke(self, api: Any, source: Source, live: LiveToken) -> None:
        self._manager(api, source).delete(int(live.id))


    # scope scans and discovery -------------------------------------------------------------

    value_format = GITLAB_TOKENS

    def id_family(self) -> str:
        return GITLAB_TOKEN_FAMILY

    def display_name(self, source: Source) -> str | None:
        return _resource_token(source).name

    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]:
        """The access tokens of each project (or group) of the scope: from the credentials
        inventory of its top-level group when the scan reads that one and it answers, else from
        the project's (group's) own list."""
        groups = credentials_inventory.inventory_groups(scope, lists)
        if groups is None:
            return []
        keys: list[ListKey] = []
        for path in scope.projects if self.resource == "project" else scope.groups:
            top = credentials_inventory.top_group(path)
            inventory = ListKey(scope.provider, credentials_inventory.RESOURCE_TOKENS, top)
            if top in groups and (inventory not in lists or credentials_inventory.answered(lists, inventory) is not None):
                keys.append(inventory)
            else:
                keys.append(ListKey(scope.provider, f"{self.resource}_access_tokens", path))
        return keys

    def scan_tokens(self, key: ListKey, rows: list[dict[str, Any]], scope: ScanScope,
                    lists: Lists) -> list[ScopeToken]:
        if key.resource == f"{self.resource}_access_tokens":
            return [self._scope_token(key.provider, key.scope, row) for row in rows]
        if key.resource == credentials_inventory.RESOURCE_TOKENS:
            paths = credentials_inventory.resource_paths(lists, key.provider, key.scope)
            return [self._scope_token(key.provider, credentials_inventory.resource_path(row, paths, key.scope), row)
                    for row in rows if row.get("resource_type") == self.resource]
        return []

    def _scope_token(self, provider: str, path: str, row: dict[str, Any]) -> ScopeToken:
        live = live_token(row, f"{provider}: {self.resource} {path}")
        declaration: dict[str, Any] = {"kind": self.kind, "provider": provider, self.resource: path,
                                       "name": live.name, "scopes": list(live.scopes) or ["api"]}
        if live.access_level is not None:
            declaration["access_level"] = live.access_level
        return ScopeToken(provider=provider, kind=self.kind, scope=path, live=live, family=GITLAB_TOKEN_FAMILY,
                          can_be_credential=self.can_be_credential, declaration=declaration)


PROJECT_KIND = ResourceAccessTokenKind("gitlab_project_access_token", "project", GitLabProjectAccessToken, PROJECT_SCHEMA, 20)
GROUP_KIND = ResourceAccessTokenKind("gitlab_group_access_token", "group", GitLabGroupAccessToken, GROUP_SCHEMA, 30)
