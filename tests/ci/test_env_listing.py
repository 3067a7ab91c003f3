"""`reconcile env` (reconciler/ci_env.py): every variable the inventory needs in CI, and the plan
note's line naming those an apply would miss. No network; values never shown."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.ci_env import (
    ci_variables,
    missing_for_apply,
    missing_variables_note,
    render_dotenv,
    render_text,
)
from reconciler.cli import main
from reconciler.inventory import load_inventory
from reconciler.plan import Plan, TokenPlan

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory"
CREDENTIALS = ["RECONCILE_GITLAB_TOKEN", "RECONCILE_ZENDESK_GLOBAL_TOKEN", "RECONCILE_ZENDESK_USGOV_TOKEN"]
SET_VALUE = "glpat-" + "NOT-TO-BE-SHOWN-4711"  # built at run time: no credential-shaped literal


@pytest.fixture
def example():
    return load_inventory(EXAMPLE)


def test_the_example_inventory_needs_its_credentials_the_external_value_the_escrow_key_and_the_trust(example):
    found = {v.name: v for v in ci_variables(example, {"RECONCILE_GITLAB_TOKEN": SET_VALUE})}
    assert list(found) == [*CREDENTIALS, "STATUSPAGE_API_KEY", "RECONCILE_ESCROW_KEY", "RECONCILE_TRUSTED_PROVIDERS"]
    for name in CREDENTIALS:
        assert found[name].job_names == ["plan", "apply", "check"] and found[name].masked and found[name].protected
    assert "state backend" in found["RECONCILE_GITLAB_TOKEN"].purpose
    assert found["STATUSPAGE_API_KEY"].job_names == ["apply"] and found["STATUSPAGE_API_KEY"].supplies == {
        "statuspage-api-key"}
    assert found["RECONCILE_ESCROW_KEY"].job_names == ["plan", "apply"]
    trusted = found["RECONCILE_TRUSTED_PROVIDERS"]
    assert trusted.protected and not trusted.masked
    assert trusted.value is not None and "https://gitlab.com=RECONCILE_GITLAB_TOKEN" in trusted.value
    assert [n for n, v in found.items() if v.is_set] == ["RECONCILE_GITLAB_TOKEN"]


def test_no_value_from_the_environment_is_ever_shown(example, monkeypatch, capsys):
    for name in [*CREDENTIALS, "STATUSPAGE_API_KEY", "RECONCILE_ESCROW_KEY"]:
        monkeypatch.setenv(name, SET_VALUE)
    monkeypatch.delenv("RECONCILE_TRUSTED_PROVIDERS", raising=False)
    for fmt in ("text", "json", "dotenv-template"):
        assert main(["env", "--inventory", str(EXAMPLE), "--format", fmt]) == 0
        out, err = capsys.readouterr()
        assert SET_VALUE not in out + err and "RECONCILE_ESCROW_KEY" in out
    assert main(["env", "--inventory", str(EXAMPLE)]) == 0
    text = capsys.readouterr().out
    assert "6 variable(s), 1 needed and not set here: RECONCILE_TRUSTED_PROVIDERS" in text
    assert main(["env", "--inventory", str(EXAMPLE), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["variables"]
    assert {v["name"]: v["set"] for v in listed}["RECONCILE_ESCROW_KEY"] is True


def test_job_filter_lists_only_what_that_job_reads(capsys):
    assert main(["env", "--inventory", str(EXAMPLE), "--job", "check", "--format", "json"]) == 0
    names = [v["name"] for v in json.loads(capsys.readouterr().out)["variables"]]
    assert names == [*CREDENTIALS, "RECONCILE_TRUSTED_PROVIDERS"]


def test_dotenv_template_has_one_empty_line_per_secret_and_the_trusted_set_filled_in(example):
    lines = render_dotenv(ci_variables(example, {})).splitlines()
    assignments = [line for line in lines if line and not line.startswith("#")]
    assert [a.split("=", 1)[0] for a in assignments] == [*CREDENTIALS, "STATUSPAGE_API_KEY", "RECONCILE_ESCROW_KEY",
                                                          "RECONCILE_TRUSTED_PROVIDERS"]
    assert all(a.endswith("=") for a in assignments[:-1])
    assert assignments[-1].startswith("RECONCILE_TRUSTED_PROVIDERS='https://")
    assert "# jobs: apply; protected, masked" in lines


def test_a_provider_only_the_state_uses_is_optional_and_a_local_state_adds_nothing(tmp_path):
    (tmp_path / "inv.yaml").write_text("""\
