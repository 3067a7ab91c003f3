"""The way off Zendesk API tokens: an OAuth token that `replaces` an API token takes over its three
consumers (each with its new template), is verified in all three, and only then is the API token
deactivated, through the same revoke path as any old token. Real engine, real sandboxes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apply_world import HEADER, SUB, Scenario

from reconciler.render import render_text

CONSUMERS = ("variable", "app_setting", "zd_webhook")

INVENTORY = HEADER.split("tokens:")[0].format() + """tokens:
  legacy:
    description: the API token being retired
    source: {kind: zendesk_api_token, provider: zd, description: Legacy sync}
  subject:
    description: its OAuth replacement
    owner: "@ops"
    source: {kind: zendesk_oauth_token, provider: zd, client: sync, scopes: [read], replaces: legacy}
    consumers:
      - {kind: gitlab_ci_variable, provider: gl, project: acme/app, key: TOKEN, masked: true}
      - {kind: zendesk_app_setting, provider: zd, app: Sync App, setting: token, value: 'Bearer ${token}'}
      - {kind: zendesk_webhook, provider: zd, webhook: Notify, authentication: {type: bearer_token}}
"""


@dataclass
class Migration(Scenario):
    """Three consumers hold the API token; the OAuth client exists, no OAuth token of it yet."""

    def inventory(self) -> str:
        return INVENTORY

    def seeds(self, old: str, cred: str, zcred: str) -> tuple[dict[str, Any], dict[str, Any]]:
        gl, zd = super().seeds(old, cred, zcred)
        inst = zd["instances"][SUB]
        inst["oauth_tokens"] = [t for t in inst["oauth_tokens"] if t["client"] != "sync"]
        inst["api_tokens"] = [{"description": "Legacy sync", "value": old, "created_at": "now-400d",
                               "last_used": "now-2d"}]
        return gl, zd


def bearer(held: str) -> str:
    return held.removeprefix("Bearer ")


def test_an_api_token_with_three_consumers_is_replaced_then_deactivated(workdir):
    live = Migration("oauth_token", CONSUMERS).start(workdir)
    try:
        before = live.plan()
        subject = next(t for t in before.tokens if t.name == "subject")
        assert subject.action == "create" and subject.replaces == "legacy" and subject.retire
        text = render_text(before)
        assert f"migration: replaces API token legacy: #{subject.retire[0]} deactivated once every consumer" in text
        assert "legacy is replaced by subject: apply deactivates API token" in text
        assert not before.errors

        result = live.apply()
        assert result.ok, result.failed
        assert result.delivered == 3 and result.revoked == 1
        # the deactivation is the last change, after every consumer write and the proof of the value
        zendesk = [(e.method, e.path) for e in live.zendesk.log.snapshot()]
        deactivation = next(i for i, (m, p) in enumerate(zendesk) if m == "PUT" and "/api/v2/api_tokens/" in p)
        assert deactivation == len(zendesk) - 1 or all(m == "GET" for m, _ in zendesk[deactivation + 1:])
        proof = max(i for i, (m, p) in enumerate(zendesk) if m == "GET" and p.startswith("/api/v2/oauth/tokens/current"))
        assert proof < deactivation
        assert live.gitlab.log.mutations(), "the CI variable was written"

        inst = live.zd.instance(SUB)
        api_token = inst.api_tokens[0]
        assert inst.api_token_state(api_token)[0] is False, "the API token is still active"
        for consumer in CONSUMERS:
            held = live.held(consumer)
            assert held is not None and held != live.old and live.works(bearer(held)), consumer
        assert live.held("app_setting").startswith("Bearer ")  # the consumer's new template

        after = live.plan()
        assert not after.has_changes and not after.errors
        legacy = next(t for t in after.tokens if t.name == "legacy")
        assert [f.code for f in legacy.findings] == ["replaced"]  # done: only the clean-up is left
    finally:
        live.stop()


def test_a_consumer_left_behind_keeps_the_api_token_active(workdir):
    """A consumer the OAuth token cannot reach (its app is not installed) keeps the API token
    alive, and the plan says which."""
    live = Migration("oauth_token", CONSUMERS).start(workdir)
    try:
        inst = live.zd.instance(SUB)
        inst.installations.clear()
        plan = live.plan()
        subject = next(t for t in plan.tokens if t.name == "subject")
        assert not subject.retire
        assert "kept until every consumer holds this OAuth token; not yet: app 'Sync App' setting token" in (
            subject.migration or "")
        live.apply()
        assert inst.api_token_state(inst.api_tokens[0])[0] is True
    finally:
        live.stop()


APPROVAL = "https://gitlab.com/gitlab-com/team-member-epics/access-requests/-/issues/42"


@dataclass
class Approved(Migration):
    """The same world under a policy that lists the access request approving the client's scopes."""

    def inventory(self) -> str:
        policy = ("policy:\n  approved_scopes:\n    zd:\n      sync:\n"
                  f"        - {{scopes: [read, write], access_request: '{APPROVAL}'}}\n")
        return INVENTORY.replace("tokens:\n", policy + "tokens:\n", 1)


