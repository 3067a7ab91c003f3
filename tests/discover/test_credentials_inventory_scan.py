"""The scope scan through GitLab.com's group credentials inventory, without HTTP: which lists the
personal and resource access token kinds ask for, credential by credential, and how the
inventory's rows (a `user_id`, a `resource_type` and `resource_id`) become records named by
username and path."""

from __future__ import annotations

from reconciler.kinds import FetchError, ListKey, source_kind
from reconciler.kinds._discovery import ScanScope

SCOPE = ScanScope("gl", "gitlab", users={"7": "owner-bot", "8": "alice", "9": "bob"}, listed_users=("7", "8", "9"),
                  groups=("acme", "acme/support"), projects=("acme/support/app", "other/tool"))
OWNER = {ListKey("gl", "user"): {"id": 7, "username": "owner-bot"}}  # GET /user of a non-admin: no is_admin
PATS, RESOURCES = ListKey("gl", "credentials_inventory_pats", "acme"), \
    ListKey("gl", "credentials_inventory_resource_tokens", "acme")
PAT, PROJECT, GROUP = (source_kind(k) for k in ("gitlab_personal_access_token", "gitlab_project_access_token",
                                                "gitlab_group_access_token"))


def test_a_group_owner_reads_the_others_tokens_in_the_inventory_and_its_own_in_its_list():
    assert PAT.scan_keys(SCOPE, OWNER) == [ListKey("gl", "pats", "7"), PATS]  # type: ignore[attr-defined]
    lists = {**OWNER, PATS: [{"id": 1, "name": "laptop", "user_id": 8, "scopes": ["api"]},
                             {"id": 2, "name": "sa", "user_id": 50, "scopes": ["api"]}]}
    # bob has no row: not an enterprise user of acme, or no token; his own list says which
    assert PAT.scan_keys(SCOPE, lists) == [ListKey("gl", "pats", "7"), PATS, ListKey("gl", "pats", "9")]  # type: ignore[attr-defined]
    (alice,) = PAT.scan_tokens(PATS, lists[PATS], SCOPE, lists)  # type: ignore[attr-defined]  # not the service account's
    assert alice.live.where == "gl: user alice" and alice.owner == "@alice"
    assert alice.declaration == {"kind": "gitlab_personal_access_token", "provider": "gl", "name": "laptop",
                                 "scopes": ["api"], "user": "alice", "enterprise_group": "acme"}


def test_a_refused_inventory_asks_for_no_list_that_would_be_refused_too():
    lists = {**OWNER, PATS: FetchError(403, "refused")}
    assert PAT.scan_keys(SCOPE, lists) == [ListKey("gl", "pats", "7"), PATS]  # type: ignore[attr-defined]


def test_an_administrator_reads_each_users_list():
    admin = {ListKey("gl", "user"): {"id": 7, "is_admin": True}}
    assert PAT.scan_keys(SCOPE, admin) == [ListKey("gl", "pats", u) for u in ("7", "8", "9")]  # type: ignore[attr-defined]
    assert GROUP.scan_keys(SCOPE, admin) == [ListKey("gl", "group_access_tokens", g) for g in SCOPE.groups]  # type: ignore[attr-defined]


def test_resource_tokens_come_from_the_inventory_of_their_top_level_group_by_path():
    assert PROJECT.scan_keys(SCOPE, OWNER) == [RESOURCES, ListKey("gl", "project_access_tokens", "other/tool")]  # type: ignore[attr-defined]
    lists = {**OWNER, ListKey("gl", "descendant_groups", "acme"): [{"id": 11, "full_path": "acme/support"}],
             ListKey("gl", "group_projects", "acme"): [{"id": 100, "path_with_namespace": "acme/support/app"}],
             RESOURCES: [{"id": 5, "name": "Deploy", "resource_type": "project", "resource_id": 100, "access_level": 40},
                         {"id": 6, "name": "Bot", "resource_type": "group", "resource_id": 11, "access_level": 30},
                         {"id": 7, "name": "Top", "resource_type": "group", "resource_id": 10, "access_level": 30}]}
    (deploy,) = PROJECT.scan_tokens(RESOURCES, lists[RESOURCES], SCOPE, lists)  # type: ignore[attr-defined]
    assert deploy.live.where == "gl: project acme/support/app"
    assert deploy.declaration["project"] == "acme/support/app" and deploy.declaration["access_level"] == 40
    bot, top = GROUP.scan_tokens(RESOURCES, lists[RESOURCES], SCOPE, lists)  # type: ignore[attr-defined]
    assert (bot.scope, top.scope) == ("acme/support", "acme")  # the group's own: none of its subgroups
    refused = {**lists, RESOURCES: FetchError(404, "refused")}
    assert PROJECT.scan_keys(SCOPE, refused) == [ListKey("gl", "project_access_tokens", p) for p in SCOPE.projects]  # type: ignore[attr-defined]


def test_service_account_tokens_are_named_by_account_and_group():
    kind = source_kind("gitlab_service_account_token")
    accounts = ListKey("gl", "group_service_accounts", "acme")
    assert kind.scan_keys(SCOPE, {}) == [accounts]  # type: ignore[attr-defined]  # top-level groups only
    lists = {accounts: [{"id": 50, "username": "sync-bot"}]}
    tokens = ListKey("gl", "service_account_tokens", "acme#50")
    assert kind.scan_keys(SCOPE, lists) == [accounts, tokens]  # type: ignore[attr-defined]
    (sync,) = kind.scan_tokens(tokens, [{"id": 3, "name": "sync", "scopes": ["api"], "user_id": 50}], SCOPE, lists)  # type: ignore[attr-defined]
    assert sync.live.where == "gl: service account sync-bot (group acme)" and sync.can_be_credential
    assert sync.declaration == {"kind": "gitlab_service_account_token", "provider": "gl", "account": "sync-bot",
                                "name": "sync", "scopes": ["api"], "group": "acme"}
