"""Integration: `reconcile plan --sandbox` through the real clients (python-gitlab, zenpy) against
the seeded sandboxes. The plan never writes; its request count meets the batch bound; goldens of
the text, markdown and JSON renderings; the JSON validates against its schema; no value leaks."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from reconciler import cli
from reconciler.clients import connect
from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK
from reconciler.inventory import load_inventory
from reconciler.observe import fetch_lists, observe
from reconciler.pipeline import plan_writes
from reconciler.plan import plan
from reconciler.render import render_json, render_markdown, render_text
from reconciler_sandbox.core import known_secrets
from reconciler_sandbox.world import DEFAULT_SEED, start_world

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
NOW = "2026-11-22T12:00:00Z"
PINNED = datetime(2026, 11, 22, 12, tzinfo=UTC)
SCHEMA = json.loads((ROOT / "reconciler" / "plan.schema.json").read_text())


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A clean working directory with the example inventory at `inventory` (positions stay relative).
    A symlink, not a copy: the inventory declares a non-secret header value the GitLab sandbox
    remembers as a write-only value, and the leak guard scans copies under tmp_path."""
    (tmp_path / "inventory").symlink_to(ROOT / "inventory")
    monkeypatch.chdir(tmp_path)
    for name in ("ZENPY_FORCE_SCHEME", "ZENPY_FORCE_NETLOC", SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK, "CI"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def world(workdir, monkeypatch):
    """The demo world served as `reconcile sandbox` would: --sandbox commands use it via the env."""
    w = start_world(DEFAULT_SEED, now=PINNED)
    for name, value in w.credentials.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(SANDBOX_ENV_GITLAB, w.gitlab.url)
    monkeypatch.setenv(SANDBOX_ENV_ZENDESK, w.endpoints.zendesk_netloc)
    yield w
    w.stop()


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_sandbox_from_a_fresh_clone_shows_reasons_for_every_change(workdir, capsys):
    code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW, "--detailed-exitcode")
    assert (code, err) == (2, "")
    expected = [
        "~ token zendesk-global-sync-trigger (gitlab_pipeline_trigger, rotate by overlap",
        "because created 2026-07-25 (120 days ago), older than max_age 90d   inventory/tokens/zendesk-global.yaml:13",
        "because created 2026-07-25, before not_before 2026-11-22",
        "stale: holds a value the provider refuses (revoked or unknown); receives the new value",
        "masked: False -> True",
        "~ token zendesk-global-super-app (gitlab_personal_access_token, rotate in place",
        "because expires 2026-12-02 (10 days left, within rotate_before 21d)   inventory/policy.yaml:5",
        "+ CI variable ZENDESK_GLOBAL_TOKEN (project:gitlab-com/support/support-ops/zendesk-global/ticket-sync, "
        "scope production): create",
        "Zendesk API token 'GitLab US Gov - Legacy Reports' (in use) stops working on 2027-04-30 (159 days left)",
        "kind: zendesk_oauth_token",
        "unmanaged: 'Legacy Migration' (#5)",
        "unmanaged: 'Old export script'",
        "cannot be verified (no ledger record)",
        "2 token(s) up to date: support-ops-group-bot, zendesk-us-gov-sync-trigger",
    ]
    for line in expected:
        assert line in out, line
    # every change says why
    blocks = [b for b in out.split("\n\n") if b.startswith(("~ token", "+ token", "- token"))]
    assert blocks and all("because" in b for b in blocks)
    # the world was saved for the next command, and the plan persisted nothing else
    assert sorted(p.name for p in (workdir / ".reconcile" / "sandbox").iterdir()) == ["gitlab.sandbox.json", "world.sandbox.json",
                                                                                     "zendesk.sandbox.json"]
    code2, out2, _ = run(capsys, "plan", "--sandbox", "--now", NOW)
    assert code2 == 0 and out2 == out  # loaded from .reconcile/sandbox: same world, same plan


