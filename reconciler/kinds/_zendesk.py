"""Zendesk list calls shared by the Zendesk kinds, one per instance and resource type.

Webhooks go through zenpy (`Zenpy.webhooks.list`); OAuth tokens and clients, API tokens and app
installations, which zenpy does not cover, go through that zenpy client's authenticated session
(`ZendeskApi.get_all` in reconciler.clients), following cursor pages. Credential-bearing fields
become `Secret` on arrival (webhook endpoints, installation settings); truncated token prefixes
that lists return are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reconciler.kinds._answers import checked
from reconciler.observed import LiveToken, parse_time
from reconciler.secret import Secret

if TYPE_CHECKING:
    from reconciler.clients import ZendeskApi

PAGE_SIZE = 100

ZENDESK_API_TOKEN_SUNSET = (
    "Zendesk disabled creating API tokens on 2026-10-27 and cuts every API token off on 2027-04-30 "
    "(and deactivates one unused for 30 days)"
)

# Zendesk OAuth tokens are hex; API tokens and client secrets alphanumeric.
TOKEN_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


# The `provider` property of every Zendesk kind's schema fragment.
PROVIDER_PROPERTY: dict[str, Any] = {
    "type": "string",
    "description": "Name of the Zendesk provider (a key under `providers`).",
    "minLength": 1,
}


def fetch_webhooks(api: ZendeskApi, scope: str) -> list[dict[str, Any]]:
    found = []
    for hook in api.zenpy.webhooks.list(page_size=PAGE_SIZE):
        row = hook.to_dict() if hasattr(hook, "to_dict") else dict(hook)  # serialize=True: dirty fields only
        endpoint = row.get("endpoint")
        row["endpoint"] = Secret(endpoint) if isinstance(endpoint, str) else None
        found.append(row)
    return found


def fetch_installations(api: ZendeskApi, scope: str) -> list[dict[str, Any]]:
    """`GET /api/v2/apps/installations?include=app`: each installation with its app (name and
    parameters, whose `secure` flag says which settings are write-only)."""
    body = api.get("/api/v2/apps/installations.json", {"include": "app"})
    apps = {str(a.get("id")): a for a in body.get("apps") or ()}
    found = []
    for row in body.get("installations") or ():
        row = dict(row)
        app = row.get("app") or apps.get(str(row.get("app_id"))) or {}
        row["app"] = {"id": app.get("id"), "name": app.get("name"), "parameters": [
            {"name": p.get("name"), "secure": bool(p.get("secure"))} for p in app.get("parameters") or ()]}
        settings = row.get("settings") or {}
        row["settings"] = {k: (Secret(v) if isinstance(v, str) and v != "" else v) for k, v in settings.items()}
        row.pop("settings_objects", None)  # the same values again
        found.append(row)
    return found


def fetch_oauth_clients(api: ZendeskApi, scope: str) -> list[dict[str, Any]]:
    rows = api.get_all("/api/v2/oauth/clients.json", "clients", {"page[size]": PAGE_SIZE})
    for row in rows:
        row.pop("secret", None)  # only ever complete at creation; never kept
    api.remember_oauth_clients(rows)  # an OAuth token's mint needs its client's id: no second list
    return rows


def fetch_oauth_tokens(api: ZendeskApi, scope: str) -> list[dict[str, Any]]:
    rows = api.get_all("/api/v2/oauth/tokens.json", "tokens", {"all": "true", "page[size]": PAGE_SIZE})
    for row in rows:
        row.pop("token", None)  # a 10-character prefix: not a value, but not kept either
        row.pop("refresh_token", None)
    return rows


def fetch_user(api: ZendeskApi, scope: str) -> dict[str, Any]:
    """`{"id": ...}` of the provider credential's user: the user `POST /api/v2/oauth/tokens` mints
    for, whose tokens an OAuth token source is. With an OAuth credential `GET
    /api/v2/oauth/tokens/current` (its `user_id`), else `GET /api/v2/users/me`."""
    if api.oauth:
        token = api.get("/api/v2/oauth/tokens/current.json")["token"]
        api.known_credential_id = str(token["id"])  # the same answer says which token it is (apply asks)
        return {"id": token["user_id"]}
    return {"id": api.get("/api/v2/users/me.json")["user"]["id"]}


def fetch_api_tokens(api: ZendeskApi, scope: str) -> list[dict[str, Any]]:
    rows = api.get_all("/api/v2/api_tokens.json", "api_tokens", {})
    for row in rows:
        row.pop("token", None)
        row.pop("visible_token", None)
    return rows


FETCHERS: dict[str, Callable[[Any, str], Any]] = {
    "webhooks": checked(fetch_webhooks),
    "installations": checked(fetch_installations),
    "oauth_clients": checked(fetch_oauth_clients),
    "oauth_tokens": checked(fetch_oauth_tokens),
    "user": checked(fetch_user, many=False),
    "api_tokens": checked(fetch_api_tokens),
}


def live_zendesk_token(row: dict[str, Any], name: str, where: str) -> LiveToken:
    expires = parse_time(row.get("expires_at"))
    return LiveToken(
        id=str(row["id"]),
        name=name,
        where=where,
        created_at=parse_time(row.get("created_at")),
        expires_at=expires.date() if expires else None,
        last_used_at=parse_time(row.get("used_at") or row.get("last_used") or row.get("last_used_at")),
        active=bool(row.get("active", True)),
        scopes=tuple(sorted(row.get("scopes") or ())),
        user_id=None if row.get("user_id") is None else str(row["user_id"]),
    )
