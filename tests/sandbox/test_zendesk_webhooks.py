"""Zendesk webhooks through zenpy 2.0.57, unmodified, against two sandbox instances at once."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
import requests
from zenpy.lib.api_objects import Webhook
from zenpy.lib.exception import APIException

from reconciler_sandbox.core import Clock, RateLimiter, Request, Response, SandboxServer, Service
from reconciler_sandbox.zendesk import serve_zendesk, session_for, zenpy_client

GLOBAL, FEDERAL = "gitlab", "gitlab-federal-support"
GLOBAL_TOKEN = "1a" * 32
FEDERAL_TOKEN = "2b" * 32
READ_ONLY_TOKEN = "3c" * 32
AGENT_TOKEN = "4d" * 32
HOOK_BEARER = "seeded-bearer-value-0001"

SEED = {"instances": {
    GLOBAL: {
        "users": [{"email": "admin@gitlab.example", "role": "admin"},
                  {"email": "agent@gitlab.example", "role": "agent"}],
        "oauth_clients": [{"identifier": "reconcile", "name": "Reconcile"}],
        "oauth_tokens": [{"client": "reconcile", "value": GLOBAL_TOKEN, "scopes": ["read", "write"]},
                         {"client": "reconcile", "value": READ_ONLY_TOKEN, "scopes": ["webhooks:read"]},
                         {"client": "reconcile", "value": AGENT_TOKEN, "user": "agent@gitlab.example"}],
        "webhooks": [{"name": "Ticket sync trigger", "endpoint": "https://gitlab.example/trigger",
                      "description": "starts the sync pipeline", "created_at": "now-30d",
                      "authentication": {"type": "bearer_token", "data": {"token": HOOK_BEARER}}}],
    },
    FEDERAL: {
        "oauth_tokens": [{"value": FEDERAL_TOKEN}],
        "webhooks": [{"name": "Federal only hook", "endpoint": "https://gitlab.example/federal"}],
    },
}}


def new_hook(name: str, **auth) -> Webhook:
    return Webhook(name=name, endpoint="https://example.com/hook", http_method="POST", request_format="json",
                   status="active", subscriptions=["conditional_ticket_events"], description="made by a test",
                   authentication=auth or None)


@pytest.fixture(scope="module")
def server():
    srv = serve_zendesk(SEED, Clock(datetime(2026, 9, 1, tzinfo=UTC)))
    yield srv
    srv.stop()


@pytest.fixture
def zg(server):
    return zenpy_client(server, GLOBAL, oauth_token=GLOBAL_TOKEN)


@pytest.fixture
def zf(server):
    return zenpy_client(server, FEDERAL, oauth_token=FEDERAL_TOKEN)


def test_two_instances_side_by_side_each_sees_only_its_own(zg, zf):
    created = zg.webhooks.create(new_hook("Global only"))
    global_names = {h.name for h in zg.webhooks.list()}
    federal_names = {h.name for h in zf.webhooks.list()}
    assert {"Global only", "Ticket sync trigger"} <= global_names
    assert federal_names == {"Federal only hook"}
    with pytest.raises(APIException) as err:
        zf.webhooks(id=created.id)
    assert err.value.response.status_code == 404


def test_a_token_of_one_instance_does_not_open_the_other(server):
    answer = session_for(server, FEDERAL, oauth_token=GLOBAL_TOKEN).get(f"{server.url}/api/v2/webhooks")
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_token", "error_description":
                             "The access token provided is expired, revoked, malformed or invalid for other reasons."}


def test_host_that_names_no_instance_is_404_naming_the_host(server):
    anonymous = requests.get(f"{server.url}/api/v2/webhooks", headers={"Authorization": f"Bearer {GLOBAL_TOKEN}"})
    assert anonymous.status_code == 404  # Host 127.0.0.1 while two instances are served
    assert anonymous.json()["error"] == "RecordNotFound"
    assert "Host '127.0.0.1'" in anonymous.json()["description"]


def test_create_answers_201_with_a_ulid_and_never_returns_the_credential(server, zg):
    raw = session_for(server, GLOBAL, oauth_token=GLOBAL_TOKEN).post(f"{server.url}/api/v2/webhooks", json={
        "webhook": {"name": "Basic hook", "endpoint": "https://example.com", "http_method": "POST",
                    "request_format": "json", "status": "active", "subscriptions": ["conditional_ticket_events"],
                    "authentication": {"type": "basic_auth", "add_position": "header",
                                       "data": {"username": "svc", "password": "created-password-1"}}}})
    assert raw.status_code == 201
    hook = raw.json()["webhook"]
    assert len(hook["id"]) == 26 and set(hook["id"]) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert hook["authentication"] == {"type": "basic_auth", "data": {"username": "svc"}, "add_position": "header"}
    shown = zg.webhooks(id=hook["id"])
    assert shown.authentication == {"type": "basic_auth", "data": {"username": "svc"}, "add_position": "header"}
    assert server.service.webhook_credential(GLOBAL, hook["id"])["data"]["password"] == "created-password-1"
    bearer = zg.webhooks.create(new_hook("Bearer hook", type="bearer_token", data={"token": "created-bearer-1"},
                                         add_position="header"))
    assert bearer.authentication == {"type": "bearer_token", "add_position": "header"}  # no data at all
    assert "created-bearer-1" not in requests.compat.json.dumps(zg.webhooks(id=bearer.id).to_dict())


def test_ulids_follow_the_sandbox_clock(server, zg):
    first = zg.webhooks.create(new_hook("Clock one"))
    server.service.clock.advance(timedelta(seconds=5))
    second = zg.webhooks.create(new_hook("Clock two"))
    assert first.id < second.id


def test_list_pages_with_absolute_links_that_zenpy_follows(server, zg):
    for i in range(5):
        zg.webhooks.create(new_hook(f"Paged {i}"))
    names = [h.name for h in zg.webhooks.list(page_size=2, filter="Paged")]
    assert sorted(names) == [f"Paged {i}" for i in range(5)]
    page = session_for(server, GLOBAL, oauth_token=GLOBAL_TOKEN).get(
        f"{server.url}/api/v2/webhooks", params={"page[size]": "2", "filter[name_contains]": "paged"}).json()
    assert page["meta"]["has_more"] is True and page["links"]["next"].startswith(server.url + "/api/v2/webhooks?")
    assert "prev" not in page["links"]
    second = session_for(server, GLOBAL, oauth_token=GLOBAL_TOKEN).get(page["links"]["next"]).json()
    assert "before_cursor" in second["meta"] and len(second["webhooks"]) == 2
    assert not {h["id"] for h in second["webhooks"]} & {h["id"] for h in page["webhooks"]}


def test_patch_is_partial_and_rotates_a_credential(server, zg):
    hook = zg.webhooks.create(new_hook("Patch me", type="bearer_token", data={"token": "old-bearer-value-1"},
                                       add_position="header"))
    hook.name = "Patched"
    zg.webhooks.patch(hook)
    patched = zg.webhooks(id=hook.id)
    assert patched.name == "Patched" and patched.description == "made by a test"
    assert patched.authentication == {"type": "bearer_token", "add_position": "header"}
    answer = session_for(server, GLOBAL, oauth_token=GLOBAL_TOKEN).patch(
        f"{server.url}/api/v2/webhooks/{hook.id}",
        json={"webhook": {"authentication": {"type": "bearer_token", "data": {"token": "new-bearer-value-2"},
                                             "add_position": "header"}}})
    assert answer.status_code == 204 and answer.text == ""
    sent = server.service.webhook_credential(GLOBAL, hook.id)
    assert sent["headers"]["Authorization"] == "Bearer new-bearer-value-2"
    assert zg.webhooks(id=hook.id).updated_at is not None


def test_put_replaces_the_whole_object_so_leaving_out_authentication_erases_it(server, zg):
    hook = zg.webhooks.create(new_hook("Put me", type="basic_auth", data={"username": "u", "password": "put-pass-1"},
                                       add_position="header"))
    zg.webhooks.update(hook.id, Webhook(name="Put done", endpoint="https://example.com/200", http_method="GET",
                                        request_format="json", status="active"))
    after = zg.webhooks(id=hook.id)
    assert after.name == "Put done" and after.description is None and after.authentication is None
    assert server.service.webhook_credential(GLOBAL, hook.id)["type"] is None


def test_delete_answers_204_then_the_webhook_is_gone(server, zg):
    hook = zg.webhooks.create(new_hook("Delete me"))
    answer = session_for(server, GLOBAL, oauth_token=GLOBAL_TOKEN).delete(f"{server.url}/api/v2/webhooks/{hook.id}")
    assert answer.status_code == 204
    with pytest.raises(APIException) as err:
        zg.webhooks(id=hook.id)
    assert err.value.response.status_code == 404
    assert err.value.response.json()["errors"][0]["code"] == "WebhookNotFound"


def test_signing_secret_show_and_reset(server, zg):
    hook = zg.webhooks.create(new_hook("Signed"))
    session = session_for(server, GLOBAL, oauth_token=GLOBAL_TOKEN)
    shown = session.get(f"{server.url}/api/v2/webhooks/{hook.id}/signing_secret")
    assert shown.status_code == 200 and shown.json()["signing_secret"]["algorithm"] == "SHA256"
    reset = session.post(f"{server.url}/api/v2/webhooks/{hook.id}/signing_secret")
    assert reset.status_code == 201
    assert reset.json()["signing_secret"]["secret"] != shown.json()["signing_secret"]["secret"]
    assert zg.webhooks.show_secret(hook.id).secret == reset.json()["signing_secret"]["secret"]
    assert reset.json()["signing_secret"]["secret"] in server.service.secrets()


def test_invalid_webhook_is_400_in_the_webhooks_error_shape(server):
    answer = session_for(server, GLOBAL, oauth_token=GLOBAL_TOKEN).post(f"{server.url}/api/v2/webhooks", json={
        "webhook": {"name": "No endpoint", "http_method": "POST", "request_format": "json", "status": "active",
                    "subscriptions": ["conditional_ticket_events"]}})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["source"] == {"pointer": "/webhook/endpoint"}
    bad_auth = session_for(server, GLOBAL, oauth_token=GLOBAL_TOKEN).post(f"{server.url}/api/v2/webhooks", json={
        "webhook": {"name": "x", "endpoint": "https://e.example", "http_method": "POST", "request_format": "json",
                    "status": "active", "subscriptions": [], "authentication": {"type": "bearer_token", "data": {}}}})
    assert bad_auth.status_code == 400


def test_unauthenticated_read_only_scope_and_agent_are_refused(server):
    url = f"{server.url}/api/v2/webhooks"
    none = session_for(server, GLOBAL).get(url)
    assert none.status_code == 401 and none.json() == {"error": "Couldn't authenticate you"}
    assert none.headers["WWW-Authenticate"] == 'Basic realm="Web Password"'
    read_only = session_for(server, GLOBAL, oauth_token=READ_ONLY_TOKEN)
    assert read_only.get(url).status_code == 200
    refused = read_only.post(url, json={"webhook": {"name": "x"}})
    assert refused.status_code == 403 and refused.json()["error"] == "Forbidden"
    assert session_for(server, GLOBAL, oauth_token=AGENT_TOKEN).get(url).status_code == 403


def test_every_answer_carries_rate_limit_headers(server):
    session = session_for(server, GLOBAL, oauth_token=GLOBAL_TOKEN)
    for answer in (session.get(f"{server.url}/api/v2/webhooks"), session.get(f"{server.url}/api/v2/nothing"),
                   session_for(server, GLOBAL).get(f"{server.url}/api/v2/webhooks")):
        assert answer.headers["X-Rate-Limit"] == "700"
        assert int(answer.headers["X-Rate-Limit-Remaining"]) < 700


def test_zenpy_waits_out_a_429_and_retries():
    seed = {"instances": {GLOBAL: {"oauth_tokens": [{"value": GLOBAL_TOKEN}]}}}
    srv = serve_zendesk(seed, Clock(), rate_limit=RateLimiter(limit=2, window=1.0))
    try:
        session = session_for(srv, GLOBAL, oauth_token=GLOBAL_TOKEN)
        assert session.get(f"{srv.url}/api/v2/webhooks").status_code == 200
        assert session.get(f"{srv.url}/api/v2/webhooks").status_code == 200
        limited = session.get(f"{srv.url}/api/v2/webhooks")
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert limited.text == "Number of allowed API requests per minute exceeded"
        assert limited.headers["X-Rate-Limit-Remaining"] == "0"
        z = zenpy_client(srv, GLOBAL, oauth_token=GLOBAL_TOKEN)
        assert list(z.webhooks.list()) == []  # answered after zenpy slept through Retry-After
        assert [e.status for e in srv.log.snapshot()][-2:] == [429, 200]
    finally:
        srv.stop()


class Receiver(Service):
    """A loopback endpoint that remembers the Authorization header each request carried."""

    name = "receiver"

    def __init__(self) -> None:
        super().__init__(Clock())
        self.seen: list[str] = []
        self.router.add("POST", "/hook", self.receive)

    def receive(self, request: Request) -> Response:
        self.seen.append(request.header("Authorization") or "")
        return Response(200, {"ok": True})


def test_webhook_test_delivers_the_credential_to_a_loopback_endpoint(server, zg):
    with SandboxServer(Receiver()) as receiver:
        hook = zg.webhooks.create(Webhook(
            name="Delivers", endpoint=f"{receiver.url}/hook", http_method="POST", request_format="json",
            status="active", subscriptions=["conditional_ticket_events"],
            authentication={"type": "basic_auth", "data": {"username": "svc", "password": "delivered-pass-1"},
                            "add_position": "header"}))
        answer = session_for(server, GLOBAL, oauth_token=GLOBAL_TOKEN).post(
            f"{server.url}/api/v2/webhooks/test", params={"webhook_id": hook.id}, json={"request": {}})
        assert answer.status_code == 200 and answer.json()["response"]["status_code"] == 200
        assert receiver.service.seen == ["Basic " + base64.b64encode(b"svc:delivered-pass-1").decode()]
    assert not [e for e in server.log.snapshot() if e.path == "/api/v2/webhooks/test" and e.applied]
