"""A sandbox world built from an inventory: every declared token exists, far from any rotation
rule, and every consumer exists holding its token's current value (`reconcile sandbox
--from-inventory DIR`). A new user plans, adopts and applies their own inventory against it
without writing a seed by hand; the first plan of such a world has nothing to rotate.

The world seed it returns has the shape `world.load_world_seed` reads (docs/sandbox.md): `gitlab`
(docs/sandbox-gitlab.md), `zendesk` (docs/sandbox-zendesk.md) and `credentials`. How each kind is
seeded is in `SOURCES` and `CONSUMERS`, keyed by the inventory `kind:`; a kind without an entry is
refused with a message naming it, and a test keeps every registered kind covered.

Choices where the inventory says nothing (they are the sandbox's, not a service's):
- each GitLab provider's credential is a PAT of one administrator, `reconcile-bot`; each Zendesk
  provider's an OAuth token (`read write`) of the client `reconcile_sandbox`, or an API token of
  an admin with the provider's `email`;
- a token was created a day ago (or on `not_before`, when that is later) and expires after its
  `lifetime` (365 days without one); a trigger is owned by the credential's user, so its value is
  visible to the tool, as for triggers the tool creates;
- a Zendesk app setting is a `secure` parameter of its app (write-only, as apps declare the
  settings that hold credentials); a GitLab webhook found by name or id gets the URL
  `https://hooks.sandbox.example/<name>`, a Zendesk webhook without an endpoint template
  `https://hooks.sandbox.example/zendesk/<name>`;
- values are derived from the token's name (`world.derive`), so the same inventory gives the
  same world.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.inventory.model import Consumer, GitLabProvider, Inventory, Token, ZendeskProvider
from reconciler.kinds import consumer_kind
from reconciler_sandbox.world import WorldError, derive

CREDENTIAL_USER = "reconcile-bot"
OAUTH_CLIENT = "reconcile_sandbox"
DEFAULT_LIFETIME_DAYS = 365
_ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


class WorldBuilder:
    """The seed being built: GitLab and Zendesk entries merged by the place they describe."""

    def __init__(self, inventory: Inventory, now: datetime) -> None:
        self.inventory = inventory
        self.now = now
        self.credentials: dict[str, str] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.gitlab: dict[str, list[dict[str, Any]]] = {
            k: [] for k in ("access_tokens", "triggers", "variables", "service_accounts")}
        self.hooks: dict[tuple[str, str], dict[str, Any]] = {}
        self.schedules: dict[tuple[str, str, int | None], dict[str, Any]] = {}
        self.zendesk: dict[str, dict[str, Any]] = {}  # subdomain -> instance seed
        self.apps: dict[tuple[str, str], dict[str, Any]] = {}
        self.installations: dict[tuple[str, str], dict[str, Any]] = {}
        self.webhooks: dict[tuple[str, str], dict[str, Any]] = {}

    # -- GitLab ---------------------------------------------------------------------------------

    def user(self, username: str, **fields: Any) -> dict[str, Any]:
        return self.users.setdefault(username, {"username": username, "tokens": [], **fields})

    def project(self, ref: str) -> str:
        """The project's path in the seed (a numeric id gets a path of its own and keeps the id)."""
        if ref.isdigit():
            path = f"sandbox/project-{ref}"
            self.projects.setdefault(path, {"path_with_namespace": path, "id": int(ref)})
            return path
        self.projects.setdefault(ref, {"path_with_namespace": ref})
        return ref

    def group(self, ref: str) -> str:
        self.groups.setdefault(ref, {"full_path": ref})
        return ref

    def scope(self, project: str | None, group: str | None) -> dict[str, Any]:
        """`project:`/`group:`/`instance: true` of a seed entry."""
        if project is not None:
            return {"project": self.project(project)}
        if group is not None:
            return {"group": self.group(group)}
        return {"instance": True}

    def lifetime(self, token: Token) -> dict[str, Any]:
        """created_at and expires_at that no rotation rule of the token finds due."""
        rotation = token.rotation
        created = self.now - timedelta(days=1)
        if rotation.not_before is not None:
            cutoff = datetime(rotation.not_before.year, rotation.not_before.month, rotation.not_before.day, tzinfo=UTC)
            if created < cutoff <= self.now:
                created = cutoff
        days = rotation.lifetime.days if rotation.lifetime is not None else DEFAULT_LIFETIME_DAYS
        return {"created_at": created.isoformat().replace("+00:00", "Z"), "expires_at": f"now+{days}d"}

    def credential_user(self, provider: str | None) -> str:
        """The user whose PAT is `provider`'s credential (seeded with it)."""
        found = self.inventory.providers.get(provider or "")
        if not isinstance(found, GitLabProvider):
            raise WorldError(f"provider {provider!r}: not a GitLab provider of the inventory")
        return CREDENTIAL_USER

    def gitlab_credential(self, provider: GitLabProvider) -> None:
        value = derive("glpat", f"credential/{provider.token_env}")
        self.credentials[provider.token_env] = value
        user = self.user(CREDENTIAL_USER, name="Reconcile Bot", admin=True)
        if not any(t["value"] == value for t in user["tokens"]):
            user["tokens"].append({"name": f"reconcile credential {provider.name}", "scopes": ["api"],
                                   "created_at": "now-1d", "expires_at": "now+300d", "value": value})

    # -- Zendesk --------------------------------------------------------------------------------

    def instance(self, provider: str) -> dict[str, Any]:
        found = self.inventory.providers.get(provider)
        if not isinstance(found, ZendeskProvider):
            raise WorldError(f"provider {provider!r}: not a Zendesk provider of the inventory")
        return self.zendesk.setdefault(found.subdomain, {
            k: [] for k in ("users", "oauth_clients", "oauth_tokens", "api_tokens", "apps", "installations",
                            "webhooks")})

    def oauth_client(self, provider: str, identifier: str) -> dict[str, Any]:
        clients = self.instance(provider)["oauth_clients"]
        for client in clients:
            if client["identifier"] == identifier:
                return client
        client = {"identifier": identifier, "name": identifier, "created_at": "now-1d"}
        clients.append(client)
        return client

    def zendesk_credential(self, provider: ZendeskProvider) -> None:
        inst = self.instance(provider.name)
        if not inst["users"]:
            inst["users"].append({"name": "Sandbox Admin", "role": "admin",
                                  **({"email": provider.email} if provider.email else {})})
        if provider.oauth_token_env:
            value = _hex(f"credential/{provider.oauth_token_env}", 64)
            self.credentials[provider.oauth_token_env] = value
            self.oauth_client(provider.name, OAUTH_CLIENT)
            inst["oauth_tokens"].append({"client": OAUTH_CLIENT, "scopes": ["read", "write"], "value": value})
        if provider.api_token_env:
            value = _hex(f"credential/{provider.api_token_env}", 40)
            self.credentials[provider.api_token_env] = value
            inst["api_tokens"].append({"description": "reconcile sandbox credential", "value": value})

    # -- the seed ---------------------------------------------------------------------------------

    def seed(self) -> dict[str, Any]:
        gitlab: dict[str, Any] = {
            "users": list(self.users.values()), "groups": list(self.groups.values()),
            "projects": list(self.projects.values()), **self.gitlab,
            "hooks": list(self.hooks.values()), "pipeline_schedules": list(self.schedules.values()),
        }
        for (subdomain, _), app in self.apps.items():
            self.zendesk[subdomain]["apps"].append(app)
        for (subdomain, _), installation in self.installations.items():
            self.zendesk[subdomain]["installations"].append(installation)
        for (subdomain, _), webhook in self.webhooks.items():
            self.zendesk[subdomain]["webhooks"].append(webhook)
        return {"gitlab": gitlab, "zendesk": {"instances": self.zendesk}, "credentials": dict(self.credentials)}


