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

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from reconciler.inventory.checks import allowed_scope_findings
from reconciler.inventory.model import Diagnostic, Inventory, Policy, Source, Token
from reconciler.kinds import (
    Identifying,
    Identity,
    LastUse,
    ListKey,
    Lists,
    Mintable,
    Minted,
    Revocable,
    SourceKind,
    Strategy,
    UseRecorded,
)
from reconciler.kinds._discovery import Deadline, DeadlineSource, ScannedSource, ScanScope, ScopeToken, listed
from reconciler.kinds._gitlab import fetched_row, pick, rows
from reconciler.kinds._zendesk import (
    PROVIDER_PROPERTY,
    REPLACES_PROPERTY,
    TOKEN_ALPHABET,
    approval_findings,
    approval_words,
    live_zendesk_token,
    replaces_findings,
)
from reconciler.observed import LiveToken, SourceObservation
from reconciler.secret import Secret

if TYPE_CHECKING:
    from reconciler.clients import ZendeskApi


@dataclass(frozen=True, kw_only=True)
class ZendeskOAuthToken(Source):
    client: str  # the OAuth client's identifier (unique per account)
    scopes: tuple[str, ...]
    replaces: str | None = None  # an inventory token of a Zendesk API token
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
        "provider": PROVIDER_PROPERTY,
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
        "replaces": REPLACES_PROPERTY,
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
            return row, None
    return None, f"no OAuth client with identifier {identifier!r}"


class OAuthTokenFormat:
    """A Zendesk OAuth access token is 64 hex characters: the whole value, or after `Bearer `."""

    provider_kind = "zendesk"

    def token_in(self, text: str) -> str | None:
        bare = text.removeprefix("Bearer ").strip()
        return bare if _HEX.fullmatch(bare) else None

    def identify(self, value: Secret, tokens: Sequence[ScopeToken], issuer: Mapping[str, Any]) -> ScopeToken | str:
        """`GET /api/v2/oauth/tokens/current` with the value, at the one Zendesk instance `issuer`
        names, never at another."""
        if not issuer:
            return ("holds a hex value, sent to no Zendesk instance to identify it: which of the discovery scopes' "
                    "instances issued it cannot be told without sending it to the others")
        ((name, api),) = issuer.items()  # one instance, never a loop over several
        ident = api.identify_oauth_token(value)
        if ident is not None and ident.token_id is not None:  # None: a live token without the read scope (403)
            for token in tokens:
                if token.provider == name and token.family == OAUTH_TOKEN_FAMILY and token.live.id == ident.token_id:
                    return token
            return f"holds Zendesk OAuth token #{ident.token_id} of {name}"
        # GET /oauth/tokens/current answers 403 to a token without the `read` scope, so such a token
        # looks refused too; API tokens and client secrets cannot be tried without using them.
        return (f"holds a hex value {name} does not show as an OAuth token (an OAuth token without "
                "the read scope, an API token or an OAuth client secret cannot be identified without using it)")


OAUTH_TOKEN_FAMILY = "oauth_token"
# Existing local OAuth clients must adopt expiring tokens with the refresh flow by this date
# (https://support.zendesk.com/hc/en-us/articles/10212201463962; extended from 2026-04-30, first
# announced in https://support.zendesk.com/hc/en-us/articles/9182123625370).
LOCAL_CLIENTS_EXPIRE_FROM = date(2027, 4, 1)
_HEX = re.compile(r"[0-9a-fA-F]{32,64}")  # Zendesk OAuth access tokens are 64 hex characters
ZENDESK_OAUTH = OAuthTokenFormat()