def test_plan_makes_no_mutating_request_and_meets_the_batch_bound(world, workdir, capsys):
    code, _, err = run(capsys, "plan", "--sandbox", "--now", NOW)
    assert code == 0, err
    entries = world.gitlab.log.snapshot() + world.zendesk.log.snapshot()
    assert entries and not world.gitlab.log.mutations() and not world.zendesk.log.mutations()
    assert all(e.method == "GET" for e in entries)
    # the minimum: one list per project/group and resource type (no page exceeds 100 here), the
    # current user once (for its PATs), the Zendesk credential's user once (whose OAuth tokens are
    # ours), one identification of a value the ledger does not know (the group bot token in
    # SUPPORT_OPS_BOT_TOKEN), the id of the GitLab credential once (its PAT is listed among the
    # user's: it is never reported as unmanaged), and the project a Zendesk webhook's trigger URL
    # names by id (its trigger's source names it by path). No hook detail: the one mode-recreate
    # hook is not written by this plan (only a written one needs its detail)
    inventory = load_inventory("inventory")
    clients = connect(inventory, env=world.env(), endpoints=world.endpoints)
    keys = fetch_lists(list(inventory.tokens.values()), clients)
    assert len(entries) == len(keys) + 2 == 24
    assert not [e for e in entries if "/hooks/" in e.path]
    paths = [e.path for e in entries]
    fetched = [e for e in entries if e.path != "/api/v4/personal_access_tokens/self"]  # asked with two tokens
    assert len(fetched) == len({(e.host, e.path, e.query_keys) for e in fetched})  # nothing fetched twice
    assert paths.count("/api/v4/personal_access_tokens/self") == 2


def test_observe_request_count_on_a_small_world_equals_the_minimum(workdir, tmp_path):
    inv_dir = tmp_path / "small"
    inv_dir.mkdir()
    (inv_dir / "inv.yaml").write_text("""
providers:
  gl: {kind: gitlab, url: https://gitlab.example.com, auth: {token_env: GL_TOKEN}}
tokens:
  trig:
    source: {kind: gitlab_pipeline_trigger, provider: gl, project: g/app, description: deploy}
    consumers:
      - {kind: gitlab_ci_variable, provider: gl, project: g/app, key: A}
      - {kind: gitlab_ci_variable, provider: gl, project: g/app, key: B}
      - {kind: gitlab_ci_variable, provider: gl, project: g/other, key: C}
""")
    seed = tmp_path / "seed.yaml"
    variables = [{"project": "g/other", "key": f"V{i}", "value": f"value-{i:04d}"} for i in range(150)]
    seed.write_text(json.dumps({"credentials": {"GL_TOKEN": "{{secret:glpat:small}}"}, "gitlab": {
        "users": [{"username": "me", "tokens": [{"name": "cred", "scopes": ["api"],
                                                 "value": "{{secret:glpat:small}}"}]}],
        "projects": [{"path_with_namespace": "g/app"}, {"path_with_namespace": "g/other"}],
        "triggers": [{"project": "g/app", "owner": "me", "description": "deploy", "value": "{{secret:glptt:t}}"}],
        "variables": [{"project": "g/app", "key": "A", "value": "{{secret:glptt:t}}"},
                      {"project": "g/app", "key": "B", "value": "{{secret:glptt:old}}"},
                      {"project": "g/other", "key": "C", "value": "{{secret:glptt:t}}"}] + variables,
    }, "zendesk": {"instances": {}}}))
    inventory = load_inventory(inv_dir)
    with start_world(seed, now=PINNED) as w:
        clients = connect(inventory, env=w.env(), endpoints=w.endpoints)
        observed = observe(inventory, clients, None, PINNED)
        # triggers of g/app, variables of g/app, variables of g/other (153: two pages of 100)
        assert observed.requests == w.requests() == 4
        assert not w.mutations()
    states = {c.identity.split(":")[-2]: (c.holds_token_id, c.holds_invalid) for c in observed.consumers.values()}
    assert states == {"A": ("1", False), "B": (None, True), "C": ("1", False)}  # by the trigger list, no request


def test_goldens_and_schema(world, workdir):
    inventory = load_inventory("inventory")
    clients = connect(inventory, env=world.env(), endpoints=world.endpoints)
    observed, result = plan_writes(inventory, observe(inventory, clients, None, PINNED), clients, None, PINNED,
                                   escrow_available=True)
    outputs = {"plan.txt": render_text(result), "plan.md": render_markdown(result), "plan.json": render_json(result)}
    data = json.loads(outputs["plan.json"])
    jsonschema.validate(data, SCHEMA)
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    for name, text in outputs.items():
        golden = GOLDEN / name
        if os.environ.get("UPDATE_GOLDEN"):
            golden.parent.mkdir(exist_ok=True)
            golden.write_text(text)
        assert text == golden.read_text(), f"{name} differs from its golden (UPDATE_GOLDEN=1 to accept)"
    # markdown: summary on top, one collapsible block per changed token
    md = outputs["plan.md"]
    assert md.index("Plan:") < md.index("<details>")
    assert md.count("<details><summary><code>") == sum(1 for t in result.tokens if t.changes or t.findings)
    # no value anywhere: every credential the sandboxes seeded or minted, scanned in every rendering
    secrets = [s for s in known_secrets() if len(s) >= 8]
    assert secrets
    for name, text in outputs.items():
        assert not [s for s in secrets if s in text], f"a credential value appears in {name}"


