"""Zendesk app installations: list (with `include=app`), show, update.

Decided where Zendesk's docs are silent (reference/zendesk-api.md section 3, [uncertain] there):
- PUT merges the given `settings` into the existing ones (so updating one setting keeps the
  others, the behaviour a credential consumer depends on; say so if the real API differs).
- Settings the app declares `secure` are not returned by GET (neither in `settings` nor in
  `settings_objects`); they are readable only through the test hook `secure_setting`.
- `include=app` side-loads a top-level `apps` array, Zendesk's usual side-loading shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from reconciler_sandbox.core import Request, Response
from reconciler_sandbox.zendesk_http import Caller, invalid_field, not_found
from reconciler_sandbox.zendesk_state import Instance

if TYPE_CHECKING:
    from reconciler_sandbox.zendesk import ZendeskService


def app_json(app: dict[str, Any]) -> dict[str, Any]:
    return {"id": app["id"], "name": app["name"], "parameters": [dict(p) for p in app["parameters"]]}


def installation_json(inst: Instance, record: dict[str, Any]) -> dict[str, Any]:
    secure = inst.secure_names(record)
    settings = {k: v for k, v in record["settings"].items() if k not in secure}
    updated = datetime.fromisoformat(record["updated_at"].replace("Z", "+00:00"))
    return {
        "id": record["id"],
        "app_id": record["app_id"],
        "product": "support",
        "settings": settings,
        "settings_objects": [{"name": k, "value": v} for k, v in settings.items()],
        "enabled": record["enabled"],
        "collapsible": True,
        "group_restrictions": [],
        "role_restrictions": None,
        "has_incomplete_subscription": False,
        "has_unpaid_subscription": None,
        "paid": None,
        "pending_installation": False,
        "plan_information": {"name": None},
        "recurring_payment": False,
        "redirect_path": "/support/apps/manage",
        "servable": True,
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "updated": updated.strftime("%Y%m%d%H%M%S"),
    }


def list_installations(caller: Caller, request: Request) -> Response:
    inst = caller.instance
    body: dict[str, Any] = {"installations": [installation_json(inst, r) for r in inst.installations]}
    if "app" in (request.arg("include") or "").split(","):
        used = {r["app_id"] for r in inst.installations}
        body["apps"] = [app_json(a) for a in inst.apps if a["id"] in used]
    return Response(200, body)


def _installation(caller: Caller, request: Request) -> dict[str, Any]:
    record = caller.instance.find(caller.instance.installations, request.params["id"])
    if record is None:
        raise not_found()
    return record


def show_installation(caller: Caller, request: Request) -> Response:
    return Response(200, installation_json(caller.instance, _installation(caller, request)))


def update_installation(caller: Caller, request: Request) -> Response:
    """`{"settings": {...}, "enabled": bool}` at the top level, as the docs' curl example sends
    it (an `installation` wrapper is accepted too); `settings` wins over `settings_objects`."""
    inst = caller.instance
    record = _installation(caller, request)
    body = request.json()
    if isinstance(body, dict) and isinstance(body.get("installation"), dict):
        body = body["installation"]
    if not isinstance(body, dict):
        raise invalid_field("settings", "Settings: must be an object")
    given: dict[str, Any] = {}
    objects = body.get("settings_objects") or []
    if not isinstance(objects, list) or not all(isinstance(o, dict) and "name" in o for o in objects):
        raise invalid_field("settings_objects", "Settings objects: must be a list of {name, value}")
    given.update({o["name"]: o.get("value") for o in objects})
    settings = body.get("settings", {})
    if not isinstance(settings, dict):
        raise invalid_field("settings", "Settings: must be an object")
    given.update(settings)
    if not given and "enabled" not in body:
        raise invalid_field("settings", "You must specify at least one installation setting value in settings")
    if "name" in given and not str(given["name"] or "").strip():
        raise invalid_field("settings.name", "Name: cannot be blank")
    if inst.settings_put == "replace":
        record["settings"] = dict(given)  # see Instance.settings_put
    else:
        record["settings"].update(given)
    if "enabled" in body:
        record["enabled"] = bool(body["enabled"])
    record["updated_at"] = inst.now()
    inst.remember(*(v for k, v in given.items() if k in inst.secure_names(record)))
    return Response(200, installation_json(inst, record))


def register(service: ZendeskService) -> None:
    service.api("GET", "/api/v2/apps/installations{.json}", list_installations, resource="apps", role="agent")
    service.api("GET", "/api/v2/apps/installations/{id}{.json}", show_installation, resource="apps", role="agent")
    service.api("PUT", "/api/v2/apps/installations/{id}{.json}", update_installation, resource="apps")