class OAuthTokenKind(SourceKind, Mintable, Revocable, Identifying, UseRecorded, ScannedSource, DeadlineSource):
    """Scopes never drift: the token is matched by its scopes, so other scopes are another token."""
    model = ZendeskOAuthToken
    schema = SCHEMA
    schema_order = 50
    value_alphabet = TOKEN_ALPHABET
    kind = "zendesk_oauth_token"
    provider_kind = "zendesk"
    noun = "OAuth token"
    can_be_credential = True

    def check(self, token: Token, inv: Inventory, path: str) -> list[Diagnostic]:
        source = token.source
        assert isinstance(source, ZendeskOAuthToken)
        return (allowed_scope_findings(source, source.scopes, path, inv.policy)
                + replaces_findings(source, source.replaces, inv, path)
                + approval_findings(source, source.client, source.scopes, inv.policy, path))

    def scope_approval(self, source: Source, policy: Policy) -> str | None:
        assert isinstance(source, ZendeskOAuthToken)
        return approval_words(source, source.client, source.scopes, policy)

    def replaces(self, source: Source) -> str | None:
        assert isinstance(source, ZendeskOAuthToken)
        return source.replaces

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
        user, error = fetched_row(lists, ListKey(p, "user"))
        if error or user is None:
            return SourceObservation(token=token.name, identity=source.identity,
                                     error=error or "the credential's user is not known")
        wanted, own = tuple(sorted(source.scopes)), str(user["id"])
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
        zendesk: ZendeskApi = api
        return zendesk.identify_oauth_token(value)

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

    def last_use(self, live: LiveToken) -> LastUse:
        """`used_at`: "The latest time this token was used for authentication"
        (https://developer.zendesk.com/api-reference/ticketing/oauth/oauth_tokens/). Zendesk
        documents no update interval. [GUESS] every use is recorded."""
        return LastUse(live.last_used_at)

    def use_keys(self, token: Token) -> list[ListKey] | None:
        """Only the tokens list carries `used_at`; the client's id and the credential's user,
        the other two lists, do not change within a run."""
        return [ListKey(str(token.source.provider), "oauth_tokens")]

    def revoke(self, api: Any, source: Source, live: LiveToken) -> None:
        api.delete(f"/api/v2/oauth/tokens/{live.id}.json")

    def verify_value(self, api: Any, source: Source, live: LiveToken, value: Secret) -> bool | None:
        """`GET /api/v2/oauth/tokens/current` authenticated with the value: it must be `live`."""
        found = api.identify_oauth_token(value)
        return None if found is None else found.token_id == live.id

    # scope scans and discovery -------------------------------------------------------------

    value_format = ZENDESK_OAUTH

    def id_family(self) -> str:
        return OAUTH_TOKEN_FAMILY

    def display_name(self, source: Source) -> str | None:
        assert isinstance(source, ZendeskOAuthToken)
        return source.client

    def scan_keys(self, scope: ScanScope, lists: Lists) -> list[ListKey]:
        """The instance's OAuth tokens, and its clients to name them by."""
        return [ListKey(scope.provider, "oauth_clients"), ListKey(scope.provider, "oauth_tokens")]

    def scan_tokens(self, key: ListKey, rows: list[dict[str, Any]], scope: ScanScope,
                    lists: Lists) -> list[ScopeToken]:
        if key.resource != "oauth_tokens":
            return []
        clients = {str(c.get("id")): str(c.get("identifier")) for c in listed(lists, ListKey(key.provider, "oauth_clients")) or ()}
        found = []
        for row in rows:
            client = clients.get(str(row.get("client_id")), f"client #{row.get('client_id')}")
            found.append(ScopeToken(
                provider=key.provider, kind=self.kind, scope="", family=OAUTH_TOKEN_FAMILY, can_be_credential=self.can_be_credential,
                live=live_zendesk_token(row, client, f"{key.provider}: OAuth client {client}"),
                declaration={"kind": self.kind, "provider": key.provider, "client": client,
                             "scopes": sorted(row.get("scopes") or ())}))
        return found


    # the 2027-04-01 deadline ------------------------------------------------------------------

    def deadlines(self, provider: str, lists: Lists, now: datetime) -> list[Deadline]:
        """Each local client (not `global`) with live tokens that never expire, while
        2027-04-01 is ahead: from then on Zendesk enforces expiring tokens on every client."""
        clients, tokens = listed(lists, ListKey(provider, "oauth_clients")), listed(lists, ListKey(provider, "oauth_tokens"))
        if clients is None or tokens is None or now.astimezone(UTC).date() >= LOCAL_CLIENTS_EXPIRE_FROM:
            return []
        found = []
        for client in sorted(clients, key=lambda c: str(c.get("identifier"))):
            if client.get("global"):
                continue
            lasting = [t for t in tokens if str(t.get("client_id")) == str(client.get("id")) and not t.get("expires_at")]
            if lasting:
                found.append(Deadline(
                    provider=provider, thing="OAuth client", name=str(client.get("identifier")), key=f"{provider}:oauth_client:{client.get('id')}",
                    cutoff=LOCAL_CLIENTS_EXPIRE_FROM, count=len(lasting),
                    what=f"{len(lasting)} token(s) that never expire; expiring tokens required from",
                    todo="from 2027-04-01 Zendesk gives this local client's tokens an expiry (access 30 minutes, "
                         "refresh 30 days by default): declare its grant as `zendesk_oauth_grant` (reconcile refreshes "
                         "it) or renew its tokens with `rotation.lifetime` before then"))
        return found


KIND = OAuthTokenKind()
