"""The GitLab sandbox driven through python-gitlab 8.x, unmodified, including error paths."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import gitlab
import pytest
import requests

from reconciler_sandbox.core import Clock, FaultRule
from reconciler_sandbox.gitlab import serve_gitlab


def mint(prefix: str = "glpat-") -> str:
    return prefix + secrets.token_urlsafe(15)[:20]


ADMIN, ALICE, BOB, READER, ROTATOR, OLD = (mint() for _ in range(6))
TRIGGER = mint("glptt-")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def seed() -> dict:
    return {
        "users": [
            {"username": "root", "admin": True,
             "tokens": [{"name": "admin", "scopes": ["api"], "value": ADMIN, "expires_at": "now+300d"}]},
            {"username": "alice", "tokens": [
                {"name": "alice-api", "scopes": ["api"], "value": ALICE, "expires_at": "now+100d",
                 "created_at": "now-200d"},
                {"name": "alice-read", "scopes": ["read_api"], "value": READER, "expires_at": "now+10d"},
                {"name": "alice-rotate", "scopes": ["self_rotate"], "value": ROTATOR, "expires_at": "now+10d"},
                {"name": "alice-old", "scopes": ["api"], "value": OLD, "expires_at": "now-1d"},
            ]},
            {"username": "bob", "tokens": [{"name": "bob", "scopes": ["api"], "value": BOB, "expires_at": "now+50d"}]},
        ],
        "groups": [{"full_path": "support", "members": {"alice": 50, "bob": 30}}],
        "projects": [
            {"path_with_namespace": "support/sync", "id": 4711, "members": {"alice": 40}},
            {"path_with_namespace": "other/secret", "members": {"alice": 40}},
        ],
        "triggers": [{"project": "support/sync", "owner": "bob", "description": "Ticket sync", "value": TRIGGER}],
        "variables": [
            {"project": "support/sync", "key": "SYNC_TOKEN", "value": mint(), "masked": True, "protected": True},
            {"project": "support/sync", "key": "HIDDEN", "value": mint(), "masked": True, "hidden": True},
            {"project": "support/sync", "key": "MULTI", "value": "a", "environment_scope": "prod"},
            {"project": "support/sync", "key": "MULTI", "value": "b", "environment_scope": "staging"},
            {"group": "support", "key": "GROUP_VAR", "value": "g"},
            {"instance": True, "key": "INSTANCE_VAR", "value": "i"},
        ],
        "hooks": [{"project": "support/sync", "url": "https://hooks.example.com/{path}", "token": mint("whs-"),
                   "url_variables": {"path": "p-" + secrets.token_hex(6)}, "custom_headers": {"X-Key": mint("hdr-")},
                   "push_events": True, "issues_events": True}],
        "issues": [{"project": "support/sync", "title": "Tokens expiring", "labels": ["token-expiry"]}],
        "merge_requests": [{"project": "support/sync", "iid": 7, "sha": "a" * 40, "title": "Rotate"}],
    }


@pytest.fixture(scope="module")
def shared():
    clock = Clock(NOW)
    server = serve_gitlab(clock=clock)
    yield server
    server.stop()


@pytest.fixture
def server(shared):
    shared.service.clock.set(NOW)
    shared.service.reset(seed())
    shared.faults.clear()
    shared.log.clear()
    return shared


def gl(server, token=ALICE) -> gitlab.Gitlab:
    return gitlab.Gitlab(url=server.url, private_token=token, timeout=5)


# --- users, projects, groups -------------------------------------------------------------------------


def test_auth_version_and_lookups(server):
    client = gl(server)
    client.auth()
    assert client.user.username == "alice" and client.user.web_url.startswith(server.url)
    assert client.version()[0].startswith("18.11")
    assert client.projects.get("support/sync").id == 4711
    assert client.projects.get(4711).path_with_namespace == "support/sync"
    assert client.groups.get("support").full_path == "support"
    assert [u.username for u in gl(server, ADMIN).users.list(username="bob")] == ["bob"]
    assert client.users.get(gl(server, ADMIN).users.list(username="bob")[0].id).username == "bob"


def test_unknown_project_group_and_user_are_404(server):
    client = gl(server)
    with pytest.raises(gitlab.GitlabGetError) as err:
        client.projects.get("support/missing")
    assert err.value.response_code == 404 and "Project Not Found" in err.value.error_message
    with pytest.raises(gitlab.GitlabGetError):
        client.groups.get("nope")
    with pytest.raises(gitlab.GitlabGetError):
        client.users.get(999)


def test_a_non_member_does_not_see_a_restricted_project(server):
    with pytest.raises(gitlab.GitlabGetError) as err:
        gl(server, BOB).projects.get("other/secret")
    assert err.value.response_code == 404


# --- authentication errors --------------------------------------------------------------------------


def test_unknown_revoked_and_expired_tokens_get_gitlabs_401_bodies(server):
    with pytest.raises(gitlab.GitlabAuthenticationError) as err:
        gl(server, mint()).auth()
    assert err.value.error_message == "401 Unauthorized"
    with pytest.raises(gitlab.GitlabAuthenticationError) as err:
        gl(server, OLD).auth()
    assert err.value.error_message == "invalid_token" and b"Token is expired" in err.value.response_body
    gl(server).personal_access_tokens.delete("self")
    with pytest.raises(gitlab.GitlabAuthenticationError) as err:
        gl(server).auth()
    assert b"Token was revoked" in err.value.response_body


def test_read_api_token_cannot_write(server):
    project = gl(server, READER).projects.get("support/sync", lazy=True)
    assert project.variables.get("SYNC_TOKEN").key == "SYNC_TOKEN"
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project.variables.create({"key": "NEW", "value": "value1234"})
    assert err.value.response_code == 403 and "insufficient_scope" in err.value.response_body.decode()


def test_self_rotate_scope_can_only_self_rotate(server):
    client = gl(server, ROTATOR)
    with pytest.raises(gitlab.GitlabListError):
        client.projects.get("support/sync", lazy=True).variables.list()
    new = client.personal_access_tokens.rotate("self")
    assert new["token"].startswith("glpat-") and new["token"] != ROTATOR


# --- personal access tokens -----------------------------------------------------------------------------


def test_rotate_revokes_old_returns_new_once_with_default_expiry(server):
    client = gl(server)
    me = client.personal_access_tokens.get("self")
    new = client.personal_access_tokens.rotate(me.id)
    assert new["id"] != me.id and new["name"] == "alice-api" and new["token"] != ALICE
    assert new["expires_at"] == (NOW.date() + timedelta(days=7)).isoformat()
    old = server.service.token_by_value(ALICE)
    assert old["revoked"] and not old["active"]
    live = server.service.token_by_value(new["token"])
    assert live["active"] and live["previous_id"] == me.id
    assert "token" not in gl(server, new["token"]).personal_access_tokens.get(new["id"]).attributes


def test_rotate_with_expiry_beyond_the_maximum_is_400(server):
    client = gl(server)
    far = (NOW.date() + timedelta(days=400)).isoformat()
    with pytest.raises(gitlab.GitlabRotateError) as err:
        client.personal_access_tokens.rotate("self", expires_at=far)
    assert err.value.response_code == 400
    assert server.service.token_by_value(ALICE)["active"]


def test_reuse_detection_revokes_the_whole_family(server):
    client = gl(server)
    new = client.personal_access_tokens.rotate("self")
    newer = gl(server, new["token"]).personal_access_tokens.rotate("self")
    # A retry with the first (revoked) value: 401, and every token of the family is revoked.
    with pytest.raises(gitlab.GitlabAuthenticationError):
        client.personal_access_tokens.rotate("self")
    assert not server.service.token_by_value(newer["token"])["active"]
    assert server.service.token_by_value(BOB)["active"]


def test_rotating_a_revoked_token_as_admin_is_400(server):
    token_id = server.service.token_by_value(ALICE)["id"]
    admin = gl(server, ADMIN)
    admin.personal_access_tokens.delete(token_id)
    with pytest.raises(gitlab.GitlabRotateError) as err:
        admin.personal_access_tokens.rotate(token_id)
    assert err.value.response_code == 400 and "already revoked" in err.value.error_message


def test_list_filters_and_visibility(server):
    client = gl(server)
    names = {t.name for t in client.personal_access_tokens.list(get_all=True)}
    assert names == {"alice-api", "alice-read", "alice-rotate", "alice-old"}
    active = {t.name for t in client.personal_access_tokens.list(get_all=True, state="active")}
    assert "alice-old" not in active
    soon = {t.name for t in client.personal_access_tokens.list(get_all=True, expires_before="2026-06-20")}
    assert soon == {"alice-read", "alice-rotate", "alice-old"}
    assert len(gl(server, ADMIN).personal_access_tokens.list(get_all=True)) == 6
    bob_id = server.service.user("bob")["id"]
    with pytest.raises(gitlab.GitlabAuthenticationError):
        client.personal_access_tokens.list(user_id=bob_id)
    with pytest.raises(gitlab.GitlabAuthenticationError):
        client.personal_access_tokens.get(server.service.token_by_value(BOB)["id"])


def test_admin_creates_a_pat_for_a_user_and_non_admin_gets_403(server):
    bob = gl(server, ADMIN).users.get(server.service.user("bob")["id"], lazy=True)
    created = bob.personal_access_tokens.create({"name": "made", "scopes": ["read_api"], "expires_at": "2026-07-01"})
    assert created.token.startswith("glpat-") and created.user_id == bob.id
    with pytest.raises(gitlab.GitlabCreateError) as err:
        gl(server).users.get(bob.id, lazy=True).personal_access_tokens.create({"name": "x", "scopes": ["api"]})
    assert err.value.response_code == 403


# --- project and group access tokens -----------------------------------------------------------------------


def test_project_access_token_lifecycle_creates_a_bot(server):
    project = gl(server).projects.get("support/sync", lazy=True)
    token = project.access_tokens.create({"name": "sync-bot", "scopes": ["api"], "access_level": 30,
                                          "expires_at": "2026-12-01"})
    assert token.resource_type == "project" and token.resource_id == 4711 and token.access_level == 30
    bot = server.service.user(token.user_id)
    assert bot["bot"] is True
    rotated = project.access_tokens.rotate(token.id)
    assert rotated["id"] != token.id and rotated["user_id"] == token.user_id
    assert [t.active for t in project.access_tokens.list(get_all=True)] == [False, True]
    project.access_tokens.delete(rotated["id"])
    assert not server.service.token(rotated["id"])["active"]
    with pytest.raises(gitlab.GitlabGetError) as err:
        project.access_tokens.get(9999)
    assert err.value.error_message == "404 project Access Token Not Found"


def test_rotating_a_missing_project_token_is_401_for_a_maintainer_and_404_for_an_admin(server):
    # GL resource_access_tokens.rotate (reference section 2): non-admins cannot tell a missing token.
    with pytest.raises(gitlab.GitlabAuthenticationError):
        gl(server).projects.get("support/sync", lazy=True).access_tokens.rotate(9999)
    with pytest.raises(gitlab.GitlabRotateError) as err:
        gl(server, ADMIN).projects.get("support/sync", lazy=True).access_tokens.rotate(9999)
    assert err.value.response_code == 404


def test_group_access_token_and_bot_self_rotate(server):
    group = gl(server).groups.get("support", lazy=True)
    token = group.access_tokens.create({"name": "g", "scopes": ["api", "self_rotate"], "expires_at": "2026-12-01"})
    new = gl(server, token.token).http_post("/groups/support/access_tokens/self/rotate")
    assert new["resource_type"] == "group" and new["token"] != token.token
    with pytest.raises(gitlab.GitlabHttpError) as err:
        gl(server).http_post("/groups/support/access_tokens/self/rotate")
    assert err.value.response_code == 405


def test_developer_cannot_manage_group_tokens(server):
    with pytest.raises(gitlab.GitlabAuthenticationError):
        gl(server, BOB).groups.get("support", lazy=True).access_tokens.list()


# --- triggers --------------------------------------------------------------------------------------------


def test_triggers_full_token_only_for_owner(server):
    project = gl(server).projects.get("support/sync", lazy=True)
    [seeded] = project.triggers.list()
    assert len(seeded.token) == 4 and TRIGGER.startswith("glptt-" + seeded.token)
    mine = project.triggers.create({"description": "Zendesk Global - Ticket Sync"})
    assert mine.token.startswith("glptt-") and server.service.trigger_by_value(mine.token)["id"] == mine.id
    mine.description = "renamed"
    mine.save()
    assert project.triggers.get(mine.id).description == "renamed"
    with pytest.raises(gitlab.GitlabUpdateError) as err:
        project.triggers.update(seeded.id, {"description": "not mine"})
    assert err.value.response_code == 403
    project.triggers.delete(mine.id)
    with pytest.raises(gitlab.GitlabGetError):
        project.triggers.get(mine.id)


def test_trigger_pipeline_accepts_a_valid_token_and_404s_an_unknown_one(server):
    project = gl(server).projects.get(4711, lazy=True)
    pipeline = project.trigger_pipeline("main", TRIGGER, variables={"A": "1"})
    assert pipeline.ref == "main" and pipeline.source == "trigger"
    assert server.service.trigger_by_value(TRIGGER)["last_used"] is not None
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project.trigger_pipeline("main", mint("glptt-"))
    assert err.value.response_code == 404
    webhook_form = requests.post(f"{server.url}/api/v4/projects/4711/ref/main/trigger/pipeline?token={TRIGGER}")
    assert webhook_form.status_code == 201


# --- CI/CD variables -----------------------------------------------------------------------------------


def test_variables_crud_partial_update_and_hidden(server):
    project = gl(server).projects.get("support/sync", lazy=True)
    hidden = project.variables.get("HIDDEN")
    assert hidden.value is None and hidden.hidden is True
    project.variables.update("HIDDEN", {"value": "new-hidden-value"})
    assert server.service.variable_value("project", "support/sync", "HIDDEN") == "new-hidden-value"
    before = project.variables.get("SYNC_TOKEN")
    project.variables.update("SYNC_TOKEN", {"value": "replaced-value-1"})
    after = project.variables.get("SYNC_TOKEN")
    assert after.value == "replaced-value-1" and after.masked and after.protected == before.protected
    created = project.variables.create({"key": "NEW_ONE", "value": "x", "environment_scope": "prod"})
    assert created.environment_scope == "prod"
    project.variables.delete("NEW_ONE")
    assert server.service.variable("project", 4711, "NEW_ONE", "prod") is None


def test_variable_errors(server):
    project = gl(server).projects.get("support/sync", lazy=True)
    with pytest.raises(gitlab.GitlabGetError) as err:
        project.variables.get("MULTI")
    assert err.value.response_code == 409
    assert project.variables.get("MULTI", filter={"environment_scope": "staging"}).value == "b"
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project.variables.create({"key": "BAD", "value": "short", "masked": True})
    assert err.value.response_code == 400
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project.variables.create({"key": "SYNC_TOKEN", "value": "x"})
    assert "has already been taken" in err.value.response_body.decode()
    with pytest.raises(gitlab.GitlabUpdateError) as err:
        project.variables.update("HIDDEN", {"masked": False})
    assert err.value.response_code == 400
    with pytest.raises(gitlab.GitlabGetError) as err:
        project.variables.get("NOPE")
    assert err.value.error_message == "404 Variable Not Found"


def test_masked_raw_allows_symbols_but_not_spaces(server):
    project = gl(server).projects.get("support/sync", lazy=True)
    assert project.variables.create({"key": "RAW1", "value": "a$c!%&xyzw", "masked": True, "raw": True}).raw
    with pytest.raises(gitlab.GitlabCreateError):
        project.variables.create({"key": "RAW2", "value": "a b c d e f", "masked": True, "raw": True})


def test_group_and_instance_variables(server):
    assert gl(server).groups.get("support", lazy=True).variables.get("GROUP_VAR").value == "g"
    admin = gl(server, ADMIN)
    assert admin.variables.get("INSTANCE_VAR").value == "i"
    admin.variables.update("INSTANCE_VAR", {"value": "j"})
    assert server.service.variable_value("instance", None, "INSTANCE_VAR") == "j"
    with pytest.raises(gitlab.GitlabGetError):
        gl(server).variables.get("INSTANCE_VAR")
    with pytest.raises(gitlab.GitlabListError):
        gl(server, BOB).groups.get("support", lazy=True).variables.list()


# --- hooks --------------------------------------------------------------------------------------------------


def test_hook_secrets_are_never_returned_and_url_change_clears_the_token(server):
    project = gl(server).projects.get("support/sync", lazy=True)
    [listed] = project.hooks.list()
    assert "url_variables" not in listed.attributes and listed.token_present is True
    hook = project.hooks.get(listed.id)
    assert hook.url_variables == [{"key": "path"}] and hook.custom_headers == [{"key": "X-Key"}]
    assert "token" not in hook.attributes
    # A save() after a GET resends url_variables without values: GitLab's Grape params refuse it.
    hook.push_events = False
    with pytest.raises(gitlab.GitlabUpdateError) as err:
        hook.save()
    assert err.value.response_code == 400 and "url_variables[0][value] is missing" in err.value.error_message
    project.hooks.update(hook.id, {"url": "https://hooks.example.com/{path}", "push_events": False})
    assert server.service.hook_secrets(hook.id)["token"]  # same url: the token survives
    assert project.hooks.get(hook.id).push_events is False
    project.hooks.update(hook.id, {"url": "https://other.example.com/x"})
    secrets_now = server.service.hook_secrets(hook.id)
    assert secrets_now["token"] is None and secrets_now["url_variables"] == {} and secrets_now["custom_headers"] == {}


def test_hook_token_update_and_pair_endpoints(server):
    client = gl(server)
    project = client.projects.get("support/sync", lazy=True)
    hook_id = project.hooks.list()[0].id
    new = mint("whs-")
    project.hooks.update(hook_id, {"url": "https://hooks.example.com/{path}", "token": new})
    assert server.service.hook_secrets(hook_id)["token"] == new
    assert client.http_put(f"/projects/4711/hooks/{hook_id}/url_variables/path",
                           post_data={"value": "v2"}).status_code == 204
    assert client.http_put(f"/projects/4711/hooks/{hook_id}/custom_headers/X-Other",
                           post_data={"value": "h2"}).status_code == 204
    assert server.service.hook_secrets(hook_id)["url_variables"] == {"path": "v2"}
    client.http_delete(f"/projects/4711/hooks/{hook_id}/custom_headers/X-Other")
    with pytest.raises(gitlab.GitlabHttpError) as err:
        client.http_delete(f"/projects/4711/hooks/{hook_id}/url_variables/missing")
    assert err.value.response_code == 404


def test_hook_create_delete_and_group_hooks(server):
    client = gl(server)
    project = client.projects.get("support/sync", lazy=True)
    hook = project.hooks.create({"url": "https://x.example.com/h", "token": mint("whs-"), "note_events": True})
    assert hook.note_events is True and hook.token_present is True
    project.hooks.delete(hook.id)
    with pytest.raises(gitlab.GitlabCreateError) as err:
        project.hooks.create({"url": "not a url"})
    assert err.value.response_code == 422
    group_hook = client.groups.get("support", lazy=True).hooks.create({"url": "https://g.example.com",
                                                                       "subgroup_events": True})
    assert group_hook.group_id == server.service.group("support")["id"] and group_hook.subgroup_events


# --- issues, merge requests, notes ---------------------------------------------------------------------------


def test_issues_create_filter_update_close(server):
    project = gl(server).projects.get("support/sync", lazy=True)
    issue = project.issues.create({"title": "Expiry report", "description": "body", "labels": "token-expiry,bot"})
    assert set(issue.labels) == {"token-expiry", "bot"}
    assert {i.iid for i in project.issues.list(labels="token-expiry", state="opened")} == {1, issue.iid}
    assert [i.iid for i in project.issues.list(search="Expiry report")] == [issue.iid]
    issue.description = "updated"
    issue.state_event = "close"
    issue.save()
    fresh = project.issues.get(issue.iid)
    assert fresh.state == "closed" and fresh.description == "updated"
    note = fresh.notes.create({"body": "closing"})
    assert note.body == "closing" and note.noteable_type == "Issue"


def test_merge_request_lookup_by_commit_and_notes_update_in_place(server):
    client = gl(server)
    project = client.projects.get("support/sync", lazy=True)
    found = project.commits.get("a" * 40, lazy=True).merge_requests()
    assert [mr["iid"] for mr in found] == [7]
    mr = project.mergerequests.get(7)
    note = mr.notes.create({"body": "plan v1"})
    note.body = "plan v2"
    note.save()
    assert [n.body for n in mr.notes.list()] == ["plan v2"]
    other = gl(server, BOB).projects.get("support/sync", lazy=True).mergerequests.get(7, lazy=True)
    with pytest.raises(gitlab.GitlabUpdateError) as err:
        other.notes.update(note.id, {"body": "hijack"})
    assert err.value.response_code == 403


# --- pagination, rate limits, faults, clock, persistence --------------------------------------------------------


def test_pagination_links_use_the_server_url(server):
    client = gl(server)
    project = client.projects.get("support/sync", lazy=True)
    for i in range(5):
        project.issues.create({"title": f"i{i}"})
    answer = requests.get(f"{server.url}/api/v4/projects/4711/issues?per_page=2",
                          headers={"PRIVATE-TOKEN": ALICE})
    assert answer.headers["X-Total"] == "6" and answer.headers["X-Total-Pages"] == "3"
    assert answer.links["next"]["url"].startswith(server.url)
    assert len(project.issues.list(get_all=True, per_page=2)) == 6
    assert int(answer.headers["RateLimit-Limit"]) > 0 and "RateLimit-Remaining" in answer.headers


def test_rate_limit_429_with_retry_after(server):
    server.rate_limit.limit = 2
    server.rate_limit.windows.clear()
    try:
        codes = [requests.get(f"{server.url}/api/v4/version", headers={"PRIVATE-TOKEN": ALICE}) for _ in range(3)]
        assert [c.status_code for c in codes] == [200, 200, 429]
        assert int(codes[-1].headers["Retry-After"]) >= 1 and codes[-1].text == "Retry later"
    finally:
        server.rate_limit.limit = 100000
        server.rate_limit.windows.clear()


def test_fault_after_rotate_leaves_an_unclear_outcome(server):
    server.faults.configure(rules=[FaultRule("502", nth=(1,), path=r"/rotate$", after=True)])
    with pytest.raises(gitlab.GitlabRotateError):
        gl(server).personal_access_tokens.rotate("self")
    assert not server.service.token_by_value(ALICE)["active"]  # applied: the old value is dead
    assert [e.path for e in server.log.mutations()] == ["/api/v4/personal_access_tokens/self/rotate"]


def test_crash_hook_stops_after_the_nth_mutation(server):
    client = gl(server)
    project = client.projects.get("support/sync", lazy=True)
    server.faults.crash_after(2)
    project.variables.update("SYNC_TOKEN", {"value": "first-write-1"})
    with pytest.raises(requests.ConnectionError):
        project.variables.update("MULTI", {"value": "c"}, filter={"environment_scope": "prod"})
    assert server.service.variable_value("project", 4711, "MULTI", "prod") == "c"
    server.faults.recover()
    assert len(server.log.mutations()) == 2


def test_latency_is_added(server):
    import time

    server.faults.configure(latency=0.2)
    start = time.monotonic()
    gl(server).version()
    assert time.monotonic() - start >= 0.2


def test_clock_decides_expiry(server):
    client = gl(server, READER)
    assert client.personal_access_tokens.get("self").active
    server.service.clock.advance(timedelta(days=11))
    with pytest.raises(gitlab.GitlabAuthenticationError):
        client.auth()


def test_save_and_load_round_trip(server, tmp_path):
    path = tmp_path / "world.sandbox.json"
    gl(server).projects.get(4711, lazy=True).issues.create({"title": "persisted"})
    server.service.save(path)
    fresh = serve_gitlab(clock=Clock(NOW))
    try:
        fresh.service.load(path)
        titles = [i.title for i in gl(fresh).projects.get(4711, lazy=True).issues.list(get_all=True)]
        assert "persisted" in titles
        assert fresh.service.secrets() >= {ALICE, TRIGGER}
    finally:
        fresh.stop()


def test_secrets_hold_every_seeded_and_minted_value(server):
    new = gl(server).personal_access_tokens.rotate("self")
    values = server.service.secrets()
    assert {ADMIN, ALICE, BOB, TRIGGER, new["token"]} <= values
    assert server.service.variable_value("project", 4711, "HIDDEN") in values
