"""Source kind `gitlab_service_account_token`: a personal access token of a service account.

A group service account belongs to a top-level group (GitLab.com, Premium/Ultimate: an Owner of
the group manages it); an instance service account to a self-managed instance (administrators).
The account is named by its username; a token of it by its name.

Observe: the group's (`GET /groups/:id/service_accounts`) or the instance's (`GET
/service_accounts`) accounts, to find the account by username, then its tokens: `GET
/groups/:id/service_accounts/:user_id/personal_access_tokens`, or for an instance account the
admin list `GET /personal_access_tokens?user_id=`. An account holds any number of live tokens,
so renewal is `overlap` by default: a new token beside the old one (`POST
.../personal_access_tokens`, for an instance account `POST /users/:id/personal_access_tokens`),
delivered and verified before the old one is revoked (`DELETE .../personal_access_tokens/:id`,
`DELETE /personal_access_tokens/:id`). `strategy: in_place` rotates instead (`POST
.../:token_id/rotate`, `POST /personal_access_tokens/:id/rotate`): the old value dies at once.
Identify a held value: authenticate with it (`GET /personal_access_tokens/self`).

GitLab's documentation: https://docs.gitlab.com/api/group_service_accounts/ (an administrator, or
an Owner of the GitLab.com group; the list since 17.1), https://docs.gitlab.com/api/service_accounts/
(instance accounts, administrators). Listing and revoking an account's tokens came in 17.11
(gitlab-org/gitlab!184287); the rotate call takes `expires_at` since 17.9 (gitlab-org/gitlab#505671),
before that the new token expires in a week.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from gitlab import exceptions as gl_errors
from gitlab.v4.objects import GroupServiceAccount

from reconciler.inventory.model import Diagnostic, Inventory, Source, Token, finding
from reconciler.kinds import (
    FetchError,
    ListKey,
    Lists,
    Mintable,
    Minted,
    Renewable,
    Revocable,
    SourceKind,
    Strategy,
)
from reconciler.kinds._discovery import ScannedSource, ScanScope, ScopeToken, listed
from reconciler.kinds._gitlab import (
    GITLAB_TOKEN_FAMILY,
    GITLAB_TOKENS,
    PROVIDER_PROPERTY,
    TOKEN_ALPHABET,
    AuthenticatesAsItself,
    RecordsLastUse,
    api_path,
    drift_reasons,
    fetcher,
    list_all,
    live_token,
    pick,
    rows,
    token_scope_findings,
)
from reconciler.observed import LiveToken, SourceObservation
from reconciler.plan_model import Reason
from reconciler.secret import Secret

if TYPE_CHECKING:
    pass


@dataclass(frozen=True, kw_only=True)
class GitLabServiceAccountToken(Source):
    account: str  # username of the service account
    group: str | None = None  # its top-level group; None: an instance service account
    name: str  # the token's name on GitLab
    scopes: tuple[str, ...]
    strategy: Literal["overlap", "in_place"] = "overlap"
    kind: ClassVar[str] = "gitlab_service_account_token"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.group or '@instance'}:{self.account}:{self.name}"


# Its definition in the inventory schema: $defs/source_gitlab_service_account_token.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A personal access token of a GitLab service account (of a top-level group, or of the instance).",
    "properties": {
        "kind": {"const": "gitlab_service_account_token", "description": "`gitlab_service_account_token`."},
        "provider": PROVIDER_PROPERTY,
        "account": {"type": "string", "description": "Username of the service account.", "minLength": 1},
        "group": {
            "type": "string",
            "description": "Full path of the top-level group the account belongs to (GitLab.com); "
                           "omitted: an instance service account (self-managed, administrators).",
            "minLength": 1,
        },
        "name": {"type": "string", "description": "The token's name on GitLab.", "minLength": 1},
        "scopes": {"$ref": "#/$defs/gitlab_scopes", "description": "Scopes of the token, e.g. `[api]`."},
        "strategy": {
            "enum": ["overlap", "in_place"],
            "description": "`overlap` (default: a new token beside the old, delivered and verified, then the old "
                           "one revoked) or `in_place` (rotate: the old value dies at once).",
        },
    },
    "additionalProperties": False,
    "required": ["kind", "provider", "account", "name", "scopes"],
}


def _source(source: Source) -> GitLabServiceAccountToken:
    assert isinstance(source, GitLabServiceAccountToken)
    return source


def accounts_key(source: GitLabServiceAccountToken) -> ListKey:
    """The accounts the source's account is one of: its group's, or the instance's."""
    provider = str(source.provider)
    if source.group is None:
        return ListKey(provider, "instance_service_accounts")
    return ListKey(provider, "group_service_accounts", source.group)


def tokens_key(source: GitLabServiceAccountToken, user_id: str) -> ListKey:
    """The tokens of account `user_id`: scope `group#user_id`, `#user_id` for an instance account."""
    return ListKey(str(source.provider), "service_account_tokens", f"{source.group or ''}#{user_id}")


