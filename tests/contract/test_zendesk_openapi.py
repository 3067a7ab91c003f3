"""The Zendesk sandbox's OAuth and webhook answers against the published specs.

For every operation: the status code is one the spec documents, and every key the sandbox
returns is a property the spec's response schema declares (recursively). Where the recordings
or Zendesk's own docs say the spec is wrong or incomplete, the difference is allowed explicitly
below, with the reason. The check is one-way (no undeclared keys) because the recordings win
over the webhooks spec where they show less: a list without `page[size]` has no `links`, and a
bearer-token webhook's `authentication` has no `data` at all (TestWebhooks cassettes).
The Support OAS documents 201 for `POST /oauth/tokens`; the sandbox follows it (no recording).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler_sandbox.core import Clock
from reconciler_sandbox.zendesk import serve_zendesk, session_for

TOKEN = "ab" * 32
SUB = "gitlab"


class _SpecLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # the C loader reads 1.7 MB in ~1 s
    """PyYAML's safe loader with the `=` (value) tag read as a plain string (see oracles README)."""


_SpecLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


@cache
def load_spec(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_SpecLoader)  # noqa: S506 (a SafeLoader subclass)


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def undeclared(spec: dict[str, Any], schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Key paths in `value` that `schema` does not declare."""
    schema = resolve(spec, schema)
    if isinstance(value, dict) and "properties" in schema:
        gaps = []
        for key, item in value.items():
            if key not in schema["properties"]:
                gaps.append(f"{path}.{key}" if path else key)
            else:
                gaps += undeclared(spec, schema["properties"][key], item, f"{path}.{key}" if path else key)
        return gaps
    if isinstance(value, list) and "items" in schema:
        return [gap for item in value for gap in undeclared(spec, schema["items"], item, f"{path}[]")]
    return []


def check(spec: dict[str, Any], path: str, method: str, status: int, body: Any,
          allowed: frozenset[str] = frozenset()) -> None:
    operation = spec["paths"][path][method.lower()]
    responses = operation["responses"]
    assert str(status) in {str(code) for code in responses}, f"{method} {path}: {status} not in the spec"
    if body is None:
        return
    content = responses.get(str(status), responses.get(status, {})).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    assert schema is not None, f"{method} {path} {status}: the spec declares no JSON body"
    gaps = set(undeclared(spec, schema, body)) - allowed
    assert not gaps, f"{method} {path} {status}: keys the spec does not declare: {sorted(gaps)}"


@pytest.fixture(scope="module")
def server():
    seed = {"instances": {SUB: {
        "oauth_clients": [{"identifier": "reconcile", "name": "Reconcile", "secret": "cs" * 32}],
        "oauth_tokens": [{"client": "reconcile", "value": TOKEN}],
        "webhooks": [{"name": "Seeded", "endpoint": "https://example.com",
                      "authentication": {"type": "basic_auth", "data": {"username": "u", "password": "seeded-pw-01"}}}],
    }}}
    srv = serve_zendesk(seed, Clock(datetime(2026, 9, 1, tzinfo=UTC)))
    yield srv
    srv.stop()


# Offset pagination adds next_page/previous_page/count to every Support API list
# (api-reference/introduction/pagination); the OAS list schemas leave them out.
OFFSET_KEYS = frozenset({"next_page", "previous_page", "count"})


def test_oauth_endpoints_match_the_support_oas(server, oracles):
    spec = load_spec(oracles / "specs" / "zendesk-support-oas.yaml")
    s = session_for(server, SUB, oauth_token=TOKEN)
    base = f"{server.url}/api/v2/oauth"

    answer = s.get(f"{base}/clients")
    check(spec, "/api/v2/oauth/clients", "GET", answer.status_code, answer.json(), OFFSET_KEYS)
    created = s.post(f"{base}/clients", json={"client": {"name": "Contract", "identifier": "contract"}})
    check(spec, "/api/v2/oauth/clients", "POST", created.status_code, created.json())
    client_id = created.json()["client"]["id"]
    one = "/api/v2/oauth/clients/{oauth_client_id}"
    check(spec, one, "GET", *(lambda r: (r.status_code, r.json()))(s.get(f"{base}/clients/{client_id}")))
    check(spec, one, "PUT", *(lambda r: (r.status_code, r.json()))(
        s.put(f"{base}/clients/{client_id}", json={"client": {"name": "Contract 2"}})))
    check(spec, one + "/generate_secret", "PUT", *(lambda r: (r.status_code, r.json()))(
        s.put(f"{base}/clients/{client_id}/generate_secret")))

    check(spec, "/api/v2/oauth/tokens", "GET", *(lambda r: (r.status_code, r.json()))(s.get(f"{base}/tokens")),
          OFFSET_KEYS)
    token = s.post(f"{base}/tokens", json={"token": {"client_id": client_id, "scopes": ["read"]}})
    check(spec, "/api/v2/oauth/tokens", "POST", token.status_code, token.json())
    token_id = token.json()["token"]["id"]
    check(spec, "/api/v2/oauth/tokens/{oauth_token_id}", "GET",
          *(lambda r: (r.status_code, r.json()))(s.get(f"{base}/tokens/{token_id}")))
    check(spec, "/api/v2/oauth/tokens/current", "GET",
          *(lambda r: (r.status_code, r.json()))(s.get(f"{base}/tokens/current")))
    check(spec, "/api/v2/oauth/tokens/{oauth_token_id}", "DELETE", s.delete(f"{base}/tokens/{token_id}").status_code,
          None)
    check(spec, one, "DELETE", s.delete(f"{base}/clients/{client_id}").status_code, None)

    grant = session_for(server, SUB).post(f"{server.url}/oauth/tokens", json={
        "grant_type": "client_credentials", "client_id": "reconcile", "client_secret": "cs" * 32, "scope": "read"})
    check(spec, "/oauth/tokens", "POST", grant.status_code, grant.json())


def test_webhook_endpoints_match_the_webhooks_spec(server, oracles):
    spec = load_spec(oracles / "specs" / "zendesk-webhooks.yaml")
    s = session_for(server, SUB, oauth_token=TOKEN)
    base = f"{server.url}/api/v2/webhooks"
    body = {"webhook": {"name": "Contract hook", "endpoint": "https://example.com", "http_method": "POST",
                        "request_format": "json", "status": "active", "subscriptions": ["conditional_ticket_events"],
                        "authentication": {"type": "bearer_token", "data": {"token": "contract-bearer-1"},
                                           "add_position": "header"}}}
    created = s.post(base, json=body)
    check(spec, "/api/v2/webhooks", "POST", created.status_code, created.json())
    hook_id = created.json()["webhook"]["id"]
    listed = s.get(base, params={"page[size]": "1"})
    check(spec, "/api/v2/webhooks", "GET", listed.status_code, listed.json())
    one = "/api/v2/webhooks/{webhook_id}"
    check(spec, one, "GET", *(lambda r: (r.status_code, r.json()))(s.get(f"{base}/{hook_id}")))
    check(spec, one, "PATCH", s.patch(f"{base}/{hook_id}", json={"webhook": {"name": "Patched"}}).status_code, None)
    check(spec, one, "PUT", s.put(f"{base}/{hook_id}", json=body).status_code, None)
    secret = "/api/v2/webhooks/{webhook_id}/signing_secret"
    check(spec, secret, "GET", *(lambda r: (r.status_code, r.json()))(s.get(f"{base}/{hook_id}/signing_secret")))
    check(spec, secret, "POST", *(lambda r: (r.status_code, r.json()))(s.post(f"{base}/{hook_id}/signing_secret")))
    missing = s.get(f"{base}/01AAAAAAAAAAAAAAAAAAAAAAAA")
    check(spec, one, "GET", missing.status_code, missing.json())
    invalid = s.post(base, json={"webhook": {"name": "no endpoint"}})
    check(spec, "/api/v2/webhooks", "POST", invalid.status_code, invalid.json())
    check(spec, one, "DELETE", s.delete(f"{base}/{hook_id}").status_code, None)


def test_code_and_refresh_grants_match_the_support_oas(server, oracles):
    """The code and refresh answers, and the token list holding a refreshable token, declare only
    what the OAS declares; every grant parameter the sandbox reads is one its description names."""
    spec = load_spec(oracles / "specs" / "zendesk-support-oas.yaml")
    anonymous = session_for(server, SUB)
    code = server.service.authorization_code(SUB, "reconcile", scopes=["read"])
    pair = anonymous.post(f"{server.url}/oauth/tokens", json={
        "grant_type": "authorization_code", "code": code, "client_id": "reconcile", "client_secret": "cs" * 32})
    check(spec, "/oauth/tokens", "POST", pair.status_code, pair.json())
    assert {"refresh_token", "refresh_token_expires_in", "expires_in"} <= set(pair.json())
    renewed = anonymous.post(f"{server.url}/oauth/tokens", json={
        "grant_type": "refresh_token", "refresh_token": pair.json()["refresh_token"], "client_id": "reconcile",
        "client_secret": "cs" * 32, "scope": "read", "expires_in": 86400, "refresh_token_expires_in": 604800})
    check(spec, "/oauth/tokens", "POST", renewed.status_code, renewed.json())
    listed = session_for(server, SUB, oauth_token=TOKEN).get(f"{server.url}/api/v2/oauth/tokens",
                                                             params={"all": "true"})
    check(spec, "/api/v2/oauth/tokens", "GET", listed.status_code, listed.json(), OFFSET_KEYS)
    assert any(t["refresh_token_expires_at"] for t in listed.json()["tokens"])
    documented = spec["paths"]["/oauth/tokens"]["post"]["description"]
    read = ("grant_type", "code", "client_id", "client_secret", "redirect_uri", "scope", "expires_in",
            "refresh_token_expires_in", "refresh_token", "code_verifier")
    assert [name for name in read if name not in documented] == []
