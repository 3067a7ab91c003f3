"""`reconcile check` and `discover` through the CLI on a GitLab.com world, where the credential is
an Owner of a top-level group and not an administrator: the enterprise users' tokens and the
group's access tokens come from the group's credentials inventory, named by username and path; the
group's service accounts' tokens appear too; a refused inventory is one clear line."""

from __future__ import annotations

import json

import yaml
from check_helpers import GITLAB_ENV, NOW, run, served, write_inventory

SEED = {
    "credentials": {GITLAB_ENV: "{{secret:glpat:credential}}"},
    "gitlab": {
        "users": [
            {"username": "owner-bot", "tokens": [
                {"name": "reconcile credential", "scopes": ["api"], "created_at": "now-30d", "expires_at": "now+300d",
                 "value": "{{secret:glpat:credential}}"}]},
            {"username": "alice", "enterprise_group": "acme", "tokens": [
                {"name": "alice laptop", "scopes": ["read_api"], "created_at": "now-40d", "expires_at": "now+10d",
                 "last_used_at": "now-3d"},
                {"name": "alice far", "scopes": ["api"], "created_at": "now-40d", "expires_at": "now+200d"}]},
            {"username": "bob", "enterprise_group": "acme", "tokens": [
                {"name": "bob ci", "scopes": ["api"], "created_at": "now-40d", "expires_at": "now+15d"}]},
            {"username": "erin", "enterprise_group": "acme", "tokens": [  # not a user the scope lists
                {"name": "erin phone", "scopes": ["api"], "created_at": "now-40d", "expires_at": "now+5d"}]},
        ],
        "groups": [{"full_path": "acme", "plan": "ultimate",
                    "members": {"owner-bot": 50, "alice": 30, "bob": 30, "erin": 30}},
                   {"full_path": "acme/support"}],
        "projects": [{"path_with_namespace": "acme/support/app"}],
        "access_tokens": [
            {"project": "acme/support/app", "name": "Deploy", "scopes": ["api"], "access_level": 40,
             "created_at": "now-100d", "expires_at": "now+10d"},
            {"group": "acme/support", "name": "Group bot", "scopes": ["read_api"], "access_level": 30,
             "created_at": "now-100d", "expires_at": "now+12d"},
        ],
        "service_accounts": [{"group": "acme", "username": "sync-bot", "tokens": [
            {"name": "sync", "scopes": ["api"], "expires_at": "now+8d", "last_used_at": "now-1d",
             "value": "{{secret:glpat:sync-bot}}"}]}],
        "variables": [{"project": "acme/support/app", "key": "SYNC_TOKEN", "value": "{{secret:glpat:sync-bot}}",
                       "masked": True}],
    },
}
DISCOVERY = {"gitlab": [{"provider": "gl", "users": ["alice", "bob"], "groups": ["acme"]}]}


def _items(out: str) -> dict[str, dict]:
    return {i["title"]: i for i in json.loads(out)["items"]}


def test_a_group_owner_sees_enterprise_users_tokens_by_username(capsys, workdir, monkeypatch):
    write_inventory(workdir / "inventory", {}, discovery=DISCOVERY)
    with served(SEED, monkeypatch, workdir) as world:
        code, out, err = run(capsys, "check", "--sandbox", "--now", NOW, "--format", "json")
        paths = [(e.method, e.path, e.query_keys) for e in world.gitlab.log.snapshot()]
        _, text, _ = run(capsys, "check", "--sandbox", "--now", NOW)
    report = json.loads(out)
    assert code == 2 and report["scan_errors"] == [], report["scan_errors"]
    items = _items(out)
    laptop = items["personal access token 'alice laptop' #2"]
    assert laptop["where"] == "gl: user alice" and laptop["owner"] == "@alice" and laptop["days_left"] == 10
    assert items["personal access token 'bob ci' #4"]["where"] == "gl: user bob"
    assert not any("erin" in title for title in items)  # the scope lists alice and bob
    assert items["project access token 'Deploy' #6"]["where"] == "gl: project acme/support/app"
    assert items["group access token 'Group bot' #7"]["where"] == "gl: group acme/support"
    sync = items["service account token 'sync' #8"]
    assert sync["where"] == "gl: service account sync-bot (group acme)" and sync["days_left"] == 8
    # the others' tokens through the inventory: no per-user list a non-admin is refused, no per-project list
    assert ("GET", "/api/v4/groups/acme/manage/personal_access_tokens") in [p[:2] for p in paths]
    assert ("GET", "/api/v4/groups/acme/manage/resource_access_tokens") in [p[:2] for p in paths]
    assert not any(p[1].endswith("/access_tokens") for p in paths)
    assert not any(p[1] == "/api/v4/personal_access_tokens" for p in paths)  # another user's: refused to a non-admin
    assert "only an administrator" not in text and "could not scan" not in text
    assert "gl: user alice; expires 2026-12-02 (10 days left)" in text


