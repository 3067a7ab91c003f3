"""What every Zendesk sandbox endpoint shares: error shapes, the caller, scopes, pagination.

Error shapes (sources cited where they are not obvious):
- Support API (OAuth, API tokens, apps): `{"error": ..., "description": ..., "details": ...}`
  (developer.zendesk.com/api-reference/introduction/requests; recorded
  `{"error":"RecordNotFound","description":"Not found"}`).
- Webhooks API: `{"errors": [{"code", "title", "detail"}]}`, as the webhooks spec
  (oracles/specs/zendesk-webhooks.yaml, e.g. WebhookLimitExceeded) documents for 400/403/404.
- 401 with Basic credentials: `{"error":"Couldn't authenticate you"}` with
  `WWW-Authenticate: Basic realm="Web Password"` (seen in Speedygeek/ZendeskApi_v2#505 and
  happyfoxinc/helpstack-android#38).
- 401 with a bad Bearer token: `{"error":"invalid_token","error_description":"The access token
  provided is expired, revoked, malformed or invalid for other reasons."}` (fprimex/zdesk#58).
- 403: `{"error":"Forbidden","description":"You do not have access to this page. Please contact
  the account owner of this help desk for further help."}` (facetoe/zenpy#336).
- 429: text/plain "Number of allowed API requests per minute exceeded" with Retry-After
  (airbytehq/airbyte#11035, arduino/help-center-content#15).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from reconciler_sandbox.core import HTTPError, Request
from reconciler_sandbox.zendesk_state import Instance

FORBIDDEN_TEXT = ("You do not have access to this page. Please contact the account owner of this help desk "
                  "for further help.")
INVALID_TOKEN_TEXT = ("The access token provided is expired, revoked, malformed or invalid for other reasons.")
RATE_LIMITED_TEXT = "Number of allowed API requests per minute exceeded"
MAX_PAGE_SIZE = 100


def support_error(status: int, error: str, description: str | None = None,
                  details: dict[str, Any] | None = None) -> HTTPError:
    body: dict[str, Any] = {"error": error}
    if description is not None:
        body["description"] = description
    if details is not None:
        body["details"] = details
    return HTTPError(status, body)


def not_found() -> HTTPError:
    return support_error(404, "RecordNotFound", "Not found")


def record_invalid(details: dict[str, list[dict[str, str]]]) -> HTTPError:
    return support_error(422, "RecordInvalid", "Record validation errors", details)


def invalid_field(field: str, message: str) -> HTTPError:
    return record_invalid({field: [{"description": message, "error": "InvalidValue"}]})


def forbidden() -> HTTPError:
    return support_error(403, "Forbidden", FORBIDDEN_TEXT)


def webhook_error(status: int, code: str, title: str, detail: str) -> HTTPError:
    return HTTPError(status, {"errors": [{"code": code, "title": title, "detail": detail}]})


@dataclass
class Caller:
    """Who is calling, and with what credential."""

    instance: Instance
    user: dict[str, Any]
    scopes: list[str] | None  # None: an API token, which is not scoped
    oauth_token: dict[str, Any] | None = None

    @property
    def is_admin(self) -> bool:
        return self.user["role"] == "admin"


def scope_allows(scopes: list[str] | None, resource: str | None, write: bool) -> bool:
    """OAuth scopes: `read`, `write`, `resource:read`, `resource:write`, or a bare `resource`
    (read and write). Write does not include read (Zendesk's OAuth token docs, "Scopes")."""
    if scopes is None:
        return True
    need = "write" if write else "read"
    for scope in scopes:
        if scope == need:
            return True
        name, _, access = scope.partition(":")
        if resource and name == resource and access in ("", need):
            return True
    return False


# --- cursor pagination ------------------------------------------------------------------------


def encode_cursor(item_id: Any) -> str:
    # Zendesk's cursors are base64 of "<id>,desc" (seen in the recorded invocation pages).
    return base64.urlsafe_b64encode(f"{item_id},desc".encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.urlsafe_b64decode(padded.encode()).decode().split(",")[0]
    except (ValueError, UnicodeDecodeError) as exc:
        raise support_error(400, "InvalidPaginationParameter", "page[after] or page[before] is not a valid cursor") \
            from exc


def page_size(request: Request, default: int | None) -> int | None:
    raw = request.arg("page[size]")
    if raw is None:
        return default
    try:
        size = int(raw)
    except ValueError:
        raise support_error(400, "InvalidPaginationParameter", "page[size] must be an integer") from None
    if size < 1 or size > MAX_PAGE_SIZE:
        raise support_error(400, "InvalidPaginationParameter", f"page[size] must be between 1 and {MAX_PAGE_SIZE}")
    return size


def cursor_page(request: Request, items: list[dict[str, Any]], key: str, *,
                default_size: int | None = MAX_PAGE_SIZE) -> dict[str, Any]:
    """One page of `items` in Zendesk's cursor shape.

    Matches the recordings: `meta.has_more` always; `after_cursor` and `links.next` only when
    there is more; `before_cursor` and `links.prev` only after the first page; no `links` at all
    on a single complete page requested without `page[size]`. Links are absolute, on the
    sandbox's own base URL, because zenpy follows `links.next` verbatim.
    """
    size = page_size(request, default_size) or max(len(items), 1)
    ids = [str(item["id"]) for item in items]
    start = 0
    if request.arg("page[after]"):
        anchor = decode_cursor(request.arg("page[after]") or "")
        start = ids.index(anchor) + 1 if anchor in ids else len(items)
    elif request.arg("page[before]"):
        anchor = decode_cursor(request.arg("page[before]") or "")
        end = ids.index(anchor) if anchor in ids else 0
        start = max(0, end - size)
    page = items[start:start + size]
    has_more = start + size < len(items)
    meta: dict[str, Any] = {"has_more": has_more}
    links: dict[str, str] = {}
    keep = [(k, v) for k, vs in request.query.items() if not k.startswith("page[") for v in vs]
    if request.arg("page[size]"):
        keep.append(("page[size]", str(size)))

    def link(direction: str, cursor: str) -> str:
        params = keep + [(f"page[{direction}]", cursor)]
        query = "&".join(f"{k}={quote(v, safe='=,:')}" for k, v in params)
        return f"{request.base_url}{request.raw_path}?{query}"

    if page and start > 0:
        meta["before_cursor"] = encode_cursor(page[0]["id"])
        links["prev"] = link("before", meta["before_cursor"])
    if page and has_more:
        meta["after_cursor"] = encode_cursor(page[-1]["id"])
        links["next"] = link("after", meta["after_cursor"])
    body: dict[str, Any] = {"meta": meta, key: page}
    if links or request.arg("page[size]"):
        body["links"] = links
    return body


def offset_page(request: Request, items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Offset pagination (what Support API lists answer without `page[size]`)."""
    try:
        per_page = min(int(request.arg("per_page") or MAX_PAGE_SIZE), MAX_PAGE_SIZE)
        page = max(int(request.arg("page") or 1), 1)
    except ValueError:
        raise support_error(400, "InvalidPaginationParameter", "page and per_page must be integers") from None
    start = (page - 1) * per_page
    base = f"{request.base_url}{request.raw_path}"
    more = start + per_page < len(items)
    return {
        key: items[start:start + per_page],
        "next_page": f"{base}?page={page + 1}&per_page={per_page}" if more else None,
        "previous_page": f"{base}?page={page - 1}&per_page={per_page}" if page > 1 else None,
        "count": len(items),
    }


def list_page(request: Request, items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Cursor pagination when `page[size]` (or a cursor) is given, offset pagination otherwise."""
    if any(k.startswith("page[") for k in request.query):
        return cursor_page(request, items, key)
    return offset_page(request, items, key)
