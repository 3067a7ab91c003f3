"""Zendesk webhooks: list, show, create/clone, PUT, PATCH, DELETE, signing secret, test,
invocations.

Behaviour from the recorded traffic (oracles/recordings/zendesk-webhooks) and the webhooks spec:
- ids are 26-character ULIDs; create and clone answer 201; PUT, PATCH and DELETE answer 204
  with no body; the signing-secret reset answers 201.
- `authentication.data` shows only the basic-auth username; a bearer token comes back with no
  `data` at all. api_key shows only the header `name` ([uncertain]: not recorded).
- PUT replaces the whole object: a PUT without `authentication` or `description` erases them.
  PATCH is partial (JSON merge: a key set to null is removed).
- Errors use the webhooks API's `{"errors": [{code, title, detail}]}` shape (spec).
"""

from __future__ import annotations

import base64
import copy
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from reconciler_sandbox.core import Request, Response
from reconciler_sandbox.zendesk_http import Caller, cursor_page, webhook_error
from reconciler_sandbox.zendesk_state import Instance, new_signing_secret

if TYPE_CHECKING:
    from reconciler_sandbox.zendesk import ZendeskService

REQUIRED = ("name", "endpoint", "http_method", "request_format", "status", "subscriptions")
CHOICES = {
    "http_method": ("GET", "POST", "PUT", "PATCH", "DELETE"),
    "request_format": ("json", "xml", "form_encoded"),
    "status": ("active", "inactive"),
}
AUTH_FIELDS = {"basic_auth": ("username", "password"), "bearer_token": ("token",), "api_key": ("name", "value")}
WRITABLE = ("name", "description", "endpoint", "http_method", "request_format", "status", "subscriptions",
            "authentication", "custom_headers")
# The order the recordings show fields in.
ORDER = ("id", "name", "description", "status", "subscriptions", "created_at", "created_by", "updated_at",
         "updated_by", "endpoint", "http_method", "request_format", "custom_headers", "external_source",
         "authentication")


