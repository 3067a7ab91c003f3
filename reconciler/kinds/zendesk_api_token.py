"""Source kind `zendesk_api_token`: observed only. Zendesk API tokens can no longer be created
(since 2026-10-27), stop working on 2027-04-30, and are deactivated after 30 days unused
(since 2026-07-28). The plan warns with the days left and proposes the OAuth replacement.

Observe: `GET /api/v2/api_tokens`, one per instance (unpaginated); the token is the one whose
description matches.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import yaml

from reconciler.inventory.model import Source, Token, ZendeskApiToken
from reconciler.kinds import ListKey, Lists, SourceKind, Strategy
from reconciler.kinds._discovery import ScanScope, ScopeToken, Sunset
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

    # scope scans and discovery -------------------------------------------------------------

    value_format = None  # an API token cannot be told without using it
    sunset = Sunset(cutoff=CUTOFF, inactivity_days=INACTIVITY_DAYS,
                    why_kept="Zendesk API tokens can no longer be created", replaced_by="an OAuth token",
                    replacement=lambda provider, description: oauth_replacement(provider, description))  # defined below

    def id_family(self) -> str:
        return "api_token"

    def display_name(self, source: Source) -> str | None:
        assert isinstance(source, ZendeskApiToken)
        return source.description

    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]:
        return [ListKey(scope.provider, "api_tokens")]

    def scan_tokens(self, key: ListKey, rows: list[dict[str, Any]], scope: ScanScope,
                    lists: Lists) -> list[ScopeToken]:
        if key.resource != "api_tokens":
            return []
        return [ScopeToken(provider=key.provider, kind=self.kind, scope="", family="api_token",
                           live=live_zendesk_token(row, str(row.get("description") or ""), f"{key.provider}: API tokens"),
                           declaration={"kind": self.kind, "provider": key.provider})
                for row in rows]


def oauth_replacement(provider: str, description: str) -> str:
    """Inventory YAML of an OAuth token that replaces the API token `description` (its consumers
    to be filled in: the plan's proposal carries over those of an inventory token)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", description.lower()).strip("-") or "api-token"
    entry = {"tokens": {f"{slug}-oauth": {
        "description": f"Replaces the Zendesk API token {description!r} (API tokens stop working on {CUTOFF})",
        "source": {"kind": "zendesk_oauth_token", "provider": provider, "client": "CLIENT-IDENTIFIER",
                   "scopes": ["read", "write"]},
        "consumers": [],
    }}}
    return (yaml.safe_dump(entry, sort_keys=False, default_flow_style=False)
            + "# CLIENT-IDENTIFIER: an OAuth client of this instance (Admin Center > Apps and integrations > APIs)\n"
            + "# consumers: where the API token is used; `reconcile discover` finds the readable places\n")


KIND = ApiTokenKind()
