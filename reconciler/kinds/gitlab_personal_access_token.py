"""Source kind `gitlab_personal_access_token`: a user's PAT, rotated in place.

Observe: `GET /user` (or `GET /users?username=`), then one `GET /personal_access_tokens?user_id=`
per user, pages followed; the token is the one whose name matches. On GitLab.com an Owner of a
top-level group reads an enterprise user's tokens in the group's credentials inventory instead
(`enterprise_group`: `GET /groups/:id/manage/personal_access_tokens`, and rotates and revokes
them there too; reconciler/kinds/_credentials_inventory.py). A non-admin can only rotate
(`POST /personal_access_tokens/:id/rotate`), which revokes the old value at once: strategy
`in_place`. `strategy: overlap` is for admins on self-managed (create for the user + revoke).
Identify a held value: authenticate with it (`GET /personal_access_tokens/self`).
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
    GITLAB_TOKEN_FAMILY,
    GITLAB_TOKENS,
    PROVIDER_PROPERTY,
    TOKEN_ALPHABET,
    AuthenticatesAsItself,
    RecordsLastUse,
    api_path,
    drift_reasons,
    live_token,
    pick,
    rows,
    self_user_id,
    token_scope_findings,
    user_keys,
)
from reconciler.observed import LiveToken, SourceObservation
from reconciler.plan_model import Reason
from reconciler.secret import Secret

if TYPE_CHECKING:
    pass


@dataclass(frozen=True, kw_only=True)
class GitLabPersonalAccessToken(Source):
    name: str  # the token's name on GitLab
    scopes: tuple[str, ...]
    user: str | None = None  # username; None means the user of the provider credential
    enterprise_group: str | None = None  # GitLab.com: read, rotated, revoked through its credentials inventory
    strategy: Literal["in_place", "overlap"] = "in_place"  # overlap: admins on self-managed only
    kind: ClassVar[str] = "gitlab_personal_access_token"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.user or '@self'}:{self.name}"


# Its definition in the inventory schema: $defs/source_gitlab_personal_access_token.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A GitLab personal access token, renewed with the rotate API (in place).",
    "properties": {
        "kind": {"const": "gitlab_personal_access_token", "description": "`gitlab_personal_access_token`."},
        "provider": PROVIDER_PROPERTY,
        "name": {"type": "string", "description": "The token's name on GitLab.", "minLength": 1},
        "scopes": {"$ref": "#/$defs/gitlab_scopes", "description": "Scopes of the token, e.g. `[api]`."},
        "user": {
            "type": "string",
            "description": "Username owning the token; default: the user of the provider's credential.",
            "minLength": 1,
        },
        "enterprise_group": {
            "type": "string",
            "description": "GitLab.com: the top-level group whose enterprise user `user` is. The token is then read, "
                           "rotated and revoked through the group's credentials inventory, as an Owner of the group "
                           "may (Ultimate), instead of as the user or an administrator.",
            "minLength": 1,
        },
        "strategy": {
            "enum": ["in_place", "overlap"],
            "description": "`in_place` (default: rotate, the old value dies at once) or `overlap` (create + revoke: needs an administrator on a self-managed instance).",
        },
    },
    "additionalProperties": False,
    "required": ["kind", "provider", "name", "scopes"],
}


class PersonalAccessTokenKind(SourceKind, Mintable, Renewable, Revocable, AuthenticatesAsItself, RecordsLastUse, ScannedSource):
    model = GitLabPersonalAccessToken
    schema = SCHEMA
    schema_order = 10
    value_alphabet = TOKEN_ALPHABET
    kind = "gitlab_personal_access_token"
    provider_kind = "gitlab"
    noun = "personal access token"
    can_be_credential = True

    def check(self, token: Token, inv: Inventory, path: str) -> list[Diagnostic]:
        source = token.source
        assert isinstance(source, GitLabPersonalAccessToken)
        found = token_scope_findings(source, source.scopes, path, inv)
        if source.strategy == "overlap":
            found.append(finding(
                source, "strategy", path,
                "overlap creates a new personal access token for the user: only an administrator on a self-managed or Dedicated instance can (not on gitlab.com)",
                warning=True))
        if source.enterprise_group is not None and source.user is None:
            found.append(finding(source, "enterprise_group", path,
                                 "enterprise_group names another user's token: give that user's username in `user`"))
        if source.enterprise_group is not None and "/" in source.enterprise_group.strip("/"):
            found.append(finding(source, "enterprise_group", path, f"{source.enterprise_group!r} is a subgroup: "
                                 "enterprise users and the credentials inventory belong to a top-level group"))
        return found

    def strategy(self, source: Source) -> Strategy:
        assert isinstance(source, GitLabPersonalAccessToken)
        return source.strategy

    def mintable_for(self, source: Source) -> bool:
        """Only an admin on self-managed can create a PAT for a user; that is `strategy: overlap`."""
        return isinstance(source, GitLabPersonalAccessToken) and source.strategy == "overlap"

    def due_reasons(self, token: Token, live: LiveToken | None, now: datetime) -> list[Reason]:
        src = token.source
        assert isinstance(src, GitLabPersonalAccessToken) and live is not None
        return drift_reasons(src, live, src.scopes)

    def manual_create(self, source: Source) -> str:
        assert isinstance(source, GitLabPersonalAccessToken)
        return (f"GitLab offers no API to create this {self.noun} (a non-admin's PAT): create {source.name!r} by "
                "hand, then run again")

    def _uid(self, source: GitLabPersonalAccessToken, lists: Lists) -> tuple[str | None, str | None]:
        return self_user_id(str(source.provider), source.user, lists)

    def needs(self, token: Token, lists: Lists) -> list[ListKey]:
        source = token.source
        assert isinstance(source, GitLabPersonalAccessToken)
        keys = user_keys(str(source.provider), source.user)
        uid, _ = self._uid(source, lists)
        if uid is not None:
            keys.append(self._tokens_key(source, uid))
        return keys

    def _tokens_key(self, source: GitLabPersonalAccessToken, uid: str) -> ListKey:
        """The list the user's tokens are read from: the user's own, or the group's credentials inventory."""
        if source.enterprise_group is not None:
            return ListKey(str(source.provider), credentials_inventory.PATS, source.enterprise_group)
        return ListKey(str(source.provider), "pats", uid)

    def observe(self, token: Token, lists: Lists) -> SourceObservation:
        source = token.source
        assert isinstance(source, GitLabPersonalAccessToken)
        uid, error = self._uid(source, lists)
        if error or uid is None:
            return SourceObservation(token=token.name, identity=source.identity, error=error or "user unknown")
        data, error = rows(lists, self._tokens_key(source, uid))
        if error:
            return SourceObservation(token=token.name, identity=source.identity, error=error)
        where = f"user {source.user or '@self'}"
        matches = [live_token(r, where) for r in data or ()
                   if r.get("name") == source.name and (r.get("user_id") is None or str(r["user_id"]) == uid)]
        current, others = pick(matches)
        return SourceObservation(token=token.name, identity=source.identity, current=current, others=others,
                                 details={"user_id": uid})


    def unmanaged(self, tokens: list[Token], lists: Lists) -> list[LiveToken]:
        named = {(str(t.source.provider), t.source.name) for t in tokens if isinstance(t.source, GitLabPersonalAccessToken)}
        found = []
        for key, data in lists.items():
            if key.resource == "pats" and isinstance(data, list):
                for row in data:
                    live = live_token(row, f"{key.provider}: user #{key.scope}")
                    if live.usable and (key.provider, live.name) not in named:
                        found.append(live)
        return found

    # apply ------------------------------------------------------------------------------------

    def renew(self, api: Any, source: Source, live: LiveToken, *, expires_at: date | None) -> Minted:
        """`POST /personal_access_tokens/:id/rotate` with retries off (reuse detection)."""
        data: dict[str, Any] = {"expires_at": expires_at.isoformat()} if expires_at else {}
        row = api.gl.http_post(f"{self._admin_path(source)}/{live.id}/rotate", post_data=data,
                               retry_transient_errors=False)
        value = Secret(row.pop("token"))
        return Minted(live=live_token(row, live.where), value=value)

    def mint(self, api: Any, source: Source, *, expires_at: date | None) -> Minted:
        """Admins only: `POST /users/:id/personal_access_tokens`."""
        assert isinstance(source, GitLabPersonalAccessToken)
        uid = api.user_id(source.user)
        data: dict[str, Any] = {"name": source.name, "scopes": list(source.scopes)}
        if expires_at:
            data["expires_at"] = expires_at.isoformat()
        row = api.gl.http_post(f"/users/{uid}/personal_access_tokens", post_data=data, retry_transient_errors=False)
        value = Secret(row.pop("token"))
        return Minted(live=live_token(row, f"user {source.user or '@self'}"), value=value)

    def revoke(self, api: Any, source: Source, live: LiveToken) -> None:
        api.gl.http_delete(f"{self._admin_path(source)}/{live.id}")

    def _admin_path(self, source: Source) -> str:
        """Where the token is rotated and revoked: as its user (or an administrator), or through the
        credentials inventory of its enterprise group (`POST .../manage/personal_access_tokens/:id/rotate`,
        `DELETE .../manage/personal_access_tokens/:id`: https://docs.gitlab.com/api/groups/)."""
        assert isinstance(source, GitLabPersonalAccessToken)
        if source.enterprise_group is None:
            return "/personal_access_tokens"
        return api_path("groups", source.enterprise_group, "manage/personal_access_tokens")


    # scope scans and discovery -------------------------------------------------------------

    value_format = GITLAB_TOKENS

    def id_family(self) -> str:
        return GITLAB_TOKEN_FAMILY

    def display_name(self, source: Source) -> str | None:
        assert isinstance(source, GitLabPersonalAccessToken)
        return source.name

    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]:
        """The PATs of each user the scope lists: an administrator's credential reads each user's
        list; any other reads its own, and the others' from the credentials inventory of the
        scope's top-level groups (GitLab.com), then asks for the list of each listed user the
        inventory has no row of (a user who is not an enterprise user of those groups: refused,
        and the scan says who may read it)."""
        groups = credentials_inventory.inventory_groups(scope, lists)
        if groups is None:
            return []
        if not groups:
            return [ListKey(scope.provider, "pats", uid) for uid in scope.listed_users]
        me = credentials_inventory.credential_user(scope, lists)
        mine = str(me["id"]) if me else None
        others = [uid for uid in scope.listed_users if uid != mine]
        own = [ListKey(scope.provider, "pats", uid) for uid in scope.listed_users if uid == mine]
        return own + (credentials_inventory.pat_keys(scope, lists, groups, others) if others else [])

    def scan_tokens(self, key: ListKey, rows: list[dict[str, Any]], scope: ScanScope,
                    lists: Lists) -> list[ScopeToken]:
        if key.resource == "pats":
            return [self._scope_token(key.provider, row, scope.users.get(key.scope, f"#{key.scope}"), scope)
                    for row in rows]
        if key.resource == credentials_inventory.PATS:
            # the inventory lists every enterprise user and service account of the group: the
            # scope's listed users are the ones it is about (not the credential's own: its list)
            me = credentials_inventory.credential_user(scope, lists)
            wanted = set(scope.listed_users) - {str(me["id"]) if me else ""}
            return [self._scope_token(key.provider, row, scope.users[str(row.get("user_id"))], scope,
                                      enterprise_group=key.scope)
                    for row in rows if str(row.get("user_id")) in wanted]
        return []

    def _scope_token(self, provider: str, row: dict[str, Any], username: str, scope: ScanScope,
                     enterprise_group: str | None = None) -> ScopeToken:
        known = not username.startswith("#")
        live = live_token(row, f"{provider}: user {username}")
        declaration: dict[str, Any] = {"kind": self.kind, "provider": provider, "name": live.name,
                                       "scopes": list(live.scopes) or ["api"]}
        user = scope.users.get(str(row.get("user_id")), username)
        if user and not user.startswith("#"):
            declaration["user"] = user
        if enterprise_group is not None:
            declaration["enterprise_group"] = enterprise_group
        return ScopeToken(provider=provider, kind=self.kind, scope=username, live=live, family=GITLAB_TOKEN_FAMILY,
                          owner=f"@{username}" if known and username else None,
                          can_be_credential=self.can_be_credential, declaration=declaration)


KIND = PersonalAccessTokenKind()
