"""A token kept in pipeline schedule variables, through `reconcile plan` / `apply` (reconciler.cli)
against the GitLab sandbox: rotated and read back; another user's schedule and an ambiguous
description are plan errors and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler import cli
from reconciler.engine import SANDBOX_ENV_GITLAB, SANDBOX_ENV_ZENDESK
from reconciler_sandbox.world import derive, start_world
from tests.apply.apply_world import NOW, NOW_TEXT, stop_soon

OLD = derive("glptt", "schedule-sync")
SCHEDULE_PATH = "/api/v4/projects/acme/app/pipeline_schedules/31"
INVENTORY = """\
providers:
  gl: {kind: gitlab, url: https://gitlab.example.com, auth: {token_env: GL_TOKEN}}
defaults:
  rotation: {rotate_before: 21d, lifetime: 180d, max_age: 90d}
tokens:
  sync:
    description: the token the nightly export job uses
    owner: "@ops"
    source: {kind: gitlab_pipeline_trigger, provider: gl, project: acme/src, description: Sync trigger}
    consumers:
      - {kind: gitlab_pipeline_schedule_variable, provider: gl, project: acme/app, schedule: Nightly export,
         key: SYNC_TOKEN%(which)s}
      - {kind: gitlab_pipeline_schedule_variable, provider: gl, project: acme/app, schedule: Nightly export,
         key: SYNC_URL, value: "https://ci.example/run?token=${token}"%(which)s}
"""


def world_seed(schedules: list[dict], trigger_age: str = "now-100d") -> dict:
    return {
        "credentials": {"GL_TOKEN": "{{secret:glpat:schedule-bot}}"},
        "gitlab": {
            "users": [{"username": "bot", "tokens": [{"name": "reconcile", "scopes": ["api"],
                                                      "value": "{{secret:glpat:schedule-bot}}",
                                                      "expires_at": "now+300d"}]},
                      {"username": "alice"}],
            "projects": [{"path_with_namespace": "acme/src"},
                         {"path_with_namespace": "acme/app", "members": {"bot": 40, "alice": 40}}],
            "triggers": [{"project": "acme/src", "owner": "bot", "description": "Sync trigger",
                          "value": "{{secret:glptt:schedule-sync}}", "created_at": trigger_age}],
            "pipeline_schedules": schedules,
        },
        "zendesk": {"instances": {}},
    }


def nightly(id: int = 31, owner: str = "bot") -> dict:
    return {"project": "acme/app", "id": id, "description": "Nightly export", "owner": owner, "cron": "0 3 * * *",
            "variables": [{"key": "SYNC_TOKEN", "value": "{{secret:glptt:schedule-sync}}"},
                          {"key": "SYNC_URL", "value": "https://ci.example/run?token={{secret:glptt:schedule-sync}}"},
                          {"key": "MODE", "value": "full"}]}


@pytest.fixture
def serve(workdir, monkeypatch):
    """Start a world from `schedules` and point `--sandbox` at it; write the inventory."""
    started = []

    def start(schedules: list[dict], schedule_id: int | None = None, trigger_age: str = "now-100d", extra: str = ""):
        seed = workdir / "world.yaml"
        seed.write_text(json.dumps(world_seed(schedules, trigger_age)))
        world = start_world(seed, now=NOW)
        started.append(world)
        for name, value in world.credentials.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(SANDBOX_ENV_GITLAB, world.gitlab.url)
        monkeypatch.setenv(SANDBOX_ENV_ZENDESK, world.endpoints.zendesk_netloc)
        write_inventory(workdir, schedule_id, extra)
        return world

    yield start
    for world in started:
        stop_soon(world.gitlab, world.zendesk)


def write_inventory(workdir: Path, schedule_id: int | None, extra: str = "") -> None:
    (workdir / "inventory").mkdir(exist_ok=True)
    which = ("" if schedule_id is None else f", schedule_id: {schedule_id}") + extra
    (workdir / "inventory" / "inv.yaml").write_text(INVENTORY % {"which": which})


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main([*args, "--sandbox", "--now", NOW_TEXT])
    out, err = capsys.readouterr()
    assert OLD not in out + err
    return code, out, err


def held(world, schedule_id: int, key: str) -> str | None:
    found = world.gitlab.service.schedule_variable(schedule_id, key)
    return None if found is None else found["value"]


def test_a_token_in_schedule_variables_is_rotated_and_read_back(serve, capsys):
    world = serve([nightly()])
    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert (code, err) == (2, ""), out
    assert "schedule variable SYNC_TOKEN (project acme/app, pipeline schedule 'Nightly export')" in out
    # two variables of one schedule: its detail is read once; a plan writes nothing
    paths = [e.path for e in world.gitlab.log.snapshot()]
    assert paths.count(SCHEDULE_PATH) == 1 and not world.gitlab.log.mutations()

    world.gitlab.log.clear()
    code, out, err = run(capsys, "apply", "--auto-approve")
    assert code == 0, out + err
    # observed once and read back once after both writes
    assert [e.path for e in world.gitlab.log.snapshot()].count(SCHEDULE_PATH) == 2
    new_value = held(world, 31, "SYNC_TOKEN")
    assert new_value not in (None, OLD) and new_value not in out + err
    assert world.gitlab.service.trigger_by_value(new_value)["description"] == "Sync trigger"  # the new live trigger
    assert held(world, 31, "SYNC_URL") == f"https://ci.example/run?token={new_value}"
    assert held(world, 31, "MODE") == "full"
    assert out.count("verified (read back)") == 2
    assert world.gitlab.service.trigger_by_value(OLD) is None  # the old trigger is revoked

    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert code == 0 and "No changes." in out, out + err


def test_another_users_schedule_is_a_plan_error_naming_the_owner_and_nothing_is_written(serve, capsys):
    world = serve([nightly(owner="alice")])
    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert code == 1, out + err
    assert "pipeline schedule #31 is owned by @alice" in out + err

    code, out, err = run(capsys, "apply", "--auto-approve")
    assert code == 1
    assert "not applied" in out + err and "owned by @alice" in out + err
    assert not world.gitlab.log.mutations()
    assert held(world, 31, "SYNC_TOKEN") == OLD and world.gitlab.service.trigger_by_value(OLD) is not None


def test_an_ambiguous_description_is_an_error_until_schedule_id_settles_it(serve, workdir, capsys):
    world = serve([nightly(31), nightly(32)])
    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert code == 1, out + err
    assert ("2 pipeline schedules of project acme/app are described 'Nightly export' (#31, #32): "
            "set schedule_id to the one meant") in out + err
    code, out, err = run(capsys, "apply", "--auto-approve")
    assert code == 1 and not world.gitlab.log.mutations()

    write_inventory(workdir, 32)
    code, out, err = run(capsys, "apply", "--auto-approve")
    assert code == 0, out + err
    assert held(world, 32, "SYNC_TOKEN") not in (None, OLD)
    assert held(world, 31, "SYNC_TOKEN") == OLD  # the other schedule is left as it is


def test_a_declared_variable_type_is_set_without_touching_the_value(serve, capsys):
    world = serve([nightly()], trigger_age="now-10d", extra=", variable_type: file")
    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert code == 2 and "variable_type: env_var -> file" in out, out + err
    code, out, err = run(capsys, "apply", "--auto-approve")
    assert code == 0 and out.count("updated variable_type") == 2, out + err
    assert [world.gitlab.service.schedule_variable(31, key)["variable_type"] for key in ("SYNC_TOKEN", "MODE")] \
        == ["file", "env_var"]
    assert held(world, 31, "SYNC_TOKEN") == OLD  # the token was not due: the value stays
    code, out, err = run(capsys, "plan", "--detailed-exitcode")
    assert code == 0, out + err
