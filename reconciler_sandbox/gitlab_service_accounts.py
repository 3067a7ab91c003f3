"""Service accounts (group, project, instance) and their personal access tokens, and the group
credentials inventory (`/groups/:id/manage/...`) a GitLab.com top-level group Owner reads.

Sources (checked against GitLab's documentation):
- Group service accounts API, https://docs.gitlab.com/api/group_service_accounts/ (17.6 page:
  https://docs.gitlab.com/17.6/api/group_service_accounts): `GET/POST /groups/:id/service_accounts`
  on top-level groups only, `DELETE .../service_accounts/:user_id`, a token created with
  `POST .../:user_id/personal_access_tokens` and rotated with `.../:token_id/rotate`; an
  administrator, or an Owner of the group on GitLab.com (on self-managed only when the admin
  setting of gitlab-org/gitlab!163726 allows it). Listing and revoking a service account's
  tokens (`GET .../personal_access_tokens`, `DELETE .../personal_access_tokens/:token_id`) came in
  17.11 (https://docs.gitlab.com/cli/service-account/token/list/, gitlab-org/gitlab!184287).
- Instance service accounts, https://docs.gitlab.com/api/service_accounts/ (python-gitlab 8.6
  `ServiceAccountManager`): `GET/POST /service_accounts`, administrators only; their tokens are
  made with the admin route `POST /users/:id/personal_access_tokens` (recorded).
- Project service accounts: recorded (`POST /projects/:id/service_accounts`, its token route, and
  `DELETE /projects/:id/service_accounts/:user_id`), python-gitlab `ProjectServiceAccountManager`.
- Credentials inventory, https://docs.gitlab.com/user/group/credentials_inventory (Ultimate,
  GitLab.com, top-level group Owner): `GET /groups/:id/manage/personal_access_tokens` lists the
  enterprise users' tokens (gitlab-org/gitlab!194865) and, since gitlab-org/gitlab#560151, those of
  the group's service accounts (gitlab-org/gitlab#634390 describes the route as listing both);
  `GET /groups/:id/manage/resource_access_tokens` the group's and its projects' access tokens;
  `POST .../manage/personal_access_tokens/:id/rotate` (gitlab-org/gitlab#634390).
  [GUESS] Revocation as `DELETE /groups/:id/manage/personal_access_tokens/:id` and
  `DELETE /groups/:id/manage/resource_access_tokens/:id` (the route family; no doc page found).

Shapes: the account entity is the recorded create answer (`id, username, public_email, name,
email`); tokens are the personal-access-token entity the recordings show. A token minted here is
a real sandbox credential: it authenticates as the service account, and reuse detection (a
rotate with a revoked token revokes its family) applies as to every other token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import gitlab_entities as entities
from .core import HTTPError, Request, Response
from .gitlab_seed import add_service_account, add_token
from .gitlab_tokens import PAT_SCOPES

if TYPE_CHECKING:
    from .gitlab import Caller

FORBIDDEN = {"message": "403 Forbidden"}
OWNER, MAINTAINER = 50, 40
# Plans that carry the features (docs above): service accounts Premium and up, the inventory Ultimate.
SERVICE_ACCOUNT_PLANS = ("premium", "ultimate")
INVENTORY_PLANS = ("ultimate",)


def account_entity(user: dict[str, Any]) -> dict[str, Any]:
    """The ServiceAccount entity of the recorded create answer."""
    return {"id": user["id"], "username": user["username"], "public_email": None, "name": user["name"],
            "email": user["email"]}


class ServiceAccountRoutes:
    def _register_service_accounts(self) -> None:
        self.api("GET", "/service_accounts", self._instance_accounts)
        self.api("POST", "/service_accounts", self._instance_account_create)
        for kind in ("groups", "projects"):
            base = f"/{kind}/{{id}}/service_accounts"
            self.api("GET", base, self._scoped_accounts)
            self.api("POST", base, self._scoped_account_create)
            self.api("DELETE", base + "/{user_id}", self._scoped_account_delete)
            pats = base + "/{user_id}/personal_access_tokens"
            self.api("GET", pats, self._account_tokens)
            self.api("POST", pats, self._account_token_create)
            self.api("POST", pats + "/{token_id}/rotate", self._account_token_rotate)
            self.api("DELETE", pats + "/{token_id}", self._account_token_revoke)
        manage = "/groups/{id}/manage"
        self.api("GET", manage + "/personal_access_tokens", self._inventory_pats)
        self.api("POST", manage + "/personal_access_tokens/{token_id}/rotate", self._inventory_pat_rotate)
        self.api("DELETE", manage + "/personal_access_tokens/{token_id}", self._inventory_pat_revoke)
        self.api("GET", manage + "/resource_access_tokens", self._inventory_rats)
        self.api("DELETE", manage + "/resource_access_tokens/{token_id}", self._inventory_rat_revoke)

    # who may ----------------------------------------------------------------------------------------

    def _plan(self, group: dict[str, Any]) -> str:
        return str(group.get("plan") or self.store.settings.get("plan", "ultimate")).lower()

    def _account_scope(self, request: Request, caller: Caller) -> tuple[str, dict[str, Any] | None]:
        """(kind, group or project) the route is about, after GitLab's checks: a top-level group
        (400 otherwise, [GUESS] wording), a Premium/Ultimate plan, an Owner of the group (GitLab.com)
        or a Maintainer of the project ([GUESS] from the project access token rule), or an admin."""
        if request.raw_path.startswith("/api/v4/projects/"):
            project = self.find_project(request.params["id"], caller)
            if self.project_level(caller.user, project) < MAINTAINER:
                raise HTTPError(403, FORBIDDEN)
            return "project", project
        group = self.find_group(request.params["id"], caller)
        if group.get("parent_id") is not None:
            raise HTTPError(400, {"message": "400 Bad request - Group must be a top-level group"})
        if self._plan(group) not in SERVICE_ACCOUNT_PLANS or (not caller.admin and (
                self.group_level(caller.user, group) < OWNER or not self._owners_may_manage())):
            raise HTTPError(403, FORBIDDEN)
        return "group", group

    def _owners_may_manage(self) -> bool:
        """The admin setting "Allow top-level group owners to create Service Accounts"
        (gitlab-org/gitlab!163726): on by default on GitLab.com, off on self-managed. The sandbox
        defaults to GitLab.com; a self-managed world sets it false."""
        return bool(self.store.settings.get("allow_top_level_group_owners_to_create_service_accounts", True))

    def _account(self, request: Request, kind: str, resource: dict[str, Any] | None) -> dict[str, Any]:
        raw = request.params["user_id"]
        user = self.store.users().get(int(raw)) if raw.isdigit() else None
        owner = (user or {}).get("service_account") or {}
        if user is None or user.get("state") == "deleted" or owner.get("type") != kind or (
                resource is not None and owner.get("id") != resource["id"]):
            raise HTTPError(404, {"message": "404 User Not Found"})
        return user

    # accounts ---------------------------------------------------------------------------------------

    def _accounts(self, request: Request, kind: str, resource_id: int | None) -> Response:
        found = [u for u in self.store.users().values() if u.get("state") != "deleted"
                 and (u.get("service_account") or {}) == {"type": kind, "id": resource_id}]
        key = "username" if request.arg("order_by") == "username" else "id"
        found.sort(key=lambda u: u[key], reverse=(request.arg("sort") or "desc") == "desc")
        return self.paginate(request, [account_entity(u) for u in found])

    def _create_account(self, request: Request, caller: Caller, kind: str, resource_id: int | None) -> Response:
        params = request.merged_params()
        username = params.get("username")
        if username and self.store.user_by_username(str(username)):
            raise HTTPError(400, {"message": "400 Bad request - Username has already been taken"})
        user = add_service_account(self.store, kind, resource_id, username=username, name=params.get("name"),
                                   email=params.get("email"), host=request.host)
        user["created_by_id"] = caller.id  # recorded: `created_by` names the creator
        return Response(201, account_entity(user))

    def _instance_accounts(self, request: Request, caller: Caller) -> Response:
        if not caller.admin:
            raise HTTPError(403, FORBIDDEN)
        return self._accounts(request, "instance", None)

    def _instance_account_create(self, request: Request, caller: Caller) -> Response:
        if not caller.admin:
            raise HTTPError(403, FORBIDDEN)
        return self._create_account(request, caller, "instance", None)

    def _scoped_accounts(self, request: Request, caller: Caller) -> Response:
        kind, resource = self._account_scope(request, caller)
        return self._accounts(request, kind, resource["id"] if resource else None)

    def _scoped_account_create(self, request: Request, caller: Caller) -> Response:
        kind, resource = self._account_scope(request, caller)
        return self._create_account(request, caller, kind, resource["id"] if resource else None)

    def _scoped_account_delete(self, request: Request, caller: Caller) -> Response:
        """Deleting the user revokes its tokens, as `DELETE /users/:id` does."""
        kind, resource = self._account_scope(request, caller)
        user = self._account(request, kind, resource)
        user["state"] = "deleted"
        for token in self.store.tables["tokens"].values():
            if token["user_id"] == user["id"]:
                token["revoked"] = True
        return Response(204)

    # an account's tokens ----------------------------------------------------------------------------

    def _account_token(self, request: Request, user: dict[str, Any]) -> dict[str, Any]:
        raw = request.params["token_id"]
        token = self.store.tables["tokens"].get(int(raw)) if raw.isdigit() else None
        if token is None or token["user_id"] != user["id"]:
            raise HTTPError(404, {"message": "404 Not found"})  # [GUESS] as GET /personal_access_tokens/:id
        return token

    def _account_tokens(self, request: Request, caller: Caller) -> Response:
        kind, resource = self._account_scope(request, caller)
        user = self._account(request, kind, resource)
        tokens = [t for t in self.store.tables["tokens"].values() if t["user_id"] == user["id"]]
        tokens = self._filter_tokens(request, tokens)
        # [GUESS] the entity of GET /personal_access_tokens (with last_used_ips): no recording.
        return self.paginate(request, [entities.token_entity(self.store, t, with_ips=True) for t in tokens])

    def _account_token_create(self, request: Request, caller: Caller) -> Response:
        """Several tokens may live at once on one account: a new one does not touch the others."""
        kind, resource = self._account_scope(request, caller)
        user = self._account(request, kind, resource)
        name, scopes, params = self._pat_params(request, PAT_SCOPES)
        expires = self._expiry(params.get("expires_at"),
                               default_days=int(self.store.settings.get("max_token_lifetime_days", 365)))
        token = add_token(self.store, kind="personal", user_id=user["id"], name=name, scopes=scopes,
                          description=params.get("description"), expires_at=expires)
        return Response(201, entities.token_entity(self.store, token, with_token=True))

    def _account_token_rotate(self, request: Request, caller: Caller) -> Response:
        kind, resource = self._account_scope(request, caller)
        token = self._account_token(request, self._account(request, kind, resource))
        new = self.rotate_token(token, request.merged_params().get("expires_at"))
        return Response(200, entities.token_entity(self.store, new, with_token=True))

    def _account_token_revoke(self, request: Request, caller: Caller) -> Response:
        kind, resource = self._account_scope(request, caller)
        token = self._account_token(request, self._account(request, kind, resource))
        if token.get("revoked"):
            raise HTTPError(400, {"message": "400 Bad request - Token already revoked"})  # [GUESS]
        token["revoked"] = True
        return Response(204)

    # the group credentials inventory -----------------------------------------------------------------

    def _inventory_group(self, request: Request, caller: Caller) -> dict[str, Any]:
        """A top-level group with an Ultimate plan whose Owner (or an admin, [GUESS]) calls;
        [GUESS] 403 otherwise, as Grape's `authorize!` answers."""
        group = self.find_group(request.params["id"], caller)
        if group.get("parent_id") is not None or self._plan(group) not in INVENTORY_PLANS or (
                self.group_level(caller.user, group) < OWNER and not caller.admin):
            raise HTTPError(403, FORBIDDEN)
        return group

    def _inventory_users(self, group: dict[str, Any]) -> set[int]:
        """Enterprise users of the group and its service accounts."""
        return {u["id"] for u in self.store.users().values()
                if u.get("enterprise_group_id") == group["id"]
                or (u.get("service_account") or {}) == {"type": "group", "id": group["id"]}}

    def _inventory_pat(self, request: Request, group: dict[str, Any]) -> dict[str, Any]:
        raw = request.params["token_id"]
        token = self.store.tables["tokens"].get(int(raw)) if raw.isdigit() else None
        if token is None or token["kind"] != "personal" or token["user_id"] not in self._inventory_users(group):
            raise HTTPError(404, {"message": "404 Not found"})
        return token

    def _inventory_pats(self, request: Request, caller: Caller) -> Response:
        group = self._inventory_group(request, caller)
        users = self._inventory_users(group)
        tokens = [t for t in self.store.tables["tokens"].values()
                  if t["kind"] == "personal" and t["user_id"] in users]
        tokens = self._filter_tokens(request, tokens)
        return self.paginate(request, [entities.token_entity(self.store, t, with_ips=True) for t in tokens])

    def _inventory_pat_rotate(self, request: Request, caller: Caller) -> Response:
        token = self._inventory_pat(request, self._inventory_group(request, caller))
        new = self.rotate_token(token, request.merged_params().get("expires_at"))
        return Response(200, entities.token_entity(self.store, new, with_token=True))

    def _inventory_pat_revoke(self, request: Request, caller: Caller) -> Response:
        self._inventory_pat(request, self._inventory_group(request, caller))["revoked"] = True
        return Response(204)

    def _inventory_resource_tokens(self, group: dict[str, Any]) -> list[dict[str, Any]]:
        """Access tokens of the group, its subgroups and their projects."""
        inside = {g["id"] for g in self.store.tables["groups"].values() if group in self.store.group_chain(g["id"])}
        projects = {p["id"] for p in self.store.tables["projects"].values() if p.get("namespace_id") in inside}
        return [t for t in self.store.tables["tokens"].values()
                if (t["kind"] == "group" and t.get("resource_id") in inside)
                or (t["kind"] == "project" and t.get("resource_id") in projects)]

    def _inventory_rats(self, request: Request, caller: Caller) -> Response:
        group = self._inventory_group(request, caller)
        tokens = self._filter_tokens(request, self._inventory_resource_tokens(group))
        return self.paginate(request, [entities.token_entity(self.store, t, with_ips=True, resource=True)
                                       for t in tokens])

    def _inventory_rat_revoke(self, request: Request, caller: Caller) -> Response:
        group = self._inventory_group(request, caller)
        raw = request.params["token_id"]
        token = next((t for t in self._inventory_resource_tokens(group) if str(t["id"]) == raw), None)
        if token is None:
            raise HTTPError(404, {"message": "404 Not found"})
        token["revoked"] = True
        return Response(204)
