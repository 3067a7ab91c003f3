"""The GitLab sandbox: a stateful fake of the GitLab REST v4 subset this tool uses.

`serve_gitlab(seed)` starts it on loopback; python-gitlab 8.x talks to it unmodified. This module
holds the service core (authentication, scopes, access levels, pagination, rate-limit headers,
users/projects/groups lookups, test hooks); each family of endpoints lives in its own module and
is mixed in: `gitlab_tokens`, `gitlab_ci` (variables, triggers), `gitlab_hooks`, `gitlab_work`
(issues, merge requests, notes), `gitlab_terraform`, `gitlab_schedules` (pipeline schedules),
`gitlab_service_accounts` (service accounts, the group credentials inventory). Behaviour follows
`../shared/reference/gitlab-api.md`; shapes follow the recordings (see `gitlab_entities`).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from . import gitlab_entities as entities
from .core import Clock, HTTPError, Request, Response, SandboxServer, Service
from .gitlab_ci import CIRoutes
from .gitlab_ci_endpoints import MergeRequestCIRoutes
from .gitlab_hooks import HookRoutes
from .gitlab_schedules import ScheduleRoutes
from .gitlab_seed import apply_seed, load_seed
from .gitlab_service_accounts import ServiceAccountRoutes
from .gitlab_store import GitLabStore, iso
from .gitlab_terraform import TerraformRoutes
from .gitlab_tokens import TokenRoutes
from .gitlab_work import WorkRoutes

# GitLab records a token's use only when the recorded one is at least 10 minutes old (since 16.1:
# "Token usage information is updated every 10 minutes",
# https://docs.gitlab.com/user/profile/personal_access_tokens/#view-token-usage-information;
# PersonalAccessTokens::LastUsedService::LAST_USED_AT_TIMEOUT), on the sandbox clock.
LAST_USED_EVERY = timedelta(minutes=10)


def record_use(store: GitLabStore, token: dict[str, Any]) -> None:
    """A request authenticated with `token`: its `last_used_at`, at GitLab's granularity."""
    now = store.now()
    last = token.get("last_used_at")
    if last is None or datetime.fromisoformat(str(last).replace("Z", "+00:00")) <= now - LAST_USED_EVERY:
        token["last_used_at"] = iso(now)
    token["last_used_ips"] = ["127.0.0.1"]

API = "/api/v4"

# GL lib/gitlab/auth/auth_finders.rb `access_token_rotation_request?`
ROTATION_PATH = re.compile(r"access_tokens/(\d+|self)/rotate$")

UNAUTHORIZED = {"message": "401 Unauthorized"}
REVOKED = {"error": "invalid_token", "error_description": "Token was revoked. You have to re-authorize from the user."}
EXPIRED = {"error": "invalid_token",
           "error_description": "Token is expired. You can either do re-authorization or token refresh."}
FORBIDDEN = {"message": "403 Forbidden"}

# Access levels (GL Gitlab::Access)
GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50


def not_found(what: str | None = None) -> HTTPError:
    return HTTPError(404, {"message": f"404 {what} Not Found" if what else "404 Not Found"})


def bad_request(reason: str) -> HTTPError:
    return HTTPError(400, {"message": f"400 Bad request - {reason}"})


