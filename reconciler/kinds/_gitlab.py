"""GitLab list calls shared by the GitLab kinds, through python-gitlab, one per scope.

Each fetcher takes the provider's `GitLabApi` (reconciler.clients) and a scope and returns plain
dicts with every credential-bearing field wrapped in `Secret`: variable values, trigger tokens.
Lists are fetched with `get_all=True` (offset pagination, `per_page=100`) so pages are followed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from gitlab import exceptions as gl_errors
from gitlab.utils import EncodedId

from reconciler.inventory.checks import allowed_scope_findings
from reconciler.inventory.model import Diagnostic, Inventory, Source, finding
from reconciler.inventory.schema import suggestion
from reconciler.kinds import Creator, FetchError, Identifying, Identity, LastUse, ListKey, Lists, UseRecorded
from reconciler.kinds._answers import checked
from reconciler.kinds._discovery import ScopeToken, shown
from reconciler.observed import LiveToken, parse_date, parse_time
from reconciler.plan_model import Reason, declared_at
from reconciler.secret import Secret

if TYPE_CHECKING:
    from reconciler.clients import GitLabApi

PER_PAGE = 100

# GitLab tokens are `glpat-`/`glptt-` prefixed URL-safe strings (routable tokens add `.`).
TOKEN_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")

# Scopes GitLab documents for personal, project and group access tokens (doc/user/profile/
# personal_access_tokens.md, 17.x-19.x). An unknown one is a warning: GitLab adds scopes.
GITLAB_SCOPES = frozenset(
    "api read_api read_user create_runner manage_runner k8s_proxy read_repository write_repository "
    "read_registry write_registry read_virtual_registry write_virtual_registry sudo admin_mode "
    "read_service_ping ai_features self_rotate read_observability write_observability".split()
)


# The `provider` property of every GitLab kind's schema fragment.
PROVIDER_PROPERTY: dict[str, Any] = {
    "type": "string",
    "description": "Name of the GitLab provider (a key under `providers`).",
    "minLength": 1,
}

CREATED_WITH_PROPERTY: dict[str, Any] = {
    "type": "string",
    "description": "Another token of the inventory (a GitLab personal, project, group or service-account token on the same provider) whose current value creates, observes and revokes this one instead of the provider's credential, so that it belongs to that token's user: e.g. a pipeline trigger owned by a project access token's bot, which outlives any person's account. That token is rotated and delivered first; its value comes from this run (minted, escrowed, or read back from a consumer that holds it), never from the inventory.",
    "minLength": 1,
}


def list_all(api: Any, path: str, **query: Any) -> list[dict[str, Any]]:
    """Every row of a list, pages followed, as plain dicts: `Gitlab.http_list`, which is what
    `manager.list(get_all=True)` calls, without building a python-gitlab object (and, for a lazy
    project, its thirty sub-managers) per row and scope: that was a third of a large plan's
    client CPU."""
    return [dict(row) for row in api.gl.http_list(path, get_all=True, per_page=PER_PAGE, **query)]


def api_path(kind: str, scope: str, resource: str) -> str:
    """`/projects/acme%2Fapp/variables`: a project or group path (or id) as python-gitlab encodes it."""

    return f"/{kind}/{EncodedId(scope)}/{resource}"


def secret_field(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    for row in rows:
        value = row.get(name)
        row[name] = Secret(value) if isinstance(value, str) and value != "" else None
    return rows


def fetch_user(api: Any, scope: str) -> dict[str, Any]:
    """The user of the provider credential (`GET /user`); also proves the credential works."""
    return dict(api.gl.http_get("/user"))


def fetch_user_by_name(api: Any, scope: str) -> dict[str, Any] | FetchError:
    rows = api.gl.http_get("/users", query_data={"username": scope})
    if not rows:
        return FetchError(404, f"no GitLab user named {scope!r}")
    return dict(rows[0])


def fetch_pats(api: Any, scope: str) -> list[dict[str, Any]] | FetchError:
    try:
        return list_all(api, "/personal_access_tokens", user_id=scope)
    except gl_errors.GitlabAuthenticationError:
        # GitLab answers 401, not 403, to a non-admin listing another user's PATs: that is about
        # this list, not a refused credential.
        return FetchError(401, "only an administrator can list another user's tokens (on GitLab.com, an Owner "
                               "of a top-level group reads its enterprise users' tokens in the group's credentials "
                               "inventory: name that group in the scope's groups)")


def fetch_project_access_tokens(api: Any, scope: str) -> list[dict[str, Any]]:
    return list_all(api, api_path("projects", scope, "access_tokens"))


def fetch_group_access_tokens(api: Any, scope: str) -> list[dict[str, Any]]:
    return list_all(api, api_path("groups", scope, "access_tokens"))


def fetch_project_triggers(api: Any, scope: str) -> list[dict[str, Any]]:
    return secret_field(list_all(api, api_path("projects", scope, "triggers")), "token")


def fetch_project_variables(api: Any, scope: str) -> list[dict[str, Any]]:
    return secret_field(list_all(api, api_path("projects", scope, "variables")), "value")


def fetch_group_variables(api: Any, scope: str) -> list[dict[str, Any]]:
    return secret_field(list_all(api, api_path("groups", scope, "variables")), "value")


def fetch_instance_variables(api: Any, scope: str) -> list[dict[str, Any]]:
    return secret_field(list_all(api, "/admin/ci/variables"), "value")


def fetch_project_hooks(api: Any, scope: str) -> list[dict[str, Any]]:
    return list_all(api, api_path("projects", scope, "hooks"))


def fetch_group_hooks(api: Any, scope: str) -> list[dict[str, Any]]:
    return list_all(api, api_path("groups", scope, "hooks"))


def fetch_project_hook(api: Any, scope: str) -> dict[str, Any]:
    """One hook's detail: the list omits `url_variables` and `custom_headers` keys."""
    path, _, hook_id = scope.rpartition("#")
    return dict(api.gl.http_get(api_path("projects", path, f"hooks/{int(hook_id)}")))


