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

from reconciler.inventory.model import Diagnostic, Inventory, Policy, ScopeApproval, Source, finding
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


class Listed(list[dict[str, Any]]):
    """A list's rows with room for a lookup a kind builds from them (`lookup`), which so lives
    exactly as long as the list does."""

    lookup: object = None


def fetch_webhooks(api: ZendeskApi, scope: str) -> list[dict[str, Any]]:
    found = Listed()
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
        row["refreshable"] = bool(row.pop("refresh_token", None))  # the grant has a refresh token
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


def oauth_error_code(answer: Any) -> str | None:
    """The OAuth error code of a grant's answer (`invalid_grant`, `invalid_scope`...), never its
    other fields (they could echo what was sent); None when the body has no such code."""
    try:
        code = answer.json().get("error")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) and code.isidentifier() else None


def live_oauth_client(row: dict[str, Any], where: str) -> LiveToken:
    """An OAuth client as a live credential: its id, identifier and the time its secret was last
    made (`updated_at`: generate_secret changes the secret and keeps the id)."""
    return LiveToken(
        id=str(row["id"]),
        name=str(row.get("identifier")),
        where=where,
        created_at=parse_time(row.get("updated_at") or row.get("created_at")),
    )


def live_zendesk_token(row: dict[str, Any], name: str, where: str) -> LiveToken:
    """The token as listed. Zendesk gives expiries to the second (a 30-minute OAuth access
    token), so they are kept as times, never cut to a date."""
    return LiveToken(
        id=str(row["id"]),
        name=name,
        where=where,
        created_at=parse_time(row.get("created_at")),
        expires_at=parse_time(row.get("expires_at")),
        renewal_expires_at=parse_time(row.get("refresh_token_expires_at")) if row.get("refreshable") else None,
        last_used_at=parse_time(row.get("used_at") or row.get("last_used") or row.get("last_used_at")),
        active=bool(row.get("active", True)),
        scopes=tuple(sorted(row.get("scopes") or ())),
        user_id=None if row.get("user_id") is None else str(row["user_id"]),
    )


# --- the way off API tokens: an OAuth source that replaces one --------------------------------

# The `replaces` property of the Zendesk OAuth sources' schema fragments.
REPLACES_PROPERTY: dict[str, Any] = {
    "type": "string",
    "description": "Name of an inventory token whose source is a Zendesk API token that this OAuth credential "
                   "replaces: move that token's consumers here (each with its new template: `Bearer ${token}` where a "
                   "header is built from it, the bare `${token}` in a masked CI/CD variable); apply delivers this credential to them, verifies it, and only then "
                   "deactivates the API token.",
    "minLength": 1,
}


def replaces_findings(source: Source, replaces: str | None, inv: Inventory, path: str) -> list[Diagnostic]:
    """`replaces` must name an inventory token of a kind its provider is retiring, on the same
    Zendesk instance, that no other token replaces and whose consumers have moved here."""
    from reconciler.inventory.schema import suggestion
    from reconciler.kinds import source_kind
    from reconciler.kinds._discovery import SunsetSource

    if replaces is None:
        return []
    old = inv.tokens.get(replaces)
    if old is None:
        hint = suggestion(replaces, list(inv.tokens)) or ""
        return [finding(source, "replaces", path, f"no token named {replaces!r}{hint}")]
    kind = source_kind(old.source.kind)
    if not isinstance(kind, SunsetSource):
        return [finding(source, "replaces", path, f"token {replaces} is a {kind.noun}, not a Zendesk API token: "
                                                 "only a credential Zendesk is retiring is replaced this way")]
    found = []
    if old.source.provider != source.provider:
        found.append(finding(source, "replaces", path, f"token {replaces} is an API token of {old.source.provider}, "
                                                      f"this OAuth credential belongs to {source.provider}"))
    others = sorted(n for n, t in inv.tokens.items()
                    if t.source is not source and source_kind(t.source.kind).replaces(t.source) == replaces)
    if others:
        found.append(finding(source, "replaces", path, f"token {replaces} is replaced by {', '.join(others)} too: "
                                                      "one credential replaces it"))
    if old.consumers:
        found.append(finding(source, "replaces", path, f"token {replaces} still lists {len(old.consumers)} "
                                                      "consumer(s): move them here, each with the template it "
                                                      "needs for the OAuth credential (`Bearer ${token}` for a header, "
                                                      "the bare `${token}` in a masked CI/CD variable)"))
    return found


# --- the scope gate: scopes an access request approved ----------------------------------------


def scope_approval(provider: str, client: str, scopes: tuple[str, ...], policy: Policy) -> ScopeApproval | None:
    """The approved set of `policy.approved_scopes` that covers `scopes` (an exact one first)."""
    entries = policy.approved_scopes.get(provider, {}).get(client, ())
    exact = [e for e in entries if set(e.scopes) == set(scopes)]
    return next(iter(exact or [e for e in entries if e.covers(scopes)]), None)


def approval_words(source: Source, client: str, scopes: tuple[str, ...], policy: Policy) -> str | None:
    approval = scope_approval(str(source.provider), client, scopes, policy)
    if approval is None:
        return None
    return f"scopes {' '.join(sorted(scopes))} approved in {approval.access_request}"


def approval_findings(source: Source, client: str, scopes: tuple[str, ...], policy: Policy, path: str) -> list[Diagnostic]:
    """With `policy.approved_scopes` set, an error unless an access request approved these scopes
    for this client (the runbook: "verify the scopes requested are documented and approved in the
    access request; if they are not, STOP")."""
    if not policy.approved_scopes or scope_approval(str(source.provider), client, scopes, policy) is not None:
        return []
    entries = policy.approved_scopes.get(str(source.provider), {}).get(client, ())
    where = f"policy.approved_scopes.{source.provider}.{client}"
    approved = "; ".join(f"[{', '.join(e.scopes)}] by {e.access_request}" for e in entries)
    return [finding(source, "scopes", path,
                    f"scopes [{', '.join(scopes)}] of OAuth client {client} are approved by no access request: "
                    + (f"{where} approves only {approved}" if entries else f"{where} lists none")
                    + "; get them approved in an access request and list it there")]
