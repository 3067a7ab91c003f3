"""What lives in the scopes `discovery:` declares: one read-only scan shared by `check` (unmanaged
tokens) and `discover` (where each token is used).

Per GitLab scope: the PATs of the listed users (for a credential that is not an administrator's,
those of other users from the credentials inventory of the scope's top-level groups, GitLab.com);
the service accounts of its top-level groups and their tokens; for each listed group, its subgroups and projects
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

from reconciler.clients import Api, Clients
from reconciler.inventory.model import Inventory
from reconciler.kinds import FetchError, ListKey
from reconciler.kinds._discovery import (
    ScannedConsumer,
    ScannedSource,
    ScanScope,
    ScopeToken,
    id_family,
    listed,
    scanned_consumers,
    scanned_sources,
)
from reconciler.observe import credential_ids, fetch_list
from reconciler.observed import Observed

MAX_WORKERS = 8
MAX_ROUNDS = 4  # scope lists; the kinds' lists; details that depend on them (a hook's); nothing new


@dataclass
class ScopeScan:
    lists: dict[ListKey, Any] = field(default_factory=dict)
    scopes: dict[str, ScanScope] = field(default_factory=dict)  # provider -> its resolved scopes
    tokens: list[ScopeToken] = field(default_factory=list)
    credential_ids: dict[str, str] = field(default_factory=dict)  # provider -> live id of its own credential
    errors: list[str] = field(default_factory=list)

    def data(self, key: ListKey) -> Any:
        return listed(self.lists, key)


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
    """Every live token (and, with `places`, every place a consumer kind reads: variables, hooks,
    webhooks, installations) in the discovery scopes. Read-only.

    In rounds: the scope lists (users, subgroups, projects of groups), then the lists the kinds
    name for what those resolved to, then lists that depend on those, until nothing is new."""
    scan = ScopeScan()
    kinds: list[ScannedSource | ScannedConsumer] = [*scanned_sources(), *(scanned_consumers() if places else ())]
    for _ in range(MAX_ROUNDS):
        views = _views(inventory, scan)
        keys = _scope_keys(inventory) + [key for view in views for kind in kinds
                                         if kind.provider_kind == view.provider_kind
                                         for key in kind.scan_keys(view, scan.lists)]
        if set(keys) <= scan.lists.keys():
            break
        _fetch_all(keys, apis, scan.lists)
    scan.scopes = {view.provider: view for view in _views(inventory, scan)}
    _credential_ids(scan, apis)
    sources = scanned_sources()
    for key, data in sorted(scan.lists.items()):
        if isinstance(data, FetchError):
            line = f"{key.provider}: {_describe_key(key, scan.scopes[key.provider])}: {data.message}"
            if line not in scan.errors:  # lists of one scope refused alike (a credentials inventory): once
                scan.errors.append(line)
        elif isinstance(data, list):
            scope = scan.scopes[key.provider]
            scan.tokens += [t for kind in sources for t in kind.scan_tokens(key, data, scope, scan.lists)]
    return scan


def _scope_keys(inventory: Inventory) -> list[ListKey]:
    """The lists that resolve the GitLab scopes: the credential's user, the listed users, the
    projects and subgroups of the listed groups."""
    keys: list[ListKey] = []
    for gscope in inventory.discovery.gitlab:
        p = gscope.provider
        keys.append(ListKey(p, "user"))
        keys += [ListKey(p, "user_by_name", u) for u in gscope.users]
        for group in gscope.groups:
            keys += [ListKey(p, "group_projects", group), ListKey(p, "descendant_groups", group)]
    return keys


def _views(inventory: Inventory, scan: ScopeScan) -> list[ScanScope]:
    """Each scanned provider's scopes, as far as the lists fetched so far resolve them."""
    views = [_gitlab_view(inventory, provider, scan)
             for provider in dict.fromkeys(s.provider for s in inventory.discovery.gitlab)]
    views += [ScanScope(provider, "zendesk") for provider in dict.fromkeys(s.provider for s in inventory.discovery.zendesk)]
    return views


def _gitlab_view(inventory: Inventory, provider: str, scan: ScopeScan) -> ScanScope:
    users: dict[str, str] = {}
    listed_users: list[str] = []
    groups: list[str] = []
    projects: list[str] = []
    me = scan.data(ListKey(provider, "user"))
    if me:
        users[str(me["id"])] = str(me.get("username"))
    for gscope in (s for s in inventory.discovery.gitlab if s.provider == provider):
        for username in gscope.users:
            row = scan.data(ListKey(provider, "user_by_name", username))
            if row:
                users[str(row["id"])] = username
                _add(listed_users, str(row["id"]))
        for group in gscope.groups:
            _add(groups, group)
            for sub in scan.data(ListKey(provider, "descendant_groups", group)) or ():
                _add(groups, str(sub["full_path"]))
            for proj in scan.data(ListKey(provider, "group_projects", group)) or ():
                _add(projects, str(proj["path_with_namespace"]))
        for project in gscope.projects:
            _add(projects, project)
    return ScanScope(provider, "gitlab", users, tuple(listed_users), tuple(groups), tuple(projects))


def _add(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def _describe_key(key: ListKey, scope: ScanScope) -> str:
    what = {
        "user": "the credential's user", "user_by_name": f"user {key.scope}",
        "pats": f"PATs of user {scope.users.get(key.scope, '#' + key.scope)}",
        "group_projects": f"projects of group {key.scope}", "descendant_groups": f"subgroups of group {key.scope}",
    }
    if key.resource.startswith("credentials_inventory"):
        return f"credentials inventory of group {key.scope}"
    return what.get(key.resource, f"{key.resource.replace('_', ' ')} {key.scope}".strip())


def _credential_ids(scan: ScopeScan, apis: Mapping[str, Api]) -> None:
    """The live id of each scanned provider's own credential, so it is not reported as unmanaged
    (`credential_id()`: GitLab `GET /personal_access_tokens/self`, Zendesk `GET
    /api/v2/oauth/tokens/current`, with the credential)."""
    scan.credential_ids.update(credential_ids(sorted({k.provider for k in scan.lists}), apis))


def managed_keys(observed: Observed, inventory: Inventory) -> dict[tuple[str, str, str], str]:
    """(provider, id family, live id) -> inventory token name, for every live token the inventory's
    sources name (the current one and same-named others)."""
    found: dict[tuple[str, str, str], str] = {}
    for name, sobs in observed.sources.items():
        token = inventory.tokens.get(name)
        family = id_family(token.source.kind) if token is not None else None
        if token is None or token.source.provider is None or family is None:
            continue
        for live in ([sobs.current] if sobs.current else []) + list(sobs.others):
            found[(token.source.provider, family, live.id)] = name
    return found