def fetch_group_hook(api: Any, scope: str) -> dict[str, Any]:
    path, _, hook_id = scope.rpartition("#")
    return dict(api.gl.http_get(api_path("groups", path, f"hooks/{int(hook_id)}")))


def fetch_group_projects(api: Any, scope: str) -> list[dict[str, Any]]:
    """Projects of a group and of its subgroups (`GET /groups/:id/projects?include_subgroups=true`):
    discovery scopes name groups, their projects hold the tokens and variables."""
    return list_all(api, api_path("groups", scope, "projects"), include_subgroups=True)


def fetch_descendant_groups(api: Any, scope: str) -> list[dict[str, Any]]:
    """Subgroups at any depth (`GET /groups/:id/descendant_groups`)."""
    return list_all(api, api_path("groups", scope, "descendant_groups"))


Fetcher = Callable[[Any, str], Any]  # (GitLabApi, ListKey.scope) -> the list's data, or FetchError

FETCHERS: dict[str, Fetcher] = {
    "user": checked(fetch_user, many=False),
    "user_by_name": checked(fetch_user_by_name, many=False),
    "pats": checked(fetch_pats),
    "project_access_tokens": checked(fetch_project_access_tokens),
    "group_access_tokens": checked(fetch_group_access_tokens),
    "project_triggers": checked(fetch_project_triggers),
    "project_variables": checked(fetch_project_variables, required=("key",)),
    "group_variables": checked(fetch_group_variables, required=("key",)),
    "instance_variables": checked(fetch_instance_variables, required=("key",)),
    "project_hooks": checked(fetch_project_hooks),
    "group_hooks": checked(fetch_group_hooks),
    "project_hook": checked(fetch_project_hook, many=False),
    "group_hook": checked(fetch_group_hook, many=False),
    "group_projects": checked(fetch_group_projects, required=("path_with_namespace",)),
    "descendant_groups": checked(fetch_descendant_groups, required=("full_path",)),
}


def fetcher(resource: str, *, many: bool = True,
            required: tuple[str, ...] = ("id",)) -> Callable[[Fetcher], Fetcher]:
    """Registers a list call under `resource` (a `ListKey.resource`): how a kind module adds a call
    of its own, beside the shared ones above, without editing this module. Only that kind names
    `resource` in its keys, so its module (imported by the registry) has registered the call
    before any of them is fetched. The call is registered with its answer's shape checked like
    the shared ones (`many`: a list of rows, else one object; `required`: fields of each)."""

    def register(fetch: Fetcher) -> Fetcher:
        if resource in FETCHERS:
            raise RuntimeError(f"two GitLab fetchers for {resource!r}")
        FETCHERS[resource] = checked(fetch, many=many, required=required)
        return fetch

    return register


