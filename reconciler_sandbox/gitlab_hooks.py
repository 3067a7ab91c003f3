"""Project and group webhooks, with their write-only secrets.

Sources (../shared/reference/gitlab-api.md §5): GL `lib/api/project_hooks.rb`, `group_hooks.rb`,
`lib/api/hooks/url_variables.rb`, `custom_headers.rb`, `lib/api/entities/hook.rb`,
`app/models/concerns/web_hooks/hook.rb`; field list of the 17.x entity from
`../shared/oracles/specs/gitlab-openapi-v2.yaml` (API_Entities_ProjectHook).

- The secret `token` is never returned; 18.x answers `token_present` (the Swagger copy of March
  2025 has no such field, so 17.x does not) [UNCERTAIN: first version with token_present].
- Changing `url` without sending `token` clears the token (`reset_token`); URL variables are reset
  when the URL changes unless new ones are sent; custom headers are cleared when the interpolated
  URL changes unless new ones are sent.
- `url_variables` and `custom_headers` are readable by key only, on GET of one hook (the list omits
  them), and have their own PUT/DELETE endpoints answering 204.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .core import HTTPError, Request, Response
from .gitlab_seed import GROUP_HOOK_EVENTS, HOOK_EVENTS, _bool, _pairs, new_hook

if TYPE_CHECKING:
    from .gitlab import Caller

URL = re.compile(r"\Ahttps?://[^\s/]+", re.IGNORECASE)
VAR_KEY = re.compile(r"\A[A-Za-z0-9_]{1,255}\Z")
HEADER_KEY = re.compile(r"\A[A-Za-z0-9_-]{1,255}\Z")
WRITABLE = ("url", "name", "description", "enable_ssl_verification", "push_events_branch_filter",
            "branch_filter_strategy", "custom_webhook_template", "token", "url_variables", "custom_headers")
# Entity order of ProjectHook (17.x), then the later additions.
PROJECT_EVENTS = ("issues_events", "confidential_issues_events", "note_events", "confidential_note_events",
                  "pipeline_events", "wiki_page_events", "deployment_events", "feature_flag_events", "job_events",
                  "releases_events", "emoji_events", "resource_access_token_events", "vulnerability_events")


class HookRoutes:
    def _register_hooks(self) -> None:
        for prefix in ("/projects/{id}/hooks", "/groups/{id}/hooks"):
            self.api("GET", prefix, self._hook_list)
            self.api("POST", prefix, self._hook_create)
            self.api("GET", prefix + "/{hook_id}", self._hook_get)
            self.api("PUT", prefix + "/{hook_id}", self._hook_update)
            self.api("DELETE", prefix + "/{hook_id}", self._hook_delete)
            self.api("POST", prefix + "/{hook_id}/test/{trigger}", self._hook_test)
            self.api("PUT", prefix + "/{hook_id}/url_variables/{key}", self._hook_put_pair("url_variables"))
            self.api("DELETE", prefix + "/{hook_id}/url_variables/{key}", self._hook_delete_pair("url_variables"))
            self.api("PUT", prefix + "/{hook_id}/custom_headers/{key}", self._hook_put_pair("custom_headers"))
            self.api("DELETE", prefix + "/{hook_id}/custom_headers/{key}", self._hook_delete_pair("custom_headers"))

    # helpers --------------------------------------------------------------------------------------

    def _hook_scope(self, request: Request, caller: Caller) -> tuple[str, int]:
        if request.raw_path.startswith("/api/v4/projects/"):
            return "project", self.find_project(request.params["id"], caller, 40)["id"]
        return "group", self.find_group(request.params["id"], caller, 50)["id"]

    def _hook(self, request: Request, caller: Caller) -> dict[str, Any]:
        kind, scope_id = self._hook_scope(request, caller)
        raw = request.params["hook_id"]
        hook = self.store.tables["hooks"].get(int(raw)) if raw.isdigit() else None
        if hook is None or hook["scope_kind"] != kind or hook["scope_id"] != scope_id:
            raise HTTPError(404, {"message": "404 Hook Not Found"})
        return hook

    def _hook_entity(self, hook: dict[str, Any], *, detailed: bool) -> dict[str, Any]:
        v18 = self.store.version_at_least(18)
        entity: dict[str, Any] = {
            "id": hook["id"], "url": hook["url"], "name": hook.get("name", ""),
            "description": hook.get("description", ""), "created_at": hook["created_at"],
            "push_events": hook["push_events"], "tag_push_events": hook["tag_push_events"],
            "merge_requests_events": hook["merge_requests_events"],
            "repository_update_events": hook.get("repository_update_events", False),
            "enable_ssl_verification": hook["enable_ssl_verification"],
            "alert_status": hook.get("alert_status", "executable"), "disabled_until": hook.get("disabled_until"),
        }
        if detailed:
            entity["url_variables"] = [{"key": k} for k in hook.get("url_variables", {})]
        entity.update(push_events_branch_filter=hook.get("push_events_branch_filter", ""),
                      branch_filter_strategy=hook.get("branch_filter_strategy", "wildcard"),
                      custom_webhook_template=hook.get("custom_webhook_template", ""))
        if detailed:
            entity["custom_headers"] = [{"key": k} for k in hook.get("custom_headers", {})]
        if v18:
            entity["token_present"] = bool(hook.get("token"))
        if self.store.version_at_least(19):
            entity["signing_token_present"] = False
        entity["project_id" if hook["scope_kind"] == "project" else "group_id"] = hook["scope_id"]
        events = PROJECT_EVENTS + (("milestone_events",) if v18 else ())
        if hook["scope_kind"] == "group":
            events += GROUP_HOOK_EVENTS
        for event in events:
            entity[event] = bool(hook.get(event, False))
        return entity

    @staticmethod
    def _interpolated(url: str, variables: dict[str, str]) -> str:
        return re.sub(r"\{([A-Za-z0-9_]+)\}", lambda m: variables.get(m.group(1), m.group(0)), url)

    @staticmethod
    def _check_url(url: Any) -> None:
        if not isinstance(url, str) or not URL.match(url):
            raise HTTPError(422, {"error": "Invalid url given"})

    # handlers ----------------------------------------------------------------------------------------

    def _hook_list(self, request: Request, caller: Caller) -> Response:
        kind, scope_id = self._hook_scope(request, caller)
        rows = [h for h in self.store.tables["hooks"].values() if h["scope_kind"] == kind and h["scope_id"] == scope_id]
        return self.paginate(request, [self._hook_entity(h, detailed=False) for h in rows])

    def _hook_get(self, request: Request, caller: Caller) -> Response:
        return Response(200, self._hook_entity(self._hook(request, caller), detailed=True))

    def _hook_create(self, request: Request, caller: Caller) -> Response:
        kind, scope_id = self._hook_scope(request, caller)
        params = request.merged_params()
        if not params.get("url"):
            raise HTTPError(400, {"error": "url is missing"})
        self._check_url(params["url"])
        self._check_pairs(params)
        hook = new_hook(self.store, kind, scope_id, params)
        return Response(201, self._hook_entity(hook, detailed=True))

    def _check_pairs(self, params: dict[str, Any]) -> None:
        for name, rule in (("url_variables", VAR_KEY), ("custom_headers", HEADER_KEY)):
            # GL WebHooksHelpers: each item `requires :key` and `requires :value` (Grape answers 400).
            items = params.get(name)
            if isinstance(items, list):
                for i, item in enumerate(items):
                    for field in ("key", "value"):
                        if not isinstance(item, dict) or item.get(field) is None:
                            raise HTTPError(400, {"error": f"{name}[{i}][{field}] is missing"})
            for key, value in _pairs(params.get(name)).items():
                if not rule.match(key) or not value:
                    raise HTTPError(422, {"error": "Illegal key or value"})

    def _hook_update(self, request: Request, caller: Caller) -> Response:
        hook = self._hook(request, caller)
        params = request.merged_params()
        events = HOOK_EVENTS + (GROUP_HOOK_EVENTS if hook["scope_kind"] == "group" else ())
        if not any(k in params for k in WRITABLE + events):
            raise HTTPError(400, {"error": "No parameters provided"})
        if "url" in params:
            self._check_url(params["url"])
        self._check_pairs(params)
        old_url, old_vars = hook["url"], dict(hook.get("url_variables", {}))
        for key in ("url", "name", "description", "push_events_branch_filter", "branch_filter_strategy",
                    "custom_webhook_template"):
            if key in params and params[key] is not None:
                hook[key] = str(params[key])
        if "enable_ssl_verification" in params:
            hook["enable_ssl_verification"] = _bool(params["enable_ssl_verification"])
        for event in events:
            if event in params:
                hook[event] = _bool(params[event])
        for name in ("url_variables", "custom_headers"):
            if name in params:
                hook[name] = _pairs(params[name])
                for value in hook[name].values():
                    self.store.remember_if_credential(value)
        url_changed = hook["url"] != old_url
        if "token" in params:
            hook["token"] = params["token"] or None
            self.store.remember(hook["token"])
        elif url_changed:
            hook["token"] = None  # WebHooks::Hook#reset_token
        if url_changed and "url_variables" not in params:
            hook["url_variables"] = {}
        if "custom_headers" not in params and (
                self._interpolated(old_url, old_vars) != self._interpolated(hook["url"], hook["url_variables"])):
            hook["custom_headers"] = {}
        return Response(200, self._hook_entity(hook, detailed=True))

    def _hook_delete(self, request: Request, caller: Caller) -> Response:
        hook = self._hook(request, caller)
        del self.store.tables["hooks"][hook["id"]]
        return Response(204)

    def _hook_test(self, request: Request, caller: Caller) -> Response:
        self._hook(request, caller)
        return Response(201, {"message": "201 Created"})

    def _hook_put_pair(self, name: str):
        rule = VAR_KEY if name == "url_variables" else HEADER_KEY

        def handler(request: Request, caller: Caller) -> Response:
            hook = self._hook(request, caller)
            value = request.merged_params().get("value")
            key = request.params["key"]
            if not rule.match(key) or not value:
                raise HTTPError(422, {"error": "Illegal key or value"})
            hook.setdefault(name, {})[key] = str(value)
            self.store.remember_if_credential(str(value))
            return Response(204)

        return handler

    def _hook_delete_pair(self, name: str):
        label = "URL variable" if name == "url_variables" else "Custom header"

        def handler(request: Request, caller: Caller) -> Response:
            hook = self._hook(request, caller)
            if request.params["key"] not in hook.get(name, {}):
                raise HTTPError(404, {"message": f"404 {label} Not Found"})
            del hook[name][request.params["key"]]
            return Response(204)

        return handler

    # test hook ------------------------------------------------------------------------------------

    def hook_secrets(self, hook_id: int) -> dict[str, Any]:
        """What GitLab never returns: {"token", "url_variables": {...}, "custom_headers": {...}}."""
        with self.lock:
            hook = self.store.tables["hooks"][int(hook_id)]
            return {"token": hook.get("token"), "url_variables": dict(hook.get("url_variables", {})),
                    "custom_headers": dict(hook.get("custom_headers", {}))}
