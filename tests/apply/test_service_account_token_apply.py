"""A service account's token, through `reconcile plan` / `apply` (reconciler.cli) against the
GitLab sandbox: a group service account's token renewed by overlap (the CI variable holds the new,
verified value before the old token is revoked), by rotation in place (`strategy: in_place`), and
an instance service account's token on a self-managed instance (an administrator's credential)."""

from __future__ import annotations

import json

import pytest

from reconciler import cli
from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK
from reconciler_sandbox.world import derive, start_world
from tests.apply.apply_world import NOW, NOW_TEXT, stop_soon

OLD = derive("glpat", "sa-sync-old")
CRED = "{{secret:glpat:sa-owner}}"
INVENTORY = """\
providers:
  gl: {kind: gitlab, url: https://gitlab.example.com, auth: {token_env: GL_TOKEN}}
defaults:
  rotation: {rotate_before: 21d, lifetime: 180d, max_age: 90d}
tokens:
  sync:
    description: the token the export job uses
    owner: "@ops"
    source: {kind: gitlab_service_account_token, provider: gl, account: sync-bot, name: sync, scopes: [api]%(extra)s}
    consumers:
      - {kind: gitlab_ci_variable, provider: gl, project: acme/app, key: SYNC_TOKEN, masked: true}
"""


def world_seed(*, instance: bool) -> dict:
    old = {"name": "sync", "scopes": ["api"], "value": "{{secret:glpat:sa-sync-old}}",
           "created_at": "now-100d", "expires_at": "now+200d"}
    account = {"instance": True} if instance else {"group": "acme"}
    return {
        "credentials": {"GL_TOKEN": CRED},
        "gitlab": {
            "users": [{"username": "owner", "admin": instance, "tokens": [
                {"name": "reconcile", "scopes": ["api"], "value": CRED, "expires_at": "now+300d"}]}],
            "groups": [{"full_path": "acme", "members": {"owner": 50}}],
            "projects": [{"path_with_namespace": "acme/app"}],
            "service_accounts": [{**account, "username": "sync-bot", "tokens": [old]}],
            "variables": [{"project": "acme/app", "key": "SYNC_TOKEN", "value": "{{secret:glpat:sa-sync-old}}",
                           "masked": True}],
        },
        "zendesk": {"instances": {}},
    }


@pytest.fixture
def serve(workdir, monkeypatch):
    """Start a world with the service account (a group's, or the instance's) and write the inventory."""
    started = []

    def start(*, instance: bool = False, extra: str = ""):
        seed = workdir / "world.yaml"
        seed.write_text(json.dumps(world_seed(instance=instance)))
        world = start_world(seed, now=NOW)
        started.append(world)
        for name, value in world.credentials.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(SANDBOX_ENV_GITLAB, world.gitlab.url)
        monkeypatch.setenv(SANDBOX_ENV_ZENDESK, world.endpoints.zendesk_netloc)
        (workdir / "inventory").mkdir(exist_ok=True)
        group = "" if instance else ", group: acme"
        (workdir / "inventory" / "inv.yaml").write_text(INVENTORY % {"extra": group + extra})
        return world

    yield start
    for world in started:
        stop_soon(world.gitlab, world.zendesk)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main([*args, "--sandbox", "--now", NOW_TEXT])
    out, err = capsys.readouterr()
    assert OLD not in out + err
    return code, out, err


def held(world) -> str | None:
    return world.gitlab.service.variable_value("project", "acme/app", "SYNC_TOKEN")


def account_tokens(world) -> list[dict]:
    account = world.gitlab.service.user("sync-bot")
    return world.gitlab.service.tokens(user_id=account["id"], name="sync")


def mutations(world) -> list[tuple[str, str]]:
    return [(e.method, e.path) for e in world.gitlab.log.mutations()]