# --- helpers for the kinds -------------------------------------------------------------------


def live_token(row: dict[str, Any], where: str) -> LiveToken:
    """A GitLab PAT / project / group access token row as a LiveToken."""
    return LiveToken(
        id=str(row["id"]),
        name=str(row.get("name") or ""),
        where=where,
        created_at=parse_time(row.get("created_at")),
        expires_at=parse_date(row.get("expires_at")),
        last_used_at=parse_time(row.get("last_used_at")),
        active=bool(row.get("active", True)),
        revoked=bool(row.get("revoked", False)),
        scopes=tuple(sorted(row.get("scopes") or ())),
        access_level=row.get("access_level"),
        user_id=None if row.get("user_id") is None else str(row["user_id"]),
    )


def drift_reasons(source: Source, live: LiveToken, scopes: tuple[str, ...],
                  access_level: int | None = None) -> list[Reason]:
    """The declared `scopes` and `access_level` (None: the kind has none) the live token differs
    from. Rotation copies both, so only a new token can change them."""
    reasons = []
    declared, actual = sorted(set(scopes)), sorted(set(live.scopes))
    if declared != actual:
        reasons.append(Reason(code="scopes", at=declared_at(source, "scopes"),
                              message=f"scopes differ: live {', '.join(actual) or '-'}, "
                                      f"declared {', '.join(declared)}"))
    if access_level is not None and live.access_level is not None and access_level != live.access_level:
        reasons.append(Reason(code="access_level", at=declared_at(source, "access_level"),
                              message=f"access level differs: live {live.access_level}, declared {access_level}"))
    return reasons


def pick(matches: list[LiveToken]) -> tuple[LiveToken | None, tuple[LiveToken, ...]]:
    """The current token among live tokens sharing a name (the newest usable one, else the newest)
    and the other usable ones (orphans of an interrupted overlap)."""
    if not matches:
        return None, ()

    def newest(t: LiveToken) -> tuple[str, int]:
        return (t.created_at.isoformat() if t.created_at else "", int(t.id) if t.id.isdigit() else 0)

    usable = sorted((t for t in matches if t.usable), key=newest, reverse=True)
    if usable:
        return usable[0], tuple(usable[1:])
    return max(matches, key=newest), ()


def _fetched(lists: Lists, key: ListKey) -> tuple[Any, str | None]:
    if key not in lists:
        return None, None
    data = lists[key]
    if isinstance(data, FetchError):
        return None, data.message
    return data, None


def rows(lists: Lists, key: ListKey) -> tuple[list[dict[str, Any]] | None, str | None]:
    """(rows, error message) for a fetched list; (None, None) when not fetched yet."""
    return _fetched(lists, key)


def fetched_row(lists: Lists, key: ListKey) -> tuple[dict[str, Any] | None, str | None]:
    """(object, error message) for a fetched single object (a user, a hook's detail); (None,
    None) when not fetched yet."""
    return _fetched(lists, key)


def self_user_id(provider: str, user: str | None, lists: Lists) -> tuple[str | None, str | None]:
    """Numeric id of `user` (a username, or None for the credential's user), from the lists."""
    key = ListKey(provider, "user") if user is None else ListKey(provider, "user_by_name", user)
    data, error = fetched_row(lists, key)
    if error:
        return None, error
    if data is None:
        return None, None
    return str(data["id"]), None


def user_keys(provider: str, user: str | None) -> list[ListKey]:
    keys = [ListKey(provider, "user")]
    if user is not None:
        keys.append(ListKey(provider, "user_by_name", user))
    return keys


def token_scope_findings(source: Source, scopes: tuple[str, ...], path: str, inv: Inventory) -> list[Diagnostic]:
    """The scopes of a GitLab token against `policy.allowed_scopes`, then a warning for each one
    GitLab does not document."""
    found = allowed_scope_findings(source, scopes, path, inv.policy)
    return found + [
        finding(source, "scopes", path, f"{scope!r} is not a GitLab token scope{suggestion(scope, GITLAB_SCOPES)}",
                warning=True)
        for scope in scopes
        if scope not in GITLAB_SCOPES
    ]