providers:
  gl: {kind: gitlab, url: "https://gitlab.example.com", auth: {token_env: GL_TOKEN}}
  ci-gl: {kind: gitlab, url: "https://gitlab.example.com", auth: {token_env: STATE_TOKEN}}
state: {backend: gitlab, provider: ci-gl, project: ops/inventory, escrow_key_env: MY_KEY}
tokens:
  manual:
    description: typed in by a person
    owner: "@ops"
    source: {kind: external, value_file: secret.txt}
    consumers:
      - {kind: gitlab_ci_variable, provider: gl, project: ops/app, key: MANUAL, masked: true}
""")
    found = {v.name: v for v in ci_variables(load_inventory(tmp_path / "inv.yaml"), {})}
    assert list(found) == ["STATE_TOKEN", "GL_TOKEN", "MY_KEY", "RECONCILE_TRUSTED_PROVIDERS"]  # no value_env
    assert found["STATE_TOKEN"].optional and "CI_JOB_TOKEN" in found["STATE_TOKEN"].purpose
    assert not found["GL_TOKEN"].optional and "state backend" not in found["GL_TOKEN"].purpose
    assert missing_for_apply(list(found.values()), []) == ["GL_TOKEN", "MY_KEY"]
    assert "(optional)" in render_text(list(found.values()))


def plan_of(*rotated: str) -> Plan:
    tokens = tuple(TokenPlan(name=name, source_kind="external", source_identity=name, provider=None, at="x:1",
                             action="rotate" if name in rotated else "none", strategy="external")
                   for name in ("statuspage-api-key", "other"))
    return Plan(generated_at=datetime(2026, 6, 1, tzinfo=UTC), inventory_digest="sha256:" + "1" * 64,
                observed_digest="sha256:" + "2" * 64, tokens=tokens)


def test_the_plan_note_names_an_external_value_only_when_the_plan_rotates_its_token(example):
    env = dict.fromkeys([*CREDENTIALS, "RECONCILE_ESCROW_KEY"], SET_VALUE)
    variables = ci_variables(example, env)
    assert missing_variables_note(variables, plan_of()) == ""
    note = missing_variables_note(variables, plan_of("statuspage-api-key"))
    assert "**Not set in this pipeline, needed by the apply:** `STATUSPAGE_API_KEY`" in note
    assert "reconcile env --job apply" in note and SET_VALUE not in note
    bare = missing_variables_note(ci_variables(example, {}), plan_of())
    assert "`RECONCILE_ESCROW_KEY`" in bare and "STATUSPAGE_API_KEY" not in bare and "TRUSTED" not in bare


def test_a_bad_inventory_is_one_message_and_exit_1(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("providers: [\n")
    assert main(["env", "--inventory", str(tmp_path / "bad.yaml")]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "Traceback" not in err


def test_the_readme_set_up_shows_what_reconcile_env_prints_for_the_example(example):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Set-up, step by step"):readme.index("### The commands the pipeline runs")]
    assert "`reconcile env`" in section and "grep -rn '_env:'" not in section
    shown = [line.strip() for line in section.split("```\n   VARIABLE", 1)[1].split("```", 1)[0].splitlines()[1:]
             if line.strip()]
    printed = render_text(ci_variables(example, {})).splitlines()[1:]
    assert len(shown) == len(ci_variables(example, {}))
    for line in shown:  # the README may cut a long line with "..."
        assert any(p.startswith(line.removesuffix("...").rstrip()) for p in printed), line