def where(source: GitLabServiceAccountToken) -> str:
    if source.group is None:
        return f"instance service account {source.account}"
    return f"service account {source.account} (group {source.group})"


def account_id(source: GitLabServiceAccountToken, lists: Lists) -> tuple[str | None, str | None]:
    """(user id of the account, error message) from its accounts list; (None, None) before it is read."""
    data, error = rows(lists, accounts_key(source))
    if error or data is None:
        return None, error
    found = [row for row in data if row.get("username") == source.account]
    if not found:
        owner = f"group {source.group}" if source.group else "the instance"
        return None, f"{owner} has no service account named {source.account!r}"
    return str(found[0]["id"]), None


# --- list calls ------------------------------------------------------------------------------


def _refused(exc: gl_errors.GitlabHttpError, what: str, allowed: str) -> FetchError:
    said = str(exc.error_message)  # "403 Forbidden": python-gitlab keeps GitLab's message, status and all
    status = said if said.startswith(str(exc.response_code)) else f"{exc.response_code} {said}"
    return FetchError(exc.response_code or 0, f"{what}: {status} ({allowed})")


@fetcher("group_service_accounts")
def fetch_group_service_accounts(api: Any, scope: str) -> list[dict[str, Any]] | FetchError:
    try:
        return list_all(api, api_path("groups", scope, "service_accounts"))
    except gl_errors.GitlabHttpError as exc:
        if exc.response_code in (400, 403):
            return _refused(exc, f"service accounts of group {scope}",
                            "needs an Owner of a top-level group on Premium or Ultimate, or an administrator")
        raise


@fetcher("instance_service_accounts")
def fetch_instance_service_accounts(api: Any, scope: str) -> list[dict[str, Any]] | FetchError:
    try:
        return list_all(api, "/service_accounts")
    except gl_errors.GitlabHttpError as exc:
        if exc.response_code == 403:
            return _refused(exc, "instance service accounts", "needs an administrator of a self-managed instance")
        raise


@fetcher("service_account_tokens")
def fetch_service_account_tokens(api: Any, scope: str) -> list[dict[str, Any]]:
    group, _, user_id = scope.rpartition("#")
    if not group:
        return list_all(api, "/personal_access_tokens", user_id=user_id)
    return list_all(api, api_path("groups", group, f"service_accounts/{int(user_id)}/personal_access_tokens"))


def _account_name(tokens: ListKey, lists: Lists) -> str:
    """The username of the account whose tokens `tokens` lists, from its accounts list."""
    group, _, user_id = tokens.scope.rpartition("#")
    accounts = (ListKey(tokens.provider, "group_service_accounts", group) if group
                else ListKey(tokens.provider, "instance_service_accounts"))
    found = [row for row in listed(lists, accounts) or () if str(row.get("id")) == user_id]
    return str(found[0].get("username")) if found else f"#{user_id}"


def _account_label(tokens: ListKey, lists: Lists) -> str:
    group = tokens.scope.rpartition("#")[0]
    account = _account_name(tokens, lists)
    return f"service account {account} (group {group})" if group else f"instance service account {account}"


# --- the kind --------------------------------------------------------------------------------


