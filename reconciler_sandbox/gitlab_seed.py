"""Seeding the GitLab sandbox: a few lines of YAML (or a dict) describe a live world.

The format is documented in docs/sandbox-gitlab.md and its JSON Schema in
docs/sandbox-gitlab-seed.schema.json. Timestamps may be absolute ISO strings or relative to the
sandbox clock (`now`, `now-300d`, `now+10d`, `now-12h`; see `core.parse_when`). Values of
credentials may be given (so a test can hold the tool's own token); otherwise they are random
with GitLab's prefixes. Ids are sequential unless given.
"""

from __future__ import annotations

import json
import secrets as _secrets
from pathlib import Path
from typing import Any

import yaml

from .core import parse_when
from .gitlab_schedules import expand_ref, schedule_errors
from .gitlab_store import GitLabStore, iso

HOOK_EVENTS = (
    "push_events", "issues_events", "confidential_issues_events", "merge_requests_events", "tag_push_events",
    "note_events", "confidential_note_events", "job_events", "pipeline_events", "wiki_page_events",
    "deployment_events", "feature_flag_events", "releases_events", "milestone_events", "emoji_events",
    "resource_access_token_events", "resource_deploy_token_events", "vulnerability_events",
    "repository_update_events",
)
GROUP_HOOK_EVENTS = ("subgroup_events", "member_events", "project_events")


class SeedError(ValueError):
    """A seed that does not describe a valid world; the message names the entry and key."""


def load_seed(source: dict | str | Path) -> dict[str, Any]:
    """A seed from a dict, a path to a YAML/JSON file, or YAML text."""
    if isinstance(source, dict):
        return source
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and Path(source).is_file()):
        text = Path(source).read_text()
        data = json.loads(text) if str(source).endswith(".json") else yaml.safe_load(text)
    else:
        data = yaml.safe_load(source)
    if not isinstance(data, dict):
        raise SeedError("a GitLab seed must be a mapping")
    return data


def _when(store: GitLabStore, value: Any, where: str) -> str | None:
    if value is None:
        return None
    try:
        return iso(parse_when(value, store.clock))
    except ValueError as exc:
        raise SeedError(f"{where}: {exc}") from None


def _day(store: GitLabStore, value: Any, where: str) -> str | None:
    if value is None:
        return None
    try:
        return parse_when(value, store.clock).date().isoformat()
    except ValueError as exc:
        raise SeedError(f"{where}: {exc}") from None


def _user_ref(store: GitLabStore, ref: Any, where: str) -> dict[str, Any]:
    user = store.users().get(int(ref)) if isinstance(ref, int) else store.user_by_username(str(ref))
    if user is None:
        raise SeedError(f"{where}: no seeded user {ref!r}")
    return user


def add_user(store: GitLabStore, username: str, *, name: str | None = None, admin: bool = False, bot: bool = False,
             user_id: int | None = None, email: str | None = None, created_at: str | None = None,
             state: str = "active", bot_resource: dict[str, Any] | None = None) -> dict[str, Any]:
    if store.user_by_username(username):
        raise SeedError(f"users: {username!r} is seeded twice")
    return store.insert("users", {
        "username": username, "name": name or username, "admin": bool(admin), "bot": bool(bot),
        "email": email or f"{username}@example.com", "state": state,
        "created_at": created_at or iso(store.now()), "bot_resource": bot_resource,
    }, user_id)


def add_token(store: GitLabStore, *, kind: str, user_id: int, name: str, scopes: list[str],
              token_id: int | None = None, value: str | None = None, description: str | None = None,
              created_at: str | None = None, expires_at: str | None = None, last_used_at: str | None = None,
              revoked: bool = False, previous_id: int | None = None, access_level: int | None = None,
              resource_id: int | None = None) -> dict[str, Any]:
    value = value or store.mint(kind)
    store.remember(value)
    record = {
        "kind": kind, "user_id": user_id, "name": name, "description": description, "scopes": list(scopes),
        "created_at": created_at or iso(store.now()), "expires_at": expires_at, "last_used_at": last_used_at,
        "last_used_ips": ["127.0.0.1"] if last_used_at else [], "revoked": bool(revoked),
        "previous_id": previous_id, "value": value,
    }
    if kind in ("project", "group"):
        record.update(access_level=int(access_level or 40), resource_id=resource_id)
    return store.insert("tokens", record, token_id)


