"""Personal, project and group access tokens: list, get, self, create, rotate, revoke.

Sources: GL `lib/api/personal_access_tokens.rb`, `.../self_rotation.rb`, `resource_access_tokens.rb`,
`app/services/personal_access_tokens/rotate_service.rb` (via ../shared/reference/gitlab-api.md §1-2)
and the recordings. Rotation revokes the old token at once and answers 200 with the new one
(new id, `token` once, `previous_id` chaining the family); create answers 201; revoke 204.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from . import gitlab_entities as entities
from .core import HTTPError, Request, Response
from .gitlab_seed import add_bot, add_token
from .gitlab_store import parse_date, parse_iso

if TYPE_CHECKING:
    from .gitlab import Caller

# Gitlab::Auth scopes a PAT may have; resource tokens the same minus admin ones.
PAT_SCOPES = {
    "api", "read_api", "read_user", "create_runner", "manage_runner", "k8s_proxy", "read_repository",
    "write_repository", "read_registry", "write_registry", "read_virtual_registry", "write_virtual_registry",
    "ai_features", "sudo", "admin_mode", "read_service_ping", "self_rotate",
}
RESOURCE_SCOPES = PAT_SCOPES - {"sudo", "admin_mode", "read_user", "read_service_ping"}
ACCESS_LEVELS = {10, 15, 20, 30, 40, 50}
NOT_FOUND = {"message": "404 Not found"}


class TokenRoutes:
    def _register_tokens(self) -> None:
        pat = "/personal_access_tokens"
        self.api("GET", pat, self._pat_list)
        self.api("GET", pat + "/self", self._pat_self, any_scope=True)
        self.api("POST", pat + "/self/rotate", self._pat_self_rotate, self_rotate=True)
        self.api("DELETE", pat + "/self", self._pat_self_revoke, any_scope=True)
        self.api("GET", pat + "/{token_id}", self._pat_get)
        self.api("POST", pat + "/{token_id}/rotate", self._pat_rotate)
        self.api("DELETE", pat + "/{token_id}", self._pat_revoke)
        self.api("POST", "/users/{user_id}/personal_access_tokens", self._pat_create_for_user)
        self.api("POST", "/user/personal_access_tokens", self._pat_create_self)
        for kind in ("projects", "groups"):
            base = f"/{kind}/{{id}}/access_tokens"
            self.api("GET", base, self._rat_list)
            self.api("POST", base, self._rat_create)
            self.api("POST", base + "/self/rotate", self._rat_self_rotate, self_rotate=True)
            self.api("GET", base + "/{token_id}", self._rat_get)
            self.api("POST", base + "/{token_id}/rotate", self._rat_rotate)
            self.api("DELETE", base + "/{token_id}", self._rat_revoke)

    # shared logic ----------------------------------------------------------------------------------

    def _expiry(self, raw: Any, *, default_days: int | None) -> str | None:
        """The expiry date: given, or the instance default; refused beyond the maximum lifetime."""
        settings = self.store.settings
        today = self.store.today()
        expires: date | None = parse_date(raw)
        if expires is None and settings.get("require_token_expiry") and default_days is not None:
            expires = today + timedelta(days=default_days)
        if expires is not None:
            limit = today + timedelta(days=int(settings.get("max_token_lifetime_days", 365)))
            if expires > limit:
                # [UNCERTAIN exact wording] GL validates `expires_at` against the maximum lifetime.
                raise HTTPError(400, {"message": {"expires_at": [f"must be before {limit.isoformat()}"]}})
            if expires < today:
                raise HTTPError(400, {"message": {"expires_at": ["must be in the future"]}})
        return expires.isoformat() if expires else None

    def rotate_token(self, token: dict[str, Any], raw_expires: Any) -> dict[str, Any]:
        """GL RotateService: refuse a revoked token; revoke the old one and mint its successor."""
        if token.get("revoked"):
            raise HTTPError(400, {"message": "400 Bad request - Token already revoked"})
        expires = self._expiry(raw_expires, default_days=int(self.store.settings.get("rotate_default_days", 7)))
        token["revoked"] = True
        return add_token(
            self.store, kind=token["kind"], user_id=token["user_id"], name=token["name"], scopes=token["scopes"],
            description=token.get("description"), expires_at=expires, previous_id=token["id"],
            access_level=token.get("access_level"), resource_id=token.get("resource_id"),
        )

    def _filter_tokens(self, request: Request, tokens: list[dict[str, Any]]) -> list[dict[str, Any]]:
        store = self.store
        arg = request.arg
        if arg("revoked") is not None:
            want = arg("revoked").lower() == "true"
            tokens = [t for t in tokens if bool(t.get("revoked")) == want]
        if arg("state") in ("active", "inactive"):
            want = arg("state") == "active"
            tokens = [t for t in tokens if entities.token_active(store, t) == want]
        for name, key, before in (("created_before", "created_at", True), ("created_after", "created_at", False),
                                  ("last_used_before", "last_used_at", True),
                                  ("last_used_after", "last_used_at", False)):
            if arg(name):
                bound = parse_iso(arg(name) if "T" in arg(name) else arg(name) + "T00:00:00Z")
                tokens = [t for t in tokens if t.get(key) and
                          ((parse_iso(t[key]) < bound) if before else (parse_iso(t[key]) > bound))]
        for name, before in (("expires_before", True), ("expires_after", False)):
            if arg(name):
                bound = arg(name)[:10]
                tokens = [t for t in tokens if t.get("expires_at") and
                          ((t["expires_at"] < bound) if before else (t["expires_at"] > bound))]
        if arg("search"):
            tokens = [t for t in tokens if arg("search").lower() in t["name"].lower()]
        sort = arg("sort") or "id_asc"
        keys = {"created": "created_at", "expires": "expires_at", "last_used": "last_used_at", "name": "name",
                "id": "id"}
        field, _, direction = sort.rpartition("_")
        if field in keys:
            tokens = sorted(tokens, key=lambda t: (t.get(keys[field]) is None, t.get(keys[field]) or ""),
                            reverse=direction == "desc")
        return tokens

    def _check_scopes(self, scopes: Any, allowed: set[str]) -> list[str]:
        if isinstance(scopes, str):
            scopes = [s for s in scopes.split(",") if s]
        if not scopes or not isinstance(scopes, list) or any(s not in allowed for s in scopes):
            raise HTTPError(400, {"error": "scopes does not have a valid value"})
        return list(scopes)

    # personal access tokens ------------------------------------------------------------------------

    def _pat(self, request: Request, caller: Caller) -> dict[str, Any]:
        """The PAT by id: 404 for an admin when unknown, 401 for a non-admin unless it is theirs."""
        raw = request.params["token_id"]
        token = self.store.tables["tokens"].get(int(raw)) if raw.isdigit() else None
        if caller.admin:
            if token is None:
                raise HTTPError(404, NOT_FOUND)
            return token
        if token is None or token["user_id"] != caller.id:
            raise HTTPError(401, {"message": "401 Unauthorized"})
        return token

    def _pat_list(self, request: Request, caller: Caller) -> Response:
        tokens = list(self.store.tables["tokens"].values())
        user_id = request.arg("user_id")
        if caller.admin:
            if user_id is not None:
                if not user_id.isdigit() or int(user_id) not in self.store.users():
                    raise HTTPError(404, {"message": "404 User Not Found"})
                tokens = [t for t in tokens if t["user_id"] == int(user_id)]
        else:
            if user_id is not None and user_id != str(caller.id):
                raise HTTPError(401, {"message": "401 Unauthorized"})
            tokens = [t for t in tokens if t["user_id"] == caller.id]
        tokens = self._filter_tokens(request, tokens)
        return self.paginate(request, [entities.token_entity(self.store, t, with_ips=True) for t in tokens])

    def _pat_self(self, request: Request, caller: Caller) -> Response:
        if caller.token is None:
            raise HTTPError(400, {"message": "400 Bad request - This endpoint requires token type to be a personal access token"})
        return Response(200, entities.token_entity(self.store, caller.token, with_ips=True))

    def _pat_get(self, request: Request, caller: Caller) -> Response:
        return Response(200, entities.token_entity(self.store, self._pat(request, caller), with_ips=True))

    def _pat_rotate(self, request: Request, caller: Caller) -> Response:
        token = self._pat(request, caller)
        new = self.rotate_token(token, request.merged_params().get("expires_at"))
        return Response(200, entities.token_entity(self.store, new, with_token=True))

    def _pat_self_rotate(self, request: Request, caller: Caller) -> Response:
        if caller.token is None:
            raise HTTPError(405, {"message": "405 Method Not Allowed"})
        new = self.rotate_token(caller.token, request.merged_params().get("expires_at"))
        return Response(200, entities.token_entity(self.store, new, with_token=True))

    def _pat_revoke(self, request: Request, caller: Caller) -> Response:
        self._pat(request, caller)["revoked"] = True
        return Response(204)

    def _pat_self_revoke(self, request: Request, caller: Caller) -> Response:
        if caller.token is None:
            raise HTTPError(405, {"message": "405 Method Not Allowed"})
        caller.token["revoked"] = True
        return Response(204)

    def _pat_params(self, request: Request, allowed: set[str]) -> tuple[str, list[str], dict[str, Any]]:
        params = request.merged_params()
        absent = [k for k in ("name", "scopes") if not params.get(k)]
        if absent:
            raise HTTPError(400, {"error": f"{', '.join(absent)} {'is' if len(absent) == 1 else 'are'} missing"})
        return str(params["name"]), self._check_scopes(params["scopes"], allowed), params

    def _pat_create_for_user(self, request: Request, caller: Caller) -> Response:
        """Admin only (Self-Managed/Dedicated); others get 403 as recorded."""
        if not caller.admin:
            raise HTTPError(403, {"message": "403 Forbidden"})
        raw = request.params["user_id"]
        user = self.store.users().get(int(raw)) if raw.isdigit() else None
        if user is None:
            raise HTTPError(404, {"message": "404 User Not Found"})
        name, scopes, params = self._pat_params(request, PAT_SCOPES)
        expires = self._expiry(params.get("expires_at"),
                               default_days=int(self.store.settings.get("max_token_lifetime_days", 365)))
        token = add_token(self.store, kind="personal", user_id=user["id"], name=name, scopes=scopes,
                          description=params.get("description"), expires_at=expires)
        return Response(201, entities.token_entity(self.store, token, with_token=True))

    def _pat_create_self(self, request: Request, caller: Caller) -> Response:
        """POST /user/personal_access_tokens: only `k8s_proxy` and `self_rotate` scopes (GL doc user_tokens.md)."""
        name, scopes, params = self._pat_params(request, {"k8s_proxy", "self_rotate"})
        expires = self._expiry(params.get("expires_at"),
                               default_days=int(self.store.settings.get("max_token_lifetime_days", 365)))
        token = add_token(self.store, kind="personal", user_id=caller.id, name=name, scopes=scopes,
                          description=params.get("description"), expires_at=expires)
        return Response(201, entities.token_entity(self.store, token, with_token=True))

    # project and group access tokens ---------------------------------------------------------------

    def _resource(self, request: Request, caller: Caller) -> tuple[str, dict[str, Any], int]:
        """(kind, record, caller's level): 404 for an unknown project/group."""
        if request.raw_path.startswith("/api/v4/projects/"):
            project = self.find_project(request.params["id"], caller)
            return "project", project, self.project_level(caller.user, project)
        group = self.find_group(request.params["id"], caller)
        return "group", group, self.group_level(caller.user, group)

    @staticmethod
    def _manage_level(kind: str) -> int:
        return 40 if kind == "project" else 50  # Maintainer for projects, Owner for groups

    def _rat(self, request: Request, caller: Caller, kind: str, resource: dict[str, Any]) -> dict[str, Any]:
        raw = request.params["token_id"]
        token = self.store.tables["tokens"].get(int(raw)) if raw.isdigit() else None
        if token is None or token["kind"] != kind or token.get("resource_id") != resource["id"]:
            raise HTTPError(404, {"message": f"404 {kind} Access Token Not Found"})
        return token

    def _rat_guard(self, request: Request, caller: Caller) -> tuple[str, dict[str, Any]]:
        kind, resource, level = self._resource(request, caller)
        if level < self._manage_level(kind):
            raise HTTPError(401, {"message": "401 Unauthorized"})
        return kind, resource

    def _rat_list(self, request: Request, caller: Caller) -> Response:
        kind, resource = self._rat_guard(request, caller)
        tokens = [t for t in self.store.tables["tokens"].values()
                  if t["kind"] == kind and t.get("resource_id") == resource["id"]]
        tokens = self._filter_tokens(request, tokens)
        return self.paginate(request, [entities.token_entity(self.store, t, with_ips=True, resource=True) for t in tokens])

    def _rat_get(self, request: Request, caller: Caller) -> Response:
        kind, resource = self._rat_guard(request, caller)
        token = self._rat(request, caller, kind, resource)
        return Response(200, entities.token_entity(self.store, token, with_ips=True, resource=True))

    def _rat_create(self, request: Request, caller: Caller) -> Response:
        kind, resource = self._rat_guard(request, caller)
        if caller.user.get("bot"):
            raise HTTPError(400, {"message": "400 Bad request - User does not have permission to create "
                                             f"{kind} access token"})
        name, scopes, params = self._pat_params(request, RESOURCE_SCOPES)
        level = params.get("access_level", 40)
        try:
            level = int(level)
        except (TypeError, ValueError):
            level = -1
        if level not in ACCESS_LEVELS:
            raise HTTPError(400, {"error": "access_level does not have a valid value"})
        own = self.project_level(caller.user, resource) if kind == "project" else self.group_level(caller.user, resource)
        if level > own:
            raise HTTPError(400, {"message": "400 Bad request - Access level of the token can't be greater "
                                             "the access level of the user who created the token"})
        expires = self._expiry(params.get("expires_at"),
                               default_days=int(self.store.settings.get("max_token_lifetime_days", 365)))
        bot = add_bot(self.store, kind, resource, level)
        token = add_token(self.store, kind=kind, user_id=bot["id"], name=name, scopes=scopes,
                          description=params.get("description"), expires_at=expires, access_level=level,
                          resource_id=resource["id"])
        return Response(201, entities.token_entity(self.store, token, with_token=True, resource=True))

    def _rat_rotate(self, request: Request, caller: Caller) -> Response:
        kind, resource = self._rat_guard(request, caller)
        try:
            token = self._rat(request, caller, kind, resource)
        except HTTPError:
            # GL resource_access_tokens.rotate: a missing token is 404 for an admin, 401 for others
            # (../shared/reference/gitlab-api.md section 2).
            if caller.admin:
                raise
            raise HTTPError(401, {"message": "401 Unauthorized"}) from None
        new = self.rotate_token(token, request.merged_params().get("expires_at"))
        return Response(200, entities.token_entity(self.store, new, with_token=True, resource=True))

    def _rat_self_rotate(self, request: Request, caller: Caller) -> Response:
        kind, resource, _ = self._resource(request, caller)
        token = caller.token
        if token is None or token["kind"] != kind or token.get("resource_id") != resource["id"]:
            raise HTTPError(405, {"message": "405 Method Not Allowed"})
        new = self.rotate_token(token, request.merged_params().get("expires_at"))
        return Response(200, entities.token_entity(self.store, new, with_token=True, resource=True))

    def _rat_revoke(self, request: Request, caller: Caller) -> Response:
        """Revoking a resource access token removes its bot user from the resource and blocks it
        (docs, project access tokens, "Project bot users": "After the project access token is
        revoked, the bot user is removed from the project and blocked";
        https://gitlab.com/gitlab-org/gitlab/-/merge_requests/43373). Until GitLab 17.9 the bot
        is then deleted; since, it is kept (https://gitlab.com/gitlab-org/gitlab/-/merge_requests/178587).
        [GUESS] kept here, blocked, as a 17.9+ instance. Rotation keeps the bot (not this path)."""
        kind, resource = self._rat_guard(request, caller)
        token = self._rat(request, caller, kind, resource)
        token["revoked"] = True
        bot = self.store.users().get(token["user_id"])
        if bot is not None and bot.get("bot_resource"):
            resource.get("members", {}).pop(str(bot["id"]), None)
            bot["state"] = "blocked"
        return Response(204)
