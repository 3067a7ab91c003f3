"""Zendesk's OAuth grant endpoint, `POST /oauth/tokens` (no /api/v2): the authorization_code,
refresh_token and client_credentials grants, with expiring access and refresh tokens.

Sources (checked December 2026):
- The official Support OAS (developer.zendesk.com/zendesk/oas.yaml, CreateTokenForGrantType and
  OAuthTokenForGrantTypesObject) and developer.zendesk.com/api-reference/ticketing/oauth/grant_type_tokens/:
  the parameters; `expires_in` "more than 300 seconds ... and less than 172,800 seconds";
  `refresh_token_expires_in` "more than 604,800 seconds ... or expires_in ... and less than
  7,776,000 seconds", default 2,592,000; a refresh "returns a new access token and refresh token
  while invalidating the previous access and refresh tokens"; the code "is valid for only 120
  seconds"; answer 201.
- support.zendesk.com/hc/en-us/articles/9182123625370 (refresh grant, 2025-04-30; "OAuth clients
  created after April 30, 2026, automatically have the default time-to-live (TTL) enforced") and
  support.zendesk.com/hc/en-us/articles/10212201463962 (2026-02-02: new global clients get the
  default TTLs, access 30 minutes and refresh 30 days; minimum 5 minutes / 7 days, maximum
  48 hours / 90 days; local clients must adopt the refresh flow by 2027-04-01).
- Client credentials for confidential clients: Zendesk's announcement of 2025-03-04 (summarised
  at news.deltastring.com/story/1146).
- Error texts: Zendesk answers with Doorkeeper's (the Rails OAuth provider) texts, as the 401
  invalid_token body shows (zendesk/zendesk_api_client_rb#297, fprimex/zdesk#58); an unusable
  refresh token is `400 invalid_grant` (nango.dev/blog/zendesk-oauth-refresh-token-invalid-grant).

Choices where the sources are silent or disagree (written as guesses in docs/sandbox-zendesk.md):
- Bounds are inclusive (300..172,800 and 604,800..7,776,000): the docs say "more than" and
  "less than", but their own example uses refresh_token_expires_in 604,800 and the announcement
  gives 5 minutes / 48 hours as minimum / maximum TTLs. Out of range: 400 invalid_request.
- A refresh token comes only with an expiring access token (the OAS: older clients "must
  explicitly pass expires_in ... to ... receive a refresh token"), never with client_credentials
  (RFC 6749 section 4.4.3: the client simply asks again).
- A refreshed pair keeps the old access token's lifetime unless `expires_in` is given, and its
  refresh token gets a fresh `refresh_token_expires_in` (default 30 days) from the refresh.
- A refresh may narrow the scopes (`scope`), never widen them (400 invalid_scope).
- From 2027-04-01 every client's grants get the default TTLs (the local clients' deadline).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from reconciler_sandbox.core import HTTPError, Request, Response
from reconciler_sandbox.zendesk_state import (
    DEFAULT_REFRESH_LIFETIME,
    Instance,
    from_iso,
    iso,
    new_oauth_token,
)

if TYPE_CHECKING:
    from reconciler_sandbox.zendesk import ZendeskService

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
ACCESS_TTL_RANGE = (300, 172_800)
REFRESH_TTL_RANGE = (604_800, 7_776_000)
DEFAULT_ACCESS_TTL = 1_800
DEFAULT_REFRESH_TTL = int(DEFAULT_REFRESH_LIFETIME.total_seconds())
CODE_LIFETIME = timedelta(seconds=120)
# Clients created from these dates get expiring tokens by default; from the last, every client.
EXPIRING_GLOBAL_CLIENTS_FROM = datetime(2026, 2, 2, tzinfo=UTC)
EXPIRING_LOCAL_CLIENTS_FROM = datetime(2026, 4, 30, tzinfo=UTC)
EVERY_CLIENT_EXPIRES_FROM = datetime(2027, 4, 1, tzinfo=UTC)

# Doorkeeper's descriptions (the texts Zendesk's OAuth errors carry).
OAUTH_ERRORS = {
    "invalid_request": "The request is missing a required parameter, includes an unsupported parameter value, "
                       "or is otherwise malformed.",
    "invalid_client": "Client authentication failed due to unknown client, no client authentication included, "
                      "or unsupported authentication method.",
    "invalid_grant": "The provided authorization grant is invalid, expired, revoked, does not match the "
                     "redirection URI used in the authorization request, or was issued to another client.",
    "unsupported_grant_type": "The authorization grant type is not supported by the authorization server.",
    "invalid_scope": "The requested scope is invalid, unknown, or malformed.",
}


def oauth_error(status: int, error: str, description: str | None = None) -> HTTPError:
    return HTTPError(status, {"error": error, "error_description": description or OAUTH_ERRORS[error]})


def default_access_ttl(inst: Instance, client: dict[str, Any]) -> int | None:
    """30 minutes for clients whose tokens expire by default; None (never) for older ones."""
    created = from_iso(client["created_at"])
    assert created is not None
    since = EXPIRING_GLOBAL_CLIENTS_FROM if client["global"] else EXPIRING_LOCAL_CLIENTS_FROM
    if created >= since or inst.clock.now() >= EVERY_CLIENT_EXPIRES_FROM:
        return DEFAULT_ACCESS_TTL
    return None


# --- parameters ------------------------------------------------------------------------------


def grant_params(request: Request) -> dict[str, Any]:
    """The JSON (or form) body, with client_secret_basic credentials folded in."""
    params = request.json()
    params = dict(params) if isinstance(params, dict) else {}
    header = request.header("Authorization") or ""
    if header.lower().startswith("basic "):
        try:
            ident, _, secret = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise oauth_error(401, "invalid_client") from None
        params = {"client_id": ident, "client_secret": secret, **params}
    return params


def seconds(params: dict[str, Any], key: str, bounds: tuple[int, int]) -> int | None:
    if params.get(key) is None:
        return None
    try:
        value = int(params[key])
    except (TypeError, ValueError):
        value = -1
    if not bounds[0] <= value <= bounds[1]:
        raise oauth_error(400, "invalid_request", f"{key} must be between {bounds[0]} and {bounds[1]} seconds")
    return value


def lifetimes(params: dict[str, Any]) -> tuple[int | None, int | None]:
    """(expires_in, refresh_token_expires_in) as asked for, checked against the documented bounds."""
    expires_in = seconds(params, "expires_in", ACCESS_TTL_RANGE)
    refresh_in = seconds(params, "refresh_token_expires_in", REFRESH_TTL_RANGE)
    if expires_in is not None and refresh_in is not None and refresh_in < expires_in:
        raise oauth_error(400, "invalid_request", "refresh_token_expires_in must not be shorter than expires_in")
    return expires_in, refresh_in


def authenticated_client(inst: Instance, params: dict[str, Any]) -> dict[str, Any]:
    """The client named by `client_id` (its identifier). A confidential client must present its
    current secret; a public client cannot keep one, so it is identified by `client_id` alone."""
    client = inst.client(params.get("client_id")) if isinstance(params.get("client_id"), str) else None
    if client is None or client["kind"] == "confidential" and client["secret"] != params.get("client_secret"):
        raise oauth_error(401, "invalid_client")
    return client


# --- the grants ------------------------------------------------------------------------------


def issue(inst: Instance, client: dict[str, Any], user_id: int, scopes: list[str],
          expires_in: int | None, refresh_in: int | None, *, refreshable: bool) -> Response:
    now = inst.clock.now()
    refresh = new_oauth_token() if refreshable and expires_in is not None else None
    refresh_in = refresh_in or DEFAULT_REFRESH_TTL
    token = inst.mint_oauth_token(
        client, user_id, scopes,
        expires_at=iso(now + timedelta(seconds=expires_in)) if expires_in else None,
        refresh_token=refresh, refresh_token_expires_at=iso(now + timedelta(seconds=refresh_in)))
    body: dict[str, Any] = {"access_token": token["token"], "token_type": "bearer", "scope": " ".join(scopes)}
    if expires_in:
        body["expires_in"] = expires_in
    if refresh:
        body.update(refresh_token=refresh, refresh_token_expires_in=refresh_in)
    return Response(201, body)  # the OAS documents 201 for CreateTokenForGrantType


def client_credentials(inst: Instance, client: dict[str, Any], params: dict[str, Any]) -> Response:
    if client["kind"] != "confidential":  # "for confidential OAuth clients"
        raise oauth_error(401, "invalid_client")
    scope = params.get("scope")
    if not isinstance(scope, str) or not scope.split():
        raise oauth_error(400, "invalid_scope")
    expires_in, _ = lifetimes(params)
    expires_in = expires_in or default_access_ttl(inst, client)
    return issue(inst, client, client["user_id"], scope.split(), expires_in, None, refreshable=False)


def pkce_matches(code: dict[str, Any], verifier: Any) -> bool:
    if not code["code_challenge"]:
        return True
    if not isinstance(verifier, str):
        return False
    if code["code_challenge_method"] == "plain":
        return verifier == code["code_challenge"]
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return digest == code["code_challenge"]


def authorization_code(inst: Instance, client: dict[str, Any], params: dict[str, Any]) -> Response:
    """Exchange a code (once, within 120 seconds, with the redirect_uri and PKCE verifier it was
    issued with; a public client's code must carry a PKCE challenge) for a token pair."""
    expires_in, refresh_in = lifetimes(params)  # a malformed request does not spend the code
    code = next((c for c in inst.authorization_codes
                 if c["code"] == params.get("code") and c["client_id"] == client["id"]), None)
    if code is None:
        raise oauth_error(400, "invalid_grant")
    inst.authorization_codes.remove(code)  # used or not, a presented code is spent
    issued = from_iso(code["created_at"])
    assert issued is not None
    if (inst.clock.now() >= issued + CODE_LIFETIME or code["redirect_uri"] not in (None, params.get("redirect_uri"))
            or not pkce_matches(code, params.get("code_verifier"))
            or client["kind"] == "public" and not code["code_challenge"]):
        raise oauth_error(400, "invalid_grant")
    return issue(inst, client, code["user_id"], code["scopes"], expires_in or default_access_ttl(inst, client),
                 refresh_in, refreshable=True)


def narrowed_scopes(old: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """The scopes asked for (the old ones when none are): a subset, or 400 invalid_scope."""
    asked = params.get("scope")
    scopes = asked.split() if isinstance(asked, str) and asked.strip() else list(old["scopes"])
    if not set(scopes) <= set(old["scopes"]):
        raise oauth_error(400, "invalid_scope")
    return scopes


def lifetime(token: dict[str, Any]) -> int | None:
    expires, created = from_iso(token["expires_at"]), from_iso(token["created_at"])
    return int((expires - created).total_seconds()) if expires and created else None


def refresh_token(inst: Instance, client: dict[str, Any], params: dict[str, Any]) -> Response:
    """A new pair for a live refresh token of this client; the old pair dies at once."""
    old = next((t for t in inst.oauth_tokens if t["refresh_token"] and t["refresh_token"] == params.get("refresh_token")
                and t["client_id"] == client["id"]), None)
    refresh_expires = from_iso(old["refresh_token_expires_at"]) if old else None
    if old is None or refresh_expires is None or inst.clock.now() >= refresh_expires:
        raise oauth_error(400, "invalid_grant")
    scopes = narrowed_scopes(old, params)
    expires_in, refresh_in = lifetimes(params)
    expires_in = expires_in or lifetime(old) or default_access_ttl(inst, client) or DEFAULT_ACCESS_TTL
    inst.oauth_tokens.remove(old)
    return issue(inst, client, old["user_id"], scopes, expires_in, refresh_in, refreshable=True)


GRANTS = {"authorization_code": authorization_code, "refresh_token": refresh_token,
          "client_credentials": client_credentials}


def grant_token(inst: Instance, request: Request) -> Response:
    """`POST /oauth/tokens`: no API credential; the client authenticates in the body (or with
    HTTP Basic). Errors in OAuth 2.0 shape (RFC 6749 section 5.2) with Doorkeeper's texts."""
    params = grant_params(request)
    grant_type = params.get("grant_type")
    if grant_type not in GRANTS:
        raise oauth_error(400, "unsupported_grant_type")
    return GRANTS[grant_type](inst, authenticated_client(inst, params), params)


def register(service: ZendeskService) -> None:
    service.public("POST", "/oauth/tokens{.json}", grant_token)