def test_plan_out_file_json_format_and_targets(world, workdir, capsys):
    code, out, err = run(capsys, "plan", "--sandbox", "--now", NOW, "--format", "json", "--out", "plans/p.json",
                         "--target", "zendesk-global-sync-trigger", "--detailed-exitcode")
    assert code == 2, err
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    assert [t["name"] for t in data["tokens"]] == ["zendesk-global-sync-trigger"]
    assert data["targets"] == ["zendesk-global-sync-trigger"]
    assert json.loads((workdir / "plans" / "p.json").read_text()) == data
    assert data["inventory_digest"] == load_inventory("inventory").digest
    # a targeted plan lists only what that token needs
    assert {e.path for e in world.gitlab.log.snapshot()} == {
        "/api/v4/projects/gitlab-com/support/support-ops/zendesk-global/ticket-sync/triggers",
        "/api/v4/projects/gitlab-com/support/support-ops/zendesk-global/ticket-sync-tests/variables",
    }
    code, _, err = run(capsys, "plan", "--sandbox", "--target", "nope")
    assert code == 1 and err.strip() == "error: --target: no token named nope in inventory"


def test_markdown_format(world, workdir, capsys):
    code, out, _ = run(capsys, "plan", "--sandbox", "--now", NOW, "--format", "markdown")
    assert code == 0 and out.startswith("### reconcile plan") and "<details>" in out


def test_missing_credentials_are_listed_at_once(workdir, capsys, monkeypatch):
    for name in ("RECONCILE_GITLAB_TOKEN", "RECONCILE_ZENDESK_GLOBAL_TOKEN", "RECONCILE_ZENDESK_USGOV_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = run(capsys, "plan")
    assert code == 1 and out == ""
    assert err == ("error: missing credential environment variable(s): RECONCILE_GITLAB_TOKEN (provider gitlab-com), "
                   "RECONCILE_ZENDESK_GLOBAL_TOKEN (provider zendesk-global), RECONCILE_ZENDESK_USGOV_TOKEN "
                   "(provider zendesk-us-gov)\n")


def test_refused_credential_names_the_provider_and_variable(world, workdir, capsys, monkeypatch):
    monkeypatch.setenv("RECONCILE_GITLAB_TOKEN", "not-a-valid-token-at-all")
    code, out, err = run(capsys, "plan", "--sandbox")
    assert code == 1 and out == ""
    assert err.startswith("error: GitLab provider gitlab-com (") and "$RECONCILE_GITLAB_TOKEN" in err
    assert "401" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unreachable_provider_is_one_line(world, workdir, capsys, monkeypatch):
    monkeypatch.setenv(SANDBOX_ENV_GITLAB, "http://127.0.0.1:9")  # discard port: nothing listens
    code, _, err = run(capsys, "plan", "--sandbox")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "gitlab-com" in err and "cannot be reached" in err and "$RECONCILE_GITLAB_TOKEN" in err


def test_text_is_coloured_only_on_a_terminal(world, workdir, monkeypatch):
    import io

    from reconciler.render import use_colour

    inventory = load_inventory("inventory")
    clients = connect(inventory, env=world.env(), endpoints=world.endpoints, targets=["zendesk-global-sync-trigger"])
    observed = observe(inventory, clients, None, PINNED, targets=["zendesk-global-sync-trigger"])
    result = plan(inventory, observed, None, PINNED, targets=["zendesk-global-sync-trigger"])
    coloured, plain = io.StringIO(), io.StringIO()
    render_text(result, coloured, colour=True)
    render_text(result, plain)
    assert "\x1b[" in coloured.getvalue() and "\x1b[" not in plain.getvalue()

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert use_colour(Tty())
    monkeypatch.setenv("CI", "true")
    assert not use_colour(Tty())


@pytest.mark.leaks_by_design  # prints the sandbox's own demo credentials as `export` lines, by design
def test_sandbox_command_serves_and_prints_exports(workdir, capsys, monkeypatch):
    stop = threading.Event()
    monkeypatch.setattr(cli, "SANDBOX_STOP", stop)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(cli.main(["sandbox", "--reset"])))
    thread.start()
    try:
        for _ in range(100):
            if (workdir / ".reconcile" / "sandbox" / "world.json").exists():
                break
            threading.Event().wait(0.05)
    finally:
        threading.Event().wait(0.2)
        stop.set()
        thread.join(10)
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert result == [0] and lines and all(line.startswith("export ") for line in lines)
    names = {line.split("=", 1)[0].removeprefix("export ") for line in lines}
    assert {"RECONCILE_GITLAB_TOKEN", "RECONCILE_ZENDESK_GLOBAL_TOKEN", "RECONCILE_ZENDESK_USGOV_TOKEN",
            "RECONCILE_ESCROW_KEY", SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK} <= names