def test_a_refused_inventory_is_one_line_saying_who_may_read_it(capsys, workdir, monkeypatch):
    seed = json.loads(json.dumps(SEED))
    seed["gitlab"]["groups"][0]["plan"] = "premium"  # service accounts yes, credentials inventory no
    write_inventory(workdir / "inventory", {}, discovery=DISCOVERY)
    with served(seed, monkeypatch, workdir) as world:
        code, out, _ = run(capsys, "check", "--sandbox", "--now", NOW, "--format", "json")
        refused = [e for e in world.gitlab.log.snapshot() if "/manage/" in e.path]
    errors = json.loads(out)["scan_errors"]
    assert [e.status for e in refused] == [403, 403]  # both lists asked, both refused
    assert len(errors) == 1, errors
    assert errors[0].startswith("gl: credentials inventory of group acme: refused (403 Forbidden)")
    assert "Owner role of the top-level group on GitLab.com with the Ultimate tier" in errors[0]
    items = _items(out)
    assert not any("alice" in t or "bob" in t for t in items)  # not scanned, and said so
    assert "project access token 'Deploy' #6" in items  # the project's own list, as a Maintainer reads it
    assert "service account token 'sync' #8" in items


def test_discover_identifies_a_service_account_token_and_its_yaml_validates(capsys, workdir, monkeypatch):
    write_inventory(workdir / "inventory", {}, discovery=DISCOVERY)
    with served(SEED, monkeypatch, workdir):
        code, out, err = run(capsys, "discover", "--sandbox")
    assert code == 0, err
    found = yaml.safe_load(out)["tokens"]
    (sync,) = [t for t in found.values() if t["source"]["kind"] == "gitlab_service_account_token"]
    assert sync["source"] == {"kind": "gitlab_service_account_token", "provider": "gl", "account": "sync-bot",
                              "name": "sync", "scopes": ["api"], "group": "acme"}
    assert sync["consumers"][0]["key"] == "SYNC_TOKEN"
    (workdir / "inventory" / "found.yaml").write_text(out)
    code, out, err = run(capsys, "validate")
    assert code == 0, out + err


def test_the_adopt_and_revoke_yaml_of_enterprise_users_tokens_apply_through_the_inventory(capsys, workdir, monkeypatch):
    """A group Owner cannot rotate or revoke another user's token as that user or an admin would:
    the YAML check offers names the enterprise group, and apply goes through its credentials
    inventory (`POST .../manage/personal_access_tokens/:id/rotate`, `DELETE .../:id`)."""
    write_inventory(workdir / "inventory", {}, discovery=DISCOVERY)
    with served(SEED, monkeypatch, workdir) as world:
        _, out, _ = run(capsys, "check", "--sandbox", "--now", NOW, "--format", "json")
        by_name = {i["name"]: i for i in json.loads(out)["items"]}
        adopt, revoke = by_name["alice laptop"]["adopt_yaml"], by_name["bob ci"]["revoke_yaml"]
        assert yaml.safe_load(adopt)["tokens"]["alice-laptop"]["source"]["enterprise_group"] == "acme"
        (workdir / "inventory" / "adopted.yaml").write_text(adopt)
        (workdir / "inventory" / "revoked.yaml").write_text(revoke)
        before = len(world.gitlab.log.mutations())
        code, out, err = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", NOW)
        assert code == 0, out + err
        writes = [(e.method, e.path) for e in world.gitlab.log.mutations()[before:]]
        assert ("POST", "/api/v4/groups/acme/manage/personal_access_tokens/2/rotate") in writes
        assert ("DELETE", "/api/v4/groups/acme/manage/personal_access_tokens/4") in writes
        code, out, _ = run(capsys, "plan", "--sandbox", "--now", NOW)
        assert code == 0 and "No changes." in out
        _, out, _ = run(capsys, "check", "--sandbox", "--now", NOW, "--format", "json")
    names = {i["name"] for i in json.loads(out)["items"]}
    assert "bob ci" not in names and "alice laptop" not in names  # revoked, and managed (renewed)


def test_enterprise_group_names_another_users_token_in_a_top_level_group(capsys, workdir):
    tokens = {"mine": {"source": {"kind": "gitlab_personal_access_token", "provider": "gl", "name": "x",
                                  "scopes": ["api"], "enterprise_group": "acme"}},
              "sub": {"source": {"kind": "gitlab_personal_access_token", "provider": "gl", "name": "y",
                                 "scopes": ["api"], "user": "alice", "enterprise_group": "acme/support"}}}
    write_inventory(workdir / "inventory", tokens)
    code, out, err = run(capsys, "validate")
    assert code == 1
    assert "tokens.mine.source.enterprise_group: enterprise_group names another user's token" in out + err
    assert "tokens.sub.source.enterprise_group: 'acme/support' is a subgroup" in out + err