def test_a_group_service_account_token_rotates_by_overlap_and_the_old_one_goes_after_delivery(serve, capsys):
    world = serve()
    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert (code, err) == (2, ""), out
    assert "sync" in out and not world.gitlab.log.mutations()

    code, out, err = run(capsys, "apply", "--auto-approve")
    assert code == 0, out + err
    # identifying the variable's value used the old token, and GitLab records a use at most every
    # 10 minutes: a use after delivery cannot be excluded, so apply keeps it until quiet
    assert "kept until quiet" in out and not world.gitlab.service.token_by_value(OLD)["revoked"], out
    code, out, err = run(capsys, "apply", "--auto-approve", "--force-revoke", "sync")  # revoked at once
    assert code == 0, out + err
    new_value = held(world)
    assert new_value not in (None, OLD) and new_value not in out + err
    new = world.gitlab.service.token_by_value(new_value)
    assert new["active"] and new["name"] == "sync" and new["scopes"] == ["api"]
    assert new["user_id"] == world.gitlab.service.user("sync-bot")["id"]  # the account's, not the caller's
    assert world.gitlab.service.token_by_value(OLD)["revoked"]
    assert "verified" in out
    # create beside the old one, deliver, then revoke: the old value outlived the delivery
    steps = mutations(world)
    create = steps.index(("POST", "/api/v4/groups/acme/service_accounts/"
                                  f"{new['user_id']}/personal_access_tokens"))
    write = next(i for i, (method, path) in enumerate(steps) if "/variables" in path and method in ("PUT", "POST"))
    revoke = next(i for i, (method, path) in enumerate(steps) if method == "DELETE")
    assert create < write < revoke, steps
    assert not any(path.endswith("/rotate") for _, path in steps)
    assert [t["active"] for t in account_tokens(world)].count(True) == 1

    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert code == 0 and "No changes." in out, out + err


def test_strategy_in_place_rotates_the_group_service_account_token(serve, capsys):
    world = serve(extra=", strategy: in_place")
    code, out, err = run(capsys, "apply", "--auto-approve")
    assert code == 0, out + err
    new_value = held(world)
    assert new_value not in (None, OLD)
    new = world.gitlab.service.token_by_value(new_value)
    old = world.gitlab.service.token_by_value(OLD)
    assert new["active"] and old["revoked"] and new["previous_id"] == old["id"]  # one rotation family
    steps = mutations(world)
    assert [s for s in steps if s[0] in ("POST", "DELETE") and "service_accounts" in s[1]] == [
        ("POST", f"/api/v4/groups/acme/service_accounts/{new['user_id']}/personal_access_tokens/{old['id']}/rotate")]

    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert code == 0 and "No changes." in out, out + err


def test_an_instance_service_account_token_rotates_by_overlap_with_an_administrator(serve, capsys):
    world = serve(instance=True)
    code, out, err = run(capsys, "apply", "--auto-approve", "--force-revoke", "sync")  # not kept until quiet
    assert code == 0, out + err
    new_value = held(world)
    assert new_value not in (None, OLD)
    new = world.gitlab.service.token_by_value(new_value)
    assert new["active"] and new["user_id"] == world.gitlab.service.user("sync-bot")["id"]
    assert world.gitlab.service.token_by_value(OLD)["revoked"]
    steps = mutations(world)
    assert ("POST", f"/api/v4/users/{new['user_id']}/personal_access_tokens") in steps
    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert code == 0 and "No changes." in out, out + err


def test_an_unknown_account_is_a_plan_error_and_nothing_is_written(serve, workdir, capsys):
    world = serve()
    path = workdir / "inventory" / "inv.yaml"
    path.write_text(path.read_text().replace("account: sync-bot", "account: nobody-bot"))
    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert code == 1, out + err
    assert "group acme has no service account named 'nobody-bot'" in out + err
    run(capsys, "apply", "--auto-approve")  # the unobservable token is left as it is
    assert not world.gitlab.log.mutations() and held(world) == OLD