def _hex(name: str, length: int) -> str:
    """A derived value of `length` hex digits (Zendesk's OAuth tokens are 64, API tokens 40)."""
    out = ""
    while len(out) < length:
        out += derive("", f"{name}/{len(out)}")
    return out[:length]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "hook"


# --- sources: seed the live token, return its current value ----------------------------------------


def _pat(w: WorldBuilder, token: Token) -> str:
    src: Any = token.source
    value = derive("glpat", f"inventory/{token.name}")
    w.user(src.user or w.credential_user(src.provider))["tokens"].append(
        {"name": src.name, "scopes": list(src.scopes), "value": value, **w.lifetime(token)})
    return value


def _access_token(w: WorldBuilder, token: Token) -> str:
    src: Any = token.source
    value = derive("glpat", f"inventory/{token.name}")
    w.gitlab["access_tokens"].append({**w.scope(getattr(src, "project", None), getattr(src, "group", None)),
                                      "name": src.name, "scopes": list(src.scopes), "access_level": src.access_level,
                                      "value": value, **w.lifetime(token)})
    return value


def _service_account_token(w: WorldBuilder, token: Token) -> str:
    src: Any = token.source
    value = derive("glpat", f"inventory/{token.name}")
    scope = {"group": w.group(src.group)} if src.group else {"instance": True}
    accounts = w.gitlab["service_accounts"]
    account = next((a for a in accounts if a["username"] == src.account), None)
    if account is None:
        account = {**scope, "username": src.account, "tokens": []}
        accounts.append(account)
    account["tokens"].append({"name": src.name, "scopes": list(src.scopes), "value": value, **w.lifetime(token)})
    return value


