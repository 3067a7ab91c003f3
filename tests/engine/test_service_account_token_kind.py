"""The service-account token kind's pure parts, without HTTP: its inventory document (schema,
model, checks), the lists it needs round by round, what it observes in them, and what the planner
makes of it (overlap by default, rotation in place as an option, a scope change)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from engine_helpers import NOW, held, inventory, live, observed, pos, rotation, token, variable

from reconciler.inventory import InventoryError, load_inventory
from reconciler.kinds import FetchError, ListKey, source_kind
from reconciler.kinds.gitlab_service_account_token import GitLabServiceAccountToken
from reconciler.plan import plan

KIND = source_kind("gitlab_service_account_token")
HEADER = """\
providers:
  gl: {kind: gitlab, url: https://gitlab.example.com, auth: {token_env: GL_TOKEN}}
tokens:
  sync:
"""
GROUP_ACCOUNTS = ListKey("gl", "group_service_accounts", "acme")
INSTANCE_ACCOUNTS = ListKey("gl", "instance_service_accounts")
BOT = {"id": 41, "username": "sync-bot", "name": "Service account user"}


def source(**kw) -> GitLabServiceAccountToken:
    kw.setdefault("group", "acme")
    kw.setdefault("scopes", ("api",))
    return GitLabServiceAccountToken(provider="gl", account="sync-bot", name="sync", pos=pos(5), **kw)


def row(id: int, *, created: str = "2026-08-01T00:00:00Z", **kw) -> dict:
    return {"id": id, "name": "sync", "scopes": ["api"], "user_id": 41, "active": True, "revoked": False,
            "created_at": created, "expires_at": "2027-03-01", **kw}


# --- the inventory document -------------------------------------------------------------------


def test_a_document_becomes_the_model_overlap_by_default(tmp_path: Path):
    (tmp_path / "inv.yaml").write_text(HEADER + """\
    source: {kind: gitlab_service_account_token, provider: gl, group: acme, account: sync-bot, name: sync,
             scopes: [read_api]}
""")
    src = load_inventory(tmp_path).tokens["sync"].source
    assert src == GitLabServiceAccountToken(provider="gl", group="acme", account="sync-bot", name="sync",
                                            scopes=("read_api",))
    assert KIND.strategy(src) == "overlap"
    assert src.identity == "gitlab_service_account_token:gl:acme:sync-bot:sync"
    assert source(group=None).identity == "gitlab_service_account_token:gl:@instance:sync-bot:sync"
    assert KIND.strategy(source(strategy="in_place")) == "in_place"
    assert KIND.display_name(src) == "sync of sync-bot"


@pytest.mark.parametrize(("fields", "message"), [
    ("provider: gl, group: acme, name: sync, scopes: [api]", "missing required key 'account'"),
    ("provider: gl, account: a, name: sync, scopes: [api], strategy: rotate", "strategy"),
    ("provider: gl, account: a, name: sync, scopes: [api], user: bob", "user"),
    ("provider: gl, group: acme/sub, account: a, name: sync, scopes: [api]",
     "'acme/sub' is a subgroup: service accounts belong to a top-level group"),
])
def test_a_bad_document_is_an_error_naming_file_line_and_key(tmp_path: Path, fields: str, message: str):
    (tmp_path / "inv.yaml").write_text(HEADER + f"    source: {{kind: gitlab_service_account_token, {fields}}}\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(tmp_path)
    text = str(caught.value)
    assert "inv.yaml:5:" in text and "tokens.sync.source" in text and message in text, text


def test_an_undocumented_scope_is_a_warning(tmp_path: Path):
    (tmp_path / "inv.yaml").write_text(HEADER + """\
    source: {kind: gitlab_service_account_token, provider: gl, account: a, name: sync, scopes: [apii]}
""")
    warnings = {w.key: w.message for w in load_inventory(tmp_path).warnings}
    assert warnings["tokens.sync.source.scopes"] == "'apii' is not a GitLab token scope (did you mean 'api'?)"


# --- what it needs, round by round ----------------------------------------------------------


def test_it_needs_the_accounts_then_the_named_accounts_tokens():
    tok = token("sync", source())
    assert KIND.needs(tok, {}) == [GROUP_ACCOUNTS]
    lists = {GROUP_ACCOUNTS: [{"id": 40, "username": "other-bot"}, BOT]}
    assert KIND.needs(tok, lists) == [GROUP_ACCOUNTS, ListKey("gl", "service_account_tokens", "acme#41")]
    instance = token("sync", source(group=None))
    assert KIND.needs(instance, {INSTANCE_ACCOUNTS: [BOT]}) == [
        INSTANCE_ACCOUNTS, ListKey("gl", "service_account_tokens", "#41")]
    assert KIND.needs(tok, {GROUP_ACCOUNTS: FetchError(403, "refused")}) == [GROUP_ACCOUNTS]


# --- observe from lists ------------------------------------------------------------------------


def test_the_newest_usable_token_of_the_name_is_current_and_older_ones_are_orphans():
    tokens = ListKey("gl", "service_account_tokens", "acme#41")
    lists = {GROUP_ACCOUNTS: [BOT], tokens: [
        row(5, created="2026-06-01T00:00:00Z"), row(9), row(3, revoked=True, active=False),
        {**row(11), "name": "other"}]}
    obs = KIND.observe(token("sync", source()), lists)
    assert (obs.current.id, [o.id for o in obs.others], obs.error) == ("9", ["5"], None)
    assert obs.current.where == "service account sync-bot (group acme)" and obs.details == {"user_id": "41"}
    unmanaged = KIND.unmanaged([token("sync", source())], lists)
    assert [t.id for t in unmanaged] == ["11"]
    # a token of the same name on another account is not the declared one
    other = ListKey("gl", "service_account_tokens", "acme#40")
    lists = {**lists, GROUP_ACCOUNTS: [BOT, {"id": 40, "username": "other-bot"}], other: [{**row(12), "user_id": 40}]}
    assert [t.id for t in KIND.unmanaged([token("sync", source())], lists)] == ["11", "12"]


def test_an_unknown_account_or_a_refused_list_is_an_observation_error():
    obs = KIND.observe(token("sync", source()), {GROUP_ACCOUNTS: [{"id": 40, "username": "other-bot"}]})
    assert obs.error == "group acme has no service account named 'sync-bot'" and obs.current is None
    obs = KIND.observe(token("sync", source(group=None)), {INSTANCE_ACCOUNTS: []})
    assert obs.error == "the instance has no service account named 'sync-bot'"
    refused = FetchError(403, "instance service accounts: 403 Forbidden (needs an administrator)")
    obs = KIND.observe(token("sync", source(group=None)), {INSTANCE_ACCOUNTS: refused})
    assert obs.error == refused.message


# --- planning --------------------------------------------------------------------------------


def planned(src: GitLabServiceAccountToken, lt, **kw):
    var = variable()
    tok = token("sync", src, (var,), rotation(max_age=timedelta(days=90)))
    p = plan(inventory(tok), observed([(tok, lt)], [held(var, tok, holds=lt.id if lt else None)]), None, NOW, **kw)
    return p.tokens[0]


def test_an_aged_token_is_renewed_by_a_new_token_beside_it_by_default():
    tp = planned(source(), live("9", age=100, scopes=("api",)))
    assert (tp.action, tp.strategy) == ("rotate", "overlap")
    assert [r.code for r in tp.reasons] == ["max_age"]


def test_in_place_rotates_it_and_a_scope_change_needs_a_new_token():
    tp = planned(source(strategy="in_place"), live("9", age=100, scopes=("api",)), escrow_available=True)
    assert (tp.action, tp.strategy) == ("rotate", "in_place")
    reasons = KIND.due_reasons(token("sync", source(scopes=("read_api",))), live("9", scopes=("api",)), NOW)
    assert [r.message for r in reasons] == ["scopes differ: live api, declared read_api"]
    # rotation copies the scopes: an in-place token whose scopes changed gets a new token beside it
    tp = planned(source(strategy="in_place", scopes=("read_api",)), live("9", age=10, scopes=("api",)))
    assert (tp.action, tp.strategy, [r.code for r in tp.reasons]) == ("rotate", "overlap", ["scopes"])
    assert planned(source(), live("9", age=10, scopes=("api",), expires_in=300)).action == "none"
    assert planned(source(), live("9", age=10, scopes=("api",), expires_in=10)).action == "rotate"  # < 21d left
    # an expired token is replaced by a new one whatever the strategy
    tp = planned(source(strategy="in_place"), live("9", age=200, scopes=("api",), expires_in=-1))
    assert (tp.action, tp.strategy) == ("create", "overlap")
