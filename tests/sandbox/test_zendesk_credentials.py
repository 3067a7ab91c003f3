"""Zendesk OAuth clients and tokens, the client_credentials grant, and API tokens, driven through
the authenticated session of an unmodified zenpy client (zenpy has no API for these)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from reconciler_sandbox.core import Clock
from reconciler_sandbox.zendesk import serve_zendesk, session_for, zenpy_client

GLOBAL, FEDERAL = "gitlab", "gitlab-federal-support"
ADMIN_TOKEN = "5e" * 32
FEDERAL_TOKEN = "6f" * 32
AGENT_TOKEN = "7a" * 32
API_TOKEN = "LegacyApiToken0123456789abcdefghijklmnop"
IDLE_API_TOKEN = "IdleApiToken0123456789abcdefghijklmnopqr"
CLIENT_SECRET = "ClientSecret" + "x" * 52
START = datetime(2026, 9, 1, tzinfo=UTC)


def seed() -> dict:
    return {"instances": {
        GLOBAL: {
            "users": [{"email": "admin@gitlab.example", "role": "admin"},
                      {"email": "agent@gitlab.example", "role": "agent"}],
            "oauth_clients": [{"identifier": "reconcile", "name": "Reconcile", "secret": CLIENT_SECRET,
                               "created_at": "now-400d"}],
            "oauth_tokens": [{"client": "reconcile", "value": ADMIN_TOKEN, "scopes": ["read", "write"]},
                             {"client": "reconcile", "value": AGENT_TOKEN, "user": "agent@gitlab.example"}],
            "api_tokens": [{"description": "ticket sync", "value": API_TOKEN, "created_at": "now-200d",
                            "last_used": "now-1d"},
                           {"description": "forgotten", "value": IDLE_API_TOKEN, "created_at": "now-200d",
                            "last_used": "now-29d"}],
        },
        FEDERAL: {"oauth_tokens": [{"value": FEDERAL_TOKEN}]},
    }}


@pytest.fixture(scope="module")
def running():
    srv = serve_zendesk(None, Clock(START))
    yield srv
    srv.stop()


@pytest.fixture
def server(running):
    """A fresh world per test on one running server (stopping a server costs half a second)."""
    with running.service.lock:
        running.service.clock.set(START)
        running.service.load_state({"instances": {}})
        running.service.seed(seed())
    return running


@pytest.fixture
def admin(server) -> requests.Session:
    return zenpy_client(server, GLOBAL, oauth_token=ADMIN_TOKEN).users.session


def grant(server, subdomain: str, identifier: str, secret: str, scope: str = "read") -> requests.Response:
    return requests.post(f"{server.url}/oauth/tokens", headers={"Host": f"{subdomain}.zendesk.com"},
                         json={"grant_type": "client_credentials", "client_id": identifier,
                               "client_secret": secret, "scope": scope}, timeout=5)


# --- OAuth clients ---------------------------------------------------------------------------


def test_client_crud_shows_the_secret_only_at_creation(server, admin):
    created = admin.post(f"{server.url}/api/v2/oauth/clients",
                         json={"client": {"name": "Rotator", "identifier": "rotator", "kind": "confidential"}})
    assert created.status_code == 201
    client = created.json()["client"]
    assert len(client["secret"]) == 64 and client["secret"] in server.service.secrets()
    listed = admin.get(f"{server.url}/api/v2/oauth/clients").json()["clients"]
    assert {c["identifier"] for c in listed} == {"reconcile", "rotator"}
    assert all("*" in c["secret"] for c in listed)
    shown = admin.get(f"{server.url}/api/v2/oauth/clients/{client['id']}.json")
    assert shown.status_code == 200 and shown.json()["client"]["secret"] != client["secret"]
    updated = admin.put(f"{server.url}/api/v2/oauth/clients/{client['id']}", json={"client": {"name": "Renamed"}})
    assert updated.status_code == 200 and updated.json()["client"]["name"] == "Renamed"
    assert admin.delete(f"{server.url}/api/v2/oauth/clients/{client['id']}").status_code == 204
    gone = admin.get(f"{server.url}/api/v2/oauth/clients/{client['id']}")
    assert gone.status_code == 404 and gone.json() == {"error": "RecordNotFound", "description": "Not found"}


def test_client_validation_is_record_invalid_with_details(server, admin):
    blank = admin.post(f"{server.url}/api/v2/oauth/clients", json={"client": {"identifier": "no_name"}})
    assert blank.status_code == 422
    assert blank.json()["error"] == "RecordInvalid" and "name" in blank.json()["details"]
    taken = admin.post(f"{server.url}/api/v2/oauth/clients", json={"client": {"name": "x", "identifier": "reconcile"}})
    assert taken.status_code == 422 and taken.json()["details"]["identifier"][0]["error"] == "DuplicateValue"


def test_generate_secret_invalidates_the_old_one_at_once(server, admin):
    assert grant(server, GLOBAL, "reconcile", CLIENT_SECRET).status_code == 201
    client_id = admin.get(f"{server.url}/api/v2/oauth/clients").json()["clients"][0]["id"]
    rotated = admin.put(f"{server.url}/api/v2/oauth/clients/{client_id}/generate_secret")
    assert rotated.status_code == 200
    new_secret = rotated.json()["client"]["secret"]
    assert new_secret != CLIENT_SECRET and len(new_secret) == 64
    old = grant(server, GLOBAL, "reconcile", CLIENT_SECRET)
    assert old.status_code == 401 and old.json()["error"] == "invalid_client"
    assert not server.service.client_secret_valid(GLOBAL, "reconcile", CLIENT_SECRET)
    assert server.service.client_secret_valid(GLOBAL, "reconcile", new_secret)
    fresh = grant(server, GLOBAL, "reconcile", new_secret, scope="read webhooks:write")
    assert fresh.status_code == 201
    body = fresh.json()
    assert body["token_type"] == "bearer" and body["scope"] == "read webhooks:write"
    current = session_for(server, GLOBAL, oauth_token=body["access_token"]).get(
        f"{server.url}/api/v2/oauth/tokens/current.json")
    assert current.status_code == 200 and current.json()["token"]["scopes"] == ["read", "webhooks:write"]


def test_grant_errors(server):
    assert grant(server, GLOBAL, "nobody", "x").status_code == 401
    assert grant(server, FEDERAL, "reconcile", CLIENT_SECRET).status_code == 401  # other instance's client
    wrong = requests.post(f"{server.url}/oauth/tokens", headers={"Host": f"{GLOBAL}.zendesk.com"},
                          json={"grant_type": "password"}, timeout=5)
    assert wrong.status_code == 400 and wrong.json()["error"] == "unsupported_grant_type"
    assert grant(server, GLOBAL, "reconcile", CLIENT_SECRET, scope="").status_code == 400


# --- OAuth tokens ----------------------------------------------------------------------------


def test_create_token_returns_the_full_value_once_and_lists_show_ten_characters(server, admin):
    client_id = admin.get(f"{server.url}/api/v2/oauth/clients").json()["clients"][0]["id"]
    created = admin.post(f"{server.url}/api/v2/oauth/tokens",
                         json={"token": {"client_id": client_id, "scopes": ["webhooks:write", "read"]}})
    assert created.status_code == 201
    token = created.json()["token"]
    assert len(token["token"]) == 64 and set(token["token"]) <= set("0123456789abcdef")
    listed = admin.get(f"{server.url}/api/v2/oauth/tokens").json()["tokens"]
    mine = next(t for t in listed if t["id"] == token["id"])
    assert mine["token"] == token["token"][:10]
    assert all(len(t["token"]) == 10 for t in listed)
    assert server.service.token_by_value(GLOBAL, token["token"])["kind"] == "oauth_token"
    works = session_for(server, GLOBAL, oauth_token=token["token"])
    assert works.get(f"{server.url}/api/v2/webhooks").status_code == 200


def test_list_is_the_callers_own_tokens_unless_all(server, admin):
    own = admin.get(f"{server.url}/api/v2/oauth/tokens").json()["tokens"]
    every = admin.get(f"{server.url}/api/v2/oauth/tokens", params={"all": "true"}).json()["tokens"]
    assert len(own) == 1 and len(every) == 2
    paged = admin.get(f"{server.url}/api/v2/oauth/tokens", params={"all": "true", "page[size]": "1"}).json()
    assert paged["meta"]["has_more"] is True and paged["links"]["next"].startswith(server.url)


def test_create_token_errors(server, admin):
    no_client = admin.post(f"{server.url}/api/v2/oauth/tokens", json={"token": {"client_id": 999999, "scopes": ["read"]}})
    assert no_client.status_code == 422 and "client_id" in no_client.json()["details"]
    client_id = admin.get(f"{server.url}/api/v2/oauth/clients").json()["clients"][0]["id"]
    no_scopes = admin.post(f"{server.url}/api/v2/oauth/tokens", json={"token": {"client_id": client_id}})
    assert no_scopes.status_code == 422
    agent = session_for(server, GLOBAL, oauth_token=AGENT_TOKEN)
    refused = agent.post(f"{server.url}/api/v2/oauth/tokens", json={"token": {"client_id": client_id, "scopes": ["read"]}})
    assert refused.status_code == 403 and refused.json()["error"] == "Forbidden"


def test_revoked_token_stops_authenticating(server, admin):
    client_id = admin.get(f"{server.url}/api/v2/oauth/clients").json()["clients"][0]["id"]
    token = admin.post(f"{server.url}/api/v2/oauth/tokens",
                       json={"token": {"client_id": client_id, "scopes": ["read"]}}).json()["token"]
    assert admin.delete(f"{server.url}/api/v2/oauth/tokens/{token['id']}").status_code == 204
    assert admin.delete(f"{server.url}/api/v2/oauth/tokens/{token['id']}").status_code == 404
    answer = session_for(server, GLOBAL, oauth_token=token["token"]).get(f"{server.url}/api/v2/oauth/tokens/current")
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_token"
    assert server.service.token_by_value(GLOBAL, token["token"]) is None


def test_current_token_with_an_api_token_is_not_found(server):
    basic = session_for(server, GLOBAL, email="admin@gitlab.example", api_token=API_TOKEN)
    assert basic.get(f"{server.url}/api/v2/oauth/tokens/current").status_code == 404


def test_expired_grant_token_stops_authenticating(server):
    body = grant(server, GLOBAL, "reconcile", CLIENT_SECRET).json()
    session = session_for(server, GLOBAL, oauth_token=body["access_token"])
    assert session.get(f"{server.url}/api/v2/oauth/tokens/current").status_code == 200
    # The grant above had no expires_in and the client predates 2026-04-30: it does not expire.
    timed = requests.post(f"{server.url}/oauth/tokens", headers={"Host": f"{GLOBAL}.zendesk.com"}, timeout=5,
                          json={"grant_type": "client_credentials", "client_id": "reconcile",
                                "client_secret": CLIENT_SECRET, "scope": "read", "expires_in": 600}).json()
    assert timed["expires_in"] == 600
    server.service.clock.advance(timedelta(seconds=601))
    expired = session_for(server, GLOBAL, oauth_token=timed["access_token"]).get(f"{server.url}/api/v2/oauth/tokens/current")
    assert expired.status_code == 401
    assert session.get(f"{server.url}/api/v2/oauth/tokens/current").status_code == 200


# --- API tokens ------------------------------------------------------------------------------


def test_api_tokens_list_authenticate_and_record_last_used(server, admin):
    listed = admin.get(f"{server.url}/api/v2/api_tokens").json()["api_tokens"]
    assert {t["description"] for t in listed} == {"ticket sync", "forgotten"}
    assert set(listed[0]) >= {"id", "description", "active", "created_at", "updated_at", "last_used", "token"}
    assert all(t["token"] not in (API_TOKEN, IDLE_API_TOKEN) for t in listed)
    z = zenpy_client(server, GLOBAL, email="admin@gitlab.example", api_token=API_TOKEN)
    assert list(z.webhooks.list()) == []
    record = server.service.token_by_value(GLOBAL, API_TOKEN)
    assert record["kind"] == "api_token" and record["last_used"] == "2026-09-01T00:00:00Z"


def test_api_token_unused_for_30_days_is_deactivated_then_deleted(server, admin):
    server.service.clock.advance(timedelta(days=1, seconds=1))
    idle = session_for(server, GLOBAL, email="admin@gitlab.example", api_token=IDLE_API_TOKEN)
    refused = idle.get(f"{server.url}/api/v2/webhooks")
    assert refused.status_code == 401 and refused.json() == {"error": "Couldn't authenticate you"}
    forgotten = next(t for t in admin.get(f"{server.url}/api/v2/api_tokens").json()["api_tokens"]
                     if t["description"] == "forgotten")
    assert forgotten["active"] is False
    server.service.clock.advance(timedelta(days=60))
    names = {t["description"] for t in admin.get(f"{server.url}/api/v2/api_tokens").json()["api_tokens"]}
    assert "forgotten" not in names


def test_wrong_email_or_password_basic_auth_is_refused(server):
    url = f"{server.url}/api/v2/webhooks"
    assert session_for(server, GLOBAL, email="nobody@x.example", api_token=API_TOKEN).get(url).status_code == 401
    password = requests.get(url, auth=("admin@gitlab.example", API_TOKEN), headers={"Host": f"{GLOBAL}.zendesk.com"})
    assert password.status_code == 401  # password access was removed in 2026


def test_api_tokens_stop_authenticating_on_2027_04_30(server):
    session = session_for(server, GLOBAL, email="admin@gitlab.example", api_token=API_TOKEN)
    while server.service.clock.now() < datetime(2027, 4, 29, tzinfo=UTC):  # used every 20 days: stays active
        server.service.clock.advance(timedelta(days=20))
        assert session.get(f"{server.url}/api/v2/webhooks").status_code == 200
    server.service.clock.set(datetime(2027, 4, 29, 23, 0, tzinfo=UTC))
    assert session.get(f"{server.url}/api/v2/webhooks").status_code == 200
    server.service.clock.set(datetime(2027, 4, 30, tzinfo=UTC))
    assert session.get(f"{server.url}/api/v2/webhooks").status_code == 401
    assert server.service.token_by_value(GLOBAL, API_TOKEN)["active"] is False


def test_api_token_creation_stops_on_2026_10_27(server, admin):
    created = admin.post(f"{server.url}/api/v2/api_tokens", json={"api_token": {"description": "late"}})
    assert created.status_code == 201 and len(created.json()["api_token"]["token"]) == 40
    assert created.json()["api_token"]["token"] in server.service.secrets()
    server.service.clock.set(datetime(2026, 10, 27, tzinfo=UTC))
    refused = admin.post(f"{server.url}/api/v2/api_tokens", json={"api_token": {"description": "too late"}})
    assert refused.status_code == 403 and refused.json()["error"] == "Forbidden"
