"""`reconcile discover --sandbox` through the CLI against a seeded world with planted consumers:
it finds them, identifies each value without revealing it, notes the write-only places, never
writes anything live, and its output validates and plans to no changes for those consumers."""

from __future__ import annotations

import json

import yaml
from check_helpers import GITLAB_ENV, PROVIDERS, ZENDESK_ENV, run, served, write_inventory

SEED = {
    "credentials": {GITLAB_ENV: "{{secret:glpat:credential}}", ZENDESK_ENV: "{{secret::zd-credential}}"},
    "gitlab": {
        "users": [
            {"username": "reconcile-bot", "admin": True, "tokens": [
                {"name": "reconcile credential", "scopes": ["api"], "expires_at": "now+300d",
                 "value": "{{secret:glpat:credential}}"}]},
            {"username": "alice", "tokens": [
                {"name": "alice script", "scopes": ["read_api"], "expires_at": "now+100d",
                 "value": "{{secret:glpat:alice-script}}"}]},
        ],
        "groups": [{"full_path": "acme/support"}],
        "projects": [{"path_with_namespace": "acme/support/app"}, {"path_with_namespace": "acme/support/sub/sync"}],
        "access_tokens": [
            {"project": "acme/support/app", "name": "Deploy", "scopes": ["api"], "access_level": 40,
             "expires_at": "now+200d", "value": "{{secret:glpat:deploy}}"},
            {"project": "acme/support/app", "name": "Nowhere", "scopes": ["read_api"], "access_level": 30,
             "expires_at": "now+200d"},
        ],
        "triggers": [{"project": "acme/support/sub/sync", "owner": "reconcile-bot", "description": "Sync trigger",
                      "value": "{{secret:glptt:sync-trigger}}"}],
        "variables": [
            {"project": "acme/support/app", "key": "DEPLOY_TOKEN", "value": "{{secret:glpat:deploy}}", "masked": True,
             "protected": True},
            {"group": "acme/support", "key": "ALICE_AUTH", "value": "Bearer {{secret:glpat:alice-script}}"},
            {"project": "acme/support/sub/sync", "key": "ZENDESK_TOKEN", "value": "{{secret::zd-sync}}", "masked": True,
             "environment_scope": "production"},
            {"project": "acme/support/app", "key": "HIDDEN_TOKEN", "value": "{{secret:glpat:hidden}}", "masked": True,
             "hidden": True},
            {"project": "acme/support/app", "key": "OLD_TRIGGER", "value": "{{secret:glptt:deleted-trigger}}"},
            {"project": "acme/support/app", "key": "MYSTERY", "value": "{{secret::mystery}}", "masked": True},
            {"project": "acme/support/app", "key": "LOG_LEVEL", "value": "debug"},
        ],
        "hooks": [{"project": "acme/support/app", "url": "https://hooks.example/deploy", "token": "{{secret::hook-secret}}",
                   "push_events": True}],
    },
    "zendesk": {"instances": {"acme": {
        "oauth_clients": [{"identifier": "reconcile", "name": "Reconcile"}, {"identifier": "sync_client", "name": "Sync"}],
        "oauth_tokens": [
            {"client": "reconcile", "scopes": ["read", "write"], "value": "{{secret::zd-credential}}"},
            {"client": "sync_client", "scopes": ["read", "tickets:write"], "value": "{{secret::zd-sync}}"},
        ],
        "apps": [{"id": 501, "name": "Sync App", "parameters": [{"name": "trigger_token"}, {"name": "project"},
                                                                {"name": "api_key", "secure": True}]}],
        "installations": [{"id": 601, "app": "Sync App", "settings": {
            "name": "Sync App", "trigger_token": "{{secret:glptt:sync-trigger}}", "project": "acme/support/sub/sync",
            "api_key": "{{secret::app-key}}"}}],
        "webhooks": [
            {"name": "Start sync", "endpoint": "https://gitlab.example/api/v4/projects/2/trigger/pipeline?ref=main"
                                               "&token={{secret:glptt:sync-trigger}}",
             "http_method": "POST", "request_format": "json"},
            {"name": "Notify", "endpoint": "https://notify.example/hook", "http_method": "POST", "request_format": "json",
             "authentication": {"type": "bearer_token", "data": {"token": "{{secret::notify-bearer}}"},
                                "add_position": "header"}},
        ],
    }}},
}
DISCOVERY = {"gitlab": [{"provider": "gl", "users": ["alice"], "groups": ["acme/support"]}],
             "zendesk": [{"provider": "zd"}]}


def _tokens_by_source(doc: dict) -> dict[str, dict]:
    return {t["source"].get("name") or t["source"].get("description") or t["source"].get("client"): t
            for t in doc["tokens"].values()}