_TRIGGER_URL_ID = re.compile(r"/projects/(\d+)/(?:ref/[^/]+/)?trigger/pipeline")


def _trigger(w: WorldBuilder, token: Token) -> str:
    """A trigger owned by the credential's user. A consumer's trigger URL that names the project
    by id, where the inventory names it by path, gives the seeded project that id (the plan
    checks that the URL names the trigger's own project)."""
    src: Any = token.source
    value = derive("glptt", f"inventory/{token.name}")
    project = w.project(src.project)
    urls = [v for c in token.consumers for v in vars(c).values() if isinstance(v, str)]
    for named in filter(None, map(_TRIGGER_URL_ID.search, urls)):
        if not str(src.project).isdigit():
            w.projects[project]["id"] = int(named.group(1))
    w.gitlab["triggers"].append({"project": project, "owner": w.credential_user(src.provider),
                                 "description": src.description, "value": value,
                                 "created_at": w.lifetime(token)["created_at"]})
    return value


def _oauth_token(w: WorldBuilder, token: Token) -> str:
    src: Any = token.source
    value = _hex(f"inventory/{token.name}", 64)
    w.oauth_client(src.provider, src.client)
    w.instance(src.provider)["oauth_tokens"].append({"client": src.client, "scopes": list(src.scopes), "value": value,
                                                     "created_at": w.lifetime(token)["created_at"]})
    return value


def _client_secret(w: WorldBuilder, token: Token) -> str:
    src: Any = token.source
    value = _hex(f"inventory/{token.name}", 64)
    client = w.oauth_client(src.provider, src.client)
    client.update(secret=value, created_at=w.lifetime(token)["created_at"])
    return value


def _oauth_grant(w: WorldBuilder, token: Token) -> str:
    """An access token with its refresh token, the refresh token in the variable the inventory
    names (as a person supplies it after authorising the client), and a confidential client's
    secret in its variable. The access token lives 48 h, the longest Zendesk grants
    (`expires_in` at most 172,800 s), so a first plan does not find it due."""
    src: Any = token.source
    value = _hex(f"inventory/{token.name}", 64)
    refresh = _hex(f"inventory/{token.name}/refresh", 64)
    client = w.oauth_client(src.provider, src.client)
    if src.client_secret_env:
        client["secret"] = w.credentials[src.client_secret_env] = _hex(f"inventory/{token.name}/client", 64)
    w.credentials[src.refresh_token_env] = refresh
    w.instance(src.provider)["oauth_tokens"].append({
        "client": src.client, "scopes": list(src.scopes), "value": value, "refresh_token": refresh,
        "created_at": "now", "expires_at": "now+48h"})
    return value