def test_the_plan_and_the_merge_request_note_name_the_approval_of_each_credential(workdir):
    from reconciler.render import render_markdown

    live = Approved("oauth_token", CONSUMERS).start(workdir)
    try:
        plan = live.plan()
        subject = next(t for t in plan.tokens if t.name == "subject")
        assert subject.approval == f"scopes read approved in {APPROVAL}"
        assert f"    approved: scopes read approved in {APPROVAL}" in render_text(plan)
        assert APPROVAL in render_markdown(plan)
        assert plan.to_json()["tokens"][1]["approval"] == subject.approval
        assert "approval" not in plan.to_json()["tokens"][0]  # the API token has no scopes to approve
    finally:
        live.stop()


def test_a_targeted_plan_does_not_claim_the_api_token_is_gone(workdir):
    from apply_world import NOW_TEXT

    from reconciler.engine import open_session
    from reconciler.pipeline import observe_and_plan

    live = Migration("oauth_token", CONSUMERS).start(workdir)
    try:
        with open_session(live.inventory, sandbox=True, now=NOW_TEXT, env=live.env, targets=("subject",)) as session:
            plan = observe_and_plan(session)[1]
        (subject,) = plan.tokens
        assert not subject.retire and "which this run did not observe" in (subject.migration or "")
    finally:
        live.stop()


@dataclass
class UsedAfterDelivery(Migration):
    """Something outside the inventory uses the API token after the OAuth token reaches its last
    consumer: its `last_used` is ten minutes after the apply (the sandbox clock stands at the
    engine's time, so that is after every delivery of the run)."""

    def seeds(self, old: str, cred: str, zcred: str) -> tuple[dict[str, Any], dict[str, Any]]:
        gl, zd = super().seeds(old, cred, zcred)
        zd["instances"][SUB]["api_tokens"][0]["last_used"] = "now+10m"
        return gl, zd


def test_an_api_token_used_after_delivery_stays_active_until_quiet(workdir):
    live = UsedAfterDelivery("oauth_token", CONSUMERS).start(workdir)
    try:
        inst = live.zd.instance(SUB)
        result = live.apply()
        assert result.ok, result.failed
        assert result.delivered == 3 and result.revoked == 0
        assert [name for name, _ in result.kept] == ["legacy"]
        assert inst.api_token_state(inst.api_tokens[0])[0] is True, "deactivated although used after delivery"

        plan = live.plan()  # says why it is kept, and that apply keeps it until quiet
        text = render_text(plan)
        assert "an earlier apply kept it" in text and "--force-revoke legacy" in text

        later = live.after_quiet()  # two quiet days on both clocks: the next apply deactivates it
        assert later is not None and later.revoked == 1
        assert inst.api_token_state(inst.api_tokens[0])[0] is False
    finally:
        live.stop()
