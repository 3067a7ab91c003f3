"""`reconcile check --sandbox` through the CLI against a seeded world: the report's categories
(expiring with whether the next apply rotates it and why not, expired and revoked, unmanaged with
expiry and last use, Zendesk API tokens with the cutoff, inactivity and the OAuth replacement), the
three formats, exit codes, and that the scan never writes."""

from __future__ import annotations

import json

from check_helpers import GITLAB_ENV, NOW, ZENDESK_ENV, run, served, write_inventory

SEED = {
    "credentials": {GITLAB_ENV: "{{secret:glpat:credential}}", ZENDESK_ENV: "{{secret::zd-credential}}"},
    "gitlab": {
        "users": [
            {"username": "reconcile-bot", "admin": True, "tokens": [
                {"name": "reconcile credential", "scopes": ["api"], "created_at": "now-30d", "expires_at": "now+300d",
                 "value": "{{secret:glpat:credential}}"},
                {"name": "Expired helper", "scopes": ["api"], "created_at": "now-200d", "expires_at": "now-5d"},
            ]},
            {"username": "alice", "tokens": [
                {"name": "alice laptop", "scopes": ["read_api"], "created_at": "now-40d", "expires_at": "now+50d",
                 "last_used_at": "now-3d"},
            ]},
        ],
        "groups": [{"full_path": "acme/support"}],
        "projects": [{"path_with_namespace": "acme/support/app"}, {"path_with_namespace": "acme/support/sub/sync"}],
        "access_tokens": [
            {"project": "acme/support/app", "name": "Deploy", "scopes": ["api"], "access_level": 40,
             "created_at": "now-100d", "expires_at": "now+10d"},
            {"group": "acme/support", "name": "Group bot", "scopes": ["api"], "access_level": 30,
             "created_at": "now-100d", "expires_at": "now+15d"},
            {"project": "acme/support/app", "name": "Gone", "scopes": ["api"], "access_level": 30, "revoked": True},
            {"project": "acme/support/sub/sync", "name": "Forgotten", "scopes": ["read_api"], "access_level": 30,
             "created_at": "now-300d", "expires_at": "now+40d", "last_used_at": "now-60d"},
        ],
        "triggers": [{"project": "acme/support/sub/sync", "owner": "reconcile-bot", "description": "Old trigger",
                      "created_at": "now-500d", "last_used": "now-90d"}],
    },
    "zendesk": {"instances": {"acme": {
        "oauth_clients": [{"identifier": "reconcile", "name": "Reconcile"}, {"identifier": "other_client", "name": "Other"}],
        "oauth_tokens": [
            {"client": "reconcile", "scopes": ["read", "write"], "value": "{{secret::zd-credential}}"},
            {"client": "other_client", "scopes": ["read"], "created_at": "now-20d", "used_at": "now-2d"},
        ],
        "api_tokens": [
            {"description": "Legacy reports", "created_at": "now-400d", "last_used": "now-25d"},
            {"description": "Unmanaged export", "created_at": "now-700d", "last_used": "now-1d"},
        ],
    }}},
}

TOKENS = {
    "app-deploy": {"owner": "@app-team", "source": {
        "kind": "gitlab_project_access_token", "provider": "gl", "project": "acme/support/app", "name": "Deploy",
        "scopes": ["api"], "access_level": 40}},
    "group-bot": {"owner": "@support-ops", "rotation": {"rotate_before": "7d"}, "source": {
        "kind": "gitlab_group_access_token", "provider": "gl", "group": "acme/support", "name": "Group bot",
        "scopes": ["api"], "access_level": 30}},
    "expired-helper": {"source": {"kind": "gitlab_personal_access_token", "provider": "gl", "name": "Expired helper",
                                  "scopes": ["api"]}},
    "gone": {"source": {"kind": "gitlab_project_access_token", "provider": "gl", "project": "acme/support/app",
                        "name": "Gone", "scopes": ["api"], "access_level": 30}},
    "legacy-reports": {"owner": "@reports", "source": {"kind": "zendesk_api_token", "provider": "zd",
                                                       "description": "Legacy reports"},
                       "consumers": [{"kind": "gitlab_ci_variable", "provider": "gl", "project": "acme/support/app",
                                      "key": "ZENDESK_TOKEN"}]},
}
DISCOVERY = {"gitlab": [{"provider": "gl", "users": ["alice"], "groups": ["acme/support"]}],
             "zendesk": [{"provider": "zd"}]}


