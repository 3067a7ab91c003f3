"""Sandbox worlds built from an inventory (`reconcile sandbox --from-inventory DIR`,
`--sandbox-seed DIR`): every kind can be seeded, the world holds every declared place with its
current value, and the command serves it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler import cli
from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK
from reconciler.inventory import load_inventory
from reconciler.kinds import all_kinds
from reconciler_sandbox.from_inventory import CONSUMERS, SOURCES, world_seed
from reconciler_sandbox.world import WorldError, start_world

ROOT = Path(__file__).resolve().parents[2]
PINNED = datetime(2026, 11, 22, 12, tzinfo=UTC)


def test_every_registered_kind_can_be_seeded():
    sources, consumers = all_kinds()
    assert {k.kind for k in sources} <= set(SOURCES)
    assert {k.kind for k in consumers} <= set(CONSUMERS)


def test_the_example_inventory_builds_a_world_with_nothing_due():
    seed = world_seed(load_inventory(ROOT / "inventory"), PINNED)
    assert "{{secret" not in str(seed)
    with _started(seed) as world:  # the sandboxes accept it
        assert set(world.credentials) >= {"RECONCILE_GITLAB_TOKEN", "RECONCILE_ZENDESK_GLOBAL_TOKEN"}
    gitlab = seed["gitlab"]
    assert {v["key"] for v in gitlab["variables"]} >= {"SUPPORT_OPS_BOT_TOKEN", "SYNC_TRIGGER_TOKEN",
                                                       "ZENDESK_GLOBAL_TOKEN", "STATUSPAGE_API_KEY"}
    hidden = next(v for v in gitlab["variables"] if v["key"] == "ZENDESK_GLOBAL_TOKEN")
    assert (hidden["hidden"], hidden["masked"], hidden["environment_scope"]) == (True, True, "production")
    # a trigger's value, a PAT's, the OAuth token's: each held by its consumers exactly
    trigger = next(t for t in gitlab["triggers"] if t["description"] == "Zendesk Global - GitLab Ticket Sync")
    assert next(v for v in gitlab["variables"] if v["key"] == "SYNC_TRIGGER_TOKEN")["value"] == trigger["value"]
    global_zd = seed["zendesk"]["instances"]["gitlab"]
    setting = next(i for i in global_zd["installations"] if i["app"] == "GitLab Ticket Sync")
    assert setting["settings"]["pipeline_trigger_token"] == trigger["value"]
    assert next(a for a in global_zd["apps"] if a["name"] == "GitLab Ticket Sync")["parameters"] == [
        {"name": "pipeline_trigger_token", "secure": True}]


class _started:
    """A world started from `seed`, written to a temporary file as a seed file is."""

    def __init__(self, seed):
        self.seed = seed

    def __enter__(self):
        import json
        import tempfile

        self.dir = tempfile.TemporaryDirectory()
        path = Path(self.dir.name) / "seed.sandbox.json"
        path.write_text(json.dumps(self.seed))
        self.world = start_world(path, now=PINNED)
        return self.world

    def __exit__(self, *exc):
        self.world.stop()
        self.dir.cleanup()


def test_a_kind_the_sandbox_cannot_seed_is_named(monkeypatch):
    monkeypatch.delitem(SOURCES, "gitlab_pipeline_trigger")
    with pytest.raises(WorldError, match="token zendesk-global-sync-trigger: the sandbox cannot seed a "
                                         "gitlab_pipeline_trigger from an inventory"):
        world_seed(load_inventory(ROOT / "inventory"), PINNED)


@pytest.mark.leaks_by_design  # prints the sandbox's own credentials as `export` lines, by design
def test_sandbox_command_serves_a_world_built_from_an_inventory(tmp_path, capsys, monkeypatch):
    (tmp_path / "mine").symlink_to(ROOT / "inventory")
    monkeypatch.chdir(tmp_path)
    for name in ("ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, "CI"):
        monkeypatch.delenv(name, raising=False)
    stop = threading.Event()
    monkeypatch.setattr(cli, "SANDBOX_STOP", stop)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(cli.main(["sandbox", "--from-inventory", "mine"])))
    thread.start()
    try:
        for _ in range(200):
            if (tmp_path / ".reconcile" / "sandbox" / "world.sandbox.json").exists():
                break
            threading.Event().wait(0.05)
    finally:
        stop.set()
        thread.join(20)
    names = {line.split("=", 1)[0].removeprefix("export ") for line in capsys.readouterr().out.splitlines()}
    assert result == [0]
    assert {"RECONCILE_GITLAB_TOKEN", "RECONCILE_ZENDESK_GLOBAL_TOKEN", "RECONCILE_ZENDESK_USGOV_TOKEN",
            "STATUSPAGE_API_KEY", "RECONCILE_ESCROW_KEY", SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK} <= names

    # the saved world is the next command's: a plan of the same inventory has nothing to rotate
    code = cli.main(["plan", "--sandbox", "--inventory", "mine"])
    out = capsys.readouterr().out
    assert code == 0 and "Plan: 0 to create, 0 to rotate, 0 to revoke" in out


def test_from_inventory_that_does_not_load_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.yaml").write_text("tokens:\n  t:\n    source: {kind: nope}\n")
    code = cli.main(["sandbox", "--from-inventory", "bad"])
    err = capsys.readouterr().err
    assert code == 1 and "bad/x.yaml:3" in err
    assert not (tmp_path / ".reconcile" / "sandbox").exists()


GRANT_AND_PAIR = """\
providers:
  gl: {kind: gitlab, url: https://gitlab.example.com, auth: {token_env: RECONCILE_GITLAB_TOKEN}}
  zd: {kind: zendesk, subdomain: acme, auth: {oauth_token_env: RECONCILE_ZENDESK_TOKEN}}
tokens:
  portal-grant:
    source: {kind: zendesk_oauth_grant, provider: zd, client: portal-app, scopes: [read],
             refresh_token_env: PORTAL_REFRESH_TOKEN, client_secret_env: PORTAL_APP_SECRET}
    rotation: {rotate_before: 10m}
    consumers:
      - {kind: gitlab_ci_variable, provider: gl, project: support/portal, key: PORTAL_ACCESS_TOKEN, masked: true}
  portal-client:
    source: {kind: zendesk_oauth_client, provider: zd, identifier: portal, scopes: [read]}
    consumers:
      - {kind: gitlab_ci_variable, provider: gl, project: support/portal, key: PORTAL_CLIENT_ID,
         value: '${token.identifier}'}
      - {kind: gitlab_ci_variable, provider: gl, project: support/portal, key: PORTAL_CLIENT_SECRET,
         value: '${token.secret}', masked: true}
"""


def test_a_grant_and_a_client_pair_are_seeded_as_they_live(tmp_path, capsys, monkeypatch):
    """The grant's refresh token is where the inventory says a person supplies it, its access
    token in its consumer; each part of the client pair in the consumer that takes it; and the
    first plan of that world has nothing to rotate."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "inventory.yaml").write_text(GRANT_AND_PAIR)
    seed = world_seed(load_inventory(tmp_path / "mine"), PINNED)
    zendesk = seed["zendesk"]["instances"]["acme"]
    grant = next(t for t in zendesk["oauth_tokens"] if t["client"] == "portal-app")
    assert seed["credentials"]["PORTAL_REFRESH_TOKEN"] == grant["refresh_token"]
    client = next(c for c in zendesk["oauth_clients"] if c["identifier"] == "portal")
    held = {v["key"]: v["value"] for v in seed["gitlab"]["variables"]}
    assert held == {"PORTAL_ACCESS_TOKEN": grant["value"], "PORTAL_CLIENT_ID": "portal",
                    "PORTAL_CLIENT_SECRET": client["secret"]}

    monkeypatch.chdir(tmp_path)
    for name in ("ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, "CI"):
        monkeypatch.delenv(name, raising=False)
    code = cli.main(["plan", "--sandbox", "--sandbox-seed", "mine", "--inventory", "mine"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 to rotate" in out and "0 to revoke" in out
