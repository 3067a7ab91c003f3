""".gitlab-ci.yml: valid for GitLab's own schema, and the right jobs for each pipeline source."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from ci_pipeline import CI_FILE, ROOT, TEMPLATES, Expression, component_jobs, glob_regex, load, select

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
COMPONENT = TEMPLATES / "reconcile.yml"
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

MR = {"CI": "true", "CI_PIPELINE_SOURCE": "merge_request_event", "CI_DEFAULT_BRANCH": "main",
      "CI_MERGE_REQUEST_IID": "1", "CI_COMMIT_REF_NAME": "rotate-sync"}
PUSH_MAIN = {"CI": "true", "CI_PIPELINE_SOURCE": "push", "CI_DEFAULT_BRANCH": "main", "CI_COMMIT_BRANCH": "main"}
SCHEDULE = {"CI": "true", "CI_PIPELINE_SOURCE": "schedule", "CI_DEFAULT_BRANCH": "main", "CI_COMMIT_BRANCH": "main"}


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    # The vendored schema ships inside check-jsonschema: no network.
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.gitlab-ci", str(path)],
                          capture_output=True, text=True, timeout=60)


def test_the_file_and_the_component_validate_against_gitlabs_ci_schema(tmp_path):
    """The pipeline file, the component's `spec:inputs` header, and the configuration the file
    expands to (GitLab validates the jobs after interpolating the inputs)."""
    header, _ = yaml.safe_load_all(COMPONENT.read_text())
    (tmp_path / "header.yml").write_text(yaml.safe_dump(header))
    (tmp_path / "expanded.yml").write_text(yaml.safe_dump(load()))
    for path in (CI_FILE, tmp_path / "header.yml", tmp_path / "expanded.yml"):
        done = schema_check(path)
        assert done.returncode == 0, f"{path.name}: {done.stdout}{done.stderr}"


def test_the_schema_check_would_catch_a_broken_file(tmp_path):
    broken = tmp_path / "expanded.yml"
    config = load()
    assert config["reconcile-plan"]["rules"][-1]["when"] == "always"
    config["reconcile-plan"]["rules"][-1]["when"] = "sometimes"
    broken.write_text(yaml.safe_dump(config))
    assert schema_check(broken).returncode != 0


@pytest.mark.parametrize("inputs, problem", [
    ({"install": "sometimes"}, "is not one of"),
    ({"version": "latest"}, "does not match"),
    ({"weekly-check": "no"}, "is not a boolean"),
    ({"colour": "blue"}, "unknown input"),
])
def test_the_component_refuses_inputs_gitlab_would_refuse(inputs, problem):
    with pytest.raises(ValueError, match=problem):
        component_jobs(COMPONENT, {"index-url": "https://gitlab.example.com/api/v4/projects/1/packages/pypi/simple",
                                   **inputs})


def test_the_index_of_releases_is_a_required_input():
    with pytest.raises(ValueError, match="index-url is required"):
        component_jobs(COMPONENT, {})


def test_the_component_installs_the_release_of_this_version_by_default():
    """A team that pins the component at a version gets that release of the tool."""
    index = "https://gitlab.example.com/api/v4/projects/1/packages/pypi/simple"
    jobs = component_jobs(COMPONENT, {"index-url": index})
    [install, version] = jobs[".reconcile"]["before_script"]
    assert f'"reconciler=={PROJECT_VERSION}"' in install and f'--index-url "{index}"' in install
    assert f"reconciler-{PROJECT_VERSION}-py3-none-any.whl" in install and version == "reconcile --version"


def test_each_job_can_be_left_out_by_its_input():
    switches = {"merge-request-plan": ["reconcile-validate", "reconcile-plan"], "apply-on-merge": ["reconcile-apply"],
                "daily-apply": ["reconcile-daily-apply"], "weekly-check": ["reconcile-weekly-check"]}
    for switch, names in switches.items():
        jobs = component_jobs(COMPONENT, {"index-url": "https://x.example/simple", switch: False})
        for name in names:
            for variables in (MR, PUSH_MAIN, {**SCHEDULE, "RECONCILE_SCHEDULE": "weekly-check"},
                              {**SCHEDULE, "RECONCILE_SCHEDULE": "daily-apply"}):
                assert name not in select({**jobs, "stages": ["validate", "plan", "apply", "report"]}, variables,
                                          ["inventory/a.yaml"])


@pytest.mark.parametrize("variables, changed, expected", [
    (MR, ["inventory/tokens/gitlab.yaml"], {"reconcile-validate", "reconcile-plan"}),
    (MR, ["schemas/inventory.schema.json"], {"reconcile-validate", "reconcile-plan"}),
    (MR, ["reconciler/plan.py"], {"reconcile-validate", "reconcile-plan"}),
    (MR, ["templates/reconcile.yml"], {"reconcile-validate", "reconcile-plan"}),
    (MR, ["README.md", "docs/sandbox-zendesk.md"], set()),
    (PUSH_MAIN, ["inventory/tokens/gitlab.yaml"], {"reconcile-apply"}),
    (PUSH_MAIN, ["README.md"], set()),
    ({**PUSH_MAIN, "CI_COMMIT_BRANCH": "feature"}, ["inventory/tokens/gitlab.yaml"], set()),
    ({**SCHEDULE, "RECONCILE_SCHEDULE": "weekly-check"}, None, {"reconcile-weekly-check"}),
    ({**SCHEDULE, "RECONCILE_SCHEDULE": "daily-apply"}, None, {"reconcile-daily-apply"}),
    (SCHEDULE, None, set()),  # a schedule without the variable runs nothing
    ({"CI": "true", "CI_PIPELINE_SOURCE": "push", "CI_DEFAULT_BRANCH": "main", "CI_COMMIT_TAG": "0.1.0"},
     ["inventory/a.yaml"], {"release-wheel", "release-component"}),
    ({"CI": "true", "CI_PIPELINE_SOURCE": "push", "CI_DEFAULT_BRANCH": "main", "CI_COMMIT_TAG": "try-1"},
     ["inventory/a.yaml"], set()),
    ({"CI": "true", "CI_PIPELINE_SOURCE": "web", "CI_DEFAULT_BRANCH": "main", "CI_COMMIT_BRANCH": "main"}, None,
     set()),
])
def test_each_pipeline_source_selects_its_jobs(variables, changed, expected):
    assert set(select(load(), variables, changed)) == expected


def test_apply_jobs_are_serialised_in_an_environment_and_never_interrupted():
    jobs = select(load(), {**SCHEDULE, "RECONCILE_SCHEDULE": "daily-apply"}) | \
        select(load(), PUSH_MAIN, ["inventory/a.yaml"])
    for name in ("reconcile-apply", "reconcile-daily-apply"):
        assert jobs[name]["resource_group"] == "reconcile"
        assert jobs[name]["environment"]["name"] == "production"
        assert jobs[name]["interruptible"] is False


def test_merge_request_jobs_keep_their_reports_even_when_failing():
    jobs = select(load(), MR, ["inventory/a.yaml"])
    for name in ("reconcile-validate", "reconcile-plan"):
        artifacts = jobs[name]["artifacts"]
        assert artifacts["when"] == "always"
        assert artifacts["reports"]["codequality"] == "gl-code-quality-report.json"
    assert jobs["reconcile-plan"]["artifacts"]["paths"] == ["plan.json"]


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


def test_a_release_publishes_the_wheel_of_the_tagged_version_before_the_component():
    jobs = load()
    assert 'test -f "dist/reconciler-$CI_COMMIT_TAG-py3-none-any.whl"' in jobs["release-wheel"]["script"][2]
    assert "/packages/pypi" in jobs["release-wheel"]["script"][3]
    assert jobs["release-component"]["needs"] == ["release-wheel"]
    assert jobs["release-component"]["release"]["tag_name"] == "$CI_COMMIT_TAG"
