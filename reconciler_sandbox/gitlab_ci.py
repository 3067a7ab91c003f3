"""CI/CD variables (project, group, instance), pipeline triggers, and running a pipeline by trigger.

Sources (../shared/reference/gitlab-api.md §3-4): GL `lib/api/ci/variables.rb`,
`lib/api/group_variables.rb`, `lib/api/admin/ci/variables.rb`, `lib/api/helpers/variables_helpers.rb`,
`app/models/concerns/ci/maskable.rb`, `ci/hidable_variable.rb`, `lib/api/ci/triggers.rb`,
`app/presenters/ci/trigger_presenter.rb`.
"""

from __future__ import annotations

import re
import secrets as _secrets
from typing import TYPE_CHECKING, Any

from .core import HTTPError, Request, Response
from .gitlab_store import iso, parse_iso

if TYPE_CHECKING:
    from .gitlab import Caller

# Ci::Maskable::REGEX and MASK_AND_RAW_REGEX
MASKED = re.compile(r"\A[a-zA-Z0-9_+=/@:.~-]{8,}\Z")
MASKED_RAW = re.compile(r"\A\S{8,}\Z")
KEY = re.compile(r"\A[a-zA-Z0-9_]{1,255}\Z")
VARIABLE_FIELDS = ("value", "protected", "masked", "raw", "variable_type", "environment_scope", "description")
MULTIPLE = ("There are multiple variables with provided parameters. Please use 'filter[environment_scope]'")


def trigger_expiry(raw: Any) -> str | None:
    """A trigger's `expires_at` as GitLab answers it: `ci_triggers.expires_at` is a timestamp with
    time zone (GitLab 17.9 migration), so a date is stored as that day's midnight UTC and shown in
    the form of `created_at`. [GUESS, from the column type] a date-only value means 00:00 UTC
    (Rails parses it in the instance's zone, UTC by default)."""
    if raw in (None, ""):
        return None
    text = str(raw).strip()
    try:
        return iso(parse_iso(text if "T" in text or " " in text else text + "T00:00:00Z"))
    except ValueError:
        raise HTTPError(400, {"error": "expires_at is invalid"}) from None


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    return bool(value)


