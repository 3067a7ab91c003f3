"""Source kind `zendesk_oauth_token`: an OAuth access token of a client, renewed by overlap
(`POST /api/v2/oauth/tokens` with the client's numeric id and the scopes, deliver, then
`DELETE /api/v2/oauth/tokens/:id`).

Observe: `GET /api/v2/oauth/clients` (to map the client identifier to its id) and
`GET /api/v2/oauth/tokens?all=true`, one each per instance, and the credential's user (`GET
/api/v2/oauth/tokens/current`, once per instance: `_zendesk.fetch_user`); the token is the newest
of THAT user's tokens with that client and exactly those scopes. Tokens of other users (the list
has them all) are neither current nor orphans: apply must never revoke them. Identify a held value: `GET /api/v2/oauth/tokens/current` with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from reconciler.inventory.checks import allowed_scope_findings
from reconciler.inventory.model import Diagnostic, Inventory, Source, Token
from reconciler.kinds import (
    Identifying,
    Identity,
    ListKey,
    Lists,
    Mintable,
    Minted,
    Revocable,
    SourceKind,
    Strategy,
)
from reconciler.kinds._gitlab import pick, rows
from reconciler.kinds._zendesk import TOKEN_ALPHABET, live_zendesk_token
from reconciler.observed import LiveToken, SourceObservation
from reconciler.secret import Secret


@dataclass(frozen=True, kw_only=True)
class ZendeskOAuthToken(Source):
    client: str  # the OAuth client's identifier (unique per account)
    scopes: tuple[str, ...]
    kind: ClassVar[str] = "zendesk_oauth_token"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.client}:{' '.join(sorted(self.scopes))}"


# Its definition in the inventory schema: $defs/source_zendesk_oauth_token.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A Zendesk OAuth access token, renewed by creating a new token and revoking the old.",
    "properties": {
        "kind": {"const": "zendesk_oauth_token", "description": "`zendesk_oauth_token`."},
        "provider": {
            "type": "string",
            "description": "Name of the Zendesk provider (a key under `providers`).",
            "minLength": 1,
        },
        "client": {
            "type": "string",
            "description": "Identifier of the OAuth client the token belongs to (unique per account).",
            "minLength": 1,
        },
        "scopes": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "description": "Scopes: `read`, `write`, `impersonate`, or `RESOURCE:read|write` (e.g. `tickets:read`).",
            "items": {"type": "string", "pattern": "^(([a-z_]+:)?(read|write)|impersonate)$"},
        },
    },
    "additionalProperties": False,
    "required": ["kind", "provider", "client", "scopes"],
}


def client_row(provider: str, identifier: str, lists: Lists) -> tuple[dict[str, Any] | None, str | None]:
    data, error = rows(lists, ListKey(provider, "oauth_clients"))
    if error:
        return None, error
    for row in data or ():
        if row.get("identifier") == identifier:
            return row, None  # type: ignore[return-value]
    return None, f"no OAuth client with identifier {identifier!r}"


class OAuthTokenKind(SourceKind, Mintable, Revocable, Identifying):
    """Scopes never drift: the token is matched by its scopes, so other scopes are another token."""
    model = ZendeskOAuthToken
    schema = SCHEMA
    schema_order = 50
    value_alphabet = TOKEN_ALPHABET
    kind = "zendesk_oauth_token"
    provider_kind = "zendesk"
    noun = "OAuth token"

    def check(self, token: Token, inv: Inventory, path: str) -> list[Diagnostic]:
        source = token.source
        assert isinstance(source, ZendeskOAuthToken)
        return allowed_scope_findings(source, source.scopes, path, inv.policy)

    def strategy(self, source: Source) -> Strategy:
        return "overlap"

    def needs(self, token: Token, lists: Lists) -> list[ListKey]:
        p = str(token.source.provider)
        return [ListKey(p, "oauth_clients"), ListKey(p, "oauth_tokens"), ListKey(p, "user")]

    def observe(self, token: Token, lists: Lists) -> SourceObservation:
        source = token.source
        assert isinstance(source, ZendeskOAuthToken)
        p = str(source.provider)
        client, error = client_row(p, source.client, lists)
        if client is None:
            return SourceObservation(token=token.name, identity=source.identity, error=error)
        data, error = rows(lists, ListKey(p, "oauth_tokens"))
        if error:
            return SourceObservation(token=token.name, identity=source.identity, error=error)
        user, error = rows(lists, ListKey(p, "user"))
        if error or user is None:
            return SourceObservation(token=token.name, identity=source.identity,
                                     error=error or "the credential's user is not known")
        wanted, own = tuple(sorted(source.scopes)), str(user["id"])  # type: ignore[call-overload]
        matches = [
            live_zendesk_token(r, source.client, f"{p}: OAuth client {source.client}")
            for r in data or ()
            if str(r.get("client_id")) == str(client["id"]) and tuple(sorted(r.get("scopes") or ())) == wanted
            and str(r.get("user_id")) == own
        ]
        current, others = pick(matches)
        return SourceObservation(token=token.name, identity=source.identity, current=current, others=others,
                                 details={"client_id": str(client["id"])})

    def identify(self, api: Any, source: Source, value: Secret, lists: Lists) -> Identity | None:
        return api.identify_oauth_token(value)

    # apply ------------------------------------------------------------------------------------

    def mint(self, api: Any, source: Source, *, expires_at: date | None) -> Minted:
        """`POST /api/v2/oauth/tokens {"token": {"client_id": <id>, "scopes": [...]}}` (201)."""
        assert isinstance(source, ZendeskOAuthToken)
        client_id = api.oauth_client_id(source.client)
        body = api.post("/api/v2/oauth/tokens.json", {"token": {"client_id": int(client_id), "scopes": list(source.scopes)}})
        row = dict(body["token"])
        value = Secret(row.pop("full_token", None) or row.pop("token"))
        row.pop("token", None)
        return Minted(live=live_zendesk_token(row, source.client, f"{source.provider}: OAuth client {source.client}"),
                      value=value)

    def revoke(self, api: Any, source: Source, live: LiveToken) -> None:
        api.delete(f"/api/v2/oauth/tokens/{live.id}.json")

    def verify_value(self, api: Any, source: Source, live: LiveToken, value: Secret) -> bool | None:
        """`GET /api/v2/oauth/tokens/current` authenticated with the value: it must be `live`."""
        found = api.identify_oauth_token(value)
        return None if found is None else found.token_id == live.id

KIND = OAuthTokenKind()
