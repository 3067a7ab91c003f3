"""Source kind `zendesk_oauth_client_secret`: an OAuth client's secret, renewed in place with
`PUT /api/v2/oauth/clients/:id/generate_secret` (the old secret dies at once).

Observe: `GET /api/v2/oauth/clients`, one per instance; the live "token" is the client itself
(its `updated_at` stands in for the secret's age: Zendesk records no separate time, and
generate_secret moves it). The client's id survives a regeneration, so the ledger names a secret
by id AND that time (`observed.record_is_of`): a regenerated secret is a new instance. A secret
cannot be identified by an API call, so readable consumers are checked against the ledger only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from reconciler.inventory.model import Source, Token
from reconciler.kinds import ListKey, Lists, Minted, Renewable, SourceKind, Strategy
from reconciler.kinds._zendesk import PROVIDER_PROPERTY, TOKEN_ALPHABET, live_oauth_client
from reconciler.kinds.zendesk_oauth_token import client_row
from reconciler.observed import LiveToken, SourceObservation
from reconciler.secret import Secret


@dataclass(frozen=True, kw_only=True)
class ZendeskOAuthClientSecret(Source):
    client: str  # identifier
    kind: ClassVar[str] = "zendesk_oauth_client_secret"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.client}"


# Its definition in the inventory schema: $defs/source_zendesk_oauth_client_secret.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The secret of a Zendesk OAuth client, renewed in place with generate_secret.",
    "properties": {
        "kind": {"const": "zendesk_oauth_client_secret", "description": "`zendesk_oauth_client_secret`."},
        "provider": PROVIDER_PROPERTY,
        "client": {"type": "string", "description": "Identifier of the OAuth client.", "minLength": 1},
    },
    "additionalProperties": False,
    "required": ["kind", "provider", "client"],
}


class OAuthClientSecretKind(SourceKind, Renewable):
    """Not revocable: a secret goes only with its client, which the tool never deletes."""
    model = ZendeskOAuthClientSecret
    schema = SCHEMA
    schema_order = 60
    value_alphabet = TOKEN_ALPHABET
    kind = "zendesk_oauth_client_secret"
    provider_kind = "zendesk"
    noun = "OAuth client secret"

    def strategy(self, source: Source) -> Strategy:
        return "in_place"

    def needs(self, token: Token, lists: Lists) -> list[ListKey]:
        return [ListKey(str(token.source.provider), "oauth_clients")]

    def observe(self, token: Token, lists: Lists) -> SourceObservation:
        source = token.source
        assert isinstance(source, ZendeskOAuthClientSecret)
        client, error = client_row(str(source.provider), source.client, lists)
        if client is None:
            return SourceObservation(token=token.name, identity=source.identity, error=error)
        return SourceObservation(token=token.name, identity=source.identity,
                                 current=live_oauth_client(client, f"{source.provider}: OAuth client"))

    # apply ------------------------------------------------------------------------------------

    def renew(self, api: Any, source: Source, live: LiveToken, *, expires_at: date | None) -> Minted:
        """`PUT /api/v2/oauth/clients/:id/generate_secret` → `{"client": {..., "secret": NEW}}`."""
        body = api.put(f"/api/v2/oauth/clients/{live.id}/generate_secret.json", None)
        row = dict(body["client"])
        value = Secret(row.pop("secret"))
        return Minted(live=live_oauth_client(row, live.where), value=value)

    # scope scans and discovery -------------------------------------------------------------

    def id_family(self) -> str:
        return "oauth_client"

    def display_name(self, source: Source) -> str | None:
        assert isinstance(source, ZendeskOAuthClientSecret)
        return source.client


KIND = OAuthClientSecretKind()