def _oauth_client_pair(w: WorldBuilder, token: Token) -> dict[str, str]:
    """The declared client with a secret: its consumers hold both parts."""
    src: Any = token.source
    secret = _hex(f"inventory/{token.name}", 64)
    client = w.oauth_client(src.provider, src.identifier)
    client.update(secret=secret, created_at=w.lifetime(token)["created_at"])
    return {"identifier": src.identifier, "secret": secret}


def _api_token(w: WorldBuilder, token: Token) -> str:
    src: Any = token.source
    value = _hex(f"inventory/{token.name}", 40)
    w.instance(src.provider)["api_tokens"].append({"description": src.description, "value": value,
                                                   "created_at": w.lifetime(token)["created_at"],
                                                   "last_used": "now-1d"})
    return value


def _external(w: WorldBuilder, token: Token) -> str:
    """Nothing live: the value a person would supply, in the world's environment when it comes
    from a variable."""
    src: Any = token.source
    value = derive("", f"inventory/{token.name}")
    if src.value_env:
        w.credentials[src.value_env] = value
    return value


# What a seeded source's consumers hold: its value, or its parts by name (`${token.<part>}`)
SOURCES: dict[str, Callable[[WorldBuilder, Token], str | dict[str, str]]] = {
    "gitlab_personal_access_token": _pat,
    "gitlab_project_access_token": _access_token,
    "gitlab_group_access_token": _access_token,
    "gitlab_service_account_token": _service_account_token,
    "gitlab_pipeline_trigger": _trigger,
    "zendesk_oauth_token": _oauth_token,
    "zendesk_oauth_grant": _oauth_grant,
    "zendesk_oauth_client": _oauth_client_pair,
    "zendesk_oauth_client_secret": _client_secret,
    "zendesk_api_token": _api_token,
    "external": _external,
}


# --- consumers: seed the place holding `held` (the value through the consumer's template) ---------


def _ci_variable(w: WorldBuilder, c: Any, held: str) -> None:
    entry = {**w.scope(c.project, c.group), "key": c.key, "value": held, "masked": bool(c.masked or c.hidden),
             "protected": bool(c.protected), "hidden": bool(c.hidden), "raw": bool(c.raw)}
    if not c.instance:
        entry["environment_scope"] = c.environment_scope
    if c.variable_type is not None:
        entry["variable_type"] = c.variable_type
    if c.description is not None:
        entry["description"] = c.description
    w.gitlab["variables"].append(entry)


def _schedule_variable(w: WorldBuilder, c: Any, held: str) -> None:
    key = (c.project, c.schedule, c.schedule_id)
    schedule = w.schedules.setdefault(key, {
        "project": w.project(c.project), "description": c.schedule, "owner": CREDENTIAL_USER, "variables": [],
        **({"id": c.schedule_id} if c.schedule_id is not None else {})})
    w.user(CREDENTIAL_USER, name="Reconcile Bot", admin=True)
    schedule["variables"].append({"key": c.key, "value": held, "variable_type": c.variable_type or "env_var"})


def _gitlab_webhook(w: WorldBuilder, c: Any, held: str) -> None:
    scope = w.scope(c.project, c.group)
    hook = w.hooks.setdefault((str(scope), c.hook), _new_hook(scope, c.hook))
    hook.setdefault("url_variables", {}).update(c.url_variables)
    hook.setdefault("custom_headers", {}).update(c.custom_headers)
    if c.target.field == "token":
        hook["token"] = held
    elif c.target.field == "url_variable":
        hook["url_variables"][c.target.name] = held
    else:
        hook["custom_headers"][c.target.name] = held


