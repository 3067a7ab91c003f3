"""Source kind `zendesk_api_token`: observed only. Zendesk API tokens can no longer be created
(since 2026-10-27), stop working on 2027-04-30, and are deactivated after 30 days unused
(since 2026-07-28). The plan warns with the days left and proposes the OAuth replacement.

Observe: `GET /api/v2/api_tokens`, one per instance (unpaginated); the token is the one whose
description matches.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, asdict, dataclass, fields, is_dataclass
from datetime import date, datetime
from typing import Any, ClassVar

import yaml

from reconciler.inventory.model import Consumer, Diagnostic, Inventory, Source, Token, finding
from reconciler.kinds import LastUse, ListKey, Lists, Revocable, SourceKind, Strategy, UseRecorded
from reconciler.kinds._discovery import ScannedSource, ScanScope, ScopeToken, Sunset, SunsetSource
from reconciler.kinds._gitlab import pick, rows
from reconciler.kinds._zendesk import (
    PROVIDER_PROPERTY,
    TOKEN_ALPHABET,
    ZENDESK_API_TOKEN_SUNSET,
    live_zendesk_token,
)
from reconciler.observed import LiveToken, SourceObservation
from reconciler.plan_model import Finding, Reason, TokenAction, declared_at


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
        "provider": PROVIDER_PROPERTY,
        "description": {
            "type": "string",
            "description": "The token's description in Admin Center, which identifies it.",
            "minLength": 1,
        },
    },
    "additionalProperties": False,
    "required": ["kind", "provider", "description"],
}


class ApiTokenKind(SourceKind, Revocable, UseRecorded, ScannedSource, SunsetSource):
    """Revocable by deactivation, which is what retires it once an OAuth credential that
    `replaces` it has reached every consumer (or `state: absent`)."""

    model = ZendeskApiToken
    schema = SCHEMA
    schema_order = 70
    value_alphabet = TOKEN_ALPHABET
    kind = "zendesk_api_token"
    provider_kind = "zendesk"
    noun = "API token"
    revoke_verb = "deactivated"

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

    def last_use(self, live: LiveToken) -> LastUse:
        """The list's `last_used` (the field cartography's ListApiTokens model reads; the API
        reference shows no such field for API tokens). [GUESS] every use is recorded: Zendesk
        documents no update interval, and its 30-day inactivity rule reads the same time."""
        return LastUse(live.last_used_at)

    def revoke(self, api: Any, source: Source, live: LiveToken) -> None:
        """`PUT /api/v2/api_tokens/{id} {"api_token": {"active": false}}`. [GUESS] Zendesk documents
        deactivating only in Admin Center ("Deactivating and reactivating an API token",
        support.zendesk.com/hc/en-us/articles/226022787); the list is `GET /api/v2/api_tokens`
        (ListApiTokens in the OAS, as cartography-cncf/cartography reads it), and the body follows
        the Support API's `{"<record>": {...}}` convention. Deactivated, not deleted: a person can
        still reactivate it until 2027-04-30, and Zendesk deletes it 60 days later."""
        api.put(f"/api/v2/api_tokens/{live.id}.json", {"api_token": {"active": False}})

    # planning ---------------------------------------------------------------------------------

    def findings(self, token: Token, live: LiveToken | None, now: datetime, *, action: TokenAction,
                 strategy: Strategy, reasons: tuple[Reason, ...]) -> list[Finding]:
        """The cutoff and inactivity warnings, with an OAuth replacement to paste; an error when
        the token is gone (it cannot be created again)."""
        src = token.source
        assert isinstance(src, ZendeskApiToken)
        at = declared_at(src)
        state = "in use" if live is not None and live.usable else "not active"
        out = [Finding(severity="warning", code="api_token_sunset", at=at,
                       detail=oauth_replacement(str(src.provider), src.description, token),
                       message=f"Zendesk API token {src.description!r} ({state}) stops working on {CUTOFF} "
                               f"({(CUTOFF - now.date()).days} days left); API tokens can no longer be created: "
                               "replace it with an OAuth token")]
        if live is not None and live.usable and live.last_used_at is not None:
            out += _inactivity(src, (now - live.last_used_at).days)
        if any(r.code in ("missing", "revoked", "inactive") for r in reasons):
            out.append(Finding(severity="error", code="api_token_gone", at=at,
                               message=f"Zendesk API token {src.description!r} is {reasons[0].code}: API tokens can "
                                       "no longer be created; replace it with an OAuth token (see the proposal)"))
        return out

    # scope scans and discovery -------------------------------------------------------------

    value_format = None  # an API token cannot be told without using it
    sunset = Sunset(cutoff=CUTOFF, inactivity_days=INACTIVITY_DAYS,
                    why_kept="Zendesk API tokens can no longer be created", replaced_by="an OAuth token",
                    replacement=lambda provider, description: oauth_replacement(provider, description),  # below
                    proposal_code="api_token_sunset")

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


def _inactivity(src: ZendeskApiToken, idle: int) -> list[Finding]:
    if idle >= INACTIVITY_DAYS:
        message = (f"Zendesk API token {src.description!r} last used {idle} days ago: Zendesk deactivates tokens "
                   f"unused for {INACTIVITY_DAYS} days")
    elif idle >= INACTIVITY_DAYS - 7:
        message = (f"Zendesk API token {src.description!r} unused for {idle} days: deactivated in "
                   f"{INACTIVITY_DAYS - idle} days unless used")
    else:
        return []
    return [Finding(severity="warning", code="api_token_inactive", at=declared_at(src), message=message)]


def _consumer_yaml(c: Consumer) -> dict[str, Any]:
    """A consumer as inventory YAML: its kind and every field that differs from its default."""
    out: dict[str, Any] = {"kind": c.kind}
    for f in fields(c):
        if f.name in ("pos", "key_pos"):
            continue
        value = getattr(c, f.name)
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)
        if value == default or value in (None, {}, ()):
            continue
        if is_dataclass(value) and not isinstance(value, type):
            value = {k: v for k, v in asdict(value).items() if v is not None}
        out[f.name] = value
    return out


def oauth_replacement(provider: str, description: str, token: Token | None = None) -> str:
    """Inventory YAML of an OAuth token that replaces the API token `description`: for an
    inventory `token`, under its name with its owner and consumers carried over; for a live token
    only, named after the description, its consumers to be filled in."""
    name = token.name if token is not None else (
        re.sub(r"[^A-Za-z0-9_.-]+", "-", description.lower()).strip("-") or "api-token")
    entry: dict[str, Any] = {
        "description": f"Replaces the Zendesk API token {description!r} (API tokens stop working on {CUTOFF})",
    }
    if token is not None and token.owner:
        entry["owner"] = token.owner
    entry["source"] = {"kind": "zendesk_oauth_token", "provider": provider, "client": "CLIENT-IDENTIFIER",
                       "scopes": ["read", "write"]}
    if token is not None:
        entry["source"]["replaces"] = token.name
    entry["consumers"] = [_consumer_yaml(c) for c in token.consumers] if token is not None else []
    text = (yaml.safe_dump({"tokens": {f"{name}-oauth": entry}}, sort_keys=False, default_flow_style=False)
            + "# CLIENT-IDENTIFIER: an OAuth client of this instance (Admin Center > Apps and integrations > APIs)\n")
    if token is None:
        text += "# consumers: where the API token is used; `reconcile discover` finds the readable places\n"
    else:
        text += (f"# consumers: moved here from {token.name} (delete them there), each with the template the OAuth "
                 "token needs (e.g. `Bearer ${token}`); apply delivers it, verifies it, then deactivates the API token\n")
    return text


KIND = ApiTokenKind()
