"""The shape of a provider's answer, checked once where it arrives, so a kind reads its rows
without guarding each field.

A provider answer is input too: a row without its `id`, a timestamp that is not one, `scopes`
that is not a list. `checked` wraps a fetcher so that such an answer becomes a `FetchError` for
its list (the tokens and consumers that need the list show it as their error in the plan, as for a
404) instead of a KeyError or TypeError later in a kind. A field is checked by its name wherever it
appears (both providers name their fields alike); an absent or null field is fine unless the
resource requires it. Messages name the row and field, never a value: a row may hold a credential.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

import requests

from reconciler.kinds import FetchError
from reconciler.observed import parse_date, parse_time

Check = Callable[[object], bool]
MALFORMED = 0  # the FetchError status of an answer of the wrong shape: no HTTP status describes it


def _text(value: object) -> bool:
    return isinstance(value, str)


def _number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ident(value: object) -> bool:
    return _number(value) or (isinstance(value, str) and value != "")


def _flag(value: object) -> bool:
    return isinstance(value, bool)


def _moment(value: object) -> bool:
    """An ISO timestamp or date that both readers accept (GitLab's dates and Zendesk's times)."""
    if isinstance(value, date):  # a client library may have parsed it already
        return True
    if not isinstance(value, str):
        return False
    try:
        parse_time(value), parse_date(value)
    except (ValueError, OverflowError):
        return False
    return True


def _texts(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _object(fields: Mapping[str, Check] | None = None) -> Check:
    """A JSON object whose named fields, when present and not null, pass their checks."""

    def check(value: object) -> bool:
        return isinstance(value, dict) and _field_problem(value, fields or {}) is None

    return check


def _objects(fields: Mapping[str, Check] | None = None) -> Check:
    one = _object(fields)
    return lambda value: isinstance(value, list) and all(one(v) for v in value)


FIELDS: dict[str, Check] = {
    **dict.fromkeys(("id", "user_id", "client_id", "app_id"), _ident),
    **dict.fromkeys(("name", "description", "identifier", "key", "username", "environment_scope",
                     "variable_type", "status", "url", "full_path", "path_with_namespace"), _text),
    **dict.fromkeys(("created_at", "updated_at", "expires_at", "last_used_at", "last_used", "used_at"), _moment),
    **dict.fromkeys(("active", "revoked", "hidden", "masked", "protected", "raw", "token_present"), _flag),
    "scopes": _texts,
    "access_level": _number,
    "owner": _object({"id": _ident}),
    "authentication": _object({"type": _text, "data": _object({"username": _text})}),
    "app": _object({"id": _ident, "name": _text, "parameters": _objects({"name": _text, "secure": _flag})}),
    "settings": _object(),
    "url_variables": _objects({"key": _text}),
    "custom_headers": _objects({"key": _text}),
}


def _field_problem(row: Mapping[str, Any], fields: Mapping[str, Check]) -> str | None:
    for name, check in fields.items():
        value = row.get(name)
        if value is not None and not check(value):
            return f"`{name}` has the wrong type"
    return None


def shape_problem(data: object, many: bool, required: tuple[str, ...] = ("id",)) -> str | None:
    """What is wrong with an answer (a list of rows when `many`, else one row), or None."""
    if many and not isinstance(data, list):
        return "not a list"
    found: list[object] = data if isinstance(data, list) and many else [data]
    for index, row in enumerate(found):
        where = f"row {index + 1}: " if many else ""
        if not isinstance(row, dict):
            return f"{where}not an object"
        missing = [name for name in required if row.get(name) is None]
        if missing:
            return f"{where}no `{missing[0]}`"
        problem = _field_problem(row, FIELDS)
        if problem:
            return where + problem
    return None


def checked(fetch: Callable[[Any, str], Any], many: bool = True,
            required: tuple[str, ...] = ("id",)) -> Callable[[Any, str], Any]:
    """`fetch`, with an answer of the wrong shape as a FetchError. HTTP and connection failures
    still raise for the caller to classify; a lookup, type or value error while the fetcher
    reshapes the answer is the answer's shape too."""

    def run(api: Any, scope: str) -> Any:
        try:
            data = fetch(api, scope)
            problem = None if isinstance(data, FetchError) else shape_problem(data, many, required)
        except (LookupError, TypeError, AttributeError, ValueError) as exc:
            if isinstance(exc, requests.RequestException):  # an undecodable body: the client's to classify
                raise
            problem = f"{type(exc).__name__} while reading it"
        if problem is None:
            return data
        return FetchError(MALFORMED, f"the provider's answer is malformed ({problem})")

    run.__name__ = getattr(fetch, "__name__", "fetch")
    run.__doc__ = fetch.__doc__
    return run
