"""The kinds' part of a scope scan, without HTTP: rows to scan records, places and the consumer
YAML they propose, credential shapes in held values; and that check, discover and scopes reach
kinds only through the registry (no kind name in them)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from reconciler.kinds import (
    AttributeWritable,
    Identifying,
    ListKey,
    ListVerifiable,
    Mintable,
    Readable,
    Recoverable,
    Recreatable,
    Renewable,
    Revocable,
    SourceKind,
    Strategy,
    Supplied,
    all_kinds,
    consumer_kind,
    source_kind,
)
from reconciler.kinds._discovery import (
    ExpiringSource,
    ScannedConsumer,
    ScannedSource,
    ScanScope,
    SunsetSource,
    declared_expiry,
    id_family,
    sunset,
    value_formats,
)
from reconciler.secret import Secret

ROOT = Path(__file__).resolve().parents[2] / "reconciler"
GITLAB = ScanScope("gl", "gitlab", users={"7": "reconcile-bot", "9": "alice"}, listed_users=("9",),
                   groups=("acme",), projects=("acme/app",))


def test_check_discover_and_scopes_name_no_kind():
    sources, consumers = all_kinds()
    # "external" is also a strategy (a person supplies the value), which check may name
    names = [k.kind for k in sources + consumers if k.kind not in get_args(Strategy)]
    for module in ("check.py", "discover.py", "scopes.py"):
        text = (ROOT / module).read_text()
        assert [n for n in names if f'"{n}"' in text or f"'{n}'" in text] == [], module


def test_every_source_kind_says_its_id_family_and_name():
    sources, _ = all_kinds()
    # abstract in SourceKind: a source kind that does not say them cannot be instantiated
    assert {"id_family", "display_name"} <= SourceKind.__abstractmethods__
    assert all(isinstance(k, SourceKind) and not type(k).__abstractmethods__ for k in sources)
    # PATs and resource access tokens are rows of one table: one id space
    assert id_family("gitlab_personal_access_token") == id_family("gitlab_project_access_token") \
        == id_family("gitlab_group_access_token") != id_family("gitlab_pipeline_trigger")
    assert id_family("external") is None


def test_scan_keys_follow_the_resolved_scope():
    pat, trigger = source_kind("gitlab_personal_access_token"), source_kind("gitlab_pipeline_trigger")
    assert pat.scan_keys(GITLAB, {}) == []  # type: ignore[attr-defined]  # until the credential's user is read
    admin = {ListKey("gl", "user"): {"id": 7, "username": "reconcile-bot", "is_admin": True}}
    assert pat.scan_keys(GITLAB, admin) == [ListKey("gl", "pats", "9")]  # type: ignore[attr-defined]
    assert trigger.scan_keys(GITLAB, {}) == [ListKey("gl", "project_triggers", "acme/app")]  # type: ignore[attr-defined]
    hooks = consumer_kind("gitlab_webhook")
    lists = {ListKey("gl", "project_hooks", "acme/app"): [{"id": 3}]}
    assert ListKey("gl", "project_hook", "acme/app#3") in hooks.scan_keys(GITLAB, lists)  # type: ignore[attr-defined]


def test_pat_rows_become_scan_records_with_owner_and_declaration():
    pat = source_kind("gitlab_personal_access_token")
    rows = [{"id": 41, "name": "laptop", "scopes": ["read_api"], "user_id": 9, "active": True}]
    (token,) = pat.scan_tokens(ListKey("gl", "pats", "9"), rows, GITLAB, {})  # type: ignore[attr-defined]
    assert token.owner == "@alice" and token.live.where == "gl: user alice" and token.can_be_credential
    assert token.family_key == ("gl", "gitlab_token", "41")
    assert token.declaration == {"kind": "gitlab_personal_access_token", "provider": "gl", "name": "laptop",
                                 "scopes": ["read_api"], "user": "alice"}
    assert pat.scan_tokens(ListKey("gl", "project_triggers", "acme/app"), rows, GITLAB, {}) == []  # type: ignore[attr-defined]


def test_oauth_tokens_are_named_by_their_client():
    kind = source_kind("zendesk_oauth_token")
    lists = {ListKey("zd", "oauth_clients"): [{"id": 5, "identifier": "sync"}]}
    rows = [{"id": 8, "client_id": 5, "scopes": ["write", "read"]}, {"id": 9, "client_id": 6}]
    first, second = kind.scan_tokens(ListKey("zd", "oauth_tokens"), rows, ScanScope("zd", "zendesk"), lists)  # type: ignore[attr-defined]
    assert first.live.name == "sync" and first.declaration["scopes"] == ["read", "write"]
    assert second.live.name == "client #6" and second.live.where == "zd: OAuth client client #6"


def test_places_propose_the_consumer_yaml_with_the_template():
    variables = consumer_kind("gitlab_ci_variable")
    rows = [{"key": "DEPLOY", "value": Secret("x" * 30), "environment_scope": "prod", "masked": True},
            {"key": "HIDDEN", "value": None, "hidden": True}]
    places, notes = variables.places(ListKey("gl", "project_variables", "acme/app"), rows, {})  # type: ignore[attr-defined]
    (place,) = places
    assert place.declaration("Bearer ${token}") == {
        "kind": "gitlab_ci_variable", "provider": "gl", "project": "acme/app", "key": "DEPLOY",
        "environment_scope": "prod", "masked": True, "protected": False, "value": "Bearer ${token}"}
    assert "value" not in place.declaration("${token}")  # the default template is not written
    assert notes == ["gl: CI variable HIDDEN (project acme/app, scope *) is hidden: write-only, its token cannot be told"]

    webhooks = consumer_kind("zendesk_webhook")
    (hook,), _ = webhooks.places(ListKey("zd", "webhooks"),  # type: ignore[attr-defined]
                                 [{"id": "01", "name": "Sync", "endpoint": Secret("https://x.example/y")}], {})
    assert hook.declaration("${token}")["endpoint"] == "${token}"  # the endpoint is what selects the URL mode


def test_value_formats_find_one_credential_in_a_held_value():
    gitlab, zendesk = value_formats()
    one = "glpat-" + "a" * 20
    assert gitlab.token_in(f"https://x.example/?t={one}") == one
    assert gitlab.token_in(f"{one} {'glptt-' + 'b' * 20}") is None  # two different ones: not a candidate
    assert zendesk.token_in("Bearer " + "ab" * 32) == "ab" * 32
    assert zendesk.token_in("not hex") is None
    assert gitlab.identify(Secret("gldt-" + "c" * 20), [], {}) == \
        "holds a GitLab gldt- token, a kind reconcile does not manage"


def test_api_tokens_declare_their_sunset_and_external_sources_their_expiry():
    retiring = sunset("zendesk_api_token")
    assert retiring is not None and str(retiring.cutoff) == "2027-04-30" and retiring.inactivity_days == 30
    assert "kind: zendesk_oauth_token" in retiring.replacement("zd", "Legacy reports")
    assert sunset("zendesk_oauth_token") is None
    from datetime import date

    from reconciler.kinds.external import ExternalSource

    assert declared_expiry(ExternalSource(provider=None, expires_at=date(2027, 1, 1))) == date(2027, 1, 1)


def test_a_kind_with_a_capabilitys_methods_lists_the_capability():
    """Capabilities are declared in the kind's class line, not found by method presence: a kind
    that has every method of one without listing it would be passed over silently (by a scan, the
    planner, apply), so it is a mistake."""
    capabilities = [Mintable, Renewable, Revocable, Recoverable, Identifying, Supplied, Readable, ListVerifiable,
                    AttributeWritable, Recreatable, ScannedSource, ScannedConsumer, ExpiringSource, SunsetSource]
    sources, consumers = all_kinds()
    unlisted = [(k.kind, cap.__name__) for k in sources + consumers for cap in capabilities
                if all(hasattr(k, m) for m in cap.__abstractmethods__) and not isinstance(k, cap)]
    assert unlisted == []
