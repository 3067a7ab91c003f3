"""Zendesk credentials: OAuth clients, OAuth tokens, API tokens (the grant endpoint
`POST /oauth/tokens` is in zendesk_oauth.py).

Shapes follow the official Support OAS (developer.zendesk.com/zendesk/oas.yaml: OAuthClientObject,
OauthTokenObject) and developer.zendesk.com/api-reference/ticketing/oauth/. The API-token list's
shape is cartography's (cartography-cncf/cartography, cartography/intel/zendesk/api_tokens.py:
`GET /api/v2/api_tokens`, ListApiTokens, unpaginated).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler_sandbox.core import Request, Response
from reconciler_sandbox.zendesk_http import (
    Caller,
    forbidden,
    invalid_field,
    list_page,
    not_found,
    record_invalid,
)
from reconciler_sandbox.zendesk_state import (
    NO_CREATION_FROM,
    SUNSET,
    Instance,
    new_api_token,
    new_client_secret,
)

if TYPE_CHECKING:
    from reconciler_sandbox.zendesk import ZendeskService

VISIBLE_TOKEN_CHARS = 10  # "only the first 10 characters of each access token are included"


def masked(value: str, visible: int) -> str:
    """A credential as a list shows it: a prefix, the rest starred. [uncertain] for client
    secrets and API tokens: Zendesk documents only that the full value is shown once."""
    return value[:visible] + "*" * max(len(value) - visible, 0)


def body_object(request: Request, key: str) -> dict[str, Any]:
    body = request.json()
    obj = body.get(key) if isinstance(body, dict) else None
    if not isinstance(obj, dict):
        raise record_invalid({key: [{"description": f"{key} parameter is missing or not an object",
                                     "error": "InvalidValue"}]})
    return obj


# --- OAuth clients ---------------------------------------------------------------------------


def client_json(request: Request, client: dict[str, Any], *, reveal: bool = False) -> dict[str, Any]:
    return {
        "id": client["id"],
        "url": f"{request.base_url}/api/v2/oauth/clients/{client['id']}.json",
        "name": client["name"],
        "identifier": client["identifier"],
        "kind": client["kind"],
        "company": client["company"],
        "description": client["description"],
        "redirect_uri": list(client["redirect_uri"]),
        "logo_url": client["logo_url"],
        "user_id": client["user_id"],
        "global": client["global"],
        # The secret is "returned in full only at" creation and by generate_secret.
        "secret": client["secret"] if reveal else masked(client["secret"], 6),
        "created_at": client["created_at"],
        "updated_at": client["updated_at"],
    }


def _client_fields(inst: Instance, given: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    errors: dict[str, list[dict[str, str]]] = {}
    merged = {**(current or {}), **{k: v for k, v in given.items() if k in (
        "name", "identifier", "kind", "company", "description", "redirect_uri")}}
    for field in ("name", "identifier"):
        if not isinstance(merged.get(field), str) or not merged[field].strip():
            errors[field] = [{"description": f"{field.capitalize()}: cannot be blank", "error": "BlankValue"}]
    if merged.get("kind", "confidential") not in ("public", "confidential"):
        errors["kind"] = [{"description": "Kind: must be public or confidential", "error": "InvalidValue"}]
    other = inst.client(merged.get("identifier"))
    if other is not None and other is not current and other["identifier"] == merged.get("identifier"):
        errors["identifier"] = [{"description": "Identifier: has already been taken", "error": "DuplicateValue"}]
    if not isinstance(merged.get("redirect_uri", []), list):
        errors["redirect_uri"] = [{"description": "Redirect uri: must be a list", "error": "InvalidValue"}]
    if errors:
        raise record_invalid(errors)
    return merged


def list_clients(caller: Caller, request: Request) -> Response:
    items = [client_json(request, c) for c in caller.instance.oauth_clients]
    return Response(200, list_page(request, items, "clients"))


def show_client(caller: Caller, request: Request) -> Response:
    client = caller.instance.find(caller.instance.oauth_clients, request.params["id"])
    if client is None:
        raise not_found()
    return Response(200, {"client": client_json(request, client)})


def create_client(caller: Caller, request: Request) -> Response:
    inst = caller.instance
    fields = _client_fields(inst, body_object(request, "client"), None)
    record = inst.seed_oauth_client({**fields, "user": caller.user["id"]}, "request")
    record["secret"] = new_client_secret()
    inst.remember(record["secret"])
    return Response(201, {"client": client_json(request, record, reveal=True)})


def update_client(caller: Caller, request: Request) -> Response:
    inst = caller.instance
    client = inst.find(inst.oauth_clients, request.params["id"])
    if client is None:
        raise not_found()
    client.update(_client_fields(inst, body_object(request, "client"), client), updated_at=inst.now())
    return Response(200, {"client": client_json(request, client)})


def delete_client(caller: Caller, request: Request) -> Response:
    inst = caller.instance
    client = inst.find(inst.oauth_clients, request.params["id"])
    if client is None:
        raise not_found()
    inst.oauth_clients.remove(client)
    # A deleted client's tokens (access and refresh) and unused codes stop working with it.
    inst.oauth_tokens[:] = [t for t in inst.oauth_tokens if t["client_id"] != client["id"]]
    inst.authorization_codes[:] = [c for c in inst.authorization_codes if c["client_id"] != client["id"]]
    return Response(204)


def generate_secret(caller: Caller, request: Request) -> Response:
    inst = caller.instance
    client = inst.find(inst.oauth_clients, request.params["id"])
    if client is None:
        raise not_found()
    client["secret"] = new_client_secret()  # the old secret is invalid at once
    client["updated_at"] = inst.now()
    inst.remember(client["secret"])
    return Response(200, {"client": client_json(request, client, reveal=True)})


# --- OAuth tokens ----------------------------------------------------------------------------


def token_json(request: Request, token: dict[str, Any], *, reveal: bool = False) -> dict[str, Any]:
    return {
        "id": token["id"],
        "url": f"{request.base_url}/api/v2/oauth/tokens/{token['id']}.json",
        "client_id": token["client_id"],
        "user_id": token["user_id"],
        "token": token["token"] if reveal else token["token"][:VISIBLE_TOKEN_CHARS],
        # Lists show the refresh token cut like the access token: a guess (the docs say only that
        # access tokens are cut to 10 characters; showing a refresh token whole would leak it).
        "refresh_token": token["refresh_token"][:VISIBLE_TOKEN_CHARS] if token["refresh_token"] else None,
        "scopes": list(token["scopes"]),
        "created_at": token["created_at"],
        "used_at": token["used_at"],
        "expires_at": token["expires_at"],
        "refresh_token_expires_at": token["refresh_token_expires_at"],
    }


def list_tokens(caller: Caller, request: Request) -> Response:
    tokens = caller.instance.oauth_tokens
    if request.arg("all") != "true":  # "the tokens for the current user"; admins may ask for all
        tokens = [t for t in tokens if t["user_id"] == caller.user["id"]]
    if request.arg("client_id"):
        tokens = [t for t in tokens if str(t["client_id"]) == request.arg("client_id")]
    return Response(200, list_page(request, [token_json(request, t) for t in tokens], "tokens"))


def create_token(caller: Caller, request: Request) -> Response:
    inst = caller.instance
    given = body_object(request, "token")
    client = inst.find(inst.oauth_clients, given.get("client_id")) if given.get("client_id") is not None else None
    if client is None:
        raise invalid_field("client_id", "Client: must be the id of an OAuth client of this account")
    scopes = given.get("scopes")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise invalid_field("scopes", "Scopes: must be a non-empty list of scopes")
    # An invalid scope still yields a token (its requests then answer 403), as documented.
    token = inst.mint_oauth_token(client, caller.user["id"], scopes)
    return Response(201, {"token": token_json(request, token, reveal=True)})


def _own_token(caller: Caller, token_id: str) -> dict[str, Any]:
    inst = caller.instance
    if token_id == "current":
        if caller.oauth_token is None:
            raise not_found()
        return caller.oauth_token
    token = inst.find(inst.oauth_tokens, token_id)
    if token is None or (token["user_id"] != caller.user["id"] and not caller.is_admin):
        raise not_found()
    return token


def show_token(caller: Caller, request: Request) -> Response:
    return Response(200, {"token": token_json(request, _own_token(caller, request.params["id"]))})


def revoke_token(caller: Caller, request: Request) -> Response:
    token = _own_token(caller, request.params["id"])
    caller.instance.oauth_tokens.remove(token)  # its refresh token goes with it
    return Response(204)


# --- API tokens ------------------------------------------------------------------------------


def api_token_json(inst: Instance, token: dict[str, Any], *, reveal: bool = False) -> dict[str, Any]:
    active, _ = inst.api_token_state(token)
    shown = token["token"] if reveal else masked(token["token"], 4)
    return {
        "id": token["id"],
        "user_id": token["user_id"],
        "description": token["description"],
        "active": active,
        "created_at": token["created_at"],
        "updated_at": token["updated_at"],
        "last_used": token["last_used"],
        "visible_token": masked(token["token"], 4),
        "token": shown,
    }


def list_api_tokens(caller: Caller, request: Request) -> Response:
    inst = caller.instance
    # Unpaginated: one api_tokens array (cartography's ListApiTokens notes, reference section 1).
    shown = [api_token_json(inst, t) for t in inst.api_tokens if not inst.api_token_state(t)[1]]
    return Response(200, {"api_tokens": shown})


def create_api_token(caller: Caller, request: Request) -> Response:
    inst = caller.instance
    if inst.clock.now() >= NO_CREATION_FROM:  # "no account can create new API tokens"
        raise forbidden()
    given = body_object(request, "api_token")
    token = inst.seed_api_token({"description": given.get("description", ""), "user": caller.user["id"],
                                 "value": new_api_token()}, "request")
    return Response(201, {"api_token": api_token_json(inst, token, reveal=True)})


def live_api_token(inst: Instance, token_id: str) -> dict[str, Any]:
    token = inst.find(inst.api_tokens, token_id)
    if token is None or inst.api_token_state(token)[1]:  # deleted ones are gone for good
        raise not_found()
    return token


def show_api_token(caller: Caller, request: Request) -> Response:
    inst = caller.instance
    return Response(200, {"api_token": api_token_json(inst, live_api_token(inst, request.params["id"]))})


def update_api_token(caller: Caller, request: Request) -> Response:
    """`PUT /api/v2/api_tokens/{id}` `{"api_token": {"description", "active"}}`: edit the
    description, deactivate, reactivate. Undocumented as an API (the help center describes these
    three actions in Admin Center); the body follows Zendesk's `{"<record>": {...}}` convention.
    Reactivation is refused from 2027-04-30 ("can't be reactivated") with 422: a guess."""
    inst = caller.instance
    token = live_api_token(inst, request.params["id"])
    given = body_object(request, "api_token")
    if "description" in given:
        if not isinstance(given["description"], str):
            raise invalid_field("description", "Description: must be a string")
        token["description"] = given["description"]
    active = given.get("active")
    if active is not None and not isinstance(active, bool):
        raise invalid_field("active", "Active: must be true or false")
    now = inst.now()
    if active is False and inst.api_token_state(token)[0]:
        token.update(active=False, deactivated_at=now, auto_deactivated=False)
    elif active is True and not inst.api_token_state(token)[0]:
        if inst.clock.now() >= SUNSET:
            raise invalid_field("active", "Active: API tokens can no longer be reactivated")
        token.update(active=True, deactivated_at=None, auto_deactivated=False, reactivated_at=now)
    token["updated_at"] = now
    return Response(200, {"api_token": api_token_json(inst, token)})


def delete_api_token(caller: Caller, request: Request) -> Response:
    """204. An active token is refused (422): Admin Center offers Delete only for deactivated
    tokens (GitLab's runbook: "you cannot delete the token until it is deactivated"); whether the
    API refuses too is a guess, the careful one for a client."""
    inst = caller.instance
    token = live_api_token(inst, request.params["id"])
    if inst.api_token_state(token)[0]:
        raise invalid_field("active", "Active: deactivate the token before deleting it")
    inst.api_tokens.remove(token)
    return Response(204)


def register(service: ZendeskService) -> None:
    api = service.api
    api("GET", "/api/v2/oauth/clients{.json}", list_clients, resource=None)
    api("POST", "/api/v2/oauth/clients{.json}", create_client, resource=None)
    api("GET", "/api/v2/oauth/clients/{id}{.json}", show_client, resource=None)
    api("PUT", "/api/v2/oauth/clients/{id}{.json}", update_client, resource=None)
    api("DELETE", "/api/v2/oauth/clients/{id}{.json}", delete_client, resource=None)
    api("PUT", "/api/v2/oauth/clients/{id}/generate_secret{.json}", generate_secret, resource=None)
    api("GET", "/api/v2/oauth/tokens{.json}", list_tokens, resource=None)
    api("POST", "/api/v2/oauth/tokens{.json}", create_token, resource=None)
    api("GET", "/api/v2/oauth/tokens/{id}{.json}", show_token, resource=None, role="end-user")
    api("DELETE", "/api/v2/oauth/tokens/{id}{.json}", revoke_token, resource=None, role="end-user")
    api("GET", "/api/v2/api_tokens{.json}", list_api_tokens, resource=None)
    api("POST", "/api/v2/api_tokens{.json}", create_api_token, resource=None)
    api("GET", "/api/v2/api_tokens/{id}{.json}", show_api_token, resource=None)
    api("PUT", "/api/v2/api_tokens/{id}{.json}", update_api_token, resource=None)
    api("DELETE", "/api/v2/api_tokens/{id}{.json}", delete_api_token, resource=None)
