"""The list calls discovery scopes need, through python-gitlab against the GitLab sandbox:
a group's projects with its subgroups' (`GET /groups/:id/projects?include_subgroups=true`) and its
subgroups (`GET /groups/:id/descendant_groups`), visibility respected."""

from __future__ import annotations

import secrets

from reconciler.clients import GitLabApi
from reconciler.inventory.model import GitLabProvider
from reconciler.kinds._gitlab import FETCHERS
from reconciler.secret import Secret
from reconciler_sandbox.core import Clock
from reconciler_sandbox.gitlab import serve_gitlab

SCANNER = "glpat-" + secrets.token_urlsafe(15)[:20]  # minted per run, never a literal

SEED = {
    "users": [
        {"username": "scanner", "tokens": [{"name": "scan", "scopes": ["read_api"], "value": SCANNER}]},
        {"username": "other"},
    ],
    "groups": [
        {"full_path": "acme/ops/deep"},
        {"full_path": "secret-team", "members": {"other": 50}},
    ],
    "projects": [
        {"path_with_namespace": "acme/ops/one"},
        {"path_with_namespace": "acme/ops/deep/two"},
        {"path_with_namespace": "acme/elsewhere"},
        {"path_with_namespace": "secret-team/hidden"},
    ],
}


def _api(server) -> GitLabApi:
    provider = GitLabProvider(name="gl", url="https://gitlab.example", token_env="GL")
    return GitLabApi(provider, Secret(SCANNER), url=server.url, timeout=5)


def test_group_projects_include_subgroups_and_descendants():
    with serve_gitlab(SEED, clock=Clock()) as server:
        api = _api(server)
        projects = FETCHERS["group_projects"](api, "acme/ops")
        assert sorted(p["path_with_namespace"] for p in projects) == ["acme/ops/deep/two", "acme/ops/one"]
        assert all("namespace" in p for p in projects)
        groups = FETCHERS["descendant_groups"](api, "acme")
        assert sorted(g["full_path"] for g in groups) == ["acme/ops", "acme/ops/deep"]
        only_direct = api.gl.groups.get("acme/ops", lazy=True).projects.list(get_all=True)
        assert [p.path_with_namespace for p in only_direct] == ["acme/ops/one"]
        assert not server.log.mutations()


def test_invisible_group_is_404_to_the_scanner():
    with serve_gitlab(SEED, clock=Clock()) as server:
        api = _api(server)
        try:
            FETCHERS["group_projects"](api, "secret-team")
        except Exception as exc:  # noqa: BLE001 - classified as a scope-level error
            error = api.classify(exc)
        else:
            raise AssertionError("an invisible group must not list")
        assert error.status == 404
