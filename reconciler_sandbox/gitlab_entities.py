"""JSON shapes of GitLab's API entities, per GitLab version.

The field sets of users, groups and projects are large and change between versions; they are
taken from real answers (the go-vcr recordings of GitLab 17.11.7 and 18.11.5 in
`../shared/oracles/recordings/gitlab/`, scrubbed of hosts and tokens) and stored as skeletons in
`gitlab_shapes.json`. The sandbox fills in the fields it models and keeps the rest as recorded.
Token, trigger, variable and hook entities are small and written out here, following
GL `lib/api/entities/*.rb` as cited in `../shared/reference/gitlab-api.md`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from .gitlab_store import GitLabStore

SHAPES_FILE = Path(__file__).with_name("gitlab_shapes.json")
# The "19.0.0" skeletons are not recorded: they are 18.11.5's plus the fields GitLab 19.x added to
# the project entity, `mr_default_title_template` (https://docs.gitlab.com/api/projects/, exposed
# by gitlab-org/gitlab!228478 behind a beta flag, here shown as enabled). [GUESS] the minor it
# arrived in (19.0 taken); no field added to the group entity in 19.x was found in the docs.


@cache
def _shapes() -> dict[str, Any]:
    return json.loads(SHAPES_FILE.read_text())


def shapes_for(version: str) -> dict[str, Any]:
    """The recorded skeletons of the nearest recorded version at or below `version`."""
    shapes = _shapes()

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split("-")[0].split(".")[:3] if p.isdigit())

    known = sorted(shapes, key=key)
    chosen = known[0]
    for candidate in known:
        if key(candidate) <= key(version):
            chosen = candidate
    return shapes[chosen]


def _fill(template: Any, base: str) -> Any:
    host = base.split("://", 1)[-1]
    if isinstance(template, dict):
        return {k: _fill(v, base) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, base) for v in template]
    if isinstance(template, str):
        return template.replace("{base}", base).replace("{ws}", "ws://" + host).replace("{host}", host)
    return template


def _fake_runners_token(kind: str, ident: int) -> str:
    # Shown to owners only; not a credential this tool handles, so a stable non-secret stand-in.
    return "GR1348941" + hashlib.sha256(f"{kind}{ident}".encode()).hexdigest()[:20]


# --- users -------------------------------------------------------------------------------------


def user_basic(store: GitLabStore, user: dict[str, Any], base: str) -> dict[str, Any]:
    entity = _fill(copy.deepcopy(shapes_for(store.version)["user_basic"]), base)
    entity.update(id=user["id"], username=user["username"], name=user["name"], state=user.get("state", "active"),
                  web_url=f"{base}/{user['username']}")
    if "public_email" in entity:
        entity["public_email"] = None
    return entity


def user_full(store: GitLabStore, user: dict[str, Any], base: str, *, caller: dict[str, Any] | None,
              details: bool = False) -> dict[str, Any]:
    """UserWithAdmin (an admin's view); `details` adds UserDetailsWithAdmin's fields (GET /users/:id).

    `followers`, `following` and `is_followed` are left out when the user looks at themself, as
    the recordings show (GL entities/user.rb `following_users_allowed`).
    """
    shapes = shapes_for(store.version)
    entity = _fill(copy.deepcopy(shapes["user_admin"]), base)
    entity.update(
        id=user["id"], username=user["username"], name=user["name"], state=user.get("state", "active"),
        web_url=f"{base}/{user['username']}", created_at=user["created_at"], bot=bool(user.get("bot")),
        email=user.get("email") or f"{user['username']}@example.com", is_admin=bool(user.get("admin")),
        commit_email=user.get("email") or f"{user['username']}@example.com", namespace_id=user["id"],
    )
    creator = store.users().get(user.get("created_by_id") or 0)
    entity["created_by"] = user_basic(store, creator, base) if creator else None
    if caller is not None and caller["id"] == user["id"]:
        for key in ("followers", "following", "is_followed"):
            entity.pop(key, None)
    if details:
        entity.update(_fill(copy.deepcopy(shapes["user_details_extra"]), base))
    return entity


def user_public(store: GitLabStore, user: dict[str, Any], base: str, *, caller: dict[str, Any]) -> dict[str, Any]:
    """What a non-admin sees of a user at GET /users/:id (Entities::User: up to local_time)."""
    full = user_full(store, user, base, caller=caller)
    keys = list(full)
    cut = keys.index("local_time") + 1 if "local_time" in keys else len(keys)
    return {k: full[k] for k in keys[:cut]}


# --- groups and projects -------------------------------------------------------------------------


def namespace_of(store: GitLabStore, project: dict[str, Any], base: str) -> dict[str, Any]:
    if project.get("namespace_id") is not None:
        group = store.tables["groups"][project["namespace_id"]]
        return {"id": group["id"], "name": group["name"], "path": group["path"], "kind": "group",
                "full_path": group["full_path"], "parent_id": group.get("parent_id"), "avatar_url": None,
                "web_url": f"{base}/groups/{group['full_path']}"}
    owner = store.users().get(project.get("namespace_user_id") or 0)
    path = project["path_with_namespace"].rsplit("/", 1)[0]
    return {"id": owner["id"] if owner else 0, "name": owner["name"] if owner else path, "path": path,
            "kind": "user", "full_path": path, "parent_id": None,
            "avatar_url": None, "web_url": f"{base}/{path}"}


def project_entity(store: GitLabStore, project: dict[str, Any], base: str, *, in_group: bool = False,
                   permissions: dict[str, Any] | None = None, admin: bool = False) -> dict[str, Any]:
    shapes = shapes_for(store.version)
    entity = _fill(copy.deepcopy(shapes["project_in_group" if in_group else "project"]), base)
    pid = project["id"]
    namespace = namespace_of(store, project, base)
    host = base.split("://", 1)[-1]
    web = f"{base}/{project['path_with_namespace']}"
    entity.update(
        id=pid, description=project.get("description"), name=project["name"],
        name_with_namespace=f"{namespace['name']} / {project['name']}", path=project["path"],
        path_with_namespace=project["path_with_namespace"], created_at=project["created_at"],
        default_branch=project.get("default_branch", "main"),
        ssh_url_to_repo=f"ssh://git@{host}/{project['path_with_namespace']}.git",
        http_url_to_repo=f"{web}.git", web_url=web, namespace=namespace,
        visibility=project.get("visibility", "private"), last_activity_at=project["created_at"],
        updated_at=project["created_at"], runners_token=_fake_runners_token("project", pid),
    )
    entity["_links"] = {k: _relink(v, pid, base) for k, v in entity["_links"].items()}
    if "permissions" in entity and permissions is not None:
        entity["permissions"] = permissions
    if admin:  # exposed to those who may change repository storage: admins (recorded on 18.11)
        entity["repository_storage"] = "default"
    return entity


def _relink(url: str, pid: int, base: str) -> str:
    rest = url.split("/api/v4/projects/", 1)[-1].split("/", 1)
    tail = "/" + rest[1] if len(rest) > 1 else ""
    return f"{base}/api/v4/projects/{pid}{tail}"


def group_entity(store: GitLabStore, group: dict[str, Any], base: str, *, admin: bool = False) -> dict[str, Any]:
    shapes = shapes_for(store.version)
    entity = _fill(copy.deepcopy(shapes["group_sub" if group.get("parent_id") else "group_root"]), base)
    chain = list(reversed(store.group_chain(group["id"])))
    entity.update(
        id=group["id"], web_url=f"{base}/groups/{group['full_path']}", name=group["name"], path=group["path"],
        description=group.get("description", ""), visibility=group.get("visibility", "private"),
        full_name=" / ".join(g["name"] for g in chain), full_path=group["full_path"],
        created_at=group["created_at"], parent_id=group.get("parent_id"),
        runners_token=_fake_runners_token("group", group["id"]),
    )
    entity["projects"] = [project_entity(store, p, base, in_group=True, admin=admin)
                          for p in store.tables["projects"].values() if p.get("namespace_id") == group["id"]]
    entity["shared_projects"] = []
    return entity


def metadata(store: GitLabStore, base: str) -> dict[str, Any]:
    entity = _fill(copy.deepcopy(shapes_for(store.version)["metadata"]), base)
    entity["version"] = f"{store.version}-ee"
    if isinstance(entity.get("kas"), dict):
        entity["kas"]["version"] = store.version
    return entity


# --- tokens --------------------------------------------------------------------------------------


def token_active(store: GitLabStore, token: dict[str, Any]) -> bool:
    """Active = not revoked and not expired; a token expiring today is already inactive (recorded)."""
    if token.get("revoked"):
        return False
    expires = token.get("expires_at")
    return expires is None or expires > store.today().isoformat()


def token_entity(store: GitLabStore, token: dict[str, Any], *, with_token: bool = False,
                 with_ips: bool = False, resource: bool = False) -> dict[str, Any]:
    """PersonalAccessToken[WithLastUsedIps|WithToken]; `resource` for ResourceAccessToken (the
    /projects|groups/:id/access_tokens answers; a bot token read through /personal_access_tokens
    has the personal shape, as recorded)."""
    entity: dict[str, Any] = {
        "id": token["id"], "name": token["name"], "revoked": bool(token.get("revoked")),
        "created_at": token["created_at"], "description": token.get("description"),
        "scopes": list(token["scopes"]), "user_id": token["user_id"], "last_used_at": token.get("last_used_at"),
        "active": token_active(store, token),
    }
    if store.version_at_least(18):
        entity["granular"] = False
    entity["expires_at"] = token.get("expires_at")
    if resource and token["kind"] in ("project", "group"):
        entity.update(access_level=token.get("access_level", 40), resource_type=token["kind"],
                      resource_id=token["resource_id"])
    if with_ips and store.version_at_least(18):
        entity["last_used_ips"] = list(token.get("last_used_ips") or [])
    if with_token:
        entity["token"] = token["value"]
    return entity