def _report(capsys, workdir, monkeypatch, *extra: str) -> tuple[int, str, str, object]:
    write_inventory(workdir / "inventory", TOKENS, discovery=DISCOVERY)
    with served(SEED, monkeypatch, workdir) as world:
        code, out, err = run(capsys, "check", "--sandbox", "--now", NOW, *extra)
        return code, out, err, world.mutations()


def test_report_categories_json(capsys, workdir, monkeypatch):
    code, out, err, mutations = _report(capsys, workdir, monkeypatch, "--format", "json")
    assert code == 2, err
    assert mutations == 0  # the scan and the plan only read
    report = json.loads(out)
    assert report["needs_attention"] is True
    items = {i["key"]: i for i in report["items"]}

    deploy = items["token:app-deploy"]
    assert deploy["category"] == "expiring" and deploy["days_left"] == 10 and deploy["owner"] == "@app-team"
    assert deploy["rotates"] is True and deploy["next_apply"].startswith("rotates it")
    bot = items["token:group-bot"]
    assert bot["category"] == "expiring" and bot["days_left"] == 15 and bot["rotates"] is False
    assert "not yet: rotate_before is 7d" in bot["next_apply"] and "2026-11-30" in bot["next_apply"]

    assert items["token:expired-helper"]["category"] == "expired"
    assert items["token:expired-helper"]["state"] in ("expired", "inactive")
    gone = items["token:gone"]
    assert gone["category"] == "expired" and gone["state"] == "revoked"
    assert gone["next_apply"].startswith("creates a new one")

    unmanaged = {i["name"]: i for i in report["items"] if i["category"] == "unmanaged"}
    assert set(unmanaged) == {"alice laptop", "Forgotten", "Old trigger", "other_client"}
    assert unmanaged["alice laptop"]["owner"] == "@alice" and unmanaged["alice laptop"]["days_left"] == 50
    assert unmanaged["alice laptop"]["last_used_at"].startswith("2026-11-19")
    assert unmanaged["Forgotten"]["where"] == "gl: project acme/support/sub/sync"  # found through the subgroup
    assert unmanaged["Forgotten"]["expires_at"] == "2027-01-01"
    assert "reconcile credential" not in {i["name"] for i in report["items"]}  # its own credential, far from expiry

    api = {i["name"]: i for i in report["items"] if i["category"] == "api_token"}
    assert set(api) == {"Legacy reports", "Unmanaged export"}
    legacy = api["Legacy reports"]
    assert legacy["token"] == "legacy-reports"
    assert legacy["api_token"]["days_to_cutoff"] == 159
    assert legacy["api_token"]["idle_days"] == 25 and legacy["api_token"]["deactivates_in"] == 5
    replacement = legacy["api_token"]["replacement"]
    assert "kind: zendesk_oauth_token" in replacement and "key: ZENDESK_TOKEN" in replacement
    assert api["Unmanaged export"]["api_token"]["deactivates_in"] == 29
    assert report["counts"] == {"expired": 2, "expiring": 2, "api_token": 2, "oauth_client": 2, "unmanaged": 4,
                                "credential": 0}
    # both local OAuth clients hold tokens that never expire: 130 days to 2027-04-01
    clients = {i["name"]: i["days_left"] for i in report["items"] if i["category"] == "oauth_client"}
    assert clients == {"reconcile": 130, "other_client": 130}
    assert report["scan_errors"] == []


