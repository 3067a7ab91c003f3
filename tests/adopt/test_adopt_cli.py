"""`reconcile adopt` through the real CLI against a sandbox world built from an inventory of our
own (not the demo): a healthy estate with an empty ledger is taken over without a rotation and
without one write to a provider; a half-migrated estate gets only what matches recorded; bad
input is refused with exit 1 and nothing recorded."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from reconciler import cli
from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK
from reconciler.inventory import load_inventory
from reconciler_sandbox.from_inventory import world_seed
from reconciler_sandbox.world import derive, start_world

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "reconciler" / "plan.schema.json").read_text())
PINNED = datetime(2026, 11, 22, 12, tzinfo=UTC)

INVENTORY = """
providers:
  gl: {kind: gitlab, url: https://gitlab.example.com, auth: {token_env: ADOPT_GL_TOKEN}}
  zd: {kind: zendesk, subdomain: adopt-test, auth: {oauth_token_env: ADOPT_ZD_TOKEN}}
defaults:
  rotation: {rotate_before: 21d, lifetime: 180d}
tokens:
  deploy-bot:
    source: {kind: gitlab_project_access_token, provider: gl, project: team/app, name: Deploy bot,
             scopes: [api], access_level: 40}
    consumers:
      - {kind: gitlab_ci_variable, provider: gl, project: team/app, key: DEPLOY_TOKEN, masked: true}
      - {kind: gitlab_ci_variable, provider: gl, project: team/tools, key: DEPLOY_TOKEN, masked: true, hidden: true}
  sync-trigger:
    source: {kind: gitlab_pipeline_trigger, provider: gl, project: team/sync, description: Zendesk sync}
    consumers:
      - {kind: zendesk_webhook, provider: zd, webhook: Sync on solve,
         endpoint: "https://hooks.example.com/sync?key=${token}"}
  zd-oauth:
    source: {kind: zendesk_oauth_token, provider: zd, client: sync_client, scopes: [read]}
    consumers:
      - {kind: gitlab_ci_variable, provider: gl, project: team/sync, key: ZENDESK_TOKEN, masked: true}
      - {kind: zendesk_webhook, provider: zd, webhook: Notify, authentication: {type: bearer_token}}
"""
HIDDEN = "gitlab_ci_variable:gl:project:team/tools:DEPLOY_TOKEN:*"
BEARER = "zendesk_webhook:zd:Notify:authentication"
READABLE = {"gitlab_ci_variable:gl:project:team/app:DEPLOY_TOKEN:*", "zendesk_webhook:zd:Sync on solve:endpoint",
            "gitlab_ci_variable:gl:project:team/sync:ZENDESK_TOKEN:*"}


def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: dict):
    """`seed` served as `reconcile sandbox` would serve it: --sandbox commands reach it via the env."""
    path = tmp_path / "seed.sandbox.json"  # the sandbox's own database: it holds values by design
    path.write_text(json.dumps(seed))
    world = start_world(path, now=PINNED)
    for name, value in world.credentials.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(SANDBOX_ENV_GITLAB, world.gitlab.url)
    monkeypatch.setenv(SANDBOX_ENV_ZENDESK, world.endpoints.zendesk_netloc)
    monkeypatch.setenv("RECONCILE_NOW", PINNED.isoformat())
    return world


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "estate.yaml").write_text(INVENTORY)
    monkeypatch.chdir(tmp_path)
    for name in ("ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, "CI",
                 "CI_MERGE_REQUEST_IID", "CI_PIPELINE_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def healthy(workdir, monkeypatch):
    """Every token and consumer of the inventory, each consumer holding its current value."""
    world = serve(workdir, monkeypatch, world_seed(load_inventory(workdir / "inv"), PINNED))
    yield world
    world.stop()


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def mutations(world) -> int:
    return len(world.gitlab.log.mutations()) + len(world.zendesk.log.mutations())


def ledger(workdir: Path) -> dict[str, dict]:
    path = workdir / ".reconcile" / "sandbox" / "ledger.json"
    return {r["consumer"]: r for r in json.loads(path.read_text())["records"]} if path.exists() else {}


def plan_json(capsys) -> dict:
    code, out, err = run(capsys, "plan", "--sandbox", "--inventory", "inv", "--format", "json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    return data


def states(plan: dict) -> dict[str, str]:
    return {c["identity"]: c["state"] for t in plan["tokens"] for c in t["consumers"]}


def test_healthy_estate_is_adopted_without_a_rotation_or_a_write(healthy, workdir, capsys):
    code, out, err = run(capsys, "plan", "--sandbox", "--inventory", "inv", "--detailed-exitcode")
    assert (code, err) == (2, "")
    # the write-only places would get the current value again (read from a verified one): no rotation
    assert out.rstrip().endswith("Plan: 0 to create, 0 to rotate, 0 to revoke; consumers: 0 to create, "
                                 "2 to update, 0 to recreate, 3 verified, 2 unverifiable; 2 warning(s), 0 error(s).")
    for identity in (HIDDEN, BEARER):  # the first plan says how to adopt each write-only consumer
        assert "records so and apply leaves it as it is" in out
        assert f"`reconcile adopt --assert-write-only '{identity}'`" in out

    code, out, err = run(capsys, "adopt", "--sandbox", "--inventory", "inv")
    assert (code, err) == (0, "")
    assert ("Adopt: 3 verified, 0 asserted, 0 already recorded, 0 not matching, 2 unverifiable, 0 not adopted; "
            "recorded in the ledger at local state .reconcile/sandbox/. Nothing live was changed.") in out
    records = ledger(workdir)
    assert set(records) == READABLE
    assert {(r["established"], r["established_by"], r["verified"]) for r in records.values()} == {
        ("verified", "reconcile adopt", True)}
    assert mutations(healthy) == 0

    plan = plan_json(capsys)
    assert (plan["summary"]["rotate"], plan["summary"]["verified"], plan["summary"]["consumer_update"]) == (0, 3, 2)
    assert states(plan) == {**dict.fromkeys(READABLE, "verified"), HIDDEN: "unverifiable", BEARER: "unverifiable"}

    code, out, err = run(capsys, "adopt", "--sandbox", "--inventory", "inv", "--assert-write-only", HIDDEN,
                         "--assert-write-only", BEARER)
    assert (code, err) == (0, "")
    assert "Adopt: 0 verified, 2 asserted, 3 already recorded, 0 not matching, 0 unverifiable" in out
    records = ledger(workdir)
    assert (records[HIDDEN]["established"], records[HIDDEN]["verified"], records[HIDDEN]["fingerprint"]) == (
        "asserted", False, "")
    assert records[BEARER]["established_by"] == f"reconcile adopt --assert-write-only '{BEARER}'"

    plan = plan_json(capsys)
    assert not plan["has_changes"]
    assert states(plan) == {**dict.fromkeys(READABLE, "verified"), HIDDEN: "asserted", BEARER: "asserted"}
    assert (plan["summary"]["rotate"], plan["summary"]["asserted"], plan["summary"]["unverifiable"]) == (0, 2, 0)
    code, text, _ = run(capsys, "plan", "--sandbox", "--inventory", "inv")
    assert "3 verified, 2 asserted, 0 unverifiable" in text
    code, markdown, _ = run(capsys, "plan", "--sandbox", "--inventory", "inv", "--format", "markdown")
    assert "3 verified, 2 asserted, 0 unverifiable" in markdown

    before = ledger(workdir)
    code, out, err = run(capsys, "apply", "--sandbox", "--inventory", "inv", "--auto-approve")
    assert (code, out, err) == (0, "No changes. Nothing to apply.\n", "")
    assert mutations(healthy) == 0 and ledger(workdir) == before


@pytest.fixture
def half_migrated(workdir, monkeypatch):
    """The estate of `healthy`, except that two readable consumers still hold old values: the
    deploy variable a revoked token's, the sync webhook an unknown trigger value."""
    seed = world_seed(load_inventory(workdir / "inv"), PINNED)
    old_pat, old_trigger = derive("glpat", "adopt-test/old-deploy"), derive("glptt", "adopt-test/old-trigger")
    seed["gitlab"]["access_tokens"].append({"project": "team/app", "name": "Deploy bot", "scopes": ["api"],
                                            "value": old_pat, "created_at": "now-200d", "revoked": True})
    for variable in seed["gitlab"]["variables"]:
        if (variable.get("project"), variable["key"]) == ("team/app", "DEPLOY_TOKEN"):
            variable["value"] = old_pat
    for webhook in seed["zendesk"]["instances"]["adopt-test"]["webhooks"]:
        if webhook["name"] == "Sync on solve":
            webhook["endpoint"] = f"https://hooks.example.com/sync?key={old_trigger}"
    world = serve(workdir, monkeypatch, seed)
    yield world
    world.stop()


def test_half_migrated_estate_records_only_what_matches(half_migrated, workdir, capsys):
    code, out, err = run(capsys, "adopt", "--sandbox", "--inventory", "inv")
    assert (code, err) == (0, "")
    assert "Adopt: 1 verified, 0 asserted, 0 already recorded, 2 not matching, 2 unverifiable" in out
    assert ("not matching: CI variable DEPLOY_TOKEN (project:team/app, scope *): holds a value the provider refuses "
            "(revoked or unknown)") in out
    assert "not matching: Zendesk webhook 'Sync on solve' (endpoint): holds a value" in out
    assert set(ledger(workdir)) == {"gitlab_ci_variable:gl:project:team/sync:ZENDESK_TOKEN:*"}  # never a mismatch
    assert mutations(half_migrated) == 0

    # asserting a place whose value was read and is not the current token is refused, whole
    mismatched = "gitlab_ci_variable:gl:project:team/app:DEPLOY_TOKEN:*"
    before = (workdir / ".reconcile" / "sandbox" / "ledger.json").read_bytes()
    code, out, err = run(capsys, "adopt", "--sandbox", "--inventory", "inv", "--assert-write-only", HIDDEN,
                         "--assert-write-only", mismatched)
    assert code == 1 and out == ""
    assert "nothing recorded" in err and "cannot be asserted: its value was read and holds a value" in err
    assert (workdir / ".reconcile" / "sandbox" / "ledger.json").read_bytes() == before

    code, out, err = run(capsys, "adopt", "--sandbox", "--inventory", "inv", "--assert-write-only", HIDDEN)
    assert (code, err) == (0, "") and "Adopt: 0 verified, 1 asserted, 1 already recorded, 2 not matching" in out

    plan = plan_json(capsys)  # what does not match is still the plan's to fix
    assert states(plan)[mismatched] == "stale" and states(plan)["zendesk_webhook:zd:Sync on solve:endpoint"] == "stale"
    assert states(plan)[HIDDEN] == "asserted" and plan["summary"]["asserted"] == 1
    code, text, _ = run(capsys, "plan", "--sandbox", "--inventory", "inv")
    assert (f"        asserted: write-only; a person asserted it holds the current token #2 (reconcile adopt "
            f"--assert-write-only '{HIDDEN}', 2026-11-22); receives the new value") in text
    code, markdown, _ = run(capsys, "plan", "--sandbox", "--inventory", "inv", "--format", "markdown")
    assert "asserted: write-only; a person asserted it holds the current token #2" in markdown


def test_bad_input_is_refused_with_exit_1_and_nothing_recorded(healthy, workdir, capsys):
    code, out, err = run(capsys, "adopt", "--sandbox", "--inventory", "inv", "--target", "deploy-bto")
    assert (code, out) == (1, "")
    assert err == "error: --target: no token named deploy-bto in inv (did you mean 'deploy-bot'?)\n"

    code, out, err = run(capsys, "adopt", "--sandbox", "--inventory", "inv", "--assert-write-only", HIDDEN + "x")
    assert (code, out) == (1, "") and "no consumer has this identity" in err and f"did you mean {HIDDEN!r}" in err

    code, out, err = run(capsys, "adopt", "--sandbox", "--inventory", "inv", "--target", "sync-trigger",
                         "--assert-write-only", BEARER)
    assert (code, out) == (1, "") and "a consumer of zd-oauth, which --target leaves out" in err
    assert ledger(workdir) == {} and mutations(healthy) == 0


def test_target_adopts_only_that_token(healthy, workdir, capsys):
    code, out, err = run(capsys, "adopt", "--sandbox", "--inventory", "inv", "--target", "zd-oauth",
                         "--assert-write-only", BEARER)
    assert (code, err) == (0, "")
    assert "Adopt: 1 verified, 1 asserted, 0 already recorded, 0 not matching, 0 unverifiable" in out
    assert set(ledger(workdir)) == {"gitlab_ci_variable:gl:project:team/sync:ZENDESK_TOKEN:*", BEARER}


def test_one_command_plans_an_own_inventory_against_a_world_built_from_it(workdir, capsys):
    """`--sandbox-seed DIR`: the world is built from the inventory and kept for the next command."""
    code, out, err = run(capsys, "plan", "--sandbox", "--sandbox-seed", "inv", "--inventory", "inv")
    assert (code, err) == (0, "")
    assert "0 to rotate" in out and "3 verified, 2 unverifiable" in out
    code, out, err = run(capsys, "adopt", "--sandbox", "--inventory", "inv")
    assert (code, err) == (0, "") and "Adopt: 3 verified" in out
    assert (workdir / ".reconcile" / "sandbox" / "world.sandbox.json").exists()
