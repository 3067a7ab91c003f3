"""Zendesk app installations through the authenticated session of an unmodified zenpy client."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler_sandbox.core import Clock
from reconciler_sandbox.zendesk import serve_zendesk, session_for, zenpy_client

GLOBAL, FEDERAL = "gitlab", "gitlab-federal-support"
ADMIN_TOKEN = "8b" * 32
AGENT_TOKEN = "9c" * 32
APPS_READ_TOKEN = "0d" * 32
FEDERAL_TOKEN = "1e" * 32
TRIGGER = "seeded-trigger-token-0001"


def seed() -> dict:
    app = {"name": "GitLab Ticket Sync", "parameters": [{"name": "pipeline_trigger_token", "secure": True},
                                                         {"name": "project_path"}]}
    return {"instances": {
        GLOBAL: {
            "users": [{"email": "admin@gitlab.example"}, {"email": "agent@gitlab.example", "role": "agent"}],
            "oauth_tokens": [{"value": ADMIN_TOKEN}, {"value": AGENT_TOKEN, "user": "agent@gitlab.example"},
                             {"value": APPS_READ_TOKEN, "scopes": ["apps:read"]}],
            "apps": [app],
            "installations": [{"id": 361234573552, "app": "GitLab Ticket Sync",
                               "settings": {"name": "Zendesk Global - GitLab Ticket Sync",
                                            "pipeline_trigger_token": TRIGGER, "project_path": "support/sync"}}],
        },
        FEDERAL: {
            "oauth_tokens": [{"value": FEDERAL_TOKEN}],
            "apps": [app],
            "installations": [{"app": "GitLab Ticket Sync", "settings": {"project_path": "federal/sync"}}],
        },
    }}


@pytest.fixture(scope="module")
def running():
    srv = serve_zendesk(None, Clock(datetime(2026, 9, 1, tzinfo=UTC)))
    yield srv
    srv.stop()


@pytest.fixture
def server(running):
    with running.service.lock:
        running.service.load_state({"instances": {}})
        running.service.seed(seed())
    return running


@pytest.fixture
def admin(server):
    return zenpy_client(server, GLOBAL, oauth_token=ADMIN_TOKEN).users.session


URL = "/api/v2/apps/installations"


def test_list_hides_secure_settings_and_side_loads_apps(server, admin):
    body = admin.get(f"{server.url}{URL}", params={"include": "app"}).json()
    [installation] = body["installations"]
    assert installation["settings"] == {"name": "Zendesk Global - GitLab Ticket Sync", "project_path": "support/sync"}
    assert {o["name"] for o in installation["settings_objects"]} == {"name", "project_path"}
    assert body["apps"] == [{"id": installation["app_id"], "name": "GitLab Ticket Sync", "parameters": [
        {"name": "pipeline_trigger_token", "type": "text", "secure": True, "required": False},
        {"name": "project_path", "type": "text", "secure": False, "required": False}]}]
    assert "apps" not in admin.get(f"{server.url}{URL}").json()
    assert server.service.secure_setting(GLOBAL, 361234573552, "pipeline_trigger_token") == TRIGGER


def test_name_defaults_to_the_app_name_and_instances_are_separate(server):
    federal = zenpy_client(server, FEDERAL, oauth_token=FEDERAL_TOKEN).users.session
    [installation] = federal.get(f"{server.url}{URL}.json").json()["installations"]
    assert installation["settings"] == {"project_path": "federal/sync", "name": "GitLab Ticket Sync"}


@pytest.mark.parametrize("suffix", ["", ".json"])
def test_put_merges_settings_and_updates_a_secure_one(server, admin, suffix):
    answer = admin.put(f"{server.url}{URL}/361234573552{suffix}",
                       json={"settings": {"pipeline_trigger_token": "rotated-trigger-0002"}})
    assert answer.status_code == 200
    assert answer.json()["settings"] == {"name": "Zendesk Global - GitLab Ticket Sync", "project_path": "support/sync"}
    assert server.service.secure_setting(GLOBAL, 361234573552, "pipeline_trigger_token") == "rotated-trigger-0002"
    assert "rotated-trigger-0002" in server.service.secrets()
    shown = admin.get(f"{server.url}{URL}/361234573552{suffix}")
    assert shown.status_code == 200 and shown.json()["id"] == 361234573552  # not wrapped
    assert "pipeline_trigger_token" not in shown.json()["settings"]


def test_put_with_settings_objects_and_enabled(server, admin):
    answer = admin.put(f"{server.url}{URL}/361234573552", json={
        "settings_objects": [{"name": "project_path", "value": "support/other"}], "enabled": False})
    assert answer.status_code == 200
    assert answer.json()["enabled"] is False and answer.json()["settings"]["project_path"] == "support/other"


def test_errors_not_found_invalid_and_forbidden(server, admin):
    missing = admin.get(f"{server.url}{URL}/1")
    assert missing.status_code == 404 and missing.json() == {"error": "RecordNotFound", "description": "Not found"}
    empty = admin.put(f"{server.url}{URL}/361234573552", json={"settings": {}})
    assert empty.status_code == 422 and empty.json()["error"] == "RecordInvalid"
    blank_name = admin.put(f"{server.url}{URL}/361234573552", json={"settings": {"name": ""}})
    assert blank_name.status_code == 422
    agent = session_for(server, GLOBAL, oauth_token=AGENT_TOKEN)
    assert agent.get(f"{server.url}{URL}").status_code == 200  # agents may read
    assert agent.put(f"{server.url}{URL}/361234573552", json={"settings": {"project_path": "x"}}).status_code == 403
    read_only = session_for(server, GLOBAL, oauth_token=APPS_READ_TOKEN)
    assert read_only.get(f"{server.url}{URL}").status_code == 200
    refused = read_only.put(f"{server.url}{URL}/361234573552", json={"settings": {"project_path": "x"}})
    assert refused.status_code == 403 and refused.json()["error"] == "Forbidden"
    assert session_for(server, GLOBAL).get(f"{server.url}{URL}").status_code == 401
    assert server.service.secure_setting(GLOBAL, 361234573552, "project_path") == "support/sync"