# --- scope scans and discovery: GitLab tokens in held values ---------------------------------

GITLAB_TOKEN_FAMILY = "gitlab_token"  # PATs and project/group access tokens: rows of one table
TRIGGER_FAMILY = "trigger"
_PREFIXED = re.compile(r"(?:glpat|glptt|gldt|glrt|glcbt|glimt|glsoat|gloas|glft|glagent|glffct)-[A-Za-z0-9_-]{20,}")


class GitLabTokenFormat:
    """GitLab tokens carry their type as a prefix (`glpat-`, `glptt-`, ...), so one can be found
    anywhere in a value (a URL, `Bearer ...`); a value with two different ones is not a candidate."""

    provider_kind = "gitlab"

    def token_in(self, text: str) -> str | None:
        matches = list(dict.fromkeys(_PREFIXED.findall(text)))
        return matches[0] if len(matches) == 1 else None

    def identify(self, value: Secret, tokens: Sequence[ScopeToken], issuer: Mapping[str, Any]) -> ScopeToken | str:
        """A trigger token by comparison with the triggers the lists showed in full; a PAT or
        access token by authenticating with it (`GET /personal_access_tokens/self`) at the one
        GitLab `issuer` names, never at another."""
        prefix = value.reveal().split("-", 1)[0]
        if prefix == "glptt":
            found = shown([t for t in tokens if t.family == TRIGGER_FAMILY], value.fingerprint())
            return found or ("holds a pipeline trigger token that no trigger of the scopes' projects shows in full "
                             "(deleted, or owned by another user)")
        if prefix != "glpat":
            return f"holds a GitLab {prefix}- token, a kind reconcile does not manage"
        if not issuer:
            return ("holds a GitLab token, sent to no GitLab to identify it: which of the discovery scopes' GitLab "
                    "providers issued it cannot be told without sending it to the others")
        ((name, api),) = issuer.items()  # one provider, never a loop over several
        ident = api.identify_token(value)
        if ident.token_id is None:
            return f"holds a GitLab token that {name} refuses (revoked, expired or unknown)"
        for token in tokens:
            if token.provider == name and token.family == GITLAB_TOKEN_FAMILY and token.live.id == ident.token_id:
                return token
        return f"holds live GitLab token #{ident.token_id} of {name}, outside the discovery scopes"


GITLAB_TOKENS = GitLabTokenFormat()


# GitLab records a use of a personal, project, group or service-account token (`last_used_at`) only
# when the one recorded is at least 10 minutes old: "Token usage information is updated every 10
# minutes" (since GitLab 16.1; every 24 hours before), https://docs.gitlab.com/user/profile/
# personal_access_tokens/#view-token-usage-information (PersonalAccessTokens::LastUsedService,
# LAST_USED_AT_TIMEOUT = 10.minutes).
LAST_USED_EVERY = timedelta(minutes=10)


class RecordsLastUse(UseRecorded):
    """GitLab access tokens: `last_used_at`, recorded at most every 10 minutes."""

    def last_use(self, live: LiveToken) -> LastUse:
        return LastUse(live.last_used_at, LAST_USED_EVERY)


class AuthenticatesAsItself(Identifying, Creator):
    """The Identifying capability of a GitLab token whose value authenticates as itself (personal,
    project, group and service-account tokens): `GET /personal_access_tokens/self` with the value
    names its id. Such a value can also create things as its user (`Creator`)."""

    def as_creator(self, api: Any, value: Secret, token: str) -> Any:
        gitlab: GitLabApi = api
        return gitlab.authenticated_as(value, token)

    def identify(self, api: Any, source: Source, value: Secret, lists: Lists) -> Identity | None:
        gitlab: GitLabApi = api
        return gitlab.identify_token(value)

    def verify_value(self, api: Any, source: Source, live: LiveToken, value: Secret) -> bool | None:
        """Authenticate with the value: it must be `live`."""
        gitlab: GitLabApi = api
        found = gitlab.identify_token(value)
        return None if found is None else found.token_id == live.id
