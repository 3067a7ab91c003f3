"""Pipeline schedules and their variables in the GitLab sandbox, through python-gitlab 8.x unmodified."""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

import gitlab
import jsonschema
import pytest
import requests
import yaml

from reconciler_sandbox.core import Clock
from reconciler_sandbox.gitlab import serve_gitlab
from reconciler_sandbox.gitlab_schedules import next_run
from reconciler_sandbox.gitlab_seed import SeedError

DOCS = Path(__file__).resolve().parents[2] / "docs"


def mint(prefix: str = "glpat-") -> str:
    return prefix + secrets.token_urlsafe(15)[:20]


OWNER, MAINTAINER, DEVELOPER, REPORTER, GUEST, ADMIN = (mint() for _ in range(6))
SYNC_TOKEN = mint("zd-")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a Monday


def seed() -> dict:
    def user(name: str, value: str, **extra) -> dict:
        return {"username": name, **extra, "tokens": [{"name": name, "scopes": ["api"], "value": value,
                                                       "expires_at": "now+100d"}]}

    return {
        "users": [user("owner", OWNER), user("maint", MAINTAINER), user("dev", DEVELOPER), user("rep", REPORTER),
                  user("guest", GUEST), user("root", ADMIN, admin=True)],
        "projects": [
            {"path_with_namespace": "support/sync", "id": 4711,
             "members": {"owner": 30, "maint": 40, "dev": 30, "rep": 20, "guest": 10}},
            {"path_with_namespace": "support/locked", "id": 4712, "members": {"owner": 40},
             "ci_pipeline_variables_minimum_override_role": "no_one_allowed"},
        ],
        "pipeline_schedules": [
            {"project": 4711, "id": 31, "description": "Nightly ticket export", "owner": "owner", "ref": "main",
             "cron": "0 3 * * *", "cron_timezone": "Europe/Berlin",
             "variables": [{"key": "ZENDESK_TOKEN", "value": SYNC_TOKEN}, {"key": "MODE", "value": "full"}]},
            {"project": 4711, "id": 32, "description": "Weekly cleanup", "owner": "maint", "active": False,
             "cron": "@weekly"},
            {"project": 4711, "id": 33, "description": "Weekly cleanup", "owner": "dev"},
            {"project": 4712, "id": 41, "description": "Locked", "owner": "owner"},
        ],
    }


@pytest.fixture(scope="module")
def shared():
    server = serve_gitlab(clock=Clock(NOW))
    yield server
    server.stop()


@pytest.fixture
def server(shared):
    shared.service.clock.set(NOW)
    shared.service.reset(seed())
    shared.log.clear()
    return shared


def project(server, token=OWNER, ref=4711):
    return gitlab.Gitlab(url=server.url, private_token=token, timeout=5).projects.get(ref, lazy=True)


def test_the_list_carries_no_variables_and_filters_by_scope(server):
    schedules = project(server, REPORTER).pipelineschedules.list(get_all=True)
    assert [s.id for s in schedules] == [31, 32, 33]
    assert all("variables" not in s.attributes for s in schedules)
    nightly = schedules[0]
    assert nightly.ref == "refs/heads/main" and nightly.cron_timezone == "Europe/Berlin"
    assert nightly.next_run_at == "2026-06-02T01:00:00.000Z"  # 03:00 in Berlin (CEST)
    assert nightly.owner["username"] == "owner" and nightly.owner["web_url"] == f"{server.url}/owner"
    assert [s.id for s in project(server).pipelineschedules.list(scope="inactive")] == [32]
    # Descriptions are not unique: a schedule found by description may be ambiguous.
    assert [s.id for s in schedules if s.description == "Weekly cleanup"] == [32, 33]