def webhook_json(hook: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ORDER:
        if key in hook and hook[key] is not None:
            out[key] = copy.deepcopy(hook[key])
    auth = hook.get("authentication")
    if auth:
        shown: dict[str, Any] = {"type": auth["type"]}
        if auth["type"] == "basic_auth":
            shown["data"] = {"username": auth["data"].get("username")}
        elif auth["type"] == "api_key":
            shown["data"] = {"name": auth["data"].get("name")}
        shown["add_position"] = auth.get("add_position", "header")
        out["authentication"] = shown
    return out


def outgoing_headers(hook: dict[str, Any]) -> dict[str, str]:
    """The headers a delivery of this webhook carries for its credential and custom headers."""
    headers = {str(k): str(v) for k, v in (hook.get("custom_headers") or {}).items()}
    auth = hook.get("authentication")
    if auth:
        data = auth["data"]
        if auth["type"] == "basic_auth":
            pair = f"{data.get('username', '')}:{data.get('password', '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif auth["type"] == "bearer_token":
            headers["Authorization"] = f"Bearer {data.get('token', '')}"
        elif auth["type"] == "api_key":
            headers[str(data.get("name", ""))] = str(data.get("value", ""))
    return headers


def _not_found(webhook_id: str) -> Exception:
    return webhook_error(404, "WebhookNotFound", "Webhook not found", f"Webhook {webhook_id} not found")


def _invalid(field: str, detail: str) -> Exception:
    error = webhook_error(400, "InvalidValue", "Invalid value", detail)
    error.body["errors"][0]["source"] = {"pointer": f"/webhook/{field}"}
    return error


def _hook(caller: Caller, webhook_id: str) -> dict[str, Any]:
    hook = caller.instance.find(caller.instance.webhooks, webhook_id)
    if hook is None:
        raise _not_found(webhook_id)
    return hook


def _body(request: Request, *, required: bool = True) -> dict[str, Any]:
    body = request.json()
    webhook = body.get("webhook") if isinstance(body, dict) else None
    if webhook is None and not required:
        return {}
    if not isinstance(webhook, dict):
        raise _invalid("", "The request body must be an object with a 'webhook' object")
    return webhook


def _authentication(value: Any, current: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in AUTH_FIELDS:
        raise _invalid("authentication/type", "authentication.type must be basic_auth, bearer_token or api_key")
    data = value.get("data") or {}
    if not isinstance(data, dict):
        raise _invalid("authentication/data", "authentication.data must be an object")
    if current and current.get("type") == value["type"]:
        data = {**current["data"], **data}  # e.g. PATCH a new password, keep the username
    missing = [f for f in AUTH_FIELDS[value["type"]] if not data.get(f)]
    if missing:
        raise _invalid(f"authentication/data/{missing[0]}", f"authentication.data.{missing[0]} is required "
                                                             f"for {value['type']}")
    position = value.get("add_position", "header")
    if position != "header":
        raise _invalid("authentication/add_position", "authentication.add_position must be header")
    return {"type": value["type"], "data": {f: data[f] for f in AUTH_FIELDS[value["type"]]}, "add_position": position}


def _validate(hook: dict[str, Any]) -> None:
    for field in REQUIRED:
        if hook.get(field) in (None, "", []):
            raise _invalid(field, f"{field} is required")
    for field, allowed in CHOICES.items():
        if hook[field] not in allowed:
            raise _invalid(field, f"{field} must be one of {', '.join(allowed)}")
    if not str(hook["endpoint"]).startswith(("http://", "https://")):
        raise _invalid("endpoint", "endpoint must be an http(s) URL")
    if not isinstance(hook["subscriptions"], list):
        raise _invalid("subscriptions", "subscriptions must be a list")
    if hook.get("custom_headers") is not None and not isinstance(hook["custom_headers"], dict):
        raise _invalid("custom_headers", "custom_headers must be an object")


def _stamp(inst: Instance, hook: dict[str, Any], caller: Caller) -> None:
    hook["updated_at"] = inst.now()
    hook["updated_by"] = str(caller.user["id"])


# --- handlers --------------------------------------------------------------------------------


def list_webhooks(caller: Caller, request: Request) -> Response:
    hooks = list(caller.instance.webhooks)
    needle = (request.arg("filter[name_contains]") or "").lower()
    if needle:
        hooks = [h for h in hooks if needle in h["name"].lower()]
    if request.arg("filter[status]"):
        hooks = [h for h in hooks if h["status"] == request.arg("filter[status]")]
    hooks.sort(key=lambda h: h["id"], reverse=True)  # newest first, as recorded
    sort = request.arg("sort") or ""
    if sort.lstrip("-") in ("name", "status"):
        hooks.sort(key=lambda h: (h[sort.lstrip("-")], h["id"]), reverse=sort.startswith("-"))
    body = cursor_page(request, hooks, "webhooks")  # pages by `id`, then shapes only the page's hooks
    body["webhooks"] = [webhook_json(h) for h in body["webhooks"]]
    return Response(200, body)


def show_webhook(caller: Caller, request: Request) -> Response:
    return Response(200, {"webhook": webhook_json(_hook(caller, request.params["id"]))})


def create_webhook(caller: Caller, request: Request) -> Response:
    inst = caller.instance
    source_id = request.arg("clone_webhook_id")
    if source_id:
        source = _hook(caller, source_id)
        hook = {k: copy.deepcopy(v) for k, v in source.items()
                if k not in ("id", "created_at", "created_by", "updated_at", "updated_by", "signing_secret",
                             "invocations", "external_source")}
        hook["name"] = f"{source['name']} (copy)"
    else:
        given = _body(request)
        hook = {k: copy.deepcopy(given[k]) for k in WRITABLE if given.get(k) is not None and k != "authentication"}
        auth = _authentication(given.get("authentication"), None)
        if auth:
            hook["authentication"] = auth
        _validate(hook)
    hook.update(id=inst.new_ulid(), created_at=inst.now(), created_by=str(caller.user["id"]),
                signing_secret={"secret": new_signing_secret(), "algorithm": "SHA256"}, invocations=[])
    inst.remember_webhook(hook)
    inst.webhooks.append(hook)
    return Response(201, {"webhook": webhook_json(hook)})


def replace_webhook(caller: Caller, request: Request) -> Response:
    """PUT: the given object replaces every writable field; what is left out is gone."""
    inst = caller.instance
    hook = _hook(caller, request.params["id"])
    given = _body(request)
    new = {k: copy.deepcopy(given[k]) for k in WRITABLE if given.get(k) is not None and k != "authentication"}
    auth = _authentication(given.get("authentication"), None)
    if auth:
        new["authentication"] = auth
    new.setdefault("subscriptions", hook["subscriptions"])  # zenpy's recorded PUT leaves them out
    _validate(new)
    for key in WRITABLE:
        hook.pop(key, None)
    hook.update(new)
    _stamp(inst, hook, caller)
    inst.remember_webhook(hook)
    return Response(204)


def patch_webhook(caller: Caller, request: Request) -> Response:
    """PATCH: only the given fields change; a field given as null is removed."""
    inst = caller.instance
    hook = _hook(caller, request.params["id"])
    given = _body(request)
    new = copy.deepcopy(hook)
    for key in WRITABLE:
        if key not in given:
            continue
        if given[key] is None:
            new.pop(key, None)
        elif key == "authentication":
            new["authentication"] = _authentication(given[key], hook.get("authentication"))
        elif key == "custom_headers" and isinstance(given[key], dict):
            merged = {**(hook.get("custom_headers") or {}), **given[key]}
            new["custom_headers"] = {k: v for k, v in merged.items() if v is not None}
        else:
            new[key] = copy.deepcopy(given[key])
    _validate(new)
    hook.clear()
    hook.update(new)
    _stamp(inst, hook, caller)
    inst.remember_webhook(hook)
    return Response(204)


def delete_webhook(caller: Caller, request: Request) -> Response:
    caller.instance.webhooks.remove(_hook(caller, request.params["id"]))
    return Response(204)


def show_signing_secret(caller: Caller, request: Request) -> Response:
    return Response(200, {"signing_secret": dict(_hook(caller, request.params["id"])["signing_secret"])})


def reset_signing_secret(caller: Caller, request: Request) -> Response:
    hook = _hook(caller, request.params["id"])
    hook["signing_secret"] = {"secret": new_signing_secret(), "algorithm": "SHA256"}
    caller.instance.remember(hook["signing_secret"]["secret"])
    return Response(201, {"signing_secret": dict(hook["signing_secret"])})


def list_invocations(caller: Caller, request: Request) -> Response:
    hook = _hook(caller, request.params["id"])
    items = [{k: v for k, v in inv.items() if k != "attempts"} for inv in hook.get("invocations", [])]
    return Response(200, cursor_page(request, items, "invocations"))


def list_attempts(caller: Caller, request: Request) -> Response:
    hook = _hook(caller, request.params["id"])
    for inv in hook.get("invocations", []):
        if inv["id"] == request.params["invocation_id"]:
            return Response(200, {"attempts": copy.deepcopy(inv.get("attempts", []))})
    return Response(404, {"errors": [{"code": "InvocationNotFound", "title": "Invocation not found",
                                      "detail": f"Invocation {request.params['invocation_id']} not found"}]})


def test_webhook(caller: Caller, request: Request) -> Response:
    """Send (or, off loopback, pretend to send) one request as the webhook would.

    An endpoint on 127.0.0.1 (another sandbox, say the GitLab one) really receives it, with the
    webhook's credential: the end-to-end proof that a delivered value works. Other endpoints get
    a synthetic 200; the sandbox never reaches the internet. Each attempt is kept in the
    instance's `deliveries` (with the credential: state only, never over HTTP).
    """
    inst = caller.instance
    body = request.json()
    overrides = body.get("request") if isinstance(body, dict) and isinstance(body.get("request"), dict) else {}
    base: dict[str, Any] = {}
    if request.arg("webhook_id"):
        base = copy.deepcopy(_hook(caller, request.arg("webhook_id") or ""))
    target = {**base, **{k: v for k, v in overrides.items() if k in ("endpoint", "http_method", "request_format")}}
    if not target.get("endpoint"):
        raise _invalid("endpoint", "endpoint is required")
    headers = outgoing_headers(target)
    headers.update({str(h.get("key")): str(h.get("value")) for h in overrides.get("headers", []) or []
                    if isinstance(h, dict)})
    method = str(target.get("http_method") or "POST")
    status, answer_headers, payload = 200, [{"key": "Content-Type", "value": "text/plain"}], ""
    split = urlsplit(str(target["endpoint"]))
    own = urlsplit(request.base_url)
    if split.hostname in ("127.0.0.1", "localhost") and split.port != own.port:
        try:
            answer = requests.request(method, str(target["endpoint"]), headers=headers,
                                      data=str(overrides.get("payload", "")), timeout=5)
            status, payload = answer.status_code, answer.text
            answer_headers = [{"key": k, "value": v} for k, v in answer.headers.items()]
        except requests.RequestException as exc:
            status, payload = 0, type(exc).__name__
    inst.deliveries.append({"webhook_id": base.get("id"), "endpoint": target["endpoint"], "method": method,
                            "headers": headers, "status_code": status, "at": inst.now()})
    return Response(200, {"response": {"headers": answer_headers, "status_code": status, "payload": payload}})


def register(service: ZendeskService) -> None:
    api = service.api
    for method, template, handler in (
        ("GET", "/api/v2/webhooks{.json}", list_webhooks),
        ("POST", "/api/v2/webhooks{.json}", create_webhook),
        ("POST", "/api/v2/webhooks/test{.json}", test_webhook),
        ("GET", "/api/v2/webhooks/{id}{.json}", show_webhook),
        ("PUT", "/api/v2/webhooks/{id}{.json}", replace_webhook),
        ("PATCH", "/api/v2/webhooks/{id}{.json}", patch_webhook),
        ("DELETE", "/api/v2/webhooks/{id}{.json}", delete_webhook),
        ("GET", "/api/v2/webhooks/{id}/signing_secret{.json}", show_signing_secret),
        ("POST", "/api/v2/webhooks/{id}/signing_secret{.json}", reset_signing_secret),
        ("GET", "/api/v2/webhooks/{id}/invocations{.json}", list_invocations),
        ("GET", "/api/v2/webhooks/{id}/invocations/{invocation_id}/attempts{.json}", list_attempts),
    ):
        api(method, template, handler, resource="webhooks", write=None if handler is not test_webhook else True)
