"""Provider answers are input: a malformed one (a row without its id, a timestamp that is not one,
a list where an object belongs) is an error for the tokens that need it, never a traceback.

Two parts. Over real HTTP, a canned server answers what a broken or hostile provider might, and
the real clients and fetchers read it (`fetch_list`, as observe calls it). Without HTTP, hypothesis
feeds random JSON-like answers to every fetcher (standing in for the client library's calls) and
then to every kind of the example inventory: whatever the provider says, observing never raises.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reconciler.clients import Endpoints, GitLabApi, ZendeskApi
from reconciler.inventory import load_inventory
from reconciler.inventory.model import GitLabProvider, Inventory, ZendeskProvider
from reconciler.inventory.yamlload import load_document
from reconciler.kinds import FetchError, ListKey, consumer_kind, source_kind
from reconciler.kinds._gitlab import FETCHERS as GITLAB_FETCHERS
from reconciler.kinds._zendesk import FETCHERS as ZENDESK_FETCHERS
from reconciler.observe import fetch_list, needed_keys
from reconciler.secret import Secret

ROOT = Path(__file__).resolve().parents[2]
ZD_TOKEN = "0" * 64
GL_TOKEN = "glpat-" + "x" * 24


class Canned(ThreadingHTTPServer):
    answers: dict[str, Any]


class _Handler(BaseHTTPRequestHandler):
    server: Canned

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
        path = self.path.split("?", 1)[0]
        found = path in self.server.answers
        body = json.dumps(self.server.answers.get(path, {"message": "404 Not Found"})).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[Canned]:
    server = Canned(("127.0.0.1", 0), _Handler)
    server.answers = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def zendesk_api(server: Canned) -> ZendeskApi:
    provider = ZendeskProvider(name="zd", subdomain="acme", oauth_token_env="ZD_TOKEN")
    return ZendeskApi(provider, Secret(ZD_TOKEN), endpoints=Endpoints(zendesk_netloc=f"127.0.0.1:{server.server_port}"))


def gitlab_api(server: Canned) -> GitLabApi:
    provider = GitLabProvider(name="gl", url="https://gitlab.example", token_env="GL_TOKEN")
    return GitLabApi(provider, Secret(GL_TOKEN), url=f"http://127.0.0.1:{server.server_port}", timeout=5)


def test_a_zendesk_answer_without_user_id_is_an_error_for_the_token(canned: Canned) -> None:
    """`plan` raised KeyError: 'user_id' from the credential's own token when the answer lacked it."""
    canned.answers["/api/v2/oauth/tokens/current.json"] = {"token": {"id": 7, "scopes": ["read"]}}
    found = fetch_list(zendesk_api(canned), ListKey("zd", "user"))
    assert isinstance(found, FetchError)
    assert found.message.startswith("the provider's answer is malformed")


def test_a_gitlab_token_row_without_id_is_an_error_not_a_key_error(canned: Canned) -> None:
    canned.answers["/api/v4/projects/support%2Fsync/access_tokens"] = [
        {"id": 1, "name": "fine", "scopes": ["api"], "created_at": "2026-01-01T00:00:00Z"},
        {"name": "sync", "scopes": ["api"]},
    ]
    found = fetch_list(gitlab_api(canned), ListKey("gl", "project_access_tokens", "support/sync"))
    assert found == FetchError(0, "the provider's answer is malformed (row 2: no `id`)")


def test_ill_typed_fields_are_named_and_their_values_are_not_said(canned: Canned) -> None:
    canned.answers["/api/v4/projects/support%2Fsync/access_tokens"] = [
        {"id": 1, "name": "sync", "scopes": "api-SENSITIVE", "created_at": "2026-01-01T00:00:00Z"}]
    canned.answers["/api/v2/oauth/tokens.json"] = {"tokens": [{"id": 2, "created_at": "yesterday-SENSITIVE"}]}
    gitlab = fetch_list(gitlab_api(canned), ListKey("gl", "project_access_tokens", "support/sync"))
    zendesk = fetch_list(zendesk_api(canned), ListKey("zd", "oauth_tokens"))
    assert gitlab == FetchError(0, "the provider's answer is malformed (row 1: `scopes` has the wrong type)")
    assert zendesk == FetchError(0, "the provider's answer is malformed (row 1: `created_at` has the wrong type)")