def test_one_schedule_shows_its_variables_with_values_to_its_owner_and_maintainers(server):
    for token in (OWNER, MAINTAINER, ADMIN):
        schedule = project(server, token).pipelineschedules.get(31)
        assert schedule.attributes["variables"] == [
            {"variable_type": "env_var", "key": "ZENDESK_TOKEN", "value": SYNC_TOKEN, "raw": False},
            {"variable_type": "env_var", "key": "MODE", "value": "full", "raw": False}]
        assert schedule.last_pipeline is None
    # A Developer or Reporter who does not own it sees the schedule without a `variables` key.
    for token in (DEVELOPER, REPORTER):
        assert "variables" not in project(server, token).pipelineschedules.get(31).attributes


def test_create_update_and_delete_a_variable_as_the_owner(server):
    schedule = project(server).pipelineschedules.get(31, lazy=True)
    created = schedule.variables.create({"key": "NEW_TOKEN", "value": "first-value-1", "variable_type": "file"})
    assert (created.key, created.value, created.variable_type) == ("NEW_TOKEN", "first-value-1", "file")
    updated = schedule.variables.update("NEW_TOKEN", {"value": "second-value-2"})
    assert updated == {"variable_type": "file", "key": "NEW_TOKEN", "value": "second-value-2", "raw": False}
    read_back = project(server).pipelineschedules.get(31).attributes["variables"]
    assert {"variable_type": "file", "key": "NEW_TOKEN", "value": "second-value-2", "raw": False} in read_back
    assert server.service.schedule_variable(31, "NEW_TOKEN")["value"] == "second-value-2"
    schedule.variables.delete("NEW_TOKEN")
    assert server.service.schedule_variable(31, "NEW_TOKEN") is None


def test_delete_answers_202_with_the_deleted_variable_and_get_reads_one(server):
    headers = {"PRIVATE-TOKEN": OWNER}
    url = f"{server.url}/api/v4/projects/4711/pipeline_schedules/31/variables/MODE"
    got = requests.get(url, headers=headers, timeout=5)
    assert got.status_code == 200 and got.json() == {"variable_type": "env_var", "key": "MODE", "value": "full",
                                                     "raw": False}
    gone = requests.delete(url, headers=headers, timeout=5)
    assert gone.status_code == 202 and gone.json()["key"] == "MODE"
    assert requests.get(url, headers=headers, timeout=5).status_code == 404


def test_the_single_variable_get_is_absent_before_18_7(server):
    server.service.reset({**seed(), "version": "17.11.7"})
    answer = requests.get(f"{server.url}/api/v4/projects/4711/pipeline_schedules/31/variables/MODE",
                          headers={"PRIVATE-TOKEN": OWNER}, timeout=5)
    assert answer.status_code == 405
    assert project(server).pipelineschedules.get(31).attributes["variables"][1]["value"] == "full"


def test_a_duplicate_key_and_a_bad_key_are_400_validation_errors(server):
    variables = project(server).pipelineschedules.get(31, lazy=True).variables
    with pytest.raises(gitlab.GitlabCreateError) as err:
        variables.create({"key": "MODE", "value": "again"})
    assert err.value.response_code == 400 and err.value.error_message == {"key": ["has already been taken"]}
    with pytest.raises(gitlab.GitlabCreateError) as err:
        variables.create({"key": "BAD-KEY", "value": "x"})
    assert err.value.error_message == {"key": ["can contain only letters, digits and '_'."]}
    with pytest.raises(gitlab.GitlabCreateError) as err:
        variables.create({"key": "TYPED", "value": "x", "variable_type": "secret"})
    assert err.value.error_message == "variable_type does not have a valid value"


