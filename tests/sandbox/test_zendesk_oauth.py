"""Zendesk's OAuth grant endpoint on the sandbox clock: authorization codes with PKCE, expiring
access tokens, refresh (new pair, old pair dead), client credentials, default lifetimes by client
kind and date, and the API-token lifecycle (deactivate, reactivate, delete). Driven through an
unmodified zenpy client and its authenticated session over real HTTP (zenpy has no API for
OAuth or API tokens); the grant endpoint takes no API credential, so it gets a bare request."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml
from zenpy.lib.exception import APIException

from reconciler_sandbox.core import Clock
from reconciler_sandbox.zendesk import serve_zendesk, session_for, zenpy_client

SUB = "gitlab"
ADMIN_TOKEN = "a1" * 32
OLD_SECRET = "OldClientSecret" + "o" * 49
NEW_SECRET = "NewClientSecret" + "n" * 49
GLOBAL_SECRET = "GlobalClientSecret" + "g" * 46
API_TOKEN = "MigratingApiToken0123456789abcdefghijklm"
SEEDED_REFRESH = "5eededRefresh" + "r" * 51
SEEDED_ACCESS = "5eededAccess" + "c" * 52
START = datetime(2026, 9, 1, tzinfo=UTC)
VERIFIER = "a-pkce-code-verifier-of-forty-three-characters"
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).decode().rstrip("=")
INVALID_TOKEN = {"error": "invalid_token",
                 "error_description": "The access token provided is expired, revoked, malformed or invalid for "
                                      "other reasons."}
INVALID_GRANT = {"error": "invalid_grant",
                 "error_description": "The provided authorization grant is invalid, expired, revoked, does not "
                                      "match the redirection URI used in the authorization request, or was issued "
                                      "to another client."}


def seed() -> dict:
    return {"instances": {SUB: {
        "users": [{"email": "admin@gitlab.example", "role": "admin"},
                  {"email": "agent@gitlab.example", "role": "agent"}],
        "oauth_clients": [
            {"identifier": "legacy", "name": "Legacy", "secret": OLD_SECRET, "created_at": "2025-01-10"},
            {"identifier": "fresh", "name": "Fresh", "secret": NEW_SECRET, "created_at": "2026-05-02"},
            {"identifier": "marketplace", "name": "Marketplace", "secret": GLOBAL_SECRET, "global": True,
             "created_at": "2026-03-01"},
            {"identifier": "spa", "name": "Single-page app", "kind": "public", "created_at": "2026-05-02",
             "redirect_uri": ["https://spa.example/cb"]},
        ],
        "oauth_tokens": [
            {"client": "legacy", "value": ADMIN_TOKEN},
            {"client": "fresh", "value": SEEDED_ACCESS, "user": "agent@gitlab.example", "scopes": ["read"],
             "created_at": "now-1h", "expires_at": "now-30m", "refresh_token": SEEDED_REFRESH,
             "refresh_token_expires_at": "now+2d"},
        ],
        "api_tokens": [{"description": "ticket sync", "value": API_TOKEN, "created_at": "now-100d",
                        "last_used": "now-1d"}],
    }}}


@pytest.fixture(scope="module")
def running():
    srv = serve_zendesk(None, Clock(START))
    yield srv
    srv.stop()


@pytest.fixture
def server(running):
    with running.service.lock:
        running.service.clock.set(START)
        running.service.load_state({"instances": {}})
        running.service.seed(seed())
    running.log.clear()
    return running


@pytest.fixture
def admin(server) -> requests.Session:
    return zenpy_client(server, SUB, oauth_token=ADMIN_TOKEN).users.session


def grant(server, **params) -> requests.Response:
    return requests.post(f"{server.url}/oauth/tokens", headers={"Host": f"{SUB}.zendesk.com"}, json=params, timeout=5)


def refresh(server, token: str, secret: str = NEW_SECRET, client: str = "fresh", **more) -> requests.Response:
    return grant(server, grant_type="refresh_token", refresh_token=token, client_id=client, client_secret=secret,
                 **more)


def code_pair(server, client: str = "fresh", secret: str | None = NEW_SECRET, **more) -> dict:
    code = server.service.authorization_code(SUB, client, scopes=["read", "webhooks:write"],
                                             redirect_uri="https://app.example/cb", code_challenge=CHALLENGE)
    answer = grant(server, grant_type="authorization_code", code=code, client_id=client, client_secret=secret,
                   redirect_uri="https://app.example/cb", code_verifier=VERIFIER, **more)
    assert answer.status_code == 201, answer.text
    return answer.json()


def webhooks_with(server, access_token: str):
    return list(zenpy_client(server, SUB, oauth_token=access_token).webhooks.list())


def refused_with(server, access_token: str) -> requests.Response:
    with pytest.raises(APIException) as raised:
        webhooks_with(server, access_token)
    return raised.value.response


# --- authorization code and the token list ------------------------------------------------------


def test_code_grant_gives_a_30_minute_access_token_and_a_30_day_refresh_token(server, admin):
    pair = code_pair(server)
    assert set(pair) == {"access_token", "token_type", "scope", "expires_in", "refresh_token",
                         "refresh_token_expires_in"}
    assert pair["token_type"] == "bearer" and pair["scope"] == "read webhooks:write"
    assert pair["expires_in"] == 1800 and pair["refresh_token_expires_in"] == 2_592_000
    assert webhooks_with(server, pair["access_token"]) == []
    listed = admin.get(f"{server.url}/api/v2/oauth/tokens", params={"all": "true"}).json()["tokens"]
    row = next(t for t in listed if t["token"] == pair["access_token"][:10])
    assert row["expires_at"] == "2026-09-01T00:30:00Z" and row["refresh_token_expires_at"] == "2026-10-01T00:00:00Z"
    assert row["refresh_token"] == pair["refresh_token"][:10] and row["used_at"] == "2026-09-01T00:00:00Z"
    assert server.service.token_by_value(SUB, pair["refresh_token"])["kind"] == "refresh_token"


def test_a_code_is_spent_once_within_120_seconds_with_its_redirect_uri_and_verifier(server):
    def exchange(code: str, **override) -> requests.Response:
        params = {"grant_type": "authorization_code", "code": code, "client_id": "fresh", "client_secret": NEW_SECRET,
                  "redirect_uri": "https://app.example/cb", "code_verifier": VERIFIER, **override}
        return grant(server, **params)

    def new_code() -> str:
        return server.service.authorization_code(SUB, "fresh", redirect_uri="https://app.example/cb",
                                                 code_challenge=CHALLENGE)

    code = new_code()
    assert exchange(code).status_code == 201
    again = exchange(code)
    assert again.status_code == 400 and again.json() == INVALID_GRANT
    late = new_code()
    server.service.clock.advance(timedelta(seconds=120))
    assert exchange(late).json() == INVALID_GRANT
    assert exchange(new_code(), code_verifier="another-verifier").json() == INVALID_GRANT
    assert exchange(new_code(), redirect_uri="https://evil.example/cb").json() == INVALID_GRANT
    wrong_secret = exchange(new_code(), client_secret=OLD_SECRET)
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"


def test_a_public_client_uses_pkce_without_a_secret(server):
    pair = code_pair(server, client="spa", secret=None)
    assert pair["expires_in"] == 1800 and "refresh_token" in pair
    no_pkce = server.service.authorization_code(SUB, "spa")
    answer = grant(server, grant_type="authorization_code", code=no_pkce, client_id="spa")
    assert answer.status_code == 400 and answer.json() == INVALID_GRANT
    credentials = grant(server, grant_type="client_credentials", client_id="spa", scope="read")
    assert credentials.status_code == 401 and credentials.json()["error"] == "invalid_client"


# --- expiry and refresh on the sandbox clock ------------------------------------------------------


def test_an_expired_access_token_gets_zendesks_401_and_a_refresh_brings_a_new_pair(server):
    pair = code_pair(server)
    server.service.clock.advance(timedelta(seconds=1799))
    assert webhooks_with(server, pair["access_token"]) == []
    server.service.clock.advance(timedelta(seconds=1))
    refused = refused_with(server, pair["access_token"])
    assert refused.status_code == 401 and refused.json() == INVALID_TOKEN
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    renewed = refresh(server, pair["refresh_token"])
    assert renewed.status_code == 201
    fresh = renewed.json()
    assert fresh["access_token"] != pair["access_token"] and fresh["refresh_token"] != pair["refresh_token"]
    assert fresh["expires_in"] == 1800 and fresh["scope"] == "read webhooks:write"
    assert webhooks_with(server, fresh["access_token"]) == []


def test_a_refresh_kills_the_old_pair_at_once(server):
    pair = code_pair(server)
    fresh = refresh(server, pair["refresh_token"]).json()
    reused = refresh(server, pair["refresh_token"])
    assert reused.status_code == 400 and reused.json() == INVALID_GRANT
    assert refused_with(server, pair["access_token"]).json() == INVALID_TOKEN  # not yet expired, yet dead
    assert server.service.token_by_value(SUB, pair["access_token"]) is None
    assert webhooks_with(server, fresh["access_token"]) == []
    assert refresh(server, fresh["refresh_token"]).status_code == 201


def test_a_refresh_token_expires_and_belongs_to_its_client(server):
    pair = code_pair(server, expires_in=3600, refresh_token_expires_in=604_800)
    assert pair["expires_in"] == 3600 and pair["refresh_token_expires_in"] == 604_800
    other = refresh(server, pair["refresh_token"], secret=OLD_SECRET, client="legacy")
    assert other.status_code == 400 and other.json() == INVALID_GRANT
    server.service.clock.advance(timedelta(days=7))
    expired = refresh(server, pair["refresh_token"])
    assert expired.status_code == 400 and expired.json() == INVALID_GRANT


def test_a_refresh_keeps_the_lifetime_and_may_narrow_but_not_widen_the_scopes(server):
    pair = code_pair(server, expires_in=7200)
    wider = refresh(server, pair["refresh_token"], scope="read write")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    narrower = refresh(server, pair["refresh_token"], scope="read").json()
    assert narrower["scope"] == "read" and narrower["expires_in"] == 7200
    shorter = refresh(server, narrower["refresh_token"], expires_in=600).json()
    assert shorter["expires_in"] == 600


def test_a_seeded_refresh_token_renews_a_seeded_expired_access_token(server):
    assert refused_with(server, SEEDED_ACCESS).json() == INVALID_TOKEN
    fresh = refresh(server, SEEDED_REFRESH).json()
    assert fresh["expires_in"] == 1800 and fresh["scope"] == "read"
    assert server.service.token_by_value(SUB, fresh["access_token"])["user_id"] == \
        server.service.instance(SUB).user("agent@gitlab.example")["id"]


def test_lifetime_bounds(server):
    def asked(**lifetimes) -> requests.Response:
        return grant(server, grant_type="client_credentials", client_id="fresh", client_secret=NEW_SECRET,
                     scope="read", **lifetimes)

    for accepted in (300, 172_800):
        assert asked(expires_in=accepted).json()["expires_in"] == accepted
    for refused in (299, 172_801, "soon"):
        answer = asked(expires_in=refused)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
    code = server.service.authorization_code(SUB, "fresh")
    for refresh_in in (604_799, 7_776_001):
        answer = grant(server, grant_type="authorization_code", code=code, client_id="fresh",
                       client_secret=NEW_SECRET, refresh_token_expires_in=refresh_in)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
    longest = code_pair(server, refresh_token_expires_in=7_776_000)
    assert longest["refresh_token_expires_in"] == 7_776_000


# --- which clients expire by default ----------------------------------------------------------------


def test_default_lifetimes_follow_the_client_kind_and_creation_date(server):
    def credentials(client: str, secret: str) -> dict:
        return grant(server, grant_type="client_credentials", client_id=client, client_secret=secret,
                     scope="read").json()

    legacy = credentials("legacy", OLD_SECRET)  # a local client from before 2026-04-30: no expiry
    assert "expires_in" not in legacy and "refresh_token" not in legacy
    assert server.service.token_by_value(SUB, legacy["access_token"])["expires_at"] is None
    assert credentials("marketplace", GLOBAL_SECRET)["expires_in"] == 1800  # global, from 2026-02-02
    assert "refresh_token" not in credentials("fresh", NEW_SECRET)  # client credentials: ask again
    legacy_code = server.service.authorization_code(SUB, "legacy")
    old_pair = grant(server, grant_type="authorization_code", code=legacy_code, client_id="legacy",
                     client_secret=OLD_SECRET).json()
    assert "refresh_token" not in old_pair  # no expires_in asked: nothing to refresh
    server.service.clock.set(datetime(2027, 4, 1, tzinfo=UTC))
    assert credentials("legacy", OLD_SECRET)["expires_in"] == 1800  # every client from 2027-04-01


# --- clients: deletion and secret rotation end their grants ------------------------------------------


def test_deleting_a_client_ends_its_tokens_refresh_tokens_and_codes(server, admin):
    pair = code_pair(server)
    code = server.service.authorization_code(SUB, "fresh")
    client_id = server.service.instance(SUB).client("fresh")["id"]
    assert admin.delete(f"{server.url}/api/v2/oauth/clients/{client_id}").status_code == 204
    assert refused_with(server, pair["access_token"]).json() == INVALID_TOKEN
    assert refresh(server, pair["refresh_token"]).json()["error"] == "invalid_client"
    assert server.service.token_by_value(SUB, pair["refresh_token"]) is None
    assert not server.service.instance(SUB).authorization_codes or code not in {
        c["code"] for c in server.service.instance(SUB).authorization_codes}


def test_a_new_secret_is_needed_to_refresh_after_generate_secret(server, admin):
    pair = code_pair(server)
    client_id = server.service.instance(SUB).client("fresh")["id"]
    rotated = admin.put(f"{server.url}/api/v2/oauth/clients/{client_id}/generate_secret").json()["client"]["secret"]
    old = refresh(server, pair["refresh_token"])
    assert old.status_code == 401 and old.json()["error"] == "invalid_client"
    assert webhooks_with(server, pair["access_token"]) == []  # issued tokens live on (a guess, documented)
    assert refresh(server, pair["refresh_token"], secret=rotated).status_code == 201


# --- API tokens: deactivate, reactivate, delete -----------------------------------------------------


def test_api_token_deactivate_reactivate_and_delete(server, admin):
    url = f"{server.url}/api/v2/api_tokens"
    token_id = admin.get(url).json()["api_tokens"][0]["id"]
    user = zenpy_client(server, SUB, email="admin@gitlab.example", api_token=API_TOKEN)
    assert list(user.webhooks.list()) == []
    refused = admin.delete(f"{url}/{token_id}")
    assert refused.status_code == 422 and refused.json()["error"] == "RecordInvalid"
    off = admin.put(f"{url}/{token_id}", json={"api_token": {"active": False}})
    assert off.status_code == 200 and off.json()["api_token"]["active"] is False
    with pytest.raises(APIException) as raised:
        list(user.webhooks.list())
    assert raised.value.response.status_code == 401
    assert raised.value.response.json() == {"error": "Couldn't authenticate you"}
    on = admin.put(f"{url}/{token_id}", json={"api_token": {"active": True, "description": "renamed"}})
    assert on.json()["api_token"]["active"] is True and on.json()["api_token"]["description"] == "renamed"
    assert list(user.webhooks.list()) == []
    admin.put(f"{url}/{token_id}", json={"api_token": {"active": False}})
    assert admin.delete(f"{url}/{token_id}").status_code == 204
    assert admin.get(f"{url}/{token_id}").status_code == 404 and admin.get(url).json()["api_tokens"] == []


def test_reactivation_restarts_the_30_days_and_a_deactivated_token_goes_after_60(server, admin):
    url = f"{server.url}/api/v2/api_tokens"
    token_id = admin.get(url).json()["api_tokens"][0]["id"]
    admin.put(f"{url}/{token_id}", json={"api_token": {"active": False}})
    server.service.clock.advance(timedelta(days=59))
    shown = admin.get(f"{url}/{token_id}.json")
    assert shown.status_code == 200 and shown.json()["api_token"]["active"] is False
    admin.put(f"{url}/{token_id}", json={"api_token": {"active": True}})
    server.service.clock.advance(timedelta(days=29))
    assert admin.get(f"{url}/{token_id}").json()["api_token"]["active"] is True
    server.service.clock.advance(timedelta(days=1))  # 30 days unused since the reactivation
    assert admin.get(f"{url}/{token_id}").json()["api_token"]["active"] is False
    server.service.clock.advance(timedelta(days=60))
    assert admin.get(f"{url}/{token_id}").status_code == 404


def test_no_reactivation_after_2027_04_30(server, admin):
    url = f"{server.url}/api/v2/api_tokens"
    token_id = admin.get(url).json()["api_tokens"][0]["id"]
    session = session_for(server, SUB, email="admin@gitlab.example", api_token=API_TOKEN)
    while server.service.clock.now() < datetime(2027, 4, 30, tzinfo=UTC):
        assert session.get(f"{server.url}/api/v2/webhooks").status_code == 200  # keeps it in use
        server.service.clock.advance(timedelta(days=25))
    assert admin.get(f"{url}/{token_id}").json()["api_token"]["active"] is False
    again = admin.put(f"{url}/{token_id}", json={"api_token": {"active": True}})
    assert again.status_code == 422 and "active" in again.json()["details"]
    assert session.get(f"{server.url}/api/v2/webhooks").status_code == 401


# --- values never reach the request log --------------------------------------------------------------


def test_no_credential_value_reaches_the_request_log(server, admin):
    pair = code_pair(server)
    fresh = refresh(server, pair["refresh_token"]).json()
    grant(server, grant_type="client_credentials", client_id="fresh", client_secret=NEW_SECRET, scope="read")
    client_id = server.service.instance(SUB).client("fresh")["id"]
    admin.put(f"{server.url}/api/v2/oauth/clients/{client_id}/generate_secret")
    webhooks_with(server, fresh["access_token"])
    logged = repr(server.log.snapshot())
    values = server.service.secrets()
    assert {pair["refresh_token"], fresh["access_token"], NEW_SECRET} <= values
    assert server.log.count() == 5
    assert [v for v in values if v in logged] == []


# --- the documented seed -------------------------------------------------------------------------------


def test_the_documented_seeds_credentials_behave_as_documented():
    text = (Path(__file__).resolve().parents[2] / "docs" / "sandbox-zendesk.md").read_text()
    block = re.search(r"## Seed.*?```yaml\n(.*?)```", text, re.S)
    assert block, "docs/sandbox-zendesk.md has an example seed"
    srv = serve_zendesk(yaml.safe_load(block.group(1)), Clock(START))
    try:
        def post(**params) -> requests.Response:
            return requests.post(f"{srv.url}/oauth/tokens", headers={"Host": "gitlab.zendesk.com"}, json=params,
                                 timeout=5)

        client = {"client_id": "helpdesk_sync", "client_secret": "seeded-global-client-secret-0123456789"}
        assert post(grant_type="client_credentials", scope="read", **client).json()["expires_in"] == 1800
        coded = post(grant_type="authorization_code", code="seeded-authorization-code-0123",
                     redirect_uri="https://sync.example/cb", **client)
        assert coded.status_code == 201 and coded.json()["refresh_token_expires_in"] == 2_592_000
        renewed = post(grant_type="refresh_token", refresh_token="seeded-refresh-token-0123456789abcdef", **client)
        assert renewed.status_code == 201 and renewed.json()["expires_in"] == 1800  # the seeded pair's 30 minutes
        federal = srv.service.instance("gitlab-federal-support")
        assert federal.api_token_state(federal.api_tokens[0]) == (False, False)
        # Deactivated 2026-07-13, before the rule: its 60 days run from 2026-07-28.
        srv.service.clock.set(datetime(2026, 9, 25, 23, 59, tzinfo=UTC))
        assert federal.api_token_state(federal.api_tokens[0]) == (False, False)
        srv.service.clock.set(datetime(2026, 9, 26, tzinfo=UTC))
        assert federal.api_token_state(federal.api_tokens[0]) == (False, True)
    finally:
        srv.stop()
