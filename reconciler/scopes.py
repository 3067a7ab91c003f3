"""What lives in the scopes `discovery:` declares: one read-only scan shared by `check` (unmanaged
tokens) and `discover` (where each token is used).

Per GitLab scope: the PATs of the listed users; for each listed group, its subgroups and projects
(`GET /groups/:id/projects?include_subgroups=true`, `/descendant_groups`); the access tokens of
those groups and projects, the triggers of the projects and, for discover, their CI/CD variables
and hooks. Per Zendesk scope: OAuth clients and tokens, API tokens and, for discover, webhooks and
app installations. Every call is a GET through the kinds' fetchers (`_gitlab.FETCHERS`,
`_zendesk.FETCHERS`), so credential-bearing fields arrive as `Secret`.

A list that fails for one scope (a user that does not exist, a group the credential cannot see,
another user's PATs without admin rights) becomes a line in `ScopeScan.errors`, not a failure; a
provider that refuses its credential or cannot be reached raises `ProviderError` as in plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from reconciler.clients import Api, Clients, GitLabApi, ProviderError
from reconciler.inventory.model import Inventory
from reconciler.kinds import FetchError, ListKey
from reconciler.kinds._gitlab import live_token
from reconciler.kinds._zendesk import live_zendesk_token
from reconciler.kinds.gitlab_pipeline_trigger import live_trigger
from reconciler.observe import fetch_list
from reconciler.observed import LiveToken, Observed

MAX_WORKERS = 8

# Source kinds whose live ids share one id space at a provider (GitLab PATs and resource access
# tokens are all rows of personal_access_tokens).
ID_FAMILY = {
    "gitlab_personal_access_token": "gitlab_token",
    "gitlab_project_access_token": "gitlab_token",
    "gitlab_group_access_token": "gitlab_token",
    "gitlab_pipeline_trigger": "trigger",
    "zendesk_oauth_token": "oauth_token",
    "zendesk_api_token": "api_token",
    "zendesk_oauth_client_secret": "oauth_client",
}


@dataclass(frozen=True, kw_only=True)
class ScopeToken:
    """A live token seen in a discovery scope."""

    provider: str
    kind: str  # the source kind it would be declared as
    scope: str  # username, project path, group path, or "" (Zendesk instance)
    live: LiveToken
    row: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the list row (no value)

    @property
    def family_key(self) -> tuple[str, str, str]:
        return (self.provider, ID_FAMILY[self.kind], self.live.id)


@dataclass
class ScopeScan:
    lists: dict[ListKey, Any] = field(default_factory=dict)
    projects: dict[str, list[str]] = field(default_factory=dict)  # provider -> project paths
    groups: dict[str, list[str]] = field(default_factory=dict)  # provider -> group paths (with subgroups)
    users: dict[str, dict[str, str]] = field(default_factory=dict)  # provider -> user id -> username
    tokens: list[ScopeToken] = field(default_factory=list)
    credential_ids: dict[str, str] = field(default_factory=dict)  # provider -> live id of its own credential
    errors: list[str] = field(default_factory=list)

    def data(self, key: ListKey) -> Any:
        value = self.lists.get(key)
        return None if isinstance(value, FetchError) else value


def scope_providers(inventory: Inventory) -> list[str]:
    return sorted({s.provider for s in inventory.discovery.gitlab} | {s.provider for s in inventory.discovery.zendesk})


def provider_apis(clients: Clients, names: Iterable[str]) -> dict[str, Api]:
    """The API handles of `names` from the session's clients: the same handle, and so the same
    throttle, as observe's; connected now for a provider only a discovery scope or the check
    issue uses."""
    return clients.apis_of(names)


def _fetch_all(keys: list[ListKey], apis: Mapping[str, Api], lists: dict[ListKey, Any]) -> None:
    def fetch(key: ListKey) -> tuple[ListKey, Any]:
        return key, fetch_list(apis[key.provider], key)

    todo = sorted(set(keys) - lists.keys())
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="scopes") as pool:
        for key, data in pool.map(fetch, todo):
            lists[key] = data


def scan_scopes(inventory: Inventory, apis: Mapping[str, Api], *, places: bool = False) -> ScopeScan:
    """Every live token (and, with `places`, every variable, hook, webhook and installation) in
    the discovery scopes. Read-only."""
    scan = ScopeScan()
    first: list[ListKey] = []
    for gscope in inventory.discovery.gitlab:
        p = gscope.provider
        first.append(ListKey(p, "user"))
        first += [ListKey(p, "user_by_name", u) for u in gscope.users]
        for group in gscope.groups:
            first += [ListKey(p, "group_projects", group), ListKey(p, "descendant_groups", group)]
    for zscope in inventory.discovery.zendesk:
        z = zscope.provider
        first += [ListKey(z, "oauth_clients"), ListKey(z, "oauth_tokens"), ListKey(z, "api_tokens")]
        if places:
            first += [ListKey(z, "webhooks"), ListKey(z, "installations")]
    _fetch_all(first, apis, scan.lists)

    second: list[ListKey] = []
    for gscope in inventory.discovery.gitlab:
        p = gscope.provider
        users = scan.users.setdefault(p, {})
        me = scan.data(ListKey(p, "user"))
        if me:
            users[str(me["id"])] = str(me.get("username"))
        for username in gscope.users:
            row = scan.data(ListKey(p, "user_by_name", username))
            if row:
                users[str(row["id"])] = username
                second.append(ListKey(p, "pats", str(row["id"])))
        groups, projects = scan.groups.setdefault(p, []), scan.projects.setdefault(p, [])
        for group in gscope.groups:
            _add(groups, group)
            for sub in scan.data(ListKey(p, "descendant_groups", group)) or ():
                _add(groups, str(sub["full_path"]))
            for proj in scan.data(ListKey(p, "group_projects", group)) or ():
                _add(projects, str(proj["path_with_namespace"]))
        for project in gscope.projects:
            _add(projects, project)
        for group in groups:
            second.append(ListKey(p, "group_access_tokens", group))
            if places:
                second += [ListKey(p, "group_variables", group), ListKey(p, "group_hooks", group)]
        for project in projects:
            second += [ListKey(p, "project_access_tokens", project), ListKey(p, "project_triggers", project)]
            if places:
                second += [ListKey(p, "project_variables", project), ListKey(p, "project_hooks", project)]
    _fetch_all(second, apis, scan.lists)
    if places:  # a hook's detail names its URL variables and custom headers (the list does not)
        details = [ListKey(k.provider, k.resource[:-1], f"{k.scope}#{row['id']}")
                   for k, rows in scan.lists.items() if k.resource in ("project_hooks", "group_hooks")
                   and isinstance(rows, list) for row in rows]
        _fetch_all(details, apis, scan.lists)
    _credential_ids(scan, apis)

    for key, data in sorted(scan.lists.items()):
        if isinstance(data, FetchError):
            scan.errors.append(f"{key.provider}: {_describe_key(key)}: {data.message}")
            continue
        scan.tokens.extend(_tokens_of(key, data, scan))
    return scan


def _add(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def _describe_key(key: ListKey) -> str:
    what = {
        "user": "the credential's user", "user_by_name": f"user {key.scope}", "pats": f"PATs of user #{key.scope}",
        "group_projects": f"projects of group {key.scope}", "descendant_groups": f"subgroups of group {key.scope}",
    }
    return what.get(key.resource, f"{key.resource.replace('_', ' ')} {key.scope}".strip())


def _tokens_of(key: ListKey, data: Any, scan: ScopeScan) -> list[ScopeToken]:
    p = key.provider
    if key.resource == "pats":
        username = scan.users.get(p, {}).get(key.scope, f"#{key.scope}")
        return [ScopeToken(provider=p, kind="gitlab_personal_access_token", scope=username, row=r,
                           live=live_token(r, f"{p}: user {username}")) for r in data]
    if key.resource in ("project_access_tokens", "group_access_tokens"):
        resource = key.resource.split("_")[0]
        return [ScopeToken(provider=p, kind=f"gitlab_{resource}_access_token", scope=key.scope, row=r,
                           live=live_token(r, f"{p}: {resource} {key.scope}")) for r in data]
    if key.resource == "project_triggers":
        return [ScopeToken(provider=p, kind="gitlab_pipeline_trigger", scope=key.scope, row=r,
                           live=live_trigger(r, f"{p}: project {key.scope}")) for r in data]
    if key.resource == "oauth_tokens":
        clients = {str(c.get("id")): str(c.get("identifier")) for c in scan.data(ListKey(p, "oauth_clients")) or ()}
        found = []
        for r in data:
            client = clients.get(str(r.get("client_id")), f"client #{r.get('client_id')}")
            found.append(ScopeToken(provider=p, kind="zendesk_oauth_token", scope="", row={**r, "client": client},
                                    live=live_zendesk_token(r, client, f"{p}: OAuth client {client}")))
        return found
    if key.resource == "api_tokens":
        return [ScopeToken(provider=p, kind="zendesk_api_token", scope="", row=r,
                           live=live_zendesk_token(r, str(r.get("description") or ""), f"{p}: API tokens"))
                for r in data]
    return []


def _credential_ids(scan: ScopeScan, apis: Mapping[str, Api]) -> None:
    """The live id of each scanned provider's own credential, so it is not reported as unmanaged
    (`GET /personal_access_tokens/self`, `GET /api/v2/oauth/tokens/current`, with the credential)."""
    for name in sorted({k.provider for k in scan.lists}):
        api = apis[name]
        try:
            with api.throttle:
                if isinstance(api, GitLabApi):
                    scan.credential_ids[name] = api.credential_id()
                elif api.oauth:
                    scan.credential_ids[name] = str(api.get("/api/v2/oauth/tokens/current.json")["token"]["id"])
        except ProviderError:
            raise
        except Exception:  # noqa: BLE001 - not a PAT (a job token...): it is simply not excluded
            continue


def managed_keys(observed: Observed, inventory: Inventory) -> dict[tuple[str, str, str], str]:
    """(provider, id family, live id) -> inventory token name, for every live token the inventory's
    sources name (the current one and same-named others)."""
    found: dict[tuple[str, str, str], str] = {}
    for name, sobs in observed.sources.items():
        token = inventory.tokens.get(name)
        if token is None or token.source.provider is None or token.source.kind not in ID_FAMILY:
            continue
        for live in ([sobs.current] if sobs.current else []) + list(sobs.others):
            found[(token.source.provider, ID_FAMILY[token.source.kind], live.id)] = name
    return found