def test_a_missing_schedule_or_key_is_404(server):
    with pytest.raises(gitlab.GitlabGetError) as err:
        project(server).pipelineschedules.get(999)
    assert err.value.response_code == 404 and err.value.error_message == "404 Pipeline Schedule Not Found"
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project(server).pipelineschedules.get(41, lazy=True).variables.create({"key": "K", "value": "v"})
    assert err.value.response_code == 404  # schedule 41 belongs to another project
    with pytest.raises(gitlab.GitlabUpdateError) as err:
        project(server).pipelineschedules.get(31, lazy=True).variables.update("NOPE", {"value": "v"})
    assert err.value.response_code == 404 and err.value.error_message == "404 Pipeline Schedule Variable Not Found"
    with pytest.raises(gitlab.GitlabDeleteError) as err:
        project(server).pipelineschedules.get(31, lazy=True).variables.delete("NOPE")
    assert err.value.response_code == 404


def test_only_the_owner_may_write_variables_a_maintainer_must_take_ownership(server):
    variables = project(server, MAINTAINER).pipelineschedules.get(31, lazy=True).variables
    with pytest.raises(gitlab.GitlabUpdateError) as err:
        variables.update("ZENDESK_TOKEN", {"value": "maintainer-value"})
    assert err.value.response_code == 403 and err.value.error_message == "403 Forbidden"
    with pytest.raises(gitlab.GitlabCreateError) as err:
        variables.create({"key": "OTHER", "value": "v"})
    assert err.value.response_code == 403
    assert server.service.schedule_variable(31, "ZENDESK_TOKEN")["value"] == SYNC_TOKEN
    # A Maintainer may still delete a variable (admin_pipeline_schedule), and take ownership.
    variables.delete("MODE")
    schedule = project(server, MAINTAINER).pipelineschedules.get(31)
    schedule.take_ownership()
    assert schedule.owner["username"] == "maint"
    variables.update("ZENDESK_TOKEN", {"value": "maintainer-value"})
    assert server.service.schedule_variable(31, "ZENDESK_TOKEN")["value"] == "maintainer-value"


def test_developers_and_reporters_who_do_not_own_it_are_refused(server):
    with pytest.raises(gitlab.GitlabUpdateError) as err:
        project(server, DEVELOPER).pipelineschedules.get(31, lazy=True).variables.update("MODE", {"value": "x"})
    assert err.value.response_code == 403
    with pytest.raises(gitlab.GitlabDeleteError) as err:
        project(server, DEVELOPER).pipelineschedules.get(31, lazy=True).variables.delete("MODE")
    assert err.value.response_code == 403
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project(server, REPORTER).pipelineschedules.create({"description": "x", "ref": "main", "cron": "0 1 * * *"})
    assert err.value.response_code == 403
    # A Guest cannot read schedules: 403 on the list, 404 on one.
    with pytest.raises(gitlab.GitlabListError) as err:
        project(server, GUEST).pipelineschedules.list()
    assert err.value.response_code == 403
    with pytest.raises(gitlab.GitlabGetError) as err:
        project(server, GUEST).pipelineschedules.get(31)
    assert err.value.response_code == 404


def test_a_project_restricting_pipeline_variables_refuses_even_the_owner(server):
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project(server, OWNER, 4712).pipelineschedules.get(41, lazy=True).variables.create({"key": "K", "value": "v"})
    assert err.value.response_code == 403


def test_schedule_lifecycle_and_validation(server):
    schedules = project(server, DEVELOPER).pipelineschedules
    created = schedules.create({"description": "Hourly", "ref": "main", "cron": "0 * * * *"})
    assert created.owner["username"] == "dev" and created.ref == "refs/heads/main" and created.active is True
    assert created.next_run_at == "2026-06-01T13:00:00.000Z" and created.attributes["variables"] == []
    created.cron = "*/5 * * * *"
    created.save()
    assert schedules.get(created.id).cron == "*/5 * * * *"
    with pytest.raises(gitlab.GitlabCreateError) as err:
        schedules.create({"description": "Bad", "ref": "main", "cron": "61 * * * *", "cron_timezone": "Mars/Base"})
    assert err.value.error_message == {"cron": [" is invalid syntax"], "cron_timezone": [" is invalid syntax"]}
    with pytest.raises(gitlab.GitlabUpdateError) as err:
        schedules.update(31, {"cron": "0 4 * * *"})  # the owner's schedule
    assert err.value.response_code == 403
    schedules.delete(created.id)
    assert server.service.table("pipeline_schedules")[-1]["id"] != created.id
    answer = requests.post(f"{server.url}/api/v4/projects/4711/pipeline_schedules", json={"ref": "main"},
                           headers={"PRIVATE-TOKEN": DEVELOPER}, timeout=5)
    assert answer.status_code == 400 and answer.json() == {"error": "description is missing, cron is missing"}


