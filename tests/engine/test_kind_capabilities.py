"""Kinds as the planner's plugin boundary: the planner knows capabilities and hooks, never a kind
name, and a capability a kind lacks is refused rather than guessed. No HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from engine_helpers import NOW, inventory, live, observed, pos, token

from reconciler.kinds import (
    Creatable,
    Identifying,
    Mintable,
    Readable,
    Recreatable,
    Renewable,
    Revocable,
    Supplied,
    capable,
    consumer_kind,
    source_kind,
)
from reconciler.kinds.gitlab_personal_access_token import GitLabPersonalAccessToken
from reconciler.kinds.zendesk_oauth_client_secret import ZendeskOAuthClientSecret
from reconciler.plan import plan

PLANNER = [Path("reconciler/plan.py"), Path("reconciler/plan_model.py"), Path("reconciler/planner.py")]


@pytest.mark.parametrize("path", PLANNER, ids=str)
def test_planner_modules_name_no_kind(path):
    text = (Path(__file__).parents[2] / path).read_text()
    assert re.findall(r"gitlab_|zendesk_|GitLab|Zendesk|External", text) == []


def test_capabilities_of_the_kinds():
    assert isinstance(source_kind("gitlab_pipeline_trigger"), Mintable | Revocable | Identifying)
    assert not isinstance(source_kind("gitlab_pipeline_trigger"), Renewable)
    assert isinstance(source_kind("zendesk_oauth_client_secret"), Renewable)
    assert not isinstance(source_kind("zendesk_oauth_client_secret"), Revocable | Mintable | Identifying)
    assert isinstance(source_kind("external"), Supplied) and not isinstance(source_kind("external"), Mintable)
    assert isinstance(consumer_kind("gitlab_webhook"), Recreatable)
    assert not isinstance(consumer_kind("gitlab_webhook"), Readable | Creatable)
    assert isinstance(consumer_kind("gitlab_ci_variable"), Creatable | Readable)


def test_a_pat_is_mintable_only_with_strategy_overlap():
    kind = source_kind("gitlab_personal_access_token")
    assert isinstance(kind, Mintable)
    assert not kind.mintable_for(GitLabPersonalAccessToken(provider="gl", name="bot", scopes=("api",)))
    assert kind.mintable_for(GitLabPersonalAccessToken(provider="gl", name="bot", scopes=("api",), strategy="overlap"))


def test_capable_refuses_a_missing_capability():
    with pytest.raises(NotImplementedError, match="OAuthClientSecretKind is not Revocable"):
        capable(source_kind("zendesk_oauth_client_secret"), Revocable)
    assert capable(source_kind("zendesk_oauth_client_secret"), Renewable) is source_kind("zendesk_oauth_client_secret")


def test_absent_secret_of_a_kind_without_revoke_is_an_error_in_the_plan():
    tok = token("s", ZendeskOAuthClientSecret(provider="zd", client="sync", pos=pos(5)), state="absent")
    p = plan(inventory(tok), observed([(tok, live("7"))]), None, NOW)
    (tp,) = p.tokens
    assert tp.action == "revoke" and tp.blocked
    assert [f.code for f in tp.findings] == ["cannot_revoke"]
