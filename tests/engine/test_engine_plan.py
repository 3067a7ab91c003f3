"""The planner over a table of cases: every reason, strategy, consumer state and boundary.
Inventories are model objects, observations are built by hand: no HTTP."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from engine_helpers import NOW, held, inventory, ledger, live, observed, pos, rotation, token, variable

from reconciler.kinds.external import ExternalSource
from reconciler.kinds.gitlab_access_token import GitLabProjectAccessToken
from reconciler.kinds.gitlab_personal_access_token import GitLabPersonalAccessToken
from reconciler.kinds.gitlab_pipeline_trigger import GitLabPipelineTrigger
from reconciler.kinds.gitlab_webhook import GitLabWebhook, WebhookSecretField
from reconciler.kinds.zendesk_api_token import ZendeskApiToken
from reconciler.kinds.zendesk_app_setting import ZendeskAppSetting
from reconciler.kinds.zendesk_webhook import ZendeskWebhook, ZendeskWebhookAuth
from reconciler.observed import ConsumerObservation, LiveToken, Observed, SourceObservation
from reconciler.plan import Plan, plan

TRIGGER = GitLabPipelineTrigger(provider="gl", project="g/p", description="sync", pos=pos(5))
PAT = GitLabPersonalAccessToken(provider="gl", name="bot", scopes=("api",))
PROJECT_TOKEN = GitLabProjectAccessToken(provider="gl", project="g/p", name="deploy", scopes=("api",), access_level=40)


def one(tok, lt, consumers=(), **kw):
    p = plan(inventory(tok), observed([(tok, lt)], list(consumers)), kw.pop("led", None), kw.pop("now", NOW), **kw)
    assert len(p.tokens) == 1
    return p, p.tokens[0]


def codes(tp):
    return [r.code for r in tp.reasons]


def finding_codes(p):
    return sorted(f.code for f in p.all_findings())


# --- reasons and boundaries ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rot", "lt", "expected_action", "expected_codes"),
    [
        ({}, None, "create", ["missing"]),
        ({}, live(revoked=True, active=False), "create", ["revoked"]),
        ({}, live(expires_in=0), "create", ["inactive"]),  # expires today: dead
        ({}, live(expires_in=21), "rotate", ["expiring"]),  # exactly rotate_before days left: due
        ({}, live(expires_in=22), "none", []),
        ({}, live(expires_in=None), "none", []),  # never expires
        ({"max_age": timedelta(days=90)}, live(age=91), "rotate", ["max_age"]),
        ({"max_age": timedelta(days=90)}, live(age=90), "none", []),  # exactly max_age old: not older
        ({"not_before": (NOW - timedelta(days=10)).date()}, live(age=10), "none", []),  # created 12:00 that day
        ({"not_before": (NOW - timedelta(days=9)).date()}, live(age=10), "rotate", ["not_before"]),
        ({"not_before": (NOW - timedelta(days=11)).date()}, live(age=10), "none", []),
        ({"max_age": timedelta(days=30), "not_before": NOW.date()}, live(age=40, expires_in=5), "rotate",
         ["expiring", "max_age", "not_before"]),
    ],
)
def test_trigger_reasons(rot, lt, expected_action, expected_codes):
    tok = token("t", TRIGGER, rot=rotation(**rot))
    p, tp = one(tok, lt)
    assert tp.action == expected_action
    assert codes(tp) == expected_codes
    if expected_action != "none":
        assert tp.strategy == "overlap"
        assert all(r.at.startswith("inventory/tokens.yaml:") for r in tp.reasons)
    assert p.has_changes == (expected_action != "none")


def test_not_before_equal_to_created_at_is_not_due():
    created = datetime(2026, 11, 1, tzinfo=UTC)
    lt = LiveToken(id="1", name="sync", where="p", created_at=created)
    _, tp = one(token("t", TRIGGER, rot=rotation(not_before=date(2026, 11, 1))), lt)
    assert tp.action == "none"
    lt = LiveToken(id="1", name="sync", where="p", created_at=created - timedelta(seconds=1))
    _, tp = one(token("t", TRIGGER, rot=rotation(not_before=date(2026, 11, 1))), lt)
    assert codes(tp) == ["not_before"]


def test_now_in_another_time_zone_counts_days_in_utc():
    # 2026-11-22 20:00 at UTC-8 is 2026-11-23 04:00 UTC: one day fewer left than the local date says
    pst = timezone(timedelta(hours=-8))
    local_now = datetime(2026, 11, 22, 20, 0, tzinfo=pst)
    lt = LiveToken(id="1", name="sync", where="p", created_at=NOW - timedelta(days=5), expires_at=date(2026, 12, 14))
    _, tp = one(token("t", TRIGGER), lt, now=local_now)
    assert codes(tp) == ["expiring"]  # 21 days left in UTC
    assert tp.live["days_left"] == 21
    _, tp = one(token("t", TRIGGER), lt, now=datetime(2026, 11, 22, 15, 0, tzinfo=pst))  # 23:00 UTC the 22nd
    assert tp.action == "none"


def test_scope_change_needs_a_new_token_and_warns_of_the_bot_user():
    tok = token("d", PROJECT_TOKEN)
    _, tp = one(tok, live(scopes=("read_api",), access_level=40))
    assert codes(tp) == ["scopes"] and tp.action == "rotate" and tp.strategy == "overlap"
    assert "new_bot_user" in [f.code for f in tp.findings]
    _, tp = one(tok, live(scopes=("api",), access_level=30))
    assert codes(tp) == ["access_level"]


def test_pat_scope_change_cannot_be_rotated():
    _, tp = one(token("p", PAT), live(scopes=("read_api",)), escrow_available=True)
    assert tp.blocked and "scopes_need_new_token" in [f.code for f in tp.findings]


# --- strategies and the escrow ---------------------------------------------------------------


def test_pat_in_place_needs_an_escrow_or_a_readable_consumer():
    var = variable(hidden=True, masked=True)
    tok = token("p", PAT, consumers=(var,))
    hidden = held(var, tok, readable=False, attributes={"hidden": True, "masked": True})
    _, tp = one(tok, live(expires_in=3, scopes=("api",)), [hidden])
    # merge-request pipelines plan without the protected key: a warning; apply refuses without it
    assert tp.action == "rotate" and tp.strategy == "in_place" and not tp.blocked and tp.escrow is None
    assert [f.code for f in tp.findings if f.severity == "warning" and f.code == "no_escrow"] == ["no_escrow"]
    assert "needs RECONCILE_ESCROW_KEY at apply time" in next(f.message for f in tp.findings if f.code == "no_escrow")
    _, tp = one(tok, live(expires_in=3, scopes=("api",)), [hidden], escrow_available=True)
    assert not tp.blocked and tp.escrow == "key"
    readable = variable(key="READ")
    tok2 = token("p", PAT, consumers=(var, readable))
    _, tp = one(tok2, live(expires_in=3, scopes=("api",)), [hidden, held(readable, tok2, holds="7")])
    assert not tp.blocked and tp.escrow == f"consumer:{readable.identity}"


def test_project_token_follows_its_strategy():
    _, tp = one(token("d", PROJECT_TOKEN), live(expires_in=1, scopes=("api",), access_level=40), escrow_available=True)
    assert tp.strategy == "in_place" and "new_bot_user" not in [f.code for f in tp.findings]
    overlap = GitLabProjectAccessToken(provider="gl", project="g/p", name="deploy", scopes=("api",), strategy="overlap")
    _, tp = one(token("d", overlap), live(expires_in=1, scopes=("api",), access_level=40))
    assert tp.strategy == "overlap" and "new_bot_user" in [f.code for f in tp.findings]


def test_revoked_pat_cannot_be_created_by_a_non_admin():
    _, tp = one(token("p", PAT), live(revoked=True, active=False, scopes=("api",)))
    assert tp.action == "create" and tp.blocked
    assert "cannot_create" in [f.code for f in tp.findings]


def test_absent_token_is_revoked_with_its_orphans():
    tok = token("t", TRIGGER, state="absent")
    obs = observed([(tok, live("9"))], others=(live("8", age=400),))
    p = plan(inventory(tok), obs, None, NOW)
    tp = p.tokens[0]
    assert tp.action == "revoke" and tp.orphans == ("8",) and codes(tp) == ["absent"]
    _, tp = one(tok, None)
    assert tp.action == "none" and not tp.changes


def test_external_source_expiring_is_rotated_by_a_person():
    ext = ExternalSource(provider=None, value_env="NEW_VALUE", expires_at=NOW.date() + timedelta(days=4))
    _, tp = one(token("e", ext), None)
    assert tp.action == "rotate" and tp.strategy == "external" and codes(tp) == ["expiring"]
    assert "external_value" in [f.code for f in tp.findings]


# --- consumer states ---------------------------------------------------------------------------


def test_consumer_states_and_actions():
    a, b, c, d = variable("A"), variable("B"), variable("C"), variable("D")
    hook = GitLabWebhook(provider="gl", project="g/p", hook="sync")
    hook_old = GitLabWebhook(provider="gl", project="g/p", hook="old")
    zwh = ZendeskWebhook(provider="zd", webhook="w", authentication=ZendeskWebhookAuth(type="bearer_token"))
    tok = token("t", TRIGGER, consumers=(a, b, c, d, hook, hook_old, zwh))
    lt = live("7", owned=True, fingerprint="sha256:cur")  # owned trigger: the current value is recoverable
    obs = [
        held(a, tok, holds="7"),
        held(b, tok, holds="5", fingerprint="sha256:old"),
        held(c, tok, holds=None, holds_invalid=True, fingerprint="sha256:bad"),
        ConsumerObservation(identity=d.identity, token="t", state="missing", readable=True, exists=False),
        held(hook, tok, readable=False),
        held(hook_old, tok, readable=False),
        held(zwh, tok, readable=False),
    ]
    led = ledger((hook, tok, "7", "sha256:x"), (hook_old, tok, "5", "sha256:y"))
    p, tp = one(tok, lt, obs, led=led)
    assert tp.action == "none" and tp.recover_from == "source"
    by = {cp.identity: cp for cp in tp.consumers}
    assert [(by[x.identity].state, by[x.identity].action, by[x.identity].value) for x in (a, b, c, d, hook, hook_old, zwh)] == [
        ("verified", "none", None),
        ("stale", "update", "current"),
        ("stale", "update", "current"),
        ("missing", "create", "current"),
        ("verified", "none", None),  # by the ledger
        ("stale", "update", "current"),  # the ledger says it got #5
        ("unverifiable", "update", "current"),
    ]
    assert "ledger" in by[hook.identity].why
    assert [f.code for f in tp.findings] == ["unverifiable"]
    # sorted by identity
    assert [cp.identity for cp in tp.consumers] == sorted(cp.identity for cp in tp.consumers)


def test_unverifiable_consumer_forces_rotation_when_the_value_is_not_recoverable():
    # only when the rotation says so: by default an unverifiable consumer is a warning (below)
    hook = GitLabWebhook(provider="gl", project="g/p", hook="sync")
    tok = token("t", TRIGGER, consumers=(hook,), rot=rotation(on_unverifiable="rotate"))
    _, tp = one(tok, live("7", owned=False), [held(hook, tok, readable=False)])
    assert tp.action == "rotate" and codes(tp) == ["consumers"]
    assert tp.consumers[0].action == "update" and tp.consumers[0].value == "new"
    assert "rotation.on_unverifiable is rotate" in tp.reasons[0].message
    assert tp.reasons[0].at == "inventory/tokens.yaml:10"  # the policy's own line


@pytest.mark.parametrize("setting", [None, "warn"])
def test_unverifiable_consumer_alone_is_a_warning_not_a_rotation(setting):
    hook = GitLabWebhook(provider="gl", project="g/p", hook="sync")
    tok = token("t", TRIGGER, consumers=(hook,), rot=rotation(on_unverifiable=setting))
    p, tp = one(tok, live("7", owned=False), [held(hook, tok, readable=False)])
    assert tp.action == "none" and codes(tp) == [] and not p.has_changes
    assert tp.consumers[0].action == "none" and tp.consumers[0].state == "unverifiable"
    [warning] = [f for f in tp.findings if f.code == "unverifiable"]
    assert "not rotated for this alone" in warning.message
    assert "rotation.on_unverifiable: rotate" in warning.message


def test_a_stale_consumer_still_rotates_and_takes_the_unverifiable_along():
    a, hook = variable("A"), GitLabWebhook(provider="gl", project="g/p", hook="sync")
    tok = token("t", TRIGGER, consumers=(a, hook))
    _, tp = one(tok, live("7", owned=False), [held(a, tok, holds="3"), held(hook, tok, readable=False)])
    assert tp.action == "rotate" and codes(tp) == ["consumers"]
    assert "not shown to hold the current value" in tp.reasons[0].message
    assert [c.value for c in tp.consumers] == ["new", "new"]


def test_unverifiable_consumers_of_an_unsettled_token_still_rotate_it():
    """What an apply left halfway (an in-flight record), or other live instances of the name, is
    not a working estate: its unverifiable consumers may hold a value that is dead or about to be."""
    from reconciler.state.ledger import InFlight, Ledger

    hook = GitLabWebhook(provider="gl", project="g/p", hook="sync")
    tok = token("t", TRIGGER, consumers=(hook,))
    interrupted = Ledger(in_flight={"t": InFlight(op="overlap", old_ids=("6",), new_id="7")})
    _, tp = one(tok, live("7", owned=False), [held(hook, tok, readable=False)], led=interrupted)
    assert tp.action == "rotate" and codes(tp) == ["consumers"]
    assert "not shown to hold the current value" in tp.reasons[0].message
    p = plan(inventory(tok), observed([(tok, live("7", owned=False))], [held(hook, tok, readable=False)],
                                      others=(live("6", owned=False),)), None, NOW)
    assert p.tokens[0].action == "rotate" and p.tokens[0].orphans == ("6",)


def test_on_unverifiable_comes_from_the_defaults_unless_the_token_sets_it():
    from reconciler.inventory.model import Rotation

    base = Rotation(on_unverifiable="rotate")
    assert Rotation().merged_over(base).rotates_unverifiable
    assert not Rotation(on_unverifiable="warn").merged_over(base).rotates_unverifiable
    assert not Rotation().merged_over(Rotation()).rotates_unverifiable


def test_readable_verified_consumer_serves_to_recover_the_value():
    a, hook = variable("A"), GitLabWebhook(provider="gl", project="g/p", hook="sync")
    tok = token("t", TRIGGER, consumers=(a, hook))
    _, tp = one(tok, live("7", owned=False), [held(a, tok, holds="7"), held(hook, tok, readable=False)])
    assert tp.action == "none" and tp.recover_from == f"consumer:{a.identity}"


def test_readable_consumer_verified_by_the_ledger_without_identification():
    a = variable("A")
    tok = token("t", TRIGGER, consumers=(a,))
    _, tp = one(tok, live("7"), [held(a, tok, fingerprint="sha256:f")], led=ledger((a, tok, "7", "sha256:f")))
    assert tp.consumers[0].state == "verified" and not tp.changes


def test_rotation_updates_every_consumer_and_shows_the_fingerprint_change():
    a = variable("A", masked=True, protected=True)
    tok = token("t", TRIGGER, consumers=(a,), rot=rotation(max_age=timedelta(days=30)))
    obs = held(a, tok, holds="7", fingerprint="sha256:" + "ab" * 32, attributes={"masked": False, "protected": True})
    _, tp = one(tok, live("7", age=31), [obs])
    cp = tp.consumers[0]
    assert (cp.action, cp.value) == ("update", "new")
    changes = {ch.attribute: (ch.old, ch.new) for ch in cp.changes}
    assert changes["masked"] == (False, True)
    assert changes["value"] == ("sha256:" + "ab" * 32, "(new value)")
    assert "protected" not in changes


def test_attribute_drift_alone_is_an_update_without_a_value():
    a = variable("A", protected=True)
    tok = token("t", TRIGGER, consumers=(a,))
    _, tp = one(tok, live("7"), [held(a, tok, holds="7", attributes={"protected": False})])
    cp = tp.consumers[0]
    assert (cp.state, cp.action, cp.value) == ("verified", "update", None)
    assert [(ch.attribute, ch.old, ch.new) for ch in cp.changes] == [("protected", False, True)]


def test_hidden_cannot_change_on_an_existing_variable():
    a = variable("A", hidden=True, masked=True)
    tok = token("t", TRIGGER, consumers=(a,))
    _, tp = one(tok, live("7"), [held(a, tok, holds="7", attributes={"hidden": False, "masked": True})])
    assert tp.blocked and "hidden_immutable" in [f.code for f in tp.findings]


def test_missing_consumer_that_cannot_be_created_is_an_error():
    app = ZendeskAppSetting(provider="zd", app="Sync", setting="token")
    tok = token("t", TRIGGER, consumers=(app,))
    missing = ConsumerObservation(identity=app.identity, token="t", state="missing", readable=False, exists=False,
                                  details={"creatable": False, "missing": "installation"})
    _, tp = one(tok, live("7", owned=True, fingerprint="sha256:c"), [missing])
    assert tp.blocked and "consumer_missing" in [f.code for f in tp.findings]


def test_webhook_recreate_refuses_to_lose_undeclared_values():
    hook = GitLabWebhook(provider="gl", project="g/p", hook="sync", mode="recreate",
                         target=WebhookSecretField(field="custom_header", name="X-Token"),
                         custom_headers={"X-Env": "prod"})
    tok = token("t", TRIGGER, consumers=(hook,))
    obs = held(hook, tok, readable=False, details={"url_variable_keys": ["secret_path"],
                                                   "custom_header_keys": ["X-Env", "X-Other", "X-Token"],
                                                   "token_present": True})
    _, tp = one(tok, live("7", age=400, expires_in=5), [obs])
    errors = [f for f in tp.findings if f.code == "recreate_loses_values"]
    assert tp.blocked and len(errors) == 1
    assert "'secret_path'" in errors[0].message and "'X-Other'" in errors[0].message
    assert "the secret token" in errors[0].message and "'X-Env'" not in errors[0].message


def test_webhook_recreate_planned_without_its_detail_is_an_error():
    """A plan made without the reads a write needs (`observe_write`) cannot tell what a recreate
    loses: the hook it would write blocks its token."""
    hook = GitLabWebhook(provider="gl", project="g/p", hook="sync", mode="recreate")
    tok = token("t", TRIGGER, consumers=(hook,))
    obs = held(hook, tok, readable=False, details={"token_present": True})
    _, tp = one(tok, live("7", age=400, expires_in=5), [obs])
    assert tp.blocked and "recreate_unchecked" in [f.code for f in tp.findings]
    _, kept = one(tok, live("7"), [obs])  # not written: nothing to check
    assert kept.consumers[0].action == "none" and "recreate_unchecked" not in [f.code for f in kept.findings]


def test_zendesk_webhook_endpoint_template_drift():
    zwh = ZendeskWebhook(provider="zd", webhook="w", endpoint="https://x/?token=${token}")
    tok = token("t", TRIGGER, consumers=(zwh,))
    obs = held(zwh, tok, holds="7", attributes={"endpoint": "(live endpoint does not have the template's shape)"})
    _, tp = one(tok, live("7"), [obs])
    assert tp.consumers[0].action == "update"
    assert tp.consumers[0].changes[0].new == "https://x/?token=${token}"


# --- Zendesk API tokens ------------------------------------------------------------------------


def test_api_token_warns_of_cutoff_and_inactivity_and_proposes_oauth():
    zwh = ZendeskWebhook(provider="zd", webhook="w", authentication=ZendeskWebhookAuth(type="basic_auth", username="me"))
    api = ZendeskApiToken(provider="zd", description="legacy")
    tok = token("legacy", api, consumers=(zwh,), owner="@ops")
    lt = LiveToken(id="3", name="legacy", where="zd", created_at=NOW - timedelta(days=500),
                   last_used_at=NOW - timedelta(days=26))
    p, tp = one(tok, lt, [held(zwh, tok, readable=False)])
    assert tp.action == "none" and tp.strategy == "observe_only"
    sunset = next(f for f in tp.findings if f.code == "api_token_sunset")
    assert "2027-04-30 (159 days left)" in sunset.message
    assert "kind: zendesk_oauth_token" in sunset.detail and "legacy-oauth:" in sunset.detail
    assert "webhook: w" in sunset.detail and "username: me" in sunset.detail
    inactive = next(f for f in tp.findings if f.code == "api_token_inactive")
    assert "deactivated in 4 days" in inactive.message
    lt2 = LiveToken(id="3", name="legacy", where="zd", created_at=lt.created_at, last_used_at=NOW - timedelta(days=31))
    _, tp = one(tok, lt2, [held(zwh, tok, readable=False)])
    assert "last used 31 days ago" in next(f for f in tp.findings if f.code == "api_token_inactive").message
    _, tp = one(tok, None, [held(zwh, tok, readable=False)])
    assert tp.blocked and "api_token_gone" in [f.code for f in tp.findings]


# --- the plan as a whole -----------------------------------------------------------------------


def test_errors_unmanaged_targets_and_order():
    t1, t2 = token("b", TRIGGER), token("a", PROJECT_TOKEN)
    obs = Observed(
        observed_at=NOW,
        sources={"b": SourceObservation(token="b", identity=TRIGGER.identity, current=live("1")),
                 "a": SourceObservation(token="a", identity=PROJECT_TOKEN.identity, error="404 Project Not Found")},
        consumers={},
        unmanaged=(LiveToken(id="4", name="stray", where="gl: project g/p"),),
    )
    p = plan(inventory(t1, t2), obs, None, NOW)
    assert [t.name for t in p.tokens] == ["a", "b"]
    assert p.tokens[0].blocked and "404 Project Not Found" in p.tokens[0].findings[0].message
    assert [f.code for f in p.findings] == ["unmanaged"] and "'stray' (#4)" in p.findings[0].message
    only = plan(inventory(t1, t2), obs, None, NOW, targets=["b"])
    assert [t.name for t in only.tokens] == ["b"] and only.targets == ("b",) and not only.findings


def test_plan_is_deterministic_and_round_trips_through_json():
    a = variable("A", masked=True)
    tok = token("t", TRIGGER, consumers=(a,), rot=rotation(max_age=timedelta(days=1)))
    obs = observed([(tok, live("7", age=3))], [held(a, tok, holds="7", attributes={"masked": False})])
    p1, p2 = plan(inventory(tok), obs, None, NOW), plan(inventory(tok), obs, None, NOW)
    assert p1.dumps() == p2.dumps()
    data = p1.to_json()
    assert data["inventory_digest"] == "sha256:inv" and data["observed_digest"] == obs.digest()
    assert data["summary"]["rotate"] == 1 and data["has_changes"] is True
    again = Plan.from_json(data)
    assert again.dumps() == p1.dumps()
    with pytest.raises(ValueError, match="schema version"):
        Plan.from_json({**data, "schema_version": 99})


def test_observed_digest_changes_with_live_state_only():
    tok = token("t", TRIGGER)
    o1 = observed([(tok, live("7"))])
    o2 = Observed(observed_at=NOW + timedelta(hours=1), sources=o1.sources, consumers=o1.consumers)
    o3 = observed([(tok, live("8"))])
    assert o1.digest() == o2.digest() != o3.digest()


def test_observed_digest_is_the_sha256_of_the_sum_of_each_observations_hash():
    """The digest pins its definition: the sha256 of the sum, modulo 2**2048, of the SHAKE-256
    (256 bytes) of each observation's section, quoted key and canonical JSON without
    `last_used_at`; a plan saved by another definition is refused as stale."""
    import hashlib
    import json

    a, b = variable("A", masked=True), variable("B")
    tok = token("t", TRIGGER, consumers=(a, b))
    obs = observed([(tok, live("7", age=3))], [held(a, tok, holds="7", attributes={"masked": False}), held(b, tok)])
    stray = [LiveToken(id=str(n), name=f"stray-{n}", where="project a/b", last_used_at=NOW) for n in (2, 1)]
    obs = Observed(observed_at=NOW, sources=obs.sources, consumers=obs.consumers, unmanaged=tuple(stray))
    body = obs.to_json(without="last_used_at")
    texts = [f"consumer:{json.dumps(k)}:{json.dumps(v, sort_keys=True, separators=(',', ':'))}"
             for k, v in body["consumers"].items()]
    texts += [f"source:{json.dumps(k)}:{json.dumps(v, sort_keys=True, separators=(',', ':'))}"
              for k, v in body["sources"].items()]
    texts += [f"unmanaged:null:{json.dumps(v, sort_keys=True, separators=(',', ':'))}" for v in body["unmanaged"]]
    total = sum(int.from_bytes(hashlib.shake_256(t.encode()).digest(256), "big") for t in texts) % (1 << 2048)
    assert len(texts) == 5
    assert obs.digest() == "sha256:" + hashlib.sha256(total.to_bytes(256, "big")).hexdigest()


def test_observed_digest_after_consumers_change_is_the_digest_made_from_scratch():
    """`with_consumers` moves the known digest by the changed terms only; it must equal the digest
    of the same observation computed afresh."""
    a, b = variable("A", masked=True), variable("B")
    tok = token("t", TRIGGER, consumers=(a, b))
    obs = observed([(tok, live("7", age=3))], [held(a, tok, holds="7"), held(b, tok)])
    before = obs.digest()
    changed = {b.identity: replace(obs.consumers[b.identity], details={"header_keys": ["X"]})}
    moved = obs.with_consumers(changed, requests=3)
    fresh = Observed(observed_at=NOW, sources=obs.sources, consumers={**obs.consumers, **changed})
    assert moved.digest() == fresh.digest() != before
    assert moved.requests == 3 and obs.digest() == before
