"""The group credentials inventory of GitLab.com, as the scope scans read it.

An Owner of a top-level group on GitLab.com (Ultimate) lists the personal access tokens of the
group's enterprise users (and, since gitlab-org/gitlab#560151, of its service accounts) and the
access tokens of the group, its subgroups and their projects:
`GET /groups/:id/manage/personal_access_tokens` and `GET /groups/:id/manage/resource_access_tokens`
(https://docs.gitlab.com/user/group/credentials_inventory/: Ultimate, GitLab.com, Owner of a
top-level group; https://docs.gitlab.com/api/groups/, "Credentials inventory management": the rows
are personal access token entities, with `user_id` and no username, and for resource tokens
`access_level`, `resource_type` and `resource_id`). GitLab answers 403 to a caller who is not an
Owner of the group and 404 where the feature is not available (not GitLab.com) or the group is
unknown (gitlab-org/gitlab `ee/spec/requests/api/manage/groups_spec.rb`).

The scans read it for each top-level group of a discovery scope when the credential is not an
administrator (an administrator lists any user's tokens with `GET /personal_access_tokens?user_id=`;
anyone else gets 401 for another user's): the personal access token kind takes the rows of the
scope's listed users from it, the access token kinds take the rows of the scope's groups and
projects from it instead of one list per group and project. Where it is refused, those kinds fall
back to what the credential may read, and the refusal is one line of the scan (both lists of a
group are refused alike, with the same words).
"""

from __future__ import annotations

from typing import Any

from gitlab import exceptions as gl_errors

from reconciler.kinds import FetchError, ListKey, Lists
from reconciler.kinds._discovery import ScanScope, listed
from reconciler.kinds._gitlab import api_path, fetcher, list_all

PATS = "credentials_inventory_pats"
RESOURCE_TOKENS = "credentials_inventory_resource_tokens"

WHO_MAY = ("reading it needs the Owner role of the top-level group on GitLab.com with the Ultimate tier "
           "(on a self-managed instance, an administrator's credential lists every user's tokens instead)")


def _read(api: Any, group: str, resource: str) -> list[dict[str, Any]] | FetchError:
    try:
        return list_all(api, api_path("groups", group, f"manage/{resource}"))
    except gl_errors.GitlabHttpError as exc:
        if exc.response_code in (403, 404):
            said = str(exc.error_message)
            status = said if said.startswith(str(exc.response_code)) else f"{exc.response_code} {said}"
            return FetchError(exc.response_code, f"refused ({status}): the tokens of the group's enterprise "
                                                 f"users cannot be read; {WHO_MAY}")
        raise


@fetcher(PATS)
def fetch_inventory_pats(api: Any, scope: str) -> list[dict[str, Any]] | FetchError:
    return _read(api, scope, "personal_access_tokens")


@fetcher(RESOURCE_TOKENS)
def fetch_inventory_resource_tokens(api: Any, scope: str) -> list[dict[str, Any]] | FetchError:
    return _read(api, scope, "resource_access_tokens")


def credential_user(scope: ScanScope, lists: Lists) -> dict[str, Any] | None:
    """The credential's user (`GET /user`), once the scan has read it."""
    me = listed(lists, ListKey(scope.provider, "user"))
    return me if isinstance(me, dict) else None


def inventory_groups(scope: ScanScope, lists: Lists) -> list[str] | None:
    """The top-level groups of the scope whose credentials inventory the scan reads: none for an
    administrator's credential; None until the credential's user is known."""
    me = credential_user(scope, lists)
    if me is None:
        return None
    if me.get("is_admin"):
        return []
    return [group for group in scope.groups if "/" not in group.strip("/")]


def pat_keys(scope: ScanScope, lists: Lists, groups: list[str], users: list[str]) -> list[ListKey]:
    """The credentials inventories of `groups`, then, once they answered, the own list of each of
    `users` (ids) none of them has a row of: someone who is not an enterprise user of those groups,
    whose list says who may read it. When every inventory was refused, no more: each user's list
    would be refused as well, and the refusal is said once."""
    inventories = [ListKey(scope.provider, PATS, group) for group in groups]
    if any(key not in lists for key in inventories):
        return inventories
    found = [answered(lists, key) for key in inventories]
    if all(rows is None for rows in found):
        return inventories
    seen = {str(row.get("user_id")) for rows in found for row in rows or ()}
    return inventories + [ListKey(scope.provider, "pats", uid) for uid in users if uid not in seen]


def top_group(path: str) -> str:
    return path.strip("/").split("/", 1)[0]


def answered(lists: Lists, key: ListKey) -> list[dict[str, Any]] | None:
    """The inventory's rows; None when it is not read yet or was refused."""
    data = lists.get(key)
    return data if isinstance(data, list) else None


def resource_paths(lists: Lists, provider: str, group: str) -> dict[tuple[str, str], str]:
    """(resource type, id) -> full path of the groups and projects of top-level `group`, from the
    scope lists (`descendant_groups`, `group_projects`, which carry ids)."""
    paths: dict[tuple[str, str], str] = {}
    for row in listed(lists, ListKey(provider, "descendant_groups", group)) or ():
        paths[("group", str(row["id"]))] = str(row["full_path"])
    for row in listed(lists, ListKey(provider, "group_projects", group)) or ():
        paths[("project", str(row["id"]))] = str(row["path_with_namespace"])
    return paths


def resource_path(row: dict[str, Any], paths: dict[tuple[str, str], str], group: str) -> str:
    """The full path of the group or project a resource token row belongs to. The list holds the
    tokens of `group`'s tree only, so a group token whose group is none of its subgroups is the
    group's own."""
    kind, rid = str(row.get("resource_type") or ""), str(row.get("resource_id"))
    found = paths.get((kind, rid))
    if found is not None:
        return found
    if kind == "group":
        return group
    return f"{group} (a project with id {rid} created after the scan read the group's projects)"
