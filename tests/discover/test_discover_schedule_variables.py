"""`reconcile discover --sandbox` finds tokens kept in pipeline schedule variables, declares each
schedule by its description (with its id where the description is shared), and its output plans
to no changes with every such consumer verified."""

from __future__ import annotations

import json

import yaml
from check_helpers import GITLAB_ENV, PROVIDERS, ZENDESK_ENV, run, served, write_inventory

TRIGGER = "{{secret:glptt:schedule-trigger}}"
SEED = {
    "credentials": {GITLAB_ENV: "{{secret:glpat:schedule-credential}}", ZENDESK_ENV: "{{secret::zd-credential}}"},
    "gitlab": {
        "users": [{"username": "reconcile-bot", "tokens": [
            {"name": "reconcile credential", "scopes": ["api"], "expires_at": "now+300d",
             "value": "{{secret:glpat:schedule-credential}}"}]}],
        "groups": [{"full_path": "acme/support"}],
        "projects": [{"path_with_namespace": "acme/support/sync"}],
        "triggers": [{"project": "acme/support/sync", "owner": "reconcile-bot", "description": "Sync trigger",
                      "value": TRIGGER}],
        "pipeline_schedules": [
            {"project": "acme/support/sync", "id": 31, "description": "Nightly export", "owner": "reconcile-bot",
             "variables": [{"key": "SYNC_TOKEN", "value": TRIGGER}, {"key": "MODE", "value": "full"}]},
            {"project": "acme/support/sync", "id": 32, "description": "Weekly cleanup", "owner": "reconcile-bot",
             "variables": [{"key": "CLEANUP_URL", "value": f"https://ci.example/run?token={TRIGGER}"}]},
            {"project": "acme/support/sync", "id": 33, "description": "Weekly cleanup", "owner": "reconcile-bot"},
        ],
    },
    "zendesk": {"instances": {"acme": {
        "oauth_clients": [{"identifier": "reconcile", "name": "Reconcile"}],
        "oauth_tokens": [{"client": "reconcile", "scopes": ["read", "write"], "value": "{{secret::zd-credential}}"}],
    }}},
}
DISCOVERY = {"gitlab": [{"provider": "gl", "groups": ["acme/support"]}]}


def test_discover_finds_tokens_in_schedule_variables_and_round_trips(capsys, workdir, monkeypatch):
    write_inventory(workdir / "inventory", {}, discovery=DISCOVERY)
    out = workdir / "found" / "discovered.yaml"
    with served(SEED, monkeypatch, workdir) as world:
        code, _, err = run(capsys, "discover", "--sandbox", "--out", str(out))
        assert code == 0, err
        assert world.mutations() == 0
        (token,) = yaml.safe_load(out.read_text())["tokens"].values()
        assert token["source"]["description"] == "Sync trigger"
        assert token["consumers"] == [
            {"kind": "gitlab_pipeline_schedule_variable", "provider": "gl", "project": "acme/support/sync",
             "schedule": "Nightly export", "key": "SYNC_TOKEN"},
            {"kind": "gitlab_pipeline_schedule_variable", "provider": "gl", "project": "acme/support/sync",
             "schedule": "Weekly cleanup", "key": "CLEANUP_URL", "schedule_id": 32,
             "value": "https://ci.example/run?token=${token}"},
        ]
        assert "MODE" not in out.read_text()

        (out.parent / "providers.yaml").write_text(yaml.safe_dump(PROVIDERS))
        code, stdout, err = run(capsys, "plan", "--sandbox", "--inventory", str(out.parent), "--format", "json",
                                "--detailed-exitcode")
        assert code == 0, stdout + err
        plan = json.loads(stdout)
        assert [c["state"] for t in plan["tokens"] for c in t["consumers"]] == ["verified"] * 2
        assert world.mutations() == 0