def add_bot(store: GitLabStore, kind: str, resource: dict[str, Any], access_level: int, *,
            username: str | None = None, user_id: int | None = None) -> dict[str, Any]:
    """The bot user GitLab creates for a project or group access token, made a member at its level."""
    username = username or f"{kind}_{resource['id']}_bot_{_secrets.token_hex(16)}"
    bot = add_user(store, username, name=f"{resource['name']} bot", bot=True, user_id=user_id,
                   email=f"{username}@noreply.example.com", bot_resource={"type": kind, "id": resource["id"]})
    resource.setdefault("members", {})[str(bot["id"])] = int(access_level)
    return bot


def add_service_account(store: GitLabStore, kind: str, resource_id: int | None, *, username: str | None = None,
                        name: str | None = None, email: str | None = None, user_id: int | None = None,
                        host: str = "gitlab.example.com") -> dict[str, Any]:
    """A service-account user as GitLab makes one (recorded): a bot named
    `service_account_[group_<id>_|project_<id>_]<hex>` unless a username is given, "Service account
    user" unless named, with the email `<username>@noreply.<host>`."""
    scope = "" if kind == "instance" else f"{kind}_{resource_id}_"
    username = username or f"service_account_{scope}{_secrets.token_hex(16)}"
    user = add_user(store, username, name=name or "Service account user", bot=True, user_id=user_id,
                    email=email or f"{username}@noreply.{host}")
    user["service_account"] = {"type": kind, "id": resource_id}
    return user


def ensure_group(store: GitLabStore, full_path: str, *, group_id: int | None = None, name: str | None = None,
                 description: str = "", created_at: str | None = None, visibility: str = "private",
                 members: dict[str, int] | None = None) -> dict[str, Any]:
    existing = store.group_by_path(full_path)
    if existing is not None:
        return existing
    parent_path, _, path = full_path.rpartition("/")
    parent = ensure_group(store, parent_path) if parent_path else None
    group = store.insert("groups", {
        "name": name or path, "path": path, "full_path": full_path,
        "parent_id": parent["id"] if parent else None, "description": description,
        "created_at": created_at or iso(store.now()), "visibility": visibility,
        "members": {}, "restricted": members is not None,
    }, group_id)
    for username, level in (members or {}).items():
        group["members"][str(_user_ref(store, username, f"groups {full_path} members")["id"])] = int(level)
    return group


def _scope(store: GitLabStore, entry: dict[str, Any], where: str) -> tuple[str, int | None]:
    if entry.get("project") is not None:
        project = _project_ref(store, entry["project"], where)
        return "project", project["id"]
    if entry.get("group") is not None:
        group = store.group_by_path(str(entry["group"])) if not isinstance(entry["group"], int) \
            else store.tables["groups"].get(entry["group"])
        if group is None:
            raise SeedError(f"{where}: no seeded group {entry['group']!r}")
        return "group", group["id"]
    if entry.get("instance"):
        return "instance", None
    raise SeedError(f"{where}: needs `project`, `group` or `instance: true`")


def _project_ref(store: GitLabStore, ref: Any, where: str) -> dict[str, Any]:
    project = store.tables["projects"].get(ref) if isinstance(ref, int) else store.project_by_path(str(ref))
    if project is None:
        raise SeedError(f"{where}: no seeded project {ref!r}")
    return project