class ServiceAccountTokenKind(SourceKind, Mintable, Renewable, Revocable, AuthenticatesAsItself, RecordsLastUse,
                              ScannedSource):
    model = GitLabServiceAccountToken
    schema = SCHEMA
    schema_order = 35
    value_alphabet = TOKEN_ALPHABET
    kind = "gitlab_service_account_token"
    provider_kind = "gitlab"
    noun = "service account token"
    can_be_credential = True  # a GitLab.com group's automation often authenticates as a service account

    def check(self, token: Token, inv: Inventory, path: str) -> list[Diagnostic]:
        source = _source(token.source)
        found = token_scope_findings(source, source.scopes, path, inv)
        if source.group is not None and "/" in source.group.strip("/"):
            found.append(finding(source, "group", path,
                                 f"{source.group!r} is a subgroup: service accounts belong to a top-level group"))
        return found

    def strategy(self, source: Source) -> Strategy:
        return _source(source).strategy

    def needs(self, token: Token, lists: Lists) -> list[ListKey]:
        source = _source(token.source)
        keys = [accounts_key(source)]
        uid, _ = account_id(source, lists)
        if uid is not None:
            keys.append(tokens_key(source, uid))
        return keys

    def observe(self, token: Token, lists: Lists) -> SourceObservation:
        source = _source(token.source)
        uid, error = account_id(source, lists)
        if error or uid is None:
            return SourceObservation(token=token.name, identity=source.identity, error=error or "account unknown")
        data, error = rows(lists, tokens_key(source, uid))
        if error:
            return SourceObservation(token=token.name, identity=source.identity, error=error)
        matches = [live_token(r, where(source)) for r in data or () if r.get("name") == source.name]
        current, others = pick(matches)
        return SourceObservation(token=token.name, identity=source.identity, current=current, others=others,
                                 details={"user_id": uid})

    def unmanaged(self, tokens: list[Token], lists: Lists) -> list[LiveToken]:
        """Live tokens of the observed accounts whose name no inventory token gives for that account."""
        named = set()
        for t in tokens:
            if isinstance(t.source, GitLabServiceAccountToken):
                uid, _ = account_id(t.source, lists)
                named.add((tokens_key(t.source, str(uid)), t.source.name))
        found = []
        for key, data in lists.items():
            if key.resource == "service_account_tokens" and isinstance(data, list):
                for row in data:
                    live = live_token(row, f"{key.provider}: {_account_label(key, lists)}")
                    if live.usable and (key, live.name) not in named:
                        found.append(live)
        return found

    def due_reasons(self, token: Token, live: LiveToken | None, now: datetime) -> list[Reason]:
        source = _source(token.source)
        assert live is not None
        return drift_reasons(source, live, source.scopes)



    # apply ------------------------------------------------------------------------------------

    def _tokens(self, api: Any, source: GitLabServiceAccountToken, user_id: str) -> Any:
        """python-gitlab's manager of a group account's tokens."""
        group = api.gl.groups.get(source.group, lazy=True)
        return GroupServiceAccount(group.service_accounts, {"id": int(user_id)}, lazy=True).access_tokens

    def _account_id(self, api: Any, source: GitLabServiceAccountToken) -> str:
        """The account's user id, looked up as observation does (its group's or the instance's list)."""
        if source.group is None:
            fetched = fetch_instance_service_accounts(api, "")
        else:
            fetched = fetch_group_service_accounts(api, source.group)
        uid, error = account_id(source, {accounts_key(source): fetched})
        if uid is None:
            raise LookupError(error or f"no service account {source.account!r}")
        return uid

    def mint(self, api: Any, source: Source, *, expires_at: date | None) -> Minted:
        """A new token beside the account's others (201, the value shown once)."""
        token = _source(source)
        uid = self._account_id(api, token)
        data: dict[str, Any] = {"name": token.name, "scopes": list(token.scopes)}
        if expires_at:
            data["expires_at"] = expires_at.isoformat()
        if token.group is None:
            row = dict(api.gl.http_post(f"/users/{uid}/personal_access_tokens", post_data=data,
                                        retry_transient_errors=False))
        else:
            row = self._tokens(api, token, uid).create(data, retry_transient_errors=False).asdict()
        value = Secret(row.pop("token"))
        return Minted(live=live_token(row, where(token)), value=value)

    def renew(self, api: Any, source: Source, live: LiveToken, *, expires_at: date | None) -> Minted:
        """Rotate (200; the old value is revoked at once), retries off (reuse detection)."""
        token = _source(source)
        data: dict[str, Any] = {"expires_at": expires_at.isoformat()} if expires_at else {}
        if token.group is None:
            row = dict(api.gl.http_post(f"/personal_access_tokens/{live.id}/rotate", post_data=data,
                                        retry_transient_errors=False))
        else:
            manager = self._tokens(api, token, live.user_id or self._account_id(api, token))
            row = dict(manager.rotate(int(live.id), retry_transient_errors=False, **data))
        value = Secret(row.pop("token"))
        return Minted(live=live_token(row, live.where), value=value)

    def revoke(self, api: Any, source: Source, live: LiveToken) -> None:
        token = _source(source)
        if token.group is None:
            api.gl.http_delete(f"/personal_access_tokens/{live.id}")
        else:
            self._tokens(api, token, live.user_id or self._account_id(api, token)).delete(int(live.id))

    # reports, scope scans and discovery ---------------------------------------------------------

    value_format = GITLAB_TOKENS

    def id_family(self) -> str:
        return GITLAB_TOKEN_FAMILY

    def display_name(self, source: Source) -> str | None:
        token = _source(source)
        return f"{token.name} of {token.account}"

    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]:
        """The service accounts of each top-level group of the scope, then the tokens of each."""
        keys = []
        for group in scope.groups:
            if "/" in group.strip("/"):
                continue  # service accounts belong to top-level groups
            accounts = ListKey(scope.provider, "group_service_accounts", group)
            keys.append(accounts)
            for row in listed(lists, accounts) or ():
                keys.append(ListKey(scope.provider, "service_account_tokens", f"{group}#{row['id']}"))
        return keys

    def scan_tokens(self, key: ListKey, rows: list[dict[str, Any]], scope: ScanScope,
                    lists: Lists) -> list[ScopeToken]:
        if key.resource != "service_account_tokens":
            return []
        group, _, _ = key.scope.rpartition("#")
        account = _account_name(key, lists)
        found = []
        for row in rows:
            live = live_token(row, f"{key.provider}: {_account_label(key, lists)}")
            declaration: dict[str, Any] = {"kind": self.kind, "provider": key.provider, "account": account,
                                           "name": live.name, "scopes": list(live.scopes) or ["api"]}
            if group:
                declaration["group"] = group
            found.append(ScopeToken(provider=key.provider, kind=self.kind, scope=group, live=live,
                                    family=GITLAB_TOKEN_FAMILY, can_be_credential=self.can_be_credential,
                                    declaration=declaration))
        return found


KIND = ServiceAccountTokenKind()