def missing(*names: str) -> HTTPError:
    """Grape's answer to missing required parameters."""
    return HTTPError(400, {"error": f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} missing"})


@dataclass
class Caller:
    """Who a request is from: a user, through a PAT/resource token or a CI job token."""

    user: dict[str, Any]
    token: dict[str, Any] | None = None
    job: dict[str, Any] | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def admin(self) -> bool:
        return bool(self.user.get("admin"))

    @property
    def id(self) -> int:
        return self.user["id"]


Routed = Callable[[Request, Caller], Response]


class GitLabService(MergeRequestCIRoutes, TokenRoutes, CIRoutes, HookRoutes, WorkRoutes, TerraformRoutes, ScheduleRoutes,
                    ServiceAccountRoutes, Service):
    name = "gitlab"

    def __init__(self, clock: Clock, seed: dict | None = None) -> None:
        super().__init__(clock)
        self.store = GitLabStore(clock)
        self._register_core()
        self._register_tokens()
        self._register_ci()
        self._register_hooks()
        self._register_work()
        self._register_terraform()
        self._register_ci_endpoints()
        self._register_schedules()
        self._register_service_accounts()
        if seed is not None:
            self.seed(seed)

    # --- seeding, persistence, test hooks ----------------------------------------------------------

    def seed(self, seed: dict | str | Path) -> None:
        with self.lock:
            apply_seed(self.store, load_seed(seed))

    def reset(self, seed: dict | str | Path | None = None) -> None:
        """Forget everything (keeping the values ever minted, for the leak guard) and seed again."""
        with self.lock:
            minted = set(self.store.minted)
            self.store = GitLabStore(self.clock)
            self.store.minted |= minted
            if seed is not None:
                apply_seed(self.store, load_seed(seed))

    def dump_state(self) -> dict[str, Any]:
        return self.store.dump()

    def load_state(self, state: dict[str, Any]) -> None:
        self.store.load(state)

    def secrets(self) -> set[str]:
        with self.lock:
            return set(self.store.minted)

    def token_by_value(self, value: str) -> dict[str, Any] | None:
        """The live token record holding `value` (a copy, with `kind`, `id` and `active`)."""
        with self.lock:
            token = self.store.token_by_value(value)
            if token is None:
                return None
            return {**token, "active": entities.token_active(self.store, token)}

    def token(self, token_id: int) -> dict[str, Any] | None:
        with self.lock:
            token = self.store.tables["tokens"].get(int(token_id))
            return None if token is None else {**token, "active": entities.token_active(self.store, token)}

    def tokens(self, **match: Any) -> list[dict[str, Any]]:
        """Token records (copies) whose fields equal `match`, e.g. tokens(name="ci", revoked=False)."""
        with self.lock:
            rows = [{**t, "active": entities.token_active(self.store, t)} for t in self.store.tables["tokens"].values()]
        return [t for t in rows if all(t.get(k) == v for k, v in match.items())]

    def user(self, ref: int | str) -> dict[str, Any] | None:
        with self.lock:
            if isinstance(ref, int) or str(ref).isdigit():
                found = self.store.users().get(int(ref))
            else:
                found = self.store.user_by_username(str(ref))
            return dict(found) if found else None

    def project(self, ref: int | str) -> dict[str, Any] | None:
        with self.lock:
            found = self._project_record(str(ref))
            return dict(found) if found else None

    def group(self, ref: int | str) -> dict[str, Any] | None:
        with self.lock:
            found = self._group_record(str(ref))
            return dict(found) if found else None

    def table(self, name: str) -> list[dict[str, Any]]:
        """Copies of every record of one table (users, tokens, triggers, variables, hooks, ...)."""
        with self.lock:
            return [dict(r) for _, r in sorted(self.store.tables[name].items())]

    # --- generic answers in GitLab's shapes --------------------------------------------------------

    def not_found(self, request: Request) -> Response:
        return Response(404, {"error": "404 Not Found"})

    def rate_limit_headers(self, limit: int, remaining: int, reset_at: int) -> dict[str, str]:
        # GL doc administration/settings/user_and_ip_rate_limits.md: on every answer.
        return {
            "RateLimit-Limit": str(limit), "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Observed": str(limit - remaining), "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset_at),
        }

    def rate_limited(self, retry_after: int) -> Response:
        # Rack::Attack: plain-text body, Retry-After in seconds, RateLimit-ResetTime as an HTTP date.
        import time

        return Response(429, "Retry later", {"Retry-After": str(retry_after),
                                             "RateLimit-ResetTime": formatdate(time.time() + retry_after, usegmt=True)})

    def server_error(self, status: int) -> Response:
        texts = {500: "500 Internal Server Error", 502: "502 Bad Gateway", 503: "503 Service Unavailable",
                 504: "504 Gateway Timeout"}
        return Response(status, {"message": texts.get(status, f"{status} Server Error")})

    def identity(self, request: Request) -> str:
        value, _ = self._credential(request)
        return "token:" + hashlib.sha256(value.encode()).hexdigest()[:16] if value else "ip:127.0.0.1"

    # --- authentication ------------------------------------------------------------------------

    def _credential(self, request: Request) -> tuple[str | None, str]:
        if request.header("PRIVATE-TOKEN"):
            return request.header("PRIVATE-TOKEN"), "private"
        if request.header("JOB-TOKEN"):
            return request.header("JOB-TOKEN"), "job-header"
        auth = request.header("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), "bearer"
        if auth.lower().startswith("basic "):
            # Terraform's HTTP backend: username anything (gitlab-ci-token for jobs), password = token.
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None, "basic"
            return password, "job-basic" if user == "gitlab-ci-token" else "basic"
        for name, how in (("private_token", "private"), ("access_token", "bearer"), ("job_token", "job-param")):
            if request.arg(name):
                return request.arg(name), how
        return None, "none"

    def authenticate(self, request: Request, *, job_token: bool = False) -> Caller:
        """The caller, or the 401 GitLab answers (APIGuard bodies for revoked and expired tokens).

        Reuse detection (GL auth_finders.rb): a rotate request made with an already revoked token
        revokes the token's whole family, then answers 401.
        """
        store = self.store
        value, how = self._credential(request)
        if not value:
            raise HTTPError(401, UNAUTHORIZED)
        token = store.token_by_value(value)
        if token is not None:
            if token.get("revoked"):
                if ROTATION_PATH.search(request.path):
                    self.revoke_family(token)
                raise HTTPError(401, REVOKED)
            if not entities.token_active(store, token):
                raise HTTPError(401, EXPIRED)
            user = store.users().get(token["user_id"])
            if user is None or user.get("state", "active") != "active":
                raise HTTPError(401, UNAUTHORIZED)
            record_use(store, token)
            return Caller(user=user, token=token, scopes=frozenset(token["scopes"]))
        job = next((j for j in store.tables["job_tokens"].values() if j.get("value") == value), None)
        # The only job-token routes modelled are the Terraform-state ones, which GitLab declares
        # `job_token_allowed: :basic_auth` (GL lib/api/terraform/state.rb): a job token counts there
        # only as Basic gitlab-ci-token:<token>; a JOB-TOKEN header is ignored, so it is a 401.
        if job is not None and job.get("active", True) and job_token and how == "job-basic":
            user = store.users().get(job["user_id"])
            if user is not None:
                return Caller(user=user, job=job, scopes=frozenset({"api"}))
        raise HTTPError(401, UNAUTHORIZED)

    def require_scope(self, request: Request, caller: Caller, *, write: bool | None = None,
                      self_rotate: bool = False) -> None:
        if caller.job is not None:
            return
        write = request.method not in ("GET", "HEAD") if write is None else write
        wanted = {"api"} if write else {"api", "read_api"}
        if self_rotate:
            wanted = {"api", "self_rotate"}
        if not wanted & caller.scopes:
            raise HTTPError(403, {
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges than provided by the access token.",
                "scope": " ".join(sorted(wanted)),
            })

    def api(self, method: str, template: str, handler: Routed, *, job_token: bool = False,
            any_scope: bool = False, self_rotate: bool = False) -> None:
        """Register an authenticated route; the handler gets (request, caller)."""

        def routed(request: Request) -> Response:
            caller = self.authenticate(request, job_token=job_token)
            if caller.job is not None and not job_token:
                raise HTTPError(401, UNAUTHORIZED)
            if not any_scope:
                self.require_scope(request, caller, self_rotate=self_rotate)
            return handler(request, caller)

        self.router.add(method, API + template, routed)

    def revoke_family(self, token: dict[str, Any]) -> None:
        """Revoke every token linked to `token` through `previous_id` (GL RevokeTokenFamilyService)."""
        tokens = self.store.tables["tokens"]
        family = {token["id"]}
        changed = True
        while changed:
            changed = False
            for t in tokens.values():
                prev = t.get("previous_id")
                if t["id"] in family and prev is not None and prev not in family:
                    family.add(prev)
                    changed = True
                if prev in family and t["id"] not in family:
                    family.add(t["id"])
                    changed = True
        for tid in family:
            tokens[tid]["revoked"] = True

    # --- access levels -----------------------------------------------------------------------------

    def _level_in(self, records: list[dict[str, Any]], user: dict[str, Any]) -> int:
        levels = [int(r.get("members", {}).get(str(user["id"]), 0)) for r in records]
        best = max(levels, default=0)
        if best:
            return best
        # A world seeded without any membership is open: every human user is an Owner there, so a
        # seed stays a few lines. Give `members` to a project or group to restrict it.
        if not user.get("bot") and not any(r.get("restricted") for r in records):
            return OWNER
        return 0

    def project_level(self, user: dict[str, Any], project: dict[str, Any]) -> int:
        if user.get("admin"):
            return OWNER
        chain = [project, *self.store.group_chain(project.get("namespace_id"))]
        if project.get("namespace_user_id") == user["id"]:
            return OWNER
        return self._level_in(chain, user)

    def group_level(self, user: dict[str, Any], group: dict[str, Any]) -> int:
        if user.get("admin"):
            return OWNER
        return self._level_in(self.store.group_chain(group["id"]), user)

    def _project_record(self, ref: str) -> dict[str, Any] | None:
        if ref.isdigit():
            return self.store.tables["projects"].get(int(ref))
        return self.store.project_by_path(ref)

    def _group_record(self, ref: str) -> dict[str, Any] | None:
        if ref.isdigit():
            return self.store.tables["groups"].get(int(ref))
        return self.store.group_by_path(ref)

    def find_project(self, ref: str, caller: Caller, min_level: int = GUEST) -> dict[str, Any]:
        """The project by id or path; 404 when unknown or invisible, 403 below `min_level`."""
        project = self._project_record(ref)
        if project is None:
            raise not_found("Project")
        if caller.job is not None and caller.job.get("project_id") != project["id"]:
            raise not_found("Project")
        level = self.project_level(caller.user, project)
        if level == 0 and project.get("visibility", "private") != "public":
            raise not_found("Project")
        if level < min_level:
            raise HTTPError(403, FORBIDDEN)
        return project

    def find_group(self, ref: str, caller: Caller, min_level: int = GUEST) -> dict[str, Any]:
        group = self._group_record(ref)
        if group is None:
            raise not_found("Group")
        level = self.group_level(caller.user, group)
        if level == 0 and group.get("visibility", "private") != "public":
            raise not_found("Group")
        if level < min_level:
            raise HTTPError(403, FORBIDDEN)
        return group

    # --- pagination ------------------------------------------------------------------------------

    def paginate(self, request: Request, items: list[Any], status: int = 200) -> Response:
        """One page of `items` with GitLab's offset-pagination headers and absolute Link URLs."""

        def number(name: str, default: int) -> int:
            raw = request.arg(name)
            try:
                value = int(raw) if raw not in (None, "") else default
            except ValueError:
                raise HTTPError(400, {"error": f"{name} is invalid"}) from None
            return value if value > 0 else default

        per_page = min(number("per_page", 20), 100)
        page = number("page", 1)
        total = len(items)
        pages = max(1, math.ceil(total / per_page))
        chunk = items[(page - 1) * per_page: page * per_page]

        def link(n: int) -> str:
            query = {k: v[0] for k, v in request.query.items() if k not in ("page", "per_page")}
            query.update(page=str(n), per_page=str(per_page))
            return f"{request.base_url}{request.raw_path}?{urlencode(query)}"

        links = []
        if page > 1:
            links.append(f'<{link(page - 1)}>; rel="prev"')
        if page < pages:
            links.append(f'<{link(page + 1)}>; rel="next"')
        links.append(f'<{link(1)}>; rel="first"')
        links.append(f'<{link(pages)}>; rel="last"')
        headers = {
            "Link": ", ".join(links), "X-Page": str(page), "X-Per-Page": str(per_page),
            "X-Next-Page": str(page + 1) if page < pages else "", "X-Prev-Page": str(page - 1) if page > 1 else "",
            "X-Total": str(total), "X-Total-Pages": str(pages),
        }
        return Response(status, chunk, headers)

    # --- core routes: version, users, projects, groups ------------------------------------------------

    def _register_core(self) -> None:
        self.api("GET", "/version", self._version, any_scope=True)
        self.api("GET", "/metadata", self._metadata, any_scope=True)
        self.api("GET", "/user", self._current_user, any_scope=True)
        self.api("GET", "/users", self._list_users)
        self.api("GET", "/users/{user_id}", self._get_user)
        self.api("DELETE", "/users/{user_id}", self._delete_user)
        self.api("GET", "/projects/{id}", self._get_project)
        self.api("GET", "/groups/{id}", self._get_group)
        self.api("GET", "/groups/{id}/projects", self._group_projects)
        self.api("GET", "/groups/{id}/descendant_groups", self._descendant_groups)

    def _version(self, request: Request, caller: Caller) -> Response:
        meta = entities.metadata(self.store, request.base_url)
        return Response(200, {"version": meta["version"], "revision": meta["revision"]})

    def _metadata(self, request: Request, caller: Caller) -> Response:
        return Response(200, entities.metadata(self.store, request.base_url))

    def _current_user(self, request: Request, caller: Caller) -> Response:
        user = entities.user_full(self.store, caller.user, request.base_url, caller=caller.user,
                                  details=caller.admin)
        return Response(200, user)

    def _render_user(self, request: Request, user: dict[str, Any], caller: Caller, *, details: bool) -> dict:
        if caller.admin:
            return entities.user_full(self.store, user, request.base_url, caller=caller.user, details=details)
        if details:
            return entities.user_public(self.store, user, request.base_url, caller=caller.user)
        return entities.user_basic(self.store, user, request.base_url)

    def _list_users(self, request: Request, caller: Caller) -> Response:
        users = [u for u in self.store.users().values() if u.get("state", "active") != "deleted"]
        username = request.arg("username")
        if username is not None:
            users = [u for u in users if u["username"].lower() == username.lower()]
        search = request.arg("search")
        if search:
            users = [u for u in users if search.lower() in u["username"].lower() or search.lower() in u["name"].lower()]
        if request.arg("humans") == "true":
            users = [u for u in users if not u.get("bot")]
        if request.arg("bots") == "true":
            users = [u for u in users if u.get("bot")]
        return self.paginate(request, [self._render_user(request, u, caller, details=False) for u in users])

    def _user_record(self, ref: str) -> dict[str, Any]:
        user = self.store.users().get(int(ref)) if ref.isdigit() else None
        if user is None or user.get("state") == "deleted":
            raise not_found("User")
        return user

    def _get_user(self, request: Request, caller: Caller) -> Response:
        user = self._user_record(request.params["user_id"])
        return Response(200, self._render_user(request, user, caller, details=True))

    def _delete_user(self, request: Request, caller: Caller) -> Response:
        if not caller.admin:
            raise HTTPError(403, FORBIDDEN)
        user = self._user_record(request.params["user_id"])
        user["state"] = "deleted"
        for token in self.store.tables["tokens"].values():
            if token["user_id"] == user["id"]:
                token["revoked"] = True
        return Response(204)

    def project_permissions(self, caller: Caller, project: dict[str, Any]) -> dict[str, Any]:
        direct = int(project.get("members", {}).get(str(caller.id), 0))
        chain = self.store.group_chain(project.get("namespace_id"))
        inherited = max((int(g.get("members", {}).get(str(caller.id), 0)) for g in chain), default=0)
        if not direct and not inherited and not caller.admin:
            inherited = self.project_level(caller.user, project)
        return {
            "project_access": {"access_level": direct, "notification_level": 3} if direct else None,
            "group_access": {"access_level": inherited, "notification_level": 3} if inherited else None,
        }

    def _get_project(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller)
        return Response(200, entities.project_entity(self.store, project, request.base_url,
                                                     permissions=self.project_permissions(caller, project),
                                                     admin=caller.admin))

    def _get_group(self, request: Request, caller: Caller) -> Response:
        group = self.find_group(request.params["id"], caller)
        return Response(200, entities.group_entity(self.store, group, request.base_url, admin=caller.admin))

    def _descendants(self, group: dict[str, Any], caller: Caller) -> list[dict[str, Any]]:
        """Subgroups of `group` at any depth that the caller can see (GL `GroupsFinder`)."""
        found = [g for g in self.store.tables["groups"].values()
                 if g["id"] != group["id"] and group in self.store.group_chain(g["id"])]
        return [g for g in found if self.group_level(caller.user, g) or g.get("visibility") == "public"]

    def _group_projects(self, request: Request, caller: Caller) -> Response:
        """`GET /groups/:id/projects[?include_subgroups=true]` (GL `lib/api/groups.rb`): the
        group's projects the caller can see, by id."""
        group = self.find_group(request.params["id"], caller)
        groups = {group["id"]}
        if str(request.arg("include_subgroups")).lower() in ("true", "1"):
            groups.update(g["id"] for g in self._descendants(group, caller))
        projects = [p for p in self.store.tables["projects"].values() if p.get("namespace_id") in groups
                    and (self.project_level(caller.user, p) or p.get("visibility") == "public")]
        projects.sort(key=lambda p: p["id"])
        return self.paginate(request, [entities.project_entity(self.store, p, request.base_url, in_group=True,
                                                               admin=caller.admin) for p in projects])

    def _descendant_groups(self, request: Request, caller: Caller) -> Response:
        """`GET /groups/:id/descendant_groups`: every subgroup at any depth the caller can see."""
        group = self.find_group(request.params["id"], caller)
        found = sorted(self._descendants(group, caller), key=lambda g: g["id"])
        return self.paginate(request, [entities.group_entity(self.store, g, request.base_url, admin=caller.admin)
                                       for g in found])


def serve_gitlab(seed: dict | str | Path | None = None, clock: Clock | None = None,
                 **server_kwargs: Any) -> SandboxServer:
    """A started GitLab sandbox on 127.0.0.1 (stop it with `.stop()` or use it as a context manager).

    `seed` is a dict, YAML text, or a path to a YAML/JSON seed file (see docs/sandbox-gitlab.md).
    """
    service = GitLabService(clock or Clock())
    if seed is not None:
        service.seed(seed)
    return SandboxServer(service, **server_kwargs).start()