def test_a_list_of_non_objects_is_an_error_too(canned: Canned) -> None:
    canned.answers["/api/v2/api_tokens.json"] = {"api_tokens": ["abc", 5]}
    canned.answers["/api/v2/apps/installations.json"] = {"installations": [{"id": 1, "settings": ["x"]}]}
    api = zendesk_api(canned)
    for resource in ("api_tokens", "installations"):
        found = fetch_list(api, ListKey("zd", resource))
        assert isinstance(found, FetchError) and "malformed" in found.message, resource


def test_a_well_formed_answer_passes_unchanged(canned: Canned) -> None:
    rows = [{"id": 1, "name": "sync", "scopes": ["api"], "created_at": "2026-01-01T00:00:00.000Z",
             "expires_at": "2026-12-01", "active": True, "revoked": False, "access_level": 40, "user_id": 9}]
    canned.answers["/api/v4/projects/support%2Fsync/access_tokens"] = rows
    assert fetch_list(gitlab_api(canned), ListKey("gl", "project_access_tokens", "support/sync")) == rows


# --- random answers to every fetcher and kind, without HTTP ------------------------------------

NESTED = {"settings", "url_variables", "custom_headers", "tokens", "clients", "installations", "apps", "api_tokens",
          "user", "links", "meta", "data", "parameters"}  # anything in them, in ROW only
FIELD_NAMES = sorted({
    "id", "user_id", "client_id", "app_id", "name", "description", "identifier", "key", "username", "value",
    "token", "endpoint", "environment_scope", "status", "url", "full_path", "path_with_namespace", "created_at",
    "updated_at", "expires_at", "last_used_at", "last_used", "used_at", "active", "revoked", "hidden", "masked",
    "protected", "scopes", "access_level", "owner", "authentication", "type", "data", "app", "settings",
    "parameters", "secure", "url_variables", "custom_headers", "token_present", "tokens", "clients",
    "installations", "apps", "api_tokens", "user", "links", "meta", "has_more", "next",
})
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
           | st.text(max_size=12)
           | st.sampled_from(["2026-11-22T12:00:00Z", "2026-12-01", "2026-02-30", "9999-12-31T23:59:59-23:59",
                              "sync", "api", "support/sync", "1", "", "Notify"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=5), max_leaves=8)