def test_values_never_reach_the_request_log_but_the_leak_guard_knows_them(server):
    variables = project(server).pipelineschedules.get(31, lazy=True).variables
    new_value = mint()
    variables.create({"key": "ROTATED", "value": new_value})
    variables.update("ROTATED", {"value": (newer := mint())})
    project(server).pipelineschedules.get(31)
    entries = server.log.snapshot()
    assert [(e.method, e.status) for e in entries] == [("POST", 201), ("PUT", 200), ("GET", 200)]
    logged = repr(entries)
    for value in (new_value, newer, SYNC_TOKEN):
        assert value not in logged
    assert {SYNC_TOKEN, new_value, newer} <= server.service.secrets()


def test_state_round_trips_through_save_and_load(server, tmp_path):
    path = tmp_path / "world.sandbox.json"
    server.service.save(path)
    server.service.reset()
    server.service.load(path)
    assert server.service.schedule_variable(31, "ZENDESK_TOKEN")["value"] == SYNC_TOKEN


@pytest.mark.parametrize(("entry", "message"), [
    ({"project": "nope/x", "description": "d"}, "pipeline_schedules[0]: no seeded project 'nope/x'"),
    ({"project": 4711, "description": "d", "cron": "every day"}, "pipeline_schedules[0]: cron is invalid syntax"),
    ({"project": 4711, "description": "d", "variables": [{"key": "A"}, {"key": "A"}]},
     "pipeline_schedules[0].variables[1]: `key` is required and unique in its schedule"),
])
def test_bad_schedule_seeds_name_the_entry_and_key(server, entry, message):
    with pytest.raises(SeedError) as err:
        server.service.reset({**seed(), "pipeline_schedules": [entry]})
    assert str(err.value) == message


def test_next_run_follows_cron_days_and_zones():
    assert next_run("0 9 * * mon-fri", "Europe/Berlin", NOW) == datetime(2026, 6, 2, 7, 0, tzinfo=UTC)
    assert next_run("0 12 13 * fri", "UTC", NOW) == datetime(2026, 6, 5, 12, 0, tzinfo=UTC)  # either day field
    assert next_run("@yearly", "UTC", NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    assert next_run("0 1 * *", "UTC", NOW) is None


def test_the_documented_schedule_seed_validates_and_seeds():
    example = yaml.safe_load(re.search(r"## Seed format.*?```yaml\n(.*?)```", (DOCS / "sandbox-gitlab.md").read_text(),
                                       re.S).group(1))
    schema = json.loads((DOCS / "sandbox-gitlab-seed.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    assert list(validator.iter_errors(example)) == []
    bad = {"pipeline_schedules": [{"project": 1, "description": "d", "variables": [{"key": "K", "masked": True}]}]}
    assert [e.validator for e in validator.iter_errors(bad)] == ["additionalProperties"]
    with serve_gitlab(example, clock=Clock(NOW)) as server:
        schedule = server.service.table("pipeline_schedules")[0]
        assert (schedule["description"], schedule["ref"]) == ("Nightly ticket export", "refs/heads/main")
        assert server.service.schedule_variable(31, "ZENDESK_API_TOKEN")["value"] == "zd-1234567890"
        assert server.service.project(4711)["ci_pipeline_variables_minimum_override_role"] == "developer"
