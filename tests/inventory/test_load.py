"""load_inventory: the example inventory, the model it builds, positions, errors and warnings."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from reconciler.inventory import InventoryError, diagnose, load_inventory
from reconciler.inventory import model as m
from reconciler.kinds import consumer_kinds, source_kinds
from reconciler.kinds.gitlab_personal_access_token import GitLabPersonalAccessToken
from reconciler.kinds.gitlab_pipeline_trigger import GitLabPipelineTrigger
from reconciler.kinds.gitlab_webhook import GitLabWebhook, WebhookSecretField
from reconciler.kinds.zendesk_app_setting import ZendeskAppSetting
from reconciler.kinds.zendesk_webhook import ZendeskWebhook, ZendeskWebhookAuth

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory"

PROVIDERS = """\
providers:
  gitlab-com: {kind: gitlab, url: https://gitlab.com/, auth: {token_env: GL_TOKEN}}
  zd: {kind: zendesk, subdomain: gitlab, title: Zendesk Global, auth: {oauth_token_env: ZD_TOKEN}}
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


# Kinds the example inventory leaves out: declaring one there changes the demo world's plan
# goldens and request counts. Each is exercised end to end by its own tests instead.
NOT_IN_EXAMPLE = {"gitlab_pipeline_schedule_variable"}
SOURCES_NOT_IN_EXAMPLE = {"gitlab_service_account_token", "zendesk_oauth_grant", "zendesk_oauth_client"}


def test_example_inventory_has_every_source_and_consumer_kind() -> None:
    inv = load_inventory(EXAMPLE)
    assert SOURCES_NOT_IN_EXAMPLE <= {k.kind for k in source_kinds()}  # no stale exemption
    assert {t.source.kind for t in inv.tokens.values()} == {k.kind for k in source_kinds()} - SOURCES_NOT_IN_EXAMPLE
    assert NOT_IN_EXAMPLE <= {k.kind for k in consumer_kinds()}  # no stale exemption
    assert {c.kind for _, c in inv.consumers()} == {k.kind for k in consumer_kinds()} - NOT_IN_EXAMPLE
    zendesk = sorted(p.display for p in inv.providers.values() if p.kind == "zendesk")
    assert zendesk == ["Zendesk Global", "Zendesk US Government"]
    # The only warning is the API-token sunset of the one zendesk_api_token (kept on purpose).
    assert [w.key for w in inv.warnings] == ["tokens.zendesk-us-gov-legacy-reports.source.kind"]
    assert inv.digest.startswith("sha256:")


def test_example_follows_the_runbook_trigger_naming() -> None:
    inv = load_inventory(EXAMPLE)
    for token in inv.tokens.values():
        if isinstance(token.source, GitLabPipelineTrigger):
            kinds = {c.kind for c in token.consumers}
            if "zendesk_app_setting" in kinds:
                instance = inv.providers[token.consumers[0].provider].display
                app = next(c.app for c in token.consumers if isinstance(c, ZendeskAppSetting))
                assert token.source.description == f"{instance} - {app}"
            else:
                assert token.source.description.startswith("https://") and "/webhooks/" in token.source.description


def test_example_files_carry_the_schema_modeline() -> None:
    for path in EXAMPLE.rglob("*.yaml"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        rel = Path("..") if path.parent == EXAMPLE else Path("../..")
        assert first == f"# yaml-language-server: $schema={rel.as_posix()}/schemas/inventory.schema.json", path
        assert (path.parent / rel / "schemas/inventory.schema.json").resolve().is_file()


def test_model_values_and_positions(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "providers.yaml": PROVIDERS + "defaults:\n  rotation: {rotate_before: 2w, lifetime: 90d}\n",
            "tokens.yaml": (
                "tokens:\n"
                "  pat:\n"
                "    owner: '@ops'\n"
                "    source: {kind: gitlab_personal_access_token, provider: gitlab-com, name: bot, scopes: [api]}\n"
                "    rotation:\n"
                "      max_age: 36h\n"
                "      not_before: 2026-11-22\n"
                "    consumers:\n"
                "      - kind: gitlab_webhook\n"
                "        provider: gitlab-com\n"
                "        group: ops\n"
                "        hook: '12'\n"
                "        secret: {custom_header: X-Token}\n"
                "        custom_headers: {X-Other: plain}\n"
                "      - kind: zendesk_webhook\n"
                "        provider: zd\n"
                "        webhook: Sync\n"
                "        value: 'Bearer ${token}'\n"
                "        authentication: {type: api_key, header: X-Key}\n"
            ),
        },
    )
    inv = load_inventory(root)
    gitlab = inv.providers["gitlab-com"]
    assert isinstance(gitlab, m.GitLabProvider) and gitlab.url == "https://gitlab.com" and gitlab.token_env == "GL_TOKEN"
    assert gitlab.at("token_env") == m.Position(str(root / "providers.yaml"), 2, 63)
    token = inv.tokens["pat"]
    assert token.owner == "@ops" and token.state == "present"
    assert token.source == GitLabPersonalAccessToken(provider="gitlab-com", name="bot", scopes=("api",))
    assert token.rotation == m.Rotation(
        rotate_before=timedelta(weeks=2), lifetime=timedelta(days=90), max_age=timedelta(hours=36), not_before=date(2026, 11, 22)
    )
    f = str(root / "tokens.yaml")
    assert token.pos == m.Position(f, 2, 3)
    assert token.rotation.at("max_age") == m.Position(f, 6, 7)
    assert token.rotation.at("lifetime").file.endswith("providers.yaml")  # taken from defaults
    hook, zd = token.consumers
    assert isinstance(hook, GitLabWebhook)
    assert hook.target == WebhookSecretField(field="custom_header", name="X-Token")
    assert hook.custom_headers == {"X-Other": "plain"} and hook.mode == "update" and hook.scope == "group:ops"
    assert hook.pos == m.Position(f, 9, 9) and hook.at("secret") == m.Position(f, 13, 9)
    assert isinstance(zd, ZendeskWebhook)
    assert zd.authentication == ZendeskWebhookAuth(type="api_key", header="X-Key")
    assert zd.value == "Bearer ${token}" and zd.endpoint is None
    assert zd.at("header") == m.Position(f, 19, 41)  # a nested key is flattened with its own place


def test_inventory_error_lists_every_error_one_per_line(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "providers.yaml": PROVIDERS,
            "tokens.yaml": (
                "tokens:\n"
                "  a:\n"
                "    source: {kind: external, value_env: A}\n"
                "    consumers: [{kind: zendesk_app_setting, provider: nope, app: X, setting: s}]\n"
                "  b:\n"
                "    source: {kind: external, value_env: B}\n"
                "    consumers: [{kind: zendesk_app_setting, provider: zd, app: X, setting: s, value: plain}]\n"
            ),
        },
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory(root)
    err = caught.value
    assert [d.key for d in err.errors] == ["tokens.a.consumers[0].provider", "tokens.b.consumers[0].value"]
    assert str(err).splitlines() == [str(d) for d in err.diagnostics]
    assert str(err).splitlines()[0].startswith(f"{root / 'tokens.yaml'}:4:")


def test_warnings_do_not_fail_loading(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "p.yaml": PROVIDERS.replace("{oauth_token_env: ZD_TOKEN}", "{email: a@example.com, api_token_env: ZD_API}"),
            "t.yaml": "tokens:\n  pat:\n    source: {kind: gitlab_personal_access_token, provider: gitlab-com, name: b, scopes: [api], strategy: overlap}\n",
        },
    )
    inv = load_inventory(root)
    keys = [w.key for w in inv.warnings]
    assert keys == ["providers.zd.auth.api_token_env", "tokens.pat", "tokens.pat.source.strategy"]
    assert all(w.severity == "warning" for w in inv.warnings)
    assert "2027-04-30" in inv.warnings[0].message