def _texts(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set().union(*map(_texts, value.values()), set(value)) if value else set()
    if isinstance(value, list):
        return set().union(*map(_texts, value)) if value else set()
    return {value} if isinstance(value, str) else set()


# Most fields get a plausible value (names, keys and identifiers of the example inventory, so rows
# match its tokens and the kinds read them further), the rest anything.
_TOKENS = load_document(ROOT / "inventory").data["tokens"]
INVENTORY_TEXTS = st.sampled_from(sorted(_texts(_TOKENS)))
SOURCE_TEXTS = st.sampled_from(sorted({str(token["source"].get(field)) for token in _TOKENS.values()
                                       for field in ("name", "description", "client")} - {"None"}))
IDS = st.integers(1, 3) | st.sampled_from(["1", "2"])
TIMES = st.sampled_from(["2026-11-22T12:00:00Z", "2026-12-01", "2025-01-01T00:00:00.000+02:00"])
PLAUSIBLE: dict[str, Any] = {
    **dict.fromkeys(("id", "user_id", "client_id", "app_id"), IDS),
    **dict.fromkeys(("created_at", "updated_at", "expires_at", "last_used_at", "last_used", "used_at"), TIMES),
    **dict.fromkeys(("active", "revoked", "hidden", "masked", "protected", "secure", "token_present"),
                    st.booleans()),
    **dict.fromkeys(("name", "description", "identifier"), SOURCE_TEXTS),
    "scopes": st.lists(INVENTORY_TEXTS | st.sampled_from(["api", "read", "write"]), max_size=3),
    "access_level": st.sampled_from([30, 40, 50]),
    "owner": st.fixed_dictionaries({"id": IDS}),
    "authentication": st.fixed_dictionaries({"type": st.sampled_from(["bearer_token", "basic_auth"])}),
    "app": st.fixed_dictionaries({"name": SOURCE_TEXTS | INVENTORY_TEXTS, "parameters": st.just([])}),

    "value": st.builds(Secret, st.sampled_from(["glpat-" + "a" * 20, "x" * 40])),
    "token": st.builds(Secret, st.sampled_from(["glptt-" + "b" * 40, "short"])),
    "endpoint": st.builds(Secret, st.sampled_from(["https://example.com/hook?token=" + "c" * 40])),
}




def _value(name: str) -> Any:
    return PLAUSIBLE.get(name, INVENTORY_TEXTS)


ALWAYS = ("id", "key", "name", "description", "identifier", "full_path", "path_with_namespace")


def _clean(names: list[str]) -> Any:
    """A row of plausible values, with every field some resource requires."""
    return st.fixed_dictionaries({name: _value(name) for name in {*ALWAYS, *names} - NESTED})


CLEAN_ROW = st.lists(st.sampled_from(FIELD_NAMES), max_size=10, unique=True).flatmap(_clean)
ROW = st.lists(st.sampled_from(FIELD_NAMES), max_size=10, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: _value(name) | JSON for name in names}))
CLEAN_ROWS = st.lists(CLEAN_ROW, min_size=1, max_size=3)
ANSWER = st.one_of(CLEAN_ROWS, CLEAN_ROWS, st.lists(ROW, max_size=3), CLEAN_ROW, ROW, JSON)
FUZZ = settings(max_examples=40, derandomize=True, database=None, deadline=2000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class _Client:
    """Stands in for python-gitlab, zenpy and the Zendesk session: every call answers a draw."""

    def __init__(self, draw: Any) -> None:
        self.draw, self.gl, self.zenpy, self.webhooks, self.oauth = draw, self, self, self, True

    def http_list(self, path: str, **query: Any) -> Any:
        return self.draw(ANSWER)

    def http_get(self, path: str, **query: Any) -> Any:
        return self.draw(ANSWER)

    def get(self, path: str, params: Any = None) -> Any:
        return self.draw(ANSWER)

    def get_all(self, path: str, key: str, params: Any = None) -> Any:
        return self.draw(ANSWER)

    def list(self, **query: Any) -> Any:
        return self.draw(st.lists(ROW, max_size=3))


_EXAMPLE: list[Inventory] = []


def example() -> Inventory:
    if not _EXAMPLE:
        _EXAMPLE.append(load_inventory(ROOT / "inventory"))
    return _EXAMPLE[0]


def _fetch(inventory: Inventory, client: _Client, key: ListKey) -> Any:
    gitlab = inventory.providers[key.provider].kind == "gitlab"
    return (GITLAB_FETCHERS if gitlab else ZENDESK_FETCHERS)[key.resource](client, key.scope)


@FUZZ
@given(st.data())
def test_no_answer_makes_a_kind_raise(data: st.DataObject) -> None:
    inventory = example()
    tokens = sorted(inventory.tokens.values(), key=lambda t: t.name)
    client = _Client(data.draw)
    lists: dict[ListKey, Any] = {}
    for _ in range(4):  # the rounds observe makes
        for key in sorted(needed_keys(tokens, lists) - lists.keys()):
            lists[key] = _fetch(inventory, client, key)
    for token in tokens:
        if token.source.provider and source_kind(token.source.kind).observe(token, lists).current is not None:
            event(f"a live {token.source.kind} was read")
        for consumer in token.consumers:
            reading = consumer_kind(consumer.kind).observe(token, consumer, lists)
            if reading.observation.exists:
                event(f"a live {consumer.kind} was read")
            # the calls a write of it would need (a recreated hook's detail), as the pipeline makes them
            for key in consumer_kind(consumer.kind).write_needs(consumer, reading.observation):
                lists.setdefault(key, _fetch(inventory, client, key))
            consumer_kind(consumer.kind).observe_write(consumer, reading.observation, lists)
    for kind in sorted({t.source.kind for t in tokens}):
        source_kind(kind).unmanaged([t for t in tokens if t.source.kind == kind], lists)


@FUZZ
@given(st.sampled_from(sorted(GITLAB_FETCHERS.items()) + sorted(ZENDESK_FETCHERS.items())), st.data())
def test_every_fetcher_answers_data_or_a_fetch_error(item: tuple[str, Any], data: st.DataObject) -> None:
    _, fetch = item
    found = fetch(_Client(data.draw), "support/sync#1")
    assert isinstance(found, FetchError | list | dict)
    if isinstance(found, FetchError) and found.status == 0:
        assert found.message.startswith("the provider's answer is malformed (")
