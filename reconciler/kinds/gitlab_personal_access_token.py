"""Source kind `gitlab_personal_access_token`: a user's PAT, rotated in place.

Observe: `GET /user` (or `GET /users?username=`), then one `GET /personal_access_tokens?user_id=`
per user, pages followed; the token is the one whose name matches. A non-admin can only rotate
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
from reconciler.kinds._discovery import ScannedSource, ScanScope, ScopeToken
from reconciler.kinds._gitlab import (
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
            keys.append(ListKey(str(source.provider), "pats", uid))
        return keys

    def observe(self, token: Token, lists: Lists) -> SourceObservation:
        source = token.source
        assert isinstance(source, GitLabPersonalAccessToken)
        uid, error = self._uid(source, lists)
        if error or uid is None:
            return SourceObservation(token=token.name, identity=source.identity, error=error or "user unknown")
        data, error = rows(lists, ListKey(str(source.provider), "pats", uid))
        if error:
            return SourceObservation(token=token.name, identity=source.identity, error=error)
        where = f"user {source.user or '@self'}"
        matches = [live_token(r, where) for r in data or () if r.get("name") == source.name]
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
        row = api.gl.http_post(f"/personal_access_tokens/{live.id}/rotate", post_data=data,
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
        api.gl.http_delete(f"/personal_access_tokens/{live.id}")


    # scope scans and discovery -------------------------------------------------------------

    value_format = GITLAB_TOKENS

    def id_family(self) -> str:
        return GITLAB_TOKEN_FAMILY

    def display_name(self, source: Source) -> str | None:
        assert isinstance(source, GitLabPersonalAccessToken)
        return source.name

    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]:
        """The PATs of each user the scope lists."""
        return [ListKey(scope.provider, "pats", uid) for uid in scope.listed_users]

    def scan_tokens(self, key: ListKey, rows: list[dict[str, Any]], scope: ScanScope,
                    lists: Lists) -> list[ScopeToken]:
        if key.resource != "pats":
            return []
        username = scope.users.get(key.scope, f"#{key.scope}")
        known = not username.startswith("#")
        found = []
        for row in rows:
            live = live_token(row, f"{key.provider}: user {username}")
            declaration: dict[str, Any] = {"kind": self.kind, "provider": key.provider, "name": live.name,
                                           "scopes": list(live.scopes) or ["api"]}
            user = scope.users.get(str(row.get("user_id")), username)
            if user and not user.startswith("#"):
                declaration["user"] = user
            found.append(ScopeToken(provider=key.provider, kind=self.kind, scope=username, live=live,
                                    family=GITLAB_TOKEN_FAMILY, owner=f"@{username}" if known and username else None,
                                    can_be_credential=self.can_be_credential, declaration=declaration))
        return found


KIND = PersonalAccessTokenKind()
