"""The trusted provider set: a change under review cannot choose where a secret goes.

The attack: a merge request adds one inventory file declaring a provider at a host it controls
(here a second sandbox GitLab, "the attacker") with `token_env: HOME` (no credential needed),
and a token on it whose consumer is an existing CI/CD variable of the real GitLab. Observing
that token reads the variable with the real credential and would send its value to the
attacker's provider to identify it. With the trusted set from the environment, the attacker's
provider is never contacted: its request log stays empty, and the plan shows the refusal as the
token's error. Real HTTP to two sandboxes; nothing mocked.
"""

from __future__ import annotations

import secrets

import pytest

from reconciler.engine import open_session
from reconciler.pipeline import observe_and_plan
from reconciler_sandbox.gitlab import serve_gitlab

TRUSTED_PROVIDERS_ENV = "RECONCILE_TRUSTED_PROVIDERS"

PROVIDERS = """\
providers:
  gl: {{kind: gitlab, url: {url}, auth: {{token_env: GL_TOKEN}}}}
tokens:
  deploy:
    source: {{kind: gitlab_pipeline_trigger, provider: gl, project: g/app, description: deploy}}
    consumers:
      - {{kind: gitlab_ci_variable, provider: gl, project: g/app, key: TRIGGER}}
"""

# the merge request's new file
EVIL = """\
providers:
  evil: {{kind: gitlab, url: {url}, auth: {{token_env: HOME}}}}
tokens:
  steal:
    source: {{kind: gitlab_personal_access_token, provider: evil, name: x, scopes: [api]}}
    consumers:
      - {{kind: gitlab_ci_variable, provider: gl, project: g/app, key: DEPLOY_TOKEN}}
"""


def victim_seed(credential: str, held: str, trigger: str) -> dict:
    return {
        "users": [{"username": "bot", "admin": True, "tokens": [
            {"name": "cred", "scopes": ["api"], "value": credential},
            {"name": "deploy-pat", "scopes": ["api"], "value": held},
        ]}],
        "projects": [{"path_with_namespace": "g/app", "members": {"bot": 40}}],
        "triggers": [{"project": "g/app", "owner": "bot", "description": "deploy", "value": trigger}],
        "variables": [{"project": "g/app", "key": "TRIGGER", "value": trigger},
                      {"project": "g/app", "key": "DEPLOY_TOKEN", "value": held}],
    }


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.delenv("CI_JOB_TOKEN", raising=False)
    credential, held = "glpat-" + secrets.token_hex(12), "glpat-" + secrets.token_hex(12)
    trigger = "glptt-" + secrets.token_hex(12)
    # the attacker's server accepts whatever $HOME holds as its credential, as a real one would
    home = "/home/" + secrets.token_hex(8)
    attacker_seed = {"users": [{"username": "eve", "admin": True,
                                "tokens": [{"name": "any", "scopes": ["api"], "value": home}]}]}
    with serve_gitlab(victim_seed(credential, held, trigger)) as victim, serve_gitlab(attacker_seed) as attacker:
        inventory = tmp_path / "inventory"
        inventory.mkdir()
        (inventory / "providers.yaml").write_text(PROVIDERS.format(url=victim.url))
        (inventory / "zz-new.yaml").write_text(EVIL.format(url=attacker.url))
        env = {"GL_TOKEN": credential, "HOME": home}
        yield inventory, env, victim, attacker


def plan_with(inventory, env):
    with open_session(inventory, env=env, now="2026-11-22T12:00:00Z") as session:
        return observe_and_plan(session)[1]


def steal_errors(plan) -> list[str]:
    token = next(t for t in plan.tokens if t.name == "steal")
    assert token.action == "none" and token.blocked
    return [f.message for f in token.findings if f.severity == "error"]


def test_a_provider_the_change_adds_is_never_contacted_with_the_trusted_set(world):
    inventory, env, victim, attacker = world
    env[TRUSTED_PROVIDERS_ENV] = f"{victim.url}=GL_TOKEN"
    plan = plan_with(inventory, env)
    assert not any(e.path == "/api/v4/personal_access_tokens/self" for e in attacker.log.snapshot())  # no held value arrived
    assert attacker.log.snapshot() == []  # not one request: not even the credential
    errors = steal_errors(plan)
    assert len(errors) == 1 and "provider evil" in errors[0] and "not in the trusted provider set" in errors[0]
    # the trusted provider's token is planned as before
    deploy = next(t for t in plan.tokens if t.name == "deploy")
    assert not deploy.blocked and deploy.consumers[0].state == "verified"
    # the variable the new token points at was not identified anywhere (the trigger is identified
    # by comparison with the listed triggers)
    assert [e.path for e in victim.log.snapshot()].count("/api/v4/personal_access_tokens/self") == 0


def test_a_merge_request_pipeline_without_the_trusted_set_contacts_no_provider(world):
    inventory, env, victim, attacker = world
    env.update({"CI": "true", "CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "12"})
    plan = plan_with(inventory, env)
    assert attacker.log.snapshot() == [] and victim.log.snapshot() == []
    assert all(t.blocked for t in plan.tokens)
    assert "merge-request pipeline trusts no provider" in steal_errors(plan)[0]


def test_an_altered_provider_address_or_credential_variable_is_not_trusted(world):
    inventory, env, victim, attacker = world
    (inventory / "zz-new.yaml").unlink()
    env[TRUSTED_PROVIDERS_ENV] = f"{victim.url}=OTHER_TOKEN"  # the change swapped the credential variable
    plan = plan_with(inventory, env)
    assert victim.log.snapshot() == []
    assert all(t.blocked for t in plan.tokens)


def test_the_workstation_default_still_trusts_the_checkout(world):
    """Without a trust source outside CI the inventory is trusted as checked out (documented in
    docs/security.md): the added provider is contacted. This pins the default, so that changing
    it is a decision."""
    inventory, env, victim, attacker = world
    (inventory / "zz-new.yaml").unlink()
    plan = plan_with(inventory, env)
    assert not plan.errors and len(victim.log.snapshot()) > 0


def test_the_default_branchs_inventory_can_be_the_trusted_set(world, tmp_path):
    """RECONCILE_TRUSTED_INVENTORY: a checkout of the default branch beside the one under review."""
    inventory, env, victim, attacker = world
    main = tmp_path / "main-checkout"
    main.mkdir()
    (main / "providers.yaml").write_text((inventory / "providers.yaml").read_text())
    env["RECONCILE_TRUSTED_INVENTORY"] = str(main)
    plan = plan_with(inventory, env)
    assert attacker.log.snapshot() == []
    assert "RECONCILE_TRUSTED_INVENTORY does not name it" in steal_errors(plan)[0]
    assert not next(t for t in plan.tokens if t.name == "deploy").blocked