def apply_seed(store: GitLabStore, seed: dict[str, Any]) -> None:
    """Add everything `seed` describes to `store` (in dependency order)."""
    if "version" in seed:
        store.settings["version"] = str(seed["version"])
    store.settings.update(seed.get("settings") or {})

    for i, entry in enumerate(seed.get("users") or []):
        where = f"users[{i}]"
        if "username" not in entry:
            raise SeedError(f"{where}: `username` is required")
        user = add_user(store, entry["username"], name=entry.get("name"), admin=entry.get("admin", False),
                        bot=entry.get("bot", False), user_id=entry.get("id"), email=entry.get("email"),
                        created_at=_when(store, entry.get("created_at"), f"{where}.created_at"),
                        state=entry.get("state", "active"))
        for j, tok in enumerate(entry.get("tokens") or []):
            _seed_token(store, tok, f"{where}.tokens[{j}]", kind="personal", user_id=user["id"])

    for i, entry in enumerate(sorted(seed.get("groups") or [], key=lambda g: str(g.get("full_path", "")).count("/"))):
        if "full_path" not in entry:
            raise SeedError(f"groups[{i}]: `full_path` is required")
        full_path = entry["full_path"] if not entry.get("parent") else f"{entry['parent']}/{entry['full_path']}"
        ensure_group(store, full_path, group_id=entry.get("id"), name=entry.get("name"),
                     description=entry.get("description", ""), visibility=entry.get("visibility", "private"),
                     created_at=_when(store, entry.get("created_at"), f"groups[{i}].created_at"),
                     members=entry.get("members"))
    _seed_gitlab_com(store, seed)

    for i, entry in enumerate(seed.get("projects") or []):
        where = f"projects[{i}]"
        full = entry.get("path_with_namespace")
        if not full or "/" not in full:
            raise SeedError(f"{where}: `path_with_namespace` (namespace/path) is required")
        namespace, _, path = full.rpartition("/")
        owner = store.user_by_username(namespace) if "/" not in namespace else None
        group = None if owner else ensure_group(store, namespace)
        project = store.insert("projects", {
            "name": entry.get("name", path), "path": path, "path_with_namespace": full,
            "namespace_id": group["id"] if group else None, "namespace_user_id": owner["id"] if owner else None,
            "description": entry.get("description"), "default_branch": entry.get("default_branch", "main"),
            "visibility": entry.get("visibility", "private"),
            "created_at": _when(store, entry.get("created_at"), f"{where}.created_at") or iso(store.now()),
            "members": {}, "restricted": entry.get("members") is not None,
            "ci_pipeline_variables_minimum_override_role": entry.get("ci_pipeline_variables_minimum_override_role"),
        }, entry.get("id"))
        for username, level in (entry.get("members") or {}).items():
            project["members"][str(_user_ref(store, username, f"{where}.members")["id"])] = int(level)

    for i, entry in enumerate(seed.get("access_tokens") or []):
        where = f"access_tokens[{i}]"
        kind, resource_id = _scope(store, entry, where)
        if kind == "instance":
            raise SeedError(f"{where}: an access token belongs to a `project` or a `group`")
        resource = store.tables["projects" if kind == "project" else "groups"][resource_id]
        level = int(entry.get("access_level", 40))
        bot_spec = entry.get("bot") or {}
        bot = add_bot(store, kind, resource, level, username=bot_spec.get("username"), user_id=bot_spec.get("id"))
        _seed_token(store, entry, where, kind=kind, user_id=bot["id"], resource_id=resource_id, access_level=level)

    for i, entry in enumerate(seed.get("triggers") or []):
        where = f"triggers[{i}]"
        project = _project_ref(store, entry.get("project"), where)
        owner = _user_ref(store, entry["owner"], f"{where}.owner") if entry.get("owner") is not None else None
        value = entry.get("value") or store.mint("trigger")
        store.remember(value)
        created = _when(store, entry.get("created_at"), f"{where}.created_at") or iso(store.now())
        store.insert("triggers", {
            "project_id": project["id"], "owner_id": owner["id"] if owner else None,
            "description": entry.get("description", ""), "value": value, "created_at": created,
            "updated_at": created, "last_used": _when(store, entry.get("last_used"), f"{where}.last_used"),
            "expires_at": _when(store, entry.get("expires_at"), f"{where}.expires_at"),
        }, entry.get("id"))

    for i, entry in enumerate(seed.get("variables") or []):
        where = f"variables[{i}]"
        kind, scope_id = _scope(store, entry, where)
        if "key" not in entry:
            raise SeedError(f"{where}: `key` is required")
        value = "" if entry.get("value") is None else str(entry["value"])
        store.remember_if_credential(value, secret=bool(entry.get("masked") or entry.get("hidden")))
        record = {
            "scope_kind": kind, "scope_id": scope_id, "key": entry["key"], "value": value,
            "variable_type": entry.get("variable_type", "env_var"), "protected": bool(entry.get("protected", False)),
            "masked": bool(entry.get("masked", False) or entry.get("hidden", False)),
            "hidden": bool(entry.get("hidden", False)) if kind != "instance" else False,
            "raw": bool(entry.get("raw", False)), "description": entry.get("description"),
            "environment_scope": entry.get("environment_scope", "*") if kind != "instance" else "*",
        }
        store.insert("variables", record, entry.get("id"))

    for i, entry in enumerate(seed.get("hooks") or []):
        where = f"hooks[{i}]"
        kind, scope_id = _scope(store, entry, where)
        if kind == "instance":
            raise SeedError(f"{where}: a hook belongs to a `project` or a `group`")
        if "url" not in entry:
            raise SeedError(f"{where}: `url` is required")
        new_hook(store, kind, scope_id, entry, seeded=True, created_at=_when(store, entry.get("created_at"), f"{where}.created_at"),
                 hook_id=entry.get("id"))

    for i, entry in enumerate(seed.get("issues") or []):
        where = f"issues[{i}]"
        project = _project_ref(store, entry.get("project"), where)
        author = _user_ref(store, entry.get("author", _first_human(store)), f"{where}.author")
        created = _when(store, entry.get("created_at"), f"{where}.created_at") or iso(store.now())
        state = entry.get("state", "opened")
        store.insert("issues", {
            "project_id": project["id"], "iid": entry.get("iid") or _next_iid(store, "issues", project["id"]),
            "title": entry.get("title", "Issue"), "description": entry.get("description", ""), "state": state,
            "labels": list(entry.get("labels") or []), "author_id": author["id"], "created_at": created,
            "updated_at": created, "closed_at": created if state == "closed" else None,
        }, entry.get("id"))

    for i, entry in enumerate(seed.get("merge_requests") or []):
        where = f"merge_requests[{i}]"
        project = _project_ref(store, entry.get("project"), where)
        author = _user_ref(store, entry.get("author", _first_human(store)), f"{where}.author")
        created = _when(store, entry.get("created_at"), f"{where}.created_at") or iso(store.now())
        store.insert("merge_requests", {
            "project_id": project["id"], "iid": entry.get("iid") or _next_iid(store, "merge_requests", project["id"]),
            "title": entry.get("title", "Merge request"), "description": entry.get("description", ""),
            "state": entry.get("state", "opened"), "source_branch": entry.get("source_branch", "feature"),
            "target_branch": entry.get("target_branch", project.get("default_branch", "main")),
            "sha": entry.get("sha") or _secrets.token_hex(20), "author_id": author["id"],
            "created_at": created, "updated_at": created, "labels": list(entry.get("labels") or []),
        }, entry.get("id"))

    for i, entry in enumerate(seed.get("job_tokens") or []):
        where = f"job_tokens[{i}]"
        project = _project_ref(store, entry.get("project"), where)
        user = _user_ref(store, entry.get("user", _first_human(store)), f"{where}.user")
        value = entry.get("value") or store.mint("job")
        store.remember(value)
        store.insert("job_tokens", {"project_id": project["id"], "user_id": user["id"], "value": value,
                                    "active": bool(entry.get("active", True))}, entry.get("id"))

    _seed_schedules(store, seed)
    _seed_service_accounts(store, seed)


