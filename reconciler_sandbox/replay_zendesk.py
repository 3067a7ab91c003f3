"""Replay a betamax cassette (zenpy's recording format) against a fresh Zendesk sandbox.

Each cassette gets its own sandbox, seeded from what the cassette shows already existed: webhooks
that answer without having been created in the cassette (with their recorded fields), and their
recorded invocations and attempts. Ids the recording created are mapped to the ids the sandbox
creates, so later requests (`GET /webhooks/{id}`, `DELETE ...`) reach the same object. The
request is sent as recorded (method, path, query, body), authenticated with a sandbox token
instead of the redacted recorded credential; the status and the JSON key set are compared.
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from reconciler_sandbox.core import Clock, RateLimiter, SandboxServer
from reconciler_sandbox.replay_common import ReplayOutcome, compare_shapes
from reconciler_sandbox.zendesk import serve_zendesk
from reconciler_sandbox.zendesk_state import new_oauth_token

WEBHOOK_FIELDS = ("id", "name", "description", "status", "subscriptions", "created_at", "created_by", "updated_at",
                  "updated_by", "endpoint", "http_method", "request_format", "custom_headers")


def body_text(body: dict[str, Any]) -> str:
    """A betamax body as text: `string`, or `base64_string` (gzip-compressed when recorded so)."""
    if body.get("base64_string"):
        raw = base64.b64decode(body["base64_string"])
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8")
    return body.get("string") or ""


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def derive_seed(interactions: list[dict[str, Any]], subdomain: str, token: str) -> dict[str, Any]:
    """The world the cassette assumes: an admin with a token, and the webhooks (with invocations
    and attempts) that the recording reads or deletes without creating them.

    Invocation pages were recorded while events kept arriving, so pages overlap; every recorded
    row is kept (a repeated id gets a variant id) so the sandbox pages the same way, and a last
    recorded page that says `has_more` gets one more row behind it.
    """
    created: set[str] = set()
    existing: dict[str, dict[str, Any]] = {}
    referenced: list[str] = []
    invocations: dict[str, list[dict[str, Any]]] = {}
    more_after: dict[str, bool] = {}
    attempts: dict[tuple[str, str], list[Any]] = {}
    user_id = None
    for interaction in interactions:
        request, response = interaction["request"], interaction["response"]
        parts = urlsplit(request["uri"]).path.strip("/").split("/")
        data = _json(body_text(response["body"]))
        status = response["status"]["code"]
        if len(parts) >= 4 and parts[:3] == ["api", "v2", "webhooks"] and parts[3] != "test" and status < 300:
            referenced.append(parts[3])
        if not isinstance(data, dict):
            continue
        hooks = data.get("webhooks", []) + ([data["webhook"]] if isinstance(data.get("webhook"), dict) else [])
        if request["method"] == "POST" and status == 201 and isinstance(data.get("webhook"), dict):
            created.add(data["webhook"]["id"])
        for hook in hooks:
            user_id = user_id or hook.get("created_by")
            if hook["id"] not in created:
                existing[hook["id"]] = hook
        if "invocations" in data and len(parts) >= 5:
            rows = invocations.setdefault(parts[3], [])
            for inv in data["invocations"]:
                rows.append({**inv, "id": _unique(inv["id"], {r["id"] for r in rows})})
            more_after[parts[3]] = bool((data.get("meta") or {}).get("has_more"))
        if "attempts" in data and len(parts) >= 7:
            attempts[(parts[3], parts[5])] = data["attempts"]
    for hook_id, rows in invocations.items():
        if more_after.get(hook_id) and rows:
            rows.append({**rows[-1], "id": _unique(rows[-1]["id"], {r["id"] for r in rows})})
    for (hook_id, inv_id), recorded in attempts.items():
        rows = invocations.setdefault(hook_id, [])
        row = next((r for r in rows if r["id"] == inv_id), None)
        if row is None:
            row = {"id": inv_id, "status": "terminated"}
            rows.append(row)
        row["attempts"] = recorded
    for hook_id in referenced:
        if hook_id not in created and hook_id not in existing:
            existing[hook_id] = {"id": hook_id, "name": f"Recorded webhook {hook_id}", "endpoint": "https://example.com",
                                 "http_method": "POST", "request_format": "json", "status": "active",
                                 "subscriptions": ["conditional_ticket_events"]}
    webhooks = []
    for hook_id, hook in existing.items():
        item: dict[str, Any] = {k: hook[k] for k in WEBHOOK_FIELDS if k in hook}
        item.pop("created_by", None)
        item.pop("updated_by", None)
        if hook.get("updated_at"):
            item["updated_by"] = "admin@replay.example"
        auth = hook.get("authentication")
        if auth:  # the recording never shows the secret half: any value will do
            data = {"username": (auth.get("data") or {}).get("username", "user"), "password": "replay-password",
                    "token": "replay-bearer-token", "name": "X-Api-Key", "value": "replay-api-key-value"}
            fields = {"basic_auth": ("username", "password"), "bearer_token": ("token",), "api_key": ("name", "value")}
            item["authentication"] = {"type": auth["type"], "add_position": auth.get("add_position", "header"),
                                      "data": {f: data[f] for f in fields[auth["type"]]}}
        item["invocations"] = invocations.get(hook_id, [])
        webhooks.append(item)
    admin = {"email": "admin@replay.example", "role": "admin", "name": "Replay Admin"}
    if user_id and str(user_id).isdigit():
        admin["id"] = int(user_id)
    return {"instances": {subdomain: {
        "users": [admin],
        "oauth_clients": [{"identifier": "replay", "name": "Replay"}],
        "oauth_tokens": [{"client": "replay", "value": token, "scopes": ["read", "write"]}],
        "webhooks": webhooks,
    }}}


def _unique(item_id: str, taken: set[str]) -> str:
    candidate, n = item_id, 0
    while candidate in taken:
        n += 1
        candidate = f"{item_id[:-4]}{n:04d}"
    return candidate


def _map_cursors(recorded: Any, actual: Any, ids: dict[str, str]) -> None:
    """Cursors are opaque values a client echoes back: map the recorded ones to the sandbox's."""
    if isinstance(recorded, dict) and isinstance(actual, dict):
        want, got = recorded.get("meta") or {}, actual.get("meta") or {}
        for key in ("after_cursor", "before_cursor"):
            if want.get(key) and got.get(key):
                ids[want[key]] = got[key]