@pytest.mark.parametrize(
    ("value", "raw", "ok"),
    [
        ("${token}", None, True),
        ("prefix:${token}", None, True),
        ("Bearer ${token}", None, False),
        ("Bearer ${token}", True, False),
        ("x!${token}", None, False),
        ("x!${token}", True, True),
    ],
)
def test_masked_variable_values_follow_gitlab_masking_rules(tmp_path: Path, value: str, raw: bool | None, ok: bool) -> None:
    raw_line = "" if raw is None else f", raw: {str(raw).lower()}"
    root = write(
        tmp_path,
        {
            "p.yaml": PROVIDERS,
            "t.yaml": (
                "tokens:\n  t:\n    source: {kind: gitlab_pipeline_trigger, provider: gitlab-com, project: p, description: d}\n"
                f"    consumers: [{{kind: gitlab_ci_variable, provider: gitlab-com, project: p, key: K, masked: true, value: '{value}'{raw_line}}}]\n"
            ),
        },
    )
    _, found = diagnose(root)
    errors = [d for d in found if d.severity == "error"]
    assert (errors == []) is ok, errors


def test_diagnose_stops_before_meaning_checks_when_the_shape_is_wrong(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {"t.yaml": "tokens:\n  t:\n    source: {kind: gitlab_pipeline_trigger, provider: nope, project: 7, description: d}\n"},
    )
    inv, found = diagnose(root)
    assert inv is None
    assert [(d.key, d.message) for d in found] == [("tokens.t.source.project", "expected text, got a number")]