def _seed_gitlab_com(store: GitLabStore, seed: dict[str, Any]) -> None:
    """GitLab.com's facts: `groups[].plan` (the subscription) and `users[].enterprise_group` (the
    top-level group whose enterprise user this is)."""
    for entry in seed.get("groups") or []:
        if entry.get("plan") is not None:
            full_path = entry["full_path"] if not entry.get("parent") else f"{entry['parent']}/{entry['full_path']}"
            store.group_by_path(full_path)["plan"] = str(entry["plan"]).lower()
    for i, entry in enumerate(seed.get("users") or []):
        if entry.get("enterprise_group") is None:
            continue
        where = f"users[{i}].enterprise_group"
        group = store.group_by_path(str(entry["enterprise_group"]))
        if group is None:
            raise SeedError(f"{where}: no seeded group {entry['enterprise_group']!r}")
        if group.get("parent_id") is not None:
            raise SeedError(f"{where}: {entry['enterprise_group']!r} is not a top-level group")
        store.user_by_username(entry["username"])["enterprise_group_id"] = group["id"]


def _seed_service_accounts(store: GitLabStore, seed: dict[str, Any]) -> None:
    """`service_accounts`: accounts of a top-level group, a project or the instance, with tokens."""
    for i, entry in enumerate(seed.get("service_accounts") or []):
        where = f"service_accounts[{i}]"
        kind, resource_id = _scope(store, entry, where)
        if kind == "group" and store.tables["groups"][resource_id].get("parent_id") is not None:
            raise SeedError(f"{where}.group: service accounts belong to a top-level group")
        user = add_service_account(store, kind, resource_id, username=entry.get("username"),
                                   name=entry.get("name"), user_id=entry.get("id"))
        for j, tok in enumerate(entry.get("tokens") or []):
            _seed_token(store, tok, f"{where}.tokens[{j}]", kind="personal", user_id=user["id"])
        _seed_memberships(store, user, entry.get("memberships") or {}, f"{where}.memberships")


def _seed_memberships(store: GitLabStore, user: dict[str, Any], levels: dict[str, int], where: str) -> None:
    """Make `user` a member of each project or group (by full path) at the given level."""
    for path, level in levels.items():
        target = store.project_by_path(str(path)) or store.group_by_path(str(path))
        if target is None:
            raise SeedError(f"{where}: no seeded project or group {path!r}")
        target.setdefault("members", {})[str(user["id"])] = int(level)


