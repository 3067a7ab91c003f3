""".gitlab-ci.yml: valid for GitLab's own schema, and the right jobs for each pipeline source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ci_pipeline import CI_FILE, ROOT, Expression, glob_regex, load, select

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"

MR = {"CI": "true", "CI_PIPELINE_SOURCE": "merge_request_event", "CI_DEFAULT_BRANCH": "main",
      "CI_MERGE_REQUEST_IID": "1", "CI_COMMIT_REF_NAME": "rotate-sync"}
PUSH_MAIN = {"CI": "true", "CI_PIPELINE_SOURCE": "push", "CI_DEFAULT_BRANCH": "main", "CI_COMMIT_BRANCH": "main"}
SCHEDULE = {"CI": "true", "CI_PIPELINE_SOURCE": "schedule", "CI_DEFAULT_BRANCH": "main", "CI_COMMIT_BRANCH": "main"}


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    # The vendored schema ships inside check-jsonschema: no network.
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.gitlab-ci", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_the_file_validates_against_gitlabs_ci_schema():
    done = schema_check(CI_FILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_would_catch_a_broken_file(tmp_path):
    broken = tmp_path / ".gitlab-ci.yml"
    text = CI_FILE.read_text()
    assert "      when: always\n" in text
    broken.write_text(text.replace("      when: always\n", "      when: sometimes\n"))
    assert schema_check(broken).returncode != 0


@pytest.mark.parametrize("variables, changed, expected", [
    (MR, ["inventory/tokens/gitlab.yaml"], {"validate", "plan"}),
    (MR, ["schemas/inventory.schema.json"], {"validate", "plan"}),
    (MR, ["reconciler/plan.py"], {"validate", "plan"}),
    (MR, ["README.md", "docs/sandbox-zendesk.md"], set()),
    (PUSH_MAIN, ["inventory/tokens/gitlab.yaml"], {"apply"}),
    (PUSH_MAIN, ["README.md"], set()),
    ({**PUSH_MAIN, "CI_COMMIT_BRANCH": "feature"}, ["inventory/tokens/gitlab.yaml"], set()),
    ({**SCHEDULE, "RECONCILE_SCHEDULE": "weekly-check"}, None, {"weekly-check"}),
    ({**SCHEDULE, "RECONCILE_SCHEDULE": "daily-apply"}, None, {"daily-apply"}),
    (SCHEDULE, None, set()),  # a schedule without the variable runs nothing
    ({"CI": "true", "CI_PIPELINE_SOURCE": "web", "CI_DEFAULT_BRANCH": "main", "CI_COMMIT_BRANCH": "main"}, None,
     set()),
])
def test_each_pipeline_source_selects_its_jobs(variables, changed, expected):
    assert set(select(load(), variables, changed)) == expected


def test_apply_jobs_are_serialised_in_an_environment_and_never_interrupted():
    jobs = select(load(), {**SCHEDULE, "RECONCILE_SCHEDULE": "daily-apply"}) | \
        select(load(), PUSH_MAIN, ["inventory/a.yaml"])
    for name in ("apply", "daily-apply"):
        assert jobs[name]["resource_group"] == "reconcile"
        assert jobs[name]["environment"]["name"] == "production"
        assert jobs[name]["interruptible"] is False


def test_merge_request_jobs_keep_their_reports_even_when_failing():
    jobs = select(load(), MR, ["inventory/a.yaml"])
    for name in ("validate", "plan"):
        artifacts = jobs[name]["artifacts"]
        assert artifacts["when"] == "always"
        assert artifacts["reports"]["codequality"] == "gl-code-quality-report.json"
    assert jobs["plan"]["artifacts"]["paths"] == ["plan.json"]


@pytest.mark.parametrize("expression, variables, expected", [
    ('$A == "x"', {"A": "x"}, True),
    ('$A == "x"', {}, False),
    ('$A != "x"', {}, True),
    ("$A == null", {}, True),
    ("$A", {"A": ""}, False),
    ("$A", {"A": "1"}, True),
    ("$A == $B", {"A": "main", "B": "main"}, True),
    ('$A == "x" && $B == "y" || $C', {"C": "1"}, True),
    ('$A == "x" && ($B == "y" || $C)', {"C": "1"}, False),
    ("$A =~ /^rel-\\d+$/", {"A": "rel-12"}, True),
    ("$A !~ /^rel/i", {"A": "REL-1"}, False),
])
def test_rules_if_evaluator(expression, variables, expected):
    assert Expression(expression)(variables) is expected


def test_changes_globs_cross_directories_only_with_double_star():
    assert glob_regex("inventory/**/*").match("inventory/tokens/a.yaml")
    assert glob_regex("inventory/**/*").match("inventory/a.yaml")
    assert not glob_regex("inventory/*").match("inventory/tokens/a.yaml")
    assert glob_regex("*.{yml,yaml}").match("x.yml")


def test_pre_commit_hook_runs_validate():
    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "reconcile-validate")
    assert hook["entry"].startswith("reconcile validate") and hook["pass_filenames"] is False
    assert hook["language"] == "python"
