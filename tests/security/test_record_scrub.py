"""`--record`: a value that sits in a URL path (a webhook endpoint template with `${token}` in the
path) is scrubbed by the template's position, and the cassette is readable by its owner only."""

from __future__ import annotations

import json
import os
import secrets
import stat
from datetime import UTC, datetime

import pytest

from reconciler.record import Scrubber, record_to, recording
from reconciler.secret import REDACTED
from reconciler_sandbox.core import Clock
from reconciler_sandbox.zendesk import serve_zendesk, session_for

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
TEMPLATE = "https://hooks.example.com/api/v4/projects/7/trigger/${token}/pipeline"
INVENTORY = """
providers:
  zd:
    kind: zendesk
    subdomain: acme
    auth: {oauth_token_env: ZD_TOKEN}
  gl:
    kind: gitlab
    url: https://gitlab.example.com
    auth: {token_env: GL_TOKEN}
tokens:
  sync-trigger:
    source: {kind: gitlab_pipeline_trigger, provider: gl, project: acme/sync, description: sync}
    consumers:
      - kind: zendesk_webhook
        provider: zd
        webhook: sync
        endpoint: "TEMPLATE"
""".replace("TEMPLATE", TEMPLATE)


def exchange(method: str, uri: str, body: str | None, answer: str) -> dict:
    return {"request": {"method": method, "uri": uri, "body": body,
                        "headers": {"Content-Type": ["application/json"]}},
            "response": {"status": {"code": 200, "message": "OK"},
                         "headers": {"Content-Type": ["application/json"]}, "body": {"string": answer}}}


def test_a_value_in_a_url_path_is_scrubbed_by_the_templates_position():
    value = "a1b2c3d4e5f6a7b8c9d0"  # a trigger token: no credential name near it, not in a query
    endpoint = TEMPLATE.replace("${token}", value)
    transcript = {"interactions": [
        exchange("PATCH", "https://acme.zendesk.com/api/v2/webhooks/01H", json.dumps({"webhook": {"endpoint": endpoint}}),
                 json.dumps({"webhook": {"id": "01H", "endpoint": endpoint}})),
        exchange("GET", f"https://hooks.example.com/check?ref={value}", None, json.dumps({"note": f"saw {value}"})),
    ]}
    scrubbed = json.dumps(Scrubber(templates=[TEMPLATE]).transcript(transcript))
    assert value not in scrubbed
    assert TEMPLATE.replace("${token}", REDACTED) in scrubbed  # the rest of the URL stays readable


@pytest.fixture
def zendesk():
    token = secrets.token_urlsafe(24)
    server = serve_zendesk({"instances": {"acme": {
        "users": [{"email": "admin@acme.example", "role": "admin"}],
        "oauth_clients": [{"identifier": "reconcile", "name": "Reconcile", "secret": secrets.token_urlsafe(24)}],
        "oauth_tokens": [{"client": "reconcile", "value": token, "scopes": ["read", "write"]}],
    }}}, Clock(NOW))
    yield server, token
    server.stop()


def test_record_to_scrubs_a_path_value_written_to_the_sandbox_and_writes_0600(zendesk, tmp_path):
    server, admin = zendesk
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY)
    value = secrets.token_hex(20)
    out = tmp_path / "recordings"
    with record_to(out, "apply", inventory=inventory) as rec:
        zd = session_for(server, "acme", oauth_token=admin)
        zd.post(server.url + "/api/v2/webhooks", timeout=5, json={"webhook": {
            "name": "sync", "status": "active", "http_method": "POST", "request_format": "json",
            "subscriptions": ["conditional_ticket_events"], "endpoint": TEMPLATE.replace("${token}", value)}})
        zd.get(server.url + "/api/v2/webhooks", timeout=5)
    assert rec is not None and rec.requests == 2
    text = rec.path.read_text()
    assert value not in text and admin not in text
    assert stat.S_IMODE(rec.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_a_cassette_is_0600_even_under_a_permissive_umask_and_over_an_existing_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("old")
    path.chmod(0o644)
    old = os.umask(0)
    try:
        with recording(path):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "interactions" in path.read_text()