def _seed_schedules(store: GitLabStore, seed: dict[str, Any]) -> None:
    """Pipeline schedules with their variables (values in plain, as GitLab stores them)."""
    for i, entry in enumerate(seed.get("pipeline_schedules") or []):
        where = f"pipeline_schedules[{i}]"
        project = _project_ref(store, entry.get("project"), where)
        owner = _user_ref(store, entry.get("owner", _first_human(store)), f"{where}.owner")
        created = _when(store, entry.get("created_at"), f"{where}.created_at") or iso(store.now())
        schedule = {
            "project_id": project["id"], "owner_id": owner["id"], "description": entry.get("description", ""),
            "ref": expand_ref(project, entry.get("ref") or project.get("default_branch") or "main"),
            "cron": entry.get("cron", "0 1 * * *"), "cron_timezone": entry.get("cron_timezone", "UTC"),
            "active": bool(entry.get("active", True)), "created_at": created, "updated_at": created, "variables": [],
        }
        errors = schedule_errors(schedule)
        if errors:
            raise SeedError(f"{where}: {', '.join(f'{key}{text[0]}' for key, text in errors.items())}")
        schedule["variables"] = _schedule_variables(store, entry.get("variables") or [], where)
        store.insert("pipeline_schedules", schedule, entry.get("id"))


def _schedule_variables(store: GitLabStore, entries: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = []
    for j, var in enumerate(entries):
        if "key" not in var or any(v["key"] == var["key"] for v in variables):
            raise SeedError(f"{where}.variables[{j}]: `key` is required and unique in its schedule")
        value = "" if var.get("value") is None else str(var["value"])
        store.remember_if_credential(value, secret=True)  # the values are the credentials kept there
        variables.append({"key": var["key"], "value": value, "raw": bool(var.get("raw", False)),
                          "variable_type": var.get("variable_type", "env_var")})
    return variables


def _first_human(store: GitLabStore) -> int:
    for user in store.users().values():
        if not user.get("bot"):
            return user["id"]
    raise SeedError("an author is needed: seed at least one user")


def _next_iid(store: GitLabStore, table: str, project_id: int) -> int:
    return 1 + max((r["iid"] for r in store.tables[table].values() if r["project_id"] == project_id), default=0)


def _seed_token(store: GitLabStore, tok: dict[str, Any], where: str, *, kind: str, user_id: int,
                resource_id: int | None = None, access_level: int | None = None) -> dict[str, Any]:
    for key in ("name", "scopes"):
        if key not in tok:
            raise SeedError(f"{where}: `{key}` is required")
    return add_token(
        store, kind=kind, user_id=user_id, name=tok["name"], scopes=list(tok["scopes"]), token_id=tok.get("id"),
        value=tok.get("value"), description=tok.get("description"),
        created_at=_when(store, tok.get("created_at"), f"{where}.created_at"),
        expires_at=_day(store, tok.get("expires_at"), f"{where}.expires_at"),
        last_used_at=_when(store, tok.get("last_used_at"), f"{where}.last_used_at"),
        revoked=tok.get("revoked", False), previous_id=tok.get("previous_id"),
        access_level=access_level, resource_id=resource_id,
    )


def new_hook(store: GitLabStore, kind: str, scope_id: int, params: dict[str, Any], *,
             created_at: str | None = None, hook_id: int | None = None, seeded: bool = False) -> dict[str, Any]:
    """A webhook record from create parameters (shared by the seed and POST .../hooks)."""
    events = HOOK_EVENTS + (GROUP_HOOK_EVENTS if kind == "group" else ())
    record: dict[str, Any] = {
        "scope_kind": kind, "scope_id": scope_id, "url": params["url"], "name": params.get("name") or "",
        "description": params.get("description") or "", "created_at": created_at or iso(store.now()),
        "enable_ssl_verification": _bool(params.get("enable_ssl_verification", True)),
        "push_events_branch_filter": params.get("push_events_branch_filter") or "",
        "branch_filter_strategy": params.get("branch_filter_strategy") or "wildcard",
        "custom_webhook_template": params.get("custom_webhook_template") or "",
        "alert_status": "executable", "disabled_until": None,
        "token": params.get("token") or None,
        "url_variables": _pairs(params.get("url_variables")),
        "custom_headers": _pairs(params.get("custom_headers")),
    }
    for event in events:
        record[event] = _bool(params.get(event, event == "push_events"))
    store.remember(record["token"])
    for value in (*record["url_variables"].values(), *record["custom_headers"].values()):
        store.remember_if_credential(value, secret=seeded)
    return store.insert("hooks", record, hook_id)


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    return bool(value)


def _pairs(value: Any) -> dict[str, str]:
    """url_variables / custom_headers given as a mapping or as GitLab's [{key, value}] list."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {str(item["key"]): str(item.get("value", "")) for item in value}