class CIRoutes:
    def _register_ci(self) -> None:
        for scope, prefix in (("project", "/projects/{id}"), ("group", "/groups/{id}"), ("instance", "/admin/ci")):
            self.api("GET", prefix + "/variables", self._variables_handler(scope, self._var_list))
            self.api("POST", prefix + "/variables", self._variables_handler(scope, self._var_create))
            self.api("GET", prefix + "/variables/{key}", self._variables_handler(scope, self._var_get))
            self.api("PUT", prefix + "/variables/{key}", self._variables_handler(scope, self._var_update))
            self.api("DELETE", prefix + "/variables/{key}", self._variables_handler(scope, self._var_delete))
        self.api("GET", "/projects/{id}/triggers", self._trigger_list)
        self.api("POST", "/projects/{id}/triggers", self._trigger_create)
        self.api("GET", "/projects/{id}/triggers/{trigger_id}", self._trigger_get)
        self.api("PUT", "/projects/{id}/triggers/{trigger_id}", self._trigger_update)
        self.api("DELETE", "/projects/{id}/triggers/{trigger_id}", self._trigger_delete)
        # The trigger token is the credential: no PRIVATE-TOKEN needed (GL lib/api/ci/triggers.rb).
        self.router.add("POST", "/api/v4/projects/{id}/trigger/pipeline", self._trigger_pipeline)
        self.router.add("POST", "/api/v4/projects/{id}/ref/{ref}/trigger/pipeline", self._trigger_pipeline)

    # --- variables --------------------------------------------------------------------------------

    def _variables_handler(self, scope: str, handler):
        def bound(request: Request, caller: Caller) -> Response:
            if scope == "project":
                scope_id = self.find_project(request.params["id"], caller, 40)["id"]
            elif scope == "group":
                scope_id = self.find_group(request.params["id"], caller, 50)["id"]
            else:
                if not caller.admin:
                    raise HTTPError(403, {"message": "403 Forbidden"})
                scope_id = None
            return handler(request, caller, scope, scope_id)

        return bound

    def _var_entity(self, var: dict[str, Any]) -> dict[str, Any]:
        if var["scope_kind"] == "instance":
            return {"key": var["key"], "description": var.get("description"), "variable_type": var["variable_type"],
                    "value": var["value"], "protected": var["protected"], "masked": var["masked"], "raw": var["raw"]}
        return {"variable_type": var["variable_type"], "key": var["key"],
                "value": None if var.get("hidden") else var["value"], "hidden": bool(var.get("hidden")),
                "protected": var["protected"], "masked": var["masked"], "raw": var["raw"],
                "environment_scope": var["environment_scope"], "description": var.get("description")}

    def _vars_in(self, scope: str, scope_id: int | None) -> list[dict[str, Any]]:
        return [v for v in self.store.tables["variables"].values()
                if v["scope_kind"] == scope and v["scope_id"] == scope_id]

    def _find_variable(self, request: Request, scope: str, scope_id: int | None) -> dict[str, Any]:
        """GL variables_helpers `find_variable`: 409 when several scopes share the key and no filter."""
        found = [v for v in self._vars_in(scope, scope_id) if v["key"] == request.params["key"]]
        env = request.arg("filter[environment_scope]")
        if env is None:
            body = request.json() if request.body else {}
            if isinstance(body, dict) and isinstance(body.get("filter"), dict):
                env = body["filter"].get("environment_scope")
        if env is not None and scope != "instance":
            found = [v for v in found if v["environment_scope"] == env]
        if len(found) > 1:
            raise HTTPError(409, {"message": MULTIPLE})
        if not found:
            raise HTTPError(404, {"message": "404 Variable Not Found"})
        return found[0]

    def _validate_variable(self, var: dict[str, Any]) -> None:
        if var["masked"]:
            rule = MASKED_RAW if var["raw"] else MASKED
            if not rule.match(var["value"] or ""):
                raise HTTPError(400, {"message": {"value": ["is invalid"]}})
        if var["variable_type"] not in ("env_var", "file"):
            raise HTTPError(400, {"error": "variable_type does not have a valid value"})

    def _var_list(self, request: Request, caller: Caller, scope: str, scope_id: int | None) -> Response:
        return self.paginate(request, [self._var_entity(v) for v in self._vars_in(scope, scope_id)])

    def _var_get(self, request: Request, caller: Caller, scope: str, scope_id: int | None) -> Response:
        return Response(200, self._var_entity(self._find_variable(request, scope, scope_id)))

    def _var_create(self, request: Request, caller: Caller, scope: str, scope_id: int | None) -> Response:
        params = request.merged_params()
        absent = [k for k in ("key", "value") if params.get(k) is None]
        if absent:
            raise HTTPError(400, {"error": f"{', '.join(absent)} {'is' if len(absent) == 1 else 'are'} missing"})
        key = str(params["key"])
        if not KEY.match(key):
            raise HTTPError(400, {"message": {"key": ["can contain only letters, digits and '_'."]}})
        hidden = scope != "instance" and _bool(params.get("masked_and_hidden", False))
        env = str(params.get("environment_scope") or "*") if scope != "instance" else "*"
        if any(v["key"] == key and v["environment_scope"] == env for v in self._vars_in(scope, scope_id)):
            raise HTTPError(400, {"message": {"key": [f"({key}) has already been taken"]}})
        var = {
            "scope_kind": scope, "scope_id": scope_id, "key": key, "value": str(params["value"]),
            "variable_type": params.get("variable_type") or "env_var",
            "protected": _bool(params.get("protected", False)),
            "masked": hidden or _bool(params.get("masked", False)), "hidden": hidden,
            "raw": _bool(params.get("raw", False)), "environment_scope": env,
            "description": params.get("description"),
        }
        self._validate_variable(var)
        self.store.remember_if_credential(var["value"], secret=var["masked"])
        self.store.insert("variables", var)
        return Response(201, self._var_entity(var))

    def _var_update(self, request: Request, caller: Caller, scope: str, scope_id: int | None) -> Response:
        var = self._find_variable(request, scope, scope_id)
        params = request.merged_params()
        if "masked_and_hidden" in params and _bool(params["masked_and_hidden"]) != bool(var.get("hidden")):
            raise HTTPError(400, {"message": {"hidden": ["Updating hidden attribute is not allowed on updates."]}})
        if var.get("hidden") and "masked" in params and _bool(params["masked"]) != var["masked"]:
            raise HTTPError(400, {"message": {
                "masked": ["Updating masked attribute is not allowed on updates for hidden variables."]}})
        updated = dict(var)
        # Omitted attributes keep their values (declared_params(include_missing: false)); a null value
        # is treated as omitted, which is what python-gitlab < 8.3 sends back for a hidden variable.
        for name in VARIABLE_FIELDS:
            if name in params and params[name] is not None:
                value = params[name]
                if name in ("protected", "masked", "raw"):
                    value = _bool(value)
                elif name in ("value", "environment_scope", "variable_type"):
                    value = str(value)
                if name == "environment_scope" and scope == "instance":
                    continue
                updated[name] = value
        self._validate_variable(updated)
        if updated["environment_scope"] != var["environment_scope"] and any(
                v["key"] == var["key"] and v["environment_scope"] == updated["environment_scope"]
                for v in self._vars_in(scope, scope_id)):
            raise HTTPError(400, {"message": {"key": [f"({var['key']}) has already been taken"]}})
        var.update(updated)
        self.store.remember_if_credential(var["value"], secret=var["masked"])
        return Response(200, self._var_entity(var))

    def _var_delete(self, request: Request, caller: Caller, scope: str, scope_id: int | None) -> Response:
        var = self._find_variable(request, scope, scope_id)
        del self.store.tables["variables"][var["id"]]
        return Response(204)

    def variable_value(self, scope_kind: str, scope: int | str | None, key: str,
                       environment_scope: str = "*") -> str | None:
        """Test hook: a variable's value, hidden ones included; None when there is no such variable."""
        return (self.variable(scope_kind, scope, key, environment_scope) or {}).get("value")

    def variable(self, scope_kind: str, scope: int | str | None, key: str,
                 environment_scope: str = "*") -> dict[str, Any] | None:
        """Test hook: the whole variable record (a copy)."""
        with self.lock:
            scope_id = None
            if scope_kind == "project":
                scope_id = (self._project_record(str(scope)) or {}).get("id")
            elif scope_kind == "group":
                scope_id = (self._group_record(str(scope)) or {}).get("id")
            for var in self._vars_in(scope_kind, scope_id):
                if var["key"] == key and (scope_kind == "instance" or var["environment_scope"] == environment_scope):
                    return dict(var)
            return None

    # --- triggers ---------------------------------------------------------------------------------

    def _trigger_entity(self, request: Request, trigger: dict[str, Any], caller: Caller) -> dict[str, Any]:
        from .gitlab_entities import user_basic

        owner = self.store.users().get(trigger.get("owner_id") or 0)
        project = self.store.tables["projects"][trigger["project_id"]]
        # Full token for its owner, or for a Maintainer when the trigger has no owner (legacy);
        # everyone else sees the first 4 characters after the prefix (TriggerPresenter).
        full = (owner is not None and owner["id"] == caller.id) or (
            owner is None and self.project_level(caller.user, project) >= 40)
        value = trigger["value"]
        token = value if full else value.removeprefix("glptt-")[:4]
        return {"id": trigger["id"], "token": token, "description": trigger["description"],
                "created_at": trigger["created_at"], "updated_at": trigger["updated_at"],
                "last_used": trigger.get("last_used"), "expires_at": trigger.get("expires_at"),
                "owner": user_basic(self.store, owner, request.base_url) if owner else None}

    def _trigger(self, request: Request, project: dict[str, Any]) -> dict[str, Any]:
        raw = request.params["trigger_id"]
        trigger = self.store.tables["triggers"].get(int(raw)) if raw.isdigit() else None
        if trigger is None or trigger["project_id"] != project["id"]:
            raise HTTPError(404, {"message": "404 Trigger Not Found"})
        return trigger

    def _trigger_list(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller, 40)
        rows = [t for t in self.store.tables["triggers"].values() if t["project_id"] == project["id"]]
        return self.paginate(request, [self._trigger_entity(request, t, caller) for t in rows])

    def _trigger_get(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller, 40)
        return Response(200, self._trigger_entity(request, self._trigger(request, project), caller))

    def _trigger_create(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller, 40)
        params = request.merged_params()
        if not params.get("description"):
            raise HTTPError(400, {"error": "description is missing"})
        now = iso(self.store.now())
        trigger = self.store.insert("triggers", {
            "project_id": project["id"], "owner_id": caller.id, "description": str(params["description"]),
            "value": self.store.mint("trigger"), "created_at": now, "updated_at": now, "last_used": None,
            "expires_at": trigger_expiry(params.get("expires_at")),
        })
        return Response(201, self._trigger_entity(request, trigger, caller))

    def _trigger_update(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller, 40)
        trigger = self._trigger(request, project)
        if trigger.get("owner_id") not in (None, caller.id):
            raise HTTPError(403, {"message": "403 Forbidden"})
        params = request.merged_params()
        if params.get("description") is not None:
            trigger["description"] = str(params["description"])
            trigger["updated_at"] = iso(self.store.now())
        return Response(200, self._trigger_entity(request, trigger, caller))

    def _trigger_delete(self, request: Request, caller: Caller) -> Response:
        project = self.find_project(request.params["id"], caller, 40)
        trigger = self._trigger(request, project)
        del self.store.tables["triggers"][trigger["id"]]
        return Response(204)

    def _trigger_pipeline(self, request: Request) -> Response:
        """Run a pipeline: 201 with the pipeline for a valid trigger (or job) token, 404 otherwise."""
        if (request.header("X-Gitlab-Event") or "") == "Pipeline Hook":
            raise HTTPError(403, {"message": "403 Forbidden"})
        params = request.merged_params()
        ref = request.params.get("ref") or params.get("ref")
        absent = [k for k, v in (("token", params.get("token")), ("ref", ref)) if not v]
        if absent:
            raise HTTPError(400, {"error": f"{', '.join(absent)} {'is' if len(absent) == 1 else 'are'} missing"})
        variables = params.get("variables") or {}
        if not isinstance(variables, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in variables.items()):
            raise HTTPError(400, {"error": "variables needs to be a map of key-valued strings"})
        project = self._project_record(request.params["id"])
        if project is None:
            raise HTTPError(404, {"message": "404 Project Not Found"})
        token = str(params["token"])
        trigger = next((t for t in self.store.tables["triggers"].values()
                        if t["project_id"] == project["id"] and t["value"] == token), None)
        job = next((j for j in self.store.tables["job_tokens"].values()
                    if j["value"] == token and j.get("active", True)), None)
        if trigger is None and job is None:
            raise HTTPError(404, {"message": "404 Not Found"})
        if trigger is not None and not self._owner_may_run(trigger, project):
            # Ci::CreatePipelineService runs as the trigger's owner; its abilities check refuses an
            # owner who may not create pipelines, and PipelineTriggerService answers a pipeline
            # not persisted with 400 (app/services/ci/pipeline_trigger_service.rb). [GUESS] the
            # body's shape: render_api_error! of the pipeline's errors.
            raise HTTPError(400, {"message": {"base": ["Insufficient permissions to create a new pipeline"]}})
        now = iso(self.store.now())
        if trigger is not None:
            trigger["last_used"] = now
        iid = 1 + sum(1 for p in self.store.tables["pipelines"].values() if p["project_id"] == project["id"])
        pipeline = self.store.insert("pipelines", {
            "project_id": project["id"], "iid": iid, "ref": str(ref), "sha": _secrets.token_hex(20),
            "status": "created", "source": "trigger" if trigger else "pipeline",
            "trigger_id": trigger["id"] if trigger else None, "variables": dict(variables),
            "created_at": now,
        })
        web = f"{request.base_url}/{project['path_with_namespace']}/-/pipelines/{pipeline['id']}"
        return Response(201, {
            "id": pipeline["id"], "iid": iid, "project_id": project["id"], "sha": pipeline["sha"],
            "ref": pipeline["ref"], "status": "created", "source": pipeline["source"], "created_at": now,
            "updated_at": now, "web_url": web, "before_sha": "0" * 40, "tag": False, "yaml_errors": None,
            "user": None, "started_at": None, "finished_at": None, "committed_at": None, "duration": None,
            "queued_duration": None, "coverage": None,
            "detailed_status": {"icon": "status_created", "text": "Created", "label": "created",
                                "group": "created", "tooltip": "created", "has_details": True,
                                "details_path": web.replace(request.base_url, ""), "illustration": None,
                                "favicon": "/assets/ci_favicons/favicon_status_created.png"},
        })

    def _owner_may_run(self, trigger: dict[str, Any], project: dict[str, Any]) -> bool:
        """A trigger works while its owner may create builds in the project: an active user with
        at least the Developer role (`Ci::Trigger#can_access_project?`, app/models/ci/trigger.rb).
        A legacy trigger without an owner runs as before."""
        if trigger.get("owner_id") is None:
            return True
        owner = self.store.users().get(trigger["owner_id"])
        return (owner is not None and owner.get("state", "active") == "active"
                and self.project_level(owner, project) >= 30)

    def trigger_by_value(self, value: str) -> dict[str, Any] | None:
        """Test hook: the live trigger record holding `value` (a copy), or None."""
        with self.lock:
            found = next((t for t in self.store.tables["triggers"].values() if t["value"] == value), None)
            return dict(found) if found else None