def _new_hook(scope: dict[str, Any], ref: str) -> dict[str, Any]:
    if ref.startswith(("https://", "http://")):
        return {**scope, "url": ref}
    if ref.isdigit():
        return {**scope, "id": int(ref), "url": f"https://hooks.sandbox.example/{ref}"}
    return {**scope, "name": ref, "url": f"https://hooks.sandbox.example/{_slug(ref)}"}


def _app_setting(w: WorldBuilder, c: Any, held: str) -> None:
    subdomain = _subdomain(w, c.provider)
    app = w.apps.setdefault((subdomain, c.app), {"name": c.app, "parameters": []})
    if not any(p["name"] == c.setting for p in app["parameters"]):
        app["parameters"].append({"name": c.setting, "secure": True})
    installation = w.installations.setdefault((subdomain, c.app), {"app": c.app, "settings": {"name": c.app}})
    installation["settings"][c.setting] = held


def _zendesk_webhook(w: WorldBuilder, c: Any, held: str) -> None:
    subdomain = _subdomain(w, c.provider)
    named = {"id": c.webhook, "name": c.webhook} if _ULID.fullmatch(c.webhook) else {"name": c.webhook}
    hook = w.webhooks.setdefault((subdomain, c.webhook), {
        **named, "endpoint": f"https://hooks.sandbox.example/zendesk/{_slug(c.webhook)}", "http_method": "POST",
        "request_format": "json"})
    if c.endpoint is not None:
        hook["endpoint"] = held
        return
    auth = c.authentication
    data = {"bearer_token": {"token": held}, "basic_auth": {"username": auth.username, "password": held},
            "api_key": {"name": auth.header, "value": held}}[auth.type]
    hook["authentication"] = {"type": auth.type, "data": data, "add_position": "header"}


def _subdomain(w: WorldBuilder, provider: str) -> str:
    w.instance(provider)
    found = w.inventory.providers[provider]
    assert isinstance(found, ZendeskProvider)
    return found.subdomain


CONSUMERS: dict[str, Callable[[WorldBuilder, Any, str], None]] = {
    "gitlab_ci_variable": _ci_variable,
    "gitlab_pipeline_schedule_variable": _schedule_variable,
    "gitlab_webhook": _gitlab_webhook,
    "zendesk_app_setting": _app_setting,
    "zendesk_webhook": _zendesk_webhook,
}


def inventory_seed(path: Path, now: datetime | None) -> dict[str, Any]:
    """The world seed of the inventory at `path` (`world_seed`); an inventory that does not load
    raises its own error (InventoryError: one line per problem, naming file, line and key)."""
    from reconciler.inventory import load_inventory

    return world_seed(load_inventory(path), now or datetime.now(UTC))


def world_seed(inventory: Inventory, now: datetime) -> dict[str, Any]:
    """The world seed in which every token of `inventory` (but those declared absent) exists and
    every consumer holds its current value. WorldError for a kind the sandbox cannot seed."""
    w = WorldBuilder(inventory, now)
    for provider in inventory.providers.values():
        if isinstance(provider, GitLabProvider):
            w.gitlab_credential(provider)
        else:
            w.zendesk_credential(provider)
    for token in sorted(inventory.tokens.values(), key=lambda t: t.name):
        if token.state == "absent":
            continue
        seed_source = SOURCES.get(token.source.kind)
        if seed_source is None:
            raise WorldError(f"token {token.name}: the sandbox cannot seed a {token.source.kind} from an inventory")
        value = seed_source(w, token)
        for consumer in token.consumers:
            _seed_consumer(w, token, consumer, value)
    return w.seed()


def _seed_consumer(w: WorldBuilder, token: Token, consumer: Consumer, value: str | dict[str, str]) -> None:
    seed_consumer = CONSUMERS.get(consumer.kind)
    if seed_consumer is None:
        raise WorldError(f"token {token.name}: the sandbox cannot seed a {consumer.kind} from an inventory")
    held = consumer_kind(consumer.kind).template(consumer)
    parts = value if isinstance(value, dict) else {"": value}
    for part, text in parts.items():
        held = held.replace("${token" + (f".{part}" if part else "") + "}", text)
    seed_consumer(w, consumer, held)
