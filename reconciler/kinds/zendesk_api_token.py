"""Source kind `zendesk_api_token`: observed only. Zendesk API tokens can no longer be created
(since 2026-10-27), stop working on 2027-04-30, and are deactivated after 30 days unused
(since 2026-07-28). The plan warns with the days left and proposes the OAuth replacement.

Observe: `GET /api/v2/api_tokens`, one per instance (unpaginated); the token is the one whose
description matches.
"""

from __future__ import annotations

from datetime import date

from reconciler.inventory.model import Source, Token, ZendeskApiToken
from reconciler.kinds import ListKey, Lists, SourceKind, Strategy
from reconciler.kinds._gitlab import pick, rows
from reconciler.kinds._zendesk import live_zendesk_token
from reconciler.observed import LiveToken, SourceObservation

CUTOFF = date(2027, 4, 30)  # every remaining API token stops working
INACTIVITY_DAYS = 30  # unused this long: deactivated


class ApiTokenKind(SourceKind):
    kind = "zendesk_api_token"
    provider_kind = "zendesk"
    noun = "API token"

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
