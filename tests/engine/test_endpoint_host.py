"""A Zendesk webhook whose live endpoint is on another host than the inventory's template: the
plan shows both hosts on an attribute change line (text, markdown, JSON), never the value."""

from __future__ import annotations

import json

from engine_helpers import NOW, inventory, live, observed, token

from reconciler.kinds import ListKey
from reconciler.kinds.gitlab_pipeline_trigger import GitLabPipelineTrigger
from reconciler.kinds.zendesk_webhook import KIND, UNRECOGNISED, ZendeskWebhook, unrecognised
from reconciler.plan import plan
from reconciler.render import render_json, render_markdown, render_text
from reconciler.secret import Secret

VALUE = "glptt-" + "0123456789abcdef0123"  # built at run time: no credential-shaped literal
TRIGGER = GitLabPipelineTrigger(provider="gl", project="g/p", description="sync")


def planned(template: str, live_endpoint: str):
    hook = ZendeskWebhook(provider="zd", webhook="sync", endpoint=template)
    tok = token("sync", TRIGGER, consumers=(hook,))
    lists = {ListKey("zd", "webhooks"): [{"id": "01H", "name": "sync", "status": "active",
                                          "endpoint": Secret(live_endpoint)}]}
    reading = KIND.observe(tok, hook, lists)
    return plan(inventory(tok), observed([(tok, live("7"))], [reading.observation]), None, NOW)


def test_a_move_of_the_endpoint_to_another_host_is_an_attribute_change_with_both_hosts():
    p = planned("https://ci.example.com/api/v4/projects/7/trigger/pipeline?token=${token}",
                f"https://attacker.example.net/api/v4/projects/7/trigger/pipeline?token={VALUE}")
    change = next(ch for ch in p.tokens[0].consumers[0].changes if ch.attribute == "endpoint")
    assert change.old.startswith("https://attacker.example.net/…") and change.new.startswith("https://ci.example.com/")
    for text in (render_text(p), render_markdown(p), render_json(p)):
        assert "attacker.example.net" in text and "ci.example.com" in text
        assert VALUE not in text
    line = next(ln for ln in render_text(p).splitlines() if "endpoint:" in ln)
    assert "https://attacker.example.net/" in line and "-> https://ci.example.com/" in line
    assert json.loads(render_json(p))  # still JSON


def test_the_live_host_is_not_shown_when_it_may_hold_the_value():
    template = "https://ci.example.com/hook?token=${token}"
    assert unrecognised(template, Secret(f"https://{VALUE}.hooks.example.net/")) == UNRECOGNISED
    assert unrecognised("https://${token}.hooks.example.net/", Secret("https://other.example/")) == UNRECOGNISED
    assert unrecognised(template, Secret(f"https://user:{VALUE}@old.example/x")) == "https://old.example/… " \
        "(the rest does not have the template's shape; not shown)"


def test_a_webhook_sending_its_credential_to_a_plain_http_endpoint_is_a_plan_error_unless_allowed():
    from reconciler.kinds.zendesk_webhook import ZendeskWebhookAuth

    for allowed in (False, True):
        hook = ZendeskWebhook(provider="zd", webhook="sync", authentication=ZendeskWebhookAuth(type="bearer_token"),
                              allow_plain_http=allowed)
        tok = token("sync", TRIGGER, consumers=(hook,))
        lists = {ListKey("zd", "webhooks"): [{"id": "01H", "name": "sync", "status": "active",
                                              "endpoint": Secret("http://receiver.example.com/hook"),
                                              "authentication": {"type": "bearer_token"}}]}
        reading = KIND.observe(tok, hook, lists)
        p = plan(inventory(tok), observed([(tok, live("7"))], [reading.observation]), None, NOW)
        errors = [f for f in p.all_findings() if f.code == "plain_http"]
        if allowed:
            assert errors == []
        else:
            assert len(errors) == 1 and errors[0].severity == "error"
            assert "http://receiver.example.com in clear" in errors[0].message


def test_a_gitlab_hook_named_by_id_whose_live_url_is_plain_http_is_a_plan_error():
    from reconciler.kinds.gitlab_webhook import KIND as HOOKS
    from reconciler.kinds.gitlab_webhook import GitLabWebhook

    hook = GitLabWebhook(provider="gl", project="g/p", hook="12")
    tok = token("sync", TRIGGER, consumers=(hook,))
    lists = {ListKey("gl", "project_hooks", "g/p"): [{"id": 12, "url": "http://deploy.example.com/hook",
                                                      "token_present": True}]}
    reading = HOOKS.observe(tok, hook, lists)
    p = plan(inventory(tok), observed([(tok, live("7"))], [reading.observation]), None, NOW)
    assert [f.message for f in p.all_findings() if f.code == "plain_http"] == [
        "webhook '12' (project:g/p, token): the value goes to http://deploy.example.com in clear: use https://, "
        "or say `allow_plain_http: true` if the receiver cannot do https"]
