"""reconciler.gitlab_ci without a pipeline: Code Quality reports, redaction, note bodies, context."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler import gitlab_ci as ci
from reconciler.inventory import diagnose
from reconciler.plan import Finding, Plan, TokenPlan

CTX = ci.CIContext(server_url="https://gitlab.example.com", project="100", mr_iid=4, commit_sha="ab" * 20,
                   pipeline_url="https://gitlab.example.com/p/-/pipelines/7", pipeline_id="7")


def a_plan(*token_findings: Finding, other: tuple[Finding, ...] = ()) -> Plan:
    token = TokenPlan(name="sync", source_kind="gitlab_pipeline_trigger", source_identity="t", provider="gitlab",
                      at="inventory/tokens.yaml:3", action="none", strategy="overlap", findings=token_findings)
    return Plan(generated_at=datetime(2026, 6, 1, tzinfo=UTC), inventory_digest="sha256:" + "1" * 64,
                observed_digest="sha256:" + "2" * 64, tokens=(token,), findings=other)


def test_plan_findings_become_code_quality_issues_at_the_inventory_line():
    plan = a_plan(
        Finding(severity="error", code="recreate_loses_data", message="recreating the hook would drop a header",
                at="inventory/tokens.yaml:12:7", token="sync", consumer="hook"),
        other=(Finding(severity="warning", code="unmanaged", message="token 'Legacy' is not in the inventory"),),
    )
    issues = ci.codequality_from_plan(plan, "inventory")
    assert issues[0]["check_name"] == "reconcile-plan-recreate_loses_data"
    assert issues[0]["severity"] == "major" and issues[0]["location"] == {"path": "inventory/tokens.yaml",
                                                                          "lines": {"begin": 12}}
    assert issues[0]["description"].startswith("tokens.sync.hook: recreating")
    assert issues[1]["severity"] == "minor" and issues[1]["location"] == {"path": "inventory", "lines": {"begin": 1}}


def test_fingerprints_are_stable_when_an_issue_only_moves():
    at = [Finding(severity="error", code="x", message="m", at=f"inventory/a.yaml:{n}", token="t") for n in (3, 9)]
    moved = [ci.codequality_from_plan(a_plan(f), "inventory")[0] for f in at]
    assert moved[0]["fingerprint"] == moved[1]["fingerprint"]
    other = ci.codequality_from_plan(a_plan(Finding(severity="error", code="x", message="n", at="inventory/a.yaml:3",
                                                    token="t")), "inventory")[0]
    assert other["fingerprint"] != moved[0]["fingerprint"]


def test_validation_diagnostics_report_matches_gitlabs_format(tmp_path, monkeypatch):
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "a.yaml").write_text("providers:\n  gl:\n    kind: gitlab\n    url: 5\n")
    monkeypatch.chdir(tmp_path)
    _, found = diagnose("inventory")
    out = tmp_path / "report.json"
    ci.write_codequality(out, ci.codequality_from_diagnostics(found) * 2)  # duplicates dropped
    report = json.loads(out.read_text())
    assert report and len({i["fingerprint"] for i in report}) == len(report)
    for issue in report:
        assert set(issue) == {"description", "check_name", "fingerprint", "severity", "location"}
        assert issue["location"]["path"] == "inventory/a.yaml" and issue["location"]["lines"]["begin"] >= 1
        assert issue["severity"] in ("info", "minor", "major", "critical", "blocker")


def test_absolute_inventory_paths_are_made_relative_to_the_checkout(tmp_path, monkeypatch):
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "a.yaml").write_text("tokens: 5\n")
    monkeypatch.chdir(tmp_path)
    _, found = diagnose(tmp_path / "inventory")
    paths = {i["location"]["path"] for i in ci.codequality_from_diagnostics(found)}
    assert paths == {"inventory/a.yaml"}


# Credential-shaped strings built at run time, so the source holds no credential literal.
FAKE_PAT = "glpat-" + "abcdefghij" + "0123456789"
FAKE_TRIGGER = "glptt-" + "ZYXWVUTSRQ_-987654"


def test_redact_removes_credential_shapes_and_keeps_the_rest():
    text = f"token {FAKE_PAT} and {FAKE_TRIGGER} header Bearer abcdefghijklmnopqrstuv ok"
    clean = ci.redact(text)
    assert "glpat-" not in clean and "glptt-" not in clean and "abcdefghijklmnopqrstuv" not in clean
    assert clean.count("<redacted>") == 3 and clean.endswith(" ok")
    assert ci.redact("sha256:0123456789abcdef… fingerprints stay") == "sha256:0123456789abcdef… fingerprints stay"


def test_plan_note_carries_the_marker_summary_first_and_where_it_came_from():
    body = ci.plan_note_body(a_plan(), CTX)
    assert body.startswith(ci.PLAN_MARKER + "\n### reconcile plan")
    assert "No changes." in body and "pipeline [#7](https://gitlab.example.com/p/-/pipelines/7)" in body
    assert "`abababab`" in body


def test_apply_note_shows_the_outcome_and_redacts_the_output():
    body = ci.apply_note_body(f"rotated\nleaked {FAKE_PAT}\nApply complete: 1 rotated.\n", 1, CTX)
    assert body.startswith(ci.APPLY_MARKER + "\n### reconcile apply failed (exit 1)")
    assert "Apply complete: 1 rotated." in body.split("<details>")[0]
    assert "glpat-abcdefghij" not in body


def test_a_huge_note_is_cut_to_gitlabs_limit():
    assert len(ci.fit_note("x" * (ci.NOTE_LIMIT + 10))) == ci.NOTE_LIMIT


def test_context_from_env_and_explicit_options():
    ctx = ci.CIContext.from_env({"CI_SERVER_URL": "https://g", "CI_PROJECT_ID": "5", "CI_MERGE_REQUEST_IID": "9"},
                                project="ops/inventory")
    assert (ctx.server_url, ctx.project, ctx.mr_iid) == ("https://g", "ops/inventory", 9)
    with pytest.raises(ci.CIError, match="--sha or CI_COMMIT_SHA"):
        ctx.need("project", "commit_sha")


def test_note_token_env_follows_the_provider_of_the_ci_server(tmp_path):
    inv = tmp_path / "inventory"
    inv.mkdir()
    (inv / "p.yaml").write_text("providers:\n  a:\n    kind: gitlab\n    url: https://gitlab.com/\n"
                                "    auth: {token_env: GL_TOKEN}\n")
    assert ci.note_token_env(inv, "https://gitlab.com") == "GL_TOKEN"
    assert ci.note_token_env(inv, "https://gitlab.com", "OTHER") == "OTHER"
    with pytest.raises(ci.CIError, match="--token-env"):
        ci.note_token_env(inv, "https://gitlab.example.com")
    (inv / "broken.yaml").write_text("tokens: {x: {source: 5}}\n")  # the inventory no longer loads
    assert ci.note_token_env(inv, "https://gitlab.com") == "GL_TOKEN"


def test_connect_refuses_without_the_token_and_says_why():
    with pytest.raises(ci.CIError, match="CI_JOB_TOKEN cannot write notes"):
        ci.connect_gitlab("https://gitlab.com", "GL_TOKEN", {})


def test_plan_note_command_outside_ci_names_what_is_missing(tmp_path, monkeypatch):
    from reconciler.cli import main

    for name in ("CI_SERVER_URL", "CI_PROJECT_ID", "CI_MERGE_REQUEST_IID"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "plan.json").write_text(a_plan().dumps())
    assert main(["ci", "plan-note", "--plan", str(tmp_path / "plan.json")]) == 1


def test_ci_commands_are_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Running in GitLab CI"):]
    for needle in ("reconcile ci plan-note", "reconcile ci apply-note", "--codequality", "RECONCILE_ESCROW_KEY",
                   "RECONCILE_SCHEDULE=weekly-check", "0 14 * * 1", "RECONCILE_SCHEDULE=daily-apply",
                   "resource_group", "CI_JOB_TOKEN", "Protected"):
        assert needle in section, needle


def test_gitlab_errors_read_with_the_status_once():
    import gitlab.exceptions

    assert ci.describe_gitlab_error(gitlab.exceptions.GitlabGetError("404 Project Not Found", 404)) == \
        "404 Project Not Found"
    assert ci.describe_gitlab_error(gitlab.exceptions.GitlabGetError("insufficient_scope", 403)) == \
        "403 insufficient_scope"