def test_discover_finds_planted_consumers_and_round_trips(capsys, workdir, monkeypatch):
    write_inventory(workdir / "inventory", {}, discovery=DISCOVERY)
    out = workdir / "found" / "discovered.yaml"
    with served(SEED, monkeypatch, workdir) as world:
        code, stdout, err = run(capsys, "discover", "--sandbox", "--out", str(out))
        assert code == 0, err
        assert world.mutations() == 0  # only reads
        assert stdout == ""
        assert "discover: 6 candidate values tried, 4 identified; 4 tokens with 5 consumers written to" in err

        text = out.read_text()
        doc = yaml.safe_load(text)
        found = _tokens_by_source(doc)
        assert set(found) == {"Deploy", "alice script", "Sync trigger", "sync_client"}
        assert found["Deploy"]["source"] == {"kind": "gitlab_project_access_token", "provider": "gl",
                                             "project": "acme/support/app", "name": "Deploy", "scopes": ["api"],
                                             "access_level": 40}
        assert found["Deploy"]["consumers"] == [{"kind": "gitlab_ci_variable", "provider": "gl",
                                                 "project": "acme/support/app", "key": "DEPLOY_TOKEN",
                                                 "masked": True, "protected": True}]
        alice = found["alice script"]
        assert alice["source"]["user"] == "alice" and alice["source"]["kind"] == "gitlab_personal_access_token"
        assert alice["consumers"][0]["group"] == "acme/support" and alice["consumers"][0]["value"] == "Bearer ${token}"
        trigger = found["Sync trigger"]
        assert trigger["source"] == {"kind": "gitlab_pipeline_trigger", "provider": "gl",
                                     "project": "acme/support/sub/sync", "description": "Sync trigger"}
        kinds = {c["kind"]: c for c in trigger["consumers"]}
        assert kinds["zendesk_webhook"]["webhook"] == "Start sync"
        assert kinds["zendesk_webhook"]["endpoint"].endswith("?ref=main&token=${token}")
        assert kinds["zendesk_app_setting"] == {"kind": "zendesk_app_setting", "provider": "zd", "app": "Sync App",
                                                "setting": "trigger_token"}
        oauth = found["sync_client"]
        assert oauth["source"] == {"kind": "zendesk_oauth_token", "provider": "zd", "client": "sync_client",
                                   "scopes": ["read", "tickets:write"]}
        assert oauth["consumers"][0]["environment_scope"] == "production"

        # what cannot be determined is said, as comments
        assert "CI variable HIDDEN_TOKEN (project acme/support/app, scope *) is hidden: write-only" in text
        assert "webhook https://hooks.example/deploy (project acme/support/app) has a secret token" in text
        assert "Zendesk webhook 'Notify' authenticates with bearer_token" in text
        assert "app 'Sync App' secure setting api_key: write-only" in text
        assert "CI variable OLD_TRIGGER (project acme/support/app, scope *) holds a pipeline trigger token" in text
        assert "CI variable MYSTERY (project acme/support/app, scope *) holds a hex value" in text
        assert "project access token 'Nowhere'" in text  # live, found in no readable place
        assert "LOG_LEVEL" not in text

        # round trip: the output with the providers validates, and plans to no changes, every consumer verified
        (out.parent / "providers.yaml").write_text(yaml.safe_dump(PROVIDERS))
        code, stdout, err = run(capsys, "validate", "--inventory", str(out.parent))
        assert code == 0, err
        assert stdout.startswith("ok: 4 tokens, 5 consumers, 2 providers")
        code, stdout, err = run(capsys, "plan", "--sandbox", "--inventory", str(out.parent), "--format", "json",
                                "--detailed-exitcode")
        assert code == 0, stdout + err
        plan = json.loads(stdout)
        assert plan["has_changes"] is False
        states = [c["state"] for t in plan["tokens"] for c in t["consumers"]]
        assert states == ["verified"] * 5
        assert world.mutations() == 0


def test_discover_to_stdout_and_refuses_to_overwrite(capsys, workdir, monkeypatch):
    write_inventory(workdir / "inventory", {}, discovery=DISCOVERY)
    out = workdir / "discovered.yaml"
    out.write_text("# mine\n")
    with served(SEED, monkeypatch, workdir) as world:
        code, _, err = run(capsys, "discover", "--sandbox", "--out", str(out))
        assert code == 1 and "exists; pass --force" in err and out.read_text() == "# mine\n"
        assert world.requests() == 0  # refused before any request
        code, stdout, err = run(capsys, "discover", "--sandbox")
        assert code == 0 and yaml.safe_load(stdout)["tokens"]
        code, _, err = run(capsys, "discover", "--sandbox", "--out", str(out), "--force")
        assert code == 0 and yaml.safe_load(out.read_text())["tokens"]
        assert world.mutations() == 0


def test_discover_without_scopes_is_an_error(capsys, workdir, monkeypatch):
    write_inventory(workdir / "inventory", {})
    with served(SEED, monkeypatch, workdir) as world:
        code, _, err = run(capsys, "discover", "--sandbox")
        assert code == 1 and "discovery: declares no scope" in err
        assert world.requests() == 0


def test_a_template_is_written_only_when_the_rest_of_the_value_holds_no_other_secret():
    from reconciler.discover import safe_template

    for safe in ("${token}", "Bearer ${token}",
                 "https://gitlab.com/api/v4/projects/4711/ref/main/trigger/pipeline?token=${token}",
                 "https://hooks.example.com/run?ref=main&token=${token}"):
        assert safe_template(safe), safe
    for unsafe in ("url=https://x.example/?k=${token}\nzendesk_password=hunter2-very-secret\n",
                   "https://x.example/run?token=${token}&api_key=abcdef",
                   "https://user:pw@x.example/run?token=${token}",
                   "https://x.example/run?token=${token}&sig=" + "a" * 40,
                   "${token}:other-secret-part"):
        assert not safe_template(unsafe), unsafe
