"""Source kind `zendesk_api_token`: observed only. Zendesk API tokens can no longer be created
(since 2026-10-27), stop working on 2027-04-30, and are deactivated after 30 days unused
(since 2026-07-28). The plan warns with the days left and proposes the OAuth replacement.

Observe: `GET /api/v2/api_tokens`, one per instance (unpaginated); the token is the one whose
description matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from reconciler.inventory.model import Diagnostic, Inventory, Source, Token, finding
from reconciler.kinds import ListKey, Lists, SourceKind, Strategy
from reconciler.kinds._gitlab import pick, rows
from reconciler.kinds._zendesk import TOKEN_ALPHABET, ZENDESK_API_TOKEN_SUNSET, live_zendesk_token
from reconciler.observed import LiveToken, SourceObservation


@dataclass(frozen=True, kw_only=True)
class ZendeskApiToken(Source):
    description: str  # identifies the token in GET /api/v2/api_tokens
    kind: ClassVar[str] = "zendesk_api_token"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.description}"


CUTOFF = date(2027, 4, 30)  # every remaining API token stops working
INACTIVITY_DAYS = 30  # unused this long: deactivated


# Its definition in the inventory schema: $defs/source_zendesk_api_token.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A Zendesk API token: observed only. Zendesk disabled creating them on 2026-10-27 and cuts every one off on 2027-04-30; migrate to `zendesk_oauth_token`.",
    "properties": {
        "kind": {"const": "zendesk_api_token", "description": "`zendesk_api_token`."},
        "provider": {
            "type": "string",
            "description": "Name of the Zendesk provider (a key under `providers`).",
            "minLength": 1,
        },
        "description": {
            "type": "string",
            "description": "The token's description in Admin Center, which identifies it.",
            "minLength": 1,
        },
    },
    "additionalProperties": False,
    "required": ["kind", "provider", "description"],
}


class ApiTokenKind(SourceKind):
    model = ZendeskApiToken
    schema = SCHEMA
    schema_order = 70
    value_alphabet = TOKEN_ALPHABET
    kind = "zendesk_api_token"
    provider_kind = "zendesk"
    noun = "API token"

    def check(self, token: Token, inv: Inventory, path: str) -> list[Diagnostic]:
        return [finding(token.source, "kind", path,
                        f"{ZENDESK_API_TOKEN_SUNSET}: reconcile can only observe it; replace it with a zendesk_oauth_token",
                        warning=True)]

    def strategy(self, source: Source) -> Strategy:
        return "observe_only"

    def needs(self, token: Token, lists: Lists) -> list[ListKey]:
        return [ListKey(str(token.source.provider), "api_tokens")]

    def observe(self, token: Token, lists: Lists) -> SourceObservation:
        source = token.source
        assert isinstance(source, ZendeskApiToken)
        data, error = rows(lists, ListKey(str(source.provider), "api_tokens"))
        if error:
            return SourceObservation(token=token.name, identity=source.identity, error=error)
        where = f"{source.provider}: API tokens"
        matches = [live_zendesk_token(r, source.description, where) for r in data or ()
                   if r.get("description") == source.description]
        current, others = pick(matches)
        return SourceObservation(token=token.name, identity=source.identity, current=current, others=others)

    def unmanaged(self, tokens: list[Token], lists: Lists) -> list[LiveToken]:
        named = {(str(t.source.provider), t.source.description) for t in tokens if isinstance(t.source, ZendeskApiToken)}
        found = []
        for key, data in lists.items():
            if key.resource == "api_tokens" and isinstance(data, list):
                for row in data:
                    live = live_zendesk_token(row, str(row.get("description") or ""), f"{key.provider}: API tokens")
                    if live.usable and (key.provider, live.name) not in named:
                        found.append(live)
        return found


KIND = ApiTokenKind()
