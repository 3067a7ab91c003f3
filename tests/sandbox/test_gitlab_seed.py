"""The GitLab sandbox seed: its JSON Schema, relative times, errors, ids."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
import yaml

from reconciler_sandbox.core import Clock
from reconciler_sandbox.gitlab import GitLabService
from reconciler_sandbox.gitlab_seed import SeedError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "sandbox-gitlab-seed.schema.json").read_text())
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def doc_example() -> dict:
    text = (ROOT / "docs" / "sandbox-gitlab.md").read_text()
    block = re.search(r"## Seed format.*?```yaml\n(.*?)```", text, re.S).group(1)
    return yaml.safe_load(block)


def validator() -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator(SCHEMA)


def test_the_documented_example_validates_and_seeds():
    seed = doc_example()
    assert list(validator().iter_errors(seed)) == []
    service = GitLabService(Clock(NOW), seed)
    assert service.project(4711)["path_with_namespace"] == "gitlab-com/support/ticket-sync"
    assert len(service.tokens(kind="project")) == 1 and len(service.tokens(kind="group")) == 1
    assert service.variable_value("project", 4711, "HIDDEN_TOKEN", "production") == "y-1234567890"


def test_the_demo_world_seed_validates():
    world = yaml.safe_load((ROOT / "reconciler_sandbox" / "seeds" / "example.yaml").read_text())
    assert list(validator().iter_errors(world["gitlab"])) == []


def test_the_schema_rejects_unknown_keys_and_two_scopes():
    errors = list(validator().iter_errors({"users": [{"username": "a", "colour": "red"}],
                                           "variables": [{"project": 1, "group": 2, "key": "K"}]}))
    assert len(errors) == 2


def test_relative_times_follow_the_clock():
    service = GitLabService(Clock(NOW), {"users": [{"username": "a", "tokens": [
        {"name": "t", "scopes": ["api"], "created_at": "now-300d", "expires_at": "now+10d", "last_used_at": "now-12h"}]}]})
    [token] = service.tokens(name="t")
    assert token["created_at"].startswith("2025-08-05") and token["expires_at"] == "2026-06-11"
    assert token["last_used_at"] == "2026-06-01T00:00:00.000Z" and token["value"].startswith("glpat-")


def test_ids_are_sequential_unless_given():
    service = GitLabService(Clock(NOW), {"users": [{"username": "a"}, {"username": "b", "id": 10}, {"username": "c"}],
                                         "projects": [{"path_with_namespace": "g/p"}]})
    assert [u["id"] for u in service.table("users")] == [1, 10, 11]  # a given id moves the sequence on
    assert service.group("g")["id"] == 1 and service.project("g/p")["namespace_id"] == 1


@pytest.mark.parametrize(("seed", "message"), [
    ({"triggers": [{"project": "nope"}]}, "triggers[0]: no seeded project 'nope'"),
    ({"users": [{"username": "a", "tokens": [{"name": "t"}]}]}, "users[0].tokens[0]: `scopes` is required"),
    ({"users": [{"username": "a", "tokens": [{"name": "t", "scopes": ["api"], "expires_at": "soon"}]}]},
     "users[0].tokens[0].expires_at: not a timestamp"),
    ({"variables": [{"key": "K"}]}, "variables[0]: needs `project`, `group` or `instance: true`"),
    ({"users": [{"username": "a"}, {"username": "a"}]}, "'a' is seeded twice"),
])
def test_bad_seeds_name_the_entry_and_key(seed, message):
    with pytest.raises(SeedError) as err:
        GitLabService(Clock(NOW), seed)
    assert message in str(err.value)


def test_yaml_text_and_files_seed_too(tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text("users:\n  - username: from-file\n")
    service = GitLabService(Clock(NOW))
    service.seed(path)
    service.seed("users:\n  - username: from-text\n")
    assert {u["username"] for u in service.table("users")} == {"from-file", "from-text"}