def test_report_text_and_markdown(capsys, workdir, monkeypatch):
    code, out, _, _ = _report(capsys, workdir, monkeypatch)
    assert code == 2
    assert "GitLab Example (gl)" in out and "Zendesk Acme (zd)" in out
    assert "expires 2026-12-02 (10 days left)" in out
    assert "next apply: rotates it (in_place)" in out
    assert "stops working on 2027-04-30 (159 days left)" in out
    assert "deactivated for inactivity in 5 days unless used" in out
    assert out.rstrip().endswith("Needs attention: 2 expired, revoked or missing, 2 expiring soon, "
                                 "2 Zendesk API tokens, 2 Zendesk OAuth clients with tokens that never expire, "
                                 "4 unmanaged (window 21 days).")
    code, md, _, _ = _report(capsys, workdir, monkeypatch, "--format", "markdown", "--within", "12d")
    assert code == 2
    assert "#### GitLab Example (gl)" in md and "**Rotate or revoke**" in md and "```yaml" in md
    assert "`group-bot`" not in md  # 15 days left is outside a 12-day window


def test_nothing_needs_attention_exits_0(capsys, workdir, monkeypatch):
    seed = {"credentials": SEED["credentials"],
            "gitlab": {"users": [SEED["gitlab"]["users"][0]], "projects": [{"path_with_namespace": "acme/support/app"}],
                       "access_tokens": [{"project": "acme/support/app", "name": "Deploy", "scopes": ["api"],
                                          "access_level": 40, "created_at": "now-10d", "expires_at": "now+200d"}]},
            "zendesk": {"instances": {"acme": {"oauth_clients": [{"identifier": "reconcile"}],
                                               # an expiring credential: no 2027-04-01 flag
                                               "oauth_tokens": [{**SEED["zendesk"]["instances"]["acme"]["oauth_tokens"][0],
                                                                 "expires_at": "now+300d"}]}}}}
    write_inventory(workdir / "inventory", {"app-deploy": TOKENS["app-deploy"]},
                    discovery={"gitlab": [{"provider": "gl", "groups": ["acme/support"]}], "zendesk": [{"provider": "zd"}]})
    with served(seed, monkeypatch, workdir) as world:
        code, out, err = run(capsys, "check", "--sandbox", "--now", NOW)
        assert world.mutations() == 0
    assert code == 0, out + err
    assert out.rstrip().endswith("Nothing needs attention (1 inventory tokens checked, window 21 days).")


def test_bad_within_and_issue_target_are_errors(capsys, workdir, monkeypatch):
    code, _, err, _ = _report(capsys, workdir, monkeypatch, "--within", "soon")
    assert code == 1 and "--within" in err and "not a duration" in err
    code, _, err, mutations = _report(capsys, workdir, monkeypatch, "--issue", "zd:acme/x")
    assert code == 1 and "zd is not a GitLab provider" in err and mutations == 0


def test_issue_goes_with_the_one_gitlab_provider_whose_credential_is_set():
    from reconciler.check import issue_target
    from reconciler.inventory.model import GitLabProvider, Inventory, StateConfig

    inventory = Inventory(
        providers={
            "gitlab": GitLabProvider(name="gitlab", url="https://gitlab.example", token_env="GL_TOKEN"),
            "ci-gitlab": GitLabProvider(name="ci-gitlab", url="https://gitlab.example", token_env="STATE_TOKEN"),
        },
        tokens={},
        state=StateConfig(backend="gitlab", provider="ci-gitlab", project="ops/inventory"),
    )
    # In CI the state's provider has no variable (the ledger uses CI_JOB_TOKEN): the issue goes
    # with the provider that can authenticate.
    assert issue_target(inventory, "ops/inventory", {"GL_TOKEN": "x"}) == ("gitlab", "ops/inventory")
    assert issue_target(inventory, "ops/inventory", {}) == ("ci-gitlab", "ops/inventory")
    assert issue_target(inventory, "ci-gitlab:ops/other", {"GL_TOKEN": "x"}) == ("ci-gitlab", "ops/other")