def test_another_users_pat_without_admin_is_an_error_of_that_token_not_a_refused_credential(workdir, tmp_path):
    """GitLab answers 401 when a non-admin lists another user's PATs. That concerns the one token
    that names the user: the credential works, and the rest of the plan goes on."""
    inv_dir = tmp_path / "other-user"
    inv_dir.mkdir()
    (inv_dir / "inv.yaml").write_text("""
providers:
  gl: {kind: gitlab, url: https://gitlab.example.com, auth: {token_env: GL_TOKEN}}
tokens:
  theirs:
    source: {kind: gitlab_personal_access_token, provider: gl, user: someone, name: cli, scopes: [api]}
  trig:
    source: {kind: gitlab_pipeline_trigger, provider: gl, project: g/app, description: deploy}
""")
    seed = tmp_path / "seed.sandbox.json"
    seed.write_text(json.dumps({"credentials": {"GL_TOKEN": "{{secret:glpat:mine}}"}, "gitlab": {
        "users": [{"username": "me", "tokens": [{"name": "cred", "scopes": ["api"], "value": "{{secret:glpat:mine}}"}]},
                  {"username": "someone", "tokens": [{"name": "cli", "scopes": ["api"]}]}],
        "projects": [{"path_with_namespace": "g/app", "members": {"me": 40}}],
        "triggers": [{"project": "g/app", "owner": "me", "description": "deploy"}],
    }, "zendesk": {"instances": {}}}))
    inventory = load_inventory(inv_dir)
    with start_world(seed, now=PINNED) as w:
        observed = observe(inventory, connect(inventory, env=w.env(), endpoints=w.endpoints), None, PINNED)
    theirs = next(s for s in observed.sources.values() if s.token == "theirs")
    trig = next(s for s in observed.sources.values() if s.token == "trig")
    assert theirs.error and "administrator" in theirs.error
    assert trig.error is None and trig.current is not None


def test_an_output_file_that_cannot_be_written_is_one_line_and_exit_1(world, workdir, capsys):
    blocked = workdir / "a-file"  # a path under a regular file cannot be created
    blocked.write_text("")
    code, _, err = run(capsys, "plan", "--sandbox", "--out", str(blocked / "plan.json"))
    assert code == 1 and err.startswith("error: ") and "a-file" in err and "Traceback" not in err
    code, _, err = run(capsys, "validate", "--codequality", str(blocked / "report.json"))
    assert code == 1 and "a-file/report.json" in err and "Traceback" not in err


def test_sandbox_port_out_of_range_is_a_usage_error(capsys):
    assert cli.main(["sandbox", "--port", "65535"]) == 1
    assert "65535" in capsys.readouterr().err


def test_a_seed_other_than_the_saved_worlds_is_refused_not_ignored(workdir, capsys, tmp_path):
    code, _, _ = run(capsys, "plan", "--sandbox", "--now", "2026-11-22T12:00:00Z")  # saves the demo world
    assert code == 0
    other = tmp_path / "other.sandbox.yaml"
    other.write_text("gitlab: {}\nzendesk: {instances: {}}\n")
    code, _, err = run(capsys, "plan", "--sandbox", "--sandbox-seed", str(other))
    assert code == 1 and "--sandbox-reset" in err and "other.sandbox.yaml" in err


def test_a_reset_world_starts_with_an_empty_ledger_and_escrow(workdir, capsys):
    """After an apply, `--sandbox-reset` seeds the demo world again and plans it as the first plan
    did: the previous world's ledger (deliveries of tokens that no longer exist) is gone."""
    first = run(capsys, "plan", "--sandbox", "--now", "2026-11-22T12:00:00Z")
    code, _, _ = run(capsys, "apply", "--sandbox", "--auto-approve", "--now", "2026-11-22T12:00:00Z")
    assert code == 0 and (workdir / ".reconcile" / "sandbox" / "escrow.json").exists()
    again = run(capsys, "plan", "--sandbox", "--sandbox-reset", "--now", "2026-11-22T12:00:00Z")
    summary = [line for line in again[1].splitlines() if line.startswith("Plan:")]
    assert summary and summary == [line for line in first[1].splitlines() if line.startswith("Plan:")]
    assert not (workdir / ".reconcile" / "sandbox" / "escrow.json").exists()