def _label(index: int, request: dict[str, Any]) -> str:
    split = urlsplit(request["uri"])
    return f"{index} {request['method']} {split.path}{'?' + split.query if split.query else ''}"


def replay_cassette(path: Path) -> list[ReplayOutcome]:
    cassette = json.loads(Path(path).read_text())
    interactions = cassette.get("http_interactions", [])
    if not interactions:
        return []
    host = urlsplit(interactions[0]["request"]["uri"]).hostname or "replay.zendesk.com"
    subdomain = host.split(".")[0]
    token = new_oauth_token()
    recorded_at = interactions[0].get("recorded_at")
    outcomes: list[ReplayOutcome] = []
    ids: dict[str, str] = {}  # recorded id or cursor -> the sandbox's
    server = _replay_server()
    with server.service.lock:  # a fresh world for this cassette, at the time it was recorded
        if recorded_at:
            server.service.clock.set(datetime.fromisoformat(recorded_at + "+00:00"))
        server.service.load_state({"instances": {}})
        server.service.seed(derive_seed(interactions, subdomain, token))
        server.log.clear()
    session = requests.Session()
    session.headers.update({"Host": f"{subdomain}.zendesk.com", "Authorization": f"Bearer {token}"})
    for index, interaction in enumerate(interactions, 1):
        request, response = interaction["request"], interaction["response"]
        label = _label(index, request)
        split = urlsplit(request["uri"])
        target = split.path + ("?" + split.query if split.query else "")
        body = body_text(request["body"])
        for old, new in ids.items():
            target, body = target.replace(old, new), body.replace(old, new)
        headers = {}
        content_type = (request.get("headers") or {}).get("Content-Type")
        if content_type:
            headers["Content-Type"] = content_type[0]
        answer = session.request(request["method"], server.url + target, data=body.encode() or None,
                                 headers=headers, timeout=10)
        want_status = response["status"]["code"]
        recorded = _json(body_text(response["body"]))
        actual = _json(answer.text)
        if request["method"] == "POST" and want_status == 201 and isinstance(recorded, dict) \
                and isinstance(recorded.get("webhook"), dict) and isinstance(actual, dict) \
                and isinstance(actual.get("webhook"), dict):
            ids[recorded["webhook"]["id"]] = actual["webhook"]["id"]
        _map_cursors(recorded, actual, ids)
        if answer.status_code != want_status:
            outcomes.append(ReplayOutcome(Path(path).name, label, "mismatched",
                                          f"status {answer.status_code}, recorded {want_status}"))
            continue
        if recorded is None and answer.text.strip():
            outcomes.append(ReplayOutcome(Path(path).name, label, "mismatched", "body where none was recorded"))
            continue
        gap = compare_shapes(recorded, actual) if recorded is not None else ""
        outcomes.append(ReplayOutcome(Path(path).name, label, "mismatched" if gap else "matched", gap))
    return outcomes


_SERVER: SandboxServer | None = None


def _replay_server() -> SandboxServer:
    """One sandbox server per process, reseeded per cassette (stopping a server costs ~0.5 s)."""
    global _SERVER
    if _SERVER is None:
        _SERVER = serve_zendesk(None, Clock(), rate_limit=RateLimiter(limit=1_000_000))
    return _SERVER
