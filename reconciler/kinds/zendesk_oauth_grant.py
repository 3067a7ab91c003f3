"""Source kind `zendesk_oauth_grant`: a refreshable Zendesk OAuth grant. reconcile holds the
grant's refresh token (sealed in the state, never in a consumer, never printed), refreshes before
the access token expires (`rotation.rotate_before`), delivers each new access token to every
consumer and keeps each new refresh token.

Zendesk facts it relies on (https://developer.zendesk.com/api-reference/ticketing/oauth/grant_type_tokens/
and https://support.zendesk.com/hc/en-us/articles/9182123625370):
- `POST /oauth/tokens` (no /api/v2) with `grant_type=refresh_token`, `refresh_token`,
  `client_id` (the client's identifier) and, for a confidential client, `client_secret`; optional
  `expires_in` (300..172,800 s) and `refresh_token_expires_in` (604,800..7,776,000 s, default
  2,592,000). The answer is `access_token`, `token_type`, `scope`, `expires_in`, `refresh_token`,
  `refresh_token_expires_in`: no id, so the new token's record is read with `GET
  /api/v2/oauth/tokens/current` authenticated with it.
- A refresh "returns a new access token and refresh token while invalidating the previous access
  and refresh tokens": the rotation is in place, and a refresh token is good for one refresh.
- An unusable refresh token is `400 {"error": "invalid_grant"}`.
- `grant_type=client_credentials` (confidential clients, since 2025-03-04) answers an access token
  without a refresh token: the fallback when a grant is lost (`invalid_grant`: any other refusal
  says nothing of the refresh token, which is kept) and the inventory allows it.
- New clients get 30-minute access tokens and 30-day refresh tokens by default
  (https://support.zendesk.com/hc/en-us/articles/10212201463962); local clients must adopt the
  refresh flow by 2027-04-01.

Observe: `GET /api/v2/oauth/clients` (the client's id) and `GET /api/v2/oauth/tokens?all=true`,
shared with the other Zendesk OAuth kinds. The grant's access token is the newest token of the
client with exactly the declared scopes that carries a refresh token (any such token when the
`client_credentials` fallback is declared): each refresh makes a new token and kills the old one,
so the newest is the grant's. Other tokens of the client are never this kind's to revoke.

The first refresh token comes from a person who authorised the client (the authorization-code
flow in a browser): `refresh_token_env` names the environment variable (a masked, protected CI/CD
variable) it is read from. A value there that reconcile has not taken in before replaces the
grant it holds; one it took in (and so spent) is never sent again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from reconciler.inventory.checks import allowed_scope_findings
from reconciler.inventory.model import Diagnostic, Inventory, Policy, Source, Token, finding
from reconciler.kinds import (
    Grant,
    GrantRefused,
    Identifying,
    Identity,
    ListKey,
    Lists,
    Refreshable,
    SourceKind,
    Strategy,
)
from reconciler.kinds._gitlab import rows
from reconciler.kinds._zendesk import (
    PROVIDER_PROPERTY,
    TOKEN_ALPHABET,
    approval_findings,
    approval_words,
    live_zendesk_token,
    oauth_error_code,
)
from reconciler.kinds.zendesk_oauth_token import OAUTH_TOKEN_FAMILY, client_row
from reconciler.observed import LiveToken, SourceObservation
from reconciler.plan_model import Finding, Reason, TokenAction, declared_at, time_left
from reconciler.secret import Secret

if TYPE_CHECKING:
    from reconciler.clients import ZendeskApi

# `expires_in` bounds of POST /oauth/tokens (developer.zendesk.com grant_type_tokens: "more than
# 300 seconds ... and less than 172,800 seconds"): a declared `lifetime` must fall inside.
ACCESS_LIFETIME = (timedelta(seconds=300), timedelta(seconds=172_800))
# The plan warns this long before the refresh token itself expires: after that only a person can
# authorise the client again.
REFRESH_WARNING = timedelta(days=7)
NEVER = datetime.min.replace(tzinfo=UTC)  # sorts a token the list shows without a creation time first


@dataclass(frozen=True, kw_only=True)
class ZendeskOAuthGrant(Source):
    client: str  # the OAuth client's identifier
    scopes: tuple[str, ...]
    refresh_token_env: str  # where a person supplies a refresh token from an authorization
    client_secret_env: str | None = None  # a confidential client's secret, sent with every grant
    fallback: Literal["client_credentials"] | None = None
    kind: ClassVar[str] = "zendesk_oauth_grant"

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.provider}:{self.client}:{' '.join(sorted(self.scopes))}"


# Its definition in the inventory schema: $defs/source_zendesk_oauth_grant.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A refreshable Zendesk OAuth grant: reconcile keeps its refresh token (sealed in the state) "
                   "and refreshes the access token before it expires, delivering each new one.",
    "properties": {
        "kind": {"const": "zendesk_oauth_grant", "description": "`zendesk_oauth_grant`."},
        "provider": PROVIDER_PROPERTY,
        "client": {"type": "string", "minLength": 1,
                   "description": "Identifier of the OAuth client the grant was given to."},
        "scopes": {
            "type": "array", "minItems": 1, "uniqueItems": True,
            "description": "The grant's scopes, as authorised: `read`, `write`, `impersonate`, or `RESOURCE:read|write`.",
            "items": {"type": "string", "pattern": "^(([a-z_]+:)?(read|write)|impersonate)$"},
        },
        "refresh_token_env": {
            "$ref": "#/$defs/env_name",
            "description": "Environment variable holding a refresh token from an authorization of the client: "
                           "taken in once (a value reconcile has not seen replaces the grant it holds).",
        },
        "client_secret_env": {
            "$ref": "#/$defs/env_name",
            "description": "Environment variable holding the client's secret (a confidential client sends it with "
                           "every grant).",
        },
        "fallback": {
            "enum": ["client_credentials"],
            "description": "When Zendesk says the refresh token is spent (`invalid_grant`), get an access token "
                           "with the client_credentials grant instead (confidential clients; needs "
                           "`client_secret_env`).",
        },
    },
    "additionalProperties": False,
    "required": ["kind", "provider", "client", "scopes", "refresh_token_env"],
}


class OAuthGrantKind(SourceKind, Refreshable, Identifying):
    model = ZendeskOAuthGrant
    schema = SCHEMA
    schema_order = 52
    value_alphabet = TOKEN_ALPHABET
    kind = "zendesk_oauth_grant"
    provider_kind = "zendesk"
    noun = "OAuth grant"

    def check(self, token: Token, inv: Inventory, path: str) -> list[Diagnostic]:
        source = token.source
        assert isinstance(source, ZendeskOAuthGrant)
        out = (allowed_scope_findings(source, source.scopes, path, inv.policy)
               + approval_findings(source, source.client, source.scopes, inv.policy, path))
        if source.fallback and not source.client_secret_env:
            out.append(finding(source, "fallback", path, "the client_credentials fallback needs client_secret_env "
                                                         "(only a confidential client can use it)"))
        lifetime = token.rotation.lifetime
        if lifetime is not None and not ACCESS_LIFETIME[0] <= lifetime <= ACCESS_LIFETIME[1]:
            out.append(finding(token.rotation, "lifetime", path.removesuffix(".source") + ".rotation",
                               "a Zendesk OAuth access token lives between 5 minutes and 48 hours (expires_in "
                               "300..172800 s): set lifetime within 5m..48h"))
        return out

    def scope_approval(self, source: Source, policy: Policy) -> str | None:
        assert isinstance(source, ZendeskOAuthGrant)
        return approval_words(source, source.client, source.scopes, policy)

    def strategy(self, source: Source) -> Strategy:
        return "in_place"

    def needs(self, token: Token, lists: Lists) -> list[ListKey]:
        p = str(token.source.provider)
        return [ListKey(p, "oauth_clients"), ListKey(p, "oauth_tokens")]

    def observe(self, token: Token, lists: Lists) -> SourceObservation:
        source = token.source
        assert isinstance(source, ZendeskOAuthGrant)
        p = str(source.provider)
        client, error = client_row(p, source.client, lists)
        data, list_error = rows(lists, ListKey(p, "oauth_tokens"))
        if client is None or list_error:
            return SourceObservation(token=token.name, identity=source.identity, error=error or list_error)
        wanted = tuple(sorted(source.scopes))
        mine = [live_zendesk_token(r, source.client, f"{p}: OAuth client {source.client}") for r in data or ()
                if str(r.get("client_id")) == str(client["id"]) and tuple(sorted(r.get("scopes") or ())) == wanted
                and (r.get("refreshable") or source.fallback)]
        newest = max(mine, key=lambda t: (t.created_at or NEVER, int(t.id) if t.id.isdigit() else 0),
                     default=None)
        return SourceObservation(token=token.name, identity=source.identity, current=newest,
                                 details={"client_id": str(client["id"])})

    def findings(self, token: Token, live: LiveToken | None, now: datetime, *, action: TokenAction,
                 strategy: Strategy, reasons: tuple[Reason, ...]) -> list[Finding]:
        """A warning while the refresh token itself nears its expiry (no refresh moves it past
        that for certain: then only a person can authorise the client again)."""
        source = token.source
        if live is None or live.renewal_expires_at is None:
            return []
        left = time_left(live.renewal_expires_at, now)
        if left > REFRESH_WARNING:
            return []
        from reconciler.inventory.durations import expires_words

        return [Finding(severity="warning", code="refresh_token_expiring", at=declared_at(source),
                        message=f"the refresh token of {token.name} {expires_words(left)}: "
                                f"{self.how_to_reauthorise(source)}")]

    def job_env(self, source: Source) -> list[tuple[str, str, bool]]:
        assert isinstance(source, ZendeskOAuthGrant)
        found = [(source.refresh_token_env, f"a refresh token from an authorization of OAuth client {source.client}: "
                                            "taken in by the next apply (needed once; a new one replaces the grant)",
                  True)]
        if source.client_secret_env:
            found.append((source.client_secret_env, f"the secret of OAuth client {source.client}, sent with each "
                                                     "refresh", False))
        return found

    def starts_without_live(self, source: Source) -> bool:
        assert isinstance(source, ZendeskOAuthGrant)
        return source.fallback is not None

    def manual_create(self, source: Source) -> str:
        return f"no live access token of this grant: {self.how_to_reauthorise(source)}"

    def how_to_reauthorise(self, source: Source) -> str:
        assert isinstance(source, ZendeskOAuthGrant)
        return (f"authorise OAuth client {source.client!r} again (the authorization-code flow, scopes "
                f"{' '.join(source.scopes)}), put the refresh token it answers in ${source.refresh_token_env} "
                "(a masked, protected CI/CD variable) and run apply")

    # the grants ------------------------------------------------------------------------------

    def initial_refresh_token(self, source: Source, env: Mapping[str, str]) -> Secret | None:
        assert isinstance(source, ZendeskOAuthGrant)
        text = env.get(source.refresh_token_env, "").strip()
        return Secret(text) if text else None

    def refresh(self, api: Any, source: Source, refresh_token: Secret, *, lifetime: timedelta | None,
                env: Mapping[str, str]) -> Grant:
        return self._grant(api, source, {"grant_type": "refresh_token", "refresh_token": refresh_token.reveal()},
                           lifetime, env)

    def client_credentials(self, api: Any, source: Source, *, lifetime: timedelta | None,
                           env: Mapping[str, str]) -> Grant | None:
        assert isinstance(source, ZendeskOAuthGrant)
        if source.fallback != "client_credentials":
            return None
        return self._grant(api, source, {"grant_type": "client_credentials", "scope": " ".join(source.scopes)},
                           lifetime, env)

    def _grant(self, api: Any, source: Source, params: dict[str, Any], lifetime: timedelta | None,
               env: Mapping[str, str]) -> Grant:
        assert isinstance(source, ZendeskOAuthGrant)
        zendesk: ZendeskApi = api
        params["client_id"] = source.client
        if source.client_secret_env:
            secret = env.get(source.client_secret_env, "")
            if not secret:
                raise GrantRefused(f"${source.client_secret_env} (the client secret) is not set")
            params["client_secret"] = secret
        if lifetime is not None:
            params["expires_in"] = int(lifetime.total_seconds())
        answer = zendesk.oauth_grant(params)
        if answer.status_code in (400, 401):
            code = oauth_error_code(answer)
            raise GrantRefused(f"Zendesk refused the {params['grant_type']} grant ({answer.status_code} "
                               f"{code or 'without an OAuth error code'})", spent=code == "invalid_grant")
        if answer.status_code >= 500:
            answer.raise_for_status()  # an unclear outcome, as for any rotate call: the grant may be spent
        if answer.status_code >= 300:
            raise GrantRefused(f"Zendesk answered {answer.status_code} to the {params['grant_type']} grant")
        body = answer.json()
        refresh = body.get("refresh_token")
        return Grant(access_token=Secret(str(body["access_token"])),
                     refresh_token=Secret(refresh) if isinstance(refresh, str) and refresh else None)

    def live_of(self, api: Any, source: Source, value: Secret) -> LiveToken:
        assert isinstance(source, ZendeskOAuthGrant)
        row = api.oauth_token_of(value)
        row["refreshable"] = bool(row.pop("refresh_token", None))
        row.pop("token", None)
        return live_zendesk_token(row, source.client, f"{source.provider}: OAuth client {source.client}")

    # identifying held values -----------------------------------------------------------------

    def identify(self, api: Any, source: Source, value: Secret, lists: Lists) -> Identity | None:
        zendesk: ZendeskApi = api
        return zendesk.identify_oauth_token(value)

    def verify_value(self, api: Any, source: Source, live: LiveToken, value: Secret) -> bool | None:
        found = api.identify_oauth_token(value)
        return None if found is None else found.token_id == live.id

    # reports ---------------------------------------------------------------------------------

    def id_family(self) -> str:
        return OAUTH_TOKEN_FAMILY

    def display_name(self, source: Source) -> str | None:
        assert isinstance(source, ZendeskOAuthGrant)
        return source.client


KIND = OAuthGrantKind()
