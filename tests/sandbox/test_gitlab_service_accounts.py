"""Service accounts, their tokens and the group credentials inventory in the GitLab sandbox, through
python-gitlab 8.x unmodified over real HTTP (its service-account managers where they exist,
`gl.http_*` for the credentials inventory, which python-gitlab has no manager for)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import gitlab
import pytest
import requests
from gitlab.v4.objects import GroupServiceAccount

from reconciler_sandbox.core import Clock
from reconciler_sandbox.gitlab import serve_gitlab
from reconciler_sandbox.gitlab_seed import SeedError


def mint(prefix: str = "glpat-") -> str:
    return prefix + secrets.token_urlsafe(15)[:20]


OWNER, MEMBER, ADMIN, ENTERPRISE, OUTSIDER, SA_OLD, PREMIUM_OWNER = (mint() for _ in range(7))
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ACCOUNT_FIELDS = {"id", "username", "public_email", "name", "email"}
TOKEN_FIELDS = {"id", "name", "revoked", "created_at", "description", "scopes", "user_id", "last_used_at",
                "active", "granular", "expires_at"}


def seed() -> dict:
    def user(name: str, value: str, **extra) -> dict:
        return {"username": name, **extra, "tokens": [{"name": name, "scopes": ["api"], "value": value,
                                                       "expires_at": "now+100d"}]}

    return {
        "users": [user("owner", OWNER), user("member", MEMBER), user("root", ADMIN, admin=True),
                  user("erin", ENTERPRISE, enterprise_group="acme"), user("otto", OUTSIDER),
                  user("pat", PREMIUM_OWNER)],
        "groups": [{"full_path": "acme", "id": 10, "plan": "ultimate", "members": {"owner": 50, "member": 30,
                                                                                    "erin": 30}},
                   {"full_path": "acme/team", "id": 11},
                   {"full_path": "small", "id": 20, "plan": "premium", "members": {"pat": 50}},
                   {"full_path": "free", "id": 30, "plan": "free", "members": {"owner": 50}}],
        "projects": [{"path_with_namespace": "acme/team/app", "id": 100}],
        "access_tokens": [{"project": 100, "name": "deploy", "scopes": ["api"], "expires_at": "now+10d"},
                          {"group": "acme", "name": "group-bot", "scopes": ["read_api"]}],
        "service_accounts": [
            {"group": "acme", "id": 50, "username": "sync-bot", "tokens": [
                {"name": "sync", "scopes": ["api"], "value": SA_OLD, "expires_at": "now+10d"}]},
            {"instance": True, "id": 60, "username": "backup-bot"},
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


def gl(server, token=OWNER) -> gitlab.Gitlab:
    return gitlab.Gitlab(url=server.url, private_token=token, timeout=5)


def sync_bot(server, token=OWNER) -> GroupServiceAccount:
    """The seeded account of group 10 (python-gitlab's manager has no `get`: a lazy object)."""
    return GroupServiceAccount(gl(server, token).groups.get(10, lazy=True).service_accounts, {"id": 50}, lazy=True)


def test_a_group_owner_creates_lists_and_deletes_service_accounts(server):
    accounts = gl(server).groups.get(10, lazy=True).service_accounts
    created = accounts.create({})
    assert set(created.attributes) - {"group_id"} == ACCOUNT_FIELDS
    assert created.username.startswith("service_account_group_10_") and created.name == "Service account user"
    named = accounts.create({"username": "deploy-bot", "name": "Deploy bot"})
    assert (named.username, named.name) == ("deploy-bot", "Deploy bot")
    listed = accounts.list(get_all=True)
    assert [a.id for a in listed] == [named.id, created.id, 50]  # newest first: sort defaults to desc
    assert [a.id for a in accounts.list(order_by="username", sort="asc", get_all=True)][0] == named.id
    user = server.service.user(created.id)
    assert user["bot"] and server.service.user(created.id)["created_by_id"] == server.service.user("owner")["id"]
    accounts.delete(created.id)
    assert created.id not in [a.id for a in accounts.list(get_all=True)]
    with pytest.raises(gitlab.GitlabCreateError) as err:
        accounts.create({"username": "deploy-bot"})
    assert err.value.response_code == 400


TOKENS = {"owner": OWNER, "member": MEMBER, "admin": ADMIN, "premium-owner": PREMIUM_OWNER}


@pytest.mark.parametrize(("who", "group", "code"), [
    ("member", 10, 403),         # a Developer of the group
    ("owner", 11, 400),          # a subgroup
    ("owner", 30, 403),          # a Free group
    ("premium-owner", 20, 201),  # Premium is enough
    ("admin", 10, 201),
])
def test_who_may_create_a_group_service_account(server, who, group, code):
    answer = requests.post(f"{server.url}/api/v4/groups/{group}/service_accounts", json={},
                           headers={"PRIVATE-TOKEN": TOKENS[who]}, timeout=5)
    assert answer.status_code == code
    if code == 403:
        assert answer.json() == {"message": "403 Forbidden"}


def test_on_self_managed_group_owners_need_the_admin_setting(server):
    server.service.reset({**seed(), "settings": {"allow_top_level_group_owners_to_create_service_accounts": False}})
    with pytest.raises(gitlab.GitlabCreateError) as err:
        gl(server).groups.get(10, lazy=True).service_accounts.create({})
    assert err.value.response_code == 403
    assert gl(server, ADMIN).groups.get(10, lazy=True).service_accounts.create({}).id


def test_instance_service_accounts_are_for_admins(server):
    created = gl(server, ADMIN).service_accounts.create({"name": "Nightly"})
    assert created.username.startswith("service_account_") and created.name == "Nightly"
    assert {a.username for a in gl(server, ADMIN).service_accounts.list(get_all=True)} == {"backup-bot",
                                                                                         created.username}
    with pytest.raises(gitlab.GitlabListError) as err:
        gl(server, OWNER).service_accounts.list()
    assert err.value.response_code == 403
    token = gl(server, ADMIN).users.get(created.id, lazy=True).personal_access_tokens.create(
        {"name": "nightly", "scopes": ["read_api"], "expires_at": "2026-07-01"})
    assert gl(server, token.token).personal_access_tokens.get("self").user_id == created.id


def test_an_account_holds_several_live_tokens_and_each_authenticates_as_it(server):
    account = sync_bot(server)
    new = account.access_tokens.create({"name": "sync-next", "scopes": ["api"], "expires_at": "2026-12-01"})
    assert set(new.attributes) - {"group_id", "user_id"} | {"user_id"} == TOKEN_FIELDS | {"token"}
    assert new.user_id == 50 and new.token.startswith("glpat-")
    for value in (SA_OLD, new.token):  # overlap: both live
        assert gl(server, value).personal_access_tokens.get("self").user_id == 50
    tokens = account.access_tokens.list(get_all=True)
    assert sorted(t.name for t in tokens) == ["sync", "sync-next"] and all(t.active for t in tokens)
    assert "token" not in tokens[0].attributes
    assert [t.name for t in account.access_tokens.list(search="next", get_all=True)] == ["sync-next"]
    old_id = next(t.id for t in tokens if t.name == "sync")
    account.access_tokens.delete(old_id)
    assert requests.get(f"{server.url}/api/v4/personal_access_tokens/self", headers={"PRIVATE-TOKEN": SA_OLD},
                        timeout=5).status_code == 401
    assert [t.name for t in account.access_tokens.list(state="active", get_all=True)] == ["sync-next"]
    with pytest.raises(gitlab.GitlabDeleteError) as err:
        account.access_tokens.delete(old_id)
    assert err.value.response_code == 400


def test_rotation_revokes_the_old_token_and_reuse_revokes_the_family(server):
    account = sync_bot(server)
    old_id = server.service.token_by_value(SA_OLD)["id"]
    rotated = account.access_tokens.rotate(old_id, expires_at="2026-08-01")
    assert rotated["id"] != old_id and rotated["expires_at"] == "2026-08-01"
    assert server.service.token(old_id)["revoked"] and not server.service.token(rotated["id"])["revoked"]
    answer = requests.post(f"{server.url}/api/v4/personal_access_tokens/self/rotate",
                           headers={"PRIVATE-TOKEN": SA_OLD}, timeout=5)
    assert answer.status_code == 401  # a revoked token used to rotate: the whole family goes
    assert server.service.token(rotated["id"])["revoked"]


def test_tokens_of_another_account_or_group_are_not_found(server):
    other = gl(server, ADMIN).groups.get(20, lazy=True).service_accounts.create({})
    wrong = requests.get(f"{server.url}/api/v4/groups/10/service_accounts/{other.id}/personal_access_tokens",
                         headers={"PRIVATE-TOKEN": OWNER}, timeout=5)
    assert wrong.status_code == 404 and wrong.json() == {"message": "404 User Not Found"}
    human = server.service.user("member")["id"]
    answer = requests.post(f"{server.url}/api/v4/groups/10/service_accounts/{human}/personal_access_tokens",
                           json={"name": "x", "scopes": ["api"]}, headers={"PRIVATE-TOKEN": OWNER}, timeout=5)
    assert answer.status_code == 404
    missing = requests.post(f"{server.url}/api/v4/groups/10/service_accounts/50/personal_access_tokens",
                            json={"name": "x"}, headers={"PRIVATE-TOKEN": OWNER}, timeout=5)
    assert missing.status_code == 400 and missing.json() == {"error": "scopes is missing"}


def test_the_credentials_inventory_lists_enterprise_and_service_account_tokens(server):
    client = gl(server)
    tokens = client.http_list("/groups/10/manage/personal_access_tokens", get_all=True)
    assert sorted(t["name"] for t in tokens) == ["erin", "sync"]  # not the owner's own, not outsiders'
    assert all(set(t) == TOKEN_FIELDS | {"last_used_ips"} for t in tokens)
    soon = client.http_list("/groups/10/manage/personal_access_tokens", expires_before="2026-06-20", get_all=True)
    assert [t["name"] for t in soon] == ["sync"]
    resource = client.http_list("/groups/acme/manage/resource_access_tokens", get_all=True)
    assert sorted((t["name"], t["resource_type"]) for t in resource) == [("deploy", "project"),
                                                                         ("group-bot", "group")]
    erin = next(t["id"] for t in tokens if t["name"] == "erin")
    client.http_delete(f"/groups/10/manage/personal_access_tokens/{erin}")
    assert requests.get(f"{server.url}/api/v4/user", headers={"PRIVATE-TOKEN": ENTERPRISE},
                        timeout=5).status_code == 401
    deploy = next(t["id"] for t in resource if t["name"] == "deploy")
    client.http_delete(f"/groups/10/manage/resource_access_tokens/{deploy}")
    assert server.service.token(deploy)["revoked"]
    outsider = server.service.token_by_value(OUTSIDER)["id"]
    with pytest.raises(gitlab.GitlabHttpError) as err:
        client.http_delete(f"/groups/10/manage/personal_access_tokens/{outsider}")
    assert err.value.response_code == 404


@pytest.mark.parametrize(("who", "group"), [("member", 10), ("premium-owner", 20), ("owner", 11)])
def test_the_inventory_needs_an_owner_of_an_ultimate_top_level_group(server, who, group):
    answer = requests.get(f"{server.url}/api/v4/groups/{group}/manage/personal_access_tokens",
                          headers={"PRIVATE-TOKEN": TOKENS[who]}, timeout=5)
    assert answer.status_code == 403 and answer.json() == {"message": "403 Forbidden"}


def test_values_never_reach_the_request_log_but_the_leak_guard_knows_them(server):
    account = sync_bot(server)
    new = account.access_tokens.create({"name": "n", "scopes": ["api"], "expires_at": "2026-12-01"})
    rotated = account.access_tokens.rotate(new.id)
    gl(server).http_list("/groups/10/manage/personal_access_tokens", get_all=True)
    entries = server.log.snapshot()
    assert [(e.method, e.status) for e in entries] == [("POST", 201), ("POST", 200), ("GET", 200)]
    logged = repr(entries)
    for value in (new.token, rotated["token"], SA_OLD, OWNER):
        assert value not in logged
    assert {new.token, rotated["token"], SA_OLD} <= server.service.secrets()


def test_a_trigger_answers_expires_at_as_a_timestamp_like_created_at(server):
    project = gl(server, ADMIN).projects.get(100, lazy=True)
    trigger = project.triggers.create({"description": "bot", "expires_at": "2026-07-01"})
    assert trigger.expires_at == "2026-07-01T00:00:00.000Z"
    assert len(trigger.expires_at) == len(trigger.created_at) and trigger.created_at.endswith("Z")
    assert project.triggers.get(trigger.id).expires_at == "2026-07-01T00:00:00.000Z"
    assert project.triggers.create({"description": "forever"}).expires_at is None
    answer = requests.post(f"{server.url}/api/v4/projects/100/triggers", json={"description": "x",
                           "expires_at": "soon"}, headers={"PRIVATE-TOKEN": ADMIN}, timeout=5)
    assert answer.status_code == 400


def test_19_x_projects_carry_mr_default_title_template(server):
    assert "mr_default_title_template" not in gl(server).projects.get(100).attributes  # 18.11 seed
    server.service.reset({**seed(), "version": "19.1.0"})
    project = gl(server).projects.get(100)
    assert "mr_default_title_template" in project.attributes and project.mr_default_title_template is None


@pytest.mark.parametrize(("extra", "message"), [
    ({"service_accounts": [{"group": "acme/team"}]}, "service_accounts[0].group: service accounts belong to"),
    ({"service_accounts": [{"username": "x"}]}, "service_accounts[0]: needs `project`, `group`"),
    ({"users": [{"username": "e", "enterprise_group": "nope"}]}, "users[0].enterprise_group: no seeded group"),
    ({"users": [{"username": "e", "enterprise_group": "acme/team"}]}, "is not a top-level group"),
])
def test_bad_service_account_seeds_name_the_entry_and_key(server, extra, message):
    base = {"groups": [{"full_path": "acme/team"}]}
    with pytest.raises(SeedError) as err:
        server.service.reset({**base, **extra})
    assert message in str(err.value)


def test_the_documented_example_seeds_accounts_and_enterprise_users(server):
    from tests.sandbox.test_gitlab_seed import doc_example

    server.service.reset(doc_example())
    bot = server.service.user("support-sync-bot")
    assert bot["bot"] and bot["service_account"] == {"type": "group", "id": server.service.group("gitlab-com")["id"]}
    assert sorted(t["name"] for t in server.service.tokens(user_id=bot["id"], active=True)) == ["sync", "sync-next"]
    assert server.service.user("alice")["enterprise_group_id"] == server.service.group("gitlab-com")["id"]
    assert [u["name"] for u in server.service.table("users") if (u.get("service_account") or {}).get("type")
            == "instance"] == ["Backup bot"]


def test_the_inventory_rotates_an_enterprise_users_token(server):
    erin = server.service.token_by_value(ENTERPRISE)["id"]
    rotated = gl(server).http_post(f"/groups/10/manage/personal_access_tokens/{erin}/rotate",
                                   post_data={"expires_at": "2026-07-01"})
    assert rotated["token"] != ENTERPRISE and rotated["expires_at"] == "2026-07-01"
    assert server.service.token(erin)["revoked"] and server.service.token(rotated["id"])["previous_id"] == erin


def test_a_project_maintainer_manages_project_service_accounts(server):
    server.service.reset({**seed(), "projects": [{"path_with_namespace": "acme/team/app", "id": 100,
                                                  "members": {"owner": 40, "member": 30}}]})
    accounts = gl(server).projects.get(100, lazy=True).service_accounts
    account = accounts.create({})
    assert account.username.startswith("service_account_project_100_")
    token = account.access_tokens.create({"name": "ci", "scopes": ["read_api"], "expires_at": "2026-09-01"})
    assert token.user_id == account.id and [t.name for t in account.access_tokens.list(get_all=True)] == ["ci"]
    with pytest.raises(gitlab.GitlabListError) as err:
        gl(server, MEMBER).projects.get(100, lazy=True).service_accounts.list()
    assert err.value.response_code == 403
    accounts.delete(account.id)
    assert server.service.token(token.id)["revoked"]


def test_a_service_account_reaches_only_where_it_is_a_member(server):
    world = seed()
    world["service_accounts"][0]["memberships"] = {"acme/team/app": 40}
    server.service.reset(world)
    project = gl(server, SA_OLD).projects.get(100)
    assert project.path_with_namespace == "acme/team/app"
    trigger = project.triggers.create({"description": "owned by the bot"})
    assert trigger.owner["username"] == "sync-bot"
    with pytest.raises(gitlab.GitlabGetError) as err:
        gl(server, SA_OLD).groups.get(20)
    assert err.value.response_code == 404
    with pytest.raises(SeedError) as bad:
        server.service.reset({**seed(), "service_accounts": [{"group": "acme", "memberships": {"nope": 30}}]})
    assert "service_accounts[0].memberships: no seeded project or group 'nope'" in str(bad.value)
